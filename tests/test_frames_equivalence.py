"""The columnar frame path gives exactly the frame json_normalize gives.

Every case feeds the same pages to a ``FrameBuilder(columnar=False)`` (plain
``pandas.json_normalize``) and to the default builder, then compares column
names and order, dtypes and every value, telling ``None`` from ``NaN`` and
``1`` from ``1.0``. The cases are hand-written edge cases, seeded random
pages, the benchmark's records, every recorded GitHub list body in
``../shared`` and every list endpoint of the embedded sandbox.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from restconnect.frames import FrameBuilder, FrameOptions

REPO = Path(__file__).resolve().parents[1]
GITHUB_FIXTURES = REPO / ".." / "shared" / "fixtures" / "github"


def _same_value(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    if left is None or left is pd.NaT:
        return right is left
    if isinstance(left, pd.Timestamp):
        return left == right
    return bool(left == right)


def assert_identical(plain: pd.DataFrame, columnar: pd.DataFrame) -> None:
    """Columns, dtypes, index and every value, types and missing markers included."""
    assert list(columnar.columns) == list(plain.columns)
    assert {c: str(t) for c, t in columnar.dtypes.items()} == \
        {c: str(t) for c, t in plain.dtypes.items()}
    pd.testing.assert_frame_equal(columnar, plain, check_exact=True)
    for name in plain.columns:
        left, right = plain[name].tolist(), columnar[name].tolist()
        bad = [(i, a, b) for i, (a, b) in enumerate(zip(left, right))
               if not _same_value(a, b)]
        assert not bad, f"column {name!r} differs at (row, plain, columnar) {bad[:3]}"


def build_both(pages: list[list[Any]], *, batch_rows: int | None = None,
               options: FrameOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Both frames of the same pages, and whether the columnar path held to the end."""
    plain = FrameBuilder(options, columnar=False)
    columnar = FrameBuilder(options)
    if batch_rows is not None:
        columnar.batch_rows = batch_rows
    for page in pages:
        plain.add_page(copy.deepcopy(page))
        columnar.add_page(copy.deepcopy(page))
    plain_frame, columnar_frame = plain.finish(), columnar.finish()
    return plain_frame, columnar_frame, columnar.last_path == "columnar"


