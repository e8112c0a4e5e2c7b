"""Paginators: how one page request leads to the next.

Every kind of the spec's ``pagination.kind`` is a :class:`Paginator`
subclass registered under that name. A paginator only computes requests; the
connector sends them, so paginators are tested without a server.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urljoin, urlsplit

from restconnect.decoding import search_path
from restconnect.exceptions import PaginationError
from restconnect.http import with_query_param
from restconnect.spec import PaginationSpec

__all__ = [
    "Page",
    "PageRequest",
    "Paginator",
    "available_paginators",
    "make_paginator",
    "reads_body",
    "register_paginator",
]

logger = logging.getLogger(__name__)


@dataclass
class PageRequest:
    """One page's request, before auth is applied."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> tuple[Any, ...]:
        """A value equal for requests that would fetch the same page."""
        parts = urlsplit(self.url)
        query = sorted(parse_qsl(parts.query, keep_blank_values=True))
        query += sorted((str(k), str(v)) for k, v in self.params.items()
                        if v is not None)
        body = repr(sorted(self.json.items())) if isinstance(self.json, dict) else repr(
            self.json)
        return self.method, parts.netloc, parts.path, tuple(sorted(query)), body

    def with_param(self, name: str, value: Any, location: str = "query") -> PageRequest:
        """A copy with one parameter set in the query string or the JSON body."""
        if location == "body":
            body = copy.deepcopy(self.json) if isinstance(self.json, dict) else {}
            body[name] = value
            return replace(self, json=body)
        params = dict(self.params)
        params[name] = value
        return replace(self, params=params)


@dataclass
class Page:
    """A fetched page.

    Attributes:
        index: 0 for the first page.
        request: what was asked.
        response: the ``requests.Response``.
        body: the decoded body.
        records: the records found in it.
        from_cache: whether the cache answered.
    """

    index: int
    request: PageRequest
    response: Any
    body: Any
    records: list[Any]
    from_cache: bool = False

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers if self.response is not None else {}


class Paginator:
    """Base class of paginators.

    Subclasses set ``kind`` and override :meth:`next`, and :meth:`plan` when
    the first page tells where every other page is.

    Example:
        >>> from restconnect.pagination import Paginator, register_paginator
        >>> @register_paginator
        ... class SkipTokenPaginator(Paginator):
        ...     kind = "skip_token"
        ...     def next(self, request, page):
        ...         token = page.body.get("skipToken")
        ...         return request.with_param("skipToken", token) if token else None
    """

    kind: ClassVar[str] = ""
    #: Whether :meth:`next` reads the page's body or records. A paginator
    #: that reads only the response's headers sets this False, and the next
    #: request then goes out before the page is decoded. A subclass that
    #: overrides :meth:`next` is taken to read the body unless it sets this
    #: itself (see :func:`reads_body`).
    reads_body: ClassVar[bool] = True

    def __init__(self, spec: PaginationSpec):
        self.spec = spec

    @property
    def size_param(self) -> str | None:
        """The parameter that sets the page size, if the API has one."""
        return self.spec.page_size_param or self.default_size_param()

    def first(self, request: PageRequest) -> PageRequest:
        """The first request, with the page size set unless the caller gave one."""
        size_param = self.size_param
        given = request.json if self.spec.location == "body" else request.params
        if self.spec.page_size and size_param and size_param not in (given or {}):
            request = request.with_param(size_param, self.spec.page_size,
                                         self.spec.location)
        return request

    def default_size_param(self) -> str | None:
        return None

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        """The request for the page after ``page``, or None at the end."""
        return None

    def plan(self, request: PageRequest, page: Page) -> list[PageRequest] | None:
        """Every remaining request, when the first page makes them addressable."""
        return None

    @property
    def chosen_kind(self) -> str:
        return self.kind


def reads_body(paginator: Paginator) -> bool:
    """Whether ``paginator.next()`` needs the decoded page, not just its headers.

    Only the class that defines ``next`` can say it does not, so a subclass
    of the Link-header paginator with its own ``next`` is asked for it with
    the whole page.
    """
    owner = next(cls for cls in type(paginator).__mro__ if "next" in vars(cls))
    return "reads_body" not in vars(owner) or bool(paginator.reads_body)


_registry: dict[str, type[Paginator]] = {}
P = TypeVar("P", bound=type[Paginator])


def register_paginator(cls: P) -> P:
    """Register a paginator class under its ``kind``; usable as a decorator."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    _registry[cls.kind] = cls
    return cls


def available_paginators() -> list[str]:
    return sorted(_registry)


def make_paginator(spec: PaginationSpec) -> Paginator:
    """A paginator for the spec's kind."""
    try:
        return _registry[spec.kind](spec)
    except KeyError:
        raise PaginationError(
            f"unknown pagination kind {spec.kind!r}; known: "
            f"{', '.join(available_paginators())}") from None


