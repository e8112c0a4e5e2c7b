"""Incremental fetches against the sandbox's ``since`` filter and sorted pages."""

from __future__ import annotations

import os
import stat
import time

import pytest
from cache_support import connect_box

from restconnect.exceptions import SpecError
from restconnect.spec import IncrementalSpec
from restconnect.state import Deduper, IncrementalPlan, StateStore, order_key


def changed_ids(box, count: int = 3) -> set[int]:
    """Touch ``count`` issues and create one; the ids the server says changed."""
    changes = [box.touch("issues", count=count), box.touch("issues", count=0, create=1)]
    return {key for change in changes for key in change["touched"] + change["created"]}


def test_first_run_is_full_then_only_changes(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    total = len(fresh_sandbox.data.issues.rows)

    first = conn.fetch("issues", incremental=True)
    nothing = conn.fetch("issues", incremental=True)
    expected = changed_ids(fresh_sandbox)
    changes = conn.fetch("issues", incremental=True)

    assert len(first) == total == 1200
    assert len(nothing) == 0
    assert nothing.attrs["restconnect"]["pages"] == 1
    assert set(changes["id"]) == expected
    state = changes.attrs["restconnect"]["incremental"]
    assert state["committed"] is True
    assert state["state"]["cursor"] == max(
        row["updated_at"] for row in fresh_sandbox.data.issues.rows)


def test_the_since_parameter_goes_to_the_api(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("issues", incremental=True)
    cursor = first.attrs["restconnect"]["incremental"]["state"]["cursor"]

    conn.fetch("issues", incremental=True)

    sent = fresh_sandbox.stats["log"][-1]
    assert sent["path"] == "/code/issues"
    assert sent["query"]["since"] == cursor


def test_commit_false_keeps_the_state_until_commit(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    conn.fetch("issues", incremental=True)
    expected = changed_ids(fresh_sandbox, 2)

    pending = conn.fetch("issues", incremental=True, commit=False)
    again = conn.fetch("issues", incremental=True, commit=False)
    conn.commit(again)
    after = conn.fetch("issues", incremental=True)

    assert set(pending["id"]) == set(again["id"]) == expected
    assert pending.attrs["restconnect"]["incremental"]["committed"] is False
    assert len(after) == 0


def test_state_is_per_parameters(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    open_issues = conn.fetch("issues", incremental=True, state="open")

    closed = conn.fetch("issues", incremental=True, state="closed")

    rows = fresh_sandbox.data.issues.rows
    assert len(open_issues) == sum(r["state"] == "open" for r in rows)
    assert len(closed) == sum(r["state"] == "closed" for r in rows)
    assert len(conn.fetch("issues", incremental=True, state="open")) == 0


def test_stop_mode_reads_only_the_newest_pages(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("issues_newest", incremental=True)
    expected = changed_ids(fresh_sandbox, 2)

    changes = conn.fetch("issues_newest", incremental=True)

    assert len(first) == 1200
    assert set(changes["id"]) == expected
    assert changes.attrs["restconnect"]["pages"] == 1
    sent = fresh_sandbox.stats["log"][-1]["query"]
    assert (sent["sort"], sent["direction"]) == ("updated", "desc")


def test_revalidates_instead_of_trusting_a_fresh_cache_entry(fresh_sandbox,
                                                             tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    conn.fetch("issues_newest", incremental=True)
    conn.fetch("issues_newest", incremental=True)
    expected = changed_ids(fresh_sandbox, 1)

    changes = conn.fetch("issues_newest", incremental=True)

    assert set(changes["id"]) == expected


def test_state_files_live_in_home_and_are_private(fresh_sandbox, tmp_path,
                                                  monkeypatch) -> None:
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("RESTCONNECT_HOME", str(home))
    connect_box(fresh_sandbox, tmp_path).fetch("issues", incremental=True)

    files = list((home / "state").rglob("*.json"))

    assert [f.parent.name for f in files] == ["cachebox"]
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    folders = [home, home / "state", files[0].parent]
    assert {stat.S_IMODE(os.stat(f).st_mode) for f in folders} == {0o700}


def test_endpoint_without_cursor_is_a_spec_error(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)

    with pytest.raises(SpecError, match=r"endpoints\.repos\.incremental"):
        conn.fetch("repos", incremental=True)


def test_truncated_fetch_does_not_advance(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)

    part = conn.fetch("issues", incremental=True, max_pages=2)
    full = conn.fetch("issues", incremental=True)

    assert len(part) == 200
    assert len(full) == 1200


# ---------------------------------------------------------------- pure units


def plan(state=None, **spec) -> IncrementalPlan:
    return IncrementalPlan(IncrementalSpec(**{"field": "updated_at", **spec}), ["id"],
                           state, "demo.items")


def test_boundary_rows_are_not_repeated_by_an_inclusive_since() -> None:
    first = plan(param="since")
    rows = [{"id": 1, "updated_at": "2024-01-01T00:00:00Z"},
            {"id": 2, "updated_at": "2024-01-02T00:00:00Z"},
            {"id": 3, "updated_at": "2024-01-02T00:00:00Z"}]
    assert first.select(rows) == rows
    state = first.next_state()

    second = plan(state, param="since")
    late = {"id": 4, "updated_at": "2024-01-02T00:00:00Z"}

    assert state["cursor"] == "2024-01-02T00:00:00Z"
    assert state["boundary"] == ["2", "3"]
    assert second.params({"state": "open"}) == {"state": "open",
                                                "since": "2024-01-02T00:00:00Z"}
    assert second.select([rows[1], rows[2], late]) == [late]
    assert second.next_state()["boundary"] == ["2", "3", "4"]


def test_filter_mode_builds_the_expression() -> None:
    state = {"cursor": "2024-05-01T00:00:00Z"}
    built = plan(state, mode="filter", filter="repo:{repo} updated:>={cursor}",
                 filter_param="q")

    assert built.params({"repo": "o/r"}) == {
        "repo": "o/r", "q": "repo:o/r updated:>=2024-05-01T00:00:00Z"}
    with pytest.raises(SpecError, match="names 'owner'"):
        plan(state, mode="filter", filter="{owner} {cursor}",
             filter_param="q").params({})


def test_order_key_compares_times_not_text() -> None:
    assert order_key("2024-01-01T10:00:00+02:00") < order_key("2024-01-01T09:00:00Z")
    assert order_key(9) < order_key(10)


def test_deduper_keeps_the_newest_copy() -> None:
    rows = Deduper(["id"], "updated_at")
    rows.add([{"id": 1, "updated_at": "2024-01-02", "v": "new"},
              {"id": 2, "updated_at": "2024-01-01"}])
    rows.add([{"id": 1, "updated_at": "2024-01-01", "v": "old"}, {"other": True}])

    assert rows.records() == [{"id": 1, "updated_at": "2024-01-02", "v": "new"},
                              {"id": 2, "updated_at": "2024-01-01"}, {"other": True}]
    assert rows.duplicates == 1


def test_state_store_pending_commit(tmp_path) -> None:
    store = StateStore(tmp_path)
    key = store.key("demo", "items", {"a": 1})

    store.save_pending(key, {"state": {"cursor": 5}})
    assert store.load(key) is None
    store.commit_pending(key)

    assert store.load(key) == {"state": {"cursor": 5}}
    assert store.load_pending(key) is None
    assert key == store.key("demo", "items", {"a": 1})
    assert key != store.key("demo", "items", {"a": 2})


def issue_requests(box) -> int:
    return box.stats["by_path"].get("GET /code/issues", 0)


def test_stop_mode_asks_for_no_page_past_the_old_records(fresh_sandbox, tmp_path,
                                                         monkeypatch) -> None:
    from restconnect.jobs import Job
    from tests.cache_support import write_spec

    conn = connect_box(fresh_sandbox, tmp_path)
    conn.fetch("issues_newest", incremental=True)
    changed_ids(fresh_sandbox, 2)
    before = issue_requests(fresh_sandbox)
    conn.fetch("issues_newest", incremental=True)
    time.sleep(0.2)  # room for a stray request to arrive
    assert issue_requests(fresh_sandbox) - before == 1

    monkeypatch.setenv("CACHEBOX_TOKEN", fresh_sandbox.credentials["token"])
    job = Job(connector=str(write_spec(tmp_path / "job")), endpoint="issues_newest",
              output=str(tmp_path / "newest.parquet"), base_url=fresh_sandbox.url,
              credentials={"token": "env:CACHEBOX_TOKEN"}, incremental=True)
    job.run()
    changed_ids(fresh_sandbox, 2)
    before = issue_requests(fresh_sandbox)
    job.run()
    time.sleep(0.2)
    assert issue_requests(fresh_sandbox) - before == 1
