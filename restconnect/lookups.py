"""Enrichment by lookups and parent-child fetches, on the keys of ``join``.

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
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from restconnect.exceptions import (
    HTTPStatusError,
    PaginationError,
    ResponseError,
    SpecError,
    TransportError,
)
from restconnect.join import (
    KEY_COLUMN,
    How,
    check_choice,
    check_columns,
    is_missing,
    merged_attrs,
    normalize_key,
    warn_user,
)

if TYPE_CHECKING:
    import pandas as pd

    from restconnect.connector import Connector

__all__ = ["ERROR_COLUMN", "clear_lookup_cache", "enrich", "fetch_children"]

logger = logging.getLogger(__name__)

ERROR_COLUMN = "_error"
_TEMPLATE = re.compile(r"{([^{}]+)}")
_ROW_ERRORS = (HTTPStatusError, TransportError, ResponseError, PaginationError)
_CACHE_SIZE = 4096


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
    #: ``attrs["restconnect"]`` of the fetch this answer came from, if one ran.
    fetched: Mapping[str, Any] = field(default_factory=dict)


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
    check_columns(frame, [name], where, "input")
    return []


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _scalar(value: Any) -> Any:
    """A plain Python value for a URL: numpy numbers unwrapped, 7.0 as 7."""
    if is_missing(value):
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
    fetched = frame.attrs.get("restconnect", {})
    return _Outcome(frame, pages=int(fetched.get("pages", 0)), requested=True,
                    fetched=fetched)


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
        first = position == 0
        result[_identity(filled)] = _Outcome(
            rows.reset_index(drop=True), pages=outcome.pages if first else 0,
            requested=first, fetched=outcome.fetched if first else {})
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
    check_choice(how, ("left", "inner"), "how", "enrich")
    if batch_size and not key:
        raise SpecError("batch_size needs key: the answer field that holds each "
                        "batched value", source="enrich", path="key")
    lookup = _Lookup(connector, endpoint, dict(params), dict(fixed), batch_size,
                     separator, key, workers or min(connector.concurrency, 8), cache,
                     {"progress": False})
    merged, stats, _ = _combine(df, lookup, how=how, prefix=prefix, errors=errors,
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
             errors: str, error_column: str
             ) -> tuple[pd.DataFrame, dict[str, Any], list[_Outcome]]:
    """Run the lookups of every row of ``df`` and merge the answers onto it.

    Returns the merged frame, the counts, and the outcome of each distinct
    lookup.
    """
    per_row = _param_rows(df, lookup.params, "params")
    distinct = list({_identity(p): p for p in per_row if isinstance(p, dict)}.values())
    outcomes = _run_lookups(lookup, distinct) if distinct else {}
    failed = {k: o for k, o in outcomes.items() if o.error is not None}
    if failed and errors == "raise":
        raise next(iter(failed.values())).exception  # type: ignore[misc]
    row_keys = [repr(_identity(p)) if isinstance(p, dict) else f"\0missing\0{p}"
                for p in per_row]
    answers = _answers_frame(df, lookup, outcomes, per_row, prefix, error_column)
    temp = KEY_COLUMN.format(0)
    merged = df.assign(**{temp: row_keys}).merge(answers, on=temp, how=how,
                                                 suffixes=("", "__rc_new"))
    merged = _merge_errors(merged.drop(columns=[temp]), error_column)
    stats = _stats(lookup, distinct, outcomes, per_row)
    _warn_if_incomplete(lookup, stats, error_column)
    return merged.reset_index(drop=True), stats, list(outcomes.values())


def _warn_if_incomplete(lookup: _Lookup, stats: Mapping[str, Any],
                        error_column: str) -> None:
    parts = []
    if stats["failed"]:
        parts.append(f"{stats['failed']} of {_count(stats['lookups'], 'lookup')} "
                     "failed")
    if stats["missing"]:
        parts.append(f"{_count(stats['missing'], 'row')} had no key")
    if parts:
        warn_user("%s.%s: %s; see the %r column", lookup.connector.name,
                  lookup.endpoint, " and ".join(parts), error_column)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _answers_frame(df: pd.DataFrame, lookup: _Lookup,
                   outcomes: Mapping[tuple[Any, ...], _Outcome],
                   per_row: list[dict[str, Any] | str], prefix: str | None,
                   error_column: str) -> pd.DataFrame:
    """Every answer record and every error, keyed like the rows that asked."""
    import pandas as pd

    temp = KEY_COLUMN.format(0)
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
    keep = {KEY_COLUMN.format(0), error_column}
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
    from restconnect.connector import merge_params

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    spec = connector.endpoint(endpoint)
    if spec.parent is None:
        raise SpecError(f"endpoint {endpoint!r} declares no parent",
                        source=connector.name, path=f"endpoints.{endpoint}.parent")
    parent = spec.parent
    params = merge_params("fetch_children", params, more_params)
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
    children, stats, outcomes = _combine(keys, lookup, how="inner", prefix=None,
                                         errors="record", error_column=ERROR_COLUMN)
    children = _finish_children(children, connector, endpoint, parents, stats, limit,
                                {**for_parent, **params})
    children.attrs["restconnect"].update(
        _fetch_summary(parents, [o.fetched for o in outcomes], started))
    return children


def _fetch_summary(parents: pd.DataFrame, children: list[Mapping[str, Any]],
                   started: str) -> dict[str, Any]:
    """The keys a plain fetch's attrs have, for the parent fetch and its children."""
    kinds = sorted({str(c["pagination"]) for c in children if c.get("pagination")})
    from_cache = sum(int(meta.get("pages_from_cache") or 0)
                     for meta in (parents.attrs.get("restconnect", {}), *children))
    return {"pagination": "+".join(kinds) or None, "pages_from_cache": from_cache,
            "fetched_at": started}


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