@register_paginator
class SinglePagePaginator(Paginator):
    """The endpoint answers with everything at once."""

    kind = "none"

    def first(self, request: PageRequest) -> PageRequest:
        # An endpoint that overrides the connector's pagination with 'none' would
        # otherwise inherit its page size and send e.g. per_page to a single object.
        return request


@register_paginator
class LinkHeaderPaginator(Paginator):
    """Follows ``Link: <...>; rel="next"`` (RFC 8288), as GitHub sends it.

    The next URL is followed verbatim: it already holds every parameter.
    """

    kind = "link_header"
    reads_body = False

    def default_size_param(self) -> str | None:
        return "per_page"

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        url = _link(page, "next")
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            url = urljoin(request.url, url)
        return PageRequest(request.method, url, {}, request.json, request.headers)

    def plan(self, request: PageRequest, page: Page) -> list[PageRequest] | None:
        next_url, last_url = _link(page, "next"), _link(page, "last")
        if not next_url or not last_url:
            return None
        param = self.spec.page_param
        next_query, last_query = _query(next_url), _query(last_url)
        start, last = _int_or_none(next_query.get(param)), _int_or_none(
            last_query.get(param))
        same_shape = {k: v for k, v in next_query.items() if k != param} == {
            k: v for k, v in last_query.items() if k != param}
        if start is None or last is None or not same_shape or last < start:
            return None
        return [PageRequest(request.method,
                            with_query_param(urljoin(request.url, next_url), param,
                                             str(number)),
                            {}, request.json, request.headers)
                for number in range(start, last + 1)]


@register_paginator
class NextURLPaginator(Paginator):
    """Follows a URL found in the body at ``next_url_path``."""

    kind = "next_url"

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        url = search_path(page.body, self.spec.next_url_path or "next")
        if not url or not isinstance(url, str):
            return None
        return PageRequest(request.method, urljoin(request.url, url), {}, request.json,
                           request.headers)


@register_paginator
class CursorPaginator(Paginator):
    """Sends back a cursor found in the body (``cursor_path``) as ``cursor_param``.

    Stops when the cursor is null or empty, when ``has_more_path`` is false, or
    on an empty page. Stripe's ``starting_after`` is ``cursor_path: data[-1].id``
    with ``has_more_path: has_more``.
    """

    kind = "cursor"

    def default_size_param(self) -> str | None:
        return "limit"

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        if self.spec.has_more_path is not None:
            if not search_path(page.body, self.spec.has_more_path):
                return None
        if not page.records and self.spec.stop_on_short_page:
            return None
        cursor = search_path(page.body, self.spec.cursor_path or "next_cursor")
        if cursor in (None, "", [], {}):
            return None
        return request.with_param(self.spec.cursor_param or "cursor", cursor,
                                  self.spec.location)


@register_paginator
class HeaderCursorPaginator(Paginator):
    """Sends back a cursor found in a response header."""

    kind = "header_cursor"

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        cursor = page.headers.get(self.spec.cursor_header or "X-Next-Cursor")
        if not cursor or (not page.records and self.spec.stop_on_short_page):
            return None
        return request.with_param(self.spec.cursor_param or "cursor", cursor,
                                  self.spec.location)


@register_paginator
class OffsetPaginator(Paginator):
    """``offset``/``limit`` pages; stops on a short page or at ``total``."""

    kind = "offset"

    def default_size_param(self) -> str | None:
        return self.spec.limit_param

    def first(self, request: PageRequest) -> PageRequest:
        request = super().first(request)
        return request.with_param(self.spec.offset_param, self.spec.start or 0,
                                  self.spec.location)

    def _offset(self, request: PageRequest) -> int:
        source = request.json if self.spec.location == "body" else request.params
        return int((source or {}).get(self.spec.offset_param, self.spec.start or 0))

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        count = len(page.records)
        offset = self._offset(request) + count
        total = _total(page, self.spec)
        if count == 0 or (total is not None and offset >= total):
            return None
        if total is None and self.spec.stop_on_short_page and self.spec.page_size:
            if count < self.spec.page_size:
                return None
        return request.with_param(self.spec.offset_param, offset, self.spec.location)

    def plan(self, request: PageRequest, page: Page) -> list[PageRequest] | None:
        total, size = _total(page, self.spec), len(page.records)
        if total is None or size == 0:
            return None
        start = self._offset(request) + size
        return [request.with_param(self.spec.offset_param, offset, self.spec.location)
                for offset in range(start, total, size)]


