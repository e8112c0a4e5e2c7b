"""The bundled ``github`` connector against real recorded GitHub traffic.

Each recording in ``<repo>/../shared/fixtures/github`` is served over HTTP by
``tests/servers/replay.py``; ``connect("github", base_url=<replay>)`` fetches
it as it would fetch api.github.com. Every expected value (record counts,
columns, ids, where a recording stops) is read from the recording files here,
without restconnect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
import requests

import restconnect
from restconnect.exceptions import AuthError, HTTPStatusError, RestConnectError
from restconnect.spec import ConnectorSpec
from tests.servers.replay import UPSTREAM, ReplayServer, fixtures_dir

FIXTURES = fixtures_dir()
HAVE_FIXTURES = (FIXTURES / "README.md").is_file()
TOKEN = "test-token"

pytestmark = pytest.mark.skipif(
    not HAVE_FIXTURES,
    reason=f"recorded GitHub fixtures not found at {FIXTURES} (<repo>/../shared)",
)


# ---------------------------------------------------------------- reading recordings


@dataclass
class Recording:
    """One fixture file read as plain JSON, with its list pages picked out."""

    name: str
    lines: list[dict[str, Any]]

    @classmethod
    def read(cls, name: str) -> Recording:
        path = FIXTURES / f"{name}.jsonl"
        with path.open(encoding="utf-8") as stream:
            return cls(name, [json.loads(line) for line in stream if line.strip()])

    @property
    def pages(self) -> list[dict[str, Any]]:
        """Successful responses whose body is a list or a search result."""
        return [line for line in self.lines
                if line["status"] == 200 and page_records(line["body"]) is not None]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for page in self.pages for record in page_records(page["body"])]

    @property
    def stops_early(self) -> bool:
        """Whether the last recorded page still advertises a rel="next"."""
        return "next" in links(self.pages[-1])

    @property
    def first_url(self) -> str:
        return self.pages[0]["url"]


def page_records(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return body["items"]
    return None


def links(line: dict[str, Any]) -> dict[str, str]:
    """The rel -> URL map of a recorded Link header (looked up case-insensitively)."""
    value = next((v for k, v in line["response_headers"].items()
                  if k.lower() == "link"), "")
    return {item["rel"]: item["url"]
            for item in requests.utils.parse_header_links(value) if "rel" in item}


def flat_keys(record: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Column names of a record: nested objects joined with '.', lists kept whole."""
    for key, value in record.items():
        if isinstance(value, dict):
            yield from flat_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def list_recordings() -> list[str]:
    if not HAVE_FIXTURES:
        return []
    names = sorted(path.stem for path in FIXTURES.glob("*.jsonl"))
    return [name for name in names if Recording.read(name).pages]


# ---------------------------------------------------------------- the connector side


def endpoint_for(spec: ConnectorSpec, url: str) -> tuple[str, dict[str, str]]:
    """The spec endpoint whose path template matches a recorded URL, and its values."""
    path = urlsplit(url).path
    for name, endpoint in spec.endpoints.items():
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(endpoint.path))
        match = re.fullmatch(pattern, path)
        if match:
            return name, match.groupdict()
    raise AssertionError(f"no endpoint of the github spec serves {path}")


def recorded_query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


_OPEN: list[restconnect.Connector] = []


@pytest.fixture(autouse=True)
def _close_connectors():
    yield
    while _OPEN:
        _OPEN.pop().close()


def github(server: ReplayServer) -> restconnect.Connector:
    conn = restconnect.connect("github", base_url=server.url, token=TOKEN)
    _OPEN.append(conn)
    # Waits between retries are the spec's business, not this test's: keep them short.
    conn.http.retry = conn.http.retry.model_copy(update={"backoff": 0.01,
                                                         "max_backoff": 0.05})
    return conn


def match_recorded_page_size(conn: restconnect.Connector, url: str) -> None:
    """Make the first request carry the page size the recording client used.

    The recordings were made by other clients; most of them sent no per_page,
    and the replay server matches query strings exactly. Every later request
    comes from the recorded Link headers, so the spec's pagination still runs
    as shipped.
    """
    if "per_page" not in recorded_query(url):
        conn.spec.pagination.page_size = None


