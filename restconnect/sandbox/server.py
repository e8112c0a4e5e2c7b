"""The sandbox's request pipeline and its HTTP/1.1 server.

Each API request passes, in order: latency, failure injection, auth, the
quota check, the route, conditional-request handling (``ETag``,
``Last-Modified``, 304) and the rate-limit headers. The server is the
standard library's ``ThreadingHTTPServer`` with keep-alive; responses are
written with a single ``write`` call.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from restconnect.sandbox.admin import admin_routes
from restconnect.sandbox.code import code_routes
from restconnect.sandbox.credentials import Keyring, Principal
from restconnect.sandbox.data import Dataset
from restconnect.sandbox.limits import (
    Failure,
    FailureInjector,
    RateLimiter,
    Stats,
    parse_failure,
)
from restconnect.sandbox.oauth import token_routes
from restconnect.sandbox.pay import pay_routes
from restconnect.sandbox.routing import ApiError, Request, Response, Router
from restconnect.sandbox.settings import Settings

__all__ = ["App", "SandboxHTTPServer"]

logger = logging.getLogger(__name__)

MAX_BODY = 10 * 1024 * 1024
ANONYMOUS_QUOTA = 60
_VARY = "Accept, Authorization, Cookie, X-API-Key"
_PAY_TYPES = {401: "authentication_error", 403: "authentication_error",
              429: "rate_limit_error"}


class App:
    """Everything a request needs, independent of the socket layer.

    Attributes:
        data: the generated records.
        settings: the live settings.
        keyring: credentials and tokens.
        stats, limiter, injector: counts, quotas and injected failures.
        router: every route, admin ones first.
    """

    def __init__(self, data: Dataset, settings: Settings, keyring: Keyring):
        self.data = data
        self.settings = settings
        self.keyring = keyring
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.injector = FailureInjector()
        self.router = Router()
        for part in (admin_routes(self), token_routes(keyring, self.stats),
                     code_routes(data, settings), pay_routes(data, settings)):
            self.router.extend(part)

    def reset(self, *, data: bool = False) -> None:
        """Zero statistics, quotas and failure counters; optionally the records."""
        self.stats.reset()
        self.limiter.reset()
        self.injector.reset()
        if data:
            self.data.restore()

    def handle(self, req: Request) -> Response | None:
        """Answer one request; None means: drop the connection unanswered."""
        try:
            route, req.params = self.router.find(req.method, req.path)
        except ApiError as exc:
            service = _service_of(req.path)
            response = self._error(exc, service)
            if service != "admin":
                self._record(req, "(unmatched)", response)
            return response
        if route.service == "admin":
            return self._call(route.handler, req, "admin")
        response = self._serve(route.service, route.handler, req)
        if response is not None:
            self._record(req, route.pattern, response)
        return response

    def _serve(self, service: str, handler: Any, req: Request) -> Response | None:
        if self.settings.latency:
            time.sleep(self.settings.latency)
        try:
            failure = self._failure(req)
        except ApiError as exc:
            return self._error(exc, service)
        if failure is not None and failure.status != 200:
            return None if failure.status == 0 else self._injected(failure, service)
        if service not in ("code", "pay"):
            return self._call(handler, req, service)
        return self._serve_api(service, handler, req)

    def _serve_api(self, service: str, handler: Any, req: Request) -> Response:
        principal: Principal | None = None
        try:
            principal = self._authenticate(service, req)
            req.principal = principal
            self._check_quota(principal)
        except ApiError as exc:
            response = self._error(exc, service)
        else:
            response = _conditional(req, self._call(handler, req, service))
        self._spend(principal, response)
        return response

    def _call(self, handler: Any, req: Request, service: str) -> Response:
        try:
            return handler(req)
        except ApiError as exc:
            return self._error(exc, service)

    # ------------------------------------------------------------- steps

    def _failure(self, req: Request) -> Failure | None:
        spec = req.query.get("_fail") or req.header("X-Sandbox-Fail")
        if not spec:
            return None
        try:
            failure = parse_failure(spec)
        except ValueError as exc:
            raise ApiError(400, f"bad failure spec: {exc}",
                           code="bad_failure") from None
        if not self.injector.should_fail(failure, req.method, req.path):
            return None
        if failure.delay:
            time.sleep(failure.delay)
        return failure

    def _injected(self, failure: Failure, service: str) -> Response:
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = failure.retry_after
        message = ("API rate limit exceeded (injected)" if failure.status == 429
                   else f"injected failure {failure.status}")
        response = self._error(ApiError(failure.status, message, code="injected",
                                        headers=headers), service)
        if failure.status == 429 and failure.retry_after is not None:
            wait = _retry_seconds(failure.retry_after)
            response.headers.update({
                "X-RateLimit-Limit": str(self.settings.quota),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(time.time() + wait))})
        return response

    def _authenticate(self, service: str, req: Request) -> Principal | None:
        allowed = self.settings.methods_for(req.path)
        principal = self.keyring.authenticate(req, allowed)
        scope = f"{service}:read"
        if principal is not None and principal.scopes is not None and (
                scope not in principal.scopes):
            raise ApiError(403, f"the token lacks the {scope} scope",
                           code="insufficient_scope",
                           headers={"WWW-Authenticate": f'Bearer realm="sandbox", '
                                    f'error="insufficient_scope", scope="{scope}"'})
        return principal

    def _quota(self, principal: Principal | None) -> tuple[str, int, float]:
        settings = self.settings
        if principal is None:
            return "anonymous", ANONYMOUS_QUOTA, settings.quota_window
        if principal.rotating:
            return principal.bucket, settings.rotating_quota, settings.rotating_window
        return principal.bucket, settings.quota, settings.quota_window

    def _check_quota(self, principal: Principal | None) -> None:
        allowed, bucket = self.limiter.take(*self._quota(principal), spend=False)
        if not allowed:
            wait = max(math.ceil(bucket.reset_at - time.time()), 1)
            headers = bucket.headers(time.time())
            headers["Retry-After"] = str(wait)
            raise ApiError(429, "API rate limit exceeded for this credential",
                           code="rate_limited", headers=headers)

    def _spend(self, principal: Principal | None, response: Response) -> None:
        if response.status == 429 and "X-RateLimit-Limit" in response.headers:
            return
        spend = principal is not None and response.status != 304
        _, bucket = self.limiter.take(*self._quota(principal), spend=spend)
        response.headers.update(bucket.headers(time.time()))

    def _record(self, req: Request, pattern: str, response: Response) -> None:
        principal = req.principal
        self.stats.record(req.method, req.path, pattern, response.status, req.pairs,
                          principal.method if principal else None,
                          principal.login if principal else None)

    def _error(self, exc: ApiError, service: str) -> Response:
        return Response(status=exc.status, body=_error_body(exc, service),
                        headers=dict(exc.headers), cacheable=False)


def _service_of(path: str) -> str:
    first = path.strip("/").split("/", 1)[0]
    return {"code": "code", "pay": "pay", "oauth": "auth",
            "auth": "auth"}.get(first, "admin")


def _error_body(exc: ApiError, service: str) -> bytes:
    if service == "code":
        return orjson.dumps({"message": exc.message, "status": str(exc.status),
                             "documentation_url":
                             f"https://docs.sandbox.invalid/code#{exc.code}"})
    if service == "pay":
        kind = _PAY_TYPES.get(exc.status, "api_error" if exc.status >= 500
                              else "invalid_request_error")
        return orjson.dumps({"error": {"type": kind, "code": exc.code,
                                       "message": exc.message}})
    if service == "auth":
        return orjson.dumps({"error": exc.code or "invalid_request",
                             "error_description": exc.message})
    return orjson.dumps({"error": exc.code, "message": exc.message})


def _retry_seconds(value: str) -> float:
    if value.isdigit():
        return float(value)
    return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)


def _conditional(req: Request, response: Response) -> Response:
    """Add validators to a cacheable GET answer; 304 when the client's match."""
    if req.method not in ("GET", "HEAD") or response.status != 200 or (
            not response.cacheable):
        return response
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:40] + '"'
    validators = {"ETag": etag, "Cache-Control": "private, max-age=60", "Vary": _VARY}
    if response.last_modified is not None:
        validators["Last-Modified"] = formatdate(int(response.last_modified),
                                                 usegmt=True)
    response.headers.update(validators)
    if _not_modified(req, etag, response.last_modified):
        return Response(status=304, headers=validators, cacheable=False)
    return response


