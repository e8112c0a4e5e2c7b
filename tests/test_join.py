"""join(): key normalisation, suffixes and attrs; two APIs under two auth methods."""

from __future__ import annotations

import pandas as pd
import pytest

import restconnect
from restconnect import SpecError
from restconnect.join import normalize_key
from tests.join_helpers import open_two_apis


def _frame(data: dict, connector: str, endpoint: str) -> pd.DataFrame:
    frame = pd.DataFrame(data)
    frame.attrs["restconnect"] = {"connector": connector, "endpoint": endpoint,
                                  "pages": 1, "truncated": False}
    return frame


# ---------------------------------------------------------------- unit


@pytest.mark.parametrize(("left", "right"), [
    (7, "7"), (7.0, "7"), (" 7 ", 7), (True, "true"), (-3, "-3"),
])
def test_normalize_key_makes_equal_values_equal(left, right):
    assert normalize_key(left) == normalize_key(right)


@pytest.mark.parametrize(("left", "right"), [("007", 7), (7.5, "7"), ("A", "a")])
def test_normalize_key_keeps_different_values_apart(left, right):
    assert normalize_key(left) != normalize_key(right)


def test_missing_values_have_no_key():
    assert [normalize_key(v) for v in (None, float("nan"), pd.NA)] == [None] * 3


def test_int_and_string_ids_match():
    users = _frame({"id": [1, 2, 3], "login": ["a", "b", "c"]}, "code", "users")
    customers = _frame({"user_id": ["3", "1", "9"], "plan": ["x", "y", "z"]},
                       "pay", "customers")

    joined = restconnect.join(users, customers, left_on="id", right_on="user_id")

    assert sorted(zip(joined["login"], joined["plan"])) == [("a", "y"), ("c", "x")]


def test_missing_keys_never_match_each_other():
    left = _frame({"k": [None, 1], "a": ["x", "y"]}, "code", "users")
    right = _frame({"k": [None, "1"], "b": ["p", "q"]}, "pay", "customers")

    joined = restconnect.join(left, right, on="k")

    assert joined[["a", "b"]].values.tolist() == [["y", "q"]]


def test_casefold_only_when_asked():
    users = _frame({"email": ["Ada@Example.org", "bo@example.org"]}, "code", "users")
    customers = _frame({"email": ["ada@example.org"], "tier": ["team"]}, "pay",
                       "customers")

    assert restconnect.join(users, customers, on="email").empty
    folded = restconnect.join(users, customers, on="email", casefold=True)

    assert folded["tier"].tolist() == ["team"]
    assert folded["email"].tolist() == ["Ada@Example.org"]


def test_suffixes_name_each_source_and_attrs_list_both():
    left = _frame({"id": [1], "name": ["repo"]}, "code", "repos")
    right = _frame({"id": ["1"], "name": ["cust"]}, "pay", "customers")

    joined = restconnect.join(left, right, on="id")

    assert {"name_code", "name_pay"} <= set(joined.columns)
    meta = joined.attrs["restconnect"]
    assert [s["connector"] for s in meta["sources"]] == ["code", "pay"]
    assert meta["connector"] == "code+pay"
    assert meta["steps"][0]["how"] == "inner"


def test_same_connector_suffixes_use_endpoints():
    left = _frame({"id": [1], "name": ["r"]}, "code", "repos")
    right = _frame({"id": [1], "name": ["u"]}, "code", "users")

    joined = restconnect.join(left, right, on="id")

    assert {"name_repos", "name_users"} <= set(joined.columns)


def test_outer_join_keeps_both_sides_and_one_key_column():
    left = _frame({"id": [1, 2], "a": ["x", "y"]}, "code", "users")
    right = _frame({"id": ["2", "3"], "b": ["p", "q"]}, "pay", "customers")

    joined = restconnect.join(left, right, on="id", how="outer")

    assert sorted(joined["id"].tolist()) == [1, 2, 3]
    assert joined.loc[joined["id"] == 3, "b"].tolist() == ["q"]


def test_a_joined_frame_joins_again_and_keeps_every_source():
    a = _frame({"id": [1]}, "code", "users")
    b = _frame({"id": [1], "x": [1]}, "pay", "customers")
    c = _frame({"id": [1], "y": [2]}, "crm", "contacts")

    joined = restconnect.join(restconnect.join(a, b, on="id"), c, on="id")

    assert [s["connector"] for s in joined.attrs["restconnect"]["sources"]] == [
        "code", "pay", "crm"]
    assert len(joined.attrs["restconnect"]["steps"]) == 2


