"""Incremental loading: the saved cursor of each endpoint and how it is used.

An endpoint's ``incremental`` spec names the record field that says what
changed (``updated_at``) and how the saved value goes back to the API:

- ``param``: as a query parameter (``since=<cursor>``), the API filters;
- ``stop``: the API sorts newest first (``sort`` adds the parameters) and
  the fetch stops at the first page that reaches older records;
- ``filter``: a filter expression built from a template
  (``q: "updated:>={cursor}"``).

Whatever the mode, rows are filtered again here: a row is new when its field
is after the cursor, or equal to it and its primary key was not seen at that
exact value before (the saved *boundary* keys), so an API whose ``since`` is
inclusive does not repeat rows. State is kept per connector, endpoint and
parameters in ``$RESTCONNECT_HOME/state`` (or the platform's user state
folder), written atomically, and committed only when the caller says the
output is safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from restconnect.cache import private_dir, restconnect_home
from restconnect.exceptions import SpecError
from restconnect.redact import redact_params

if TYPE_CHECKING:
    import pandas as pd

    from restconnect.connector import Connector
    from restconnect.spec import EndpointSpec, IncrementalSpec

__all__ = [
    "Deduper",
    "IncrementalPlan",
    "StateStore",
    "commit",
    "fetch_incremental",
    "record_key",
    "state_key",
    "state_root",
]

logger = logging.getLogger(__name__)


def state_root() -> Path:
    """The folder holding incremental state."""
    home = restconnect_home()
    if home is not None:
        return home / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir("restconnect", appauthor=False))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StateStore:
    """Saved cursors, one JSON file each.

    Example:
        >>> store = StateStore(Path("state"))                    # doctest: +SKIP
        >>> key = store.key("github", "issues", {"repo": "x"})   # doctest: +SKIP
        >>> store.load(key)                                      # doctest: +SKIP
    """

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else state_root()

    def __repr__(self) -> str:
        return f"<StateStore {self.root}>"

    @staticmethod
    def key(connector: str, endpoint: str, params: Mapping[str, Any],
            scope: str = "") -> str:
        """A file-safe key of a connector, endpoint, parameters and scope."""
        material = orjson.dumps([connector, endpoint, dict(params), scope],
                                option=orjson.OPT_SORT_KEYS, default=str)
        digest = hashlib.sha256(material).hexdigest()[:24]
        return f"{connector}/{endpoint}-{digest}"

    def path(self, key: str, suffix: str = ".json") -> Path:
        return self.root / f"{key}{suffix}"

    def load(self, key: str) -> dict[str, Any] | None:
        """The committed state, or None."""
        return self._read(self.path(key))

    def save(self, key: str, state: Mapping[str, Any]) -> None:
        """Commit a state atomically."""
        self._ensure_folder(key)
        write_atomic(self.path(key), orjson.dumps(dict(state), default=str))
        logger.debug("state %s committed", key)

    def delete(self, key: str) -> None:
        for suffix in (".json", ".pending.json"):
            self.path(key, suffix).unlink(missing_ok=True)

    # Two-phase commit for outputs that cannot hold the state themselves.

    def load_pending(self, key: str) -> dict[str, Any] | None:
        return self._read(self.path(key, ".pending.json"))

    def save_pending(self, key: str, state: Mapping[str, Any]) -> None:
        self._ensure_folder(key)
        write_atomic(self.path(key, ".pending.json"),
                     orjson.dumps(dict(state), default=str))

    def commit_pending(self, key: str) -> None:
        """Make the pending state the committed one (an atomic rename)."""
        os.replace(self.path(key, ".pending.json"), self.path(key))
        _fsync_dir(self.path(key).parent)

    def discard_pending(self, key: str) -> None:
        self.path(key, ".pending.json").unlink(missing_ok=True)

    def _ensure_folder(self, key: str) -> None:
        private_dir(self.root)
        private_dir(self.path(key).parent)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            return orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            raise SpecError("the saved state is not JSON; delete it to start over",
                            source=str(path)) from None


# ---------------------------------------------------------------- cursors


def get_path(record: Any, path: str) -> Any:
    """The value at a dotted path of a record, or None."""
    value = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def order_key(value: Any) -> tuple[int, Any]:
    """A sort key that orders timestamps by time and numbers by value."""
    if isinstance(value, bool) or value is None:
        return (2, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return (0, moment.timestamp())
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return (1, text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (0, moment.timestamp())


def record_key(record: Any, fields: Sequence[str]) -> str | None:
    """The canonical text of a record's primary key, or None when it has none."""
    if not fields:
        return None
    values = [get_path(record, name) for name in fields]
    if all(value is None for value in values):
        return None
    return orjson.dumps(values[0] if len(values) == 1 else values, default=str).decode()


