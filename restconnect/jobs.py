"""Extract jobs: one endpoint into one output, safe to run from a scheduler.

This module is ``restconnect.jobs`` rather than ``restconnect.extract`` so
that ``restconnect.extract`` stays the function below, whatever was imported.

A job names a connector, an endpoint, its parameters, whether it is
incremental, and an output. A run never prompts, holds a lock so two runs of
the same job cannot overlap, streams pages to the output in bounded batches,
commits the output atomically and only then advances the incremental state.
Killed at any point and run again, it ends with the same output, no row lost
and none twice.

>>> from restconnect import extract
>>> extract("jobs/issues.job.yaml")                              # doctest: +SKIP
>>> extract(connector="github", endpoint="issues", output="issues.parquet",
...         params={"owner": "o", "repo": "r"}, incremental=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from restconnect.exceptions import (
    CredentialsMissing,
    ExtractError,
    RestConnectError,
    SpecError,
)
from restconnect.outputs import LOCK_SUFFIX, OutputSpec, key_text, make_output
from restconnect.redact import redact_text
from restconnect.spec import read_yaml_mapping
from restconnect.state import IncrementalPlan, StateStore, get_path, state_key

if TYPE_CHECKING:
    from restconnect.connector import Connector

__all__ = [
    "Job",
    "Summary",
    "add_cli",
    "add_extract_parser",
    "extract",
    "extract_cli",
    "main",
]

logger = logging.getLogger(__name__)

#: Test hook: ``page:N``, ``before_replace``, ``before_state`` or ``after_state``
#: makes a run exit abruptly there, as a kill would.
CRASH_ENV = "RESTCONNECT_TEST_CRASH_AT"
CRASH_EXIT = 97

_REFERENCE = re.compile(r"^env:[A-Z_][A-Z0-9_]*$")
_DEFAULT_SCHEDULE = "0 2 * * *"


class Job(BaseModel):
    """An extract job, as written in a ``*.job.yaml`` file.

    Example:
        >>> job = Job(connector="github", endpoint="issues",
        ...           params={"owner": "o", "repo": "r"}, incremental=True,
        ...           output="data/issues.parquet",
        ...           credentials={"token": "env:GITHUB_TOKEN"})
        >>> job.output.resolved_format()
        'parquet'
    """

    # A value put where a credential reference belongs must not be echoed.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True,
                              hide_input_in_errors=True)

    name: str | None = Field(None, description="names the job in logs and locks")
    connector: str = Field(description="a connector name or a spec file path")
    endpoint: str
    params: dict[str, Any] = Field(default_factory=dict)
    incremental: bool = False
    output: OutputSpec
    credentials: dict[str, str] = Field(
        default_factory=dict, description="field -> env:VARIABLE (never a value)")
    base_url: str | None = None
    cache: bool = Field(False, description="use the response cache while extracting")
    batch_size: int = Field(5_000, ge=1, description="records written per batch")
    max_pages: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1, le=64)

    # Set by the loader: the file the job came from.
    source: str | None = Field(None, exclude=True)

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, value: Any) -> OutputSpec:
        try:
            return OutputSpec.of(value)
        except SpecError as exc:
            # pydantic puts this under "output" already: name only the key below.
            below = exc.path.removeprefix("output").lstrip(".")
            raise ValueError(f"{below}: {exc.problem}" if below else exc.problem
                             ) from None

    @field_validator("credentials")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for field, reference in value.items():
            if not isinstance(reference, str) or not _REFERENCE.match(reference):
                raise ValueError(f"credentials.{field} must be a reference such as "
                                 "env:GITHUB_TOKEN, in capitals; a job file never "
                                 "holds a value")
        return value

    # ------------------------------------------------------------ loading

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Job:
        """Read a job file; relative output paths are relative to its folder.

        Raises:
            SpecError: the file is missing, not YAML, or not a valid job.
        """
        source = str(path)
        data = read_yaml_mapping(path, expected="a mapping of job keys")
        try:
            job = cls.model_validate(data)
        except ValidationError as exc:
            from restconnect.spec import format_validation_error

            raise format_validation_error(exc, source, cls) from None
        job.source = source
        folder = Path(path).resolve().parent
        if not Path(job.output.path).expanduser().is_absolute():
            job.output.path = str(folder / job.output.path)
        connector_path = folder / job.connector
        if job.connector.endswith((".yaml", ".yml")) and connector_path.is_file():
            job.connector = str(connector_path)
        return job

    @classmethod
    def from_connector(cls, connector: Connector, endpoint: str, *, output: Any,
                       incremental: bool = False, **options: Any) -> Job:
        """The job of an open connector's endpoint (``conn.job(...)``)."""
        connector.endpoint(endpoint)
        params = options.pop("params", {})
        return cls(connector=_connector_reference(connector), endpoint=endpoint,
                   params=dict(params), incremental=incremental,
                   output=OutputSpec.of(output),
                   credentials=_credential_references(connector),
                   base_url=_base_url_override(connector), **options)

    # ------------------------------------------------------------ identity

    @property
    def label(self) -> str:
        return self.name or f"{Path(self.connector).stem}.{self.endpoint}"

    # ------------------------------------------------------------ saving

    def save(self, path: str | os.PathLike[str], *,
             schedule: str = _DEFAULT_SCHEDULE) -> str:
        """Write the job file and return the cron line that runs it.

        The file holds credential references (``env:VAR``), never values; the
        cron line is written at the top of the file as a comment too.
        """
        target = Path(path).expanduser().resolve()
        data = self.model_dump(exclude_none=True, exclude={"source"})
        data["output"] = self.output.as_dict()
        data["output"]["path"] = str(Path(self.output.path).expanduser().resolve())
        line = cron_line(target, schedule)
        header = (f"# restconnect extract job. Run it with:\n"
                  f"#   restconnect extract {target}\n"
                  f"# A crontab line for it:\n#   {line}\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header + yaml.safe_dump(data, sort_keys=False),
                          encoding="utf-8")
        logger.info("job written to %s; cron line: %s", target, line)
        return line

    def run(self, **options: Any) -> Summary:
        """Run the job now (see :func:`run_job`)."""
        return run_job(self, **options)


