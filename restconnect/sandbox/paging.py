"""Page bodies and pagination signals for each style the sandbox serves.

Bodies are joined from rows that were serialised once, so a page costs a
slice and a ``bytes.join`` rather than a fresh ``json.dumps``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from restconnect.sandbox.data import Collection, parse_time
from restconnect.sandbox.routing import ApiError, Request, Response

__all__ = [
    "array",
    "cursor_page",
    "decode_cursor",
    "encode_cursor",
    "envelope",
    "link_page",
    "ordered",
    "since_param",
    "url_with",
]


def array(bodies: Sequence[bytes]) -> bytes:
    """A JSON array of pre-serialised rows."""
    return b"[" + b",".join(bodies) + b"]"


def envelope(key: str, bodies: Sequence[bytes], **meta: Any) -> bytes:
    """``{"<key>": [rows], **meta}`` with the rows first."""
    head = b'{"' + key.encode() + b'":' + array(bodies)
    if not meta:
        return head + b"}"
    return head + b"," + orjson.dumps(meta)[1:]


def url_with(req: Request, path: str | None = None, **changes: Any) -> str:
    """The request's absolute URL with some query parameters replaced."""
    pairs = [(k, v) for k, v in req.pairs if k not in changes]
    pairs.extend((k, str(v)) for k, v in changes.items() if v is not None)
    query = urlencode(pairs)
    return f"{req.base_url}{path or req.raw_path}" + (f"?{query}" if query else "")


def encode_cursor(value: Any) -> str:
    """An opaque cursor holding ``value``."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(text: str) -> Any:
    """The value inside a cursor from :func:`encode_cursor`.

    Raises:
        ApiError: 400 for text that is not such a cursor.
    """
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise ApiError(400, f"invalid cursor {text!r}", code="invalid_cursor") from None


def since_param(req: Request, name: str = "since") -> float | None:
    """The epoch of an ISO 8601 query parameter, or None when absent."""
    text = req.query.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 timestamp, got {text!r}",
                       code="invalid_parameter") from None


def ordered(collection: Collection, key: tuple[Any, ...],
            keep: Callable[[int], bool], sort_key: Callable[[int], Any],
            descending: bool) -> list[int]:
    """Positions of the kept rows in order, cached per collection version."""
    def build() -> list[int]:
        positions = [pos for pos in range(len(collection.rows)) if keep(pos)]
        positions.sort(key=sort_key, reverse=descending)
        return positions
    return collection.view(key, build)


def link_page(req: Request, collection: Collection, positions: list[int], *,
              max_size: int, default_size: int = 30) -> Response:
    """A GitHub-style page: a JSON array and an RFC 8288 ``Link`` header."""
    per_page = req.int_param("per_page", default_size, low=1, high=max_size)
    page = req.int_param("page", 1, low=1)
    last = max(math.ceil(len(positions) / per_page), 1)
    start = (page - 1) * per_page
    chosen = positions[start:start + per_page]
    links = []
    if page < last:
        links.append(("next", page + 1))
        links.append(("last", last))
    if page > 1:
        links.append(("first", 1))
        links.append(("prev", min(page - 1, last)))
    header = ", ".join(f'<{url_with(req, page=number, per_page=per_page)}>; rel="{rel}"'
                       for rel, number in links)
    headers = {"Link": header} if header else {}
    return Response(body=array(collection.bodies(chosen)), headers=headers,
                    last_modified=collection.last_modified)


def cursor_page(collection: Collection, positions: list[int], after: Any,
                limit: int) -> tuple[list[int], bool]:
    """The rows after the one whose key is ``after`` (Stripe's ``starting_after``).

    Raises:
        ApiError: 400 when ``after`` names no row of the list.
    """
    start = 0
    if after is not None:
        pos = collection.index.get(after)
        try:
            start = positions.index(pos) + 1 if pos is not None else -1
        except ValueError:
            start = -1
        if start < 0:
            raise ApiError(400, f"No such object: {after!r}", code="resource_missing")
    chosen = positions[start:start + limit]
    return chosen, start + limit < len(positions)
