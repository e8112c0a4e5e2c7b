"""Joins of fetched frames, enrichment by lookups, and parent-child fetches.

Three ways to combine data, all on the same key handling:

- :func:`join` merges two fetched frames. Key values are normalised first,
  so an id that is an int on one side and a string on the other still
  matches; case-folding is optional (for emails); missing keys never match.
- :func:`enrich` calls another endpoint once per distinct key of a frame
  (deduplicated, cached in-process, concurrent) and joins the answers back.
  A row whose lookup failed is kept, with the error in the ``_error`` column.
- :func:`fetch_children` serves endpoints that declare a ``parent``: it
  fetches the parent rows, then the children of each (or of each batch of
  ``batch_size`` parents when the API takes ``?ids=1,2,3``).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from restconnect.exceptions import (
    HTTPStatusError,
    PaginationError,
    ResponseError,
    RestConnectWarning,
    SpecError,
    TransportError,
)
from restconnect.redact import redact_text

if TYPE_CHECKING:
    import pandas as pd

    from restconnect.connector import Connector

__all__ = ["clear_lookup_cache", "enrich", "fetch_children", "join", "normalize_key"]

logger = logging.getLogger(__name__)

How = Literal["inner", "left", "right", "outer"]
ERROR_COLUMN = "_error"
_KEY = "__rc_key{}"
_ROWS = ("__rc_left_row", "__rc_right_row")
_HOWS = ("inner", "left", "right", "outer")
#: pandas' ``validate`` values -> whether the left and the right keys must be unique.
_UNIQUE_SIDES = {
    "one_to_one": (True, True), "1:1": (True, True),
    "one_to_many": (True, False), "1:m": (True, False),
    "many_to_one": (False, True), "m:1": (False, True),
    "many_to_many": (False, False), "m:m": (False, False),
}
#: A normalised key that is a number: integer or float text, as ``repr`` writes it.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf")
_TEMPLATE = re.compile(r"{([^{}]+)}")
#: Errors a single lookup may end with; the row is kept and the error recorded.
_ROW_ERRORS = (HTTPStatusError, TransportError, ResponseError, PaginationError)
_CACHE_SIZE = 4096


# ---------------------------------------------------------------- keys


def normalize_key(value: Any, casefold: bool = False) -> str | None:
    """The comparable text of one key value; ``None`` for a missing value.

    Integers, integral floats and their text agree (``7``, ``7.0`` and
    ``"7"`` all give ``"7"``); text is stripped, and case-folded on request.

    Example:
        >>> normalize_key(7.0) == normalize_key(" 7 ")
        True
    """
    kind = type(value)
    if kind is str:
        return value.strip().casefold() if casefold else value.strip()
    if kind is int:
        return str(value)
    if kind is float:
        return None if math.isnan(value) else _float_key(value)
    return _other_key(value, casefold)


def _float_key(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def _other_key(value: Any, casefold: bool) -> str | None:
    """:func:`normalize_key` of values that are not plain str, int or float."""
    if _missing(value):
        return None
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return "true" if value else "false"
    # Integers first: since Python 3.12 (and in numpy) they have is_integer
    # too, and going through float would change ids above 2**53.
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return str(int(value))
    if hasattr(value, "is_integer") and not isinstance(value, str):
        return _float_key(float(value))
    text = str(value).strip()
    return text.casefold() if casefold else text


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, set)):
        return False
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _key_series(frame: pd.DataFrame, column: str, casefold: bool,
                side: str) -> pd.Series:
    """Normalised keys of a column; missing ones get a value nothing else has."""
    import pandas as pd

    values = [normalize_key(v, casefold) for v in frame[column].tolist()]
    unique = [v if v is not None else f"\0{side}\0{i}" for i, v in enumerate(values)]
    return pd.Series(unique, index=frame.index, dtype=object)


def _holds_numbers(column: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(column.dtype):
        return False
    if pd.api.types.is_numeric_dtype(column.dtype):
        return True
    kind = pd.api.types.infer_dtype(column, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "decimal")


# ---------------------------------------------------------------- join


def join(left: pd.DataFrame, right: pd.DataFrame, on: str | Sequence[str] | None = None,
         *, left_on: str | Sequence[str] | None = None,
         right_on: str | Sequence[str] | None = None, how: How = "inner",
         casefold: bool | str | Sequence[str] = False,
         suffixes: tuple[str, str] | None = None, indicator: bool = False,
         validate: str | None = None) -> pd.DataFrame:
    """Join two fetched frames on key columns whose types may differ.

    Args:
        left, right: frames, usually from ``Connector.fetch``.
        on: key column(s) present in both frames.
        left_on, right_on: key column(s) by side, when the names differ.
        how: ``inner``, ``left``, ``right`` or ``outer``.
        casefold: ``True`` to compare every key case-insensitively, or the
            name(s) of the key columns to fold (either side's name).
        suffixes: for clashing column names; by default ``_<connector>``
            of each side (``_<endpoint>`` when both come from one connector).
        indicator: add pandas' ``_merge`` column (``both``, ``left_only``...).
        validate: pandas' check, such as ``"one_to_one"``, on the
            normalised keys.

    Returns:
        The joined frame. ``attrs["restconnect"]`` lists both sources.

    Raises:
        SpecError: a key column is missing, the key lists do not pair up,
            or ``how`` or ``validate`` is not one restconnect knows.
        pandas.errors.MergeError: ``validate`` found repeated keys.

    Example:
        >>> joined = join(repos, customers, left_on="owner.login",
        ...               right_on="code_login", how="left")  # doctest: +SKIP
    """
    _check_choice(how, _HOWS, "how")
    if validate is not None:
        _check_choice(validate, _UNIQUE_SIDES, "validate")
    left_keys, right_keys = _key_names(on, left_on, right_on)
    _check_columns(left, left_keys, "left_on" if on is None else "on", "left")
    _check_columns(right, right_keys, "right_on" if on is None else "on", "right")
    folds = _folds(casefold, left_keys, right_keys)
    lhs, rhs, temps = _keyed(left, right, left_keys, right_keys, folds)
    if validate is not None:
        _check_unique(lhs, rhs, temps, validate, left_keys, right_keys)

    merged = lhs.merge(rhs, on=temps, how=how,
                       suffixes=suffixes or _suffixes(left, right), indicator=indicator)
    if how == "outer":
        merged = _outer_order(merged, temps, [
            _holds_numbers(left[lk]) or _holds_numbers(right[rk])
            for lk, rk in zip(left_keys, right_keys)])
    for name in [lk for lk, rk in zip(left_keys, right_keys) if lk == rk]:
        merged[name] = _key_column(merged, name, left[name], right[name])
    _warn_if_disjoint(merged, left, right)
    merged = merged.drop(columns=temps + list(_ROWS))
    merged.attrs["restconnect"] = merged_attrs(
        [left, right], {"how": how, "left_on": left_keys, "right_on": right_keys,
                        "casefold": [k for k, f in zip(left_keys, folds) if f]},
        rows=len(merged))
    return merged


def _check_choice(value: Any, accepted: Sequence[str], name: str,
                  source: str = "join") -> None:
    if not isinstance(value, str) or value not in accepted:
        raise SpecError(f"got {value!r}; expected one of {', '.join(accepted)}",
                        source=source, path=name)


def _keyed(left: pd.DataFrame, right: pd.DataFrame, left_keys: list[str],
           right_keys: list[str], folds: list[bool]
           ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Both frames with normalised key columns and row numbers added.

    A key column both sides share is dropped on the right: the joined
    frame gets one, filled from both sides by :func:`_key_column`.
    """
    lhs, rhs = left.copy(), right.copy()
    temps = [_KEY.format(i) for i in range(len(left_keys))]
    for temp, lk, rk, fold in zip(temps, left_keys, right_keys, folds):
        lhs[temp] = _key_series(left, lk, fold, "left")
        rhs[temp] = _key_series(right, rk, fold, "right")
    lhs[_ROWS[0]], rhs[_ROWS[1]] = range(len(left)), range(len(right))
    shared = [lk for lk, rk in zip(left_keys, right_keys) if lk == rk]
    return lhs, rhs.drop(columns=shared), temps


def _check_unique(lhs: pd.DataFrame, rhs: pd.DataFrame, temps: list[str],
                  validate: str, left_keys: list[str], right_keys: list[str]) -> None:
    """pandas' ``validate`` on the normalised keys, naming the user's columns."""
    from pandas.errors import MergeError

    sides = zip(_UNIQUE_SIDES[validate], (lhs, rhs), (left_keys, right_keys),
                ("left", "right"))
    for must, frame, keys, side in sides:
        repeated = frame.loc[frame.duplicated(temps, keep=False), temps]
        if must and len(repeated):
            examples = ", ".join(repr(_cut("/".join(row)))
                                 for row in repeated.drop_duplicates().head(3).values)
            label = source_label(frame)
            where = f"the {side} frame" + (f" ({label})" if label else "")
            raise MergeError(redact_text(
                f"join: validate={validate!r}, but {len(repeated)} rows of {where} "
                f"share a key in {', '.join(map(repr, keys))}, such as {examples}"))


def _cut(text: str, length: int = 40) -> str:
    return text if len(text) <= length else f"{text[:length - 3]}..."


def _outer_order(merged: pd.DataFrame, temps: list[str],
                 numeric: list[bool]) -> pd.DataFrame:
    """Rows in the order pandas gives an outer join of typed keys.

    pandas has sorted the normalised key text; this sorts numbers by value
    where a key column holds numbers, and puts missing keys last (the
    left's rows, then the right's, each in their frame's order). The sort
    is stable, so rows of one key keep pandas' order.
    """
    import pandas as pd

    helpers: dict[str, pd.Series] = {}
    for n, (temp, number) in enumerate(zip(temps, numeric)):
        helpers.update({f"{part}{n}": column for part, column in zip(
            "gvt", _sort_columns(merged, merged[temp].astype(object), number))})
    order = pd.DataFrame(helpers).sort_values(list(helpers), kind="stable").index
    return merged.iloc[order.to_numpy()].reset_index(drop=True)


def _sort_columns(merged: pd.DataFrame, text: pd.Series,
                  numeric: bool) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Group (0 number, 1 text, 2 missing on the left, 3 on the right), value, text."""
    import pandas as pd

    missing = text.str.startswith("\0")
    left_rows, right_rows = merged[_ROWS[0]], merged[_ROWS[1]]
    if numeric:
        numbers = text.where(~missing & text.str.fullmatch(_NUMBER.pattern))
        values = pd.to_numeric(numbers, errors="coerce").astype("float64")
    else:
        values = pd.Series(float("nan"), index=text.index)
    group = (values.isna() & ~missing).astype("int64")
    group[missing] = 2 + left_rows[missing].isna().astype("int64")
    values = values.where(~missing, left_rows.fillna(right_rows))
    return group, values, text.where(group == 1, "")


def _key_column(merged: pd.DataFrame, name: str, left: pd.Series,
                right: pd.Series) -> pd.Series:
    """The key of each joined row: the left value, else the right one.

    It keeps the left column's type when every key converts to it without
    change; otherwise each key is shown as its text (stripped, not folded),
    so that ``10`` and ``"10.0"`` cannot look alike.
    """
    import pandas as pd

    left_rows, right_rows = merged[_ROWS[0]], merged[_ROWS[1]]
    right_only = left_rows.isna() & right_rows.notna()
    if not right_only.any():
        return merged[name]
    combined = pd.Series(None, index=merged.index, dtype=object)
    combined[left_rows.notna()] = _pick(left, left_rows.dropna())
    combined[right_only] = _pick(right, right_rows[right_only])
    for target in _key_types(left.dtype, bool(combined.isna().any())):
        converted = _converted(combined, target)
        checked = right_only if target == left.dtype else combined.notna()
        if converted is not None and _same_keys(converted[checked], combined[checked]):
            return converted
    return pd.Series([normalize_key(v) for v in combined.tolist()],
                     index=combined.index, dtype=object)


def _pick(column: pd.Series, rows: pd.Series) -> Any:
    """The values of ``column`` at row numbers ``rows``, as Python objects."""
    return column.astype(object).to_numpy()[rows.astype("int64").to_numpy()]


def _key_types(dtype: Any, has_missing: bool) -> list[Any]:
    """Types to try for a key column, as pandas would widen the left's."""
    import numpy as np
    import pandas as pd

    numpy_type = isinstance(dtype, np.dtype)
    if numpy_type and dtype.kind in "iu":
        return ["float64"] if has_missing else [dtype, "float64"]
    if numpy_type and dtype.kind == "b":
        return [object] if has_missing else [dtype, object]
    if pd.api.types.is_integer_dtype(dtype):
        return [dtype, "Float64"]
    return [dtype]


def _converted(values: pd.Series, dtype: Any) -> pd.Series | None:
    import pandas as pd

    try:
        return values.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        pass
    if not pd.api.types.is_numeric_dtype(dtype):
        return None
    try:
        return pd.to_numeric(values).astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return None


def _same_keys(converted: pd.Series, values: pd.Series) -> bool:
    return all(normalize_key(a) == normalize_key(b)
               for a, b in zip(converted.tolist(), values.tolist()))


def _key_names(on: Any, left_on: Any, right_on: Any) -> tuple[list[str], list[str]]:
    if on is not None and (left_on is not None or right_on is not None):
        raise SpecError("give either 'on' or 'left_on' and 'right_on', not both",
                        source="join")
    if on is not None:
        keys = _as_list(on)
        return keys, keys
    if left_on is None or right_on is None:
        raise SpecError("give 'on', or both 'left_on' and 'right_on'", source="join")
    lk, rk = _as_list(left_on), _as_list(right_on)
    if len(lk) != len(rk) or not lk:
        raise SpecError(f"left_on has {len(lk)} key(s) and right_on {len(rk)}; "
                        "they pair up one to one", source="join")
    return lk, rk


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_columns(frame: pd.DataFrame, keys: list[str], where: str, side: str) -> None:
    import difflib

    columns = [str(c) for c in frame.columns]
    for key in keys:
        if key not in frame.columns:
            near = difflib.get_close_matches(key, columns, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise SpecError(f"the {side} frame ({source_label(frame) or side}) has no "
                            f"column {key!r}{hint} Columns: {', '.join(columns[:40])}",
                            source="join", path=where)


def _folds(casefold: bool | str | Sequence[str], left_keys: list[str],
           right_keys: list[str]) -> list[bool]:
    if isinstance(casefold, bool):
        return [casefold] * len(left_keys)
    names = set(_as_list(casefold))
    unknown = names - set(left_keys) - set(right_keys)
    if unknown:
        raise SpecError(f"casefold names {sorted(unknown)}, which are not join keys",
                        source="join", path="casefold")
    return [lk in names or rk in names for lk, rk in zip(left_keys, right_keys)]


def source_label(frame: pd.DataFrame) -> str | None:
    """``connector.endpoint`` of a fetched frame, or None."""
    meta = frame.attrs.get("restconnect") or {}
    if not meta.get("connector"):
        return None
    return ".".join(str(meta[k]) for k in ("connector", "endpoint") if meta.get(k))


def _suffixes(left: pd.DataFrame, right: pd.DataFrame) -> tuple[str, str]:
    lmeta = left.attrs.get("restconnect") or {}
    rmeta = right.attrs.get("restconnect") or {}
    same = lmeta.get("connector") == rmeta.get("connector")
    key = "endpoint" if same else "connector"
    lname = lmeta.get(key) if "sources" not in lmeta else None
    rname = rmeta.get(key) if "sources" not in rmeta else None
    if not lname or not rname or lname == rname:
        return "_left", "_right"
    return f"_{lname}", f"_{rname}"


def _warn_if_disjoint(merged: pd.DataFrame, left: pd.DataFrame,
                      right: pd.DataFrame) -> None:
    both = merged[_ROWS[0]].notna() & merged[_ROWS[1]].notna()
    if len(left) and len(right) and not both.any():
        _warn("join of %s and %s matched no keys; check the key columns (and "
              "casefold for text such as emails)", source_label(left) or "left",
              source_label(right) or "right")


def _warn(message: str, *args: Any) -> None:
    """Log a warning and show it as a RestConnectWarning at the user's call."""
    text = redact_text(message % args)
    logger.warning("%s", text)
    warnings.warn(text, RestConnectWarning, stacklevel=_user_level())


def _user_level() -> int:
    """``stacklevel`` for ``warnings.warn`` in our caller: the first frame outside us.

    A join inside ``restconnect.load`` then points at the user's ``load`` call.
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and _in_package(frame):
        frame, level = frame.f_back, level + 1
    return level


def _in_package(frame: Any) -> bool:
    name = str(frame.f_globals.get("__name__", ""))
    return name == "restconnect" or name.startswith("restconnect.")


def merged_attrs(frames: Sequence[pd.DataFrame], step: Mapping[str, Any], *,
                 rows: int) -> dict[str, Any]:
    """``attrs["restconnect"]`` of a combined frame: every source, every step."""
    sources: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for frame in frames:
        meta = dict(frame.attrs.get("restconnect") or {})
        sources.extend(meta.get("sources", [meta] if meta else []))
        steps.extend(meta.get("steps", []))
    steps.append(dict(step))
    return {
        "connector": "+".join(dict.fromkeys(str(s.get("connector")) for s in sources)),
        "endpoint": "+".join(str(s.get("endpoint")) for s in sources),
        "sources": sources,
        "steps": steps,
        "records": rows,
        "truncated": any(bool(s.get("truncated")) for s in sources),
    }


# ---------------------------------------------------------------- lookups


@dataclass
class _Lookup:
    """One enrichment or child fetch: what to call and how to fill it."""

    connector: Connector
    endpoint: str
    params: dict[str, str]
    fixed: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    separator: str = ","
    key: str | None = None
    workers: int = 4
    use_cache: bool = True
    fetch_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Outcome:
    frame: pd.DataFrame | None = None
    error: str | None = None
    from_cache: bool = False
    pages: int = 0
    requested: bool = False
    exception: Exception | None = None


class _LookupCache:
    """Answers of one connector's lookups, bounded, shared by threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> pd.DataFrame | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], frame: pd.DataFrame) -> None:
        with self.lock:
            self.entries[key] = frame
            while len(self.entries) > _CACHE_SIZE:
                self.entries.popitem(last=False)


_CACHES: weakref.WeakKeyDictionary[Any, _LookupCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache_for(connector: Connector) -> _LookupCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(connector)
        if cache is None:
            cache = _CACHES[connector] = _LookupCache()
        return cache


def clear_lookup_cache(connector: Connector | None = None) -> None:
    """Forget cached lookup answers of one connector, or of all."""
    with _CACHES_LOCK:
        if connector is None:
            _CACHES.clear()
        else:
            _CACHES.pop(connector, None)


def _fields_of(params: Mapping[str, str]) -> list[str]:
    """The frame fields a parameter mapping reads, in order."""
    names: list[str] = []
    for value in params.values():
        found = _TEMPLATE.findall(value) if "{" in value else [value]
        names.extend(n for n in found if n not in names)
    return names


def _column_values(frame: pd.DataFrame, name: str, where: str) -> list[Any]:
    """Values of a (flattened) column, or of a dotted path into dict cells."""
    if name in frame.columns:
        return [_scalar(v) for v in frame[name].tolist()]
    head, _, rest = name.partition(".")
    while rest:
        if head in frame.columns:
            return [_scalar(_dig(v, rest)) for v in frame[head].tolist()]
        more, _, rest = rest.partition(".")
        head = f"{head}.{more}"
    _check_columns(frame, [name], where, "input")
    return []


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _scalar(value: Any) -> Any:
    """A plain Python value for a URL: numpy numbers unwrapped, 7.0 as 7."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _param_rows(frame: pd.DataFrame, params: Mapping[str, str],
                where: str) -> list[dict[str, Any] | str]:
    """Per row: the filled parameters, or the text of why they cannot be."""
    columns = {name: _column_values(frame, name, f"{where}.{name}")
               for name in _fields_of(params)}
    rows: list[dict[str, Any] | str] = []
    for index in range(len(frame)):
        values = {name: column[index] for name, column in columns.items()}
        absent = [name for name, value in values.items() if value is None]
        if absent:
            rows.append(f"no value for {', '.join(absent)}")
            continue
        rows.append({param: _fill(text, values) for param, text in params.items()})
    return rows


def _fill(template: str, values: Mapping[str, Any]) -> Any:
    if "{" not in template:
        return values[template]
    whole = _TEMPLATE.fullmatch(template)
    if whole:
        return values[whole.group(1)]
    return _TEMPLATE.sub(lambda m: str(values[m.group(1)]), template)


def _identity(filled: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, normalize_key(v)) for k, v in filled.items()))


def _run_lookups(lookup: _Lookup, distinct: list[dict[str, Any]]
                 ) -> dict[tuple[Any, ...], _Outcome]:
    """Fetch every distinct parameter set, or batch of them, concurrently."""
    tasks = _batches(lookup, distinct) if lookup.batch_size else [[p] for p in distinct]
    outcomes: dict[tuple[Any, ...], _Outcome] = {}
    workers = max(1, min(lookup.workers, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers,
                            thread_name_prefix=f"restconnect-lookup-{lookup.endpoint}"
                            ) as pool:
        for result in pool.map(lambda group: _fetch_group(lookup, group), tasks):
            outcomes.update(result)
    return outcomes


def _batches(lookup: _Lookup,
             distinct: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Groups sharing every parameter but the batched one, cut to ``batch_size``."""
    batched = next(iter(lookup.params))
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for filled in distinct:
        others = _identity({k: v for k, v in filled.items() if k != batched})
        groups.setdefault(others, []).append(filled)
    size = lookup.batch_size or 1
    return [members[i:i + size] for members in groups.values()
            for i in range(0, len(members), size)]


def _fetch_group(lookup: _Lookup, group: list[dict[str, Any]]
                 ) -> dict[tuple[Any, ...], _Outcome]:
    cache = _cache_for(lookup.connector) if lookup.use_cache else None
    outcomes, todo = {}, []
    for filled in group:
        key = (lookup.endpoint, _identity(filled), _identity(lookup.fixed))
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            outcomes[_identity(filled)] = _Outcome(hit.copy(), from_cache=True)
        else:
            todo.append(filled)
    if todo:
        fetched = _fetch_batch(lookup, todo) if lookup.batch_size else {
            _identity(todo[0]): _fetch_one(lookup, todo[0])}
        for identity, outcome in fetched.items():
            if cache is not None and outcome.frame is not None:
                cache.put((lookup.endpoint, identity, _identity(lookup.fixed)),
                          outcome.frame)
        outcomes.update(fetched)
    return outcomes


def _fetch_one(lookup: _Lookup, filled: Mapping[str, Any]) -> _Outcome:
    try:
        frame = lookup.connector.fetch(lookup.endpoint, **lookup.fetch_options,
                                       params={**lookup.fixed, **filled})
    except _ROW_ERRORS as exc:
        logger.debug("lookup %s.%s failed: %s", lookup.connector.name,
                     lookup.endpoint, exc)
        return _Outcome(error=str(exc), requested=True, exception=exc)
    pages = int(frame.attrs.get("restconnect", {}).get("pages", 0))
    return _Outcome(frame, pages=pages, requested=True)


def _fetch_batch(lookup: _Lookup, group: list[dict[str, Any]]
                 ) -> dict[tuple[Any, ...], _Outcome]:
    """One request for many ids; the answer is split by the ``key`` field."""
    batched = next(iter(lookup.params))
    values = [normalize_key(filled[batched]) for filled in group]
    combined = {**group[0], batched: lookup.separator.join(str(v) for v in values)}
    outcome = _fetch_one(lookup, combined)
    if outcome.frame is None:
        return {_identity(filled): _Outcome(error=outcome.error, requested=i == 0,
                                            exception=outcome.exception)
                for i, filled in enumerate(group)}
    frame = outcome.frame
    if lookup.key not in frame.columns and len(frame):
        raise SpecError(f"the answer of {lookup.endpoint!r} has no field "
                        f"{lookup.key!r} to match the batched {batched!r} values; "
                        f"its fields: {', '.join(map(str, frame.columns))}",
                        source=lookup.connector.name,
                        path=f"endpoints.{lookup.endpoint}.parent.key")
    keys = [normalize_key(v) for v in frame[lookup.key].tolist()] if len(frame) else []
    result = {}
    for position, (filled, value) in enumerate(zip(group, values)):
        rows = frame[[k == value for k in keys]] if keys else frame.iloc[0:0]
        result[_identity(filled)] = _Outcome(
            rows.reset_index(drop=True), pages=outcome.pages if position == 0 else 0,
            requested=position == 0)
    return result


# ---------------------------------------------------------------- enrich


def enrich(df: pd.DataFrame, connector: Connector, endpoint: str,
           params: Mapping[str, str], *, how: How = "left", prefix: str | None = None,
           batch_size: int | None = None, key: str | None = None,
           separator: str = ",", workers: int | None = None, cache: bool = True,
           errors: Literal["record", "raise"] = "record",
           error_column: str = ERROR_COLUMN, **fixed: Any) -> pd.DataFrame:
    """Look each distinct key of ``df`` up in another endpoint and join the answers.

    Args:
        df: the frame to enrich.
        connector: the connector to call (it may be another API than df's).
        endpoint: the endpoint to call once per distinct parameter set.
        params: endpoint parameter -> column of ``df`` (``"owner.login"``) or a
            template over columns (``"{owner.login}/{name}"``).
        how: ``left`` keeps every row; ``inner`` drops rows whose lookup
            found nothing (failed lookups are kept either way).
        prefix: put before every looked-up column (``"owner_"``); without it,
            only clashing names get a ``_<connector>`` suffix.
        batch_size: send this many values of the first parameter in one
            request, joined by ``separator`` (``?ids=1,2,3``); needs ``key``.
        key: the answer's field that holds the batched value.
        workers: parallel requests; the connector's ``concurrency`` (at most 8)
            by default. The connector's own rate limiting paces them.
        cache: reuse answers of earlier identical lookups on this connector.
        errors: ``record`` keeps failed rows with the error text in
            ``error_column``; ``raise`` raises the first failure.
        **fixed: parameters sent unchanged with every lookup.

    Returns:
        ``df`` with the looked-up columns (one row per answer record; a lookup
        answering several records repeats its row).

    Example:
        >>> enrich(repos, code, "repo", {"owner": "owner.login", "repo": "name"})
        ...                                                    # doctest: +SKIP
    """
    _check_choice(how, ("left", "inner"), "how", "enrich")
    if batch_size and not key:
        raise SpecError("batch_size needs key: the answer field that holds each "
                        "batched value", source="enrich", path="key")
    lookup = _Lookup(connector, endpoint, dict(params), dict(fixed), batch_size,
                     separator, key, workers or min(connector.concurrency, 8), cache,
                     {"progress": False})
    merged, stats = _combine(df, lookup, how=how, prefix=prefix, errors=errors,
                             error_column=error_column)
    step = {"enrich": f"{connector.name}.{endpoint}", "params": dict(params),
            "how": how, **stats}
    merged.attrs["restconnect"] = merged_attrs(
        [df, _stub(connector.name, endpoint, stats)], step, rows=len(merged))
    return merged


def _stub(connector: str, endpoint: str, stats: Mapping[str, Any]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame()
    frame.attrs["restconnect"] = {"connector": connector, "endpoint": endpoint,
                                  "pages": stats.get("pages", 0), "truncated": False}
    return frame


def _combine(df: pd.DataFrame, lookup: _Lookup, *, how: How, prefix: str | None,
             errors: str, error_column: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the lookups of every row of ``df`` and merge the answers onto it."""
    per_row = _param_rows(df, lookup.params, "params")
    distinct = list({_identity(p): p for p in per_row if isinstance(p, dict)}.values())
    outcomes = _run_lookups(lookup, distinct) if distinct else {}
    failed = {k: o for k, o in outcomes.items() if o.error is not None}
    if failed and errors == "raise":
        raise next(iter(failed.values())).exception  # type: ignore[misc]
    row_keys = [repr(_identity(p)) if isinstance(p, dict) else f"\0missing\0{p}"
                for p in per_row]
    answers = _answers_frame(df, lookup, outcomes, per_row, prefix, error_column)
    temp = _KEY.format(0)
    merged = df.assign(**{temp: row_keys}).merge(answers, on=temp, how=how,
                                                 suffixes=("", "__rc_new"))
    merged = _merge_errors(merged.drop(columns=[temp]), error_column)
    stats = _stats(lookup, distinct, outcomes, per_row)
    _warn_if_incomplete(lookup, stats, error_column)
    return merged.reset_index(drop=True), stats


def _warn_if_incomplete(lookup: _Lookup, stats: Mapping[str, Any],
                        error_column: str) -> None:
    parts = []
    if stats["failed"]:
        parts.append(f"{stats['failed']} of {_count(stats['lookups'], 'lookup')} "
                     "failed")
    if stats["missing"]:
        parts.append(f"{_count(stats['missing'], 'row')} had no key")
    if parts:
        _warn("%s.%s: %s; see the %r column", lookup.connector.name, lookup.endpoint,
              " and ".join(parts), error_column)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _answers_frame(df: pd.DataFrame, lookup: _Lookup,
                   outcomes: Mapping[tuple[Any, ...], _Outcome],
                   per_row: list[dict[str, Any] | str], prefix: str | None,
                   error_column: str) -> pd.DataFrame:
    """Every answer record and every error, keyed like the rows that asked."""
    import pandas as pd

    temp = _KEY.format(0)
    parts = []
    for identity, outcome in outcomes.items():
        if outcome.frame is not None and len(outcome.frame):
            parts.append(outcome.frame.assign(**{temp: repr(identity)}))
        elif outcome.error is not None:
            parts.append(pd.DataFrame({temp: [repr(identity)],
                                       error_column: [outcome.error]}))
    for reason in dict.fromkeys(p for p in per_row if isinstance(p, str)):
        parts.append(pd.DataFrame({temp: [f"\0missing\0{reason}"],
                                   error_column: [reason]}))
    answers = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({temp: []})
    if error_column not in answers.columns:
        answers[error_column] = None
    return answers.rename(columns=_renames(df, answers, lookup, prefix, error_column))


def _renames(df: pd.DataFrame, answers: pd.DataFrame, lookup: _Lookup,
             prefix: str | None, error_column: str) -> dict[str, str]:
    keep = {_KEY.format(0), error_column}
    if prefix:
        return {c: f"{prefix}{c}" for c in answers.columns if c not in keep}
    meta = df.attrs.get("restconnect") or {}
    same_api = lookup.connector.name in str(meta.get("connector", "")).split("+")
    suffix = lookup.endpoint if same_api else lookup.connector.name
    return {c: f"{c}_{suffix}" for c in answers.columns
            if c not in keep and c in df.columns}


def _merge_errors(merged: pd.DataFrame, error_column: str) -> pd.DataFrame:
    """Keep one error column when ``df`` already had one from an earlier step."""
    new = f"{error_column}__rc_new"
    if new not in merged.columns:
        return merged
    old, fresh = merged[error_column], merged[new]
    combined = [("; ".join(t for t in (a, b) if isinstance(t, str)) or None)
                for a, b in zip(old.tolist(), fresh.tolist())]
    merged[error_column] = combined
    return merged.drop(columns=[new])


def _stats(lookup: _Lookup, distinct: list[dict[str, Any]],
           outcomes: Mapping[tuple[Any, ...], _Outcome],
           per_row: list[dict[str, Any] | str]) -> dict[str, Any]:
    return {
        "lookups": len(distinct),
        "calls": sum(1 for o in outcomes.values() if o.requested),
        "pages": sum(o.pages for o in outcomes.values()),
        "from_cache": sum(1 for o in outcomes.values() if o.from_cache),
        "failed": sum(1 for o in outcomes.values() if o.error is not None),
        "missing": sum(1 for p in per_row if isinstance(p, str)),
        "batch_size": lookup.batch_size,
    }


# ---------------------------------------------------------------- parent-child


def fetch_children(connector: Connector, endpoint: str, *,
                   parent_params: Mapping[str, Any] | None = None,
                   limit: int | None = None, max_pages: int | None = None,
                   workers: int | None = None, cache: Any = None,
                   lookup_cache: bool = False, params: Mapping[str, Any] | None = None,
                   **more_params: Any) -> pd.DataFrame:
    """Fetch an endpoint that declares a ``parent``: the parent rows, then children.

    API parameters come in ``params`` (for names like ``limit``) or as keywords.
    Parameters the parent endpoint needs (its path placeholders and required
    ones) go to the parent fetch, like everything in ``parent_params``; the
    rest go to every child request. Each child row keeps the parent fields
    that filled its parameters, as ``<parent endpoint>.<field>`` columns.
    ``cache`` is the HTTP cache option of ``Connector.fetch``; ``lookup_cache``
    reuses child answers of earlier calls held in memory.

    Raises:
        SpecError: the endpoint has no parent, or a parent field is missing.
    """
    spec = connector.endpoint(endpoint)
    if spec.parent is None:
        raise SpecError(f"endpoint {endpoint!r} declares no parent",
                        source=connector.name, path=f"endpoints.{endpoint}.parent")
    parent = spec.parent
    params = {**(params or {}), **more_params}
    for_parent = dict(parent_params or {})
    parent_spec = connector.endpoint(parent.endpoint)
    for_parent_names = parent_spec.path_params + parent_spec.required
    for name in [n for n in params if n in for_parent_names]:
        for_parent[name] = params.pop(name)
    http = {"cache": cache} if cache is not None else {}
    parents = connector.fetch(parent.endpoint, **http, params=for_parent)
    keys, mapped = _parent_keys(parents, parent.endpoint, parent.params,
                                f"endpoints.{endpoint}.parent.params")
    options = {**http, "progress": False,
               **({"max_pages": max_pages} if max_pages else {})}
    lookup = _Lookup(connector, endpoint, mapped, params, parent.batch_size,
                     parent.separator, parent.key,
                     workers or min(connector.concurrency, 8), lookup_cache, options)
    children, stats = _combine(keys, lookup, how="inner", prefix=None, errors="record",
                               error_column=ERROR_COLUMN)
    return _finish_children(children, connector, endpoint, parents, stats, limit,
                            {**for_parent, **params})


def _parent_keys(parents: pd.DataFrame, name: str, params: Mapping[str, str],
                 where: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The distinct parent fields the child needs, as ``<parent>.<field>`` columns."""
    import pandas as pd

    fields = _fields_of(params)
    keys = pd.DataFrame({f"{name}.{f}": _column_values(parents, f, where)
                         for f in fields})
    keys = keys.loc[~keys.map(normalize_key).duplicated()].reset_index(drop=True)
    mapped = {param: (_TEMPLATE.sub(lambda m: "{" + f"{name}.{m.group(1)}" + "}", v)
                      if "{" in v else f"{name}.{v}") for param, v in params.items()}
    return keys, mapped


def _finish_children(children: pd.DataFrame, connector: Connector, endpoint: str,
                     parents: pd.DataFrame, stats: dict[str, Any], limit: int | None,
                     params: Mapping[str, Any]) -> pd.DataFrame:
    from restconnect.redact import redact_params

    truncated = limit is not None and len(children) > limit
    if truncated:
        children = children.head(limit).copy()
    if ERROR_COLUMN in children.columns and children[ERROR_COLUMN].isna().all():
        children = children.drop(columns=[ERROR_COLUMN])
    parent_meta = parents.attrs.get("restconnect", {})
    children.attrs["restconnect"] = {
        "connector": connector.name, "endpoint": endpoint,
        "params": redact_params(params), "records": len(children),
        "pages": int(parent_meta.get("pages", 0)) + stats["pages"],
        "parent": {"endpoint": parent_meta.get("endpoint"), "records": len(parents)},
        **{k: stats[k] for k in ("lookups", "calls", "failed", "batch_size")},
        "truncated": truncated or bool(parent_meta.get("truncated")),
        "truncated_reason": f"limit={limit}" if truncated else None,
    }
    return children
