"""Run the benchmark suite and print its tables.

``python -m benchmarks.run`` (full: 100k records, 1M for the extract) or
``python -m benchmarks.run --quick`` (fewer records, for a smoke run). Each
client runs in a fresh process; the clients of one scenario take turns in
every round, so a slow moment of the machine hits them all alike. Medians of
at least three rounds are printed, with the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
TOKEN = "bench-token"
HEAVY = ("pandas", "pyarrow", "numpy", "ipywidgets", "jwt", "cryptography",
         "oauthlib", "requests_oauthlib", "botocore", "IPython", "diskcache")


@dataclass
class Case:
    """One client invocation in a scenario."""

    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    fresh_cache: bool = False


@dataclass
class Scenario:
    """A set of cases measured side by side, with the ratios to report."""

    title: str
    cases: list[Case]
    records: int
    baselines: tuple[str, ...] = ("hand", "dlt")
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    note: str = ""


# ------------------------------------------------------------------ server


class Server:
    """A benchmark server process, started and stopped by PID."""

    def __init__(self, records: int) -> None:
        self.records = records
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:  # noqa: PYI034  (never subclassed)
        self.proc = subprocess.Popen(
            [PY, "-m", "benchmarks.server", "--records", str(self.records),
             "--token", TOKEN],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.url = line.split()[1]
                return self
            if not line and self.proc.poll() is not None:
                break
        self.__exit__()
        raise RuntimeError("the benchmark server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# --------------------------------------------------------------- measuring


def run_case(case: Case, timeout: float) -> dict[str, Any]:
    """Run one client process and return its JSON line (or an error)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", **case.env}
    try:
        proc = subprocess.run([PY, "-m", "benchmarks.clients", *case.argv],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:160]}
    return json.loads(lines[-1])


def measure(scenario: Scenario, repeats: int, timeout: float) -> None:
    """Interleave the cases of a scenario for ``repeats`` rounds."""
    cache_dirs: dict[str, str] = {}
    for round_no in range(repeats):
        for case in scenario.cases:
            if case.fresh_cache or case.label not in cache_dirs:
                _fresh_cache(case, cache_dirs, round_no)
            result = run_case(case, timeout)
            scenario.results.setdefault(case.label, []).append(result)
            _progress(scenario, case, round_no, result)
    for path in set(cache_dirs.values()):
        shutil.rmtree(path, ignore_errors=True)


def _fresh_cache(case: Case, cache_dirs: dict[str, str], round_no: int) -> None:
    """Point a case at its cache folder; fresh-cache cases get an empty one."""
    group = case.env.get("BENCH_CACHE_GROUP")
    if group is None:
        return
    if case.fresh_cache:
        old = cache_dirs.get(group)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        cache_dirs[group] = tempfile.mkdtemp(prefix=f"rc-bench-cache-{round_no}-")
    case.env["XDG_CACHE_HOME"] = cache_dirs.setdefault(
        group, tempfile.mkdtemp(prefix="rc-bench-cache-"))


def _progress(scenario: Scenario, case: Case, round_no: int,
              result: dict[str, Any]) -> None:
    if "error" in result:
        text = f"error: {result['error']}"
    else:
        text = f"{result['seconds']:.2f} s, peak {result['peak_rss_mb']:.0f} MB"
    print(f"  [{scenario.title}] round {round_no + 1} {case.label}: {text}",
          file=sys.stderr, flush=True)


# --------------------------------------------------------------- reporting


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "error" not in r]


def _ratio(scenario: Scenario, label: str, base: str, key: str) -> str:
    """Median and range of the per-round ratios label/base for ``key``."""
    mine, theirs = scenario.results.get(label, []), scenario.results.get(base, [])
    ratios = [a[key] / b[key] for a, b in zip(mine, theirs)
              if "error" not in a and "error" not in b and b.get(key) and key in a]
    if not ratios:
        return "n/a"
    text = f"{statistics.median(ratios):.2f}x"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return text


