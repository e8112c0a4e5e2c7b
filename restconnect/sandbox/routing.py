"""Requests, responses and the route table of the sandbox server.

The HTTP handler turns each incoming request into a :class:`Request`, finds
the :class:`Route` whose pattern matches, and writes the :class:`Response`
the route returns. Routes raise :class:`ApiError` for anything that should
become an error status.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

__all__ = [
    "ApiError",
    "Request",
    "Response",
    "Route",
    "Router",
    "json_response",
]


class ApiError(Exception):
    """An error the sandbox answers with, in the style of the service hit.

    Attributes:
        status: the HTTP status.
        message: the human-readable text.
        code: a short machine-readable code (OAuth ``error`` values and such).
        headers: extra response headers, such as ``WWW-Authenticate``.
    """

    def __init__(self, status: int, message: str, *, code: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass
class Request:
    """One parsed request, as routes see it.

    Attributes:
        method: the upper-case method.
        raw_path: the path as sent on the request line, without the query.
        path: ``raw_path`` percent-decoded.
        raw_query: the query string as sent.
        headers: the request headers (case-insensitive lookups via ``header``).
        body: the raw body bytes.
        base_url: ``http://<Host>``, for absolute links in responses.
        params: path placeholders filled by the matching route.
        principal: who the auth layer says is calling, or None.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    base_url: str
    params: dict[str, str] = field(default_factory=dict)
    principal: Any = None

    def __post_init__(self) -> None:
        self.path = unquote(self.raw_path)
        self.pairs = parse_qsl(self.raw_query, keep_blank_values=True)
        self.query = dict(self.pairs)
        self._lower = {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header by case-insensitive name."""
        return self._lower.get(name.lower(), default)

    def json(self) -> dict[str, Any]:
        """The body parsed as a JSON object; an empty body gives ``{}``."""
        if not self.body.strip():
            return {}
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the request body is not valid JSON",
                           code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object",
                           code="invalid_json")
        return data

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        kind = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise ApiError(400, "the body must be application/x-www-form-urlencoded",
                           code="invalid_request")
        return dict(parse_qsl(self.body.decode("utf-8", "replace"),
                              keep_blank_values=True))

    def int_param(self, name: str, default: int, *, low: int = 0,
                  high: int | None = None) -> int:
        """An integer query parameter, clamped to ``high``; bad text is a 400."""
        text = self.query.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, f"{name} must be an integer, got {text!r}",
                           code="invalid_parameter") from None
        if value < low:
            raise ApiError(400, f"{name} must be at least {low}",
                           code="invalid_parameter")
        return min(value, high) if high is not None else value


@dataclass
class Response:
    """What a route answers.

    Attributes:
        status: the HTTP status.
        body: the encoded body.
        content_type: the ``Content-Type`` header.
        headers: more headers (``Link``, cursors, ...).
        last_modified: epoch seconds for ``Last-Modified``, or None.
        cacheable: whether ``ETag`` and conditional requests apply.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: float | None = None
    cacheable: bool = True


def json_response(data: Any, status: int = 200, **kwargs: Any) -> Response:
    """A response whose body is ``data`` serialised with orjson."""
    return Response(status=status, body=orjson.dumps(data), **kwargs)


Handler = Callable[[Request], Response]


@dataclass
class Route:
    """One endpoint.

    Attributes:
        method: the HTTP method matched.
        pattern: the path with ``{name}`` placeholders.
        handler: the function answering.
        service: ``code``, ``pay``, ``auth`` or ``admin``: decides auth,
            error style and rate limiting.
        description: one line for the index page and the docs.
    """

    method: str
    pattern: str
    handler: Handler
    service: str
    description: str = ""

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        self._regex = re.compile(f"^{regex}$")

    def match(self, path: str) -> dict[str, str] | None:
        found = self._regex.match(path)
        return found.groupdict() if found else None


class Router:
    """An ordered list of routes; the first match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, service: str,
            description: str = "") -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of a route."""
        def decorate(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler, service, description))
            return handler
        return decorate

    def extend(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request.

        Raises:
            ApiError: 404 when no pattern matches, 405 when only the method differs.
        """
        allowed = []
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            allowed.append(route.method)
        if allowed:
            raise ApiError(405, f"method {method} is not allowed here",
                           code="method_not_allowed",
                           headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise ApiError(404, "Not Found", code="not_found")
