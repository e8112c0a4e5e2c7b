"""The HTTP rules, over real HTTP to a scripted server on loopback."""

from __future__ import annotations

import email.utils
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

import restconnect
from restconnect.exceptions import (
    AuthError,
    HTTPStatusError,
    PaginationError,
    RateLimitError,
    ResponseError,
    SpecError,
    TransportError,
)
from restconnect.spec import parse_spec
from tests.servers.scripted import Reply, ScriptedServer

SECRET = "tok-9f8e7d6c5b4a"


@pytest.fixture()
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def make(server: ScriptedServer, extra: str = "", auth: str = "bearer",
         base_url: str | None = None, **connect_kwargs):
    text = f"""
name: scripted
base_url: {base_url or server.url}
auth: {{method: {auth}}}
retry: {{attempts: 3, backoff: 0.01, max_backoff: 0.05}}
rate_limit: {{max_wait: 5}}
pagination: {{kind: none}}
endpoints:
  items: {{path: /items, records: items}}
  thing:
    path: /things/{{thing_id}}
  maybe:
    path: /maybe
    response_actions: [{{status: 404, action: empty}}]
  cursor:
    path: /cursor
    records: items
    pagination: {{kind: cursor, cursor_path: next, cursor_param: c}}
{extra}
"""
    spec = parse_spec(text, source="scripted.yaml")
    credentials = {"token": SECRET} if auth == "bearer" else {}
    return restconnect.connect(spec, **credentials, **connect_kwargs)


def test_user_agent_and_auth_are_sent(server):
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    frame = make(server).fetch("items")
    assert frame["id"].tolist() == [1]
    seen = server.requests_to("/items")[0]
    assert seen.headers["User-Agent"].startswith(f"restconnect/{restconnect.__version__}")
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"


def test_server_error_then_success_is_retried(server):
    server.queue("/items", Reply(500, {"error": "boom"}), Reply(502, "bad gateway"),
                 Reply(body={"items": [{"id": 1}, {"id": 2}]}))
    spec_extra = ""
    conn = make(server, spec_extra)
    conn.spec.retry.statuses.append(500)
    conn.http.retry = conn.spec.retry
    assert len(conn.fetch("items")) == 2
    assert len(server.requests_to("/items")) == 3


def test_retries_run_out_with_a_clear_error(server):
    server.queue("/items", Reply(503, {"message": "down for maintenance"}))
    with pytest.raises(HTTPStatusError) as info:
        make(server).fetch("items")
    error = info.value
    assert error.status == 503 and error.connector == "scripted"
    assert error.endpoint == "items"
    assert "down for maintenance" in str(error)
    assert len(server.requests_to("/items")) == 3


def test_retry_after_seconds_is_honoured(server, caplog):
    server.queue("/items", Reply(429, {"message": "slow down"}, {"Retry-After": "1"}),
                 Reply(body={"items": [{"id": 1}]}))
    caplog.set_level(logging.INFO, logger="restconnect")
    started = time.monotonic()
    assert len(make(server).fetch("items")) == 1
    assert time.monotonic() - started >= 0.9
    assert "HTTP 429" in caplog.text and "retrying in 1.0 s" in caplog.text


def test_retry_after_http_date_is_honoured(server, caplog):
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    date = email.utils.format_datetime(when, usegmt=True)
    server.queue("/items", Reply(429, {}, {"Retry-After": date}),
                 Reply(body={"items": [{"id": 1}]}))
    caplog.set_level(logging.INFO, logger="restconnect")
    started = time.monotonic()
    assert len(make(server).fetch("items")) == 1
    # The date has one-second resolution, so the wait is between 1 and 2 s.
    assert time.monotonic() - started >= 0.9
    assert "HTTP 429" in caplog.text