def table(scenario: Scenario) -> str:
    """The scenario's results as a Markdown table."""
    bases = [b for b in scenario.baselines if b in scenario.results]
    head = ["client", "median s", "records/s", "peak RSS MB"]
    head += [f"time vs {b}" for b in bases] + [f"RSS vs {b}" for b in bases[:1]]
    head += [f"CPU vs {b}" for b in bases[:1]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, runs in scenario.results.items():
        good = _ok(runs)
        if not good:
            rows.append(f"| {label} | {runs[-1].get('error', 'failed')} |")
            continue
        seconds = statistics.median(r["seconds"] for r in good)
        peak = statistics.median(r["peak_rss_mb"] for r in good)
        cells = [label, f"{seconds:.2f}",
                 f"{scenario.records / seconds:,.0f}", f"{peak:.0f}"]
        cells += [_ratio(scenario, label, b, "seconds") for b in bases]
        cells += [_ratio(scenario, label, b, "peak_rss_mb") for b in bases[:1]]
        cells += [_ratio(scenario, label, b, "cpu_seconds") for b in bases[:1]]
        rows.append("| " + " | ".join(cells) + " |")
    text = f"### {scenario.title}\n\n" + "\n".join(rows)
    return text + (f"\n\n{scenario.note}" if scenario.note else "")


# --------------------------------------------------------------- scenarios


def _argv(client: str, url: str, kind: str, records: int, *extra: str) -> list[str]:
    return [client, "--base-url", url, "--kind", kind, "--records", str(records),
            "--token", TOKEN, *extra]


def sequential(url: str, kind: str, records: int) -> Scenario:
    """Every client, one page after another."""
    base = f"{url}/bearer"
    cases = [Case(name, _argv(name, base, kind, records)) for name in
             ("hand", "tuned", "dlt")]
    cases.append(Case("restconnect", _argv("restconnect", base, kind, records,
                                           "--concurrency", "1")))
    if kind in ("link", "offset", "page"):
        cases.append(Case("restconnect, default concurrency",
                          _argv("restconnect", base, kind, records)))
    if kind == "link":
        cases.append(Case("socket (no parsing)", _argv("socket", base, kind, records)))
    return Scenario(f"sequential, {kind} pagination, {records:,} records", cases,
                    records)


def concurrent(url: str, records: int, latency_ms: int) -> Scenario:
    """Addressable pages with simulated latency: concurrency on and off."""
    base = f"{url}/lat/{latency_ms}/bearer"
    cases = [Case("hand", _argv("hand", base, "page", records)),
              Case("restconnect sequential",
                   _argv("restconnect", base, "page", records, "--concurrency", "1")),
              Case("restconnect default", _argv("restconnect", base, "page", records))]
    for kind in ("offset", "link"):
        cases.append(Case(f"restconnect default ({kind})",
                          _argv("restconnect", base, kind, records)))
    return Scenario(f"{latency_ms} ms latency per request, page-number pagination "
                    f"(offset and link also shown), {records:,} records", cases,
                    records, baselines=("restconnect sequential", "hand"))


def auth_cost(url: str, records: int) -> Scenario:
    """The same fetch with a static token, SigV4 signing and an OAuth token."""
    cases = [Case("bearer", _argv("restconnect", f"{url}/bearer", "link", records,
                                  "--concurrency", "1"))]
    for name, spec in (("sigv4", "bench_sigv4"), ("oauth", "bench_oauth")):
        cases.append(Case(name, _argv("restconnect", f"{url}/{name}", "link", records,
                                      "--concurrency", "1", "--spec", spec)))
    return Scenario(f"per-request auth cost, link pagination, {records:,} records",
                    cases, records, baselines=("bearer",))


def cached(url: str, records: int) -> Scenario:
    """A cold fetch into an empty cache, then the same fetch again."""
    argv = _argv("restconnect", f"{url}/bearer", "link", records,
                 "--concurrency", "1", "--spec", "bench_cached")
    group = {"BENCH_CACHE_GROUP": "cache"}
    cases = [Case("cold", argv, env=dict(group), fresh_cache=True),
             Case("cached", argv, env=dict(group))]
    return Scenario(f"cached re-fetch, {records:,} records", cases, records,
                    baselines=("cold",))


def extract(url: str, records: int, out_dir: str) -> Scenario:
    """Streaming extract to Parquet; peak memory is what counts."""
    argv = ["extract", "--base-url", f"{url}/bearer", "--kind", "link",
            "--records", str(records), "--token", TOKEN,
            "--output", str(Path(out_dir) / "out.parquet")]
    return Scenario(f"streaming extract to Parquet, {records:,} records",
                    [Case("restconnect extract", argv)], records, baselines=())


# ----------------------------------------------------------- import check


def import_cost(repeats: int) -> str:
    """Time ``import restconnect`` in fresh processes; list heavy modules loaded."""
    code = ("import sys, time, json; t = time.perf_counter(); import restconnect; "
            "t = time.perf_counter() - t; "
            f"print(json.dumps([t, [m for m in {HEAVY!r} if m in sys.modules]]))")
    times, heavy = [], set()
    for _ in range(max(repeats, 5)):
        proc = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        if proc.returncode != 0:
            return f"### import restconnect\n\nfailed: {proc.stderr.strip()[-200:]}"
        seconds, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
        times.append(seconds)
        heavy.update(loaded)
    listed = ", ".join(sorted(heavy)) or "none"
    return (f"### import restconnect\n\nmedian {statistics.median(times) * 1000:.0f} ms "
            f"over {len(times)} fresh processes; heavy modules imported: {listed}")


# ------------------------------------------------------------------- main


def machine() -> str:
    """One line describing the machine and the library versions."""
    versions = []
    for name in ("pandas", "pyarrow", "orjson", "requests", "dlt"):
        try:
            from importlib.metadata import version
            versions.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001  (a missing optional package is just listed)
            versions.append(f"{name} absent")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs, {mem:.0f} GiB RAM, {platform.platform()}, "
            f"Python {platform.python_version()}, " + ", ".join(versions))


