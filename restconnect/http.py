"""The HTTP layer every connector request goes through.

:class:`HttpClient` wraps one ``requests.Session`` and adds what talking to
real APIs needs: timeouts on every request, retries with backoff and jitter,
``Retry-After`` and rate-limit headers, one re-authentication on 401, TLS
rules for credentials, auth stripped on cross-host redirects, and log lines
with redacted URLs.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict

from restconnect._version import __version__
from restconnect.exceptions import (
    AuthError,
    HTTPStatusError,
    RateLimitError,
    TransportError,
)
from restconnect.redact import redact_library_logs, redact_text, redact_url
from restconnect.spec import RateLimitSpec, RetrySpec
from restconnect.transport import ClosedUnderRequest, SentRequest, Transport, authority

__all__ = ["HttpClient", "PendingResponse", "RateLimitState", "ResponseHook",
           "is_loopback", "user_agent", "with_query_param"]

logger = logging.getLogger(__name__)

_MAX_REDIRECTS = 10
_BODY_EXCERPT = 300
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
#: Headers that carry credentials, never sent to another host on a redirect.
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
#: Every header _parse_rate_headers reads, in lower case.
_RATE_HEADERS = frozenset({
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit",
    "ratelimit-remaining", "ratelimit-reset", "ratelimit-limit", "ratelimit-policy",
})
#: The variables requests reads for proxies and CA bundles of http(s) URLs.
_ENVIRONMENT_NAMES = (
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "REQUEST_METHOD",
)


def user_agent() -> str:
    """The User-Agent restconnect sends."""
    return f"restconnect/{__version__} python-requests/{requests.__version__}"


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (127.0.0.0/8, ::1, localhost)."""
    return _is_loopback_host((urlsplit(url).hostname or "").lower())


@functools.lru_cache(maxsize=256)
def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def with_query_param(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value`` (replacing any)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != name]
    pairs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(pairs)))


class ResponseHook(Protocol):
    """A layer that may answer a request before it is sent (the cache)."""

    def before_send(self, request: requests.PreparedRequest,
                    policy: Any) -> requests.Response | None: ...

    def after_receive(self, request: requests.PreparedRequest,
                      response: requests.Response,
                      policy: Any) -> requests.Response: ...


