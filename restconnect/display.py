"""Rich display for notebooks: connectors and fetched frames.

``Connector._repr_html_`` comes from :func:`connector_html`. Frames keep what
a fetch did in ``df.attrs["restconnect"]``; :func:`show` renders it above the
first rows:

>>> import pandas as pd
>>> df = pd.DataFrame({"id": [1, 2]})
>>> df.attrs["restconnect"] = {"connector": "demo", "endpoint": "items",
...                            "pages": 1, "records": 2}
>>> print(describe(df))
demo.items: 2 records in 1 page
"""

from __future__ import annotations

import html
from typing import Any

from restconnect.redact import redact_text, redact_url

__all__ = [
    "FrameView",
    "connector_html",
    "describe",
    "metadata",
    "metadata_html",
    "show",
]

_MAX_DESCRIPTION = 120


def metadata(frame: Any) -> dict[str, Any]:
    """The fetch metadata a frame carries ({} when it has none)."""
    attrs = getattr(frame, "attrs", None) or {}
    return dict(attrs.get("restconnect") or {})


def describe(frame: Any) -> str:
    """One line: connector.endpoint, records, pages, and why it stopped early."""
    meta = metadata(frame)
    if not meta:
        return "no restconnect metadata on this frame"
    pages = meta.get("pages", 0)
    text = (
        f"{meta.get('connector')}.{meta.get('endpoint')}: {meta.get('records', 0)} "
        f"records in {pages} page{'' if pages == 1 else 's'}"
    )
    if meta.get("pages_from_cache"):
        text += f" ({meta['pages_from_cache']} from the cache)"
    if meta.get("truncated"):
        text += f"; stopped early ({meta.get('truncated_reason') or 'limit'})"
    return text


def metadata_html(frame: Any) -> str:
    """The metadata as a small HTML table."""
    meta = metadata(frame)
    if not meta:
        return "<p>no restconnect metadata on this frame</p>"
    params = meta.get("params") or {}
    rows = [
        ("fetched", describe(frame)),
        ("parameters", ", ".join(f"{k}={v}" for k, v in params.items()) or "none"),
        ("pagination", meta.get("pagination") or "none"),
        ("fetched at", meta.get("fetched_at") or ""),
    ]
    body = "".join(
        f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
        f"{html.escape(redact_text(str(v)))}</td></tr>"
        for k, v in rows
    )
    return f"<table class='restconnect-meta'>{body}</table>"


class FrameView:
    """A frame with its fetch metadata above the first rows."""

    def __init__(self, frame: Any, rows: int = 10):
        self.frame = frame
        self.rows = rows

    def _repr_html_(self) -> str:
        return metadata_html(self.frame) + self.frame.head(self.rows).to_html()

    def __repr__(self) -> str:
        return f"{describe(self.frame)}\n{self.frame.head(self.rows)!r}"


def show(frame: Any, rows: int = 10) -> FrameView:
    """Display a fetched frame with its metadata (the last expression of a cell)."""
    return FrameView(frame, rows)


def connector_html(connector: Any) -> str:
    """Name, base URL, auth and status, and the endpoints with required parameters."""
    from restconnect.explain import connection_status

    spec = connector.spec
    methods = "+".join(e.method for e in spec.auth_entries) or "none"
    head = (
        f"<b>{html.escape(spec.title or connector.name)}</b> "
        f"(<code>{html.escape(connector.name)}</code>)<br>"
        f"base URL: <code>{html.escape(redact_url(connector.base_url))}</code><br>"
        f"auth: {html.escape(methods)}, {html.escape(connection_status(connector))}"
    )
    rows = "".join(
        _endpoint_row(name, endpoint) for name, endpoint in spec.endpoints.items()
    )
    table = (
        "<table><thead><tr><th>endpoint</th><th>method</th><th>path</th>"
        "<th>required</th><th>description</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return f"<div class='restconnect-connector'>{head}{table}</div>"


def _endpoint_row(name: str, endpoint: Any) -> str:
    required = list(endpoint.path_params) + [
        r for r in endpoint.required if r not in endpoint.path_params
    ]
    description = " ".join((endpoint.description or "").split())
    if len(description) > _MAX_DESCRIPTION:
        description = description[: _MAX_DESCRIPTION - 1] + "…"
    cells = (
        name,
        endpoint.method,
        endpoint.path,
        ", ".join(required) or "-",
        description,
    )
    return (
        "<tr>"
        + "".join(
            f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in cells
        )
        + "</tr>"
    )
