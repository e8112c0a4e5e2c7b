"""join(): key normalisation, suffixes and attrs; two APIs under two auth methods."""

from __future__ import annotations

import logging
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from pandas.errors import MergeError
from pandas.testing import assert_frame_equal

import restconnect
from restconnect import RestConnectWarning, SpecError
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
    (np.True_, "true"), (np.int64(2**60 + 1), str(2**60 + 1)), (np.float64(7.0), 7),
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

    with pytest.warns(RestConnectWarning, match="casefold"):
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


# ---------------------------------------------------------------- like pandas


def _numeric(frame: pd.DataFrame, column: str = "k") -> pd.DataFrame:
    """``frame`` with text keys already normalised to numbers, for pandas."""
    return frame.assign(**{column: pd.to_numeric(frame[column].str.strip())})


# Missing keys on one side only: pandas then matches the same rows we do
# (with missing keys on both sides it would match them to each other).
LEFT_INTS = {"k": [10, 7, None, 3, 1, 100], "a": list("abcdef")}
RIGHT_TEXT = {"k": ["12", " 7", "9", "3", "100", "1"], "b": list("uvwxyz")}


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
@pytest.mark.parametrize("missing_on", ["left", "right"])
def test_rows_come_out_as_pandas_gives_them_for_normalised_keys(how, missing_on):
    left, right = pd.DataFrame(LEFT_INTS), pd.DataFrame(RIGHT_TEXT)
    if missing_on == "right":
        left = left.dropna().astype({"k": "int64"})
        right.loc[2, "k"] = None

    joined = restconnect.join(left, right, on="k", how=how)

    assert_frame_equal(joined, pd.merge(left, _numeric(right), on="k", how=how))


def test_outer_join_puts_missing_keys_last_and_never_matches_them():
    left = pd.DataFrame({"k": [2, None, 1, None], "a": list("abcd")})
    right = pd.DataFrame({"k": ["1", None, "3"], "b": list("xyz")})

    joined = restconnect.join(left, right, on="k", how="outer")

    present = pd.merge(left.dropna(), _numeric(right.dropna()), on="k", how="outer")
    right_missing = right[right["k"].isna()].assign(k=float("nan"))
    expected = pd.concat([present, left[left["k"].isna()], right_missing],
                         ignore_index=True)
    assert_frame_equal(joined, expected)


def test_outer_join_orders_several_keys_like_pandas():
    left = pd.DataFrame({"x": [2, 10, 2, 1], "y": ["b", "a", "a", "c"], "l": range(4)})
    right = pd.DataFrame({"x": ["10", "2", "9", "1"], "y": ["a", "a", "z", "d"],
                          "r": range(4)})

    joined = restconnect.join(left, right, on=["x", "y"], how="outer")

    expected = pd.merge(left, _numeric(right, "x"), on=["x", "y"], how="outer")
    assert_frame_equal(joined, expected)


def test_text_keys_on_both_sides_keep_text_order():
    left = pd.DataFrame({"k": ["9", "10", "b"], "a": [1, 2, 3]})
    right = pd.DataFrame({"k": [" 10", "a", "11"], "b": [4, 5, 6]})

    joined = restconnect.join(left, right, on="k", how="outer")

    stripped = right.assign(k=right["k"].str.strip())
    assert_frame_equal(joined, pd.merge(left, stripped, on="k", how="outer"))


def test_right_only_keys_that_do_not_fit_stay_the_text_they_were():
    left = pd.DataFrame({"k": [7, 8, None, 10, 11, 12], "a": list("abcdef")})
    right = pd.DataFrame({"k": ["7", " 8 ", None, "10.0", "011", "12"],
                          "b": list("uvwxyz")})

    joined = restconnect.join(left, right, on="k", how="outer")

    assert joined["k"].dtype == object
    right_only = joined[joined["a"].isna() & joined["k"].notna()]
    assert dict(zip(right_only["b"], right_only["k"])) == {"x": "10.0", "y": "011"}
    assert [normalize_key(v) for v in joined["k"]] == joined["k"].tolist()
    keys = joined["k"].dropna().tolist()
    assert keys == sorted(keys, key=Decimal)
    assert joined["k"].tail(2).isna().all()
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("how", ["outer", "right"])
def test_nullable_keys_keep_their_type(how):
    left = pd.DataFrame({"k": pd.array([1, 2, None, 4], dtype="Int64"),
                         "a": [1, 2, 3, 4]})
    right = pd.DataFrame({"k": pd.array(["1", "2", "3"], dtype="string"),
                          "b": [5, 6, 7]})

    joined = restconnect.join(left, right, on="k", how=how)

    expected = pd.merge(left, right.astype({"k": "Int64"}), on="k", how=how)
    assert str(joined["k"].dtype) == "Int64"
    assert_frame_equal(joined, expected)


