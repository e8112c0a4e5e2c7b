"""The transport adapter every connector's session sends through.

:class:`Transport` is requests' ``HTTPAdapter`` with its per-request lookups
remembered: requests parses the URL again to find the connection pool's
parameters and the path to send, and reads cookies from every response,
which together cost a page of a nearby API about 5% of its time in the HTTP
stack. The pool is still the one requests would choose, with its TLS
settings; urllib3 still sends, and requests still turns urllib3's errors
into its own.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

__all__ = ["Transport", "authority"]

logger = logging.getLogger(__name__)

#: Origins and TLS settings remembered per adapter; an API client meets few.
_MAX_CONTEXTS = 64


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

    def close(self) -> None:
        self._contexts.clear()
        super().close()


def authority(url: str) -> str:
    """The ``user@host:port`` part of an absolute URL, as written."""
    rest = url.partition("://")[2]
    return rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


def _origin(url: Any) -> tuple[str, str]:
    """The scheme and ``host:port`` of a prepared URL, without any user info."""
    if isinstance(url, bytes):
        url = url.decode("utf-8")
    return url.partition("://")[0].lower(), authority(url).rpartition("@")[2]
