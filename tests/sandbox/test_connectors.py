"""The bundled sandbox specs, fetched with restconnect against a live sandbox.

Expected row counts are computed from the generated records in the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from restconnect.exceptions import PaginationError, ResponseError
from restconnect.spec import load_spec

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
SPECS = sorted(path.stem for path in CONNECTORS.glob("sandbox*.yaml"))
METHODS = {"sandbox": "bearer", "sandbox_pay": "api_key", "sandbox_basic": "basic",
           "sandbox_hmac": "hmac", "sandbox_jwt": "jwt", "sandbox_oauth": "oauth2",
           "sandbox_assertion": "oauth2"}


@pytest.mark.parametrize("name", SPECS)
def test_every_sandbox_spec_is_valid_and_points_at_the_sandbox(name):
    spec = load_spec(CONNECTORS / f"{name}.yaml")

    assert spec.base_url == "${RESTCONNECT_SANDBOX_URL:-http://127.0.0.1:8765}"
    assert spec.resolved_base_url() == "http://127.0.0.1:8765"
    for endpoint in spec.endpoints.values():
        assert endpoint.description


def test_the_specs_cover_every_method():
    assert set(METHODS) <= set(SPECS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_spec_fetches_with_its_own_auth(fresh, name):
    conn = fresh.connect(name)

    invoices = conn.fetch("invoices")

    assert len(invoices) == len(fresh.data.invoices.rows)
    assert invoices.attrs["restconnect"]["pages"] == 9
    assert set(fresh.stats["by_auth"]) == {METHODS[name]}


def _expected_counts(box) -> dict[str, int]:
    data = box.data
    public = [row for row in data.repos.rows if not row["private"]]
    issues = data.issues.rows
    return {
        "users": len(data.users.rows),
        "repos": len(public),
        "my_repos": sum(row["owner"]["login"] == "demo" for row in data.repos.rows),
        "user_repos": sum(row["owner"]["login"] == "demo" for row in public),
        "repo_search": sum("api" in row["topics"] for row in public),
        "issues": len(issues), "issue_search": len(issues),
        "issues_export": len(issues),
        "events": len(issues) + sum(1 for row in issues if row["closed_at"]),
        "customers": len(data.customers.rows), "invoices": len(data.invoices.rows),
        "invoice_search": len(data.invoices.rows),
        "invoices_csv": len(data.invoices.rows),
        "payments": sum(row["status"] == "paid" for row in data.invoices.rows),
        "me": 1, "balance": 1, "currencies": 4,
    }


def test_the_main_spec_fetches_every_list_with_the_right_row_count(fresh):
    conn = fresh.connect()
    params = {"user_repos": {"login": "demo"}, "repo_search": {"q": "topic:api"}}

    counts = {name: len(conn.fetch(name, **params.get(name, {})))
              for name in _expected_counts(fresh)}

    assert counts == _expected_counts(fresh)


def test_pagination_kinds_are_the_declared_ones(fresh):
    conn = fresh.connect()
    kinds = {"repos": "link_header", "events": "next_url", "customers": "cursor",
             "payments": "offset", "repo_search": "page_number",
             "issues_export": "header_cursor", "labels": "none"}

    for name, kind in kinds.items():
        params = {"q": "topic:api"} if name == "repo_search" else {}
        frame = conn.fetch(name, **params)
        assert frame.attrs["restconnect"]["pagination"] == kind, name


def test_nested_objects_flatten_and_lists_stay_lists(fresh):
    repos = fresh.connect().fetch("repos")

    assert {"owner.login", "license.spdx_id", "topics"} <= set(repos.columns)
    assert all(isinstance(value, list) for value in repos["topics"])


def test_the_misbehaving_endpoints_raise_clear_errors(fresh):
    conn = fresh.connect()

    with pytest.raises(PaginationError):
        conn.fetch("broken_loop")
    with pytest.raises(PaginationError):
        conn.fetch("broken_loop_link")
    with pytest.raises(ResponseError, match="broken_not_json"):
        conn.fetch("broken_not_json")
    with pytest.raises(ResponseError, match="HTML"):
        conn.fetch("broken_html")


def test_a_404_for_no_releases_is_an_empty_frame(fresh):
    repo = next(row for row in fresh.data.repos.rows
                if not row["private"] and row["id"] not in fresh.data.releases)

    frame = fresh.connect().fetch("releases", owner=repo["owner"]["login"],
                                  repo=repo["name"])

    assert len(frame) == 0


def test_two_services_under_two_methods_at_once(fresh):
    code, pay = fresh.connect("sandbox_oauth"), fresh.connect("sandbox_pay")

    customers = pay.fetch("customers")
    me = code.fetch("me")

    assert me["login"].tolist() == ["demo"]
    assert customers["code_login"].dropna().isin(
        [row["login"] for row in fresh.data.users.rows]).all()
    assert set(fresh.stats["by_auth"]) == {"oauth2", "api_key"}
