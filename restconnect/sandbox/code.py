"""The code-hosting service under ``/code``: users, repos, issues, events.

It behaves like GitHub's REST API where that is cheap to copy: ``per_page``
and ``page`` with RFC 8288 ``Link`` headers, ``since``/``sort``/``direction``
on issues, ``{"message": ...}`` error bodies. A few endpoints misbehave on
purpose (``/code/broken/...``) so that client error handling can be tested.
"""

from __future__ import annotations

from typing import Any

import orjson

from restconnect.sandbox.data import LABELS, Collection, Dataset
from restconnect.sandbox.paging import (
    array,
    decode_cursor,
    encode_cursor,
    envelope,
    link_page,
    ordered,
    since_param,
    url_with,
)
from restconnect.sandbox.routing import ApiError, Request, Response, Router
from restconnect.sandbox.settings import Settings

__all__ = ["code_routes"]

_ISSUE_SORTS = {"created": "created_at", "updated": "updated_at",
                "comments": "comments"}
_REPO_SORTS = {"created": "created_at", "updated": "updated_at",
               "pushed": "pushed_at", "full_name": "full_name",
               "stars": "stargazers_count"}
_BROKEN_HTML = (b"<!DOCTYPE html><html><head><title>Service Unavailable</title>"
                b"</head><body><h1>We'll be right back</h1><p>The service is under "
                b"maintenance.</p></body></html>")


def _direction(req: Request, default: str = "desc") -> bool:
    value = req.query.get("direction", default)
    if value not in ("asc", "desc"):
        raise ApiError(422, f"direction must be asc or desc, got {value!r}",
                       code="invalid_parameter")
    return value == "desc"


def _choice(req: Request, name: str, options: dict[str, str] | tuple[str, ...],
            default: str) -> str:
    value = req.query.get(name, default)
    if value not in options:
        raise ApiError(422, f"{name} must be one of {', '.join(options)}, "
                       f"got {value!r}", code="invalid_parameter")
    return value


def _sort_key(collection: Collection, field: str) -> Any:
    rows = collection.rows
    # None sorts first, like an empty value in GitHub's ordering.
    return lambda pos: (rows[pos][field] is not None, rows[pos][field] or 0,
                        rows[pos][collection.key])


def _single(collection: Collection, row: dict[str, Any] | None, what: str) -> Response:
    if row is None:
        raise ApiError(404, "Not Found", code="not_found")
    return Response(body=collection.encoded[collection.index[row[collection.key]]],
                    last_modified=collection.last_modified)


def code_routes(data: Dataset, settings: Settings) -> Router:
    """Every route of the code-hosting service."""
    router = Router()
    _user_routes(router, data, settings)
    _repo_routes(router, data, settings)
    _issue_routes(router, data, settings)
    _feed_routes(router, data, settings)
    _broken_routes(router, data)
    return router


def _user_routes(router: Router, data: Dataset, settings: Settings) -> None:
    users = data.users
    by_login = {row["login"]: row for row in users.rows}

    @router.add("GET", "/code/user", "code", "the signed-in user (who am I)")
    def me(req: Request) -> Response:
        login = req.principal.login if req.principal else None
        if login is None:
            raise ApiError(401, "Requires authentication", code="unauthorized")
        return _single(users, by_login.get(login), "user")

    @router.add("GET", "/code/users", "code",
                "users; link_header pages, or ids=1,2 / logins=a,b batch lookup")
    def list_users(req: Request) -> Response:
        batch = _batch(req, users, by_login)
        if batch is not None:
            return Response(body=array(users.bodies(batch)),
                            last_modified=users.last_modified)
        positions = list(range(len(users.rows)))
        return link_page(req, users, positions, max_size=settings.max_page_size)

    @router.add("GET", "/code/users/{login}", "code", "one user by login")
    def one_user(req: Request) -> Response:
        return _single(users, by_login.get(req.params["login"]), "user")


def _batch(req: Request, users: Collection,
           by_login: dict[str, dict[str, Any]]) -> list[int] | None:
    ids, logins = req.query.get("ids"), req.query.get("logins")
    if ids is None and logins is None:
        return None
    wanted = [item for item in (ids or logins or "").split(",") if item]
    if len(wanted) > 100:
        raise ApiError(422, "at most 100 ids per request", code="too_many_ids")
    if ids is not None:
        try:
            keys = [int(item) for item in wanted]
        except ValueError:
            raise ApiError(422, "ids must be integers",
                           code="invalid_parameter") from None
    else:
        keys = [by_login[login]["id"] for login in wanted if login in by_login]
    return [users.index[key] for key in keys if key in users.index]


def _repo_order(req: Request, repos: Collection, name: str, keep: Any,
                extra: tuple[Any, ...]) -> list[int]:
    sort = _choice(req, "sort", _REPO_SORTS, "full_name")
    default = "asc" if sort == "full_name" else "desc"
    descending = _direction(req, default)
    return ordered(repos, (name, sort, descending, *extra), keep,
                   _sort_key(repos, _REPO_SORTS[sort]), descending)


