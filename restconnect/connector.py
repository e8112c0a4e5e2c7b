"""``connect()`` and the :class:`Connector` it returns."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from restconnect.auth import get_auth_method
from restconnect.auth.base import AuthContext, AuthMethod
from restconnect.catalog import resolve_spec
from restconnect.credentials import field_requests, resolve_credentials
from restconnect.decoding import decode_body, extract_records, paused_gc, search_path
from restconnect.exceptions import (
    CredentialsMissing,
    HTTPStatusError,
    PaginationError,
    ResponseError,
    RestConnectError,
    SpecError,
)
from restconnect.frames import FrameBuilder, FrameOptions
from restconnect.http import HttpClient, PendingResponse
from restconnect.pagination import (
    Page,
    PageRequest,
    RepeatGuard,
    make_paginator,
    reads_body,
)
from restconnect.redact import redact_params, redact_url, register_secret
from restconnect.secret import Secret
from restconnect.spec import (
    ConnectorSpec,
    EndpointSpec,
    PaginationSpec,
    checked_base_url,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Connector", "FetchResult", "connect"]

logger = logging.getLogger(__name__)

# The upper end of the range docs/spec.md gives for every ``concurrency``.
MAX_CONCURRENCY = 64


def connect(name_or_path: str | ConnectorSpec, *, base_url: str | None = None,
            ca_bundle: str | None = None, interactive: bool | None = None,
            concurrency: int | None = None, session: requests.Session | None = None,
            cache: bool | str | None = None, record: str | None = None,
            replay: str | None = None, progress: bool | None = None,
            **credentials: Any) -> Connector:
    """Open a connector by name (bundled or user spec) or by a spec file path.

    Args:
        name_or_path: ``"github"``, ``"./my_api.yaml"`` or a loaded spec.
        base_url: overrides the spec's base URL (a test server, a proxy).
        ca_bundle: a CA file that wins over ``REQUESTS_CA_BUNDLE``.
        interactive: whether missing credentials may be asked for; by
            default, only in a notebook or on a terminal.
        concurrency: parallel page requests when pages are addressable
            (1 turns it off); the spec's ``concurrency`` by default.
        cache: True (default), False, or a folder for the response cache;
            off by default while recording or replaying (see caching.md).
        record: a folder; every exchange is written to ``<name>.jsonl`` there.
        replay: a folder of recorded cassettes served with no network.
        progress: a progress bar while fetching (None: only in a notebook or on
            a terminal; False: never).
        **credentials: credential fields by name, such as ``token="..."``.

    Example:
        >>> conn = connect("github", token="ghp_...")          # doctest: +SKIP
        >>> conn.fetch("repos", user="octocat").shape           # doctest: +SKIP
    """
    spec = resolve_spec(name_or_path)
    return Connector(spec, progress=progress, base_url=base_url, ca_bundle=ca_bundle,
                     interactive=interactive, concurrency=concurrency,
                     session=session, credentials=credentials, cache=cache,
                     record=record, replay=replay)


class FetchResult:
    """What a fetch did, kept in ``df.attrs["restconnect"]``."""

    def __init__(self, connector: str, endpoint: str, params: Mapping[str, Any]):
        self.connector = connector
        self.endpoint = endpoint
        self.params = redact_params(params)
        self.pages = 0
        self.records = 0
        self.pages_from_cache = 0
        self.truncated = False
        self.truncated_reason: str | None = None
        self.pagination: str | None = None
        self.fetched_at = _now()

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Connector:
    """A REST API described by a spec, with its credentials and one HTTP session.

    Example:
        >>> from restconnect import connect
        >>> conn = connect("sandbox", base_url=url, token=token)  # doctest: +SKIP
        >>> conn.fetch("repos").head()                             # doctest: +SKIP
    """

    def __init__(self, spec: ConnectorSpec, *,
                 credentials: Mapping[str, Any] | None = None,
                 progress: bool | None = None,
                 base_url: str | None = None, ca_bundle: str | None = None,
                 interactive: bool | None = None, concurrency: int | None = None,
                 session: requests.Session | None = None,
                 cache: bool | str | None = None, record: str | None = None,
                 replay: str | None = None):
        _check_concurrency(concurrency)
        self.spec = spec
        self.name = spec.name
        self.base_url = (checked_base_url(base_url, spec.source) if base_url
                         else spec.resolved_base_url())
        self.concurrency = concurrency or spec.concurrency
        self.interactive = interactive
        self.last_result: FetchResult | None = None
        self.http = HttpClient(connector=self.name, timeout=spec.timeout,
                               retry=spec.retry, rate_limit=spec.rate_limit,
                               headers=spec.headers, ca_bundle=ca_bundle,
                               pool_size=max(10, self.concurrency), session=session)
        self.progress = progress
        self.form: Any = None
        self._identity: Any = None
        self._given = self._hold(credentials or {})
        self._install_auth(self._first_auth(interactive))
        self._offer_sign_in(interactive)
        self._attach_cache(cache, record, replay)

    # ------------------------------------------------------------ setup

    def _build_auth(self, given: dict[str, Any], interactive: bool | None
                    ) -> list[AuthMethod]:
        entries = self.spec.auth_entries
        unknown = set(given) - set(self.credential_fields())
        if unknown:
            raise TypeError(
                f"connect() got unexpected arguments {sorted(unknown)} for "
                f"{self.name!r}; its credential fields are: "
                f"{', '.join(self.credential_fields()) or 'none'}")
        handlers = []
        for entry in entries:
            method = get_auth_method(entry.method)
            field_names = {f.name for f in method.fields}
            values = resolve_credentials(self.name, field_requests(entry), given,
                                         interactive=interactive)
            options = method.Options.model_validate(
                {k: v for k, v in entry.options().items() if k not in field_names})
            context = AuthContext(connector=self.name, base_url=self.base_url,
                                  http=self.http, interactive=bool(interactive))
            handlers.append(method(options, values, context))
        for handler in handlers:
            for secret in handler.secrets():
                register_secret(secret)
        return handlers

    def _hold(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The given credentials, each secret field's value wrapped in a ``Secret``."""
        secret = {f.name for e in self.spec.auth_entries
                  for f in get_auth_method(e.method).fields if f.secret}
        held = dict(given)
        for name, value in given.items():
            if name in secret and value is not None and not isinstance(value, Secret):
                held[name] = Secret(str(value))
        return held

    def _attach_cache(self, cache: bool | str | None, record: str | None,
                      replay: str | None) -> None:
        """Set up the response cache and the record/replay adapters."""
        from restconnect.cache import build_cache
        from restconnect.cassette import mount_cassette

        if cache is None:
            cache = record is None and replay is None
        self.http.cache = build_cache(self, cache)
        if record is not None or replay is not None:
            mount_cassette(self, record=record, replay=replay)

    def _cache_policy(self, spec: EndpointSpec, cache: Any) -> Any:
        from restconnect.cache import resolve_policy

        return resolve_policy(cache, self.spec, spec)

    def _first_auth(self, interactive: bool | None) -> list[AuthMethod]:
        """The handlers, or a placeholder while a notebook form asks for credentials."""
        try:
            return self._build_auth(self._given, interactive)
        except CredentialsMissing as exc:
            from restconnect.jupyter import offer_form

            return offer_form(self, exc, self._given, interactive)

    def _install_auth(self, handlers: list[AuthMethod]) -> None:
        self.auth = handlers
        self.http.auth = handlers
        for handler in handlers:
            handler.prepare_session(self.http.session)
            self.http.redact_params += getattr(handler, "query_param_names", list)()

    def _offer_sign_in(self, interactive: bool | None) -> None:
        """In a notebook, show sign-in buttons for an OAuth method still waiting."""
        if any(hasattr(handler, "begin_device") for handler in self.auth):
            from restconnect.jupyter import offer_sign_in

            offer_sign_in(self, interactive)

    def sign_in(self, **credentials: Any) -> Any:
        """Set credentials after ``connect()``, run the check, return the identity.

        The notebook form calls this. If the credentials are refused, the
        previous handlers stay and the error is raised; ``CredentialsMissing``
        (an OAuth method that still needs a person to sign in) keeps the new ones.
        """
        previous = self.auth
        given = {**self._given, **self._hold(credentials)}
        self._install_auth(self._build_auth(given, interactive=False))
        try:
            identity = self.after_sign_in()
        except CredentialsMissing:
            self._given = given
            raise
        except RestConnectError:
            self._install_auth(previous)
            raise
        self._given = given
        return identity

    def after_sign_in(self) -> Any:
        """Run the spec's check (if any) and return who the credentials belong to."""
        if self.spec.check is not None:
            return self.check()["identity"]
        return self.identity

    @property
    def identity(self) -> Any:
        """Who is signed in: a method's verified identity (OIDC), else the check's."""
        for handler in self.auth:
            method = getattr(handler, "identity", None)
            found = method() if callable(method) else None
            if found:
                return found
        return self._identity

    def explain(self) -> Any:
        """What is going on: auth, identity, token expiry, quota, cache (no secrets)."""
        from restconnect.explain import explain

        return explain(self)

    def _repr_html_(self) -> str:
        from restconnect.display import connector_html

        return connector_html(self)

    def credential_fields(self) -> list[str]:
        """Names of every credential field this connector's auth uses."""
        return credential_fields(self.spec)

    # ------------------------------------------------------------ describing

    @property
    def endpoints(self) -> dict[str, EndpointSpec]:
        return self.spec.endpoints

    def endpoint(self, name: str) -> EndpointSpec:
        """The spec of one endpoint; the error lists the known ones."""
        try:
            return self.spec.endpoints[name]
        except KeyError:
            raise SpecError(f"no endpoint {name!r}; known endpoints: "
                            f"{', '.join(self.spec.endpoints)}",
                            source=self.name) from None

    def __repr__(self) -> str:
        methods = "+".join(e.method for e in self.spec.auth_entries) or "none"
        return (f"<Connector {self.name!r} {redact_url(self.base_url)} auth={methods} "
                f"endpoints={len(self.spec.endpoints)}>")

    def close(self) -> None:
        """Close the HTTP session and let handlers drop what they hold (temp keys)."""
        self.http.close()
        for handler in self.auth:
            close = getattr(handler, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ raw access

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                headers: Mapping[str, str] | None = None, endpoint: str | None = None,
                cache: Any = None, accept_statuses: tuple[int, ...] = ()
                ) -> requests.Response:
        """Send one request to ``base_url + path`` with auth and every HTTP rule."""
        url = path if re.match(r"^https?://", path) else (
            f"{self.base_url}/{path.lstrip('/')}")
        merged = {**self.spec.params, **(params or {})}
        return self.http.request(method, url, params=merged or None, json=json,
                                 headers=headers, endpoint=endpoint, cache=cache,
                                 accept_statuses=accept_statuses)

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            **kwargs: Any) -> Any:
        """GET a path and return the decoded body (the raw escape hatch)."""
        response = self.request("GET", path, params=params, **kwargs)
        return decode_body(response.content, response.headers.get("Content-Type", ""),
                           where=f"{self.name} GET {path}")

    def check(self) -> dict[str, Any]:
        """Run the spec's ``check`` request: ``{"ok": True, "identity": ...}``."""
        if self.spec.check is None:
            raise SpecError("this connector has no 'check' request", source=self.name,
                            path="check")
        body = self.get(self.spec.check.path)
        path = self.spec.check.identity
        identity = search_path(body, path) if path else None
        self._identity = identity
        return {"ok": True, "identity": identity}

    # ------------------------------------------------------------ fetching

    def fetch(self, endpoint: str, *, limit: int | None = None,
              max_pages: int | None = None, explode: str | None = None,
              cache: Any = None, concurrency: int | None = None,
              progress: bool | None = None, incremental: bool = False,
              commit: bool = True, params: Mapping[str, Any] | None = None,
              **more_params: Any) -> pd.DataFrame:
        """Fetch every page of an endpoint into one DataFrame.

        Args:
            endpoint: the endpoint name in the spec.
            limit: stop after this many records.
            max_pages: stop after this many pages.
            explode: a list column to turn into one row per element.
            cache: ``False``, ``"refresh"`` or a TTL in seconds for this fetch.
            concurrency: parallel page requests (1 turns it off).
            progress: a progress bar (None: the connector's setting, which
                shows one only in a notebook or on a terminal).
            incremental: only rows new or changed since the saved state.
            commit: with ``incremental``, save the new state on return; with
                False, call ``conn.commit(df)`` once the output is written.
            params: API parameters as a mapping, for names that clash with
                the keywords above (an API's own ``limit``).
            **more_params: path placeholders first; the rest go to the query
                string.

        Returns:
            The records, with ``df.attrs["restconnect"]`` describing the fetch.
        """
        params = merge_params("fetch", params, more_params)
        _check_bounds(limit, max_pages)
        _check_concurrency(concurrency)
        if incremental:
            from restconnect.state import fetch_incremental

            return fetch_incremental(self, endpoint, commit=commit, limit=limit,
                                     max_pages=max_pages, explode=explode, cache=cache,
                                     concurrency=concurrency, params=params)
        spec = self.endpoint(endpoint)
        if spec.parent is not None and not all(n in params for n in spec.parent.params):
            return self._fetch_with_parent(endpoint, params, limit=limit,
                                           max_pages=max_pages, cache=cache,
                                           concurrency=concurrency)
        snapshot = self._snapshot(endpoint, spec, params, cache, limit, max_pages,
                                  explode)
        if snapshot.frame is not None:
            return snapshot.frame
        builder = FrameBuilder(FrameOptions(dtypes=spec.dtypes,
                                            datetimes=spec.datetimes,
                                            columns=spec.columns, explode=explode,
                                            source=f"{self.name}.{endpoint}"))
        result = FetchResult(self.name, endpoint, params)
        bar = self._progress_bar(endpoint, spec, limit, progress)
        with paused_gc():  # pages make many short-lived containers, none cyclic
            for page in self._pages(endpoint, spec, params, result, limit=limit,
                                    max_pages=max_pages, cache=cache,
                                    concurrency=concurrency, read_ahead=True):
                builder.add_page(page.records)
                bar.page(page)
            bar.close()
            frame = builder.finish()
        frame.attrs["restconnect"] = result.as_dict()
        snapshot.save(frame)
        return frame

    def _fetch_with_parent(self, endpoint: str, params: dict[str, Any], *,
                           limit: int | None, max_pages: int | None, cache: Any,
                           concurrency: int | None) -> pd.DataFrame:
        """The parent rows, then the children (see ``lookups.fetch_children``)."""
        from restconnect.lookups import fetch_children

        return fetch_children(self, endpoint, limit=limit, max_pages=max_pages,
                              cache=cache, workers=concurrency, params=params)

    def _snapshot(self, endpoint: str, spec: EndpointSpec, params: Mapping[str, Any],
                  cache: Any, *options: Any) -> Any:
        """The cached whole frame of this fetch, if fresh (see caching.md)."""
        from restconnect.cache import FrameSnapshot

        return FrameSnapshot.open(self, endpoint, spec, params, options, cache)

    def commit(self, frame: pd.DataFrame) -> None:
        """Save the incremental state of a ``fetch(..., commit=False)`` frame."""
        from restconnect.state import commit

        commit(frame)

    def job(self, endpoint: str, *, output: Any, incremental: bool = False,
            **options: Any) -> Any:
        """An extract job of this endpoint, to run now or ``save()`` for a scheduler.

        Example:
            >>> job = conn.job("issues", incremental=True, output="issues.parquet")
            >>> job.save("issues.job.yaml")                        # doctest: +SKIP
        """
        from restconnect.jobs import Job

        return Job.from_connector(self, endpoint, output=output,
                                  incremental=incremental, **options)

    def iter_pages(self, endpoint: str, *, limit: int | None = None,
                   max_pages: int | None = None, cache: Any = None,
                   concurrency: int | None = None, read_ahead: bool = False,
                   params: Mapping[str, Any] | None = None,
                   **more_params: Any) -> Iterator[Page]:
        """Yield each page as it arrives (``page.records`` holds its records).

        Each page is requested when the loop asks for it. With
        ``read_ahead``, the next page of a Link-header endpoint is requested
        as soon as a page arrives, before it is decoded and handed over: for
        loops that spend little time on a page and always read to the end.
        """
        params = merge_params("iter_pages", params, more_params)
        _check_bounds(limit, max_pages)
        _check_concurrency(concurrency)
        spec = self.endpoint(endpoint)
        result = FetchResult(self.name, endpoint, params)
        yield from self._pages(endpoint, spec, params, result, limit=limit,
                               max_pages=max_pages, cache=cache,
                               concurrency=concurrency, read_ahead=read_ahead)

    def iter_records(self, endpoint: str, **kwargs: Any) -> Iterator[Any]:
        """Yield records one at a time, fetching pages as needed."""
        for page in self.iter_pages(endpoint, **kwargs):
            yield from page.records

    def build_request(self, endpoint: str, params: Mapping[str, Any]) -> PageRequest:
        """The first request of an endpoint for the given parameters."""
        spec = self.endpoint(endpoint)
        path_values, rest = _split_params(self.name, endpoint, spec, params)
        encoded = {k: quote(str(v), safe="") for k, v in path_values.items()}
        path = spec.path.format(**encoded)
        query = {**self.spec.params, **spec.params}
        body = dict(spec.body) if spec.body is not None else None
        if body is not None and spec.method != "GET":
            body.update(rest)
        else:
            query.update(rest)
        query = {k: _param_value(v) for k, v in query.items() if v is not None}
        return PageRequest(spec.method, f"{self.base_url}{path}", query, body,
                           dict(spec.headers))

    def _progress_bar(self, endpoint: str, spec: EndpointSpec, limit: int | None,
                      progress: bool | None) -> Any:
        from restconnect.progress import FetchProgress

        setting = self.progress if progress is None else progress
        return FetchProgress(f"{self.name}.{endpoint}", enabled=setting, limit=limit,
                             total_path=self._pagination(spec).total_path)

    def pagination(self, endpoint: str) -> PaginationSpec:
        """The pagination rules an endpoint is fetched with."""
        return self._pagination(self.endpoint(endpoint))

    def _pagination(self, spec: EndpointSpec) -> PaginationSpec:
        """The endpoint's pagination over the connector's default.

        An endpoint of another kind inherits only the settings every kind
        shares, never the default's cursor paths or parameter names.
        """
        if spec.pagination is None:
            return self.spec.pagination
        own = spec.pagination.model_dump(exclude_unset=True)
        inherited = self.spec.pagination.model_dump(exclude_unset=True)
        if own.get("kind", self.spec.pagination.kind) != self.spec.pagination.kind:
            inherited = {k: v for k, v in inherited.items() if k in _SHARED_PAGINATION}
        return PaginationSpec.model_validate({**inherited, **own})

    def _pages(self, endpoint: str, spec: EndpointSpec, params: Mapping[str, Any],
               result: FetchResult, *, limit: int | None, max_pages: int | None,
               cache: Any, concurrency: int | None,
               read_ahead: bool = False) -> Iterator[Page]:
        pagination = self._pagination(spec)
        paginator = make_paginator(pagination)
        max_pages = max_pages or pagination.max_pages
        workers = concurrency or pagination.concurrency or self.concurrency
        self.last_result = result
        first = self.build_request(endpoint, params)
        request: PageRequest | None = paginator.first(first)
        guard = RepeatGuard(f"{self.name}.{endpoint}")
        # Where credentials may go; None when the connector sends none.
        home = self.http.origin(first.url) if self.http.sends_credentials() else None
        index = 0
        ahead: PendingResponse | None = None  # the next page's request, already sent
        try:
            while request is not None:
                if ahead is None:  # a request sent ahead was checked before it went
                    guard.check(request, index, self.http._redact)
                    if index:
                        self._check_host(endpoint, home, request)
                response, action = self._send_page(endpoint, spec, request, cache,
                                                   ahead=ahead)
                ahead = None
                can_plan = index == 0 and workers > 1
                following = None
                if read_ahead and not can_plan and action is None and \
                        not reads_body(paginator):
                    # The next request is in the headers: send it before decoding.
                    headers_only = Page(index, request, response, None, [])
                    following = paginator.next(request, headers_only)
                    if following is not None and limit is None and \
                            (max_pages is None or index + 1 < max_pages):
                        ahead = self._send_ahead(endpoint, spec, following, cache,
                                                 guard, home, index + 1)
                page = self._page(endpoint, spec, request, index, response, action)
                planned = paginator.plan(request, page) if can_plan else None
                if planned:
                    result.pagination = paginator.chosen_kind
                    yield self._emit(page, result, limit)
                    if self._should_stop(result, limit, max_pages, more=True):
                        return
                    needed = _pages_needed(planned, page, result, limit, max_pages)
                    for planned_request in planned[:needed]:
                        self._check_host(endpoint, home, planned_request)
                    yield from self._concurrent(endpoint, spec, planned[:needed],
                                                result, limit, max_pages, cache,
                                                workers)
                    if needed < len(planned) and not result.truncated:
                        result.truncated = True
                        result.truncated_reason = (f"max_pages={max_pages}"
                                                   if max_pages else f"limit={limit}")
                    return
                if following is None:
                    following = paginator.next(request, page)
                result.pagination = paginator.chosen_kind
                yield self._emit(page, result, limit)
                if self._should_stop(result, limit, max_pages,
                                     more=following is not None):
                    return
                request = following
                index += 1
        finally:
            if ahead is not None:
                ahead.cancel()

    def _send_ahead(self, endpoint: str, spec: EndpointSpec, request: PageRequest,
                    cache: Any, guard: RepeatGuard, home: Any,
                    index: int) -> PendingResponse | None:
        """Send a page's request now, if it passes the checks every page passes.

        A request that fails them is not sent; the fetch reaches it in turn
        and raises there, after the pages before it.
        """
        if request.method != "GET" or request.json is not None:
            return None
        try:
            self._check_host(endpoint, home, request)
            guard.check(request, index, self.http._redact)
        except PaginationError:
            return None
        return self.http.send_ahead(request.url, params=request.params or None,
                                    headers=request.headers, endpoint=endpoint,
                                    cache=self._cache_policy(spec, cache),
                                    accept_statuses=_accepted(spec))

    def _check_host(self, endpoint: str, home: Any, request: PageRequest) -> None:
        """Refuse a next page off ``home``, the first page's origin (None: anywhere)."""
        if home is None or self.http.origin(request.url) == home:
            return
        raise PaginationError(
            f"{self.name}.{endpoint}: the API's next page is on another host "
            f"({self.http._redact(request.url)}) than the first; the connector's "
            "credentials are not sent there, so the fetch stopped")

    def _emit(self, page: Page, result: FetchResult, limit: int | None) -> Page:
        """Count a page, trimming its records to the limit."""
        if limit is not None and result.records + len(page.records) > limit:
            page.records = page.records[: max(0, limit - result.records)]
            result.truncated = True
            result.truncated_reason = f"limit={limit}"
        result.pages += 1
        result.records += len(page.records)
        result.pages_from_cache += int(page.from_cache)
        return page

    @staticmethod
    def _should_stop(result: FetchResult, limit: int | None, max_pages: int | None,
                     *, more: bool) -> bool:
        if limit is not None and result.records >= limit:
            if more and not result.truncated:
                result.truncated = True
                result.truncated_reason = f"limit={limit}"
            return True
        if max_pages is not None and result.pages >= max_pages:
            if more:
                result.truncated = True
                result.truncated_reason = f"max_pages={max_pages}"
            return True
        return False

    def _concurrent(self, endpoint: str, spec: EndpointSpec, planned: list[PageRequest],
                    result: FetchResult, limit: int | None, max_pages: int | None,
                    cache: Any, workers: int) -> Iterator[Page]:
        """Fetch addressable pages in parallel, yielding them in page order."""
        pending: dict[int, Future[Page]] = {}
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix=f"restconnect-{self.name}") as pool:
            try:
                for index, request in enumerate(planned, start=1):
                    while len(pending) >= workers * 2:
                        yield self._take_next(pending, result, limit)
                        if self._should_stop(result, limit, max_pages, more=True):
                            return
                    pending[index] = pool.submit(self._fetch_page, endpoint, spec,
                                                 request, index, cache)
                while pending:
                    yield self._take_next(pending, result, limit)
                    if self._should_stop(result, limit, max_pages, more=bool(pending)):
                        return
            finally:
                for future in pending.values():
                    future.cancel()

    def _take_next(self, pending: dict[int, Future[Page]], result: FetchResult,
                   limit: int | None) -> Page:
        """Wait for the lowest-numbered page in flight and count it."""
        return self._emit(pending.pop(min(pending)).result(), result, limit)

    def _fetch_page(self, endpoint: str, spec: EndpointSpec, request: PageRequest,
                    index: int, cache: Any) -> Page:
        response, action = self._send_page(endpoint, spec, request, cache)
        return self._page(endpoint, spec, request, index, response, action)

    def _page(self, endpoint: str, spec: EndpointSpec, request: PageRequest,
              index: int, response: requests.Response, action: Any) -> Page:
        """Decode a page's response and find its records."""
        where = f"{self.name}.{endpoint}"
        if action is not None:
            body = self._apply_action(action, response, request, where)
        else:
            content_type = response.headers.get("Content-Type", "")
            body = decode_body(response.content, content_type,
                               fmt=spec.format, where=where)
        records = extract_records(body, spec.records, where=where)
        logger.debug("%s page %d: %d records", where, index + 1, len(records))
        return Page(index, request, response, body, records,
                    from_cache=bool(getattr(response, "from_cache", False)))

    def _send_page(self, endpoint: str, spec: EndpointSpec, request: PageRequest,
                   cache: Any, ahead: PendingResponse | None = None
                   ) -> tuple[requests.Response, Any]:
        """Send a page request, repeating it while a ``retry`` action matches.

        ``ahead`` is the same request, already sent by :meth:`_send_ahead`.
        """
        cache = self._cache_policy(spec, cache)
        accept = _accepted(spec)
        retry = self.spec.retry
        attempt = 1
        while True:
            if ahead is not None:
                response, ahead = ahead.result(), None
            else:
                response = self.http.request(
                    request.method, request.url, params=request.params or None,
                    json=request.json, headers=request.headers, endpoint=endpoint,
                    cache=cache if attempt == 1 else False, accept_statuses=accept)
            action = _matching_action(spec, response)
            if action is None or action.action != "retry" or attempt == retry.attempts:
                return response, action
            wait = min(retry.max_backoff, retry.backoff * 2 ** (attempt - 1))
            logger.info("%s.%s: response matched a retry action; retrying in %.1f s",
                        self.name, endpoint, wait)
            time.sleep(wait)
            attempt += 1

    def _apply_action(self, action: Any, response: requests.Response,
                      request: PageRequest, where: str) -> Any:
        if action.action == "empty":
            return None
        matched = action.match or action.status
        message = action.message or f"the response matched {matched}"
        if action.action == "retry":
            raise ResponseError(f"{where}: {message} (still after "
                                f"{self.spec.retry.attempts} tries)")
        raise HTTPStatusError(response.status_code, request.method,
                              self.http._redact(response.url), connector=self.name,
                              endpoint=where.split(".", 1)[1], reason=message,
                              response=response)