def cron_line(job_file: Path, schedule: str = _DEFAULT_SCHEDULE) -> str:
    """A crontab line running a job file with JSON logs appended to a log file."""
    command = shutil.which("restconnect") or "restconnect"
    log = job_file.with_suffix(".log")
    return (f"{schedule} {command} extract {job_file} --log-format json "
            f">> {log} 2>&1")


def _connector_reference(connector: Connector) -> str:
    from restconnect.catalog import resolve_spec

    source = connector.spec.source
    try:
        if source is None or resolve_spec(connector.name).source == source:
            return connector.name
    except RestConnectError:
        pass
    return str(Path(source).resolve())


def _credential_references(connector: Connector) -> dict[str, str]:
    from restconnect.auth import get_auth_method
    from restconnect.credentials import FieldRequest, env_names

    references = {}
    for entry in connector.spec.auth_entries:
        for field in get_auth_method(entry.method).fields:
            if field.name in entry.options():
                continue
            request = FieldRequest(field, entry.method, entry.env.get(field.name))
            references[field.name] = f"env:{env_names(connector.name, request)[0]}"
    return references


def _base_url_override(connector: Connector) -> str | None:
    try:
        default = connector.spec.resolved_base_url()
    except RestConnectError:
        default = None
    return connector.base_url if connector.base_url != default else None


# ---------------------------------------------------------------- running


@dataclass
class Summary:
    """What one run did."""

    job: str
    rows: int = 0
    pages: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    duplicates: int = 0
    output: str = ""
    mode: str = ""
    state_committed: bool = False
    cursor: Any = None

    def line(self) -> str:
        return (f"restconnect extract {self.job}: rows={self.rows} pages={self.pages} "
                f"seconds={self.seconds:.2f} cache_hits={self.cache_hits} "
                f"mode={self.mode} output={self.output}")

    def as_dict(self) -> dict[str, Any]:
        return {"event": "summary", **asdict(self)}


def run_job(job: Job, *, store: StateStore | None = None,
            lock_timeout: float = 0) -> Summary:
    """Run a job: lock, fetch in batches, write, commit the output, then the state.

    Raises:
        ExtractError: another run of the job holds the lock, or writing failed.
        CredentialsMissing: a credential has no value (the message lists the
            variables to set).
    """
    with output_lock(job.label, job.output.path, timeout=lock_timeout):
        return _run_locked(job, store or StateStore())