EDGE_CASES: dict[str, list[list[Any]]] = {
    "flat": [[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]],
    "nested objects": [[{"a": 1, "o": {"x": 1, "y": "s"}, "b": 2.5}]],
    "null object after object": [[{"a": 1, "o": {"x": 1}}, {"a": 2, "o": None}]],
    "null object first": [[{"a": 1, "o": None}, {"a": 2, "o": {"x": "q"}}]],
    "object always null": [[{"a": 1, "o": None}, {"a": 2, "o": None}]],
    "object null on one page": [[{"a": 1, "o": None}], [{"a": 2, "o": {"x": True}}]],
    "booleans with null": [[{"a": True}, {"a": None}]],
    "booleans under a null object": [[{"o": {"b": True}}, {"o": None}]],
    "integers with null": [[{"a": 1}, {"a": None}]],
    "only nulls": [[{"a": None}, {"a": None}]],
    "null and missing": [[{"o": {"a": None}}, {"o": None}]],
    "lists": [[{"t": [1, 2], "u": ["a"]}, {"t": [], "u": None}]],
    "lists of objects": [[{"t": [{"a": 1}, {"b": 2}]}, {"t": []}]],
    "list under a null object": [[{"o": {"t": ["a"]}}, {"o": None}]],
    "list then null page": [[{"t": [1]}], [{"t": None}]],
    "lists of mixed numbers": [[{"t": [1]}], [{"t": [1.5, 2]}]],
    "missing keys": [[{"a": 1, "b": 2}, {"a": 3}]],
    "key missing on a later page": [[{"a": 1, "b": True}], [{"a": 2}]],
    "new key on a later page": [[{"a": 1, "f": True}], [{"a": 2, "g": 1}]],
    "keys in another order": [[{"a": 1, "b": 2}, {"b": 3, "a": 4}]],
    "mixed types": [[{"a": 1}, {"a": "x"}]],
    "mixed types across pages": [[{"a": 1}], [{"a": "x"}]],
    "integers and floats": [[{"a": 1}, {"a": 2.5}]],
    "integers then floats": [[{"a": 1}], [{"a": 2.5}]],
    "floats then booleans": [[{"a": 1.5}], [{"a": True}]],
    "nested floats then booleans": [[{"o": {"a": 1.5}}], [{"o": {"a": False}}]],
    "nested integers then floats": [[{"o": {"a": 1}}], [{"o": {"a": 2.5}}]],
    "integers then whole floats": [[{"a": 1}], [{"a": 2.0}]],
    "nested integers then whole floats": [[{"o": {"a": 1}}], [{"o": {"a": 2.0}}]],
    "lists then strings": [[{"a": ["x"]}], [{"a": "y"}]],
    "lists then nulls": [[{"a": ["x"]}], [{"a": None}], [{"a": []}]],
    "strings then integers": [[{"a": "x"}], [{"a": 1}]],
    "object gains a key": [[{"o": {"a": 1}}], [{"o": {"a": 1, "b": 2}}]],
    "object null between pages": [[{"o": {"a": 1}}], [{"o": None}], [{"o": {"a": 3}}]],
    "empty pages": [[], [{"a": 1}], []],
    "only empty pages": [[], []],
    "unicode": [[{"ключ": "значение", "emoji": "😀", "o": {"ü": "ß\u0000"}}]],
    "deeply nested": [[{"a": {"b": {"c": 1, "d": None}, "e": [1]}},
                       {"a": {"b": None, "e": None}}]],
    "deeply nested null": [[{"a": {"b": {"c": 1}, "e": 2}}, {"a": None}]],
    "empty objects": [[{"a": {}, "b": 1}, {"a": {}, "b": 2}]],
    "empty and full objects": [[{"a": {}, "b": 1}, {"a": {"x": 1}, "b": 2}]],
    "records that are not objects": [[1, 2, 3]],
    "integer beyond 64 bits": [[{"a": 2**70}]],
    "names that collide when flattened": [[{"o.x": 1, "o": {"x": 2}}]],
    "irregular page after regular ones": [
        [{"a": 1, "o": {"x": 1}, "t": [1]}, {"a": 2, "o": None, "t": None}],
        [{"a": "s"}]],
}


@pytest.mark.parametrize("batch_rows", [1, 2000], ids=["page by page", "batched"])
@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_cases_match_json_normalize(name: str, batch_rows: int) -> None:
    plain, columnar, _ = build_both(EDGE_CASES[name], batch_rows=batch_rows)
    assert_identical(plain, columnar)


@pytest.mark.parametrize("name", ["flat", "null object first", "lists", "unicode",
                                  "object null between pages", "integers then floats"])
def test_regular_layouts_stay_columnar(name: str) -> None:
    """The fast path must really be taken, or the comparisons above prove nothing."""
    assert build_both(EDGE_CASES[name], batch_rows=1)[2]


@pytest.mark.parametrize("name", ["missing keys", "mixed types", "records that are not objects"])
def test_irregular_layouts_fall_back(name: str) -> None:
    assert not build_both(EDGE_CASES[name])[2]


def test_custom_separator_and_declared_types() -> None:
    pages = [[{"id": 1, "o": {"at": "2024-01-02T03:04:05Z", "n": 2}},
              {"id": 2, "o": None}]]
    options = FrameOptions(sep="__", datetimes=["o__at"], dtypes={"id": "int32"})
    plain, columnar, held = build_both(pages, options=options)
    assert held
    assert_identical(plain, columnar)
    assert str(columnar["o__at"].dtype).startswith("datetime64")


def _random_value(rng: random.Random, depth: int) -> Any:
    kinds = ["int", "float", "str", "bool", "null", "list"] + (["dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-5, 10**12)
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e300, 3.0])
    if kind == "str":
        return rng.choice(["", "a", "ü", "日本", "x" * 30])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [rng.choice([1, "a", None, 2.5]) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}
    return None


