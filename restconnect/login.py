"""``restconnect login NAME`` and ``restconnect logout NAME``.

``login`` asks for each credential field of a connector that nothing else
provides (a hidden prompt for secrets), stores the answers in the OS keyring
under the service ``restconnect:<name>``, and, for methods that sign in with
a person (OAuth authorization code or device flow), runs the sign-in so the
token lands in the token store. ``logout`` removes both again.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from restconnect.credentials import (
    FieldRequest,
    field_requests,
    find_values,
    forget_in_keyring,
    remember_in_keyring,
)

__all__ = ["add_cli", "login", "logout"]

logger = logging.getLogger(__name__)

Ask = Callable[[FieldRequest], str]


def _requests(spec: Any) -> list[FieldRequest]:
    found: dict[str, FieldRequest] = {}
    for entry in spec.auth_entries:
        for request in field_requests(entry):
            found.setdefault(request.field.name, request)
    return list(found.values())


def terminal_ask(request: FieldRequest) -> str:
    """Prompt on the terminal; secrets are not echoed."""
    field = request.field
    label = field.name + (f" ({field.help})" if field.help else "")
    if not field.required:
        label += " [optional, Enter to skip]"
    ask = getpass.getpass if field.secret else input
    return ask(f"{label}: ").strip()


def login(
    name: str,
    values: Mapping[str, Any] | None = None,
    *,
    ask: Ask | None = terminal_ask,
    base_url: str | None = None,
    mode: str = "auto",
    sign_in: bool = True,
) -> dict[str, Any]:
    """Store a connector's credentials in the keyring and sign in where needed.

    Args:
        name: a connector name or spec path.
        values: field values given up front (they are stored too).
        ask: asks for a field nothing provides; None asks nothing.
        base_url: overrides the spec's base URL for the sign-in.
        mode: the OAuth sign-in way: ``auto``, ``browser``, ``device`` or ``paste``.
        sign_in: also run the interactive sign-in of token methods.

    Returns:
        ``{"stored": [field names], "signed_in": [method names]}``.
    """
    from restconnect.catalog import resolve_spec

    spec = resolve_spec(name)
    given = dict(values or {})
    requests = _requests(spec)
    found = find_values(spec.name, requests, given, use_keyring=False)
    for request in requests:
        field = request.field.name
        if (
            found.get(field) is None
            and ask is not None
            and (request.field.required or request.field.secret)
        ):
            answer = ask(request)
            if answer:
                given[field] = answer
    stored = remember_in_keyring(spec.name, given)
    signed_in = _sign_in(spec, base_url, mode) if sign_in else []
    return {"stored": stored, "signed_in": signed_in}


def _sign_in(spec: Any, base_url: str | None, mode: str) -> list[str]:
    from restconnect.auth.token_base import TokenAuth
    from restconnect.connector import Connector

    conn = Connector(spec, base_url=base_url, interactive=True)
    done = []
    for handler in conn.auth:
        if isinstance(handler, TokenAuth) and not handler.silent:
            handler.login(mode=mode)
            done.append(handler.name)
    conn.close()
    return done


def logout(name: str, *, base_url: str | None = None) -> dict[str, Any]:
    """Remove a connector's keyring entries and stored tokens.

    Returns:
        ``{"removed": [field names], "tokens_removed": [method names]}``.
    """
    from restconnect.catalog import resolve_spec

    spec = resolve_spec(name)
    removed = forget_in_keyring(spec.name, [r.field.name for r in _requests(spec)])
    return {"removed": removed, "tokens_removed": _drop_tokens(spec, base_url)}


def _drop_tokens(spec: Any, base_url: str | None) -> list[str]:
    from restconnect.auth.token_base import TokenAuth
    from restconnect.connector import Connector
    from restconnect.exceptions import RestConnectError

    try:
        conn = Connector(spec, base_url=base_url, interactive=False)
    except RestConnectError as exc:
        logger.debug(
            "logout: cannot build %s handlers: %s", spec.name, type(exc).__name__
        )
        return []
    dropped = [h.name for h in conn.auth if isinstance(h, TokenAuth) and h.logout()]
    conn.close()
    return dropped


# ------------------------------------------------------------ command line


def add_cli(commands: Any) -> None:
    """Register the ``login`` and ``logout`` subcommands."""
    parser = commands.add_parser(
        "login",
        help="keep credentials in the OS keyring",
        description="Ask for a connector's credentials, keep "
        "them in the OS keyring and sign in where needed.",
    )
    parser.add_argument("name")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "browser", "device", "paste"],
        help="how OAuth methods sign in",
    )
    parser.add_argument("--base-url", help="override the spec's base URL")
    parser.add_argument(
        "--no-sign-in",
        action="store_true",
        help="store fields only; do not run an OAuth sign-in",
    )
    parser.set_defaults(func=_cmd_login)
    out = commands.add_parser(
        "logout",
        help="forget stored credentials and tokens",
        description="Remove a connector's keyring entries and stored tokens.",
    )
    out.add_argument("name")
    out.add_argument("--base-url", help="override the spec's base URL")
    out.set_defaults(func=_cmd_logout)


def _cmd_login(args: argparse.Namespace) -> int:
    try:
        result = login(
            args.name,
            base_url=args.base_url,
            mode=args.mode,
            sign_in=not args.no_sign_in,
        )
    except RuntimeError as exc:
        print(f"restconnect: {exc}", file=sys.stderr)
        return 1
    stored = ", ".join(result["stored"]) or "nothing"
    print(f"{args.name}: stored {stored} in the OS keyring")
    for method in result["signed_in"]:
        print(f"{args.name}: signed in ({method}); the token is in the token store")
    return 0


def _cmd_logout(args: argparse.Namespace) -> int:
    result = logout(args.name, base_url=args.base_url)
    removed = ", ".join(result["removed"]) or "nothing"
    print(f"{args.name}: removed {removed} from the OS keyring")
    for method in result["tokens_removed"]:
        print(f"{args.name}: removed the stored {method} token")
    return 0
