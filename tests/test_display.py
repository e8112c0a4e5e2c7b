"""Rich display of connectors and frames, and ``Connector.explain()``."""

from __future__ import annotations

from typing import Any

import pytest

from restconnect import connect
from restconnect.display import connector_html, describe, metadata, show


@pytest.fixture()
def conn(sandbox: Any) -> Any:
    with connect(
        "sandbox", base_url=sandbox.url, token=sandbox.credentials["token"], cache=False
    ) as connector:
        yield connector


def _row(html: str, endpoint: str) -> str:
    start = html.index(f"<td style='text-align:left'>{endpoint}</td>")
    return html[start : html.index("</tr>", start)]


def test_the_connector_html_lists_endpoints_and_required_parameters(
    conn: Any, sandbox: Any
) -> None:
    html = conn._repr_html_()
    assert "restconnect sandbox" in html and sandbox.url in html and "bearer" in html
    assert "credentials set" in html
    assert "login" in _row(html, "user") and "/code/users/{login}" in _row(html, "user")
    assert ">q<" in _row(html, "repo_search")
    assert ">owner, repo<" in _row(html, "repo")
    assert html.count("<tr>") == len(conn.spec.endpoints) + 1  # and the header row
    assert sandbox.credentials["token"] not in html
    conn.check()
    assert f"signed in as {sandbox.data.users.rows[0]['login']}" in connector_html(conn)


def test_explain_reports_quota_identity_and_the_last_fetch(
    conn: Any, sandbox: Any
) -> None:
    assert conn.explain()["rate_limit"] is None
    frame = conn.fetch("labels")
    last = conn.request("GET", "/code/user")
    facts = conn.explain()
    assert facts["rate_limit"]["remaining"] == int(
        last.headers["X-RateLimit-Remaining"]
    )
    assert facts["rate_limit"]["limit"] == int(last.headers["X-RateLimit-Limit"])
    assert facts["last_fetch"]["records"] == len(frame)
    assert facts["auth"] == [{"method": "bearer"}]
    text, html = str(facts), facts._repr_html_()
    assert f"{facts['rate_limit']['remaining']} of" in text and "requests left" in html
    for shown in (text, html, repr(facts.facts)):
        assert sandbox.credentials["token"] not in shown


def test_explain_drops_what_a_handler_should_not_have_said(
    conn: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sandbox.credentials["token"]
    monkeypatch.setattr(
        conn.auth[0],
        "describe",
        lambda: {
            "method": "bearer",
            "access_token": token,
            "note": f"sent {token}",
            "scopes": ["read"],
        },
    )
    facts = conn.explain()
    assert "access_token" not in facts["auth"][0]
    assert token not in str(facts) + facts._repr_html_()
    assert facts["auth"][0]["scopes"] == ["read"]


def test_frames_keep_their_metadata_and_show_renders_it(conn: Any) -> None:
    frame = conn.fetch("repos", limit=120)
    meta = metadata(frame)
    assert (meta["connector"], meta["endpoint"], meta["records"]) == (
        "sandbox",
        "repos",
        120,
    )
    assert describe(frame) == (
        f"sandbox.repos: 120 records in {meta['pages']} pages; "
        "stopped early (limit=120)"
    )
    view = show(frame, rows=3)
    html = view._repr_html_()
    assert "stopped early" in html and html.count("<tr>") >= 3
    assert describe(frame) in repr(view)
    assert describe(frame.head(0).copy()) == describe(frame)  # pandas keeps attrs
    assert describe(object()) == "no restconnect metadata on this frame"