def test_right_only_text_keys_join_an_integer_column_as_integers():
    left = pd.DataFrame({"k": [1, 2], "a": ["x", "y"]})
    right = pd.DataFrame({"k": ["2", "12"], "b": ["p", "q"]})

    joined = restconnect.join(left, right, on="k", how="outer")

    assert joined["k"].dtype == "int64"
    assert_frame_equal(joined, pd.merge(left, _numeric(right), on="k", how="outer"))


def test_keys_that_fit_take_the_left_columns_type():
    left = pd.DataFrame({"k": ["a", "b"], "x": [1, 2]}, dtype=object)
    right = pd.DataFrame({"k": pd.array(["c", "a"], dtype="string"), "y": [3, 4]})

    joined = restconnect.join(left.astype({"k": "string"}), right, on="k",
                              how="outer")

    assert_frame_equal(joined, pd.merge(left.astype({"k": "string"}), right,
                                        on="k", how="outer"))


def _pandas_refuses(left: pd.DataFrame, right: pd.DataFrame, validate: str) -> bool:
    try:
        pd.merge(left, right, on="id", validate=validate)
    except MergeError:
        return True
    return False


@pytest.mark.parametrize("validate", ["one_to_one", "1:1", "one_to_many",
                                      "many_to_one", "m:m"])
@pytest.mark.parametrize("repeated", ["left", "right"])
@pytest.mark.parametrize("keys", [["1", " 1", None, None], ["1", None, None]])
def test_validate_checks_like_pandas_and_names_the_key(validate, repeated, keys):
    once = pd.DataFrame({"id": [1, 2], "a": [1, 2]})
    other = pd.DataFrame({"id": keys, "b": range(len(keys))})
    # Missing keys never match, so they are never repeated keys either.
    normalised = _numeric(other.dropna(), "id")
    frames, for_pandas = (other, once), (normalised, once)
    if repeated == "right":
        frames, for_pandas = frames[::-1], for_pandas[::-1]

    if not _pandas_refuses(*for_pandas, validate):
        restconnect.join(*frames, on="id", validate=validate)
        return
    with pytest.raises(MergeError) as caught:
        restconnect.join(*frames, on="id", validate=validate)

    assert f"{repeated} frame" in str(caught.value) and "'id'" in str(caught.value)
    assert "__rc" not in str(caught.value)


@pytest.mark.parametrize(("option", "value"), [("how", "cross"), ("how", "full"),
                                               ("validate", "1:2")])
def test_unsupported_options_are_spec_errors_listing_the_choices(option, value):
    frame = pd.DataFrame({"k": [1]})

    with pytest.raises(SpecError) as caught:
        restconnect.join(frame, frame, on="k", **{option: value})

    assert caught.value.path == option
    assert repr(value) in str(caught.value)
    expected = "inner, left, right, outer" if option == "how" else "one_to_one"
    assert expected in str(caught.value)


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_a_join_matching_nothing_warns_at_the_callers_line(how, caplog):
    left = _frame({"k": [1, 2]}, "code", "users")
    right = _frame({"k": ["3"]}, "pay", "customers")

    with (caplog.at_level(logging.WARNING, "restconnect.join"),
          pytest.warns(RestConnectWarning, match="matched no keys") as caught):
        restconnect.join(left, right, on="k", how=how)

    assert len(caught) == 1 and caught[0].filename == __file__
    assert "code.users and pay.customers" in str(caught[0].message)
    assert [r.getMessage() for r in caplog.records] == [str(caught[0].message)]


def test_a_join_that_matches_something_does_not_warn():
    left = _frame({"k": [1, 2]}, "code", "users")
    right = _frame({"k": ["2", "3"]}, "pay", "customers")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RestConnectWarning)
        restconnect.join(left, right, on="k", how="outer")


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

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RestConnectWarning)
        plain = restconnect.join(users, customers, left_on="email",
                                 right_on="metadata.code_email")
    folded = restconnect.join(users, customers, left_on="email",
                              right_on="metadata.code_email", casefold=True)

    assert len(plain) < len(expected)
    assert [w.category for w in caught] == ([RestConnectWarning] if plain.empty else [])
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


def test_a_dataset_join_matching_nothing_warns_at_the_load_call(two_apis, tmp_path):
    _, code, pay = two_apis
    dataset = tmp_path / "nothing.yaml"
    dataset.write_text("""
name: nothing_matches
sources:
  users: {connector: code.yaml, endpoint: users}
  customers: {connector: pay.yaml, endpoint: customers}
joins:
  - {left: users, right: customers, left_on: login, right_on: email}
""", encoding="utf-8")

    with pytest.warns(RestConnectWarning, match="matched no keys") as caught:
        frame = restconnect.load(dataset, connectors={"users": code, "customers": pay})

    assert frame.empty
    assert [w.filename for w in caught] == [__file__]