def _not_modified(req: Request, etag: str, last_modified: float | None) -> bool:
    wanted = req.header("If-None-Match")
    if wanted is not None:
        # RFC 9110 section 13.1.2: If-None-Match uses the weak comparison.
        tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
        return "*" in tags or etag in tags
    since = req.header("If-Modified-Since")
    if since is None or last_modified is None:
        return False
    try:
        return int(last_modified) <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "restconnect-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        try:
            body = self._read_body()
        except ApiError as exc:
            self.close_connection = True
            self._write(Response(status=exc.status, body=_error_body(exc, "admin")))
            return
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        req = Request(method=self.command, raw_path=raw_path or "/",
                      raw_query=raw_query, headers=dict(self.headers.items()),
                      body=body, base_url=f"http://{host}")
        response = self.server.app.handle(req)
        if response is None:
            self._drop()
            return
        self._write(response)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "the request body is too large", code="too_large")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise ApiError(413, "the request body is too large", code="too_large")
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: Response) -> None:
        status = response.status
        lines = [f"HTTP/1.1 {status} {_reason(status)}",
                 f"Server: {self.server_version}",
                 f"Date: {formatdate(usegmt=True)}"]
        if status != 304:
            lines.append(f"Content-Type: {response.content_type}")
            lines.append(f"Content-Length: {len(response.body)}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        send_body = status != 304 and self.command != "HEAD"
        self.wfile.write(head + response.body if send_body else head)
        logger.debug("%s %s -> %s", self.command, self.path.partition("?")[0], status)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox: " + format, *args)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can close its open keep-alive connections."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App):
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._open_lock:
            if add:
                self._open.add(connection)
            else:
                self._open.discard(connection)

    def close_connections(self) -> None:
        """Shut every open client connection, so no thread serves after stop."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
