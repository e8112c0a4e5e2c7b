"""restconnect.sql(): endpoints named in a query, fetched and run in DuckDB."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

import restconnect
from restconnect import SpecError
from restconnect.sql import INSTALL_HINT, tables_in
from tests.join_helpers import open_two_apis


@pytest.fixture()
def two_apis(fresh_sandbox, tmp_path):
    pytest.importorskip("duckdb", reason="the SQL form needs the duckdb extra")
    code, pay = open_two_apis(fresh_sandbox, tmp_path)
    yield fresh_sandbox, code, pay
    code.close()
    pay.close()


def test_tables_in_finds_source_tables_only():
    query = """
        select r.name, 'code.fake' as s, c.email   -- pay.not_this
        from code.repos r join "pay"."customers" c on c.code_login = r."owner.login"
        /* code.nor_this */ where lower(c.email) like '%x%'
    """
    assert tables_in(query, ["code", "pay"]) == [("code", "repos"),
                                                 ("pay", "customers")]


def test_tables_in_ignores_unknown_schemas_and_functions():
    assert tables_in("select r.id from code.repos r, other.t", ["code"]) == [
        ("code", "repos")]
    assert tables_in("select code.fn(1)", ["code"]) == []


def test_sql_joins_two_apis(two_apis):
    box, code, pay = two_apis
    query = """
        select r.full_name, c.email
        from code.repos r
        join pay.customers c on c.code_login = r."owner.login"
        order by r.full_name, c.email
    """
    result = restconnect.sql(query, sources={"code": code, "pay": pay})

    logins: dict[str, list[str]] = {}
    for customer in box.data.customers.rows:
        if customer["code_login"]:
            logins.setdefault(customer["code_login"], []).append(customer["email"])
    expected = sorted((r["full_name"], email) for r in box.data.repos.rows
                      if not r["private"]
                      for email in logins.get(r["owner"]["login"], []))
    assert list(zip(result["full_name"], result["email"])) == expected
    assert [s["connector"] for s in result.attrs["restconnect"]["sources"]] == [
        "code", "pay"]
    assert box.stats["by_auth"].get("oauth2") and box.stats["by_auth"].get("api_key")


def test_sql_matches_string_ids_with_a_cast(two_apis):
    box, code, pay = two_apis
    query = """
        select u.login, count(*) as customers
        from code.users u join pay.customers c
          on cast(c."metadata.code_user_id" as bigint) = u.id
        group by u.login order by u.login
    """
    result = restconnect.sql(query, sources={"code": code, "pay": pay})

    by_id = {u["id"]: u["login"] for u in box.data.users.rows}
    counts: dict[str, int] = {}
    for customer in box.data.customers.rows:
        user_id = customer["metadata"].get("code_user_id")
        if user_id:
            counts[by_id[int(user_id)]] = counts.get(by_id[int(user_id)], 0) + 1
    assert dict(zip(result["login"], result["customers"])) == counts


def test_params_reach_the_fetch_and_frames_are_tables(two_apis):
    box, code, _ = two_apis
    wanted = pd.DataFrame({"login": ["demo"], "note": ["vip"]})
    box.reset_stats()

    result = restconnect.sql(
        "select w.note, u.login from code.users u join wanted w using (login)",
        sources={"code": code, "wanted": wanted},
        params={"code.users": {"max_pages": 1}})

    assert result.values.tolist() == [["vip", "demo"]]
    assert box.stats["by_route"]["GET /code/users"] == 1


def test_unknown_endpoint_lists_the_known_ones(two_apis):
    _, code, _ = two_apis
    with pytest.raises(SpecError, match="known endpoints"):
        restconnect.sql("select * from code.nothing", sources={"code": code})


def test_a_query_naming_no_source_says_how(two_apis):
    _, code, _ = two_apis
    with pytest.raises(SpecError, match="<source>.<endpoint>"):
        restconnect.sql("select 1", sources={"code": code})


def test_missing_duckdb_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ImportError) as caught:
        restconnect.sql("select * from code.repos", sources={})
    assert str(caught.value) == INSTALL_HINT
    assert "restconnect[duckdb]" in INSTALL_HINT