def _has(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build(args: argparse.Namespace, url: str) -> list[Scenario]:
    """The scenarios that use the main server, in report order."""
    n = args.records
    scenarios = [sequential(url, kind, n) for kind in args.kinds]
    if "auth" in args.only:
        scenarios.append(auth_cost(url, n))
    if "cache" in args.only:
        scenarios.append(cached(url, n))
    return scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20k records, 200k for the extract, 3 rounds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--extract-records", type=int, default=None)
    parser.add_argument("--kinds", nargs="*", default=["link", "cursor", "offset"])
    parser.add_argument("--only", nargs="*",
                        default=["concurrent", "auth", "cache", "extract", "import"])
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    _defaults(args)

    print(f"machine: {machine()}", flush=True)
    sections: list[str] = []
    scenarios: list[Scenario] = []
    with Server(args.records) as server:
        for scenario in build(args, server.url):
            _run_or_skip(scenario, args)
            scenarios.append(scenario)
            sections.append(table(scenario))
            print("\n" + sections[-1] + "\n", flush=True)
    if "concurrent" in args.only:
        with Server(args.latency_records) as server:
            scenarios.append(concurrent(server.url, args.latency_records,
                                        args.latency_ms))
            measure(scenarios[-1], args.repeats, args.timeout)
        sections.append(table(scenarios[-1]))
        print("\n" + sections[-1] + "\n", flush=True)
    if "extract" in args.only:
        scenarios.append(_extract(args))
        sections.append(table(scenarios[-1]))
        print("\n" + sections[-1] + "\n", flush=True)
    if "import" in args.only:
        sections.append(import_cost(args.repeats))
        print("\n" + sections[-1] + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": machine(), "scenarios": [
                {"title": s.title, "records": s.records, "results": s.results,
                 "note": s.note} for s in scenarios]}, indent=1))
    return 0


def _defaults(args: argparse.Namespace) -> None:
    if args.records is None:
        args.records = 20_000 if args.quick else 100_000
    if args.extract_records is None:
        args.extract_records = 200_000 if args.quick else 1_000_000
    args.latency_records = 5_000 if args.quick else 20_000
    args.repeats = max(args.repeats, 3)


def _run_or_skip(scenario: Scenario, args: argparse.Namespace) -> None:
    if scenario.title.startswith("cached") and not _has("restconnect.cache"):
        scenario.note = "skipped: restconnect.cache is not there yet"
        return
    measure(scenario, args.repeats, args.timeout)


def _extract(args: argparse.Namespace) -> Scenario:
    with tempfile.TemporaryDirectory(prefix="rc-bench-out-") as out_dir, \
            Server(args.extract_records) as server:
        scenario = extract(server.url, args.extract_records, out_dir)
        if not _has("restconnect.jobs"):
            scenario.note = "skipped: restconnect extract (restconnect.jobs) is not there yet"
            return scenario
        measure(scenario, 1 if args.quick else args.repeats, args.timeout)
    return scenario


if __name__ == "__main__":
    sys.exit(main())
