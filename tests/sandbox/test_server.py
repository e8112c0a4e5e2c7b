"""The sandbox server itself: lifecycle, determinism, validators, quotas,
failure injection, incremental changes and statistics."""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from email.utils import parsedate_to_datetime

import pytest
import requests

from restconnect import sandbox as sandbox_module

# ---------------------------------------------------------------- lifecycle


def test_start_serves_on_a_free_loopback_port_and_stop_frees_it():
    box = sandbox_module.start()
    try:
        assert box.url == f"http://127.0.0.1:{box.port}" and box.port > 0
        assert requests.get(f"{box.url}/_sandbox", timeout=5).status_code == 200
    finally:
        box.stop()

    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", box.port), timeout=1).close()
    assert not box.running


def test_stop_closes_kept_alive_connections():
    box = sandbox_module.start()
    session = requests.Session()
    session.get(f"{box.url}/_sandbox", timeout=5)
    box.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(f"{box.url}/_sandbox", timeout=5)


def test_context_manager_starts_and_stops():
    with sandbox_module.Sandbox() as box:
        assert box.running
        assert requests.get(f"{box.url}/", timeout=5).json()["routes"]
    assert not box.running


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    def first_pages(seed: int) -> tuple[bytes, bytes, str]:
        with sandbox_module.Sandbox(seed=seed) as box:
            token = {"Authorization": f"Bearer {box.credentials['token']}"}
            repos = requests.get(f"{box.url}/code/repos", headers=token, timeout=5)
            pay = requests.get(f"{box.url}/pay/invoices?limit=50", headers=token,
                               timeout=5)
            return repos.content, pay.content, repos.headers["ETag"]

    one, two, other = first_pages(7), first_pages(7), first_pages(8)

    assert one == two
    assert one[0] != other[0] and one[1] != other[1]
    assert one[2] == '"' + hashlib.sha256(one[0]).hexdigest()[:40] + '"'


def test_sizes_are_configurable():
    with sandbox_module.Sandbox(sizes={"repos": 12, "issues": 30}) as box:
        token = {"Authorization": f"Bearer {box.credentials['token']}"}
        issues = requests.get(f"{box.url}/code/issues?per_page=100", headers=token,
                              timeout=5).json()

        assert len(box.data.repos.rows) == 12
        assert len(issues) == 30
    with pytest.raises(ValueError, match="unknown sandbox sizes"):
        sandbox_module.Sandbox(sizes={"planets": 3})


def test_every_start_has_new_secrets():
    with sandbox_module.Sandbox() as one, sandbox_module.Sandbox() as two:
        assert set(one.secret_values()).isdisjoint(two.secret_values())


def test_unknown_settings_are_refused(box):
    with pytest.raises(ValueError, match="unknown sandbox settings"):
        box.configure(latencyy=1)
    answer = requests.post(f"{box.url}/_sandbox/config", json={"quota": "lots"},
                           timeout=5)
    assert answer.status_code == 400


# ---------------------------------------------------------------- validators


def test_etag_and_if_none_match_give_304_with_no_body(box, bearer):
    url = f"{box.url}/code/repos?per_page=10"
    first = bearer.get(url)

    again = bearer.get(url, headers={"If-None-Match": first.headers["ETag"]})
    weak = bearer.get(url, headers={"If-None-Match": "W/" + first.headers["ETag"]})
    other = bearer.get(url, headers={"If-None-Match": '"something-else"'})

    assert first.headers["ETag"].startswith('"')
    assert again.status_code == weak.status_code == 304
    assert again.content == b"" and again.headers["ETag"] == first.headers["ETag"]
    assert other.status_code == 200
    assert box.stats["not_modified"] == 2


def test_if_modified_since_gives_304_until_a_change(box, bearer):
    url = f"{box.url}/code/issues?per_page=5"
    first = bearer.get(url)
    stamp = first.headers["Last-Modified"]

    unchanged = bearer.get(url, headers={"If-Modified-Since": stamp})
    box.touch("issues", count=1)
    changed = bearer.get(url, headers={"If-Modified-Since": stamp})

    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert parsedate_to_datetime(changed.headers["Last-Modified"]) > \
        parsedate_to_datetime(stamp)


