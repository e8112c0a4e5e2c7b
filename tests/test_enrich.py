"""enrich() lookups across APIs, and parent-child fetches with batching, over HTTP."""

from __future__ import annotations

import logging
import math
import time

import pandas as pd
import pytest

import restconnect
from restconnect import HTTPStatusError, RestConnectWarning, SpecError, connect
from restconnect.lookups import clear_lookup_cache
from tests.join_helpers import credentials, open_two_apis, write_specs

USER_ROUTE = "GET /code/users/{login}"


@pytest.fixture()
def two_apis(fresh_sandbox, tmp_path):
    code, pay = open_two_apis(fresh_sandbox, tmp_path)
    yield fresh_sandbox, code, pay
    clear_lookup_cache()
    code.close()
    pay.close()


def _routes(box) -> dict[str, int]:
    return dict(box.stats["by_route"])


# ---------------------------------------------------------------- enrich


def test_enrich_calls_once_per_distinct_key_and_joins_back(two_apis):
    box, code, pay = two_apis
    customers = pay.fetch("customers")
    logins = {c["code_login"] for c in box.data.customers.rows if c["code_login"]}
    users = {u["login"]: u for u in box.data.users.rows}
    box.reset_stats()

    with pytest.warns(RestConnectWarning, match=r"^code\.user: \d+ rows had no key"):
        enriched = restconnect.enrich(customers, code, "user",
                                      {"login": "code_login"}, prefix="user.")

    assert _routes(box)[USER_ROUTE] == len(logins) < len(customers)
    assert len(enriched) == len(customers)
    linked = enriched[enriched["code_login"].notna()]
    assert (linked["user.id"].astype(int).tolist()
            == [users[login]["id"] for login in linked["code_login"]])
    step = enriched.attrs["restconnect"]["steps"][-1]
    assert step["lookups"] == step["calls"] == len(logins)
    assert [s["connector"] for s in enriched.attrs["restconnect"]["sources"]] == [
        "pay", "code"]


def test_rows_without_a_key_are_kept_with_the_reason(two_apis):
    box, code, pay = two_apis
    customers = pay.fetch("customers")

    with pytest.warns(RestConnectWarning, match="rows had no key") as caught:
        enriched = restconnect.enrich(customers, code, "user", {"login": "code_login"})

    assert caught[0].filename == __file__
    unlinked = sum(1 for c in box.data.customers.rows if not c["code_login"])
    reasons = enriched.loc[enriched["code_login"].isna(), "_error"]
    assert len(reasons) == unlinked > 0
    assert set(reasons) == {"no value for code_login"}
    assert enriched.loc[enriched["code_login"].notna(), "_error"].isna().all()


def test_a_failing_lookup_keeps_its_row_with_the_error(two_apis):
    box, code, _ = two_apis
    frame = pd.DataFrame({"who": ["demo", "no-such-user-x", "demo"], "n": [1, 2, 3]})

    with pytest.warns(RestConnectWarning, match="1 of 2 lookups failed") as caught:
        enriched = restconnect.enrich(frame, code, "user", {"login": "who"},
                                      prefix="u.")

    assert len(caught) == 1 and caught[0].filename == __file__
    assert enriched["n"].tolist() == [1, 2, 3]
    assert enriched["u.login"].tolist()[::2] == ["demo", "demo"]
    error = enriched["_error"].tolist()[1]
    assert "404" in error and "no-such-user-x" in error
    assert enriched.attrs["restconnect"]["steps"][-1]["failed"] == 1
    for secret in box.secret_values():
        assert secret not in error


def test_the_failure_warning_holds_no_key_sent_in_the_query(two_apis, tmp_path,
                                                           caplog):
    box, _, _ = two_apis
    _, pay_spec = write_specs(tmp_path, box.url)
    pay_spec.write_text(pay_spec.read_text().replace(
        "location: header\n  param: X-API-Key", "location: query\n  param: api_key"))
    pay = connect(str(pay_spec), **credentials(box)[1])
    known = box.data.customers.rows[0]["id"]
    frame = pd.DataFrame({"customer": [known, "cus_missing_1", "cus_missing_2"]})

    with (caplog.at_level(logging.DEBUG, "restconnect"),
          pytest.warns(RestConnectWarning, match="2 of 3 lookups failed") as caught):
        enriched = restconnect.enrich(frame, pay, "customer", {"id": "customer"})
    pay.close()

    assert box.stats["by_auth"].get("api_key", 0) >= 3
    assert enriched["_error"].notna().sum() == 2
    texts = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    texts += enriched["_error"].dropna().tolist()
    assert str(caught[0].message) in [r.getMessage() for r in caplog.records]
    for secret in box.secret_values():
        assert not any(secret in text for text in texts)