@contextmanager
def output_lock(label: str, output: str, *, timeout: float = 0) -> Iterator[None]:
    """Hold the lock beside ``output`` for a block that writes it.

    Raises:
        ExtractError: another run holds the lock; the output is a folder or
            cannot be written (the earlier output is left as it was).
    """
    from filelock import FileLock, Timeout

    lock_path = _lock_path(label, output)
    try:
        with FileLock(str(lock_path), timeout=timeout):
            yield
    except Timeout:
        raise ExtractError(f"{label}: another run of this job is in progress "
                           f"(lock {lock_path}); not starting a second one") from None
    except OSError as exc:
        import requests

        if isinstance(exc, requests.RequestException):
            raise
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
        raise ExtractError(f"{label}: cannot write the output {output} ({detail}); "
                           "the earlier output, if any, is unchanged") from None


def _lock_path(label: str, output_path: str) -> Path:
    """The lock file, beside the output so every user and scheduler sees it."""
    output = Path(output_path).expanduser()
    if output.is_dir():
        raise ExtractError(f"{label}: the output {output} is a folder; give the "
                           "path of a file to write")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExtractError(f"{label}: cannot create the output folder "
                           f"{output.parent}: {exc.strerror}") from None
    return output.parent / f".{output.name}{LOCK_SUFFIX}"


def _run_locked(job: Job, store: StateStore) -> Summary:
    started = time.perf_counter()
    connector = _open(job)
    try:
        spec = connector.endpoint(job.endpoint)
        if job.incremental and spec.incremental is None:
            raise SpecError(f"endpoint {job.endpoint!r} declares no 'incremental' "
                            "cursor, so the job cannot be incremental",
                            source=connector.name,
                            path=f"endpoints.{job.endpoint}.incremental")
        if job.incremental and job.output.mode == "replace":
            raise SpecError(
                "an incremental run fetches only what changed, so mode 'replace' "
                "would replace the output with those rows alone; use 'upsert' "
                "(with a primary_key) or 'append'", source=job.label,
                path="output.mode")
        scope = str(Path(job.output.path).expanduser().resolve())
        key = state_key(store, connector, job.endpoint, job.params, scope=scope)
        output = make_output(job.output, incremental=job.incremental,
                             primary_key=spec.primary_keys, endpoint=job.endpoint,
                             store=store, state_key=key, crash=_crash_hook)
        summary = Summary(job=job.label, output=str(output.path), mode=output.mode)
        _stream(job, connector, spec, output, summary)
        summary.cache_hits = connector.http.stats.from_cache
        summary.seconds = time.perf_counter() - started
        return summary
    finally:
        connector.close()


def _open(job: Job) -> Connector:
    from restconnect.connector import connect

    given = {}
    for field, reference in job.credentials.items():
        value = os.environ.get(reference[4:])
        if value:
            given[field] = value
    try:
        return connect(job.connector, base_url=job.base_url, interactive=False,
                       cache=job.cache, concurrency=job.concurrency, **given)
    except CredentialsMissing as exc:
        raise _with_references(exc, job) from None


def _with_references(exc: CredentialsMissing, job: Job) -> CredentialsMissing:
    missing = {}
    for field, ways in exc.missing.items():
        reference = job.credentials.get(field)
        first = [f"set {reference[4:]} (named in the job file)"] if reference else []
        missing[field] = first + [w for w in ways if w not in first]
    return CredentialsMissing(exc.connector, missing)


def _stream(job: Job, connector: Connector, spec: Any, output: Any,
            summary: Summary) -> None:
    """Fetch pages, write bounded batches, commit the output and the state."""
    from restconnect.frames import FrameBuilder, FrameOptions

    committed = output.recover()
    plan = (IncrementalPlan(spec.incremental, spec.primary_keys, committed,
                            f"{connector.name}.{job.endpoint}")
            if job.incremental else None)
    params = plan.params(job.params) if plan else dict(job.params)
    builder = FrameBuilder(FrameOptions(dtypes=spec.dtypes, datetimes=spec.datetimes,
                                        columns=spec.columns, source=job.label))
    seen: set[str] = set()
    output.begin()
    try:
        pending = 0
        for records in _pages(job, connector, plan, params, summary):
            records = _first_seen(records, spec.primary_keys, seen, summary)
            builder.add_page(records)
            pending += len(records)
            if pending >= job.batch_size:
                output.write(builder.drain())
                pending = 0
        if pending:
            output.write(builder.drain())
        state = plan.next_state() if plan else None
        output.commit(state)
    except BaseException:
        output.abort()
        raise
    summary.rows = output.rows_written
    summary.state_committed = state is not None
    summary.cursor = state.get("cursor") if state else None
    _crash_hook("after_state")


