"""From response bytes to records.

Bodies are decoded with orjson (JSON), line by line (JSON Lines) or with the
csv module; records are found with a dotted path or a JMESPath expression.
Decoding is on every page's path, so it pauses the garbage collector.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson

from restconnect.exceptions import ResponseError

__all__ = ["decode_body", "extract_records", "parse_json", "paused_gc", "search_path"]

logger = logging.getLogger(__name__)

# Keys under which list endpoints commonly wrap their records.
_WRAPPER_KEYS = ("items", "data", "results", "records", "entries", "values", "list")


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Any:
    import jmespath

    return jmespath.compile(expression)


def search_path(body: Any, expression: str | None) -> Any:
    """The value at a dotted path or JMESPath expression, or None."""
    if not expression or body is None:
        return None
    if expression in ("@", "$", "."):
        return body
    if isinstance(body, dict) and "." not in expression and "[" not in expression:
        return body.get(expression.strip('"'))
    return _compiled(expression).search(body)


def decode_body(content: bytes, content_type: str, *, fmt: str = "auto",
                where: str = "") -> Any:
    """Decode a response body.

    Args:
        content: the raw bytes.
        content_type: the response's ``Content-Type``.
        fmt: ``auto``, ``json``, ``jsonl`` or ``csv``.
        where: ``connector.endpoint`` for error messages.

    Raises:
        ResponseError: the body is not what the endpoint should return.
    """
    if not content or not content.strip():
        return None
    kind = fmt if fmt != "auto" else _kind_from_type(content_type, content)
    if kind == "jsonl":
        return _decode_json_lines(content, where)
    if kind == "csv":
        text = content.decode("utf-8-sig", errors="replace")
        return list(csv.DictReader(io.StringIO(text)))
    try:
        return parse_json(content)
    except ValueError as exc:
        message = _not_json_message(content, content_type, where, exc)
        raise ResponseError(message) from None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block, if it is running.

    A fetch allocates and frees many containers that never form cycles, and
    every allocation burst triggers collection passes over them; nested uses
    and a collector the caller already paused are left alone.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def parse_json(content: bytes) -> Any:
    """JSON bytes to Python, with the garbage collector paused.

    A page allocates thousands of dicts and lists that all stay alive, so a
    collection pass during parsing only walks them in vain (about a third of
    the parse time on GitHub-sized pages). orjson refuses integers beyond 64
    bits, which JSON allows; such a body goes through the standard library.

    Raises:
        ValueError: the bytes are not JSON.
    """
    with paused_gc():
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            return json.loads(content)


def _kind_from_type(content_type: str, content: bytes) -> str:
    lowered = content_type.lower()
    if "ndjson" in lowered or "jsonl" in lowered or "json-seq" in lowered:
        return "jsonl"
    if "csv" in lowered:
        return "csv"
    return "json"


def _decode_json_lines(content: bytes, where: str) -> list[Any]:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_json(line))
        except ValueError as exc:
            raise ResponseError(
                f"{where}: line {number} of the JSON Lines body is not JSON: {exc}"
            ) from None
    return rows


def _not_json_message(content: bytes, content_type: str, where: str,
                      error: Exception) -> str:
    start = content[:200].decode("utf-8", errors="replace").strip()
    prefix = f"{where}: " if where else ""
    if start.lower().startswith(("<!doctype html", "<html")) or "html" in content_type:
        return (f"{prefix}the API returned an HTML page instead of JSON "
                f"(Content-Type {content_type or 'not set'}); the base URL or the "
                f"path may be wrong, or a login page answered: {start[:120]!r}")
    return f"{prefix}the response body is not valid JSON ({error}): {start[:120]!r}"


def extract_records(body: Any, path: str | None, *, where: str = "") -> list[Any]:
    """The records in a decoded body.

    With a ``path``, the value there; without one, a list body is the records,
    a common wrapper key (``items``, ``data``, ``results``...) holding a list
    is used, and any other object is one record.
    """
    if body is None:
        return []
    if path:
        found = search_path(body, path)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(body.get(key), list):
                logger.debug("%s: records found under %r", where, key)
                return body[key]
        return [body]
    return [{"value": body}]