@register_paginator
class PageNumberPaginator(Paginator):
    """``page=1, 2, ...``; stops on an empty page or at the total page count."""

    kind = "page_number"

    def first(self, request: PageRequest) -> PageRequest:
        request = super().first(request)
        return request.with_param(self.spec.page_param, self._start(),
                                  self.spec.location)

    def _start(self) -> int:
        return 1 if self.spec.start is None else self.spec.start

    def _number(self, request: PageRequest) -> int:
        source = request.json if self.spec.location == "body" else request.params
        return int((source or {}).get(self.spec.page_param, self._start()))

    def _last(self, page: Page) -> int | None:
        """The last page number, if the response tells it."""
        if self.spec.total_pages_path:
            pages = _int_or_none(search_path(page.body, self.spec.total_pages_path))
            if pages is not None:
                return self._start() + pages - 1
        total = _total(page, self.spec)
        size = self.spec.page_size or len(page.records)
        if total is not None and size:
            return self._start() + math.ceil(total / size) - 1
        return None

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        number = self._number(request)
        last = self._last(page)
        if not page.records or (last is not None and number >= last):
            return None
        if last is None and self.spec.stop_on_short_page and self.spec.page_size:
            if len(page.records) < self.spec.page_size:
                return None
        return request.with_param(self.spec.page_param, number + 1, self.spec.location)

    def plan(self, request: PageRequest, page: Page) -> list[PageRequest] | None:
        last = self._last(page)
        if last is None or not page.records:
            return None
        number = self._number(request)
        return [request.with_param(self.spec.page_param, n, self.spec.location)
                for n in range(number + 1, last + 1)]


_NEXT_URL_PATHS = ("next", "next_url", "nextUrl", "links.next", "_links.next.href",
                   '"@odata.nextLink"', "paging.next", "meta.next")
_CURSOR_PATHS = {"next_cursor": "cursor", "nextCursor": "cursor",
                 "next_page_token": "page_token", "nextPageToken": "pageToken",
                 "meta.next_cursor": "cursor",
                 "response_metadata.next_cursor": "cursor"}


@register_paginator
class AutoPaginator(Paginator):
    """Detects the kind from the first response and logs its choice.

    It recognises a ``Link`` header, a next URL in the body, a next cursor
    field, Stripe's ``has_more``, and offset or page totals.
    """

    kind = "auto"

    def __init__(self, spec: PaginationSpec):
        super().__init__(spec)
        self._chosen: Paginator | None = None

    @property
    def chosen_kind(self) -> str:
        return self._chosen.kind if self._chosen else "auto"

    @property  # type: ignore[override]
    def reads_body(self) -> bool:
        return self._chosen is None or self._chosen.reads_body

    def next(self, request: PageRequest, page: Page) -> PageRequest | None:
        if self._chosen is None:
            self._chosen = self._detect(request, page)
        return self._chosen.next(request, page)

    def plan(self, request: PageRequest, page: Page) -> list[PageRequest] | None:
        if self._chosen is None:
            self._chosen = self._detect(request, page)
        return self._chosen.plan(request, page)

    def _detect(self, request: PageRequest, page: Page) -> Paginator:
        kind, changes = _detect_kind(request, page)
        logger.warning("pagination kind 'auto' chose %r for %s; set it in the spec "
                       "to silence this", kind, urlsplit(request.url).path)
        settings = self.spec.model_dump()
        settings.update(changes, kind=kind)
        return make_paginator(PaginationSpec.model_validate(settings))


def _detect_kind(request: PageRequest, page: Page) -> tuple[str, dict[str, Any]]:
    if _link(page, "next"):
        return "link_header", {}
    body = page.body if isinstance(page.body, dict) else {}
    for path in _NEXT_URL_PATHS:
        value = search_path(body, path)
        if isinstance(value, str) and value.startswith(("http", "/", "?")):
            return "next_url", {"next_url_path": path}
    for path, param in _CURSOR_PATHS.items():
        if search_path(body, path):
            return "cursor", {"cursor_path": path, "cursor_param": param}
    if "has_more" in body and isinstance(body.get("data"), list):
        return "cursor", {"cursor_path": "data[-1].id",
                          "cursor_param": "starting_after",
                          "has_more_path": "has_more"}
    for key in ("total", "total_count", "count", "totalResults"):
        if isinstance(body.get(key), int):
            if "offset" in request.params or "offset" in body:
                return "offset", {"total_path": key}
            return "page_number", {"total_path": key}
    return "none", {}


def _link(page: Page, rel: str) -> str | None:
    response = page.response
    if response is None:
        return None
    links = getattr(response, "links", None) or {}
    entry = links.get(rel)
    return entry.get("url") if entry else None


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _total(page: Page, spec: PaginationSpec) -> int | None:
    if spec.total_path:
        return _int_or_none(search_path(page.body, spec.total_path))
    if spec.total_header:
        return _int_or_none(page.headers.get(spec.total_header))
    return None


class RepeatGuard:
    """Raises ``PaginationError`` when a page request repeats an earlier one."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self._seen: dict[tuple[Any, ...], int] = {}

    def check(self, request: PageRequest, index: int,
              describe: Callable[[str], str] = str) -> None:
        key = request.fingerprint()
        if key in self._seen:
            raise PaginationError(
                f"{self.endpoint}: the request for page {index + 1} repeats page "
                f"{self._seen[key] + 1} ({describe(request.url)}); the API returned "
                "the "
                "same next link or cursor, so pagination stopped instead of looping")
        self._seen[key] = index
