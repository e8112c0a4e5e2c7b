"""What ``connect()`` and ``fetch()`` do with odd arguments, over the sandbox.

Each check is one a user trial tripped on: parameters that collide with
fetch's own keywords, out-of-range ``concurrency``, blank credentials,
credentials visible through ``vars(conn)`` and the attrs of a parent-child
fetch.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from restconnect.exceptions import CredentialsMissing
from restconnect.secret import Secret


@pytest.fixture()
def conn(sandbox):
    connector = sandbox.connect("sandbox", cache=False)
    yield connector
    connector.close()


def requests_seen(box) -> int:
    return box.stats["total"]


def last_query(box) -> dict:
    return box.stats["log"][-1]["query"]


# ------------------------------------------------------------ params= in every path


def test_incremental_fetch_sends_params_named_like_fetch_keywords(sandbox, conn):
    frame = conn.fetch("issues", incremental=True, params={"limit": 5, "cache": "x"})

    assert last_query(sandbox)["limit"] == "5"
    assert last_query(sandbox)["cache"] == "x"
    assert frame.attrs["restconnect"]["params"] == {"limit": 5, "cache": "x"}


def test_incremental_state_is_kept_per_params_mapping(sandbox, conn):
    first = conn.fetch("issues", incremental=True, params={"state": "open"})

    again = conn.fetch("issues", incremental=True, params={"state": "open"})

    rows = sandbox.data.issues.rows
    assert len(first) == sum(row["state"] == "open" for row in rows)
    assert len(again) == 0
    assert last_query(sandbox)["since"] == (
        first.attrs["restconnect"]["incremental"]["state"]["cursor"])


def test_a_filter_template_works_beside_a_parameter_named_cursor():
    from restconnect.spec import IncrementalSpec
    from restconnect.state import IncrementalPlan

    spec = IncrementalSpec(field="updated_at", mode="filter",
                           filter="updated>{cursor} repo:{repo}", filter_param="q")
    plan = IncrementalPlan(spec, ["id"], {"cursor": "2024-01-01"}, "box.issues")

    sent = plan.params({"cursor": "page-7", "repo": "demo/one"})

    assert sent == {"cursor": "page-7", "repo": "demo/one",
                    "q": "updated>2024-01-01 repo:demo/one"}


# ------------------------------------------------------------ concurrency range


@pytest.mark.parametrize("value", [0, -3, 65, 1000, True, 2.0, "4"])
def test_fetch_refuses_concurrency_out_of_range_before_sending(sandbox, conn, value):
    before = requests_seen(sandbox)

    with pytest.raises(ValueError, match=r"concurrency must be .* 1 to 64"):
        conn.fetch("repos", concurrency=value)
    with pytest.raises(ValueError, match="concurrency"):
        list(conn.iter_pages("repos", concurrency=value))
    with pytest.raises(ValueError, match="concurrency"):
        conn.fetch("all_repo_issues", concurrency=value)

    assert requests_seen(sandbox) == before


@pytest.mark.parametrize("value", [0, 500, False])
def test_connect_refuses_concurrency_out_of_range(sandbox, value):
    with pytest.raises(ValueError, match=r"concurrency must be .* 1 to 64"):
        sandbox.connect("sandbox", cache=False, concurrency=value)


@pytest.mark.parametrize("value", [1, 64])
def test_concurrency_at_both_ends_of_the_range_works(sandbox, value):
    connector = sandbox.connect("sandbox", cache=False, concurrency=value)
    try:
        frame = connector.fetch("repos", concurrency=value)
    finally:
        connector.close()

    assert connector.concurrency == value
    assert len(frame) == sum(not row["private"] for row in sandbox.data.repos.rows)


# ------------------------------------------------------------ a name given twice


def test_a_parameter_given_twice_with_different_values_is_refused(sandbox, conn):
    before = requests_seen(sandbox)

    with pytest.raises(TypeError, match="'sort'") as caught:
        conn.fetch("repos", params={"sort": "stars"}, sort="created")
    with pytest.raises(TypeError, match="'sort'"):
        next(conn.iter_pages("repos", params={"sort": "stars"}, sort="created"))

    assert "stars" not in str(caught.value) and "created" not in str(caught.value)
    assert requests_seen(sandbox) == before


def test_a_parameter_given_twice_with_one_value_is_sent_once(sandbox, conn):
    conn.fetch("repos", max_pages=1, params={"sort": "created"}, sort="created")

    assert last_query(sandbox)["sort"] == "created"


# ------------------------------------------------------------ blank credentials


@pytest.mark.parametrize("blank", ["", "   ", Secret(" \t")])
def test_a_blank_token_is_missing_not_sent(sandbox, blank):
    before = requests_seen(sandbox)

    with pytest.raises(CredentialsMissing) as caught:
        sandbox.connect("sandbox", cache=False, token=blank)

    assert list(caught.value.missing) == ["token"]
    assert "blank" in str(caught.value)
    assert requests_seen(sandbox) == before


def test_a_blank_token_falls_through_to_the_environment(sandbox, monkeypatch):
    monkeypatch.setenv("RESTCONNECT_SANDBOX_TOKEN", sandbox.credentials["token"])

    connector = sandbox.connect("sandbox", cache=False, token="  ")
    try:
        frame = connector.fetch("repos", max_pages=1)
    finally:
        connector.close()

    assert len(frame) == 100
    assert sandbox.stats["log"][-1]["status"] == 200


# ------------------------------------------------------------ held credentials


def test_vars_of_a_connector_hold_no_credential_value(sandbox, conn):
    token = sandbox.credentials["token"]

    assert token not in repr(vars(conn))
    assert isinstance(conn._given["token"], Secret)
    assert conn._given["token"].reveal() == token
    assert conn.check()["identity"] == "demo"


def test_sign_in_after_connect_keeps_credentials_masked(sandbox):
    from restconnect.exceptions import AuthError

    token = sandbox.credentials["token"]
    connector = sandbox.connect("sandbox", cache=False)
    try:
        with pytest.raises(AuthError):
            connector.sign_in(token="not-the-token")
        kept = connector.check()["identity"]
        identity = connector.sign_in(token=token)
    finally:
        connector.close()

    assert kept == identity == "demo"
    assert token not in repr(vars(connector))
    assert "not-the-token" not in repr(vars(connector))


def test_a_saved_job_still_names_the_variable_not_the_value(sandbox, conn, tmp_path):
    job = conn.job("issues", incremental=True, output=str(tmp_path / "issues.csv"))

    job.save(tmp_path / "issues.job.yaml")

    text = (tmp_path / "issues.job.yaml").read_text(encoding="utf-8")
    assert "env:RESTCONNECT_SANDBOX_TOKEN" in text
    assert sandbox.credentials["token"] not in text


# ------------------------------------------------------------ parent-child attrs


def test_parent_child_attrs_have_every_key_of_a_plain_fetch(sandbox, conn):
    started = datetime.now(timezone.utc).replace(microsecond=0)
    repo = next(row for row in sandbox.data.repos.rows if not row["private"])
    plain = conn.fetch("repo_issues", owner=repo["owner"]["login"],
                       repo=repo["name"]).attrs["restconnect"]

    frame = conn.fetch("all_repo_issues")

    meta = frame.attrs["restconnect"]
    assert set(plain) <= set(meta)
    assert meta["pagination"] == plain["pagination"] == "link_header"
    assert meta["pages_from_cache"] == 0
    assert started <= datetime.fromisoformat(meta["fetched_at"])
    assert datetime.fromisoformat(meta["fetched_at"]) <= datetime.now(timezone.utc)


def test_parent_child_counts_pages_served_from_the_cache(sandbox, tmp_path):
    connector = sandbox.connect("sandbox", cache=str(tmp_path / "cache"))
    try:
        first = connector.fetch("all_repo_issues").attrs["restconnect"]
        sent = requests_seen(sandbox)
        second = connector.fetch("all_repo_issues").attrs["restconnect"]
    finally:
        connector.close()

    assert first["pages_from_cache"] == 0
    assert requests_seen(sandbox) == sent
    assert second["pages"] == first["pages"] > 0
    assert second["pages_from_cache"] == second["pages"]


def test_parent_child_params_may_use_the_names_of_fetch_keywords(conn):
    plain = conn.fetch("all_repo_issues")

    given = conn.fetch("all_repo_issues", params={"max_pages": 1})

    assert given.attrs["restconnect"]["truncated"] is False
    assert given.sort_values("id", ignore_index=True).equals(
        plain.sort_values("id", ignore_index=True))
