"""A Link-header page's successor is requested before the page is decoded.

Over real HTTP to a scripted server on loopback: the request goes out early,
and the fetch still asks for exactly the pages it would ask for otherwise,
in order, with the same checks, on connections left in a usable state.
"""

from __future__ import annotations

import time

import pytest
import requests

import restconnect
from restconnect.exceptions import PaginationError, TransportError
from restconnect.spec import parse_spec
from restconnect.transport import Transport
from tests.servers.scripted import Reply, ScriptedServer

TOKEN = "tok-5a6b7c8d9e0f"
PAGES = 4


@pytest.fixture()
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


def connector(server: ScriptedServer, retry: str = "{attempts: 3, backoff: 0.01}",
              timeout: float = 5):
    text = f"""
name: ahead
base_url: {server.url}
auth: {{method: bearer}}
retry: {retry}
timeout: {timeout}
pagination: {{kind: link_header}}
endpoints:
  pages: {{path: /pages}}
  other: {{path: /other, pagination: {{kind: none}}}}
"""
    spec = parse_spec(text, source="ahead.yaml")
    return restconnect.connect(spec, token=TOKEN)


def queue_pages(server: ScriptedServer, pages: int = PAGES, *, close: bool = False,
                next_url=None) -> None:
    """``pages`` pages of two records, each linking to the next."""
    for number in range(1, pages + 1):
        headers = {}
        if number < pages:
            url = next_url(number + 1) if next_url else \
                f"{server.url}/pages?page={number + 1}"
            headers["Link"] = f'<{url}>; rel="next"'
        records = [{"id": number * 10 + i, "page": number} for i in range(2)]
        server.queue("/pages", Reply(body=records, headers=headers, close=close))


def seen_pages(server: ScriptedServer) -> list[str]:
    return [seen.query.get("page", "1") for seen in server.requests_to("/pages")]


def wait_for_requests(server: ScriptedServer, path: str, count: int) -> int:
    """How many requests reached ``path``, waiting up to 2 s for ``count``."""
    deadline = time.monotonic() + 2
    while len(server.requests_to(path)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(server.requests_to(path))


def test_the_next_page_is_requested_while_a_page_is_handed_over(server):
    queue_pages(server)
    with connector(server) as conn:
        pages = conn.iter_pages("pages", cache=False, concurrency=1)
        first = next(pages)

        # The generator is paused at page 1, yet page 2 is already asked for.
        assert [r["id"] for r in first.records] == [10, 11]
        assert wait_for_requests(server, "/pages", 2) == 2
        rest = list(pages)

    assert [page.index for page in rest] == [1, 2, 3]
    assert seen_pages(server) == ["1", "2", "3", "4"]
    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}"
               for s in server.requests_to("/pages"))


def test_the_pages_come_over_one_kept_alive_connection(server):
    queue_pages(server)
    with connector(server) as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1)

    assert frame["id"].tolist() == [10, 11, 20, 21, 30, 31, 40, 41]
    assert len({seen.client for seen in server.requests_to("/pages")}) == 1


@pytest.mark.parametrize("option", [{"max_pages": 2}, {"limit": 3}])
def test_a_cap_sends_no_request_beyond_it(server, option):
    queue_pages(server)
    with connector(server) as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1, **option)
        time.sleep(0.2)  # room for a stray request to arrive

    assert seen_pages(server) == ["1", "2"]
    assert len(frame) == (4 if "max_pages" in option else 3)
    assert frame.attrs["restconnect"]["truncated"] is True


def test_leaving_early_drops_the_request_in_flight(server):
    queue_pages(server)
    server.queue("/other", Reply(body=[{"other": True}]))
    with connector(server) as conn:
        for _page in conn.iter_pages("pages", cache=False, concurrency=1):
            break
        assert wait_for_requests(server, "/pages", 2) == 2

        # The unread answer to page 2 must not pass for the next response.
        other = conn.fetch("other", cache=False)

    assert other.to_dict("records") == [{"other": True}]


