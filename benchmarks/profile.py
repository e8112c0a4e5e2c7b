"""Where restconnect's time goes in one fetch, by stage.

``python -m benchmarks.profile [--records 100000] [--kind link]`` starts the
benchmark server and fetches with ``concurrency=1`` twice: once with a timer
around each stage's entry point (wall time, no profiler), then under
cProfile (CPU time). It prints the wall time of each stage (HTTP, decoding,
frame building, the rest), the cProfile shares and the top functions.
cProfile slows Python code more than C code, so the first table is the one
to trust for shares; the second says which functions to look at.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.clients import KINDS, SPECS
from benchmarks.run import TOKEN, Server

# (label, file fragment, function names) of the stage entry points; a request
# sent ahead of its page is timed in send_ahead() and PendingResponse.result().
STAGES = (
    ("HTTP (requests, auth, retries, rate limits)", "restconnect/http.py",
     ("request", "send_ahead", "result")),
    ("decoding (orjson)", "restconnect/decoding.py", ("decode_body",)),
    ("records out of the body", "restconnect/decoding.py", ("extract_records",)),
    ("frame: pages to Arrow", "restconnect/frames.py", ("add_page",)),
    ("frame: Arrow to pandas", "restconnect/frames.py", ("finish",)),
    ("pagination (next request)", "restconnect/pagination.py", ("next",)),
)


# (label, module, class or None, function) timed by the wall-time run
TIMED = (
    ("HTTP (requests, auth, retries, rate limits)", "restconnect.http", "HttpClient",
     "request"),
    ("HTTP (requests, auth, retries, rate limits)", "restconnect.http", "HttpClient",
     "send_ahead"),
    ("HTTP (requests, auth, retries, rate limits)", "restconnect.http",
     "PendingResponse", "result"),
    ("decoding (orjson)", "restconnect.connector", None, "decode_body"),
    ("frame: pages to Arrow, page dicts freed", "restconnect.frames", "FrameBuilder",
     "add_page"),
    ("frame: Arrow to pandas", "restconnect.frames", "FrameBuilder", "finish"),
)


@contextmanager
def stage_timers(totals: Counter[str]) -> Iterator[None]:
    """Add each stage's wall time to ``totals`` while the block runs."""
    import importlib

    restore = []
    for label, module_name, class_name, name in TIMED:
        owner: Any = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
        original = getattr(owner, name)
        setattr(owner, name, _timed(original, label, totals))
        restore.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)


def _timed(function: Callable[..., Any], label: str,
           totals: Counter[str]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - started
    return timed


def wall_split(url: str, kind: str) -> str:
    """One timed fetch as a Markdown table of wall seconds per stage."""
    import restconnect

    os.environ["RESTCONNECT_BENCH_URL"] = f"{url}/bearer"
    os.environ["RESTCONNECT_BENCH_TOKEN"] = TOKEN
    conn = restconnect.connect(str(SPECS / "bench.yaml"))
    # A whole fetch first: the process then has its memory, as in a session.
    conn.fetch(KINDS[kind][0], concurrency=1)
    totals: Counter[str] = Counter()
    with stage_timers(totals):
        started = time.perf_counter()
        conn.fetch(KINDS[kind][0], concurrency=1)
        wall = time.perf_counter() - started
    rows = ["| stage | wall s | share |", "|---|---|---|"]
    for label in dict.fromkeys(label for label, *_ in TIMED):
        rows.append(f"| {label} | {totals[label]:.2f} | {totals[label] / wall:.0%} |")
    rest = wall - sum(totals.values())
    rows.append(f"| the rest (pagination, bookkeeping) | {rest:.2f} | {rest / wall:.0%} |")
    rows.append(f"| **whole fetch** | {wall:.2f} | 100% |")
    return "\n".join(rows)


def profile(url: str, kind: str) -> tuple[pstats.Stats, float, float, int]:
    """Fetch once under cProfile; return the stats, CPU and wall seconds, rows."""
    import restconnect

    os.environ["RESTCONNECT_BENCH_URL"] = f"{url}/bearer"
    os.environ["RESTCONNECT_BENCH_TOKEN"] = TOKEN
    conn = restconnect.connect(str(SPECS / "bench.yaml"))
    conn.fetch(KINDS[kind][0], max_pages=3, concurrency=1)
    profiler = cProfile.Profile(time.process_time)
    wall, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    frame = conn.fetch(KINDS[kind][0], concurrency=1)
    profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return pstats.Stats(profiler), cpu, wall, len(frame)


def stage_table(stats: pstats.Stats) -> str:
    """Cumulative CPU time of each stage entry point, as a Markdown table."""
    raw = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in raw.values())
    rows = ["| stage | CPU s | share |", "|---|---|---|"]
    for label, fragment, names in STAGES:
        seconds = sum(entry[3] for (path, _, func), entry in raw.items()
                      if func in names and path.endswith(fragment))
        rows.append(f"| {label} | {seconds:.2f} | {seconds / total:.0%} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kind", choices=sorted(KINDS), default="link")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with Server(args.records) as server:
        split = wall_split(server.url, args.kind)
        stats, cpu, wall, rows = profile(server.url, args.kind)
    print(f"wall time by stage, {args.kind} pagination, timers only:\n\n{split}\n")
    print(f"{rows:,} records, {args.kind} pagination: {cpu:.2f} s CPU, {wall:.2f} s wall "
          "(under cProfile, which slows Python code more than C code)\n")
    print(stage_table(stats) + "\n")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
