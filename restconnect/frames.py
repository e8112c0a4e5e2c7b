"""Records to pandas DataFrames.

:class:`FrameBuilder` takes records page by page and builds one frame:
nested objects become ``parent.child`` columns, lists stay Python lists,
declared dtypes and datetime columns are applied.

Two paths give the same frame. The columnar one (:class:`ArrowPages`) turns
each page into Arrow columns as it arrives, so a page's Python dicts are
freed at once and no Python code runs per field of each record; it is used
whenever the records allow. The plain one keeps the records and calls
``pandas.json_normalize`` at the end; it takes over, for the whole frame, as
soon as a page has a layout the columnar path cannot mirror exactly (records
with different keys, values of mixed types). ``tests/test_frames_equivalence.py``
checks that both give identical frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from restconnect.exceptions import show_warning

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DATETIME_DTYPES",
    "ArrowPages",
    "FrameBuilder",
    "FrameOptions",
    "explode",
    "shape_frame",
]

logger = logging.getLogger(__name__)


#: ``dtypes`` values that mean "parse as UTC timestamps", as ``datetimes`` does.
DATETIME_DTYPES = ("datetime", "timestamp")

#: Longest example value quoted in a warning or error.
_EXAMPLE_CHARS = 40


@dataclass
class FrameOptions:
    """How records become a frame; ``source`` (``connector.endpoint``) is
    named in warnings and errors."""

    sep: str = "."
    dtypes: Mapping[str, str] = field(default_factory=dict)
    datetimes: Sequence[str] = ()
    columns: Sequence[str] = ()
    explode: str | None = None
    keep: Sequence[str] = ()
    source: str | None = None


class FrameBuilder:
    """Collects pages of records and builds the DataFrame at the end.

    Args:
        options: flattening and dtype rules.
        columnar: use the columnar path when the records allow (the default);
            False always uses ``pandas.json_normalize``.

    Example:
        >>> builder = FrameBuilder(FrameOptions())
        >>> builder.add_page([{"id": 1, "owner": {"login": "a"}}])
        >>> builder.finish().columns.tolist()
        ['id', 'owner.login']
    """

    def __init__(self, options: FrameOptions | None = None, *, columnar: bool = True,
                 batch_rows: int = 2000):
        self.options = options or FrameOptions()
        self.columnar = columnar
        self._batch_rows = batch_rows
        self._pages = self._new_pages()
        self._records: list[Any] = []
        self.count = 0
        #: ``"columnar"`` or ``"plain"``: how the last frame was built.
        self.last_path: str | None = None

    def _new_pages(self) -> ArrowPages | None:
        if not self.columnar:
            return None
        return ArrowPages(self.options.sep, batch_rows=self._batch_rows)

    @property
    def batch_rows(self) -> int:
        """How many records the columnar path converts at a time."""
        return self._batch_rows

    @batch_rows.setter
    def batch_rows(self, rows: int) -> None:
        self._batch_rows = rows
        if self._pages is not None:
            self._pages.batch_rows = rows

    def add_page(self, records: Iterable[Any]) -> None:
        """Add one page of records."""
        records = records if isinstance(records, list) else list(records)
        self.count += len(records)
        if self._pages is not None:
            try:
                self._pages.add(records)
            except _Irregular as why:
                self._to_plain(why)
            return
        self._records.extend(records)

    def _to_plain(self, why: Exception) -> None:
        """Hand every page added so far to the plain path."""
        logger.debug("building the frame with json_normalize: %s", why)
        assert self._pages is not None
        self._records = self._pages.records() + self._records
        self._pages = None

    def drain(self) -> pd.DataFrame:
        """Build a frame of the records added so far and forget them."""
        pages, records = self._pages, self._records
        self._pages = self._new_pages()
        self._records = []
        if pages is not None and (pages.pages or pages.pending):
            try:
                frame = pages.frame()
                self.last_path = "columnar"
                return shape_frame(frame, self.options)
            except _Irregular as why:
                logger.debug("building the frame with json_normalize: %s", why)
                records = pages.records()
        self.last_path = "plain"
        return self._build(records)

    def finish(self) -> pd.DataFrame:
        """Build the frame of every record added."""
        return self.drain()

    def _build(self, records: list[Any]) -> pd.DataFrame:
        import pandas as pd

        if not records:
            return _empty_frame(self.options)
        rows = [r if isinstance(r, dict) else {"value": r} for r in records]
        frame = pd.json_normalize(rows, sep=self.options.sep)
        return shape_frame(frame, self.options)


def shape_frame(frame: pd.DataFrame, options: FrameOptions) -> pd.DataFrame:
    """Apply explode, declared datetimes and dtypes to a flattened frame.

    A declared name the frame lacks gets a warning when a column's name is
    close to it (unless the frame has no rows); a datetime column whose values
    all fail to parse, or a dtype that does not fit, raises ``SpecError``.
    """
    flattened = list(frame.columns)
    if options.explode:
        frame = explode(frame, options.explode, options.sep)
    if len(frame.index):
        _warn_unknown_names(flattened, list(frame.columns), options)
    return _apply_types(frame, options)


def _empty_frame(options: FrameOptions) -> pd.DataFrame:
    """A result with no records: the declared columns with their dtypes."""
    import pandas as pd

    names = [*options.columns, *options.datetimes, *options.dtypes]
    return _apply_types(pd.DataFrame(columns=list(dict.fromkeys(names))), options)


def _apply_types(frame: pd.DataFrame, options: FrameOptions) -> pd.DataFrame:
    for column in options.datetimes:
        if column in frame.columns:
            frame[column] = _to_datetime(frame[column], column, options.source)
    for column, dtype in options.dtypes.items():
        if column in frame.columns:
            frame[column] = _astype(frame[column], dtype, column, options.source)
    return frame


def _warn_unknown_names(flattened: list[Any], columns: list[Any],
                        options: FrameOptions) -> None:
    """Warn about a declared column the result lacks when a column is close to it.

    Only a likely typo is worth a warning: APIs that return sparse records or
    only the fields asked for lack declared columns for good reasons.
    """
    import difflib

    present = set(flattened) | set(columns)
    names = [str(column) for column in columns]
    for key, declared in (("columns", options.columns),
                          ("datetimes", options.datetimes), ("dtypes", options.dtypes)):
        for name in declared:
            if name in present:
                continue
            hint = difflib.get_close_matches(str(name), names, n=1, cutoff=0.8)
            if hint:
                show_warning(f"{_where(options.source)}{key} names {name!r}, which is "
                             f"not a column of the result; did you mean {hint[0]!r}?")


def _to_datetime(series: pd.Series, column: str, source: str | None = None,
                 key: str = "datetimes") -> pd.Series:
    """UTC timestamps from ISO 8601 text or Unix seconds; see :func:`_report_lost`."""
    import pandas as pd

    if series.empty:
        # pandas picks the unit from the values; give the one a timestamp gets.
        sample = pd.to_datetime(pd.Series(["2000-01-01T00:00:00Z"]), utc=True,
                                format="ISO8601")
        return pd.Series([], dtype=sample.dtype, index=series.index, name=series.name)
    if pd.api.types.is_numeric_dtype(series):
        converted = pd.to_datetime(series, unit="s", utc=True, errors="coerce")
    else:
        converted = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    lost = converted.isna() & series.notna()
    if lost.any():
        _report_lost(series, series[lost].tolist(), column, source, key)
    return converted


def _report_lost(series: pd.Series, lost: list[Any], column: str,
                 source: str | None, key: str) -> None:
    """Warn that values became NaT, or raise when not one value parsed.

    Blank strings count as no value. The example is left out when the
    column's name suggests a secret.
    """
    from restconnect.exceptions import SpecError
    from restconnect.redact import is_sensitive_name

    bad = [value for value in lost
           if not (isinstance(value, str) and not value.strip())]
    if not bad:
        return
    present = int(series.notna().sum()) - (len(lost) - len(bad))
    example = "" if is_sensitive_name(str(column)) else f", such as {_example(bad[0])}"
    if len(bad) == present:
        raise SpecError(
            f"none of the {present} values of {column!r} is a timestamp{example}; "
            "timestamps are read from ISO 8601 text or Unix seconds",
            source=source, path=key)
    message = (f"{_where(source)}{key}: {len(bad)} of {present} values of {column!r} "
               f"are not timestamps and became NaT{example}")
    logger.warning("%s", message)
    show_warning(message)


def _astype(series: pd.Series, dtype: str, column: str,
            source: str | None = None) -> pd.Series:
    if dtype in DATETIME_DTYPES:
        return _to_datetime(series, column, source, key=f"dtypes.{column}")
    try:
        return series.astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        from restconnect.exceptions import SpecError

        reason = str(exc)[:200]
        raise SpecError(f"column {column!r} cannot be converted to {dtype}: {reason}",
                        source=source, path=f"dtypes.{column}") from None


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _example(value: Any) -> str:
    """A value quoted in a message, cut short."""
    text = str(value)
    if len(text) <= _EXAMPLE_CHARS:
        return repr(text)
    return f"{text[:_EXAMPLE_CHARS]!r}..."


def explode(frame: pd.DataFrame, column: str, sep: str = ".") -> pd.DataFrame:
    """One row per element of a list column; dict elements become columns."""
    import pandas as pd

    if column not in frame.columns:
        raise KeyError(f"cannot explode {column!r}: no such column; columns are "
                       f"{', '.join(map(str, frame.columns))}")
    exploded = frame.explode(column, ignore_index=True)
    values = exploded[column]
    if values.map(lambda v: isinstance(v, dict)).any():
        inner = pd.json_normalize(
            [v if isinstance(v, dict) else {} for v in values], sep=sep)
        inner.columns = [f"{column}{sep}{name}" for name in inner.columns]
        exploded = pd.concat([exploded.drop(columns=[column]), inner], axis=1)
    return exploded


# ---------------------------------------------------------------- columnar path


class _Irregular(Exception):
    """A page the columnar path cannot represent exactly; the plain path takes over."""


@dataclass
class _Node:
    """One key of a page's record layout; ``children`` is set for nested objects."""

    name: str
    path: str
    children: list[_Node] | None = None


