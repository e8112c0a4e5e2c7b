"""SQL over API sources, run by DuckDB (the optional ``duckdb`` extra).

>>> restconnect.sql(
...     'select r.name, c.email from code.repos r '
...     'join pay.customers c on c.code_login = r."owner.login"',
...     sources={"code": code, "pay": pay})                  # doctest: +SKIP

Each ``<source>.<endpoint>`` the query names is fetched once (with the
parameters given for it in ``params``) and registered as a DuckDB view of
that name; a source may also be a ready DataFrame, used as a table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

from restconnect.exceptions import SpecError

if TYPE_CHECKING:
    import pandas as pd

    from restconnect.connector import Connector

__all__ = ["INSTALL_HINT", "sql", "tables_in"]

logger = logging.getLogger(__name__)

INSTALL_HINT = ("restconnect.sql needs DuckDB, an optional extra: "
                "pip install 'restconnect[duckdb]' (or pip install duckdb)")

Source = Union["Connector", str, "pd.DataFrame"]
_STRINGS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.S)


def sql(query: str, sources: Mapping[str, Source], *,
        params: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Run a SQL query over the endpoints it names.

    Args:
        query: DuckDB SQL. ``code.repos`` is endpoint ``repos`` of source
            ``code``; flattened columns need double quotes (``r."owner.login"``).
        sources: name -> a Connector, a connector name or spec path (opened
            with credentials from the environment), or a DataFrame (a table
            called by that name).
        params: ``{"code.repos": {"sort": "stars", "limit": 50}}``: parameters
            and fetch options per table.

    Returns:
        The query's result; ``attrs["restconnect"]`` lists the fetched sources.

    Raises:
        ImportError: DuckDB is not installed (the message says how to get it).
        SpecError: the query names no source, or a table is not an endpoint.
    """
    duckdb = _duckdb()
    opened, frames = _open(sources), {}
    try:
        for source, endpoint in tables_in(query, [n for n, s in opened.items()
                                                  if not _is_frame(s)]):
            options = dict((params or {}).get(f"{source}.{endpoint}", {}))
            frames[(source, endpoint)] = opened[source].fetch(endpoint, **options)
    finally:
        for name, value in opened.items():
            if isinstance(sources[name], str):
                value.close()
    tables = {name: s for name, s in opened.items() if _is_frame(s)}
    if not frames and not tables:
        raise SpecError(f"the query names no table of the sources "
                        f"{', '.join(sources) or '(none given)'}; write "
                        "<source>.<endpoint>, such as code.repos", source="sql")
    return _run(duckdb, query, frames, tables)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return duckdb


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "attrs")


def _open(sources: Mapping[str, Source]) -> dict[str, Any]:
    from restconnect.connector import connect

    opened: dict[str, Any] = {}
    for name, value in sources.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SpecError(f"source name {name!r} must be a plain SQL identifier",
                            source="sql", path=f"sources.{name}")
        opened[name] = connect(value) if isinstance(value, str) else value
    return opened


def tables_in(query: str, schemas: list[str]) -> list[tuple[str, str]]:
    """The ``(source, endpoint)`` pairs a query names, outside strings and comments.

    Example:
        >>> tables_in("select * from code.repos r join pay.customers c on 1=1",
        ...           ["code", "pay"])
        [('code', 'repos'), ('pay', 'customers')]
    """
    if not schemas:
        return []
    text = _STRINGS.sub(" ", query)
    names = "|".join(re.escape(s) for s in sorted(schemas, key=len, reverse=True))
    # source . endpoint, either part maybe quoted, not inside a longer name and
    # not a function call such as code.fn(1).
    pattern = re.compile(rf'(?<![\w."])"?({names})"?\s*\.\s*'
                         rf'"?([A-Za-z_]\w*)\b"?(?!\s*\()')
    found: list[tuple[str, str]] = []
    for match in pattern.finditer(text):
        pair = (match.group(1), match.group(2))
        if pair not in found:
            found.append(pair)
    return found


def _run(duckdb: Any, query: str, frames: Mapping[tuple[str, str], pd.DataFrame],
         tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    from restconnect.join import merged_attrs

    con = duckdb.connect()
    try:
        for (source, endpoint), frame in frames.items():
            hidden = f"__rc_{source}__{endpoint}"
            con.register(hidden, frame)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{source}"')
            con.execute(f'CREATE VIEW "{source}"."{endpoint}" AS '
                        f'SELECT * FROM "{hidden}"')
        for name, frame in tables.items():
            con.register(name, frame)
        logger.debug("sql over %s",
                     ", ".join(f"{s}.{e}" for s, e in frames) or "frames only")
        result = con.execute(query).df()
    finally:
        con.close()
    inputs = list(frames.values()) + list(tables.values())
    result.attrs["restconnect"] = merged_attrs(inputs, {"sql": query}, rows=len(result))
    return result