def test_missing_key_column_names_it_and_suggests():
    left = _frame({"login": ["a"]}, "code", "users")
    right = _frame({"login": ["a"]}, "pay", "customers")

    with pytest.raises(SpecError) as caught:
        restconnect.join(left, right, left_on="logn", right_on="login")

    assert caught.value.path == "left_on"
    assert "'logn'" in str(caught.value) and "did you mean 'login'" in str(caught.value)


@pytest.mark.parametrize("kwargs", [
    {"on": "a", "left_on": "a"},
    {"left_on": "a"},
    {"left_on": ["a", "b"], "right_on": "a"},
])
def test_key_arguments_must_pair_up(kwargs):
    frame = _frame({"a": [1], "b": [2]}, "code", "users")
    with pytest.raises(SpecError):
        restconnect.join(frame, frame, **kwargs)


# ---------------------------------------------------------------- over HTTP


@pytest.fixture()
def two_apis(fresh_sandbox, tmp_path):
    """The code service behind OAuth client credentials, payments behind an API key."""
    code, pay = open_two_apis(fresh_sandbox, tmp_path)
    yield fresh_sandbox, code, pay
    code.close()
    pay.close()


def test_each_service_refuses_the_other_auth_method(two_apis):
    box, code, pay = two_apis
    # Each connector's credentials work on its own service only: the two
    # auth methods in the join tests below are really both in force.
    assert code.get("/users", params={"per_page": 1})
    assert pay.get("/customers", params={"limit": 1})
    with pytest.raises(restconnect.RestConnectError):
        code.request("GET", f"{box.url}/pay/customers")
    with pytest.raises(restconnect.RestConnectError):
        pay.request("GET", f"{box.url}/code/users")


def test_join_two_apis_on_int_and_string_ids(two_apis):
    box, code, pay = two_apis
    users, customers = code.fetch("users"), pay.fetch("customers")

    joined = restconnect.join(users, customers, left_on="id",
                              right_on="metadata.code_user_id")

    expected = sorted((c["id"], int(c["metadata"]["code_user_id"]))
                      for c in box.data.customers.rows
                      if "code_user_id" in c["metadata"])
    assert expected, "the sandbox links some customers to users"
    assert sorted(zip(joined["id_pay"], joined["id_code"])) == expected
    assert box.stats["by_auth"].get("oauth2", 0) > 0
    assert box.stats["by_auth"].get("api_key", 0) > 0
    assert [s["connector"] for s in joined.attrs["restconnect"]["sources"]] == [
        "code", "pay"]


def test_join_two_apis_on_emails_needs_casefold(two_apis):
    box, code, pay = two_apis
    users, customers = code.fetch("users"), pay.fetch("customers")
    emails = {u["email"]: u["login"] for u in box.data.users.rows if u["email"]}
    expected = sorted((emails[c["metadata"]["code_email"].lower()], c["id"])
                      for c in box.data.customers.rows if "code_email" in c["metadata"])

    plain = restconnect.join(users, customers, left_on="email",
                             right_on="metadata.code_email")
    folded = restconnect.join(users, customers, left_on="email",
                              right_on="metadata.code_email", casefold=True)

    assert len(plain) < len(expected)
    assert sorted(zip(folded["login"], folded["id_pay"])) == expected


def test_left_join_repos_to_customers_keeps_unmatched_repos(two_apis):
    box, code, pay = two_apis
    repos, customers = code.fetch("repos"), pay.fetch("customers")

    joined = restconnect.join(repos, customers, left_on="owner.login",
                              right_on="code_login", how="left")

    per_login: dict[str, int] = {}
    for customer in box.data.customers.rows:
        login = customer["code_login"]
        if login:
            per_login[login] = per_login.get(login, 0) + 1
    public = [r for r in box.data.repos.rows if not r["private"]]
    assert len(joined) == sum(max(1, per_login.get(r["owner"]["login"], 0))
                              for r in public)
    unmatched = joined[joined["id_pay"].isna()]
    assert set(unmatched["owner.login"]) == {r["owner"]["login"] for r in public
                                             if r["owner"]["login"] not in per_login}