def _pages(job: Job, connector: Connector, plan: IncrementalPlan | None,
           params: Mapping[str, Any], summary: Summary) -> Any:
    cache = 0 if job.cache and plan else None
    # An incremental run stops at the first page of old records: nothing ahead.
    pages = connector.iter_pages(job.endpoint, max_pages=job.max_pages, cache=cache,
                                 concurrency=job.concurrency, params=params,
                                 read_ahead=plan is None)
    try:
        for page in pages:
            summary.pages += 1
            _crash_hook(f"page:{summary.pages}")
            yield plan.select(page.records) if plan else page.records
            if plan is not None and plan.should_stop:
                break
    finally:
        pages.close()


def _first_seen(records: Sequence[Any], primary_key: Sequence[str], seen: set[str],
                summary: Summary) -> list[Any]:
    """Drop records whose primary key came on an earlier page of this run."""
    if not primary_key:
        return list(records)
    kept = []
    for record in records:
        key = key_text([get_path(record, name) for name in primary_key])
        if key in seen:
            summary.duplicates += 1
            continue
        seen.add(key)
        kept.append(record)
    return kept


def _crash_hook(point: str) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted == point:
        logger.warning("exiting at %s (%s is set)", point, CRASH_ENV)
        logging.shutdown()
        os._exit(CRASH_EXIT)


# ---------------------------------------------------------------- python API


def extract(job: Job | str | os.PathLike[str] | None = None, *,
            connector: str | None = None, endpoint: str | None = None,
            output: Any = None, params: Mapping[str, Any] | None = None,
            incremental: bool = False, jobs_dir: str | None = None,
            **options: Any) -> Summary:
    """Run an extract job: a ``Job``, a job file, a job name, or the parts of one.

    Example:
        >>> extract(connector="github", endpoint="issues",
        ...         params={"owner": "o", "repo": "r"}, incremental=True,
        ...         output="data/issues.parquet")                 # doctest: +SKIP
    """
    if job is None:
        if not (connector and endpoint and output):
            raise TypeError("extract() needs a job, or connector=, endpoint= and "
                            "output=")
        job = Job(connector=connector, endpoint=endpoint, output=output,
                  params=dict(params or {}), incremental=incremental, **options)
    elif not isinstance(job, Job):
        path = find_job(str(job), jobs_dir)
        from restconnect.dataset import extract_dataset, is_dataset_file

        if is_dataset_file(path):  # several joined sources (docs/joins.md)
            return extract_dataset(path, output=output)
        job = Job.from_file(path)
    return job.run()


def find_job(name: str, jobs_dir: str | None = None) -> Path:
    """A job file by path, or by name in the jobs folders.

    Folders searched: ``jobs_dir``, ``$RESTCONNECT_JOBS`` (``:``-separated),
    ``./jobs`` and ``<user config>/restconnect/jobs``; a name matches
    ``NAME.job.yaml``, ``NAME.yaml`` or ``NAME.yml``.
    """
    candidate = Path(name).expanduser()
    if candidate.is_file():
        return candidate
    folders = _job_folders(jobs_dir)
    for folder in folders:
        for suffix in (".job.yaml", ".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    raise SpecError(f"no job file {name!r}; looked in: "
                    f"{', '.join(str(f) for f in folders)}", source=name)


def _job_folders(jobs_dir: str | None) -> list[Path]:
    import platformdirs

    folders = [Path(jobs_dir)] if jobs_dir else []
    folders += [Path(p) for p in os.environ.get("RESTCONNECT_JOBS", "").split(
        os.pathsep) if p]
    folders += [Path("jobs"), Path(platformdirs.user_config_dir(
        "restconnect", appauthor=False)) / "jobs"]
    return folders


# ---------------------------------------------------------------- command line