def test_a_server_that_closes_each_connection_costs_no_retry(server):
    queue_pages(server, close=True)
    with connector(server, retry="{attempts: 1}") as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1)
        retries = conn.http.stats.retries

    assert frame["page"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    assert retries == 0


def test_a_request_sent_as_the_server_closes_the_connection_is_sent_again(server):
    queue_pages(server, 3)
    server.replies["/pages"].insert(1, Reply(drop=True))
    with connector(server, retry="{attempts: 1}") as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1)
        retries = conn.http.stats.retries

    assert frame["page"].tolist() == [1, 1, 2, 2, 3, 3]
    assert seen_pages(server) == ["1", "2", "2", "3"]
    assert retries == 0


def test_a_next_page_on_another_host_fails_after_the_pages_before_it(server):
    other = ScriptedServer()
    try:
        queue_pages(server, 3, next_url=lambda n: f"http://localhost:{other.port}"
                    f"/pages?page={n}" if n == 3 else f"{server.url}/pages?page={n}")
        seen = []
        with connector(server) as conn, pytest.raises(PaginationError,
                                                      match="another host"):
            for page in conn.iter_pages("pages", cache=False, concurrency=1):
                seen.append(page.index)

        assert seen == [0, 1]
        assert other.requests_to("/pages") == []
    finally:
        other.stop()


def test_a_repeated_next_link_fails_after_the_pages_before_it(server):
    queue_pages(server, 3, next_url=lambda n: f"{server.url}/pages?page=2")
    seen = []
    with connector(server) as conn, pytest.raises(PaginationError, match="repeats"):
        for page in conn.iter_pages("pages", cache=False, concurrency=1):
            seen.append(page.index)

    assert seen == [0, 1]
    assert seen_pages(server) == ["1", "2"]


def test_an_error_on_a_page_sent_ahead_is_raised_in_turn(server):
    queue_pages(server, 2)
    server.replies["/pages"][1] = Reply(503, {"message": "down"})
    seen = []
    with connector(server, retry="{attempts: 2, backoff: 0.01}") as conn, \
            pytest.raises(restconnect.HTTPStatusError, match="503"):
        for page in conn.iter_pages("pages", cache=False, concurrency=1):
            seen.append(page.index)

    assert seen == [0]
    assert seen_pages(server) == ["1", "2", "2"]  # the retry rules still apply


def test_a_slow_page_sent_ahead_times_out_as_any_other(server):
    queue_pages(server, 2)
    server.replies["/pages"][1] = Reply(body=[], delay=1.0)
    with connector(server, retry="{attempts: 1}", timeout=0.3) as conn, \
            pytest.raises(TransportError, match="timed out"):
        conn.fetch("pages", cache=False, concurrency=1)


# ------------------------------------------------------------ the transport


def test_send_early_needs_an_open_connection_and_reuses_it(server):
    server.queue("/other", Reply(body={"n": 1}), Reply(body={"n": 2}))
    session = requests.Session()
    session.trust_env = False  # no CA bundle from the environment: verify=True
    transport = Transport()
    session.mount("http://", transport)
    request = requests.Request("GET", f"{server.url}/other").prepare()

    assert transport.send_early(request, timeout=5) is None  # nothing open yet
    assert server.requests_to("/other") == []
    assert session.get(f"{server.url}/other").json() == {"n": 1}

    sent = transport.send_early(request, timeout=5)
    assert sent is not None
    response = transport.receive(sent)

    assert response.status_code == 200 and response.json() == {"n": 2}
    assert len({seen.client for seen in server.requests_to("/other")}) == 1
    session.close()


def test_receive_raises_requests_own_timeout_and_leaves_the_pool_usable(server):
    server.queue("/other", Reply(body={"n": 1}), Reply(body={"n": 2}, delay=1.0),
                 Reply(body={"n": 3}))
    session = requests.Session()
    session.trust_env = False  # no CA bundle from the environment: verify=True
    transport = Transport()
    session.mount("http://", transport)
    url = f"{server.url}/other"
    session.get(url).content

    sent = transport.send_early(requests.Request("GET", url).prepare(), timeout=0.2)
    with pytest.raises(requests.exceptions.ReadTimeout):
        transport.receive(sent)

    assert session.get(url, timeout=5).json() == {"n": 3}
    session.close()