def _repo_routes(router: Router, data: Dataset, settings: Settings) -> None:
    repos = data.repos
    by_name = {row["full_name"]: row for row in repos.rows}
    rows = repos.rows

    @router.add("GET", "/code/repos", "code",
                "public repos; link_header pages; sort, direction")
    def list_repos(req: Request) -> Response:
        positions = _repo_order(req, repos, "public",
                                lambda pos: not rows[pos]["private"], ())
        return link_page(req, repos, positions, max_size=settings.max_page_size)

    @router.add("GET", "/code/users/{login}/repos", "code",
                "a user's public repos; link_header pages")
    def user_repos(req: Request) -> Response:
        login = req.params["login"]
        positions = _repo_order(
            req, repos, "user",
            lambda pos: (rows[pos]["owner"]["login"] == login
                         and not rows[pos]["private"]),
            (login,))
        return link_page(req, repos, positions, max_size=settings.max_page_size)

    @router.add("GET", "/code/user/repos", "code",
                "the caller's repos, private ones included; link_header pages")
    def my_repos(req: Request) -> Response:
        login = req.principal.login if req.principal else ""
        positions = _repo_order(req, repos, "mine",
                                lambda pos: rows[pos]["owner"]["login"] == login,
                                (login,))
        return link_page(req, repos, positions, max_size=settings.max_page_size)

    @router.add("GET", "/code/repos/{owner}/{repo}", "code", "one repo")
    def one_repo(req: Request) -> Response:
        return _single(repos, _visible(req, by_name), "repo")

    @router.add("GET", "/code/repos/{owner}/{repo}/releases", "code",
                "a repo's releases; 404 when it has none")
    def releases(req: Request) -> Response:
        repo = _visible(req, by_name)
        found = data.releases.get(repo["id"]) if repo else None
        if not found:
            raise ApiError(404, "Not Found", code="not_found")
        return Response(body=orjson.dumps(found), last_modified=repos.last_modified)