def test_enrich_refuses_a_how_it_cannot_honour(two_apis):
    _, code, _ = two_apis
    with pytest.raises(SpecError) as caught:
        restconnect.enrich(pd.DataFrame({"who": ["demo"]}), code, "user",
                           {"login": "who"}, how="outer")
    assert caught.value.path == "how" and "left, inner" in str(caught.value)


def test_errors_raise_on_request(two_apis):
    _, code, _ = two_apis
    frame = pd.DataFrame({"who": ["no-such-user-x"]})
    with pytest.raises(HTTPStatusError) as caught:
        restconnect.enrich(frame, code, "user", {"login": "who"}, errors="raise")
    assert caught.value.status == 404


def test_answers_are_cached_in_process(two_apis):
    _, code, _ = two_apis
    frame = pd.DataFrame({"who": ["demo", "demo"]})
    first = restconnect.enrich(frame, code, "user", {"login": "who"})

    again = restconnect.enrich(frame, code, "user", {"login": "who"})
    fresh = restconnect.enrich(frame, code, "user", {"login": "who"}, cache=False)

    steps = [f.attrs["restconnect"]["steps"][-1] for f in (first, again, fresh)]
    assert [(s["calls"], s["from_cache"]) for s in steps] == [(1, 0), (0, 1), (1, 0)]
    assert again["login"].tolist() == fresh["login"].tolist() == ["demo", "demo"]


def test_templates_fill_several_parameters(two_apis):
    box, code, _ = two_apis
    public = [r for r in box.data.repos.rows if not r["private"]][:5]
    frame = pd.DataFrame({"full": [r["full_name"] for r in public]})
    frame["owner"] = frame["full"].str.split("/").str[0]
    frame["name"] = frame["full"].str.split("/").str[1]

    enriched = restconnect.enrich(frame, code, "repo",
                                  {"owner": "{owner}", "repo": "{name}"}, prefix="r.")

    assert enriched["r.id"].tolist() == [r["id"] for r in public]


def test_lookups_run_concurrently(two_apis):
    box, code, _ = two_apis
    code.fetch("user", login="demo")  # the token request, outside the timing
    frame = pd.DataFrame({"who": [u["login"] for u in box.data.users.rows[1:9]]})
    box.configure(latency=0.5)
    box.reset_stats()

    restconnect.enrich(frame, code, "user", {"login": "who"}, workers=8)

    answered = [entry["time"] for entry in box.stats["log"]
                if entry["path"].startswith("/code/users/")]
    # Each answer waits 0.5 s: one after another, the 8 answers would span
    # at least 3.5 s; side by side they come back together.
    assert len(answered) == 8
    assert max(answered) - min(answered) < 2.0


def test_lookups_respect_the_connectors_rate_limit(two_apis, tmp_path):
    box, _, _ = two_apis
    code_spec, _ = write_specs(tmp_path, box.url)
    code_spec.write_text(code_spec.read_text().replace(
        "pagination:", "rate_limit: {requests_per_second: 10}\npagination:", 1))
    slow = connect(str(code_spec), **credentials(box)[0])
    slow.fetch("user", login="demo")  # the token request and a first call
    frame = pd.DataFrame({"who": [u["login"] for u in box.data.users.rows[:8]]})

    started = time.monotonic()
    restconnect.enrich(frame, slow, "user", {"login": "who"}, workers=8)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.6  # 8 paced requests at 10 per second
    slow.close()


def test_batched_enrich_needs_the_answer_key(two_apis):
    _, code, _ = two_apis
    with pytest.raises(SpecError, match="key"):
        restconnect.enrich(pd.DataFrame({"i": [1]}), code, "users_batch", {"ids": "i"},
                           batch_size=10)


