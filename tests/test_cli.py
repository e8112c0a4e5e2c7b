"""The restconnect command, run as a user would, against the sandbox."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "restconnect.cli", *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def test_demo_prints_real_data():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for endpoint in ("repos", "issues", "customers", "invoices_csv"):
        assert endpoint in out
    assert "first 5 rows of 'repos'" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("repos ")]
    assert rows and int(rows[0].split()[-4]) > 100


def test_list_and_show():
    listed = run("list")
    assert listed.returncode == 0
    assert "github" in listed.stdout and "sandbox" in listed.stdout
    shown = run("show", "github")
    assert "GITHUB_TOKEN" in shown.stdout
    assert "/users/{user}/repos [user]" in shown.stdout


def test_schema_is_json():
    result = run("schema")
    assert json.loads(result.stdout)["title"] == "restconnect connector spec"


def test_fetch_writes_csv(sandbox, tmp_path):
    out = tmp_path / "repos.csv"
    env = {"RESTCONNECT_SANDBOX_TOKEN": sandbox.credentials["token"]}
    result = run("fetch", "sandbox", "repos", "--base-url", sandbox.url, "-o", str(out),
                 env=env)
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    public = [repo for repo in sandbox.data.repos.rows if not repo["private"]]
    assert len(rows) == len(public)
    assert "owner.login" in rows[0]


def test_missing_credentials_exit_code_names_the_variable(sandbox):
    env = {"RESTCONNECT_SANDBOX_TOKEN": ""}
    result = run("fetch", "sandbox", "repos", "--base-url", sandbox.url, env=env)
    assert result.returncode == 4
    assert "RESTCONNECT_SANDBOX_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_spec_error_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nbase_url: http://127.0.0.1:1\nendpoints: {a: {pth: /a}}\n")
    result = run("fetch", str(bad), "a")
    assert result.returncode == 2
    assert "endpoints.a.pth" in result.stderr


@pytest.mark.parametrize(("args", "code"), [(("-p", "bad"), 2)])
def test_bad_parameter_syntax(args, code):
    result = run("fetch", "github", "repos", *args)
    assert result.returncode == code
    assert "NAME=VALUE" in result.stderr


def test_http_error_exit_code_and_one_line(sandbox):
    env = {"RESTCONNECT_SANDBOX_TOKEN": "wrong-token-value"}
    result = run("fetch", "sandbox", "repos", "--base-url", sandbox.url, env=env)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "wrong-token-value" not in result.stderr


def test_p_limit_is_an_api_parameter_not_the_row_cap(sandbox, tmp_path):
    env = {"RESTCONNECT_SANDBOX_TOKEN": sandbox.credentials["token"]}
    out = tmp_path / "payments.csv"
    result = run("fetch", "sandbox", "payments", "--base-url", sandbox.url,
                 "-p", "limit=5", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    expected = len(sandbox.connect("sandbox", cache=False).fetch("payments"))
    assert len(rows) == expected > 5


def test_unwritable_output_is_one_line(sandbox, tmp_path):
    env = {"RESTCONNECT_SANDBOX_TOKEN": sandbox.credentials["token"]}
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("fetch", "sandbox", "labels", "--base-url", sandbox.url,
                 "-o", str(blocker / "x.csv"), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_sandbox_serve_rejects_a_bad_port():
    result = run("sandbox", "serve", "--port", "99999")
    assert result.returncode == 2
    assert "not a TCP port" in result.stderr


def test_csv_output_writes_lists_as_json(sandbox, tmp_path):
    env = {"RESTCONNECT_SANDBOX_TOKEN": sandbox.credentials["token"]}
    out = tmp_path / "repos.csv"
    result = run("fetch", "sandbox", "repos", "--base-url", sandbox.url, "-o", str(out),
                 "--max-pages", "1", env=env)
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        row = next(csv.DictReader(handle))
    served = next(r for r in sandbox.data.repos.rows if str(r["id"]) == row["id"])
    assert json.loads(row["topics"]) == served["topics"]


def test_debug_shows_the_traceback_and_keeps_the_exit_code(sandbox):
    env = {"RESTCONNECT_SANDBOX_TOKEN": "wrong-token-value"}
    result = run("--debug", "fetch", "sandbox", "repos", "--base-url", sandbox.url,
                 env=env)
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "wrong-token-value" not in result.stderr


@pytest.mark.parametrize("args", [
    ("fetch", "sandbox", "repos", "--limit", "-1"),
    ("fetch", "sandbox", "repos", "--max-pages", "0"),
    ("extract", "sandbox", "labels", "-o", "x.csv", "--batch-size", "0"),
    ("extract", "sandbox", "labels", "-o", "x.csv", "--log-level", "chatty"),
], ids=["limit", "max-pages", "batch-size", "log-level"])
def test_bad_option_values_are_usage_errors(args, tmp_path):
    result = subprocess.run([sys.executable, "-m", "restconnect.cli", *args],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_fetch_output_folders_are_created(sandbox, tmp_path):
    env = {"RESTCONNECT_SANDBOX_TOKEN": sandbox.credentials["token"]}
    out = tmp_path / "new" / "sub" / "labels.csv"
    result = run("fetch", "sandbox", "labels", "--base-url", sandbox.url,
                 "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
