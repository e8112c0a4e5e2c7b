"""Progress bars on paginated fetches: shown where someone watches, with totals."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from restconnect import connect
from restconnect.progress import FetchProgress, progress_enabled, total_records


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def conn(sandbox: Any) -> Any:
    with connect(
        "sandbox", base_url=sandbox.url, token=sandbox.credentials["token"], cache=False
    ) as connector:
        yield connector


def _search_total(sandbox: Any) -> int:
    """The issue count the sandbox announces, asked directly over HTTP."""
    answer = requests.post(
        f"{sandbox.url}/code/issues/search",
        json={"limit": 1},
        headers={"Authorization": f"Bearer {sandbox.credentials['token']}"},
        timeout=10,
    )
    return int(answer.json()["total"])


def test_the_bar_counts_records_pages_and_the_announced_total(
    conn: Any, sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    total = _search_total(sandbox)
    frame = conn.fetch("issue_search", progress=True, concurrency=1)
    err = capsys.readouterr().err
    pages = frame.attrs["restconnect"]["pages"]
    assert len(frame) == total and pages > 1
    assert "sandbox.issue_search" in err
    assert f"{total}/{total}" in err
    assert f"{pages} pages" in err


def test_a_limit_caps_the_total_shown(
    conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    conn.fetch("issue_search", limit=150, progress=True, concurrency=1)
    assert "150/150" in capsys.readouterr().err


def test_progress_false_and_unwatched_output_show_nothing(
    conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    conn.fetch("issue_search", progress=False, limit=150)
    conn.fetch("issue_search", limit=150)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_the_connector_setting_is_the_default(
    sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with connect(
        "sandbox",
        base_url=sandbox.url,
        token=sandbox.credentials["token"],
        progress=True,
        cache=False,
    ) as quiet_by_default:
        quiet_by_default.fetch("labels")
        assert "sandbox.labels" in capsys.readouterr().err
        quiet_by_default.fetch("labels", progress=False)
        assert capsys.readouterr().err == ""


def test_enabled_only_where_someone_watches() -> None:
    assert progress_enabled(None, io.StringIO()) is False
    assert progress_enabled(None, _Terminal()) is True
    assert progress_enabled(False, _Terminal()) is False
    assert progress_enabled(True, io.StringIO()) is True


def test_a_disabled_bar_still_counts() -> None:
    with FetchProgress("demo.items", enabled=False) as bar:
        bar.page(SimpleNamespace(records=[1, 2, 3], body={"total": 9}, response=None))
        bar.page(SimpleNamespace(records=[4], body={"total": 9}, response=None))
    assert (bar.pages, bar.records, bar.total, bar.active) == (2, 4, 9, False)


@pytest.mark.parametrize(
    "body, headers, path, expected",
    [
        ({"total": 42}, {}, None, 42),
        ({"total_count": "17"}, {}, None, 17),
        ({"meta": {"count": 5}}, {}, "meta.count", 5),
        ([], {"X-Total-Count": "250"}, None, 250),
        ({"total": True}, {}, None, None),
        ({"total": -1}, {}, None, None),
        ({"items": []}, {}, None, None),
    ],
)
def test_total_records(
    body: Any, headers: dict[str, str], path: str | None, expected: int | None
) -> None:
    page = SimpleNamespace(body=body, response=SimpleNamespace(headers=headers))
    assert total_records(page, path) == expected