def test_batched_enrich_across_apis_with_string_ids(two_apis):
    box, _, pay = two_apis
    linked = [c for c in box.data.customers.rows if c["code_login"]][:45]
    frame = pd.DataFrame({"customer": [c["id"] for c in linked]})
    box.reset_stats()

    enriched = restconnect.enrich(frame, pay, "customers_batch", {"ids": "customer"},
                                  batch_size=20, key="id", prefix="c.")

    assert _routes(box)["GET /pay/customers"] == math.ceil(45 / 20)
    assert enriched["c.email"].tolist() == [c["email"] for c in linked]


# ---------------------------------------------------------------- parent-child


def test_parent_child_fetch_keeps_the_parent_keys(two_apis):
    box, code, _ = two_apis
    public = {r["full_name"] for r in box.data.repos.rows if not r["private"]}
    expected = sorted(i["id"] for i in box.data.issues.rows
                      if i["repository"] in public)
    box.reset_stats()

    issues = code.fetch("repo_issues")

    assert sorted(issues["id"]) == expected
    assert (issues["repos.owner.login"] + "/" + issues["repos.name"]
            == issues["repository"]).all()
    assert _routes(box)["GET /code/repos/{owner}/{repo}/issues"] >= len(public)
    meta = issues.attrs["restconnect"]
    assert meta["parent"] == {"endpoint": "repos", "records": len(public)}
    assert meta["lookups"] == len(public)


def test_parent_child_batches_turn_n_lookups_into_n_over_batch(two_apis):
    box, code, _ = two_apis
    authors = {i["user"]["id"] for i in box.data.issues.rows}
    box.reset_stats()

    users = code.fetch("issue_authors")

    assert sorted(users["id"]) == sorted(authors)
    assert _routes(box)["GET /code/users"] == math.ceil(len(authors) / 20)
    assert users.attrs["restconnect"]["calls"] == math.ceil(len(authors) / 20)
    assert (users["issues.user.id"] == users["id"]).all()


def test_parent_child_given_the_parameters_is_a_plain_fetch(two_apis):
    box, code, _ = two_apis
    repo = next(r for r in box.data.repos.rows if not r["private"])
    owner, name = repo["full_name"].split("/")
    box.reset_stats()

    issues = code.fetch("repo_issues", owner=owner, repo=name)

    assert "GET /code/repos" not in _routes(box)
    assert set(issues["repository"]) <= {repo["full_name"]}


def test_parent_child_limit_trims_the_result(two_apis):
    _, code, _ = two_apis
    users = code.fetch("issue_authors", limit=7)
    assert len(users) == 7
    assert users.attrs["restconnect"]["truncated"] is True


def test_a_parent_child_fetch_with_failures_warns_at_the_fetch_call(two_apis,
                                                                   tmp_path):
    box, _, _ = two_apis
    _, pay_spec = write_specs(tmp_path, box.url)
    # Logins are not customer ids: every child lookup answers 404.
    pay_spec.write_text(pay_spec.read_text() + """  customer_by_login:
    path: "/customers/{id}"
    parent: {endpoint: customers, params: {id: code_login}}
""")
    pay = connect(str(pay_spec), **credentials(box)[1])
    logins = {c["code_login"] for c in box.data.customers.rows}

    with pytest.warns(RestConnectWarning) as caught:
        children = pay.fetch("customer_by_login")
    pay.close()

    lookups = len(logins - {None})
    assert [w.filename for w in caught] == [__file__]
    assert str(caught[0].message) == (
        f"pay.customer_by_login: {lookups} of {lookups} lookups failed and 1 row "
        "had no key; see the '_error' column")
    assert children["_error"].notna().all()


def test_a_batched_parent_without_key_is_a_spec_error(tmp_path):
    spec = tmp_path / "api.yaml"
    spec.write_text("""
name: api
base_url: http://127.0.0.1:9
endpoints:
  items: {path: /items}
  details:
    path: /details
    parent: {endpoint: items, params: {ids: id}, batch_size: 10}
""")
    with pytest.raises(SpecError) as caught:
        restconnect.load_spec(spec)
    assert "endpoints.details.parent" in str(caught.value)
    assert "key" in str(caught.value)