def _visible(req: Request, by_name: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    repo = by_name.get(f"{req.params['owner']}/{req.params['repo']}")
    caller = req.principal.login if req.principal else None
    if repo is None or (repo["private"] and repo["owner"]["login"] != caller):
        return None
    return repo


def _issue_positions(req: Request, issues: Collection,
                     repo: str | None = None) -> list[int]:
    state = _choice(req, "state", ("open", "closed", "all"), "all")
    sort = _choice(req, "sort", _ISSUE_SORTS, "created")
    descending = _direction(req)
    since = since_param(req)
    labels = frozenset(filter(None, req.query.get("labels", "").split(",")))
    rows, updated = issues.rows, issues.updated

    def keep(pos: int) -> bool:
        row = rows[pos]
        return ((state == "all" or row["state"] == state)
                and (since is None or updated[pos] >= since)
                and (repo is None or row["repository"] == repo)
                and (not labels
                     or labels <= {label["name"] for label in row["labels"]}))
    key = ("issues", state, sort, descending, since, labels, repo)
    return ordered(issues, key, keep, _sort_key(issues, _ISSUE_SORTS[sort]), descending)


def _issue_routes(router: Router, data: Dataset, settings: Settings) -> None:
    issues, repos = data.issues, data.repos
    names = {row["full_name"] for row in repos.rows}

    @router.add("GET", "/code/issues", "code",
                "issues; link_header pages; since, state, labels, sort, direction")
    def list_issues(req: Request) -> Response:
        positions = _issue_positions(req, issues)
        return link_page(req, issues, positions, max_size=settings.max_page_size)

    @router.add("GET", "/code/repos/{owner}/{repo}/issues", "code",
                "a repo's issues; link_header pages; since, state, sort, direction")
    def repo_issues(req: Request) -> Response:
        name = f"{req.params['owner']}/{req.params['repo']}"
        if name not in names:
            raise ApiError(404, "Not Found", code="not_found")
        positions = _issue_positions(req, issues, name)
        return link_page(req, issues, positions, max_size=settings.max_page_size)

    @router.add("POST", "/code/issues/search", "code",
                "JSON body {state, labels, offset, limit} -> {items, total}")
    def search_issues(req: Request) -> Response:
        body = req.json()
        offset = _body_int(body, "offset", 0, 0, None)
        limit = _body_int(body, "limit", 30, 1, settings.max_page_size)
        state = body.get("state", "all")
        rows = issues.rows
        positions = ordered(issues, ("search", state), lambda pos: (
            state == "all" or rows[pos]["state"] == state),
            lambda pos: rows[pos]["id"], False)
        labels = body.get("labels") or []
        if not isinstance(labels, list):
            raise ApiError(422, "labels must be a list of names",
                           code="invalid_parameter")
        labels = set(labels)
        if labels:
            positions = [pos for pos in positions
                         if labels <= {label["name"] for label in rows[pos]["labels"]}]
        chosen = positions[offset:offset + limit]
        return Response(body=envelope("items", issues.bodies(chosen),
                                      total=len(positions), offset=offset, limit=limit),
                        cacheable=False)

    @router.add("GET", "/code/labels", "code", "every label; not paginated")
    def labels(req: Request) -> Response:
        def build() -> list[int]:
            seen = {label["id"] for row in issues.rows for label in row["labels"]}
            return sorted(seen)
        wanted = set(issues.view(("labels",), build))
        found = [label for label in LABELS if label["id"] in wanted]
        return Response(body=orjson.dumps(found), last_modified=issues.last_modified)


def _body_int(body: dict[str, Any], name: str, default: int, low: int,
              high: int | None) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ApiError(422, f"{name} must be an integer of at least {low}",
                       code="invalid_parameter")
    return min(value, high) if high is not None else value


def _feed_routes(router: Router, data: Dataset, settings: Settings) -> None:
    events, repos, issues = data.events, data.repos, data.issues

    @router.add("GET", "/code/events", "code",
                "issue events, newest first; next_url in the body ('next')")
    def list_events(req: Request) -> Response:
        per_page = req.int_param("per_page", 30, low=1, high=settings.max_page_size)
        after = req.query.get("after")
        start = 0
        if after:
            if after not in events.index:
                raise ApiError(422, f"unknown event id {after!r}",
                               code="invalid_cursor")
            start = events.index[after] + 1
        stop = start + per_page
        chosen = range(start, min(stop, len(events.rows)))
        last_id = events.rows[chosen[-1]]["id"] if chosen else None
        following = (url_with(req, after=last_id, per_page=per_page)
                     if stop < len(events.rows) else None)
        return Response(body=envelope("events", events.bodies(chosen), next=following),
                        last_modified=events.last_modified)

    @router.add("GET", "/code/search/repositories", "code",
                "search repos with q; page_number pages with total_pages")
    def search_repos(req: Request) -> Response:
        positions = _search(req, repos)
        per_page = req.int_param("per_page", 30, low=1, high=settings.max_page_size)
        page = req.int_param("page", 1, low=1)
        chosen = positions[(page - 1) * per_page:page * per_page]
        total_pages = -(-len(positions) // per_page)
        return Response(body=envelope(
            "items", repos.bodies(chosen), total_count=len(positions),
            total_pages=total_pages, page=page, incomplete_results=False),
            last_modified=repos.last_modified)

    @router.add("GET", "/code/export/issues.jsonl", "code",
                "issues as JSON Lines; header_cursor pages (X-Next-Cursor)")
    def export_issues(req: Request) -> Response:
        limit = req.int_param("limit", 100, low=1, high=1000)
        cursor = req.query.get("cursor")
        start = int(decode_cursor(cursor)) if cursor else 0
        chosen = range(start, min(start + limit, len(issues.rows)))
        headers = {}
        if start + limit < len(issues.rows):
            headers["X-Next-Cursor"] = encode_cursor(start + limit)
        body = b"".join(row + b"\n" for row in issues.bodies(chosen))
        return Response(body=body, content_type="application/x-ndjson",
                        headers=headers, last_modified=issues.last_modified)


def _search(req: Request, repos: Collection) -> list[int]:
    query = req.query.get("q", "").strip()
    if not query:
        raise ApiError(422, "Validation Failed: q is required", code="missing_q")
    terms: dict[str, str] = {}
    words = []
    for token in query.split():
        name, sep, value = token.partition(":")
        if sep and name in ("topic", "language", "user"):
            terms[name] = value.lower()
        else:
            words.append(token.lower())
    rows = repos.rows

    def keep(pos: int) -> bool:
        row = rows[pos]
        text = f"{row['full_name']} {row['description'] or ''}".lower()
        return (not row["private"]
                and all(word in text for word in words)
                and ("topic" not in terms or terms["topic"] in row["topics"])
                and ("language" not in terms
                     or (row["language"] or "").lower() == terms["language"])
                and ("user" not in terms or row["owner"]["login"] == terms["user"]))
    return ordered(repos, ("search", query), keep,
                   lambda pos: (rows[pos]["stargazers_count"], -rows[pos]["id"]), True)


def _broken_routes(router: Router, data: Dataset) -> None:
    repos = data.repos

    @router.add("GET", "/code/broken/loop", "code",
                "cursor pagination whose next_cursor never changes")
    def loop(req: Request) -> Response:
        return Response(body=envelope("items", repos.bodies(range(3)),
                                      next_cursor="c0ffee", has_more=True),
                        cacheable=False)

    @router.add("GET", "/code/broken/loop-link", "code",
                "a Link header whose next is always page 2")
    def loop_link(req: Request) -> Response:
        link = f'<{url_with(req, page=2)}>; rel="next"'
        return Response(body=array(repos.bodies(range(3))), headers={"Link": link},
                        cacheable=False)

    @router.add("GET", "/code/broken/not-json", "code",
                "status 200, JSON content type, body that does not parse")
    def not_json(req: Request) -> Response:
        return Response(body=b'{"items": [{"id": 1, "name": "trunc', cacheable=False)

    @router.add("GET", "/code/broken/html", "code",
                "status 200 with an HTML maintenance page")
    def html(req: Request) -> Response:
        return Response(body=_BROKEN_HTML, content_type="text/html; charset=utf-8",
                        cacheable=False)