@dataclass
class RateLimitState:
    """What the last response said about the remaining quota."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    updated_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        reset = (datetime.fromtimestamp(self.reset_at, timezone.utc).isoformat()
                 if self.reset_at else None)
        return {"limit": self.limit, "remaining": self.remaining, "reset_at": reset}


class PendingResponse:
    """A GET sent before its response is needed; :meth:`result` waits for it.

    :meth:`HttpClient.send_ahead` makes one. Whatever went wrong while
    sending (a refused credential, a used-up quota) is raised by
    :meth:`result`, where the response is wanted.
    """

    def __init__(self, finish: Callable[[], requests.Response],
                 abandon: Callable[[], None] = lambda: None):
        self._finish = finish
        self._abandon = abandon
        self._open = True

    def result(self) -> requests.Response:
        """The final response, with every rule of :meth:`HttpClient.request`."""
        if not self._open:
            raise RuntimeError("this response was already read or cancelled")
        self._open = False
        return self._finish()

    def cancel(self) -> None:
        """Drop the request: its connection is closed unless already answered."""
        if self._open:
            self._open = False
            self._abandon()


@dataclass
class _Attempt:
    """One try of a request: what was sent, or what the cache answered.

    ``sent`` and the transport ``settings`` it went with are set for a
    request written early.
    """

    prepared: requests.PreparedRequest
    cached: requests.Response | None = None
    sent: SentRequest | None = None
    settings: dict[str, Any] | None = None


@dataclass
class _Stats:
    sent: int = 0
    from_cache: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class HttpClient:
    """One connector's HTTP session and its rules.

    Args:
        connector: the connector name, used in messages.
        timeout: seconds to wait for a connection and for each read.
        retry: retry rules; rate_limit: pacing rules.
        headers: sent on every request.
        auth: handlers applied in order to every request to the API.
        ca_bundle: a CA file or folder that wins over the environment's.
        pool_size: connections kept per host (at least the fetch concurrency).

    Example:
        >>> client = HttpClient(connector="demo")
        >>> client.request("GET", "http://127.0.0.1:8765/health")  # doctest: +SKIP
    """

    def __init__(self, *, connector: str, timeout: float = 30.0,
                 retry: RetrySpec | None = None,
                 rate_limit: RateLimitSpec | None = None,
                 headers: Mapping[str, str] | None = None,
                 auth: Sequence[requests.auth.AuthBase] = (),
                 ca_bundle: str | None = None, pool_size: int = 10,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.connector = connector
        self.timeout = timeout
        self.retry = retry or RetrySpec()
        self.rate_limit = rate_limit or RateLimitSpec()
        self.auth = list(auth)
        self.ca_bundle = ca_bundle
        self.cache: ResponseHook | None = None
        self.rate_state = RateLimitState()
        self.stats = _Stats()
        self.redact_params: list[str] = []
        self._sleep = sleep
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0
        self._environment_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.session = session or requests.Session()
        if session is None:  # a caller's session keeps the adapters it has
            self._mount_adapters(pool_size)
        self.session.headers["User-Agent"] = user_agent()
        redact_library_logs()
        self.session.headers.update(headers or {})
        for handler in self.auth:
            prepare = getattr(handler, "prepare_session", None)
            if prepare is not None:
                prepare(self.session)

    def _mount_adapters(self, pool_size: int) -> None:
        # Room for the most threads a fetch may use (connector.MAX_CONCURRENCY),
        # whatever the connector's default: idle connections cost nothing.
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, Transport(pool_connections=4,
                                                 pool_maxsize=max(pool_size, 64)))

    def close(self) -> None:
        self.session.close()

    @staticmethod
    def origin(url: str) -> tuple[str, str, int | None]:
        """Scheme, host and port of a URL, the port filled in from the scheme."""
        return _origin(url)

    def sends_credentials(self) -> bool:
        """Whether any of the connector's auth handlers puts credentials on requests."""
        return any(_sends_credentials(handler) for handler in self.auth)

    # ------------------------------------------------------------ requests

    def request(self, method: str, url: str, *, params: Any = None, json: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None,
                auth: bool | Iterable[requests.auth.AuthBase] = True,
                endpoint: str | None = None, cache: Any = None,
                accept_statuses: Iterable[int] = (), timeout: float | None = None,
                stream: bool = False) -> requests.Response:
        """Send a request with every rule applied and return the final response.

        Args:
            auth: True for the connector's handlers, False for none, or a list.
            endpoint: the endpoint name, for messages and logs.
            cache: the cache policy for this request (see the caching docs).
            accept_statuses: error statuses returned instead of raised.

        Raises:
            HTTPStatusError, RateLimitError, AuthError, TransportError.
        """
        handlers = self.auth if auth is True else ([] if auth is False else list(auth))
        base = requests.Request(method.upper(), url, params=params, json=json,
                                data=data, headers=dict(headers or {}))
        return self._send_with_retries(base, handlers, endpoint=endpoint, cache=cache,
                                       accept=frozenset(accept_statuses),
                                       timeout=timeout or self.timeout, stream=stream)

    def send_ahead(self, url: str, *, params: Any = None,
                   headers: Mapping[str, str] | None = None,
                   endpoint: str | None = None, cache: Any = None,
                   accept_statuses: Iterable[int] = ()) -> PendingResponse:
        """Send a GET now and read its response when :meth:`~PendingResponse.result`
        is called, as :meth:`request` would return it.

        The request goes out at once on an open kept-alive connection, so the
        server prepares the answer while the caller does something else. A
        request that cannot go at once (through a proxy, with no open
        connection, or while the pace or the quota may make it wait) is not
        even signed before the result is asked for.
        """
        base = requests.Request("GET", url, params=params, headers=dict(headers or {}))
        options = {"endpoint": endpoint, "cache": cache, "timeout": self.timeout,
                   "accept": frozenset(accept_statuses), "stream": False}
        try:
            first = self._early_attempt(base, endpoint, cache)
        except Exception as exc:  # raised where the response is wanted
            return PendingResponse(functools.partial(_reraise, exc))

        def finish() -> requests.Response:
            return self._send_with_retries(base, self.auth, first=first, **options)

        def abandon() -> None:
            if first is not None and first.sent is not None:
                Transport.discard(first.sent)
        return PendingResponse(finish, abandon)

    def _prepare(self, base: requests.Request,
                 handlers: Sequence[requests.auth.AuthBase], *,
                 foreign: bool = False) -> requests.PreparedRequest:
        return self._sign(_prepared_request(self.session, base, foreign=foreign),
                          handlers)

    def _sign(self, prepared: requests.PreparedRequest,
              handlers: Sequence[requests.auth.AuthBase]) -> requests.PreparedRequest:
        loopback = is_loopback(prepared.url or "") if handlers else True
        for handler in handlers:
            if not loopback and _sends_credentials(handler):
                _require_https(prepared.url or "", handler, self.connector)
            prepared = handler(prepared)
        return prepared

    def _cached(self, prepared: requests.PreparedRequest,
                cache: Any) -> requests.Response | None:
        if self.cache is None or prepared.method not in ("GET", "HEAD"):
            return None
        cached = self.cache.before_send(prepared, cache)
        if cached is not None:
            self.stats.add("from_cache")
        return cached

    def _attempt(self, base: requests.Request,
                 handlers: Sequence[requests.auth.AuthBase], endpoint: str | None,
                 cache: Any) -> _Attempt:
        """Prepare one try, ask the cache, then wait for the pace if it is sent.

        A request that had to wait is signed again after the wait, so a
        signature's timestamp is its sending time.
        """
        prepared = self._prepare(base, handlers)
        cached = self._cached(prepared, cache)
        if cached is not None:
            return _Attempt(prepared, cached=cached)
        if self._pace(endpoint) and handlers:
            prepared = self._prepare(base, handlers)
        return _Attempt(prepared)

    def _early_attempt(self, base: requests.Request, endpoint: str | None,
                       cache: Any) -> _Attempt | None:
        """The first try of ``base``, written to an open connection now.

        None when it cannot go at once: then nothing has happened, not even
        the signing, whose timestamp must be the sending time.
        """
        if self._may_wait():
            return None
        unsigned = _prepared_request(self.session, base)
        adapter = self.session.get_adapter(unsigned.url or "")
        if not isinstance(adapter, Transport):
            return None
        settings = {"timeout": self.timeout, **self._tls_settings(unsigned)}
        if settings["proxies"]:
            return None
        opened = adapter.open_connection(unsigned, verify=settings["verify"],
                                         cert=settings["cert"])
        if opened is None:
            return None
        try:
            prepared = self._sign(unsigned, self.auth)
            cached = self._cached(prepared, cache)
        except BaseException:
            adapter.release(opened)
            raise
        if cached is not None:
            adapter.release(opened)
            return _Attempt(prepared, cached=cached)
        if self._may_wait():  # another thread's answer may have changed the quota
            adapter.release(opened)
            return None
        sent = adapter.send_early(prepared, opened, timeout=self.timeout)
        if sent is None:
            return None
        self.stats.add("sent")
        return _Attempt(prepared, sent=sent, settings=settings)

    def _send_with_retries(self, base: requests.Request,
                           handlers: Sequence[requests.auth.AuthBase], *,
                           endpoint: str | None, cache: Any, accept: frozenset[int],
                           timeout: float, stream: bool,
                           first: _Attempt | None = None) -> requests.Response:
        attempt = 0
        reauthenticated = False
        rotations = 0
        while True:
            attempt += 1
            if first is None:
                this = self._attempt(base, handlers, endpoint, cache)
            else:
                this, first = first, None
            prepared = this.prepared
            if this.cached is not None:
                return this.cached
            try:
                response = self._send_following_redirects(
                    prepared, base, handlers, timeout=timeout, stream=stream,
                    early=this if this.sent is not None else None)
            except ClosedUnderRequest as exc:
                # A server may close an idle connection just as a request goes
                # out; a GET is safe to send again (RFC 9110, section 9.2.2),
                # signed anew.
                logger.debug("%s: the connection of a request sent ahead closed "
                             "before its whole answer came (%s); sending it again",
                             self.connector, type(exc.__cause__ or exc).__name__)
                attempt -= 1
                continue
            except (requests.ConnectionError, requests.Timeout) as exc:
                # A refused TLS handshake fails the same way every time.
                tls = isinstance(exc, requests.exceptions.SSLError)
                if not tls and self._can_retry(base.method, attempt):
                    self._wait_before_retry(attempt, None, exc, prepared)
                    continue
                raise self._transport_error(exc, prepared, handlers) from None
            self._update_rate_state(response)

            if response.status_code == 401 and handlers and not reauthenticated:
                if any(_renew(handler, response) for handler in handlers):
                    reauthenticated = True
                    attempt -= 1
                    continue
            if response.status_code == 401 and handlers:
                raise self._auth_error(response, prepared, handlers, endpoint)

            if self._is_rate_limited(response) and rotations < len(handlers) * 8:
                if any(_rotate(handler, response) for handler in handlers):
                    # The quota headers seen so far belonged to the old credential.
                    with self._pace_lock:
                        self.rate_state = RateLimitState()
                    rotations += 1
                    attempt -= 1
                    continue

            if self._should_retry(response, base.method, attempt):
                self._wait_before_retry(attempt, response, None, prepared, endpoint)
                continue

            if self.cache is not None and prepared.method in ("GET", "HEAD"):
                response = self.cache.after_receive(prepared, response, cache)
            if response.status_code >= 400 and response.status_code not in accept:
                raise self._status_error(response, prepared, endpoint)
            return response

    def _send_following_redirects(self, prepared: requests.PreparedRequest,
                                  base: requests.Request,
                                  handlers: Sequence[requests.auth.AuthBase], *,
                                  timeout: float, stream: bool,
                                  early: _Attempt | None = None) -> requests.Response:
        """``early``: a try whose request is on the wire already (and counted)."""
        origin = _origin(prepared.url or "")
        started = early.sent.started if early is not None else time.perf_counter()
        for _ in range(_MAX_REDIRECTS + 1):
            if early is None:
                self.stats.add("sent")
            response = self._transmit(prepared, timeout=timeout, stream=stream,
                                      early=early)
            early = None
            elapsed = (time.perf_counter() - started) * 1000
            if logger.isEnabledFor(logging.DEBUG):  # the redaction costs, logged or not
                logger.debug("%s %s -> %s (%.0f ms)", prepared.method,
                             self._redact(prepared.url), response.status_code, elapsed)
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            prepared = self._redirected(prepared, response, location, base,
                                        handlers, origin)
            response.close()
        raise TransportError(f"{self.connector}: more than {_MAX_REDIRECTS} redirects "
                             f"for {self._redact(base.url)}")

    def _transmit(self, prepared: requests.PreparedRequest, *, timeout: float,
                  stream: bool, early: _Attempt | None = None) -> requests.Response:
        """Send one request through the session's adapter; no redirect is followed.

        This is what ``Session.send`` does for one hop (response hooks, cookies
        into the session's jar, the elapsed time), minus its proxy lookup,
        which :meth:`_tls_settings` has already made, and with the body read
        in one call instead of in 10 KB chunks, which costs a third of the
        time spent in requests for a page of about 100 KB. ``early`` is a try
        whose request is on the wire already (:meth:`send_ahead`).
        """
        if early is not None:
            settings = early.settings
            started = early.sent.started
        else:
            settings = {"timeout": timeout, **self._tls_settings(prepared)}
            started = time.perf_counter()
        adapter = self.session.get_adapter(prepared.url or "")
        try:
            if early is not None:
                response = adapter.receive(early.sent)
            else:
                response = adapter.send(prepared, stream=True, **settings)
        except ValueError as exc:
            if not str(exc).startswith(("Invalid header value", "Invalid header name")):
                raise
            # http.client quotes the value, most often a credential read with
            # its trailing newline: say what is wrong without it.
            raise TransportError(
                f"{self.connector}: {prepared.method} {self._redact(prepared.url)} "
                "was not sent: a header value holds a line break or another "
                "character HTTP does not allow (a credential read from a file "
                "with its newline?)") from None
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        response = dispatch_hook("response", prepared.hooks, response, stream=True,
                                 **settings)
        for hop in (*response.history, response):
            if "Set-Cookie" in hop.headers or "Set-Cookie2" in hop.headers:
                extract_cookies_to_jar(self.session.cookies, hop.request, hop.raw)
        if not stream and response._content is False:  # not read yet
            self._read_body(response, prepared, early=early is not None)
        return response

    @staticmethod
    def _read_body(response: requests.Response, prepared: requests.PreparedRequest,
                   *, early: bool) -> None:
        """Read the whole body; a connection lost meanwhile is a ConnectionError
        for the retry rules.

        The answer to a request sent early may have waited on the server
        while the caller worked, long enough for a server's send timeout to
        cut it: that is sent again at once, as a closed connection is. A read
        that timed out is not.
        """
        try:
            response._content = b"".join(response.iter_content(chunk_size=None))
        except (requests.exceptions.ChunkedEncodingError,
                requests.ConnectionError) as exc:
            response.close()
            cut = early and not _timed_out(exc) and \
                not isinstance(exc, requests.exceptions.SSLError)
            error = ClosedUnderRequest if cut else requests.ConnectionError
            raise error(exc, request=prepared) from exc

    def _redirected(self, prepared: requests.PreparedRequest,
                    response: requests.Response,
                    location: str, base: requests.Request,
                    handlers: Sequence[requests.auth.AuthBase],
                    origin: tuple[str, str, int | None]) -> requests.PreparedRequest:
        target = urljoin(prepared.url or "", location)
        method = prepared.method or "GET"
        keep_body = response.status_code in (307, 308)
        same_origin = _origin(target) == origin
        if keep_body and not same_origin and (base.json is not None or base.data):
            # A token or login body holds the credentials themselves.
            raise TransportError(
                f"{self.connector}: {response.status_code} redirect of {method} "
                f"{self._redact(prepared.url)} to another host "
                f"({self._redact(target)}); the request body is not re-sent there")
        if response.status_code == 303 or (not keep_body and method == "POST"):
            method = "GET"
        headers = {k: v for k, v in base.headers.items()
                   if k.lower() not in ("authorization", "cookie")}
        follow = requests.Request(method, target, headers=headers,
                                  json=base.json if keep_body else None,
                                  data=base.data if keep_body else None)
        if not same_origin:
            logger.debug("redirect to another host: credentials not forwarded")
        if same_origin:
            return self._prepare(follow, handlers)
        return self._prepare(follow, [], foreign=True)

    def _tls_settings(self, prepared: requests.PreparedRequest) -> dict[str, Any]:
        # A CA bundle given to restconnect must win over REQUESTS_CA_BUNDLE and
        # CURL_CA_BUNDLE, which requests would otherwise prefer to verify=True.
        verify = self.ca_bundle
        for handler in self.auth:
            verify = getattr(handler, "verify", None) or verify
        settings = self._environment_settings(prepared.url or "", verify)
        cert = next((h.cert for h in self.auth if getattr(h, "cert", None)), None)
        return {"verify": settings["verify"], "proxies": settings["proxies"],
                "cert": cert or self.session.cert}

    def _environment_settings(self, url: str, verify: Any) -> dict[str, Any]:
        """``merge_environment_settings``, kept per origin while its inputs stay put.

        requests walks the whole environment twice per call to find proxies,
        which costs more than the rest of a request to a nearby API; the key
        holds every input, so a changed variable is still seen at once.
        """
        session = self.session
        key = (url.partition("://")[0], authority(url), str(verify),
               session.trust_env, str(session.verify), str(session.cert),
               tuple(sorted(session.proxies.items())),
               tuple(map(os.environ.get, _ENVIRONMENT_NAMES)))
        settings = self._environment_cache.get(key)
        if settings is None:
            settings = session.merge_environment_settings(url, {}, None, verify, None)
            if len(self._environment_cache) < 64:
                self._environment_cache[key] = settings
        return settings

    # ------------------------------------------------------------ retries

    def _can_retry(self, method: str | None, attempt: int) -> bool:
        return attempt < self.retry.attempts and (method or "GET") in self.retry.methods

    def _should_retry(self, response: requests.Response, method: str | None,
                      attempt: int) -> bool:
        status = response.status_code
        if status == 403 and _requested_wait(response) is None:
            # A spent quota with no reset time: waiting blindly would not help.
            return False
        if status not in self.retry.statuses and not self._is_rate_limited(response):
            return False
        return self._can_retry(method, attempt)

    def _is_rate_limited(self, response: requests.Response) -> bool:
        if response.status_code == 429:
            return True
        return response.status_code == 403 and response.headers.get(
            "X-RateLimit-Remaining") == "0"

    def _wait_before_retry(self, attempt: int, response: requests.Response | None,
                           error: Exception | None, prepared: requests.PreparedRequest,
                           endpoint: str | None = None) -> None:
        self.stats.add("retries")
        requested = _requested_wait(response) if response is not None else None
        if requested is not None and requested > self.rate_limit.max_wait:
            raise self._rate_limit_error(response, prepared, endpoint, requested)
        backoff = min(self.retry.max_backoff, self.retry.backoff * 2 ** (attempt - 1))
        jittered = random.uniform(0, backoff) + backoff / 2
        wait = requested if requested is not None else jittered
        why = (f"HTTP {response.status_code}" if response is not None
               else type(error).__name__)
        logger.info("%s: %s for %s; retrying in %.1f s (attempt %d of %d)",
                    self.connector, why, self._redact(prepared.url), wait, attempt + 1,
                    self.retry.attempts)
        self._sleep(wait)

    # ------------------------------------------------------------ rate limits

    def _update_rate_state(self, response: requests.Response) -> None:
        limit, remaining, reset_at = _parse_rate_headers(response.headers)
        if remaining is None and limit is None:
            return
        if remaining == 0 and any(_rotate(handler, response) for handler in self.auth):
            # A handler switched to another credential, whose quota is unknown.
            limit = remaining = reset_at = None
        with self._pace_lock:
            self.rate_state = RateLimitState(limit, remaining, reset_at, time.time())

    def _pace(self, endpoint: str | None) -> bool:
        """Wait before sending so the quota is spread instead of spent at once;
        True if it waited."""
        with self._pace_lock:
            wait = 0.0
            now = time.monotonic()
            rps = self.rate_limit.requests_per_second
            if rps:
                wait = max(0.0, self._next_slot - now)
                self._next_slot = max(now, self._next_slot) + 1.0 / rps
            wait = max(wait, self._quota_wait(endpoint))
        if wait > 0:
            self._sleep(wait)
        return wait > 0

    def _may_wait(self) -> bool:
        """Whether :meth:`_pace` could wait before the next request."""
        return bool(self.rate_limit.requests_per_second) or \
            self._near_quota(self.rate_state)

    def _near_quota(self, state: RateLimitState) -> bool:
        """Whether the quota a response told is low enough to slow down for."""
        return (state.remaining is not None and state.reset_at is not None
                and state.remaining <= self.rate_limit.slow_down_below)

    def _quota_wait(self, endpoint: str | None) -> float:
        state = self.rate_state
        if not self._near_quota(state):
            return 0.0
        until_reset = max(0.0, state.reset_at - time.time())
        if until_reset == 0:
            return 0.0
        if state.remaining <= 0:
            if until_reset > self.rate_limit.max_wait:
                retry_at = datetime.fromtimestamp(state.reset_at, timezone.utc)
                raise RateLimitError(
                    429, "GET", "(not sent)", connector=self.connector,
                    endpoint=endpoint,
                    reason="quota used up",
                    hint=f"the quota resets at {retry_at.isoformat()}; retry then",
                    retry_at=retry_at)
            logger.warning("%s: rate-limit quota used up; waiting %.1f s for the reset",
                           self.connector, until_reset)
            return until_reset
        wait = min(until_reset / (state.remaining + 1), self.rate_limit.max_wait)
        logger.info("%s: %d requests left until the reset; pausing %.2f s",
                    self.connector, state.remaining, wait)
        return wait

    # ------------------------------------------------------------ errors

    def _redact(self, url: str | None) -> str:
        return redact_url(url or "", self.redact_params)

    def _status_error(self, response: requests.Response,
                      prepared: requests.PreparedRequest,
                      endpoint: str | None) -> HTTPStatusError:
        if self._is_rate_limited(response):
            return self._exhausted_quota_error(response, prepared, endpoint)
        hint = ""
        if response.status_code == 403 and "rate limit" in response.text[:500].lower():
            hint = "rate limit exceeded"
        return HTTPStatusError(
            response.status_code, prepared.method or "GET", self._redact(prepared.url),
            connector=self.connector, endpoint=endpoint, reason=response.reason or "",
            body_excerpt=body_excerpt(response), response=response, hint=hint)

    def _exhausted_quota_error(self, response: requests.Response,
                               prepared: requests.PreparedRequest,
                               endpoint: str | None) -> RateLimitError:
        wait = _requested_wait(response)
        retry_at = (datetime.now(timezone.utc) + timedelta(seconds=wait)
                    if wait is not None else None)
        when = retry_at.isoformat(timespec="seconds") if retry_at else ""
        hint = (f"rate limit exceeded; retry after {when}"
                if retry_at else "rate limit exceeded; the API did not say until when")
        return RateLimitError(
            response.status_code, prepared.method or "GET", self._redact(prepared.url),
            connector=self.connector, endpoint=endpoint, reason=response.reason or "",
            body_excerpt=body_excerpt(response), response=response, hint=hint,
            retry_at=retry_at)

    def _rate_limit_error(self, response: requests.Response | None,
                          prepared: requests.PreparedRequest, endpoint: str | None,
                          requested: float) -> RateLimitError:
        retry_at = datetime.now(timezone.utc) + timedelta(seconds=requested)
        logger.warning("%s: the API asks to wait %.0f s, more than rate_limit.max_wait "
                       "(%.0f s); giving up", self.connector, requested,
                       self.rate_limit.max_wait)
        return RateLimitError(
            response.status_code if response is not None else 429,
            prepared.method or "GET", self._redact(prepared.url),
            connector=self.connector, endpoint=endpoint,
            reason=response.reason if response is not None else "",
            hint=f"retry after {retry_at.isoformat(timespec='seconds')}",
            response=response, retry_at=retry_at)

    def _auth_error(self, response: requests.Response,
                    prepared: requests.PreparedRequest,
                    handlers: Sequence[requests.auth.AuthBase],
                    endpoint: str | None) -> AuthError:
        names = "+".join(getattr(h, "name", type(h).__name__) for h in handlers)
        where = f" ({endpoint})" if endpoint else ""
        url = self._redact(prepared.url)
        return AuthError(
            f"credentials refused with HTTP 401 for {prepared.method} {url}{where}: "
            f"{body_excerpt(response)}", connector=self.connector, method=names,
            status=401, url=url, endpoint=endpoint, response=response)

    def _transport_error(self, error: Exception, prepared: requests.PreparedRequest,
                         handlers: Sequence[requests.auth.AuthBase]) -> TransportError:
        detail = None
        for handler in handlers:
            explain = getattr(handler, "explain_transport_error", None)
            detail = detail or (explain(error) if explain else None)
        if detail is None and isinstance(error, requests.exceptions.SSLError):
            from restconnect.auth.mtls import explain_tls_error

            detail = explain_tls_error(error, None, self.ca_bundle)
        if detail is None:
            kind = "timed out" if isinstance(error, requests.Timeout) else "failed"
            detail = f"{kind}: {_root_cause(error)}"
        return TransportError(redact_text(
            f"{self.connector}: {prepared.method} {self._redact(prepared.url)} "
            f"{detail}"))