def test_retry_after_beyond_max_wait_raises_at_once(server):
    server.queue("/items", Reply(429, {"message": "quota"}, {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        make(server).fetch("items")
    assert time.monotonic() - started < 3
    error = info.value
    assert error.retry_at > datetime.now(timezone.utc) + timedelta(minutes=59)
    assert "retry after" in str(error)
    assert len(server.requests_to("/items")) == 1


def test_github_style_rate_limit_slows_down(server, caplog):
    reset = int(time.time()) + 2
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "2",
               "X-RateLimit-Reset": str(reset)}
    server.queue("/items", Reply(body={"items": [{"id": 1}]}, headers=headers))
    conn = make(server)
    caplog.set_level(logging.INFO, logger="restconnect")
    conn.fetch("items", cache=False)
    conn.fetch("items", cache=False)
    assert "2 requests left until the reset" in caplog.text
    assert conn.http.rate_state.remaining == 2
    assert conn.http.rate_state.limit == 60


def test_ietf_ratelimit_fields_are_read(server):
    headers = {"RateLimit": '"default";r=7;t=30', "RateLimit-Policy": '"default";q=100;w=60'}
    server.queue("/items", Reply(body={"items": []}, headers=headers))
    conn = make(server)
    conn.fetch("items")
    assert conn.http.rate_state.remaining == 7
    assert conn.http.rate_state.limit == 100


def test_non_json_body_names_the_endpoint(server):
    server.queue("/items", Reply(200, b"{not json", {"Content-Type": "application/json"}))
    with pytest.raises(ResponseError, match=r"scripted\.items: the response body is not "
                                            r"valid JSON"):
        make(server).fetch("items")


def test_html_page_with_200_is_an_error(server):
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    server.queue("/items", Reply(200, page, {"Content-Type": "text/html"}))
    with pytest.raises(ResponseError, match="HTML page instead of JSON"):
        make(server).fetch("items")


def test_error_status_message_is_redacted(server):
    server.queue("/items", Reply(404, {"message": "Not Found"}))
    conn = make(server)
    with pytest.raises(HTTPStatusError) as info:
        conn.fetch("items", api_key="qk-1234567890", q="ok")
    text = str(info.value)
    assert info.value.status == 404
    assert "scripted.items" in text and "Not Found" in text
    assert "qk-1234567890" not in text and "q=ok" in text


def test_404_can_mean_empty(server):
    server.queue("/maybe", Reply(404, {"message": "Not Found"}))
    frame = make(server).fetch("maybe")
    assert frame.empty


def test_missing_path_parameter_lists_the_required_ones(server):
    with pytest.raises(SpecError, match="missing parameter.*thing_id"):
        make(server).fetch("thing")


def test_unknown_endpoint_lists_the_known_ones(server):
    with pytest.raises(SpecError, match="known endpoints: items, thing, maybe, cursor"):
        make(server).fetch("itemz")


def test_path_parameters_are_encoded(server):
    server.queue("/things/a%2Fb", Reply(body={"id": "a/b"}))
    frame = make(server).fetch("thing", thing_id="a/b")
    assert frame["id"].tolist() == ["a/b"]


@pytest.mark.parametrize("value", ["..", ".", "", "  "])
def test_path_values_that_would_change_the_path_are_refused(server, value):
    with pytest.raises(SpecError, match="would change the path"):
        make(server).fetch("thing", thing_id=value)
    assert server.seen == []  # nothing was sent


def test_repeated_cursor_raises(server):
    server.queue("/cursor", Reply(body={"items": [{"id": 1}], "next": "same"}))
    with pytest.raises(PaginationError, match="repeats page 2"):
        make(server).fetch("cursor")
    assert len(server.requests_to("/cursor")) == 2


def test_401_raises_auth_error_without_the_secret(server, caplog):
    server.queue("/items", Reply(401, {"message": "Bad credentials"}))
    caplog.set_level(logging.DEBUG, logger="restconnect")
    with pytest.raises(AuthError) as info:
        make(server).fetch("items")
    text = str(info.value)
    assert "scripted" in text and "bearer" in text and "Bad credentials" in text
    assert SECRET not in text and SECRET not in caplog.text


def test_timeout_becomes_transport_error(server):
    server.queue("/items", Reply(body={"items": []}, delay=1.5))
    conn = make(server)
    conn.http.timeout = 0.3
    with pytest.raises(TransportError, match="timed out"):
        conn.fetch("items")


def test_plain_http_to_a_remote_host_is_refused_before_sending():
    spec = parse_spec("""
name: remote
base_url: http://api.example.invalid
auth: {method: bearer}
endpoints: {items: {path: /items}}
""")
    conn = restconnect.connect(spec, token=SECRET)
    with pytest.raises(AuthError, match="plain HTTP") as info:
        conn.fetch("items")
    assert SECRET not in str(info.value)


def test_auth_is_dropped_on_redirect_to_another_host(server):
    other = ScriptedServer()
    try:
        other.queue("/landing", Reply(body={"items": [{"id": 2}]}))
        target = f"http://localhost:{other.port}/landing"
        server.queue("/items", Reply(302, b"", {"Location": target}))
        frame = make(server).fetch("items")
        assert frame["id"].tolist() == [2]
        landed = other.requests_to("/landing")[0]
        assert "Authorization" not in landed.headers
    finally:
        other.stop()


def test_auth_is_kept_on_same_host_redirect(server):
    server.queue("/items", Reply(301, b"", {"Location": "/moved"}))
    server.queue("/moved", Reply(body={"items": [{"id": 3}]}))
    make(server).fetch("items")
    assert server.requests_to("/moved")[0].headers["Authorization"] == f"Bearer {SECRET}"


def test_limit_and_max_pages_mark_the_result_truncated(server):
    server.queue("/cursor", Reply(body={"items": [{"id": 1}, {"id": 2}], "next": "a"}),
                 Reply(body={"items": [{"id": 3}, {"id": 4}], "next": "b"}),
                 Reply(body={"items": [{"id": 5}], "next": None}))
    conn = make(server)
    frame = conn.fetch("cursor", limit=3)
    meta = frame.attrs["restconnect"]
    assert frame["id"].tolist() == [1, 2, 3]
    assert meta["truncated"] and meta["truncated_reason"] == "limit=3"
    frame = conn.fetch("cursor", max_pages=1)
    assert frame.attrs["restconnect"]["truncated_reason"] == "max_pages=1"


def test_spent_quota_without_reset_is_a_rate_limit_error_at_once(server):
    server.queue("/items", Reply(403, {"message": "API rate limit exceeded"},
                                 {"X-RateLimit-Remaining": "0"}))
    with pytest.raises(RateLimitError, match="did not say until when"):
        make(server).fetch("items")
    assert len(server.requests_to("/items")) == 1


def test_auth_error_carries_the_response(server):
    server.queue("/items", Reply(401, {"message": "Bad credentials"}))
    with pytest.raises(AuthError) as info:
        make(server).fetch("items", q="x")
    error = info.value
    assert error.status == 401 and error.endpoint == "items"
    assert error.url.endswith("/items?q=x") and error.response.status_code == 401


def test_params_mapping_passes_names_that_clash_with_keywords(server):
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    make(server).fetch("items", params={"limit": 7}, q="x")
    assert server.requests_to("/items")[0].query == {"limit": "7", "q": "x"}


def test_endpoint_of_another_kind_inherits_only_shared_pagination(server):
    extra = """  offsets:
    path: /offsets
    records: items
    pagination: {kind: offset}
"""
    conn = make(server, extra)
    conn.spec.pagination = conn.spec.pagination.model_validate(
        {"kind": "cursor", "cursor_param": "c", "page_size": 2})
    merged = conn._pagination(conn.endpoint("offsets"))
    assert merged.kind == "offset" and merged.page_size == 2
    assert merged.cursor_param is None


def test_concurrent_pages_stop_at_max_pages_and_limit(sandbox):
    conn = sandbox.connect("sandbox", cache=False)
    sandbox.reset_stats()
    frame = conn.fetch("payments", max_pages=2)
    meta = frame.attrs["restconnect"]
    assert meta["pages"] == 2 and meta["truncated"]
    assert sandbox.stats["total"] == 2
    sandbox.reset_stats()
    first_page = len(conn.fetch("payments", max_pages=1))
    frame = conn.fetch("payments", limit=first_page + 1)
    assert len(frame) == first_page + 1
    assert sandbox.stats["total"] == 3


@pytest.mark.parametrize(("option", "value"), [
    ("limit", "5"), ("limit", 0), ("limit", -1), ("max_pages", 0), ("max_pages", True)])
def test_nonsense_limits_are_refused_before_sending(server, option, value):
    with pytest.raises(ValueError, match=f"{option} must be a whole number"):
        make(server).fetch("items", **{option: value})
    assert server.requests_to("/items") == []


def test_a_netrc_login_is_never_added(server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login someone password {SECRET}-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    make(server, auth="none").fetch("items")
    assert "Authorization" not in server.requests_to("/items")[0].headers


def test_cookies_the_api_sets_are_sent_back(server):
    server.queue("/items", Reply(body={"items": [{"id": 1}]},
                                 headers={"Set-Cookie": "session=abc123; Path=/"}))
    server.queue("/items", Reply(body={"items": [{"id": 2}]}))
    conn = make(server)
    conn.fetch("items", cache=False)
    conn.fetch("items", cache=False)
    first, second = server.requests_to("/items")
    assert "Cookie" not in first.headers
    assert second.headers["Cookie"] == "session=abc123"


def test_requests_go_through_the_proxy_the_environment_names(server, monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    # Nothing listens on the API's own port: only the proxy can answer.
    frame = make(server, base_url="http://127.0.0.1:9").fetch("items", cache=False)
    assert frame["id"].tolist() == [1]
    (seen,) = server.requests_to("/items")
    assert seen.headers["Host"] == "127.0.0.1:9"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("request_kwargs", [
    {},
    {"params": {}},
    {"params": {"per_page": 100, "q": "a b&c=d", "é": "ü", "f": 1.5}},
    {"params": {"flag": True, "skip": None, "many": ["x", "y"]}},
    {"params": [("a", "1"), ("a", "2")]},
    {"params": {"page": 2}, "url": "http://127.0.0.1:9/items?per_page=5#top"},
    {"json": {"query": "{ viewer { login } }"}},
    {"data": {"grant_type": "client_credentials"}},
    {"headers": {"Accept": "application/json", "User-Agent": None}},
    {"url": "http://someone:pa%20ss@127.0.0.1:9/items"},
    {"url": "http://127.0.0.1:9/a path/ü?x=1 2"},
    {"session": {"headers": {"Accept-Encoding": None}}},
    {"session": {"params": {"sp": "1"}}, "params": [("a", "1"), ("a", "2")]},
    {"session": {"params": {"sp": "1"}}, "params": "a=1&b=%20"},
    {"session": {"params": {"sp": "1", "drop": "x"}}, "params": {"drop": None}},
])
def test_requests_are_prepared_as_requests_prepares_them(request_kwargs):
    from requests import Request, Session

    from restconnect.http import _prepared_request

    session = Session()
    session.trust_env = False  # the reference must not read ~/.netrc either
    session.headers["X-Session"] = "1"
    session.cookies.set("sid", "abc", domain="127.0.0.1", path="/")
    session_settings = request_kwargs.pop("session", {})
    session.headers.update(session_settings.get("headers", {}))
    session.params = session_settings.get("params", {})
    kwargs = {"url": "http://127.0.0.1:9/items", **request_kwargs}
    ours = _prepared_request(session, Request("GET", **kwargs))
    reference = session.prepare_request(Request("GET", **kwargs))
    assert ours.url == reference.url
    assert dict(ours.headers) == dict(reference.headers)
    assert ours.body == reference.body
    assert ours.hooks == reference.hooks


def test_a_credential_with_a_newline_fails_without_showing_it(server):
    spec = parse_spec(f"""
name: scripted
base_url: {server.url}
auth: {{method: bearer}}
endpoints:
  items: {{path: /items, records: items}}
""", source="scripted.yaml")
    conn = restconnect.connect(spec, token=f"{SECRET}\n")
    with pytest.raises(TransportError, match="line break") as info:
        conn.fetch("items")
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert server.requests_to("/items") == []


@pytest.mark.parametrize("credential", ["auth", "header"])
def test_a_sessions_own_credentials_stay_behind_on_a_redirect_to_another_host(
        server, credential):
    import requests

    session = requests.Session()
    if credential == "auth":
        session.auth = ("someone", f"{SECRET}-session")
    else:
        session.headers["Authorization"] = f"Bearer {SECRET}-session"
    other = ScriptedServer()
    try:
        other.queue("/landing", Reply(body={"items": [{"id": 2}]}))
        server.queue("/items", Reply(302, b"", {
            "Location": f"http://localhost:{other.port}/landing"}))
        frame = make(server, auth="none", session=session).fetch("items", cache=False)
        assert frame["id"].tolist() == [2]
        assert "Authorization" in server.requests_to("/items")[0].headers
        assert "Authorization" not in other.requests_to("/landing")[0].headers
    finally:
        other.stop()


def test_a_next_page_on_another_host_is_not_fetched_with_credentials(server):
    other = ScriptedServer()
    try:
        elsewhere = f"http://localhost:{other.port}/cursor?c=b"
        extra = """
  elsewhere:
    path: /cursor
    records: items
    pagination: {kind: next_url, next_url_path: next_url}
"""
        server.queue("/cursor", Reply(body={"items": [{"id": 1}],
                                            "next_url": elsewhere}))
        with pytest.raises(PaginationError, match="another host"):
            make(server, extra).fetch("elsewhere", cache=False)
        assert other.requests_to("/cursor") == []
    finally:
        other.stop()


def test_a_callers_session_keeps_its_adapters(server):
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(max_retries=3, pool_maxsize=50)
    session.mount("http://", adapter)
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    make(server, session=session).fetch("items", cache=False)
    assert session.get_adapter("http://127.0.0.1/") is adapter


def test_the_connection_pool_has_room_for_the_most_threads_a_fetch_may_use(server):
    from restconnect.connector import MAX_CONCURRENCY

    adapter = make(server).http.session.get_adapter(server.url)
    assert adapter.poolmanager.connection_pool_kw["maxsize"] >= MAX_CONCURRENCY


def test_query_values_are_sent_as_the_spec_docs_say(server):
    server.queue("/items", Reply(body={"items": [{"id": 1}]}))
    make(server).fetch("items", cache=False, ids=[1, None, 2], flags=(True, False),
                       on=True, gone=None)
    (seen,) = server.requests_to("/items")
    assert seen.query == {"ids": "1,2", "flags": "true,false", "on": "true"}