@pytest.fixture
def replay():
    """Start a replay server for the named recordings; stopped after the test."""
    servers: list[ReplayServer] = []

    def start(*names: str) -> ReplayServer:
        paths = [FIXTURES / f"{name}.jsonl" for name in names]
        server = ReplayServer.from_files(paths).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fetch_recording(replay, name: str) -> tuple[pd.DataFrame, Recording, ReplayServer]:
    recording = Recording.read(name)
    server = replay(name)
    conn = github(server)
    endpoint, path_values = endpoint_for(conn.spec, recording.first_url)
    match_recorded_page_size(conn, recording.first_url)
    max_pages = len(recording.pages) if recording.stops_early else None

    frame = conn.fetch(endpoint, max_pages=max_pages, **path_values,
                       **recorded_query(recording.first_url))
    return frame, recording, server


# ---------------------------------------------------------------- every list endpoint


@pytest.mark.parametrize("name", list_recordings() or [
    pytest.param("none", marks=pytest.mark.skip(reason="no recordings found"))])
def test_every_recorded_list_endpoint_fetches_all_its_records(replay, name):
    frame, recording, server = fetch_recording(replay, name)
    records = recording.records
    meta = frame.attrs["restconnect"]

    assert len(frame) == len(records)
    assert (meta["connector"], meta["records"]) == ("github", len(records))
    assert meta["pages"] == len(recording.pages)
    assert meta["truncated"] is recording.stops_early
    if recording.stops_early:
        assert meta["truncated_reason"] == f"max_pages={len(recording.pages)}"
    else:
        assert not server.misses()

    expected_columns = {key for record in records for key in flat_keys(record)}
    assert set(frame.columns) == expected_columns
    for key in ("id", "sha", "ref"):
        if records and all(key in record for record in records):
            assert frame[key].tolist() == [record[key] for record in records]
            break
    assert_github_headers(server)


def assert_github_headers(server: ReplayServer) -> None:
    """Every request carried the headers GitHub documents, and the token."""
    assert server.received
    for received in server.received:
        assert received.header("Accept") == "application/vnd.github+json"
        assert received.header("X-GitHub-Api-Version") == "2022-11-28"
        assert received.header("Authorization") == f"Bearer {TOKEN}"
        assert re.match(r"restconnect/\d", received.header("User-Agent") or "")


def test_declared_datetimes_are_parsed_as_utc_timestamps(replay):
    frame, recording, _ = fetch_recording(replay, "issues_repo_4pages_full")
    first = recording.records[0]

    for column in ("created_at", "updated_at", "closed_at"):
        assert isinstance(frame[column].dtype, pd.DatetimeTZDtype), column
    assert frame["created_at"].iloc[0] == pd.Timestamp(first["created_at"])
    assert frame["created_at"].dt.tz is not None


# ---------------------------------------------------------------- pagination shapes


def test_the_spec_asks_for_100_per_page_by_default(replay):
    recording = Recording.read("git_refs_7pages")
    server = replay("git_refs_7pages")

    frame = github(server).fetch("git_refs", owner="sigmavirus24", repo="github3.py")

    first = server.requests_for("/repos/sigmavirus24/github3.py/git/refs")[0]
    assert first.params == {"per_page": "100"}
    assert len(frame) == len(recording.records)


def test_a_page_size_given_by_the_caller_wins_over_the_spec(replay):
    server = replay("issue_comments_per_page_3_3pages")

    frame = github(server).fetch("issue_comments", owner="PyGithub", repo="PyGithub",
                                 issue_number=1136, per_page=3)

    first = server.requests_for("/repos/PyGithub/PyGithub/issues/1136/comments")[0]
    assert first.params == {"per_page": "3"}
    assert len(frame) == len(Recording.read("issue_comments_per_page_3_3pages").records)