@dataclass
class _ArrowPage:
    """One page, held column by column: Arrow leaves, Python lists, masks."""

    rows: int
    layout: list[_Node]
    leaves: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, list[Any]] = field(default_factory=dict)
    nulls: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, Any] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    names: frozenset[str] = frozenset()
    parents: dict[str, list[Any]] = field(default_factory=dict)


class ArrowPages:
    """Pages of records turned into Arrow columns as they arrive.

    The result is the frame ``pandas.json_normalize`` gives for the same
    records (same columns in the same order, same dtypes and values), built
    without a Python loop over the fields of each record, and without keeping
    the records: a page's dicts can be freed as soon as it is added. Lists
    stay the Python lists they were. A page whose layout this cannot mirror
    exactly (records with different keys, mixed value types) raises
    :class:`_Irregular`, and :meth:`records` gives back what was added so the
    plain path can take over.
    """

    def __init__(self, sep: str = ".", *, batch_rows: int = 2000):
        self.sep = sep
        self.batch_rows = batch_rows
        self.pages: list[_ArrowPage] = []
        self._types: dict[str, Any] = {}
        self._pending: list[list[Any]] = []
        self._pending_rows = 0

    def add(self, records: list[Any]) -> None:
        """Take one page; pages are converted in batches of about ``batch_rows``.

        Raises:
            _Irregular: the pending pages cannot be represented; nothing is
                lost, :meth:`records` still returns every record added.
        """
        if not records:
            return
        self._pending.append(records)
        self._pending_rows += len(records)
        if self._pending_rows >= self.batch_rows:
            self.flush()

    @property
    def pending(self) -> int:
        """Records added but not converted yet."""
        return sum(map(len, self._pending))

    def flush(self) -> None:
        """Convert the pending pages (one batch, or page by page if they differ)."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return
        try:
            self._convert_batch(list(chain.from_iterable(pending)))
            return
        except _Irregular:
            if len(pending) == 1:
                self._pending = pending
                raise
        for index, page in enumerate(pending):
            try:
                self._convert_batch(page)
            except _Irregular:
                self._pending = pending[index:]
                raise

    def _convert_batch(self, records: list[Any]) -> None:
        if set(map(type, records)) != {dict}:
            raise _Irregular("a record is not an object")
        page = _ArrowPage(len(records), [])
        names = list(records[0])
        columns = _columns(records, names)
        arrays = [self._convert(name, column) for name, column in zip(names, columns)]
        page.layout = self._walk(page, names, arrays, columns, "", None)
        page.order = self._order(page)
        page.names = frozenset(page.order)
        if len(page.names) != len(page.order):
            raise _Irregular("flattened column names collide")
        self.pages.append(page)

    # ------------------------------------------------------------ one page

    def _convert(self, name: str, column: Sequence[Any]) -> Any:
        """One top-level column as an Arrow array.

        Nested objects are converted with the type found on an earlier page,
        which is twice as fast as inferring it again; other columns convert
        as fast either way, and are inferred. A typed conversion would
        silently turn a float into an int64 or a bool into a double, so
        :func:`_fits` checks the values, and a mismatch sends the column back
        to inference, which gives the type pandas would infer.
        """
        import pyarrow as pa

        known = self._types.get(name)
        if known is not None and _is_list(known) and _lists_only(column):
            # Lists stay Python lists in the frame: no need to convert them.
            return _KeptLists(known)
        if known is not None and pa.types.is_struct(known):
            try:
                array = pa.array(column, type=known)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                array = None
            if array is not None and _fits(known, column):
                return array
        try:
            array = pa.array(column)
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            raise _Irregular(f"values of {name!r} do not convert: {exc}") from None
        if not _fits(array.type, column, inferred=True):
            raise _Irregular(f"values of {name!r} change type or layout between "
                             "records")
        if not pa.types.is_null(array.type):
            self._types[name] = array.type
        return array

    def _walk(self, page: _ArrowPage, names: list[str], arrays: list[Any],
              columns: Sequence[Sequence[Any]] | None, prefix: str, missing: Any
              ) -> list[_Node]:
        """Record the layout below ``prefix`` and keep every leaf column.

        ``columns`` holds the Python values of each name when already known
        (top level); below it they are taken from ``parents`` on demand.
        """
        import pyarrow as pa

        nodes = []
        for index, name in enumerate(names):
            path = f"{prefix}{self.sep}{name}" if prefix else name
            array = arrays[index]
            node = _Node(name, path)
            kind = array.type
            if pa.types.is_struct(kind) or _is_list(kind):
                column = columns[index] if columns is not None else \
                    self._children_values(page, prefix, name)
                if pa.types.is_struct(kind):
                    node.children = self._walk_struct(page, node, array, column,
                                                      missing)
                else:
                    page.kept[path] = column
            else:
                page.leaves[path] = array
            if missing is not None:
                page.missing[path] = missing
            nodes.append(node)
        return nodes

    def _walk_struct(self, page: _ArrowPage, node: _Node, array: Any,
                     column: Sequence[Any], missing: Any) -> list[_Node]:
        import numpy as np

        names = [array.type.field(i).name for i in range(array.type.num_fields)]
        is_null = np.asarray(array.is_null())
        if is_null.any():
            page.nulls[node.path] = is_null
            below = is_null if missing is None else (is_null | missing)
        else:
            below = missing
        children = array.flatten()
        page.parents[node.path] = column
        nodes = self._walk(page, names, children, None, node.path, below)
        del page.parents[node.path]
        return nodes

    @staticmethod
    def _children_values(page: _ArrowPage, prefix: str, name: str) -> list[Any]:
        """The Python values of ``prefix.name``; None below a null object."""
        return [None if parent is None else parent[name]
                for parent in page.parents[prefix]]

    def _order(self, page: _ArrowPage) -> list[str]:
        """The flattened column order json_normalize gives for this page."""
        import numpy as np

        if not page.nulls:
            return _flat_names(page.layout, frozenset(), top=True)
        paths = list(page.nulls)
        codes = np.zeros(page.rows, dtype=np.int64)
        for bit, path in enumerate(paths):
            codes |= page.nulls[path].astype(np.int64) << bit
        _, first = np.unique(codes, return_index=True)
        order: dict[str, None] = {}
        for row in sorted(first):
            code = int(codes[row])
            null = frozenset(p for bit, p in enumerate(paths) if code >> bit & 1)
            order.update(dict.fromkeys(_flat_names(page.layout, null, top=True)))
        return list(order)

    # ------------------------------------------------------------ the frame

    def frame(self) -> pd.DataFrame:
        """The frame of every page added; raises ``_Irregular`` if types clash."""
        import pandas as pd

        self.flush()
        order: dict[str, None] = {}
        for page in self.pages:
            order.update(dict.fromkeys(page.order))
        kept = {path for page in self.pages for path in page.kept}
        plans = {path: self._column_plan(path, path in kept) for path in order}
        data = {}
        for path in order:
            data[path] = self._build_column(path, plans[path])
        rows = sum(page.rows for page in self.pages)
        return pd.DataFrame(data, index=pd.RangeIndex(rows), copy=False)

    def _column_plan(self, path: str, kept: bool) -> Any:
        """The Arrow type a column is built with (None: Python objects)."""
        import pyarrow as pa

        if kept:
            return None
        types = {page.leaves[path].type for page in self.pages if path in page.leaves}
        types.discard(pa.null())
        if len(types) <= 1:
            return types.pop() if types else pa.null()
        if types == {pa.int64(), pa.float64()}:
            return pa.float64()
        kinds = sorted(map(str, types))
        raise _Irregular(f"column {path!r} has values of types {kinds}")

    def _build_column(self, path: str, arrow_type: Any) -> Any:
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        missing = np.concatenate([self._missing(page, path) for page in self.pages])
        if arrow_type is None:
            values = []
            for page in self.pages:
                values.extend(self._python_values(page, path))
            self._release(path)
            return _object_array(values, missing)
        chunks = [self._arrow_values(page, path, arrow_type) for page in self.pages]
        self._release(path)
        chunked = pa.chunked_array(chunks, type=arrow_type)
        del chunks
        if pa.types.is_null(arrow_type):
            if missing.any():
                return np.full(len(missing), np.nan)
            return np.full(len(missing), None, dtype=object)
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            chunked = chunked.combine_chunks()
        converted = chunked.to_pandas()
        if missing.any() and converted.dtype == object:
            converted = converted.to_numpy(dtype=object, copy=True)
            converted[missing] = np.nan
        return converted.values if isinstance(converted, pd.Series) else converted

    def _release(self, path: str) -> None:
        """Drop the pages' hold on a column once the frame has its own copy."""
        for page in self.pages:
            page.leaves.pop(path, None)
            page.kept.pop(path, None)

    def _missing(self, page: _ArrowPage, path: str) -> Any:
        """Rows of a page where ``path`` is absent from the flattened record."""
        import numpy as np

        if path not in page.names:
            return np.ones(page.rows, dtype=bool)
        if path in page.nulls:
            mask = ~page.nulls[path]
            inherited = page.missing.get(path)
            return mask if inherited is None else (mask | inherited)
        inherited = page.missing.get(path)
        return np.zeros(page.rows, dtype=bool) if inherited is None else inherited

    def _arrow_values(self, page: _ArrowPage, path: str, arrow_type: Any) -> Any:
        import pyarrow as pa

        array = page.leaves.get(path)
        if array is None or pa.types.is_struct(array.type):
            return pa.nulls(page.rows, type=arrow_type)
        if array.type == arrow_type:
            return array
        # Unsafe like numpy: an int64 too large for a double is rounded, as in pandas.
        return array.cast(arrow_type, safe=False)

    def _python_values(self, page: _ArrowPage, path: str) -> list[Any]:
        if path in page.kept:
            return page.kept[path]
        if path in page.leaves:
            return page.leaves[path].to_pylist()
        return [None] * page.rows

    # ------------------------------------------------------------ fallback

    def records(self) -> list[dict[str, Any]]:
        """The records of every page added, rebuilt for the plain path."""
        out: list[dict[str, Any]] = []
        for page in self.pages:
            columns = {path: array.to_pylist() for path, array in page.leaves.items()}
            columns.update(page.kept)
            nulls = {path: mask.tolist() for path, mask in page.nulls.items()}
            out.extend(_rebuild(page.layout, columns, nulls, row)
                       for row in range(page.rows))
        for records in self._pending:
            out.extend(records)
        return out


