"""Joins of fetched frames, on keys normalised across types.

:func:`join` merges two fetched frames. Key values are normalised first, so
an id that is an int on one side and a string on the other still matches;
case-folding is optional (for emails); missing keys never match. The key
handling here is shared with :mod:`restconnect.lookups` (enrichment and
parent-child fetches).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from restconnect.exceptions import SpecError, show_warning
from restconnect.redact import redact_text

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["join", "merged_attrs", "normalize_key"]

logger = logging.getLogger(__name__)

How = Literal["inner", "left", "right", "outer"]
KEY_COLUMN = "__rc_key{}"
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
#: Errors a single lookup may end with; the row is kept and the error recorded.


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
    if is_missing(value):
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


def is_missing(value: Any) -> bool:
    """Whether a key value is absent (None, NaN, NA): such keys never match."""
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
    check_choice(how, _HOWS, "how")
    if validate is not None:
        check_choice(validate, _UNIQUE_SIDES, "validate")
    left_keys, right_keys = _key_names(on, left_on, right_on)
    check_columns(left, left_keys, "left_on" if on is None else "on", "left")
    check_columns(right, right_keys, "right_on" if on is None else "on", "right")
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


def check_choice(value: Any, accepted: Sequence[str], name: str,
                 source: str = "join") -> None:
    """Raise ``SpecError`` unless ``value`` is one of ``accepted``."""
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
    temps = [KEY_COLUMN.format(i) for i in range(len(left_keys))]
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


def check_columns(frame: pd.DataFrame, keys: list[str], where: str, side: str) -> None:
    """Raise ``SpecError`` naming a key column ``frame`` lacks, with a hint."""
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
        warn_user("join of %s and %s matched no keys; check the key columns (and "
                  "casefold for text such as emails)", source_label(left) or "left",
                  source_label(right) or "right")


def warn_user(message: str, *args: Any) -> None:
    """Log a warning and show it as a RestConnectWarning at the user's call."""
    text = redact_text(message % args)
    logger.warning("%s", text)
    show_warning(text)


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
