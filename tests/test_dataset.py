"""Dataset files: validation errors with file and key path, and loading over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

import restconnect
from restconnect import CredentialsMissing, ExtractError, SpecError
from restconnect.dataset import read_dataset
from tests.join_helpers import ENV, credentials, two_auth_methods, write_specs

CODE_CREDS = "{client_id: JOIN_TEST_CLIENT_ID, client_secret: JOIN_TEST_CLIENT_SECRET}"
PAY_CREDS = "{api_key: JOIN_TEST_PAY_KEY}"

DATASET = f"""
name: repos_with_customers
description: public repos, the billing customers of their owners, owner details
sources:
  repos:
    connector: code.yaml
    endpoint: repos
    credentials: {CODE_CREDS}
  customers:
    connector: pay.yaml
    endpoint: customers
    credentials: {PAY_CREDS}
  owner:
    connector: code.yaml
    endpoint: user
    credentials: {CODE_CREDS}
joins:
  - left: repos
    right: customers
    left_on: owner.login
    right_on: code_login
    how: left
  - enrich: owner
    params: {{login: owner.login}}
    prefix: "owner."
select: [full_name, owner.login, email, owner.followers]
"""

#: The first join alone: quicker, for the extract tests.
JOIN_ONLY = (DATASET.split("  owner:\n")[0] + "joins:"
             + DATASET.split("joins:")[1].split("  - enrich:")[0]
             + "select: [full_name, owner.login, email]\n")


@pytest.fixture()
def folder(fresh_sandbox, tmp_path, monkeypatch):
    """Specs for both services, and their credentials in the environment."""
    fresh_sandbox.configure(auth=two_auth_methods(fresh_sandbox))
    write_specs(tmp_path, fresh_sandbox.url)
    given = {**credentials(fresh_sandbox)[0], **credentials(fresh_sandbox)[1]}
    for variable, field in ENV.items():
        monkeypatch.setenv(variable, given[field])
    return tmp_path


def _write(folder: Path, text: str, name: str = "dataset.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_joins_two_apis_and_enriches(folder, fresh_sandbox):
    box = fresh_sandbox
    frame = restconnect.load(_write(folder, DATASET))

    users = {u["login"]: u for u in box.data.users.rows}
    emails: dict[str, list[str]] = {}
    for customer in box.data.customers.rows:
        if customer["code_login"]:
            emails.setdefault(customer["code_login"], []).append(customer["email"])
    expected = sorted(
        (r["full_name"], email, users[r["owner"]["login"]]["followers"])
        for r in box.data.repos.rows if not r["private"]
        for email in emails.get(r["owner"]["login"], [None]))
    found = [e if isinstance(e, str) else None for e in frame["email"]]
    got = sorted(zip(frame["full_name"], found, frame["owner.followers"]),
                 key=lambda t: (t[0], t[1] or "", t[2]))
    assert list(frame.columns) == ["full_name", "owner.login", "email",
                                   "owner.followers"]
    assert got == sorted(expected, key=lambda t: (t[0], t[1] or "", t[2]))
    meta = frame.attrs["restconnect"]
    assert meta["dataset"]["name"] == "repos_with_customers"
    assert [s["connector"] for s in meta["sources"]] == ["code", "pay", "code"]
    assert box.stats["by_auth"].get("oauth2") and box.stats["by_auth"].get("api_key")


def test_load_dataset_is_the_same_function(folder):
    assert restconnect.load is restconnect.load_dataset
    spec = read_dataset(_write(folder, DATASET))
    assert [s.connector for s in spec.sources.values()] == ["code.yaml", "pay.yaml",
                                                            "code.yaml"]


def test_ready_connectors_replace_the_files_ones(folder, fresh_sandbox):
    path = _write(folder, DATASET.replace("connector: pay.yaml",
                                          "connector: nowhere.yaml"))
    pay = restconnect.connect(str(folder / "pay.yaml"), **credentials(fresh_sandbox)[1])

    frame = restconnect.load_dataset(path, connectors={"customers": pay})

    assert len(frame) > 0
    pay.close()


def test_missing_environment_variable_is_named(folder, monkeypatch):
    monkeypatch.delenv("JOIN_TEST_PAY_KEY")
    with pytest.raises(CredentialsMissing) as caught:
        restconnect.load(_write(folder, DATASET))
    assert "JOIN_TEST_PAY_KEY" in str(caught.value)
    assert "sources.customers.credentials.api_key" in str(caught.value)


def test_a_literal_secret_is_refused_without_echoing_it(tmp_path):
    secret = "sbx_key_pasted_by_mistake_1234"
    text = DATASET.replace(PAY_CREDS, "{api_key: " + secret + "}")
    with pytest.raises(SpecError) as caught:
        read_dataset(_write(tmp_path, text))
    assert caught.value.path == "sources.customers"
    assert "environment variable" in str(caught.value)
    assert secret not in str(caught.value)


BROKEN = [
    ("name: [x\n", "", "not valid YAML"),
    ("- just a list\n", "", "expected a mapping"),
    (DATASET.replace("joins:", "jions:"), "jions", "did you mean 'joins'"),
    (DATASET.replace("right: customers", "right: custmers"), "joins[0].right",
     "did you mean 'customers'"),
    (DATASET.replace("    right: customers\n", ""), "joins[0]", "either 'right'"),
    (DATASET.replace("    how: left\n", "    how: sideways\n"), "joins[0].how",
     "got 'sideways'"),
    (DATASET.replace("  - enrich: owner\n    params: {login: owner.login}\n"
                     "    prefix: \"owner.\"\n", ""), "sources.owner", "never joined"),
    (DATASET.replace("  - left: repos\n    right:", "  - right:"), "joins[0].left",
     "first step"),
    (DATASET.replace("JOIN_TEST_PAY_KEY", "join_test_pay_key"),
     "sources.customers", "in capitals"),
    (DATASET.replace("endpoint: customers", "endpoint: 42"),
     "sources.customers.endpoint", "string"),
]


@pytest.mark.parametrize(("text", "path", "message"), BROKEN)
def test_broken_files_name_file_key_path_and_problem(tmp_path, text, path, message):
    file = _write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        read_dataset(file)
    assert caught.value.source == str(file)
    assert caught.value.path == path
    assert message in str(caught.value)


def test_unknown_endpoint_is_found_when_connecting(folder):
    file = _write(folder, DATASET.replace("endpoint: customers",
                                          "endpoint: customer_list"))
    with pytest.raises(SpecError) as caught:
        restconnect.load(file)
    assert caught.value.path == "sources.customers.endpoint"
    assert "customers" in caught.value.problem


def test_a_join_on_a_missing_column_points_at_the_step(folder):
    file = _write(folder, DATASET.replace("right_on: code_login",
                                          "right_on: code_logn"))
    with pytest.raises(SpecError) as caught:
        restconnect.load(file)
    assert caught.value.source == str(file)
    assert caught.value.path == "joins[0].right_on"
    assert "did you mean 'code_login'" in str(caught.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        read_dataset(tmp_path / "absent.yaml")


def test_env_prefix_form_is_accepted(folder):
    text = DATASET.replace(PAY_CREDS, "{api_key: env:JOIN_TEST_PAY_KEY}")
    spec = read_dataset(_write(folder, text))
    assert spec.sources["customers"].credentials == {"api_key": "env:JOIN_TEST_PAY_KEY"}


def test_extract_writes_the_joined_frame(folder, capsys):
    import pyarrow.parquet as pq

    from restconnect.cli import main

    path = _write(folder, JOIN_ONLY + "output: out/joined.parquet\n")
    expected = restconnect.load(path)

    code = main(["extract", str(path)])

    assert code == 0
    written = pq.read_table(folder / "out" / "joined.parquet").to_pandas()
    assert list(written.columns) == list(expected.columns)
    assert sorted(written["full_name"]) == sorted(expected["full_name"])
    assert f"rows={len(expected)}" in capsys.readouterr().out


def test_extract_output_option_wins_and_no_output_is_an_error(folder):
    from restconnect.cli import main
    from restconnect.jobs import extract

    path = _write(folder, JOIN_ONLY)
    assert main(["extract", str(path), "-o", str(folder / "x.csv")]) == 0
    assert (folder / "x.csv").read_text().startswith("full_name,")
    with pytest.raises(SpecError) as caught:
        extract(str(path))
    assert caught.value.path == "output"


def test_a_dataset_extract_holds_the_output_lock(folder, fresh_sandbox):
    from filelock import FileLock

    from restconnect.cli import main
    from restconnect.jobs import _lock_path

    out = folder / "out" / "joined.parquet"
    path = _write(folder, JOIN_ONLY + "output: out/joined.parquet\n")
    before = fresh_sandbox.stats

    with FileLock(str(_lock_path("dataset", str(out)))):
        code = main(["extract", str(path)])

    assert code == ExtractError.exit_code == 8
    assert fresh_sandbox.stats == before  # refused before fetching anything
    assert not out.exists()
    (folder / "adir.csv").mkdir()
    assert main(["extract", str(path), "-o", str(folder / "adir.csv")]) == 8


OFFLINE_MISTAKES = [
    ("endpoint: customers", "endpoint: customer_list", "sources.customers.endpoint",
     "has no endpoint 'customer_list'"),
    ("connector: pay.yaml", "connector: pya.yaml", "sources.customers.connector",
     "pya.yaml"),
    ("{api_key: JOIN_TEST_PAY_KEY}", "{apikey: JOIN_TEST_PAY_KEY}",
     "sources.customers.credentials.apikey", "did you mean 'api_key'?"),
]


@pytest.mark.parametrize(("good", "bad", "path", "words"), OFFLINE_MISTAKES,
                         ids=["endpoint", "connector", "credential"])
def test_read_dataset_checks_the_connectors_without_fetching(folder, fresh_sandbox,
                                                             good, bad, path, words):
    before = fresh_sandbox.stats
    with pytest.raises(SpecError) as caught:
        read_dataset(_write(folder, DATASET.replace(good, bad, 1)))
    assert caught.value.path == path
    assert words in str(caught.value)
    assert fresh_sandbox.stats == before