def credential_fields(spec: ConnectorSpec) -> list[str]:
    """Names of every credential field a spec's auth methods use."""
    return [f.name for e in spec.auth_entries for f in get_auth_method(e.method).fields]


def _check_bounds(limit: Any, max_pages: Any) -> None:
    """``limit`` and ``max_pages`` are whole numbers of at least 1, or None."""
    for name, value in (("limit", limit), ("max_pages", max_pages)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got "
                             f"{value!r}; pass API parameters of that name as "
                             f"params={{{name!r}: ...}}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_concurrency(value: Any) -> None:
    """``concurrency`` is a whole number from 1 to 64, or None."""
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, int)
            or not 1 <= value <= MAX_CONCURRENCY):
        raise ValueError(f"concurrency must be a whole number from 1 to "
                         f"{MAX_CONCURRENCY}, got {value!r}")


def merge_params(caller: str, params: Mapping[str, Any] | None,
                  more_params: Mapping[str, Any]) -> dict[str, Any]:
    """``params=`` and the keyword parameters as one mapping.

    Raises:
        TypeError: a name is in both with different values (which one was
            meant cannot be known; the values are not shown, they may be secret).
    """
    merged = dict(params or {})
    clashes = sorted(name for name, value in more_params.items()
                     if name in merged and not _same(merged[name], value))
    if clashes:
        raise TypeError(f"{caller}() got different values for parameter(s) "
                        f"{', '.join(map(repr, clashes))} in params= and as "
                        "keywords; give each once")
    merged.update(more_params)
    return merged


