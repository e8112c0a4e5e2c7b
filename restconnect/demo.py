"""``restconnect demo``: fetch from the embedded sandbox and show what came back."""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["DEMO_FETCHES", "run_demo"]

logger = logging.getLogger(__name__)

# (endpoint, parameters, what it shows); the sandbox spec declares each kind.
DEMO_FETCHES: list[tuple[str, dict[str, Any], str]] = [
    ("repos", {}, "Link header pages"),
    ("issues", {"state": "all"}, "Link header, fetched concurrently"),
    ("repo_search", {"q": "data"}, "page numbers with a total"),
    ("issue_search", {"state": "open"}, "offset in a POST body"),
    ("events", {}, "next URL in the body"),
    ("issues_export", {}, "JSON Lines with a header cursor"),
    ("customers", {}, "cursor (starting_after / has_more)"),
    ("payments", {}, "offset and limit with a total"),
    ("invoices_csv", {}, "CSV pages"),
]


def run_demo(rows: int = 5, out: Any = None) -> int:
    """Start the sandbox, fetch one endpoint per pagination style, print a summary."""
    import sys

    import pandas as pd

    from restconnect import sandbox

    write = (out or sys.stdout).write
    with sandbox.start() as box:
        write(f"sandbox API running on {box.url}\n\n")
        conn = box.connect("sandbox", cache=False)
        frames = {}
        summary = []
        for endpoint, params, label in DEMO_FETCHES:
            started = time.perf_counter()
            frame = conn.fetch(endpoint, progress=False, **params)
            seconds = time.perf_counter() - started
            meta = frame.attrs["restconnect"]
            frames[endpoint] = frame
            summary.append({"endpoint": endpoint, "pagination": label,
                            "rows": len(frame), "columns": frame.shape[1],
                            "pages": meta["pages"], "seconds": round(seconds, 3)})
        with pd.option_context("display.width", 120, "display.max_columns", 8,
                               "display.max_colwidth", 28):
            write(pd.DataFrame(summary).to_string(index=False) + "\n\n")
            sample = frames["repos"][["id", "full_name", "owner.login", "stargazers_count",
                                      "created_at"]].head(rows)
            write(f"first {rows} rows of 'repos':\n{sample.to_string(index=False)}\n")
    return 0
