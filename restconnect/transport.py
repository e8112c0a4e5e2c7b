"""The transport adapter every connector's session sends through.

:class:`Transport` is requests' ``HTTPAdapter`` with its per-request lookups
remembered: requests parses the URL again to find the connection pool's
parameters and the path to send, and reads cookies from every response,
which together cost a page of a nearby API about 5% of its time in the HTTP
stack. The pool is still the one requests would choose, with its TLS
settings; urllib3 still sends, and requests still turns urllib3's errors
into its own.

It can also split a request in two: :meth:`Transport.open_connection` takes
an open kept-alive connection, :meth:`Transport.send_early` writes a GET on
it and returns at once, and :meth:`Transport.receive` reads the answer
later, so a caller can do other work while the server prepares it.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout, SSLError
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

__all__ = ["ClosedUnderRequest", "OpenConnection", "SentRequest", "Transport",
           "authority"]

logger = logging.getLogger(__name__)

#: Origins and TLS settings remembered per adapter; an API client meets few.
_MAX_CONTEXTS = 64


class ClosedUnderRequest(RequestsConnectionError):
    """The server closed the connection before answering a request sent early.

    A server may close a kept-alive connection just as a request goes out
    on it; the request is then safe to send again on a new connection.
    """


@dataclass
class OpenConnection:
    """A kept-alive connection taken from its pool, not yet written on."""

    pool: Any
    connection: Any


@dataclass
class SentRequest:
    """A request written to a connection whose response is not read yet."""

    request: requests.PreparedRequest
    pool: Any
    connection: Any
    timeout: float | None
    started: float


class Transport(HTTPAdapter):
    """An ``HTTPAdapter`` that remembers each origin's pool parameters.

    Requests through a proxy take requests' own path unchanged. Cookies are
    read from a response only when it sets one.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._contexts: dict[tuple[Any, ...], tuple[dict[str, Any],
                                                    dict[str, Any]]] = {}

    def get_connection_with_tls_context(self, request: requests.PreparedRequest,
                                        verify: Any, proxies: Any = None,
                                        cert: Any = None) -> Any:
        if proxies:
            return super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert)
        key = (_origin(request.url), verify, cert)
        try:
            context = self._contexts.get(key)
        except TypeError:  # settings that cannot be a key: nothing remembered
            return super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert)
        if context is None:
            context = self.build_connection_pool_key_attributes(request, verify, cert)
            if len(self._contexts) < _MAX_CONTEXTS:
                self._contexts[key] = context
        host_params, pool_kwargs = context
        return self.poolmanager.connection_from_host(**host_params,
                                                     pool_kwargs=pool_kwargs)

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        if proxies:
            return super().request_url(request, proxies)
        url = request.path_url
        return f"/{url.lstrip('/')}" if url.startswith("//") else url

    def build_response(self, req: requests.PreparedRequest,
                       resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        url = req.url
        response.url = url.decode("utf-8") if isinstance(url, bytes) else url
        if "Set-Cookie" in response.headers or "Set-Cookie2" in response.headers:
            extract_cookies_to_jar(response.cookies, req, resp)
        response.request = req
        response.connection = self
        return response

    def open_connection(self, request: requests.PreparedRequest, *, verify: Any = True,
                        cert: Any = None) -> OpenConnection | None:
        """Take an open kept-alive connection for ``request``'s origin from the pool.

        None when the pool has none to reuse. Hand it back with
        :meth:`release` or write on it with :meth:`send_early`. Proxies are
        the caller's to rule out.
        """
        pool = self.get_connection_with_tls_context(request, verify, cert=cert)
        if not (hasattr(pool, "_get_conn") and hasattr(pool, "_put_conn")):
            return None
        self.cert_verify(pool, request.url, verify, cert)
        connection = pool._get_conn()
        if connection.is_closed or getattr(connection, "proxy", None):
            pool._put_conn(connection)
            return None
        return OpenConnection(pool, connection)

    @staticmethod
    def release(opened: OpenConnection) -> None:
        """Give an unused connection from :meth:`open_connection` back to its pool."""
        opened.pool._put_conn(opened.connection)

    def send_early(self, request: requests.PreparedRequest, opened: OpenConnection, *,
                   timeout: float | None) -> SentRequest | None:
        """Write a request without a body on ``opened`` and return without waiting.

        None, with the connection closed, when the request could not be
        written; it then has to go the usual way, through :meth:`send`.
        """
        pool, connection = opened.pool, opened.connection
        started = time.perf_counter()
        try:
            if request.body is not None:
                raise ValueError("a request sent early has no body")
            connection.request(request.method, self.request_url(request, None),
                               body=None, headers=request.headers, chunked=False,
                               preload_content=False, decode_content=False)
        except (BrokenPipeError, ConnectionResetError):
            # The server may have closed after answering early; reading says.
            pass
        except Exception as exc:
            logger.debug("request not written early: %s", type(exc).__name__)
            connection.close()
            pool._put_conn(None)
            return None
        return SentRequest(request, pool, connection, timeout, started)

    def receive(self, sent: SentRequest) -> requests.Response:
        """The response to a request :meth:`send_early` wrote, body not read.

        Errors are requests' own, as :meth:`send` raises them, except that a
        connection closed before any answer came raises
        :class:`ClosedUnderRequest`.
        """
        connection, pool = sent.connection, sent.pool
        try:
            connection.timeout = sent.timeout
            raw = connection.getresponse()
        except BaseException as exc:
            connection.close()
            pool._put_conn(None)
            if isinstance(exc, (OSError, http.client.HTTPException)):
                raise _requests_error(exc, sent) from exc
            raise
        raw.retries = self.max_retries
        raw._connection = connection
        raw._pool = pool
        return self.build_response(sent.request, raw)

    @staticmethod
    def discard(sent: SentRequest) -> None:
        """Give up on a response :meth:`send_early` asked for: close its connection."""
        sent.connection.close()
        sent.pool._put_conn(None)

    def close(self) -> None:
        self._contexts.clear()
        super().close()


def _requests_error(error: BaseException, sent: SentRequest) -> Exception:
    """The exception requests raises for ``error`` met reading a response."""
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    request = sent.request
    if isinstance(error, TimeoutError):
        reason = ReadTimeoutError(sent.pool, request.url,
                                  f"Read timed out. (read timeout={sent.timeout})")
        return ReadTimeout(reason, request=request)
    if isinstance(error, ssl.SSLError):
        return SSLError(error, request=request)
    aborted = ProtocolError("Connection aborted.", error)
    if isinstance(error, (http.client.RemoteDisconnected, ConnectionError)):
        return ClosedUnderRequest(aborted, request=request)
    return RequestsConnectionError(aborted, request=request)


def authority(url: str) -> str:
    """The ``user@host:port`` part of an absolute URL, as written."""
    rest = url.partition("://")[2]
    return rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _origin(url: Any) -> tuple[str, str]:
    """The scheme and ``host:port`` of a prepared URL, without any user info."""
    if isinstance(url, bytes):
        url = url.decode("utf-8")
    return url.partition("://")[0].lower(), authority(url).rpartition("@")[2]
