"""The ``restconnect`` command.

Errors print one line (no traceback unless ``--debug``) and exit with the
code of their class, so schedulers can tell a spec error (2) from an auth
error (3), missing credentials (4), an HTTP failure (5) or a rate limit (6).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from restconnect.exceptions import RestConnectError

__all__ = ["main", "parse_params", "usage_error", "write_frame"]

logger = logging.getLogger(__name__)

# Other modules add subcommands here: name -> function(subparsers) that
# registers its parser and sets ``func``.
EXTRA_COMMANDS: dict[str, str] = {
    "extract": "restconnect.jobs:add_cli",
    "cache": "restconnect.cache:add_cli",
    "login": "restconnect.login:add_cli",
}


def usage_error(message: str) -> NoReturn:
    """Stop with a one-line message and argparse's usage exit code."""
    print(f"restconnect: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["owner=octocat", "state=open"]`` to a dict, with a clear error."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            usage_error(f"-p expects NAME=VALUE, got {pair!r}")
        params[name] = value
    return params


def _cmd_list(args: argparse.Namespace) -> int:
    from restconnect.catalog import list_specs
    from restconnect.spec import load_spec

    for name, path in list_specs().items():
        try:
            spec = load_spec(path)
            methods = "+".join(e.method for e in spec.auth_entries) or "none"
            print(f"{name:<20} {methods:<18} {spec.title or spec.description}")
        except RestConnectError as exc:
            print(f"{name:<20} {'(invalid)':<18} {exc}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from restconnect.catalog import resolve_spec
    from restconnect.credentials import env_names, field_requests

    spec = resolve_spec(args.name)
    print(f"{spec.name}: {spec.title}")
    print(f"  base URL: {spec.base_url}")
    if spec.docs:
        print(f"  docs:     {spec.docs}")
    for entry in spec.auth_entries:
        print(f"  auth:     {entry.method}")
        for request in field_requests(entry):
            field = request.field
            env = ", ".join(env_names(spec.name, request))
            kind = "secret" if field.secret else "value"
            print(f"    {field.name} ({kind}; env {env}) {field.help}")
    print("  endpoints:")
    for name, endpoint in spec.endpoints.items():
        required = endpoint.path_params + endpoint.required
        needs = f" [{', '.join(required)}]" if required else ""
        print(f"    {name:<22}{endpoint.method} {endpoint.path}{needs}")
        if endpoint.description:
            print(f"    {'':<22}{endpoint.description}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from restconnect.spec import load_spec

    failed = 0
    for path in args.files:
        try:
            spec = load_spec(path)
            print(f"{path}: ok ({spec.name}, {len(spec.endpoints)} endpoints)")
        except RestConnectError as exc:
            print(str(exc), file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from restconnect.spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from restconnect.connector import connect

    params = parse_params(args.param)
    conn = connect(args.connector, base_url=args.base_url)
    frame = conn.fetch(args.endpoint, limit=args.limit, max_pages=args.max_pages,
                       params=params)
    if args.output:
        write_frame(frame, args.output)
        meta = frame.attrs.get("restconnect", {})
        print(f"wrote {len(frame)} rows from {meta.get('pages', '?')} pages to "
              f"{args.output}")
    else:
        import pandas as pd

        with pd.option_context("display.max_columns", 12, "display.width", 120):
            print(frame)
    return 0


def write_frame(frame: Any, path: str) -> None:
    """Write a frame as CSV, Parquet or JSON Lines, by file extension."""
    lowered = path.lower()
    if lowered.endswith((".csv", ".parquet", ".pq", ".jsonl", ".ndjson")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if lowered.endswith(".csv"):
        _json_cells(frame).to_csv(path, index=False)
    elif lowered.endswith((".parquet", ".pq")):
        frame.to_parquet(path, index=False)
    elif lowered.endswith((".jsonl", ".ndjson")):
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        usage_error(f"cannot tell the format of {path!r}; use .csv, .parquet or .jsonl")


def _json_cells(frame: Any) -> Any:
    """Lists and objects as JSON text, as extract jobs write them to CSV."""
    import orjson

    nested = [column for column in frame.columns if frame[column].map(
        lambda value: isinstance(value, (list, dict))).any()]
    if not nested:
        return frame
    copy = frame.copy()
    for column in nested:
        copy[column] = copy[column].map(
            lambda value: orjson.dumps(value).decode()
            if isinstance(value, (list, dict)) else value)
    return copy


def _cmd_demo(args: argparse.Namespace) -> int:
    from restconnect.demo import run_demo

    return run_demo(rows=args.rows)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from restconnect.sandbox import serve

    serve(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from restconnect._version import __version__

    parser = argparse.ArgumentParser(
        prog="restconnect", description="Pull data from REST APIs into tables.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--debug", action="store_true",
                        help="log every request and show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    _add(commands, "list", _cmd_list, "list the connectors that can be found")
    show = _add(commands, "show", _cmd_show, "describe a connector")
    show.add_argument("name")
    validate = _add(commands, "validate", _cmd_validate, "check spec files")
    validate.add_argument("files", nargs="+")
    _add(commands, "schema", _cmd_schema, "print the JSON Schema of the spec format")
    fetch = _add(commands, "fetch", _cmd_fetch, "fetch an endpoint into a table")
    fetch.add_argument("connector")
    fetch.add_argument("endpoint")
    fetch.add_argument("-p", "--param", action="append", default=[],
                       metavar="NAME=VALUE", help="a parameter (repeatable)")
    fetch.add_argument("-o", "--output", help="write .csv, .parquet or .jsonl")
    fetch.add_argument("--limit", type=positive_int,
                       help="stop after this many records")
    fetch.add_argument("--max-pages", type=positive_int,
                       help="stop after this many pages")
    fetch.add_argument("--base-url", help="override the spec's base URL")
    demo = _add(commands, "demo", _cmd_demo, "fetch from the embedded sandbox API")
    demo.add_argument("--rows", type=int, default=5, help="rows of the sample shown")
    sandbox = _add(commands, "sandbox", None, "the embedded sandbox API")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION")
    sandbox_commands.required = True
    serve = _add(sandbox_commands, "serve", _cmd_sandbox,
                 "serve the sandbox until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8765)
    _add_extra_commands(commands)
    return parser


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a whole number of 1 or more")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0 to 65535)")
    return number


def _add(commands: Any, name: str, func: Callable[[argparse.Namespace], int] | None,
         help_text: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def _add_extra_commands(commands: Any) -> None:
    import importlib

    for target in EXTRA_COMMANDS.values():
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        register = getattr(module, attr, None)
        if register is not None:
            register(commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RestConnectError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"restconnect: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("restconnect: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (head, less) went away; nothing more to say.
        sys.stderr.close()
        return 0
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        where = f" {exc.filename}" if exc.filename else ""
        print(f"restconnect: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