def _random_pages(seed: int) -> list[list[dict[str, Any]]]:
    """Pages whose fields keep a type but may be null, missing or differ per page."""
    rng = random.Random(seed)
    template = {f"f{i}": _random_value(rng, 0) for i in range(rng.randint(1, 8))}
    pages = []
    for _ in range(rng.randint(1, 6)):
        page = []
        for _ in range(rng.randint(0, 6)):
            record = {}
            for key, value in template.items():
                roll = rng.random()
                if roll < 0.1 and seed % 3 == 0:
                    continue
                record[key] = None if roll < 0.25 else copy.deepcopy(value)
            page.append(record)
        pages.append(page)
    return pages


@pytest.mark.parametrize("seed", range(60))
def test_random_pages_match_json_normalize(seed: int) -> None:
    pages = _random_pages(seed)
    for batch_rows in (1, 2000):
        plain, columnar, _ = build_both(pages, batch_rows=batch_rows)
        assert_identical(plain, columnar)


def test_benchmark_records_stay_columnar_and_match() -> None:
    from benchmarks.data import make_page

    pages = [make_page(index * 100, 100) for index in range(30)]
    plain, columnar, held = build_both(pages, batch_rows=700)
    assert held
    assert_identical(plain, columnar)
    assert len(columnar) == 3000 and "license.spdx_id" in columnar.columns


def _github_list_bodies() -> dict[str, list[list[Any]]]:
    if not GITHUB_FIXTURES.is_dir():
        pytest.skip(f"{GITHUB_FIXTURES} is absent: the recorded GitHub fixtures live "
                    "beside the repository, not in it")
    found = {}
    for path in sorted(GITHUB_FIXTURES.glob("*.jsonl")):
        pages = []
        for line in path.read_text(encoding="utf-8").splitlines():
            exchange = json.loads(line)
            body = exchange.get("body")
            if exchange.get("status") == 200 and isinstance(body, list) and body:
                pages.append(body)
            elif exchange.get("status") == 200 and isinstance(body, dict) \
                    and isinstance(body.get("items"), list):
                pages.append(body["items"])
        if pages:
            found[path.stem] = pages
    return found


def test_recorded_github_bodies_match_json_normalize() -> None:
    bodies = _github_list_bodies()
    assert len(bodies) >= 10
    for name, pages in bodies.items():
        for batch_rows in (1, 2000):
            plain, columnar, _ = build_both(pages, batch_rows=batch_rows)
            try:
                assert_identical(plain, columnar)
            except AssertionError as exc:
                raise AssertionError(f"{name} (batch_rows={batch_rows}): {exc}") from None


def _sandbox_list_endpoints(conn: Any) -> list[str]:
    names = []
    for name, spec in conn.endpoints.items():
        if spec.path_params or spec.required or name.startswith("broken"):
            continue
        if spec.pagination is not None and spec.pagination.kind == "none" \
                and spec.records == "@":
            continue
        names.append(name)
    return names


def test_sandbox_endpoints_match_json_normalize(sandbox: Any) -> None:
    from restconnect import connect

    with connect("sandbox", base_url=sandbox.url, token=sandbox.credentials["token"],
                 cache=False) as conn:
        names = _sandbox_list_endpoints(conn)
        assert len(names) >= 5
        held = {}
        for name in names:
            spec = conn.endpoint(name)
            pages = [page.records for page in conn.iter_pages(name, concurrency=1)]
            options = FrameOptions(dtypes=spec.dtypes, datetimes=spec.datetimes,
                                   columns=spec.columns)
            plain, columnar, held[name] = build_both(pages, options=options)
            try:
                assert_identical(plain, columnar)
            except AssertionError as exc:
                raise AssertionError(f"sandbox endpoint {name}: {exc}") from None
    assert sum(held.values()) >= 3, f"columnar path held for {held}"


def test_fetch_uses_the_columnar_path_and_matches(sandbox: Any) -> None:
    from restconnect import connect

    with connect("sandbox", base_url=sandbox.url, token=sandbox.credentials["token"],
                 cache=False) as conn:
        pages = [page.records for page in conn.iter_pages("repos", concurrency=1)]
        frame = conn.fetch("repos", concurrency=1)
    spec_options = FrameOptions(dtypes=conn.endpoint("repos").dtypes,
                                datetimes=conn.endpoint("repos").datetimes)
    plain, _, _ = build_both(pages, options=spec_options)
    assert_identical(plain, frame)
