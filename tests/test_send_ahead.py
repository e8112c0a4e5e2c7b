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


HMAC = """
  method: hmac
  components: [method, path, query, timestamp, nonce]
  signature_header: X-Signature
  timestamp_header: X-Timestamp
  nonce_header: X-Nonce
"""


def connector(server: ScriptedServer, retry: str = "{attempts: 3, backoff: 0.01}",
              timeout: float = 5, auth: str = "{method: bearer}", extra: str = ""):
    text = f"""
name: ahead
base_url: {server.url}
auth: {auth}
retry: {retry}
timeout: {timeout}
pagination: {{kind: link_header}}
{extra}
endpoints:
  pages: {{path: /pages}}
  other: {{path: /other, pagination: {{kind: none}}}}
"""
    spec = parse_spec(text, source="ahead.yaml")
    credentials = {"secret": TOKEN} if "hmac" in auth else {"token": TOKEN}
    return restconnect.connect(spec, **credentials)


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


def read_ahead(conn):
    return conn.iter_pages("pages", cache=False, concurrency=1, read_ahead=True)


def seen_pages(server: ScriptedServer) -> list[str]:
    return [seen.query.get("page", "1") for seen in server.requests_to("/pages")]


def wait_for_requests(server: ScriptedServer, path: str, count: int,
                      within: float = 2) -> int:
    """How many requests reached ``path``, waiting up to ``within`` s for ``count``."""
    deadline = time.monotonic() + within
    while len(server.requests_to(path)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(server.requests_to(path))


def test_the_next_page_is_requested_while_a_page_is_handed_over(server):
    queue_pages(server)
    with connector(server) as conn:
        pages = read_ahead(conn)
        first = next(pages)

        # The generator is paused at page 1, yet page 2 is already asked for.
        assert [r["id"] for r in first.records] == [10, 11]
        assert wait_for_requests(server, "/pages", 2) == 2
        rest = list(pages)

    assert [page.index for page in rest] == [1, 2, 3]
    assert seen_pages(server) == ["1", "2", "3", "4"]
    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}"
               for s in server.requests_to("/pages"))


def test_iter_pages_asks_for_each_page_when_the_loop_does(server):
    queue_pages(server)
    with connector(server) as conn:
        pages = conn.iter_pages("pages", cache=False, concurrency=1)
        next(pages)

        assert wait_for_requests(server, "/pages", 2, within=0.3) == 1
        assert len(list(pages)) == 3


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
        for _page in read_ahead(conn):
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


def test_a_request_sent_again_is_signed_again(server):
    queue_pages(server, 2)
    server.replies["/pages"].insert(1, Reply(drop=True))
    with connector(server, retry="{attempts: 1}", auth=HMAC) as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1)

    assert frame["page"].tolist() == [1, 1, 2, 2]
    nonces = [seen.headers["X-Nonce"] for seen in server.requests_to("/pages")]
    assert len(nonces) == 3 and len(set(nonces)) == 3


def test_a_request_that_cannot_go_at_once_is_signed_when_it_goes(server):
    # Without an open connection (the server closes each one) nothing is sent
    # ahead, and the signature's timestamp must be the time of sending.
    queue_pages(server, 2, close=True)
    with connector(server, auth=HMAC) as conn:
        pages = read_ahead(conn)
        next(pages)
        handed_over = time.time()
        time.sleep(1.2)
        list(pages)

    second = server.requests_to("/pages")[1]
    assert int(second.headers["X-Timestamp"]) >= int(handed_over + 1)


def test_nothing_is_sent_ahead_while_the_quota_may_make_it_wait(server):
    reset = int(time.time()) + 60
    queue_pages(server, 2)
    server.replies["/pages"][0].headers.update({
        "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "3",
        "X-RateLimit-Reset": str(reset)})
    extra = "rate_limit: {slow_down_below: 5, max_wait: 5}"
    sleeps = []
    with connector(server, extra=extra) as conn:
        conn.http._sleep = sleeps.append  # the pause is recorded, not slept
        pages = read_ahead(conn)
        next(pages)

        assert wait_for_requests(server, "/pages", 2, within=0.3) == 1
        assert sleeps == []  # page 1 was handed over before any pause
        assert len(list(pages)) == 1
    assert len(sleeps) == 1 and sleeps[0] > 0


def test_an_answer_cut_short_is_fetched_again(server):
    queue_pages(server, 3)
    server.replies["/pages"].insert(1, Reply(body=[{"id": 0}] * 50, cut=40))
    with connector(server, retry="{attempts: 1}") as conn:
        frame = conn.fetch("pages", cache=False, concurrency=1)

    assert frame["page"].tolist() == [1, 1, 2, 2, 3, 3]
    assert seen_pages(server) == ["1", "2", "2", "3"]


