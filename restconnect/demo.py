"""``restconnect demo``: fetch from the embedded sandbox and show what came back."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["AUTH_TOUR", "DEMO_FETCHES", "auth_tour_specs", "run_demo"]

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


# (method, the spec's auth: block, credential field -> sandbox credential name)
AUTH_TOUR: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("bearer", {"method": "bearer"}, {"token": "token"}),
    ("basic", {"method": "basic"}, {"username": "username", "password": "password"}),
    ("api_key", {"method": "api_key", "location": "header", "param": "X-API-Key"},
     {"api_key": "api_key"}),
    ("api_key in query", {"method": "api_key", "location": "query", "param": "api_key"},
     {"api_key": "api_key"}),
    ("oauth2 client credentials",
     {"method": "oauth2", "grant": "client_credentials", "token_url": "/oauth/token",
      "scopes": ["code:read"]},
     {"client_id": "client_id", "client_secret": "client_secret"}),
    ("jwt login", {"method": "jwt", "mode": "login", "login_url": "/auth/login"},
     {"username": "username", "password": "password"}),
    ("hmac signing", {"method": "hmac"},
     {"key_id": "hmac_key_id", "secret": "hmac_secret"}),
]


def auth_tour_specs(box: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    """One small sandbox spec per auth method, with the credentials it needs."""
    from restconnect.spec import ConnectorSpec

    specs = []
    for index, (label, auth, fields) in enumerate(AUTH_TOUR):
        spec = ConnectorSpec.model_validate({
            "name": f"sandbox_auth_{index}", "base_url": box.url, "auth": auth,
            "check": {"path": "/code/user", "identity": "login"},
            "endpoints": {"me": {"path": "/code/user", "records": "@"}}})
        spec.source = f"auth tour: {label}"
        credentials = {field: box.credentials[name] for field, name in fields.items()}
        specs.append((label, spec, credentials))
    return specs


def _auth_table(box: Any) -> Any:
    import pandas as pd

    from restconnect.connector import connect

    rows = []
    for label, spec, credentials in auth_tour_specs(box):
        started = time.perf_counter()
        with connect(spec, cache=False, **credentials) as conn:
            identity = conn.check()["identity"]
        rows.append({"auth method": label, "signed in as": identity,
                     "seconds": round(time.perf_counter() - started, 3)})
    return pd.DataFrame(rows)


@contextlib.contextmanager
def _throwaway_home() -> Iterator[None]:
    """Keep the demo's tokens and state out of the user's own restconnect folder."""
    previous = os.environ.get("RESTCONNECT_HOME")
    with tempfile.TemporaryDirectory(prefix="restconnect-demo-") as home:
        os.environ["RESTCONNECT_HOME"] = home
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("RESTCONNECT_HOME", None)
            else:
                os.environ["RESTCONNECT_HOME"] = previous


def run_demo(rows: int = 5, out: Any = None) -> int:
    """Start the sandbox, fetch one endpoint per pagination style, print a summary."""
    import sys

    import pandas as pd

    from restconnect import sandbox

    write = (out or sys.stdout).write
    with _throwaway_home(), sandbox.start() as box:
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
            sample = frames["repos"][["id", "full_name", "owner.login",
                                      "stargazers_count",
                                      "created_at"]].head(rows)
            write(f"first {rows} rows of 'repos':\n{sample.to_string(index=False)}\n\n")
            write("each auth method the sandbox checks, signing in for real:\n")
            write(_auth_table(box).to_string(index=False) + "\n")
    return 0