def _same(first: Any, second: Any) -> bool:
    try:
        return bool(first == second)
    except (TypeError, ValueError):  # an array or frame has no single truth value
        return first is second


def _pages_needed(planned: list[PageRequest], first: Page, result: FetchResult,
                  limit: int | None, max_pages: int | None) -> int:
    """How many planned pages a limit or page cap leaves worth requesting."""
    needed = len(planned)
    if max_pages is not None:
        needed = min(needed, max_pages - result.pages)
    if limit is not None and first.records:
        needed = min(needed, math.ceil((limit - result.records) / len(first.records)))
    return max(0, needed)


# Pagination settings that mean the same whatever the kind.
_SHARED_PAGINATION = frozenset({"page_size", "concurrency", "max_pages", "location"})


def _accepted(spec: EndpointSpec) -> tuple[int, ...]:
    """Error statuses a response action handles, so they are not raised."""
    return tuple(a.status for a in spec.response_actions if a.status)


def _matching_action(spec: EndpointSpec, response: requests.Response) -> Any:
    for action in spec.response_actions:
        if action.status is not None and action.status != response.status_code:
            continue
        if action.match is not None and not re.search(action.match, response.text):
            continue
        return action
    return None


def _split_params(connector: str, endpoint: str, spec: EndpointSpec,
                  params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    needed = spec.path_params
    missing = [name for name in needed if params.get(name) is None]
    missing += [name for name in spec.required
                if params.get(name) is None and spec.params.get(name) is None]
    if missing:
        required = ", ".join(needed + [r for r in spec.required if r not in needed])
        raise SpecError(
            f"missing parameter(s) {', '.join(missing)}; endpoint {endpoint!r} "
            f"requires: {required} (path {spec.path})", source=connector,
            path=f"endpoints.{endpoint}")
    path_values = {name: params[name] for name in needed}
    for name, value in path_values.items():
        if str(value).strip() in ("", ".", ".."):
            # An empty, '.' or '..' segment would send the request to another path.
            raise SpecError(
                f"parameter {name!r} of endpoint {endpoint!r} is {str(value)!r}, which "
                f"would change the path {spec.path} itself; give a real value",
                source=connector, path=f"endpoints.{endpoint}")
    rest = {k: v for k, v in params.items() if k not in needed}
    return path_values, rest


def _param_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(_param_value(v)) for v in value if v is not None)
    return value