class IncrementalPlan:
    """One incremental run of an endpoint: parameters out, rows and cursor in.

    Args:
        spec: the endpoint's ``incremental`` spec.
        primary_key: the endpoint's primary key fields.
        state: the committed state, or None on the first run.
        where: ``connector.endpoint``, for messages.
    """

    def __init__(self, spec: IncrementalSpec, primary_key: Sequence[str],
                 state: Mapping[str, Any] | None, where: str = ""):
        self.spec = spec
        self.primary_key = list(primary_key)
        self.where = where
        state = state or {}
        self.cursor = state.get("cursor", spec.initial)
        self.boundary = set(state.get("boundary") or [])
        self._cursor_key = order_key(self.cursor) if self.cursor is not None else None
        self._best: Any = self.cursor
        self._best_key = self._cursor_key
        self._best_boundary = set(self.boundary)
        self.reached_older = False
        self.rows = 0

    def params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The request parameters for this run."""
        merged = {**self.spec.sort, **params}
        if self.cursor is None:
            return merged
        if self.spec.mode == "param" and self.spec.param:
            merged[self.spec.param] = self.cursor
        elif self.spec.mode == "filter" and self.spec.filter and self.spec.filter_param:
            try:
                merged[self.spec.filter_param] = self.spec.filter.format_map(
                    {**params, "cursor": self.cursor})
            except KeyError as exc:
                raise SpecError(f"the filter template names {exc.args[0]!r}, which is "
                                "neither 'cursor' nor a parameter of this fetch",
                                source=self.where, path="incremental.filter") from None
        return merged

    def select(self, records: Iterable[Any]) -> list[Any]:
        """The new or changed records of a page, and note the newest value."""
        kept = []
        for record in records:
            value = get_path(record, self.spec.field)
            if value is None:
                continue
            key = order_key(value)
            if self._cursor_key is not None:
                if key < self._cursor_key:
                    self.reached_older = True
                    continue
                if key == self._cursor_key and record_key(
                        record, self.primary_key) in self.boundary:
                    continue
            kept.append(record)
            self._observe(record, value, key)
        self.rows += len(kept)
        return kept

    def _observe(self, record: Any, value: Any, key: tuple[int, Any]) -> None:
        identity = record_key(record, self.primary_key)
        if self._best_key is None or key > self._best_key:
            self._best, self._best_key = value, key
            self._best_boundary = set()
        if key == self._best_key and identity is not None:
            self._best_boundary.add(identity)

    @property
    def should_stop(self) -> bool:
        """In ``stop`` mode, whether the pages have reached already-seen records."""
        return self.spec.mode == "stop" and self.reached_older

    def next_state(self) -> dict[str, Any]:
        """The state to commit after this run's rows are safely written."""
        return {"cursor": self._best, "boundary": sorted(self._best_boundary),
                "field": self.spec.field,
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


class Deduper:
    """Rows by primary key: a row seen twice (on two pages) is kept once, newest wins.

    Rows without a primary key are all kept.
    """

    def __init__(self, primary_key: Sequence[str], field: str | None = None):
        self.primary_key = list(primary_key)
        self.field = field
        self._rows: dict[str, Any] = {}
        self._anonymous: list[Any] = []
        self.duplicates = 0

    def add(self, records: Iterable[Any]) -> None:
        for record in records:
            key = record_key(record, self.primary_key)
            if key is None:
                self._anonymous.append(record)
                continue
            held = self._rows.get(key)
            if held is not None:
                self.duplicates += 1
                if self.field and order_key(get_path(held, self.field)) > order_key(
                        get_path(record, self.field)):
                    continue
            self._rows[key] = record

    def records(self) -> list[Any]:
        return [*self._rows.values(), *self._anonymous]


# ---------------------------------------------------------------- fetch


def incremental_spec(connector: Connector, endpoint: str) -> EndpointSpec:
    """The endpoint spec, checked to declare ``incremental``."""
    spec = connector.endpoint(endpoint)
    if spec.incremental is None:
        raise SpecError(f"endpoint {endpoint!r} declares no 'incremental' cursor; add "
                        "incremental: {field: updated_at, param: since} to its spec",
                        source=connector.name, path=f"endpoints.{endpoint}.incremental")
    return spec


def state_key(store: StateStore, connector: Connector, endpoint: str,
              params: Mapping[str, Any], scope: str = "") -> str:
    """The state key of an incremental fetch: the page size does not choose rows.

    Runs that differ only in the page size (``per_page=100``) share one state;
    otherwise the second would start from nothing and fetch the history again.
    """
    from restconnect.pagination import make_paginator

    size = make_paginator(connector.pagination(endpoint)).size_param
    chosen = {name: value for name, value in params.items() if name != size}
    return store.key(connector.name, endpoint, chosen, scope=scope)


def fetch_incremental(connector: Connector, endpoint: str, *, commit: bool = True,
                      limit: int | None = None, max_pages: int | None = None,
                      explode: str | None = None, cache: Any = None,
                      concurrency: int | None = None, store: StateStore | None = None,
                      params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``fetch(..., incremental=True)``: only rows new or changed since the saved state.

    The new state is committed when the frame is returned, unless
    ``commit=False``; then :func:`commit` saves it once the frame is written.
    ``params`` are the API parameters, kept apart from the keywords above so
    that an API's own ``limit`` or ``cache`` reaches the API.
    """
    from restconnect.frames import FrameBuilder, FrameOptions

    params = dict(params or {})
    spec = incremental_spec(connector, endpoint)
    store = store or StateStore()
    key = state_key(store, connector, endpoint, params)
    plan = IncrementalPlan(spec.incremental, spec.primary_keys, store.load(key),
                           f"{connector.name}.{endpoint}")
    rows = Deduper(spec.primary_keys, spec.incremental.field)
    # A fresh cache entry could hide a change made since it was stored, so an
    # incremental fetch revalidates every page unless told otherwise.
    pages = connector.iter_pages(endpoint, limit=limit, max_pages=max_pages,
                                 cache=0 if cache is None else cache,
                                 concurrency=concurrency, params=plan.params(params))
    try:
        for page in pages:
            rows.add(plan.select(page.records))
            if plan.should_stop:
                break
    finally:
        pages.close()
    builder = FrameBuilder(FrameOptions(dtypes=spec.dtypes, datetimes=spec.datetimes,
                                        columns=spec.columns, explode=explode,
                                        source=f"{connector.name}.{endpoint}"))
    builder.add_page(rows.records())
    frame = builder.finish()
    result = connector.last_result
    attrs = result.as_dict() if result is not None else {}
    attrs["params"] = redact_params(params)
    attrs["records"] = len(frame)
    new_state = plan.next_state()
    attrs["incremental"] = {"state_key": key, "previous_cursor": plan.cursor,
                            "state": new_state, "duplicates": rows.duplicates,
                            "committed": False}
    frame.attrs["restconnect"] = attrs
    if commit:
        _commit(frame, store)
    return frame


def commit(frame: pd.DataFrame, store: StateStore | None = None) -> None:
    """Save the state an incremental ``fetch(..., commit=False)`` left in ``frame``.

    Raises:
        ValueError: the frame does not come from an incremental fetch.
    """
    _commit(frame, store or StateStore())


def _commit(frame: pd.DataFrame, store: StateStore) -> None:
    info = frame.attrs.get("restconnect", {}).get("incremental")
    if not info:
        raise ValueError("this frame does not come from fetch(..., incremental=True)")
    if frame.attrs["restconnect"].get("truncated"):
        logger.warning("%s: the fetch stopped early (%s); the incremental state is "
                       "not advanced", info["state_key"],
                       frame.attrs["restconnect"].get("truncated_reason"))
        return
    store.save(info["state_key"], info["state"])
    info["committed"] = True