def test_a_304_does_not_spend_quota(box, bearer):
    url = f"{box.url}/code/labels"
    first = bearer.get(url)
    again = bearer.get(url, headers={"If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304
    remaining = "X-RateLimit-Remaining"
    assert again.headers[remaining] == first.headers[remaining]


def test_post_answers_have_no_validators(box, bearer):
    answer = bearer.post(f"{box.url}/code/issues/search", json={"limit": 1})

    assert "ETag" not in answer.headers


# ---------------------------------------------------------------- rate limits


def test_rate_limit_headers_count_down(box, bearer):
    answers = [bearer.get(f"{box.url}/code/labels") for _ in range(3)]
    remaining = [int(a.headers["X-RateLimit-Remaining"]) for a in answers]
    last = answers[-1].headers

    assert remaining == [4999, 4998, 4997]
    assert last["X-RateLimit-Limit"] == "5000" and last["X-RateLimit-Used"] == "3"
    assert 0 < int(last["X-RateLimit-Reset"]) - time.time() <= 3601
    assert last["RateLimit-Policy"] == '"default";q=5000;w=3600'
    assert last["RateLimit"].startswith('"default";r=4997;t=')


def test_a_spent_quota_is_429_with_retry_after(box, bearer):
    with box.configured(quota=2, quota_window=30):
        answers = [bearer.get(f"{box.url}/code/labels") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert 0 < int(refused.headers["Retry-After"]) <= 30
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "rate limit" in refused.json()["message"]


def test_each_credential_has_its_own_bucket(box, bearer):
    with box.configured(quota=1):
        mine = [bearer.get(f"{box.url}/code/labels").status_code for _ in range(2)]
        theirs = requests.get(f"{box.url}/code/labels", timeout=5, headers={
            "Authorization": f"Bearer {box.credentials['other_token']}"}).status_code

    assert mine == [200, 429]
    assert theirs == 200


# ---------------------------------------------------------------- failure injection


def test_fail_500_once_then_succeed(box, bearer):
    url = f"{box.url}/code/labels?_fail=500;count=1"

    assert [bearer.get(url).status_code for _ in range(3)] == [500, 200, 200]


def test_fail_by_header_with_a_count_and_retry_after_seconds(box, bearer):
    headers = {"X-Sandbox-Fail": "429;count=2;retry_after=3"}
    answers = [bearer.get(f"{box.url}/pay/balance", headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["error"]["type"] == "rate_limit_error"


def test_fail_429_with_an_http_date(box, bearer):
    answer = bearer.get(f"{box.url}/code/labels",
                        params={"_fail": "429;retry_after=date:5"})
    when = parsedate_to_datetime(answer.headers["Retry-After"]).timestamp()

    assert answer.status_code == 429
    assert 3 <= when - time.time() <= 7


def test_fail_503_always_without_a_count(box, bearer):
    codes = [bearer.get(f"{box.url}/code/labels", params={"_fail": "503"}).status_code
             for _ in range(3)]

    assert codes == [503, 503, 503]


def test_failure_keys_keep_counters_apart(box, bearer):
    first = bearer.get(f"{box.url}/code/labels", params={"_fail": "502;count=1;key=a"})
    second = bearer.get(f"{box.url}/code/labels", params={"_fail": "502;count=1;key=b"})

    assert first.status_code == second.status_code == 502


def test_reset_rearms_failure_counters(box, bearer):
    url = f"{box.url}/code/labels?_fail=500;count=1"
    bearer.get(url)
    requests.post(f"{box.url}/_sandbox/reset", timeout=5)

    assert bearer.get(url).status_code == 500


def test_drop_closes_the_connection_without_an_answer(box, bearer):
    with pytest.raises(requests.ConnectionError):
        bearer.get(f"{box.url}/code/labels", params={"_fail": "drop;count=1"})

    assert bearer.get(f"{box.url}/code/labels?_fail=drop;count=1").status_code == 200


def test_slow_and_delay_wait_before_answering(box, bearer):
    started = time.monotonic()
    answer = bearer.get(f"{box.url}/code/labels", params={"_fail": "slow;delay=0.4"})

    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.4


def test_a_bad_failure_spec_is_a_400(box, bearer):
    answer = bearer.get(f"{box.url}/code/labels", params={"_fail": "teapot"})

    assert answer.status_code == 400
    assert "failure spec" in answer.json()["message"]


# ---------------------------------------------------------------- incremental changes


def test_touch_makes_only_the_touched_records_newer(box, bearer):
    newest = max(row["updated_at"] for row in box.data.issues.rows)
    before = bearer.get(f"{box.url}/code/issues", params={"since": newest}).json()

    changed = requests.post(f"{box.url}/_sandbox/touch", timeout=5, json={
        "collection": "issues", "count": 4, "create": 2}).json()
    after = bearer.get(f"{box.url}/code/issues",
                       params={"since": changed["updated_at"], "per_page": 100}).json()

    assert changed["updated_at"] > newest
    assert {row["id"] for row in after} == set(changed["touched"] + changed["created"])
    assert len(after) == 6 and len(before) >= 1
    created = [row for row in after if row["id"] in changed["created"]]
    assert all(row["state"] == "open" for row in created)


def test_touch_changes_fields_as_well(box, keyed):
    invoice = next(row for row in box.data.invoices.rows if row["status"] == "open")

    box.touch("invoices", ids=[invoice["id"]])
    after = keyed.get(f"{box.url}/pay/invoices/{invoice['id']}").json()

    assert after["status"] == "paid" and after["amount_remaining"] == 0
    assert after["updated_at"] > invoice["updated_at"]


def test_touch_refuses_unknown_collections_and_ids(box):
    unknown = requests.post(f"{box.url}/_sandbox/touch", json={"collection": "pets"},
                            timeout=5)
    missing = requests.post(f"{box.url}/_sandbox/touch", timeout=5,
                            json={"collection": "issues", "ids": [1]})

    assert unknown.status_code == 400
    assert missing.status_code == 404


def test_reset_with_data_undoes_touches(box, bearer):
    original = bearer.get(f"{box.url}/code/issues?per_page=100").content
    box.touch("issues", count=50)
    requests.post(f"{box.url}/_sandbox/reset", json={"data": True}, timeout=5)

    assert bearer.get(f"{box.url}/code/issues?per_page=100").content == original


# ---------------------------------------------------------------- statistics


def test_stats_count_per_path_route_status_and_auth(box, bearer):
    login = box.data.users.rows[3]["login"]
    bearer.get(f"{box.url}/code/users/{login}")
    bearer.get(f"{box.url}/code/users/{login}")
    bearer.get(f"{box.url}/code/nowhere")
    requests.get(f"{box.url}/code/labels", timeout=5)

    over_http = requests.get(f"{box.url}/_sandbox/stats", timeout=5).json()

    assert over_http["by_path"] == {f"GET /code/users/{login}": 2,
                                    "GET /code/nowhere": 1, "GET /code/labels": 1}
    assert over_http["by_route"]["GET /code/users/{login}"] == 2
    assert over_http["by_status"] == {"200": 2, "404": 1, "401": 1}
    # An unknown path is a 404 before any credential is looked at.
    assert over_http["by_auth"] == {"bearer": 2}
    assert over_http["total"] == 4 == len(over_http["log"])
    assert over_http == {**box.stats, "log": over_http["log"]}


def test_reset_over_http_zeroes_the_counts(box, bearer):
    bearer.get(f"{box.url}/code/labels")
    requests.post(f"{box.url}/_sandbox/reset", timeout=5)

    assert box.stats["total"] == 0


# ---------------------------------------------------------------- speed and concurrency


def test_keep_alive_serves_many_requests_on_one_connection(box):
    token = box.credentials["token"]
    connection = http.client.HTTPConnection("127.0.0.1", box.port, timeout=5)
    try:
        statuses = []
        for _ in range(5):
            connection.request("GET", "/code/labels",
                               headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            sock = connection.sock
        assert statuses == [200] * 5
        assert connection.sock is sock
    finally:
        connection.close()


def test_latency_applies_per_request_and_requests_run_in_parallel():
    with sandbox_module.Sandbox(latency=0.3) as box:
        token = {"Authorization": f"Bearer {box.credentials['token']}"}
        statuses: list[int] = []

        def fetch() -> None:
            statuses.append(requests.get(f"{box.url}/code/labels", headers=token,
                                         timeout=5).status_code)
        threads = [threading.Thread(target=fetch) for _ in range(10)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        elapsed = time.monotonic() - started

    assert statuses == [200] * 10
    assert 0.3 <= elapsed < 2.0


# ---------------------------------------------------------------- foreground serve


def test_serve_prints_the_url_and_credentials_and_stops_on_ctrl_c():
    import signal
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c",
         f"from restconnect.sandbox import serve; serve(port={port})"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in iter(process.stdout.readline, ""):
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        prefix = "export RESTCONNECT_SANDBOX_TOKEN="
        token = next(line.strip()[len(prefix):] for line in lines
                     if line.strip().startswith(prefix))
        answer = requests.get(f"http://127.0.0.1:{port}/code/user", timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)

    assert lines[0].strip() == f"restconnect sandbox listening on http://127.0.0.1:{port}"
    assert answer.json()["login"] == "demo"
    assert process.returncode == 0 and "stopped" in out


def test_touch_creates_distinct_records_and_touches_none_by_default():
    from restconnect.sandbox.data import Dataset

    data = Dataset(seed=7, sizes={"issues": 20})
    before = {row["id"]: row["updated_at"] for row in data.issues.rows}
    result = data.touch("issues", create=3)
    assert len(set(result["created"])) == 3
    assert result["touched"] == []
    after = {row["id"]: row["updated_at"] for row in data.issues.rows if row["id"] in before}
    assert after == before
