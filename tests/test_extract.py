"""Extract jobs over real HTTP: outputs, the command line, locks, and kills mid-run."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cache_support import connect_box, write_spec

from restconnect.exceptions import CredentialsMissing, ExtractError, SpecError
from restconnect.jobs import CRASH_ENV, CRASH_EXIT, Job, _lock_path

REPO = Path(__file__).resolve().parents[1]


def make_job(box, folder: Path, output, **options) -> Job:
    spec = write_spec(folder)
    options.setdefault("endpoint", "issues")
    options.setdefault("credentials", {"token": "env:CACHEBOX_TOKEN"})
    return Job(connector=str(spec), output=output, base_url=box.url, **options)


def listed_repos(box, folder: Path) -> int:
    """How many repos the API lists (some are private), by a plain fetch."""
    return len(connect_box(box, folder / "plain", cache=False).fetch("repos"))


@pytest.fixture()
def token_env(fresh_sandbox, monkeypatch):
    monkeypatch.setenv("CACHEBOX_TOKEN", fresh_sandbox.credentials["token"])
    return fresh_sandbox


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """``restconnect ...`` in a new process, as a scheduler would run it."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "restconnect.cli", *args], cwd=cwd,
                          env=merged, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def touch_some(box) -> set[int]:
    changes = [box.touch("issues", count=4), box.touch("issues", count=0, create=1)]
    return {key for change in changes for key in change["touched"] + change["created"]}


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
    elif path.suffix == ".jsonl":
        lines = path.read_text().splitlines()
        frame = pd.DataFrame([json.loads(line) for line in lines])
    elif path.suffix == ".sqlite":
        with sqlite3.connect(path) as db:
            frame = pd.read_sql("SELECT * FROM issues", db)
    else:
        import duckdb

        with duckdb.connect(str(path)) as db:
            frame = db.execute("SELECT * FROM issues").df()
    return frame


def stamps(frame: pd.DataFrame) -> pd.Series:
    """updated_at as UTC times by id, whatever text or type the output used."""
    values = pd.to_datetime(frame["updated_at"], utc=True, format="ISO8601")
    return pd.Series(values.to_numpy(), index=frame["id"].astype(int)).sort_index()


def server_stamps(box) -> pd.Series:
    rows = box.data.issues.rows
    values = pd.to_datetime([r["updated_at"] for r in rows], utc=True)
    return pd.Series(values, index=[r["id"] for r in rows]).sort_index()


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl", "sqlite", "duckdb"])
def test_incremental_upsert_matches_the_server(token_env, tmp_path, suffix) -> None:
    box = token_env
    out = tmp_path / f"issues.{suffix}"
    job = make_job(box, tmp_path, str(out), incremental=True, batch_size=250)

    first = job.run()
    changed = touch_some(box)
    second = job.run()

    assert (first.rows, first.mode) == (1200, "upsert")
    assert second.rows == len(changed)
    assert second.pages == 1
    frame = read_output(out)
    assert frame["id"].is_unique
    pd.testing.assert_series_equal(stamps(frame), server_stamps(box),
                                   check_names=False, check_index_type=False)


def test_parquet_is_written_in_bounded_batches(token_env, tmp_path) -> None:
    out = tmp_path / "issues.parquet"
    summary = make_job(token_env, tmp_path, str(out), batch_size=300).run()

    meta = pq.ParquetFile(out).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    assert summary.rows == 1200 and summary.mode == "replace"
    assert sum(sizes) == 1200
    assert max(sizes) <= 300 and len(sizes) >= 4


def test_append_mode_keeps_every_version(token_env, tmp_path) -> None:
    out = tmp_path / "history.jsonl"
    job = make_job(token_env, tmp_path, {"path": str(out), "mode": "append"},
                   incremental=True)

    job.run()
    changed = touch_some(token_env)
    job.run()

    frame = read_output(out)
    assert len(frame) == 1200 + len(changed)
    assert not frame.duplicated(["id", "updated_at"]).any()


def test_replace_mode_rewrites_the_whole_output(token_env, tmp_path) -> None:
    out = tmp_path / "repos.csv"
    job = make_job(token_env, tmp_path, str(out), endpoint="repos")

    job.run()
    job.run()

    assert len(read_output(out)) == listed_repos(token_env, tmp_path)
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == [".repos.csv.restconnect-lock"]  # staging and old copies are gone


def test_upsert_without_primary_key_is_refused(token_env, tmp_path) -> None:
    job = make_job(token_env, tmp_path, {"path": str(tmp_path / "u.csv"),
                                         "mode": "upsert"}, endpoint="user")

    with pytest.raises(SpecError, match="primary_key"):
        job.run()


# ---------------------------------------------------------------- crash safety