def _columns(records: list[dict[str, Any]], names: list[str]) -> list[Sequence[Any]]:
    """The values of each of ``names``; raises if a record has other keys."""
    if set(map(len, records)) != {len(names)}:
        raise _Irregular("records have different keys")
    if len(names) < 2:
        # itemgetter gives a bare value for one name and cannot take none.
        return [list(map(itemgetter(name), records)) for name in names]
    try:
        return list(zip(*map(itemgetter(*names), records)))
    except KeyError:
        raise _Irregular("records have different keys") from None


@dataclass(frozen=True)
class _KeptLists:
    """Stands for the Arrow array of a column of lists that is kept in Python."""

    type: Any


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind))


def _lists_only(values: Sequence[Any]) -> bool:
    return set(map(type, values)) <= {list, type(None)}


def _fits(kind: Any, values: Sequence[Any], *, inferred: bool = False) -> bool:
    """Whether Arrow converted ``values`` to ``kind`` without changing one.

    ``inferred``: Arrow chose ``kind`` itself, which it never makes int64
    when a float or a bool is among the values.
    """
    import pyarrow as pa

    if pa.types.is_int64(kind):
        return inferred or float not in set(map(type, values))
    if pa.types.is_float64(kind):
        return bool not in set(map(type, values))
    if not pa.types.is_struct(kind):
        return True
    present = [v for v in values if v is not None]
    names = tuple(kind.field(i).name for i in range(kind.num_fields))
    if present and set(map(tuple, present)) != {names}:
        return False
    for index, name in enumerate(names):
        child = kind.field(index).type
        checked = pa.types.is_int64(child) or pa.types.is_float64(child) \
            or pa.types.is_struct(child)
        if checked and not _fits(child, list(map(itemgetter(name), present)),
                                 inferred=inferred):
            return False
    return True


def _rebuild(nodes: list[_Node], columns: dict[str, list[Any]],
             nulls: dict[str, list[bool]], row: int) -> dict[str, Any]:
    record = {}
    for node in nodes:
        if node.children is None:
            record[node.name] = columns[node.path][row]
        elif node.path in nulls and nulls[node.path][row]:
            record[node.name] = None
        else:
            record[node.name] = _rebuild(node.children, columns, nulls, row)
    return record


def _flat_names(nodes: list[_Node], null: frozenset[str], *, top: bool) -> list[str]:
    """Flattened keys in json_normalize's order; top-level scalars come first."""
    scalars, nested = [], []
    for node in nodes:
        if node.children is not None and node.path not in null:
            nested.extend(_flat_names(node.children, null, top=False))
        elif top:
            scalars.append(node.path)
        else:
            nested.append(node.path)
    return scalars + nested


def _object_array(values: list[Any], missing: Any) -> Any:
    import numpy as np

    # fromiter keeps each value whole, where np.array would nest the lists.
    array = np.fromiter(values, dtype=object, count=len(values))
    if missing.any():
        array[missing] = np.nan
    return array
