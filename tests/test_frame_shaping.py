"""Declared columns, datetimes and dtypes: lost values, typos and empty results.

Fetches go over HTTP to the embedded sandbox (a spec written here points at
it) or, for values the sandbox never serves, to a scripted loopback server.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

import restconnect
from restconnect.exceptions import RestConnectWarning, SpecError
from restconnect.frames import FrameBuilder, FrameOptions
from restconnect.spec import parse_spec
from tests.servers.scripted import Reply, ScriptedServer

TRIAL = """
name: trial
base_url: {url}
auth: {{method: bearer}}
pagination: {{kind: link_header, page_size: 100, page_size_param: per_page}}
endpoints:
  repos:
    path: /code/repos
{repos}
  releases:
    path: /code/repos/{{owner}}/{{repo}}/releases
    pagination: {{kind: none}}
    response_actions: [{{status: 404, action: empty}}]
{releases}
  search:
    path: /code/search/repositories
    records: items
    pagination:
      kind: page_number
      page_param: page
      start: 1
      total_pages_path: total_pages
{search}
"""


def _indent(lines: str) -> str:
    return "\n".join(f"    {line}" for line in lines.splitlines())


def trial(sandbox: Any, repos: str = "", releases: str = "", search: str = "") -> Any:
    """A connector on the sandbox whose endpoints declare the given YAML lines."""
    text = TRIAL.format(url=sandbox.url, repos=_indent(repos),
                        releases=_indent(releases), search=_indent(search))
    spec = parse_spec(text, source="trial.yaml")
    return restconnect.connect(spec, token=sandbox.credentials["token"], cache=False)


def restconnect_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RestConnectWarning)]


@pytest.fixture(scope="module")
def plain_repos(sandbox: Any) -> pd.DataFrame:
    """The repos as the API gives them, with nothing declared."""
    with trial(sandbox) as conn:
        return conn.fetch("repos")


# ---------------------------------------------------------------- datetimes


def test_datetimes_on_a_text_column_is_a_spec_error(sandbox, plain_repos):
    names = plain_repos["name"].tolist()

    with trial(sandbox, repos="datetimes: [name]") as conn, \
            pytest.raises(SpecError) as info:
        conn.fetch("repos")

    text = str(info.value)
    assert text.startswith("trial.repos: datetimes: ")
    assert "'name'" in text and f"{len(names)} values" in text
    assert repr(names[0][:40]) in text


@pytest.fixture()
def scripted():
    server = ScriptedServer()
    yield server
    server.stop()


def scripted_items(server: ScriptedServer, declared: str, records: list[Any]) -> Any:
    server.queue("/items", Reply(200, {"items": records}))
    text = (f"name: shaping\nbase_url: {server.url}\npagination: {{kind: none}}\n"
            f"endpoints:\n  items:\n    path: /items\n    records: items\n"
            f"{_indent(declared)}\n")
    return restconnect.connect(parse_spec(text, source="shaping.yaml"), cache=False)


LONG_BAD = "not a date but a sentence long enough to need cutting short"
WHEN = ["2024-01-02T03:04:05Z", LONG_BAD, None, "2024-05-06T07:08:09+02:00", "",
        "next tuesday", "2025-12-31T23:59:59Z", "2023-07-01T00:00:00Z"]


def test_values_that_are_not_timestamps_are_counted_in_a_warning(scripted, caplog):
    records = [{"id": n, "when": value} for n, value in enumerate(WHEN)]
    conn = scripted_items(scripted, "datetimes: [when]", records)
    caplog.set_level(logging.WARNING, logger="restconnect")

    with pytest.warns(RestConnectWarning) as caught:
        frame = conn.fetch("items")

    bad = [v for v in WHEN if v and not _parses(v)]
    present = [v for v in WHEN if v]
    message = restconnect_warnings(caught.list)[0]
    assert message.startswith("shaping.items: datetimes: ")
    assert f"{len(bad)} of {len(present)} values of 'when'" in message
    assert f"{LONG_BAD[:40]!r}..." in message and LONG_BAD not in message
    assert caught.list[0].filename == __file__
    assert message in caplog.text
    parsed = [datetime.fromisoformat(v) if v and _parses(v) else None for v in WHEN]
    assert [None if pd.isna(v) else v for v in frame["when"]] == parsed


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def test_no_example_is_shown_for_a_column_named_like_a_secret():
    records = [{"token_expiry": v} for v in ("2024-01-02T03:04:05Z", "soon-ish")]
    builder = FrameBuilder(FrameOptions(datetimes=["token_expiry"], source="a.b"))
    builder.add_page(records)

    with pytest.warns(RestConnectWarning) as caught:
        builder.finish()

    message = restconnect_warnings(caught.list)[0]
    assert "1 of 2 values of 'token_expiry'" in message and "soon-ish" not in message


@pytest.mark.parametrize("columnar", [True, False])
def test_blank_strings_count_as_no_value(columnar):
    builder = FrameBuilder(FrameOptions(datetimes=["closed_at"]), columnar=columnar)
    builder.add_page([{"closed_at": ""}, {"closed_at": "  "}, {"closed_at": None}])

    with warnings.catch_warnings():
        warnings.simplefilter("error", RestConnectWarning)
        frame = builder.finish()

    assert frame["closed_at"].isna().all()
    assert isinstance(frame["closed_at"].dtype, pd.DatetimeTZDtype)


# ---------------------------------------------------------------- dtypes


def test_a_dtype_that_does_not_fit_names_the_endpoint_and_column(sandbox):
    with trial(sandbox, repos="dtypes: {name: Int64}") as conn, \
            pytest.raises(SpecError) as info:
        conn.fetch("repos")

    assert str(info.value).startswith("trial.repos: dtypes.name: ")
    assert "column 'name' cannot be converted to Int64" in str(info.value)


# ---------------------------------------------------------------- unknown names


def test_declared_columns_missing_from_the_result_get_a_hint(sandbox, plain_repos):
    declared = ("datetimes: [created_att]\ndtypes: {stargazer_count: Int64}\n"
                "columns: [id, ful_name]")
    with trial(sandbox, repos=declared) as conn, \
            pytest.warns(RestConnectWarning) as caught:
        frame = conn.fetch("repos")

    messages = sorted(restconnect_warnings(caught.list))
    hints = [("columns", "ful_name", "full_name"),
             ("datetimes", "created_att", "created_at"),
             ("dtypes", "stargazer_count", "stargazers_count")]
    assert messages == [f"trial.repos: {key} names {name!r}, which is not a column of "
                        f"the result; did you mean {hint!r}?" for key, name, hint in hints]
    assert {"full_name", "created_at", "stargazers_count"} <= set(plain_repos.columns)
    assert frame.shape == plain_repos.shape


# ---------------------------------------------------------------- empty results


def _repo_with_releases(frame: pd.DataFrame, releases: bool) -> tuple[str, str]:
    # The sandbox gives repo N (N % 4 - 1) releases, and answers 404 for none.
    rows = frame[(frame["id"] % 4 > 1) == releases]
    owner, name = rows.iloc[0]["full_name"].split("/")
    return owner, name


RELEASES = ("columns: [id, tag_name, name]\ndatetimes: [published_at]\n"
            "dtypes: {id: Int64}")


def test_an_empty_result_has_the_declared_columns_and_dtypes(sandbox, plain_repos):
    with trial(sandbox, releases=RELEASES) as conn:
        owner, repo = _repo_with_releases(plain_repos, releases=True)
        full = conn.fetch("releases", owner=owner, repo=repo)
        owner, repo = _repo_with_releases(plain_repos, releases=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RestConnectWarning)
            empty = conn.fetch("releases", owner=owner, repo=repo)

    assert len(full) > 0 and empty.shape == (0, 4)
    assert list(empty.columns) == ["id", "tag_name", "name", "published_at"]
    assert empty["id"].dtype == full["id"].dtype == pd.Int64Dtype()
    assert empty["published_at"].dtype == full["published_at"].dtype
    assert isinstance(empty["published_at"].dtype, pd.DatetimeTZDtype)
    assert str(empty["published_at"].dtype.tz) == "UTC"
    assert empty.attrs["restconnect"]["records"] == 0


def test_a_search_without_hits_has_the_declared_columns(sandbox):
    declared = "columns: [id, full_name]\ndtypes: {stargazers_count: Int64}"
    with trial(sandbox, search=declared) as conn:
        frame = conn.fetch("search", q="no-such-word-anywhere")

    assert list(frame.columns) == ["id", "full_name", "stargazers_count"]
    assert frame["stargazers_count"].dtype == pd.Int64Dtype() and len(frame) == 0


def test_an_empty_result_with_nothing_declared_has_no_columns(sandbox):
    with trial(sandbox) as conn:
        frame = conn.fetch("search", q="no-such-word-anywhere")

    assert frame.shape == (0, 0)


@pytest.mark.parametrize("dtype", ["datetime", "timestamp"])
def test_a_datetime_dtype_on_an_empty_result_matches_a_full_one(dtype):
    options = FrameOptions(dtypes={"at": dtype})
    full = FrameBuilder(options)
    full.add_page([{"at": "2024-01-02T03:04:05Z"}])
    empty = FrameBuilder(options)
    empty.add_page([])

    assert empty.finish()["at"].dtype == full.finish()["at"].dtype


def test_a_declared_name_with_no_close_column_stays_quiet(sandbox, plain_repos):
    # Sparse records and field selection lack declared columns for good reasons.
    with trial(sandbox, repos="datetimes: [archived_on_the_moon]") as conn, \
            warnings.catch_warnings():
        warnings.simplefilter("error", RestConnectWarning)
        frame = conn.fetch("repos")
    assert frame.shape == plain_repos.shape