def test_an_answer_that_stalls_half_way_follows_the_retry_rules(server):
    queue_pages(server, 2)
    server.replies["/pages"][1] = Reply(body=[{"id": 0}] * 50, cut=40, stall=1.0)
    with connector(server, retry="{attempts: 1}", timeout=0.3) as conn, \
            pytest.raises(TransportError):
        conn.fetch("pages", cache=False, concurrency=1)

    assert seen_pages(server) == ["1", "2"]  # timed out once, not sent again


def test_a_body_cut_short_is_retried_by_the_rules_then_reported(server):
    server.queue("/other", Reply(body=[{"n": 1}] * 50, cut=40),
                 Reply(body=[{"n": 2}]))
    with connector(server, retry="{attempts: 2, backoff: 0.01}") as conn:
        assert conn.fetch("other", cache=False)["n"].tolist() == [2]
        assert conn.http.stats.retries == 1

    server.queue("/other", Reply(body=[{"n": 1}] * 50, cut=40))
    server.replies["/other"].popleft()
    with connector(server, retry="{attempts: 1}") as conn, \
            pytest.raises(TransportError, match="ahead: GET"):
        conn.fetch("other", cache=False)


def test_a_next_page_on_another_host_fails_after_the_pages_before_it(server):
    other = ScriptedServer()
    try:
        queue_pages(server, 3, next_url=lambda n: f"http://localhost:{other.port}"
                    f"/pages?page={n}" if n == 3 else f"{server.url}/pages?page={n}")
        seen = []
        with connector(server) as conn, pytest.raises(PaginationError,
                                                      match="another host"):
            for page in read_ahead(conn):
                seen.append(page.index)

        assert seen == [0, 1]
        assert other.requests_to("/pages") == []
    finally:
        other.stop()


def test_a_repeated_next_link_fails_after_the_pages_before_it(server):
    queue_pages(server, 3, next_url=lambda n: f"{server.url}/pages?page=2")
    seen = []
    with connector(server) as conn, pytest.raises(PaginationError, match="repeats"):
        for page in read_ahead(conn):
            seen.append(page.index)

    assert seen == [0, 1]
    assert seen_pages(server) == ["1", "2"]


def test_an_error_on_a_page_sent_ahead_is_raised_in_turn(server):
    queue_pages(server, 2)
    server.replies["/pages"][1] = Reply(503, {"message": "down"})
    seen = []
    with connector(server, retry="{attempts: 2, backoff: 0.01}") as conn, \
            pytest.raises(restconnect.HTTPStatusError, match="503"):
        for page in read_ahead(conn):
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


@pytest.fixture()
def session():
    """A session sending through a :class:`Transport` of its own."""
    made = requests.Session()
    made.trust_env = False  # no CA bundle from the environment: verify=True
    made.mount("http://", Transport())
    yield made
    made.close()


def test_send_early_needs_an_open_connection_and_reuses_it(server, session):
    server.queue("/other", Reply(body={"n": 1}), Reply(body={"n": 2}))
    transport = session.get_adapter("http://")
    request = requests.Request("GET", f"{server.url}/other").prepare()

    assert transport.open_connection(request) is None  # nothing open yet
    assert session.get(f"{server.url}/other").json() == {"n": 1}

    opened = transport.open_connection(request)
    assert opened is not None
    sent = transport.send_early(request, opened, timeout=5)
    response = transport.receive(sent)

    assert response.status_code == 200 and response.json() == {"n": 2}
    assert len({seen.client for seen in server.requests_to("/other")}) == 1


def test_a_connection_taken_and_released_unused_is_reused(server, session):
    server.queue("/other", Reply(body={"n": 1}), Reply(body={"n": 2}))
    transport = session.get_adapter("http://")
    url = f"{server.url}/other"
    session.get(url).content

    transport.release(transport.open_connection(requests.Request("GET", url).prepare()))

    assert session.get(url).json() == {"n": 2}
    assert len({seen.client for seen in server.requests_to("/other")}) == 1


def test_receive_raises_requests_own_timeout_and_leaves_the_pool_usable(server,
                                                                        session):
    server.queue("/other", Reply(body={"n": 1}), Reply(body={"n": 2}, delay=1.0),
                 Reply(body={"n": 3}))
    transport = session.get_adapter("http://")
    url = f"{server.url}/other"
    session.get(url).content

    request = requests.Request("GET", url).prepare()
    sent = transport.send_early(request, transport.open_connection(request),
                                timeout=0.2)
    with pytest.raises(requests.exceptions.ReadTimeout):
        transport.receive(sent)

    assert session.get(url, timeout=5).json() == {"n": 3}