def test_next_links_to_repositories_ids_are_followed_verbatim(replay):
    recording = Recording.read("issues_repo_per_page_100_5pages_trimmed")
    server = replay("issues_repo_per_page_100_5pages_trimmed")

    conn = github(server)
    frame = conn.fetch("issues", owner="openframeworks", repo="openFrameworks")

    later = [urlsplit(page["url"]).path for page in recording.pages[1:]]
    assert set(later) == {"/repositories/345337/issues"}
    assert len(server.requests_for("/repositories/345337/issues")) == len(later)
    assert len(frame) == len(recording.records)


def test_no_content_gives_an_empty_frame(replay):
    server = replay("issues_repo_204_no_content")
    conn = github(server)
    conn.spec.pagination.page_size = None

    frame = conn.fetch("issues", owner="openframeworks", repo="openFrameworks")

    assert frame.empty
    meta = frame.attrs["restconnect"]
    assert (meta["records"], meta["pages"], meta["truncated"]) == (0, 1, False)


def test_an_empty_last_page_ends_the_fetch(replay):
    recording = Recording.read("org_events_empty_last_page")
    assert [len(page["body"]) for page in recording.pages][-1] == 0
    server = replay("org_events_empty_last_page")
    conn = github(server)
    conn.spec.pagination.page_size = None

    pages = list(conn.iter_pages("org_events", org="BeaverSoftware"))

    expected = [len(page["body"]) for page in recording.pages]
    assert [len(page.records) for page in pages] == expected
    assert not server.misses()


@pytest.mark.parametrize("name", ["users_since_cursor_2pages",
                                  "users_since_link_uri_template",
                                  "repositories_per_page_1_link_uri_template"])
def test_a_uri_template_rel_first_does_not_disturb_the_next_link(replay, name):
    recording = Recording.read(name)
    assert "{" in links(recording.pages[0])["first"]
    server = replay(name)
    conn = github(server)
    endpoint, values = endpoint_for(conn.spec, recording.first_url)
    match_recorded_page_size(conn, recording.first_url)

    pages = list(conn.iter_pages(endpoint, max_pages=len(recording.pages), **values,
                                 **recorded_query(recording.first_url)))

    assert len(pages) == len(recording.pages)
    assert pages[0].response.links["first"]["url"] == links(
        recording.pages[0])["first"].replace(UPSTREAM, server.url)
    for page, line in zip(pages[1:], recording.pages[1:]):
        assert recorded_query(page.response.url) == recorded_query(line["url"])


def test_a_recording_that_stops_early_answers_the_next_page_with_404(replay):
    recording = Recording.read("commits_3pages_last_sha_cursor")
    server = replay("commits_3pages_last_sha_cursor")
    conn = github(server)
    conn.spec.pagination.page_size = None

    with pytest.raises(HTTPStatusError) as caught:
        conn.fetch("commits", owner="PyGithub", repo="PyGithub")

    missing = links(recording.pages[-1])["next"]
    assert caught.value.status == 404
    assert caught.value.endpoint == "commits"
    assert caught.value.url == missing.replace(UPSTREAM, server.url)
    assert [item.params for item in server.misses()] == [recorded_query(missing)]


def test_search_results_come_from_items(replay):
    frame, recording, _ = fetch_recording(replay, "search_repositories_2pages")

    assert "total_count" not in frame.columns
    assert "incomplete_results" not in frame.columns
    assert frame["full_name"].tolist() == [r["full_name"] for r in recording.records]


# ---------------------------------------------------------------- single objects


def test_a_single_object_is_one_row(replay):
    [line] = Recording.read("rate_limit_status").lines
    server = replay("rate_limit_status")

    frame = github(server).fetch("rate_limit")

    assert len(frame) == 1
    core = line["body"]["resources"]["core"]
    assert frame["resources.core.remaining"].iloc[0] == core["remaining"]


def test_retries_502_three_times_then_succeeds(replay):
    recording = Recording.read("retry_502_x3_then_200")
    server = replay("retry_502_x3_then_200")

    frame = github(server).fetch("repo", owner="PyGithub", repo="PyGithub")

    assert [item.status for item in server.received] == [
        line["status"] for line in recording.lines]
    assert frame["full_name"].tolist() == [recording.lines[-1]["body"]["full_name"]]