def _reference_and_victim(box, tmp_path: Path, suffix: str) -> tuple[Job, Job]:
    reference = make_job(box, tmp_path, {"path": str(tmp_path / f"ref.{suffix}"),
                                         "mode": "append"}, incremental=True)
    victim = make_job(box, tmp_path, {"path": str(tmp_path / f"victim.{suffix}"),
                                      "mode": "append"}, incremental=True)
    return reference, victim


@pytest.mark.parametrize("suffix", ["parquet", "sqlite"])
@pytest.mark.parametrize("point", ["page:1", "before_replace", "before_state",
                                   "after_state"])
def test_killed_run_then_rerun_loses_and_repeats_nothing(token_env, tmp_path, point,
                                                         suffix) -> None:
    box = token_env
    reference, victim = _reference_and_victim(box, tmp_path, suffix)
    reference.run()
    victim.run()
    changed = touch_some(box)
    reference.run()
    job_file = tmp_path / "victim.job.yaml"
    victim.save(job_file)

    killed = run_cli("extract", str(job_file), env={CRASH_ENV: point})
    rerun = victim.run()

    assert killed.returncode == CRASH_EXIT, killed.stderr
    # Once the output is replaced, the rerun finishes the commit and fetches nothing.
    committed = point in ("before_state", "after_state")
    assert rerun.rows == (0 if committed else len(changed))
    expected = read_output(Path(reference.output.path))
    got = read_output(Path(victim.output.path))
    assert len(got) == 1200 + len(changed)
    assert not got.duplicated(["id", "updated_at"]).any()
    order = ["id", "updated_at"]
    pd.testing.assert_frame_equal(
        got.sort_values(order).reset_index(drop=True),
        expected.sort_values(order).reset_index(drop=True))


def test_kill_during_the_first_run_leaves_no_output(token_env, tmp_path) -> None:
    out = tmp_path / "issues.parquet"
    job = make_job(token_env, tmp_path, str(out), incremental=True, batch_size=200)
    job_file = tmp_path / "j.job.yaml"
    job.save(job_file)

    killed = run_cli("extract", str(job_file), env={CRASH_ENV: "page:5"})
    assert killed.returncode == CRASH_EXIT
    assert not out.exists()
    summary = job.run()

    assert summary.rows == 1200
    assert read_output(out)["id"].is_unique
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".issues.parquet.restconnect-lock", "cachebox.yaml", "issues.parquet",
        "j.job.yaml"]


# ---------------------------------------------------------------- command line


def test_one_line_form(token_env, tmp_path) -> None:
    spec = write_spec(tmp_path)

    done = run_cli("extract", str(spec), "issues", "-p", "state=open", "--incremental",
                   "-o", "data/issues.parquet", "--base-url", token_env.url,
                   cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    opened = sum(r["state"] == "open" for r in token_env.data.issues.rows)
    line = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"restconnect extract cachebox\.issues: rows={opened} "
                        r"pages=\d+ seconds=[\d.]+ cache_hits=0 mode=upsert "
                        r"output=.*data/issues\.parquet", line), line
    assert len(read_output(tmp_path / "data" / "issues.parquet")) == opened


def test_job_by_name_from_a_folder_with_json_logs(token_env, tmp_path) -> None:
    conn = connect_box(token_env, tmp_path)
    job = conn.job("repos", output=str(tmp_path / "repos.parquet"), name="nightly")
    cron = job.save(tmp_path / "jobs" / "nightly.job.yaml")

    done = run_cli("extract", "nightly", "--jobs-dir", str(tmp_path / "jobs"),
                   "--log-format", "json", "--log-level", "DEBUG")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["rows"] == listed_repos(token_env, tmp_path)
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    assert logs and all({"time", "level", "logger", "message"} <= set(e) for e in logs)
    assert token_env.credentials["token"] not in done.stderr + done.stdout
    assert "nightly.job.yaml --log-format json" in cron


def test_saved_job_holds_references_never_values(token_env, tmp_path) -> None:
    conn = connect_box(token_env, tmp_path)
    path = tmp_path / "issues.job.yaml"

    cron = conn.job("issues", incremental=True, output="out/issues.parquet",
                    params={"state": "open"}).save(path)

    text = path.read_text()
    assert "token: env:CACHEBOX_TOKEN" in text
    assert token_env.credentials["token"] not in text
    assert text.startswith("# restconnect extract job")
    assert cron in text and cron.startswith("0 2 * * * ")
    loaded = Job.from_file(path)
    assert loaded.params == {"state": "open"} and loaded.incremental
    assert loaded.output.path == str(Path("out/issues.parquet").resolve())