def add_extract_parser(subparsers: Any) -> Any:
    """Add ``extract`` to an argparse subparsers object."""
    from restconnect.cli import positive_int

    parser = subparsers.add_parser(
        "extract", help="run an extract job (a job file, a job name, or "
        "CONNECTOR ENDPOINT -o OUTPUT)")
    parser.add_argument("target", nargs="+", metavar="JOB | CONNECTOR ENDPOINT")
    parser.add_argument("-p", "--param", action="append", default=[],
                        metavar="NAME=VALUE", help="an endpoint parameter (repeatable)")
    parser.add_argument("-o", "--output", help="output file (.parquet, .csv, "
                        ".jsonl, .sqlite, .duckdb)")
    parser.add_argument("--incremental", action="store_true",
                        help="fetch only what changed since the last run")
    parser.add_argument("--mode", choices=("replace", "append", "upsert"))
    parser.add_argument("--format", dest="output_format",
                        choices=("parquet", "csv", "jsonl", "sqlite", "duckdb"))
    parser.add_argument("--table", help="database table (default: the endpoint)")
    parser.add_argument("--base-url", help="override the spec's base URL")
    parser.add_argument("--batch-size", type=positive_int,
                        help="records per written batch")
    parser.add_argument("--cache", action="store_true", help="use the response cache")
    parser.add_argument("--jobs-dir", help="a folder of job files to find JOB in")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=extract_cli)
    return parser


#: The hook ``restconnect.cli`` calls to register the command.
add_cli = add_extract_parser


def extract_cli(args: Any, out: Any = None, err: Any = None) -> int:
    """Run ``restconnect extract`` from parsed arguments; returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    _configure_logging(args.log_format, args.log_level, err)
    try:
        summary = _dataset_from_args(args) or _job_from_args(args).run()
    except RestConnectError as exc:
        return _report_error(exc, args.log_format, err)
    if args.log_format == "json":
        out.write(orjson.dumps(summary.as_dict(), default=str).decode() + "\n")
    else:
        out.write(summary.line() + "\n")
    out.flush()
    return 0


def _dataset_from_args(args: Any) -> Summary | None:
    """Run a dataset file (several joined sources, docs/joins.md), else None."""
    from restconnect.dataset import extract_dataset, is_dataset_file

    if len(args.target) != 1 or not is_dataset_file(args.target[0]):
        return None
    return extract_dataset(args.target[0], output=args.output)


def _job_from_args(args: Any) -> Job:
    if len(args.target) == 1:
        if args.output or args.param:
            raise SpecError("-o and -p go with the one-line form: "
                            "restconnect extract CONNECTOR ENDPOINT -o OUTPUT")
        return Job.from_file(find_job(args.target[0], args.jobs_dir))
    if len(args.target) != 2 or not args.output:
        raise SpecError("the one-line form is: restconnect extract CONNECTOR ENDPOINT "
                        "[-p NAME=VALUE ...] -o OUTPUT")
    output = {"path": args.output, "format": args.output_format, "mode": args.mode,
              "table": args.table}
    options = {"batch_size": args.batch_size} if args.batch_size else {}
    return Job(connector=args.target[0], endpoint=args.target[1],
               params=_params(args.param), incremental=args.incremental,
               output={k: v for k, v in output.items() if v is not None},
               base_url=args.base_url, cache=args.cache, **options)


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SpecError(f"-p takes NAME=VALUE, got {pair!r}")
        params[name] = value
    return params


def _report_error(exc: RestConnectError, log_format: str, err: Any) -> int:
    message = redact_text(str(exc))
    if log_format == "json":
        err.write(orjson.dumps({"event": "error", "error": type(exc).__name__,
                                "exit_code": exc.exit_code,
                                "message": message}).decode() + "\n")
    else:
        err.write(f"restconnect extract: {message}\n")
    err.flush()
    return exc.exit_code


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                 "level": record.levelname, "logger": record.name,
                 "message": redact_text(record.getMessage())}
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def _configure_logging(log_format: str, level: str, stream: Any) -> None:
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
    root = logging.getLogger("restconnect")
    root.handlers = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m restconnect.jobs ...``: the extract command on its own."""
    import argparse

    parser = argparse.ArgumentParser(prog="restconnect")
    add_extract_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["extract", *(sys.argv[1:] if argv is None else argv)])
    return extract_cli(args)


if __name__ == "__main__":
    sys.exit(main())
