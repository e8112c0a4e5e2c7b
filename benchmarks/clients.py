"""The clients the benchmark compares, each run in a fresh process.

``python -m benchmarks.clients CLIENT --base-url URL --kind link ...`` fetches
every page, builds the flattened DataFrame and prints one JSON line: the wall
time from the first request to the finished frame, the frame's shape, and the
process's resident memory before the first request and at its peak, and the
CPU time the process spent (all threads; imports excluded).

Clients:

- ``hand``: what people write by hand: ``requests.Session``, follow the
  pagination, ``resp.json()``, ``pandas.json_normalize`` at the end.
- ``tuned``: the same loop with orjson, garbage collection paused, and the
  frame built through one Arrow table.
- ``dlt``: dlt's ``RESTClient`` with its paginators, then ``json_normalize``.
- ``restconnect``: ``connect(spec).fetch(endpoint)`` with a spec of ``specs/``.
- ``extract``: ``restconnect extract SPEC ENDPOINT -o out.parquet``.
- ``socket``: raw keep-alive HTTP reads with no parsing at all, to show what
  the server and the loopback deliver.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"
PAGE_SIZE = 100

# endpoint name in the benchmark specs, records key in the body, for each kind
KINDS = {
    "link": ("link_repos", None),
    "cursor": ("cursor_repos", "data"),
    "offset": ("offset_repos", "items"),
    "page": ("page_repos", "items"),
}


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------- request loops


def _pages_requests(session: Any, base: str, kind: str,
                    decode: Callable[[Any], Any]) -> Iterator[list[dict[str, Any]]]:
    """Yield each page's records, following the pagination of ``kind``."""
    url = f"{base}/{kind}/repos"
    key = KINDS[kind][1]
    if kind == "link":
        params: dict[str, Any] | None = {"per_page": PAGE_SIZE}
        while url:
            resp = session.get(url, params=params)
            resp.raise_for_status()
            yield decode(resp)
            url = resp.links.get("next", {}).get("url")
            params = None
        return
    state: dict[str, Any] = {"cursor": None, "offset": 0, "page": 1}
    while True:
        resp = session.get(url, params=_params(kind, state))
        resp.raise_for_status()
        body = decode(resp)
        yield body[key]
        if not _advance(kind, state, body):
            return


def _params(kind: str, state: dict[str, Any]) -> dict[str, Any]:
    if kind == "cursor":
        params = {"limit": PAGE_SIZE}
        if state["cursor"]:
            params["cursor"] = state["cursor"]
        return params
    if kind == "offset":
        return {"limit": PAGE_SIZE, "offset": state["offset"]}
    return {"per_page": PAGE_SIZE, "page": state["page"]}


def _advance(kind: str, state: dict[str, Any], body: dict[str, Any]) -> bool:
    if kind == "cursor":
        state["cursor"] = body.get("next_cursor")
        return bool(body.get("has_more") and state["cursor"])
    if kind == "offset":
        state["offset"] += PAGE_SIZE
        return state["offset"] < body["total"]
    state["page"] += 1
    return state["page"] <= body["total_pages"]


def _session(token: str) -> Any:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


# ----------------------------------------------------------------- clients


def client_hand(args: argparse.Namespace) -> tuple[Any, float]:
    """requests + resp.json() + json_normalize."""
    import pandas as pd

    session = _session(args.token)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    for page in _pages_requests(session, args.base_url, args.kind, lambda r: r.json()):
        records.extend(page)
    frame = pd.json_normalize(records)
    return frame, time.perf_counter() - start


def client_tuned(args: argparse.Namespace) -> tuple[Any, float]:
    """orjson, GC paused, one Arrow table flattened and converted to pandas."""
    import orjson
    import pyarrow as pa

    session = _session(args.token)
    start = time.perf_counter()
    gc.disable()
    records: list[dict[str, Any]] = []
    for page in _pages_requests(session, args.base_url, args.kind,
                                lambda r: orjson.loads(r.content)):
        records.extend(page)
    table = pa.Table.from_pylist(records)
    del records
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    frame = table.to_pandas()
    gc.enable()
    return frame, time.perf_counter() - start


def client_dlt(args: argparse.Namespace) -> tuple[Any, float]:
    """dlt's RESTClient and paginators, then json_normalize."""
    import pandas as pd
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

    client = RESTClient(base_url=args.base_url, auth=BearerTokenAuth(args.token))
    paginator, selector, params = _dlt_paginator(args.kind)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    for page in client.paginate(f"/{args.kind}/repos", params=params,
                                paginator=paginator, data_selector=selector):
        records.extend(page)
    frame = pd.json_normalize(records)
    return frame, time.perf_counter() - start


def _dlt_paginator(kind: str) -> tuple[Any, str | None, dict[str, Any]]:
    from dlt.sources.helpers.rest_client import paginators as p

    if kind == "link":
        return p.HeaderLinkPaginator(), None, {"per_page": PAGE_SIZE}
    if kind == "cursor":
        return (p.JSONResponseCursorPaginator(cursor_path="next_cursor",
                                              cursor_param="cursor"),
                "data", {"limit": PAGE_SIZE})
    if kind == "offset":
        return (p.OffsetPaginator(limit=PAGE_SIZE, total_path="total"),
                "items", {})
    return (p.PageNumberPaginator(base_page=1, total_path="total_pages"),
            "items", {"per_page": PAGE_SIZE})


