"""Where restconnect's time goes in one fetch, by stage.

``python -m benchmarks.profile [--records 100000] [--kind link]`` starts the
benchmark server, fetches once with ``concurrency=1`` under cProfile (CPU
time), and prints the share of each stage (HTTP, decoding, record
extraction, frame building, the rest) and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

from benchmarks.clients import KINDS, SPECS
from benchmarks.run import TOKEN, Server

# (label, file fragment, function name) of the stage entry points
STAGES = (
    ("HTTP (requests, auth, retries, rate limits)", "restconnect/http.py", "request"),
    ("decoding (orjson)", "restconnect/decoding.py", "decode_body"),
    ("records out of the body", "restconnect/decoding.py", "extract_records"),
    ("frame: pages to Arrow", "restconnect/frames.py", "add_page"),
    ("frame: Arrow to pandas", "restconnect/frames.py", "finish"),
    ("pagination (next request)", "restconnect/pagination.py", "next"),
)


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
    for label, fragment, name in STAGES:
        seconds = sum(entry[3] for (path, _, func), entry in raw.items()
                      if func == name and path.endswith(fragment))
        rows.append(f"| {label} | {seconds:.2f} | {seconds / total:.0%} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kind", choices=sorted(KINDS), default="link")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with Server(args.records) as server:
        stats, cpu, wall, rows = profile(server.url, args.kind)
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
