"""The GitHub replay server itself, driven with plain ``requests``.

These tests check the server against the recordings it serves, so that the
connector tests in ``test_github_replay.py`` can trust it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.servers.replay import (
    UPSTREAM,
    ReplayServer,
    fixtures_dir,
    load_exchanges,
    request_key,
)

FIXTURES = fixtures_dir()

pytestmark = pytest.mark.skipif(
    not (FIXTURES / "README.md").is_file(),
    reason=f"recorded GitHub fixtures not found at {FIXTURES} (<repo>/../shared)",
)


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.jsonl"


def raw_lines(name: str) -> list[dict]:
    """The recording as plain JSON, read without the server's loader."""
    with fixture(name).open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def local(server: ReplayServer, url: str) -> str:
    return url.replace(UPSTREAM, server.url)


@pytest.fixture
def replay():
    """Start a replay server for the named recordings; stopped after the test."""
    servers: list[ReplayServer] = []

    def start(*names: str) -> ReplayServer:
        server = ReplayServer.from_files([fixture(name) for name in names]).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_binds_loopback_on_a_free_port_and_releases_it(replay):
    server = replay("rate_limit_status")
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port

    assert host == "127.0.0.1" and port
    assert requests.get(server.url + "/rate_limit", timeout=5).status_code == 200

    server.stop()
    with pytest.raises(OSError), socket.create_connection((host, port), timeout=1):
        pass


def test_serves_the_recorded_status_headers_and_body(replay):
    server = replay("rate_limit_status")
    [line] = raw_lines("rate_limit_status")

    response = requests.get(server.url + "/rate_limit", timeout=5)

    assert response.status_code == line["status"]
    assert response.json() == line["body"]
    for name, value in line["response_headers"].items():
        assert response.headers[name] == value, name


def test_header_case_and_status_phrase_are_kept(replay):
    server = replay("error_503_non_json_body")
    [line] = raw_lines("error_503_non_json_body")

    response = requests.get(server.url + "/users/jacquev6", timeout=5)

    assert response.status_code == 503
    # As recorded, typo included: the phrase comes from GitHub's Status header.
    assert response.reason == line["response_headers"]["status"].split(" ", 1)[1]
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.text == line["body"]


def test_query_parameters_match_in_any_order(replay):
    server = replay("search_repositories_2pages")
    first = raw_lines("search_repositories_2pages")[0]
    pairs = sorted(request_key("GET", first["url"])[2], reverse=True)

    url = server.url + "/search/repositories"
    response = requests.get(url, params=pairs, timeout=5)

    assert response.status_code == 200
    assert len(response.json()["items"]) == len(first["body"]["items"])


def test_nth_identical_request_gets_nth_response_and_the_last_repeats(replay):
    server = replay("retry_502_x3_then_200")
    recorded = [line["status"] for line in raw_lines("retry_502_x3_then_200")]

    statuses = [requests.get(server.url + "/repos/PyGithub/PyGithub", timeout=5)
                .status_code for _ in range(len(recorded) + 2)]

    assert statuses == recorded + [recorded[-1]] * 2


@pytest.mark.parametrize("name", [
    "git_refs_7pages", "stargazers_3pages_first_prev_next_last",
    "issue_comments_per_page_3_3pages",
])
def test_link_headers_lead_back_to_the_server_until_the_last_page(replay, name):
    lines = raw_lines(name)
    pages = [line for line in lines if isinstance(line["body"], list)]
    server = replay(name)

    url, counts = local(server, pages[0]["url"]), []
    while url:
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        counts.append(len(response.json()))
        url = response.links.get("next", {}).get("url")
        assert url is None or url.startswith(server.url + "/")

    assert counts == [len(page["body"]) for page in pages]
    assert not server.misses()


def test_bodies_point_at_the_server_instead_of_github(replay):
    server = replay("stargazers_3pages_first_prev_next_last")
    first = raw_lines("stargazers_3pages_first_prev_next_last")[0]

    body = requests.get(local(server, first["url"]), timeout=5).json()

    assert body[0]["url"] == local(server, first["body"][0]["url"])
    assert UPSTREAM not in json.dumps(body)


def test_a_page_that_was_not_recorded_is_a_404(replay):
    server = replay("pulls_closed_first_page")
    [line] = raw_lines("pulls_closed_first_page")
    first = requests.get(local(server, line["url"]), timeout=5)

    missing = requests.get(first.links["next"]["url"], timeout=5)

    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"
    assert missing.headers["X-Replay-Miss"] == "1"
    assert [item.params.get("page") for item in server.misses()] == ["2"]


def test_no_content_and_not_modified_have_empty_bodies(replay):
    no_content = replay("issues_repo_204_no_content")
    issues = no_content.url + "/repos/openframeworks/openFrameworks/issues"
    response = requests.get(issues, timeout=5)
    assert (response.status_code, response.content) == (204, b"")

    etags = replay("etag_initial_200", "etag_revalidate_304")
    etag = raw_lines("etag_initial_200")[0]["response_headers"]["etag"]
    response = requests.get(etags.url + "/repos/akfish/PyGithub",
                            headers={"If-None-Match": etag}, timeout=5)
    assert (response.status_code, response.content) == (304, b"")
    assert response.headers["etag"] == etag


def test_conditional_recordings_answer_only_their_validator(replay):
    server = replay("etag_initial_200", "etag_revalidate_304",
                    "etag_revalidate_200_changed")
    etag = raw_lines("etag_initial_200")[0]["response_headers"]["etag"]
    changed = raw_lines("etag_revalidate_200_changed")[0]["response_headers"]["etag"]
    url = server.url + "/repos/akfish/PyGithub"

    plain = requests.get(url, timeout=5)
    revalidated = requests.get(url, headers={"If-None-Match": etag}, timeout=5)
    after_change = requests.get(url, headers={"If-None-Match": etag}, timeout=5)
    other_validator = requests.get(url, headers={"If-None-Match": '"other"'}, timeout=5)

    assert (plain.status_code, plain.headers["ETag"]) == (200, etag)
    assert revalidated.status_code == 304
    assert (after_change.status_code, after_change.headers["ETag"]) == (200, changed)
    assert (other_validator.status_code, other_validator.headers["ETag"]) == (200, etag)


def test_records_what_the_client_sent(replay):
    server = replay("error_422_validation_failed")
    [line] = raw_lines("error_422_validation_failed")

    response = requests.post(server.url + "/user/keys", json=line["request_body"],
                             headers={"Authorization": "token abc", "X-Test": "1"},
                             timeout=5)

    assert response.status_code == 422
    [received] = server.received
    assert received.method == "POST" and received.path == "/user/keys"
    assert received.header("authorization") == "token abc"
    assert received.header("X-TEST") == "1"
    assert json.loads(received.body) == line["request_body"]
    assert received.exchange is not None and received.exchange.status == 422


def test_every_recording_loads_and_its_first_request_is_served(replay):
    files = sorted(FIXTURES.glob("*.jsonl"))
    assert len(files) >= 30

    for path in files:
        first = load_exchanges(path)[0]
        server = replay(path.stem)
        validator = first.if_none_match
        conditional = {"If-None-Match": validator} if validator else {}
        response = requests.request(first.method, local(server, first.url),
                                    headers=conditional, timeout=5)
        assert response.status_code == first.status, path.name
        server.stop()