def test_missing_credentials_exit_with_the_variable_to_set(fresh_sandbox,
                                                           tmp_path) -> None:
    job = make_job(fresh_sandbox, tmp_path, str(tmp_path / "x.parquet"),
                   credentials={"token": "env:MY_JOB_TOKEN"})
    job.save(tmp_path / "x.job.yaml")
    env = {k: v for k, v in os.environ.items() if k != "CACHEBOX_TOKEN"}

    done = subprocess.run(
        [sys.executable, "-m", "restconnect.cli", "extract",
         str(tmp_path / "x.job.yaml")],
        env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60)

    assert done.returncode == CredentialsMissing.exit_code == 4
    assert "MY_JOB_TOKEN" in done.stderr and "CACHEBOX_TOKEN" in done.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_a_second_run_of_the_same_job_is_refused(token_env, tmp_path) -> None:
    from filelock import FileLock

    job = make_job(token_env, tmp_path, str(tmp_path / "i.parquet"))
    job_file = tmp_path / "i.job.yaml"
    job.save(job_file)

    with FileLock(str(_lock_path(job.label, job.output.path))):
        with pytest.raises(ExtractError, match="another run of this job"):
            job.run()
        # Another user or scheduler has another restconnect home: the lock
        # sits beside the output, so it still sees the run in progress.
        other_home = {"RESTCONNECT_HOME": str(tmp_path / "other-home")}
        done = run_cli("extract", str(job_file), env=other_home)

    assert done.returncode == ExtractError.exit_code == 8
    assert "in progress" in done.stderr
    assert job.run().rows == 1200


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl", "sqlite"])
def test_a_running_job_keeps_its_lock(token_env, tmp_path, monkeypatch, suffix) -> None:
    import restconnect.jobs

    job = make_job(token_env, tmp_path, str(tmp_path / f"o.{suffix}"))
    refused = []

    def second_run_meanwhile(point: str) -> None:
        if not refused:
            with pytest.raises(ExtractError, match="another run of this job"):
                job.run()
            refused.append(point)

    monkeypatch.setattr(restconnect.jobs, "_crash_hook", second_run_meanwhile)
    assert job.run().rows == 1200
    assert refused


def test_a_value_that_looks_like_a_variable_name_is_refused_unseen(tmp_path) -> None:
    # Shaped like a pasted token, made here so no token-like text is committed.
    pasted = "ghp_" + secrets.token_hex(12)
    path = tmp_path / "bad.job.yaml"
    path.write_text("connector: github\nendpoint: issues\noutput: i.parquet\n"
                    f"credentials: {{token: env:{pasted}}}\n")

    with pytest.raises(SpecError, match="in capitals") as caught:
        Job.from_file(path)
    assert pasted not in str(caught.value)


def test_a_new_page_size_keeps_the_incremental_state(token_env, tmp_path) -> None:
    out = tmp_path / "issues.csv"
    output = {"path": str(out), "mode": "append"}
    first = make_job(token_env, tmp_path, output, incremental=True)
    assert first.run().rows == 1200

    again = make_job(token_env, tmp_path, output, incremental=True,
                     params={"per_page": 100})
    again.run()

    frame = read_output(out)
    assert frame["id"].is_unique and len(frame) == 1200


def test_bad_job_files_are_spec_errors(tmp_path) -> None:
    path = tmp_path / "bad.job.yaml"
    path.write_text("connector: github\nendpoint: issues\noutput: i.parquet\n"
                    "credentials: {token: ghp_literal_value}\n")

    with pytest.raises(SpecError, match="credentials.*reference such as env:"):
        Job.from_file(path)
    path.write_text("connector: github\nendpont: issues\noutput: i.parquet\n")
    with pytest.raises(SpecError, match="did you mean|endpont"):
        Job.from_file(path)
    with pytest.raises(SpecError, match="cannot tell the output format"):
        Job(connector="github", endpoint="issues", output="i.xlsx").output \
            .resolved_format()


def test_python_api(token_env, tmp_path) -> None:
    import restconnect

    summary = restconnect.extract(
        connector=str(write_spec(tmp_path)), endpoint="repos", base_url=token_env.url,
        output=str(tmp_path / "repos.sqlite"),
        credentials={"token": "env:CACHEBOX_TOKEN"})

    listed = listed_repos(token_env, tmp_path)
    assert summary.rows == listed and summary.pages == 3
    with sqlite3.connect(tmp_path / "repos.sqlite") as db:
        count = db.execute("SELECT COUNT(DISTINCT id) FROM repos").fetchone()[0]
    assert count == listed


def test_incremental_replace_is_refused(token_env, tmp_path) -> None:
    job = make_job(token_env, tmp_path, {"path": str(tmp_path / "i.parquet"),
                                          "mode": "replace"}, incremental=True)
    with pytest.raises(SpecError, match="would replace the output with those rows"):
        job.run()
    assert not (tmp_path / "i.parquet").exists()


def test_a_job_parameter_named_limit_goes_to_the_api(token_env, tmp_path) -> None:
    job = make_job(token_env, tmp_path, str(tmp_path / "r.csv"), endpoint="repos",
                   params={"limit": 5})
    assert job.run().rows == listed_repos(token_env, tmp_path) > 5