# ---------------------------------------------------------------- errors


def test_bad_credentials_raise_auth_error(replay):
    server = replay("error_401_bad_credentials")

    with pytest.raises(AuthError) as caught:
        github(server).fetch("user")

    error = caught.value
    assert (error.connector, error.method) == ("github", "bearer")
    assert "401" in str(error) and "Bad credentials" in str(error)
    assert f"{server.url}/user" in str(error)
    assert TOKEN not in str(error)


def test_unknown_user_raises_http_404(replay):
    server = replay("error_404_not_found")

    with pytest.raises(HTTPStatusError) as caught:
        github(server).fetch("profile", user="ThisUserShouldReallyNotExist")

    error = caught.value
    assert (error.status, error.connector, error.endpoint) == (404, "github", "profile")
    assert error.url == f"{server.url}/users/ThisUserShouldReallyNotExist"
    assert "Not Found" in error.body_excerpt
    assert TOKEN not in str(error)


def test_validation_failure_raises_http_422_with_githubs_message(replay):
    [line] = Recording.read("error_422_validation_failed").lines
    server = replay("error_422_validation_failed")

    with pytest.raises(HTTPStatusError) as caught:
        github(server).request("POST", "/user/keys", json=line["request_body"],
                               endpoint="user_keys")

    error = caught.value
    assert (error.status, error.method, error.endpoint) == (422, "POST", "user_keys")
    assert error.connector == "github"
    assert "Validation Failed" in error.body_excerpt
    assert json.loads(server.received[0].body) == line["request_body"]


def test_a_503_with_an_html_body_is_retried_then_reported(replay):
    [line] = Recording.read("error_503_non_json_body").lines
    server = replay("error_503_non_json_body")
    conn = github(server)

    with pytest.raises(HTTPStatusError) as caught:
        conn.fetch("profile", user="jacquev6")

    error = caught.value
    assert (error.status, error.connector, error.endpoint) == (503, "github", "profile")
    assert error.url == f"{server.url}/users/jacquev6"
    assert "503 Service Unavailable" in error.body_excerpt
    assert len(server.received) == conn.spec.retry.attempts
    assert line["body"].startswith("<html>")


def test_rate_limit_exceeded_gives_a_clear_error(replay):
    server = replay("rate_limit_exceeded_403")
    conn = github(server)
    first = conn.fetch("profile", user="jacquev6")
    assert first["login"].tolist() == ["jacquev6"]

    with pytest.raises(HTTPStatusError) as caught:
        conn.fetch("profile", user="jacquev6", cache=False)

    error = caught.value
    assert (error.status, error.endpoint) == (403, "profile")
    assert "rate limit" in str(error).lower()
    assert "203.0.113.1" in error.body_excerpt


# ---------------------------------------------------------------- conditional requests


def test_a_stale_cache_entry_is_revalidated_with_its_etag(replay):
    pytest.importorskip("restconnect.cache", reason="restconnect.cache is missing")
    names = ["etag_initial_200", "etag_revalidate_304", "etag_revalidate_200_changed"]
    initial, not_modified, changed = (Recording.read(name).lines[0] for name in names)
    etag = initial["response_headers"]["etag"]
    server = replay(*names)
    conn = github(server)
    args = {"owner": "akfish", "repo": "PyGithub"}

    first = conn.fetch("repo", **args)
    kept = conn.fetch("repo", cache=0, **args)
    updated = conn.fetch("repo", cache=0, **args)

    sent = [item.header("If-None-Match") for item in server.received]
    assert sent == [None, etag, etag]
    assert [item.status for item in server.received] == [200, 304, 200]
    assert not_modified["request_headers"]["If-None-Match"] == etag
    assert kept.attrs["restconnect"]["pages_from_cache"] == 1
    assert kept.to_dict("records") == first.to_dict("records")
    assert first["updated_at"].iloc[0] == pd.Timestamp(initial["body"]["updated_at"])
    assert updated["updated_at"].iloc[0] == pd.Timestamp(changed["body"]["updated_at"])
    assert updated.attrs["restconnect"]["pages_from_cache"] == 0