def _prepared_request(session: requests.Session, request: requests.Request, *,
                      foreign: bool = False) -> requests.PreparedRequest:
    """The request with the session's headers, cookies and hooks merged in.

    These are the steps of ``Session.prepare_request``, minus its
    ``~/.netrc`` lookup (credentials come from the connector's auth handlers
    only: requests would add a ``.netrc`` login for the host under any
    handler that does not set ``Authorization`` itself, an API key in the
    query string for one), and minus the steps that have nothing to do:
    cookies from an empty jar, auth when none is given, empty hooks.
    ``foreign``: the request goes to another host than the connector's, so
    the session's own credentials (its ``auth`` and credential headers) stay
    behind, as requests leaves them behind on a redirect.
    """
    headers: Mapping[str, Any] = session.headers
    if request.headers or None in session.headers.values() or foreign:
        headers = merge_setting(request.headers, session.headers,
                                dict_class=CaseInsensitiveDict)
        if foreign:
            for name in _CREDENTIAL_HEADERS:
                headers.pop(name, None)
    params = request.params
    if session.params:
        params = merge_setting(request.params, session.params)
    prepared = requests.PreparedRequest()
    prepared.prepare_method(request.method or "GET")
    prepared.prepare_url(request.url, _query_string(params))
    prepared.prepare_headers(headers)
    cookies = RequestsCookieJar()
    if len(session.cookies):
        cookies.update(session.cookies)
        prepared.prepare_cookies(cookies)
    else:
        prepared._cookies = cookies
    prepared.prepare_body(request.data, request.files, request.json)
    auth = request.auth or (None if foreign else session.auth)
    if auth or "@" in authority(prepared.url or ""):
        # A user and password in the URL are requests' Basic auth, as before.
        prepared.prepare_auth(auth, request.url)
    hooks = merge_hooks(request.hooks, session.hooks)
    if any(hooks.values()):
        prepared.prepare_hooks(hooks)
    return prepared


