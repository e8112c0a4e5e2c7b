"""Every pagination style the sandbox serves, walked with plain requests.

Expected counts come from the generated records (``box.data``), filtered in
the test, never from the server's own paging code.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest
import requests


def _walk_links(session: requests.Session, url: str) -> tuple[list[dict], list]:
    rows, responses = [], []
    while url:
        response = session.get(url, timeout=10)
        assert response.status_code == 200, response.text
        rows.extend(response.json())
        responses.append(response)
        url = response.links.get("next", {}).get("url")
    return rows, responses


def test_link_header_walks_every_public_repo_in_order(box, bearer):
    expected = sorted(row["full_name"] for row in box.data.repos.rows
                      if not row["private"])

    rows, responses = _walk_links(bearer, f"{box.url}/code/repos?per_page=40")

    assert [row["full_name"] for row in rows] == expected
    assert len(responses) == -(-len(expected) // 40)
    middle = responses[1].links
    assert set(middle) == {"next", "last", "first", "prev"}
    assert "page=1" in middle["first"]["url"] and "page=1" in middle["prev"]["url"]
    assert f"page={len(responses)}" in middle["last"]["url"]
    assert set(responses[-1].links) == {"first", "prev"}


def test_link_header_page_size_is_capped_at_100(box, bearer):
    response = bearer.get(f"{box.url}/code/issues", params={"per_page": 500})

    assert len(response.json()) == 100
    assert "per_page=100" in response.links["next"]["url"]


def test_link_header_rejects_a_page_size_that_is_not_a_number(box, bearer):
    response = bearer.get(f"{box.url}/code/issues", params={"per_page": "many"})

    assert response.status_code == 400
    assert "per_page" in response.json()["message"]


def test_issues_since_filter_and_sort_direction(box, bearer):
    since = "2025-01-01T00:00:00Z"
    cutoff = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
    expected = [row["id"] for row in box.data.issues.rows
                if datetime.fromisoformat(row["updated_at"].replace("Z", "+00:00"))
                .timestamp() >= cutoff]

    rows, _ = _walk_links(bearer, f"{box.url}/code/issues?since={since}&sort=updated"
                                  "&direction=asc&per_page=100")

    assert sorted(row["id"] for row in rows) == sorted(expected)
    stamps = [row["updated_at"] for row in rows]
    assert stamps == sorted(stamps)


def test_issues_state_and_labels_filters(box, bearer):
    expected = [row["id"] for row in box.data.issues.rows if row["state"] == "open"
                and "bug" in {label["name"] for label in row["labels"]}]

    rows, _ = _walk_links(bearer, f"{box.url}/code/issues?state=open&labels=bug"
                                  "&per_page=100")

    assert sorted(row["id"] for row in rows) == sorted(expected)


def test_next_url_in_the_body_walks_every_event(box, bearer):
    issues = box.data.issues.rows
    expected = len(issues) + sum(1 for row in issues if row["closed_at"])
    url, seen = f"{box.url}/code/events?per_page=100", []
    while url:
        body = bearer.get(url).json()
        seen.extend(event["id"] for event in body["events"])
        url = body["next"]

    assert len(seen) == expected == len(set(seen))


def test_cursor_pages_follow_starting_after_until_has_more_is_false(box, keyed):
    expected = [row["id"] for row in box.data.customers.rows]
    seen, params = [], {"limit": 100}
    while True:
        body = keyed.get(f"{box.url}/pay/customers", params=params).json()
        seen.extend(row["id"] for row in body["data"])
        if not body["has_more"]:
            break
        params["starting_after"] = body["data"][-1]["id"]

    assert seen == expected
    assert len(seen) == 300


def test_cursor_with_an_unknown_id_is_a_stripe_style_400(box, keyed):
    response = keyed.get(f"{box.url}/pay/customers",
                         params={"starting_after": "cus_nope"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_stripe_style_limit_over_100_is_refused(box, keyed):
    response = keyed.get(f"{box.url}/pay/invoices", params={"limit": 101})

    assert response.status_code == 400
    assert "limit" in response.json()["error"]["message"]


def test_invoices_filter_by_customer_and_since(box, keyed):
    customer = box.data.customers.rows[5]["id"]
    expected = {row["id"] for row in box.data.invoices.rows
                if row["customer"] == customer and row["updated_at"] >= "2024-06-01"}

    body = keyed.get(f"{box.url}/pay/invoices", params={
        "customer": customer, "since": "2024-06-01", "limit": 100}).json()

    assert {row["id"] for row in body["data"]} == expected
    assert body["has_more"] is False


def test_offset_pages_with_a_total(box, keyed):
    expected = sum(1 for row in box.data.invoices.rows if row["status"] == "paid")
    seen, offset = [], 0
    while True:
        body = keyed.get(f"{box.url}/pay/payments",
                         params={"offset": offset, "limit": 70}).json()
        assert body["total"] == expected
        seen.extend(row["id"] for row in body["results"])
        offset += len(body["results"])
        if not body["results"] or offset >= body["total"]:
            break

    assert len(seen) == expected == len(set(seen))


def test_page_number_with_total_pages(box, bearer):
    expected = sorted(row["id"] for row in box.data.repos.rows
                      if "api" in row["topics"] and not row["private"])
    first = bearer.get(f"{box.url}/code/search/repositories",
                       params={"q": "topic:api", "per_page": 7}).json()
    seen = [row["id"] for row in first["items"]]
    for page in range(2, first["total_pages"] + 1):
        body = bearer.get(f"{box.url}/code/search/repositories",
                          params={"q": "topic:api", "per_page": 7, "page": page}).json()
        seen.extend(row["id"] for row in body["items"])

    assert first["total_count"] == len(expected)
    assert first["total_pages"] == -(-len(expected) // 7)
    assert sorted(seen) == expected


def test_search_without_q_is_a_validation_error(box, bearer):
    response = bearer.get(f"{box.url}/code/search/repositories")

    assert response.status_code == 422


def test_header_cursor_json_lines_export(box, bearer):
    seen, params, pages = [], {"limit": 500}, 0
    while True:
        response = bearer.get(f"{box.url}/code/export/issues.jsonl", params=params)
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        seen.extend(json.loads(line)["id"] for line in response.text.splitlines())
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            break
        params["cursor"] = cursor

    assert seen == [row["id"] for row in box.data.issues.rows]
    assert pages == 3


def test_csv_export_with_offset_and_total_header(box, keyed):
    first = keyed.get(f"{box.url}/pay/export/invoices.csv",
                      params={"offset": 0, "limit": 400})
    second = keyed.get(f"{box.url}/pay/export/invoices.csv",
                       params={"offset": 400, "limit": 1000})
    rows = [*csv.DictReader(io.StringIO(first.text)),
            *csv.DictReader(io.StringIO(second.text))]

    assert first.headers["Content-Type"].startswith("text/csv")
    assert int(first.headers["X-Total-Count"]) == len(box.data.invoices.rows)
    assert [row["id"] for row in rows] == [row["id"] for row in box.data.invoices.rows]
    assert rows[0]["amount_due"] == str(box.data.invoices.rows[0]["amount_due"])


def test_post_search_with_offset_in_the_body(box, bearer):
    expected = sorted(row["id"] for row in box.data.issues.rows
                      if row["state"] == "closed")
    seen, offset = [], 0
    while True:
        request = {"state": "closed", "offset": offset, "limit": 100}
        body = bearer.post(f"{box.url}/code/issues/search", json=request).json()
        seen.extend(row["id"] for row in body["items"])
        offset += len(body["items"])
        if offset >= body["total"]:
            break

    assert seen == expected


def test_post_search_with_the_cursor_in_the_body(box, keyed):
    expected = sorted(row["number"] for row in box.data.invoices.rows
                      if row["status"] == "paid" and row["currency"] == "eur")
    seen, request = [], {"query": {"status": "paid", "currency": "eur"}, "limit": 25}
    while True:
        body = keyed.post(f"{box.url}/pay/invoices/search", json=request).json()
        seen.extend(row["number"] for row in body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        request["cursor"] = body["next_cursor"]

    assert seen == expected


def test_post_search_refuses_unknown_fields_and_bad_json(box, keyed):
    unknown = keyed.post(f"{box.url}/pay/invoices/search",
                         json={"query": {"colour": 1}})
    broken = keyed.post(f"{box.url}/pay/invoices/search", data=b"{nope",
                        headers={"Content-Type": "application/json"})

    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["message"]
    assert broken.status_code == 400


def test_the_looping_cursor_never_changes(box, bearer):
    first = bearer.get(f"{box.url}/code/broken/loop").json()
    second = bearer.get(f"{box.url}/code/broken/loop",
                        params={"cursor": first["next_cursor"]}).json()

    assert first["has_more"] and second["has_more"]
    assert first["next_cursor"] == second["next_cursor"]


def test_the_looping_link_points_at_page_two_forever(box, bearer):
    first = bearer.get(f"{box.url}/code/broken/loop-link")
    second = bearer.get(first.links["next"]["url"])

    assert second.links["next"]["url"] == first.links["next"]["url"]


def test_misbehaving_bodies_come_with_status_200(box, bearer):
    not_json = bearer.get(f"{box.url}/code/broken/not-json")
    html = bearer.get(f"{box.url}/code/broken/html")

    assert not_json.status_code == 200
    assert not_json.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        not_json.json()
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text.lstrip().startswith("<!DOCTYPE html>")


def test_releases_are_404_when_a_repo_has_none(box, bearer):
    public = [row for row in box.data.repos.rows if not row["private"]]
    with_some = next(row for row in public if row["id"] in box.data.releases)
    without = next(row for row in public if row["id"] not in box.data.releases)

    found = bearer.get(f"{box.url}/code/repos/{with_some['full_name']}/releases")
    missing = bearer.get(f"{box.url}/code/repos/{without['full_name']}/releases")

    assert found.status_code == 200
    assert len(found.json()) == len(box.data.releases[with_some["id"]])
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found"


def test_batch_lookups_by_ids_and_logins(box, bearer, keyed):
    users = box.data.users.rows
    by_ids = bearer.get(f"{box.url}/code/users", params={"ids": "3,1,999"}).json()
    by_logins = bearer.get(f"{box.url}/code/users",
                           params={"logins": f"{users[4]['login']},nobody"}).json()
    wanted = [row["id"] for row in box.data.customers.rows[:3]]
    customers = keyed.get(f"{box.url}/pay/customers",
                          params={"ids": ",".join(wanted)}).json()

    assert [row["login"] for row in by_ids] == [users[2]["login"], users[0]["login"]]
    assert [row["id"] for row in by_logins] == [users[4]["id"]]
    assert [row["id"] for row in customers["data"]] == wanted


def test_single_objects_and_unknown_ones(box, bearer, keyed):
    repo = next(row for row in box.data.repos.rows if not row["private"])
    customer = box.data.customers.rows[0]

    assert bearer.get(f"{box.url}/code/repos/{repo['full_name']}").json() == repo
    assert keyed.get(f"{box.url}/pay/customers/{customer['id']}").json() == customer
    assert bearer.get(f"{box.url}/code/users/nobody-here").status_code == 404
    missing = keyed.get(f"{box.url}/pay/invoices/in_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
