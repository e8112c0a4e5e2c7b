"""Writers for extract jobs: Parquet, CSV, JSON Lines, SQLite and DuckDB.

Every writer is crash-safe. File outputs stage each batch as a Parquet part
in a folder beside the target, then build the whole new file under a
temporary name and ``os.replace`` it over the old one, so a reader sees the
old file or the new one, never half of either. Databases write in one
transaction that also stores the job's incremental state, so data and state
commit together.

Modes: ``replace`` (the output holds this run's rows), ``append`` (old rows
then new ones) and ``upsert`` (old rows whose primary key comes again are
dropped, then the new rows are added).
"""

from __future__ import annotations

import logging
import difflib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from restconnect.exceptions import ExtractError, SpecError
from restconnect.state import StateStore, _fsync_dir

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["FORMATS", "LOCK_SUFFIX", "Output", "OutputSpec", "make_output", "to_arrow"]

logger = logging.getLogger(__name__)

#: The end of a job's lock file name; the lock sits beside the output.
LOCK_SUFFIX = ".restconnect-lock"

Mode = Literal["replace", "append", "upsert"]

#: file extension -> format
FORMATS = {
    ".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite",
    ".duckdb": "duckdb",
}

_STATE_TABLE = "_restconnect_state"


@dataclass
class OutputSpec:
    """Where and how an extract writes.

    Attributes:
        path: the file (or database file).
        format: ``parquet``, ``csv``, ``jsonl``, ``sqlite`` or ``duckdb``;
            from the extension by default.
        mode: ``replace``, ``append`` or ``upsert``; by default ``upsert``
            for incremental jobs with a primary key, ``append`` for other
            incremental jobs and ``replace`` otherwise.
        table: the database table (the endpoint name by default).
    """

    path: str
    format: str | None = None
    mode: Mode | None = None
    table: str | None = None

    @classmethod
    def of(cls, value: Any) -> OutputSpec:
        if isinstance(value, OutputSpec):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(path=str(value))
        if isinstance(value, Mapping):
            known = ("path", "format", "mode", "table")
            unknown = sorted(set(value) - set(known))
            if unknown:
                key = unknown[0]
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise SpecError(f"unknown key {key!r}{suggestion} (known: "
                                f"{', '.join(known)})", path=f"output.{key}")
            if "path" not in value:
                raise SpecError("required key is missing", path="output.path")
            return cls(**value)
        raise SpecError(f"output must be a path or a mapping, got {value!r}",
                        path="output")

    def resolved_format(self) -> str:
        chosen = self.format or FORMATS.get(Path(self.path).suffix.lower())
        if chosen not in set(FORMATS.values()):
            raise SpecError(
                f"cannot tell the output format of {self.path!r}; use one of the "
                f"extensions {', '.join(sorted(FORMATS))} or set format: "
                f"{'/'.join(sorted(set(FORMATS.values())))}", path="output.format")
        return chosen

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