def _query_string(params: Any) -> Any:
    """Parameters as requests encodes them, in the form it encodes fastest.

    requests checks any mapping, even an empty one, against typing protocols,
    which costs more than the rest of the URL; a flat mapping of text and
    numbers encodes the same with ``urlencode`` alone, and no parameters are
    None. Other shapes are left to requests.
    """
    if not params:
        return None
    if type(params) is dict and all(type(k) is str and type(v) in (str, int, float)
                                    for k, v in params.items()):
        return urlencode(params)
    return params


def _timed_out(error: BaseException) -> bool:
    """Whether a read timeout is behind ``error``, however requests wrapped it."""
    from urllib3.exceptions import TimeoutError as PoolTimeout

    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (TimeoutError, PoolTimeout, requests.Timeout)):
            return True
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(e for e in (current.__cause__, current.__context__) if e)
    return False


def _reraise(error: Exception) -> requests.Response:
    raise error


def body_excerpt(response: requests.Response, limit: int = _BODY_EXCERPT) -> str:
    """The start of a response body, on one line and redacted."""
    try:
        text = response.text
    except Exception:  # a body that cannot be decoded is not worth failing over
        return ""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return redact_text(text)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error) or type(error).__name__


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _sends_credentials(handler: requests.auth.AuthBase) -> bool:
    return bool(getattr(handler, "sends_credentials", True))