def _restconnect_env(args: argparse.Namespace) -> None:
    """The benchmark specs read their base URL and credentials from the environment."""
    os.environ["RESTCONNECT_BENCH_URL"] = args.base_url
    os.environ["RESTCONNECT_BENCH_TOKEN"] = args.token
    os.environ.setdefault("RESTCONNECT_BENCH_CLIENT_ID", "bench-client")
    os.environ.setdefault("RESTCONNECT_BENCH_CLIENT_SECRET", "bench-secret")
    os.environ.setdefault("RESTCONNECT_BENCH_TOKEN_URL",
                          args.base_url.rsplit("/", 1)[0] + "/oauth/token")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")


def _load_spec(name: str) -> Any:
    """A benchmark spec, with the OAuth token URL (which has no env syntax) filled."""
    from restconnect.spec import parse_spec

    path = SPECS / f"{name}.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "${RESTCONNECT_BENCH_TOKEN_URL}", os.environ["RESTCONNECT_BENCH_TOKEN_URL"])
    return parse_spec(text, source=str(path))


def client_restconnect(args: argparse.Namespace) -> tuple[Any, float]:
    """restconnect's one line."""
    import restconnect

    _restconnect_env(args)
    conn = restconnect.connect(_load_spec(args.spec))
    fetch_kwargs: dict[str, Any] = {}
    if args.concurrency is not None:
        fetch_kwargs["concurrency"] = args.concurrency
    start = time.perf_counter()
    frame = conn.fetch(KINDS[args.kind][0], **fetch_kwargs)
    return frame, time.perf_counter() - start


def client_extract(args: argparse.Namespace) -> tuple[Any, float]:
    """``restconnect extract SPEC ENDPOINT -o out.parquet``, in this process."""
    import pyarrow.parquet as pq

    from restconnect.cli import main as cli_main

    _restconnect_env(args)
    argv = ["extract", str(SPECS / f"{args.spec}.yaml"), KINDS[args.kind][0],
            "-o", args.output]
    start = time.perf_counter()
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = exc.code
    seconds = time.perf_counter() - start
    if code not in (0, None):
        raise SystemExit(f"restconnect extract exited with {code}")
    rows = pq.ParquetFile(args.output).metadata.num_rows
    return {"rows": rows}, seconds


def client_socket(args: argparse.Namespace) -> tuple[Any, float]:
    """Raw keep-alive reads of every link page; no parsing beyond the headers."""
    url = urlsplit(args.base_url)
    sock = socket.create_connection((url.hostname, url.port))
    reader = sock.makefile("rb", buffering=1 << 20)
    pages = -(-args.records // PAGE_SIZE)
    start = time.perf_counter()
    total = 0
    for page in range(1, pages + 1):
        sock.sendall((f"GET {url.path}/link/repos?per_page={PAGE_SIZE}&page={page} "
                      f"HTTP/1.1\r\nHost: {url.netloc}\r\n"
                      f"Authorization: Bearer {args.token}\r\n\r\n").encode())
        total += _read_response(reader)
    sock.close()
    return {"bytes": total, "pages": pages}, time.perf_counter() - start


def _read_response(reader: Any) -> int:
    length = 0
    while True:
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return len(reader.read(length))


CLIENTS = {
    "hand": client_hand,
    "tuned": client_tuned,
    "dlt": client_dlt,
    "restconnect": client_restconnect,
    "extract": client_extract,
    "socket": client_socket,
}


def _describe(frame: Any) -> dict[str, Any]:
    if isinstance(frame, dict) and "bytes" in frame:
        return {"rows": frame["pages"] * PAGE_SIZE, "bytes": frame["bytes"]}
    if isinstance(frame, dict):
        return frame
    return {"rows": int(frame.shape[0]), "columns": int(frame.shape[1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one benchmark client run")
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--kind", choices=sorted(KINDS), default="link")
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--spec", default="bench")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--output", help="the Parquet file of the extract client")
    args = parser.parse_args(argv)

    client = CLIENTS[args.client]
    _warm_imports(args.client)
    before = _rss_mb()
    cpu = time.process_time()
    frame, seconds = client(args)
    cpu = time.process_time() - cpu
    result = {"client": args.client, "seconds": seconds, "cpu_seconds": cpu,
              "rss_before_mb": before, "peak_rss_mb": _peak_mb(), **_describe(frame)}
    print(json.dumps(result), flush=True)
    return 0


def _warm_imports(client: str) -> None:
    """Import what every frame-building client needs before the clock starts."""
    if client == "socket":
        return
    import pandas  # noqa: F401  (the same start for every client)
    import pyarrow  # noqa: F401  (pandas 3 stores strings in it, so every client loads it)
    import requests  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