# ---------------------------------------------------------------- arrow helpers


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as an Arrow table; columns Arrow cannot type become JSON text."""
    import pyarrow as pa

    frame = frame.reset_index(drop=True)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    columns = {}
    for name in frame.columns:
        try:
            columns[str(name)] = pa.Array.from_pandas(frame[name])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            logger.info("column %r has mixed types; written as JSON text", name)
            columns[str(name)] = pa.array([_json_text(v) for v in frame[name]],
                                          pa.string())
    return pa.table(columns)


def _json_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str,
                        option=orjson.OPT_SERIALIZE_NUMPY).decode()


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for every part; a column whose types cannot merge becomes text."""
    import pyarrow as pa

    try:
        return pa.unify_schemas(list(schemas), promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    fields: dict[str, list[pa.Field]] = {}
    for schema in schemas:
        for item in schema:
            fields.setdefault(item.name, []).append(item)
    merged = []
    for name, versions in fields.items():
        try:
            merged.append(pa.unify_schemas([pa.schema([f]) for f in versions],
                                           promote_options="permissive")[0])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            merged.append(pa.field(name, pa.string()))
    return pa.schema(merged)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns and types of ``schema`` (missing ones null)."""
    import pyarrow as pa

    columns = []
    for item in schema:
        if item.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, item.type))
            continue
        column = table.column(item.name)
        if column.type == item.type:
            columns.append(column)
            continue
        try:
            columns.append(column.cast(item.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            columns.append(pa.array([_json_text(v) for v in column.to_pylist()],
                                    pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


def key_texts(table: pa.Table, primary_key: Sequence[str]) -> pa.Array:
    """The primary key of each row as one text value (for upsert matching)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    for name in primary_key:
        if name not in table.column_names:
            raise ExtractError(f"the primary key column {name!r} is not in the data; "
                               f"columns: {', '.join(table.column_names)}")
        column = table.column(name)
        parts.append(pc.cast(column, pa.string()) if column.type != pa.string()
                     else column)
    if len(parts) == 1:
        return parts[0].combine_chunks() if hasattr(parts[0], "combine_chunks") \
            else parts[0]
    return pc.binary_join_element_wise(*parts, "\x1f")


def key_text(values: Sequence[Any]) -> str:
    """The same text as :func:`key_texts` gives, for one record's key values."""
    return "\x1f".join("" if v is None else _scalar_text(v) for v in values)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- the base


@dataclass
class Output:
    """One target of an extract run.

    Lifecycle: ``recover()`` before fetching (returns the committed state),
    ``write(frame)`` per batch, then ``commit(state)`` or ``abort()``.
    """

    spec: OutputSpec
    mode: Mode
    primary_key: list[str]
    table: str
    store: StateStore
    state_key: str
    crash: Any = None
    rows_written: int = 0
    _new_keys: set[str] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return Path(self.spec.path).expanduser()

    def check(self) -> None:
        if self.mode == "upsert" and not self.primary_key:
            raise SpecError("mode 'upsert' needs the endpoint's primary_key",
                            path="output.mode")

    def recover(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def write(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def commit(self, state: Mapping[str, Any] | None) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        """Prepare to take batches (after ``recover``)."""

    def abort(self) -> None:
        """Drop what this run staged; the previous output stays as it was."""


def _hook(crash: Any, point: str) -> None:
    if crash is not None:
        crash(point)


# ---------------------------------------------------------------- files


class FileOutput(Output):
    """Parquet, CSV and JSON Lines: staged parts, then one atomic replace."""

    fmt: str = "parquet"

    def begin(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(dir=self.path.parent,
                                              prefix=f".{self.path.name}.staging-"))
        self._parts: list[Path] = []

    def recover(self) -> dict[str, Any] | None:
        """Finish or forget a commit that a crash interrupted."""
        pending = self.store.load_pending(self.state_key)
        if pending is not None:
            if self._replaced(pending):
                logger.info("%s: the last run wrote its output but stopped before "
                            "saving its state; saving it now", self.path)
                self.store.commit_pending(self.state_key)
            else:
                self.store.discard_pending(self.state_key)
        self._clean_stale()
        committed = self.store.load(self.state_key)
        return committed.get("state") if committed else None

    def _replaced(self, pending: Mapping[str, Any]) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        return (stat.st_ino == pending.get("inode")
                and stat.st_size == pending.get("size"))

    def _clean_stale(self) -> None:
        for leftover in self.path.parent.glob(f".{self.path.name}.*"):
            if leftover.name.endswith(LOCK_SUFFIX):
                continue  # the running job's lock: deleting it lets a second run in
            # Leftovers of a killed run: a staging folder or a half-built file.
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        if frame.empty and not len(frame.columns):
            return
        table = to_arrow(frame)
        if self.mode == "upsert":
            self._new_keys.update(key_texts(table, self.primary_key).to_pylist())
        part = self._staging / f"part-{len(self._parts):06d}.parquet"
        pq.write_table(table, part)
        self._parts.append(part)
        self.rows_written += table.num_rows

    def commit(self, state: Mapping[str, Any] | None) -> None:
        if not self._parts and self.mode != "replace" and self.path.exists():
            # Nothing new: the output stays as it is, only the state moves.
            self.abort()
            _hook(self.crash, "before_state")
            if state is not None:
                self.store.save(self.state_key, {"state": dict(state)})
            return
        temp = self.path.parent / f".{self.path.name}.{os.getpid()}.new"
        try:
            self._build(temp)
            _fsync_file(temp)
            if state is not None:
                stat = temp.stat()
                self.store.save_pending(self.state_key, {
                    "state": dict(state), "inode": stat.st_ino, "size": stat.st_size})
            _hook(self.crash, "before_replace")
            os.replace(temp, self.path)
            _fsync_dir(self.path.parent)
            _hook(self.crash, "before_state")
            if state is not None:
                self.store.commit_pending(self.state_key)
        finally:
            temp.unlink(missing_ok=True)
            self.abort()

    def abort(self) -> None:
        staging = getattr(self, "_staging", None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    # ------------------------------------------------------------ building

    def _sources(self) -> Iterator[pa.Table]:
        """Old rows to keep (per mode), then the staged new rows."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if self.mode != "replace" and self.path.exists():
            keys = None
            if self.mode == "upsert" and self._new_keys:
                import pyarrow as pa

                keys = pa.array(sorted(self._new_keys), pa.string())
            for old in self._read_existing():
                if keys is not None:
                    old = old.filter(pc.invert(pc.is_in(
                        key_texts(old, self.primary_key), value_set=keys)))
                if old.num_rows:
                    yield old
        for part in self._parts:
            yield pq.read_table(part)

    def _schemas(self) -> list[pa.Schema]:
        import pyarrow.parquet as pq

        schemas = [pq.read_schema(part) for part in self._parts]
        if self.mode != "replace" and self.path.exists():
            schemas.insert(0, self._existing_schema())
        return schemas

    def _read_existing(self) -> Iterator[pa.Table]:
        raise NotImplementedError

    def _existing_schema(self) -> pa.Schema:
        raise NotImplementedError

    def _build(self, target: Path) -> None:
        raise NotImplementedError


class ParquetOutput(FileOutput):
    """Parquet through ``pyarrow.parquet.ParquetWriter``, one row group per batch."""

    def _read_existing(self) -> Iterator[pa.Table]:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.path)
        for group in range(source.num_row_groups):
            yield source.read_row_group(group)

    def _existing_schema(self) -> pa.Schema:
        import pyarrow.parquet as pq

        return pq.read_schema(self.path).remove_metadata()

    def _build(self, target: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schemas = [s.remove_metadata() for s in self._schemas()]
        schema = unify(schemas) if schemas else pa.schema([])
        with pq.ParquetWriter(target, schema) as writer:
            for table in self._sources():
                writer.write_table(conform(table, schema))


class CsvOutput(FileOutput):
    """CSV with a header; lists and objects are written as JSON text."""

    def _read_existing(self) -> Iterator[pa.Table]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        columns = self._existing_schema().names
        options = pcsv.ConvertOptions(column_types={n: pa.string() for n in columns},
                                      strings_can_be_null=False)
        with pcsv.open_csv(self.path, convert_options=options) as reader:
            for batch in reader:
                yield pa.Table.from_batches([batch])

    def _existing_schema(self) -> pa.Schema:
        import pyarrow as pa

        with open(self.path, encoding="utf-8", newline="") as handle:
            import csv

            header = next(csv.reader(handle), [])
        return pa.schema([pa.field(name, pa.string()) for name in header])

    def _build(self, target: Path) -> None:
        import pyarrow as pa

        schemas = self._schemas()
        names = list(dict.fromkeys(n for s in schemas for n in s.names))
        schema = pa.schema([pa.field(n, pa.string()) for n in names])
        with open(target, "w", encoding="utf-8", newline="") as handle:
            header = True
            for table in self._sources():
                frame = _text_frame(table, names)
                frame.to_csv(handle, index=False, header=header)
                header = False
            if header:
                handle.write(",".join(schema.names) + ("\n" if names else ""))


def _text_frame(table: pa.Table, names: Sequence[str]) -> pd.DataFrame:
    """A frame of ``names`` with nested values as JSON and timestamps as ISO text."""
    import pyarrow as pa

    data = {}
    for name in names:
        if name not in table.column_names:
            data[name] = [None] * table.num_rows
            continue
        column = table.column(name)
        if pa.types.is_nested(column.type):
            data[name] = [_json_text(v) for v in column.to_pylist()]
        elif pa.types.is_timestamp(column.type):
            data[name] = [None if v is None else v.isoformat() for v in
                          column.to_pylist()]
        else:
            data[name] = column.to_pandas()
    import pandas as pd

    return pd.DataFrame(data, columns=list(names))


class JsonLinesOutput(FileOutput):
    """One JSON object a line; old lines are copied byte for byte."""

    _options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

    def _build(self, target: Path) -> None:
        import pyarrow.parquet as pq

        with open(target, "wb") as handle:
            if self.mode != "replace" and self.path.exists():
                self._copy_existing(handle)
            for part in self._parts:
                for row in pq.read_table(part).to_pylist():
                    handle.write(orjson.dumps(row, default=str, option=self._options)
                                 + b"\n")

    def _copy_existing(self, handle: Any) -> None:
        with open(self.path, "rb") as source:
            for line in source:
                if not line.strip():
                    continue
                if self.mode == "upsert" and self._new_keys:
                    row = orjson.loads(line)
                    values = [row.get(name) for name in self.primary_key]
                    if key_text(values) in self._new_keys:
                        continue
                handle.write(line if line.endswith(b"\n") else line + b"\n")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


# ---------------------------------------------------------------- databases


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _sql_type(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    types = {"i": "INTEGER", "u": "INTEGER", "b": "INTEGER", "f": "REAL"}
    return types.get(kind, "TEXT")


def _sql_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Values SQLite can bind: ISO text for times, JSON text for lists and objects."""
    import pandas as pd

    out = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            out[name] = column.map(lambda v: None if pd.isna(v) else v.isoformat())
        elif column.dtype == object:
            out[name] = column.map(
                lambda v: _json_text(v) if isinstance(v, (list, dict, tuple)) or
                hasattr(v, "tolist") else v)
        else:
            out[name] = column
    shaped = pd.DataFrame(out, columns=frame.columns).astype(object)
    return shaped.where(pd.notna(shaped), None)


class DatabaseOutput(Output):
    """Shared steps of the SQL outputs: one transaction, state in a table."""

    def _state_sql(self) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {_STATE_TABLE} "
                "(key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def recover(self) -> dict[str, Any] | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute(self._state_sql())
            row = db.execute(f"SELECT state FROM {_STATE_TABLE} WHERE key = ?",
                             [self.state_key]).fetchone()
        finally:
            db.close()
        return orjson.loads(row[0]) if row else None

    def begin(self) -> None:
        self._db = self._connect()
        self._begin(self._db)
        self._columns: list[str] | None = None
        if self.mode == "replace":
            self._db.execute(f"DROP TABLE IF EXISTS {_quote(self.table)}")
        else:
            self._columns = self._existing_columns() or None

    def commit(self, state: Mapping[str, Any] | None) -> None:
        try:
            if state is not None:
                self._db.execute(self._state_sql())
                self._db.execute(f"DELETE FROM {_STATE_TABLE} WHERE key = ?",
                                 [self.state_key])
                self._db.execute(f"INSERT INTO {_STATE_TABLE} VALUES (?, ?)",
                                 [self.state_key, orjson.dumps(dict(state),
                                                               default=str).decode()])
            _hook(self.crash, "before_replace")
            self._commit_now(self._db)
        finally:
            self._db.close()
        _hook(self.crash, "before_state")

    def abort(self) -> None:
        db = getattr(self, "_db", None)
        if db is None:
            return
        try:
            db.rollback()
        except Exception:  # the connection may already be closed
            pass
        db.close()

    def _where_key(self, alias: str = "") -> str:
        return " AND ".join(f"{alias}{_quote(n)} = ?" for n in self.primary_key)


class SqliteOutput(DatabaseOutput):
    """A SQLite table; upsert deletes the rows whose key comes again, then inserts."""

    def _connect(self) -> Any:
        import sqlite3

        return sqlite3.connect(self.path, isolation_level=None, timeout=30)

    def _begin(self, db: Any) -> None:
        db.execute("BEGIN IMMEDIATE")

    def _commit_now(self, db: Any) -> None:
        if db.in_transaction:
            db.execute("COMMIT")

    def _existing_columns(self) -> list[str]:
        rows = self._db.execute(f"PRAGMA table_info({_quote(self.table)})").fetchall()
        return [row[1] for row in rows]

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = frame.rename(columns=str)
        self._ensure_columns(frame)
        shaped = _sql_frame(frame)
        if self.mode == "upsert":
            keys = shaped[self.primary_key].itertuples(index=False, name=None)
            self._db.executemany(f"DELETE FROM {_quote(self.table)} WHERE "
                                 f"{self._where_key()}", list(keys))
        names = ", ".join(_quote(c) for c in shaped.columns)
        marks = ", ".join("?" for _ in shaped.columns)
        rows = list(shaped.itertuples(index=False, name=None))
        self._db.executemany(f"INSERT INTO {_quote(self.table)} ({names}) VALUES "
                             f"({marks})", rows)
        self.rows_written += len(shaped)

    def _ensure_columns(self, frame: pd.DataFrame) -> None:
        table = _quote(self.table)
        if self._columns is None:
            columns = ", ".join(f"{_quote(c)} {_sql_type(frame[c].dtype)}"
                                for c in frame.columns)
            self._db.execute(f"CREATE TABLE {table} ({columns})")
            if self.primary_key:
                keys = ", ".join(_quote(k) for k in self.primary_key)
                self._db.execute(f"CREATE INDEX IF NOT EXISTS "
                                 f"{_quote('ix_' + self.table + '_key')} ON {table} "
                                 f"({keys})")
            self._columns = list(frame.columns)
            return
        for name in frame.columns:
            if name not in self._columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(name)} "
                                 f"{_sql_type(frame[name].dtype)}")
                self._columns.append(name)


class DuckDBOutput(DatabaseOutput):
    """A DuckDB table (the ``duckdb`` extra), written from Arrow batches."""

    def _connect(self) -> Any:
        try:
            import duckdb
        except ImportError:
            raise ExtractError("DuckDB output needs the duckdb package: "
                               "pip install 'restconnect[duckdb]'") from None
        return duckdb.connect(str(self.path))

    def _begin(self, db: Any) -> None:
        db.begin()

    def _commit_now(self, db: Any) -> None:
        db.commit()

    def _existing_columns(self) -> list[str]:
        rows = self._db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [self.table]).fetchall()
        return [row[0] for row in rows]

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if frame.empty:
            return
        batch = to_arrow(frame.rename(columns=str))
        batch = conform(batch, pa.schema([
            pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
            for f in batch.schema]))
        self._db.register("restconnect_batch", batch)
        try:
            self._insert(batch)
        finally:
            self._db.unregister("restconnect_batch")
        self.rows_written += batch.num_rows

    def _insert(self, batch: pa.Table) -> None:
        table = _quote(self.table)
        if self._columns is None:
            self._db.execute(f"CREATE TABLE {table} AS SELECT * FROM restconnect_batch "
                             "WHERE false")
            self._columns = list(batch.column_names)
        for name in batch.column_names:
            if name not in self._columns:
                kind = self._db.execute(
                    f"SELECT typeof({_quote(name)}) FROM restconnect_batch LIMIT 1"
                ).fetchone()[0]
                self._db.execute(
                    f"ALTER TABLE {table} ADD COLUMN {_quote(name)} {kind}")
                self._columns.append(name)
        if self.mode == "upsert":
            match = " AND ".join(f"b.{_quote(n)} = {table}.{_quote(n)}"
                                 for n in self.primary_key)
            self._db.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM "
                             f"restconnect_batch b WHERE {match})")
        self._db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM restconnect_batch")


def make_output(spec: OutputSpec, *, incremental: bool, primary_key: Sequence[str],
                endpoint: str, store: StateStore, state_key: str,
                crash: Any = None) -> Output:
    """The writer for an output spec, with the mode its defaults give."""
    fmt = spec.resolved_format()
    mode = spec.mode or ("upsert" if incremental and primary_key
                         else "append" if incremental else "replace")
    classes: dict[str, type[Output]] = {
        "parquet": ParquetOutput, "csv": CsvOutput, "jsonl": JsonLinesOutput,
        "sqlite": SqliteOutput, "duckdb": DuckDBOutput,
    }
    output = classes[fmt](spec=spec, mode=mode, primary_key=list(primary_key),
                          table=spec.table or endpoint, store=store,
                          state_key=state_key, crash=crash)
    output.check()
    return output