def _require_https(url: str, handler: requests.auth.AuthBase, connector: str) -> None:
    if urlsplit(url).scheme != "https":
        name = getattr(handler, "name", type(handler).__name__)
        raise AuthError(
            "refusing to send credentials over plain HTTP to "
            f"{urlsplit(url).hostname}; "
            "use https:// (plain http is allowed only to loopback hosts)",
            connector=connector, method=name)


def _renew(handler: requests.auth.AuthBase, response: requests.Response) -> bool:
    renew = getattr(handler, "handle_401", None)
    return bool(renew(response)) if renew else False


def _rotate(handler: requests.auth.AuthBase, response: requests.Response) -> bool:
    rotate = getattr(handler, "handle_rate_limited", None)
    return bool(rotate(response)) if rotate else False


def _requested_wait(response: requests.Response) -> float | None:
    """Seconds the server asks us to wait, from Retry-After or reset headers."""
    value = response.headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    _, remaining, reset_at = _parse_rate_headers(response.headers)
    if remaining == 0 and reset_at is not None:
        return max(0.0, reset_at - time.time())
    return None


def _parse_rate_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None,
                                                             float | None]:
    """Limit, remaining and reset time from GitHub-style or IETF headers."""
    if _RATE_HEADERS.isdisjoint(map(str.lower, headers)):
        return None, None, None
    limit = _int(headers.get("X-RateLimit-Limit"))
    remaining = _int(headers.get("X-RateLimit-Remaining"))
    reset = _int(headers.get("X-RateLimit-Reset"))
    reset_at = float(reset) if reset is not None else None
    if reset_at is not None and reset_at < 10**9:
        reset_at = time.time() + reset_at
    ietf = headers.get("RateLimit")
    if ietf:
        fields = dict(re.findall(r"\b(limit|remaining|reset|r|t)=\"?(\d+)", ietf))
        remaining = _int(fields.get("remaining") or fields.get("r"), remaining)
        seconds = _int(fields.get("reset") or fields.get("t"))
        reset_at = time.time() + seconds if seconds is not None else reset_at
        limit = _int(fields.get("limit"), limit)
    if remaining is None:
        remaining = _int(headers.get("RateLimit-Remaining"))
        seconds = _int(headers.get("RateLimit-Reset"))
        reset_at = time.time() + seconds if seconds is not None else reset_at
        limit = _int(headers.get("RateLimit-Limit"), limit)
    if limit is None:
        policy = headers.get("RateLimit-Policy")
        match = re.search(r"(?:^|[;,\s])q=(\d+)", policy or "") or re.match(
            r"\s*(\d+)", policy or "")
        limit = int(match.group(1)) if match else None
    return limit, remaining, reset_at


def _int(value: str | None, default: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        return int(str(value).strip().split(",")[0])
    except ValueError:
        return default
