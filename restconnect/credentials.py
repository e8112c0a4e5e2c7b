"""Where credential values come from.

One chain, first value wins: keyword arguments to ``connect()``; environment
variables (the field's declared variable, the spec's ``env:`` mapping, and
``RESTCONNECT_<CONNECTOR>_<FIELD>``); the OS keyring (service
``restconnect:<connector>``); non-secret values written in the spec; the
field's default; and, only when a person is there, a prompt. Otherwise
:class:`~restconnect.exceptions.CredentialsMissing` lists every way to
provide each missing field. An empty or blank value (``token=""``, a
variable set to spaces) counts as not given, whatever its source: the chain
goes on to the next one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from restconnect.auth.base import Field
from restconnect.exceptions import CredentialsMissing
from restconnect.secret import Secret

__all__ = [
    "FieldRequest",
    "env_names",
    "field_requests",
    "find_values",
    "forget_in_keyring",
    "in_notebook",
    "is_interactive",
    "keyring_service",
    "remember_in_keyring",
    "resolve_credentials",
    "set_prompter",
]

logger = logging.getLogger(__name__)

Prompter = Callable[[str, Sequence["FieldRequest"]], Mapping[str, str]]


@dataclass(frozen=True)
class FieldRequest:
    """A field to resolve, with the spec's settings for it."""

    field: Field
    method: str
    env: str | None = None
    literal: Any = None


def field_requests(entry: Any) -> list[FieldRequest]:
    """The fields of one spec auth entry, with the entry's env names and values."""
    from restconnect.auth import get_auth_method

    method = get_auth_method(entry.method)
    options = entry.options()
    return [FieldRequest(f, method.name, entry.env.get(f.name), options.get(f.name))
            for f in method.fields]


def keyring_service(connector: str) -> str:
    return f"restconnect:{connector}"


def env_names(connector: str, request: FieldRequest) -> list[str]:
    """Environment variables checked for a field, in order."""
    names = [request.env, request.field.env,
             f"RESTCONNECT_{connector.upper()}_{request.field.name.upper()}"]
    return list(dict.fromkeys(name for name in names if name))


def is_interactive() -> bool:
    """Whether a person can answer a prompt: a Jupyter kernel or a terminal."""
    if os.environ.get("RESTCONNECT_NONINTERACTIVE"):
        return False
    if in_notebook():
        return True
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()  # type: ignore[attr-defined]
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def _from_keyring(connector: str, name: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        return keyring.get_password(keyring_service(connector), name)
    except (KeyringError, RuntimeError) as exc:
        logger.debug("keyring unavailable: %s", type(exc).__name__)
        return None


_prompter: Prompter | None = None


def set_prompter(prompter: Prompter | None) -> None:
    """Install the function that asks a person for missing fields."""
    global _prompter
    _prompter = prompter


def _terminal_prompt(connector: str, missing: Sequence[FieldRequest]) -> dict[str, str]:
    import getpass

    values = {}
    for request in missing:
        label = f"{connector} {request.field.name}"
        if request.field.help:
            label += f" ({request.field.help})"
        ask = getpass.getpass if request.field.secret else input
        values[request.field.name] = ask(f"{label}: ")
    return values


def resolve_credentials(connector: str, requests: Sequence[FieldRequest],
                        given: Mapping[str, Any], *,
                        interactive: bool | None = None,
                        use_keyring: bool = True) -> dict[str, str | Secret | None]:
    """Find a value for every field.

    Returns:
        field name -> ``Secret`` for secret fields, ``str`` for the others,
        None for optional fields nobody set.

    Raises:
        CredentialsMissing: a required field has no value and nobody can be asked.
    """
    values: dict[str, Any] = {}
    missing: list[FieldRequest] = []
    for request in requests:
        value = _first_value(connector, request, given, use_keyring)
        if value is None and request.field.required:
            missing.append(request)
        values[request.field.name] = value
    if missing:
        blank = {r.field.name for r in missing if given.get(r.field.name) is not None}
        values.update(_ask(connector, missing, interactive, blank))
    return {name: _wrap(request_for(requests, name), value)
            for name, value in values.items()}


def request_for(requests: Sequence[FieldRequest], name: str) -> FieldRequest:
    return next(r for r in requests if r.field.name == name)


def _first_value(connector: str, request: FieldRequest, given: Mapping[str, Any],
                 use_keyring: bool) -> Any:
    name = request.field.name
    if not _is_blank(given.get(name)):
        return given[name]
    if given.get(name) is not None:
        logger.debug("%s: %s was given blank; looking further", connector, name)
    for variable in env_names(connector, request):
        if not _is_blank(os.environ.get(variable)):
            return os.environ[variable]
    if use_keyring:
        stored = _from_keyring(connector, name)
        if not _is_blank(stored):
            return stored
    if request.literal is not None:
        return str(request.literal)
    return request.field.default


def _is_blank(value: Any) -> bool:
    """Whether a value is missing, empty or only whitespace (a Secret too)."""
    if isinstance(value, Secret):
        value = value.reveal()
    return value is None or (isinstance(value, str) and not value.strip())


def find_values(connector: str, requests: Sequence[FieldRequest],
                given: Mapping[str, Any], *,
                use_keyring: bool = True) -> dict[str, Any]:
    """What the chain finds for each field without asking anyone (None: nothing)."""
    return {request.field.name: _first_value(connector, request, given, use_keyring)
            for request in requests}


def remember_in_keyring(connector: str, values: Mapping[str, Any]) -> list[str]:
    """Store field values in the OS keyring; returns the names stored.

    Raises:
        RuntimeError: no usable keyring backend on this computer.
    """
    import keyring
    from keyring.errors import KeyringError

    stored = []
    for name, value in values.items():
        plain = value.reveal() if isinstance(value, Secret) else value
        if not plain:
            continue
        try:
            keyring.set_password(keyring_service(connector), name, str(plain))
            kept = keyring.get_password(keyring_service(connector), name) == str(plain)
        except (KeyringError, RuntimeError) as exc:
            raise RuntimeError(f"the OS keyring refused to store {connector} {name}: "
                               f"{type(exc).__name__}") from None
        if not kept:
            raise RuntimeError(f"the OS keyring did not keep {connector} {name} (no "
                               "usable keyring backend on this computer)")
        stored.append(name)
    return stored


def forget_in_keyring(connector: str, names: Sequence[str]) -> list[str]:
    """Remove field values from the OS keyring; returns the names removed."""
    import keyring
    from keyring.errors import KeyringError, PasswordDeleteError

    removed = []
    for name in names:
        try:
            if keyring.get_password(keyring_service(connector), name) is None:
                continue
            keyring.delete_password(keyring_service(connector), name)
        except PasswordDeleteError:
            continue
        except (KeyringError, RuntimeError) as exc:
            logger.debug("keyring: cannot remove %s: %s", name, type(exc).__name__)
            continue
        removed.append(name)
    return removed


def _ask(connector: str, missing: Sequence[FieldRequest],
         interactive: bool | None, blank: set[str]) -> dict[str, str]:
    if interactive is None:
        interactive = is_interactive()
    prompter = _prompter or (_terminal_prompt if sys.stdin and sys.stdin.isatty()
                             else None)
    if interactive and prompter is not None:
        answers = dict(prompter(connector, missing))
        still = [r for r in missing if _is_blank(answers.get(r.field.name))]
        if not still:
            return answers
        missing = still
    raise CredentialsMissing(connector, {
        r.field.name: _ways(connector, r, r.field.name in blank) for r in missing})


def _ways(connector: str, request: FieldRequest, blank: bool = False) -> list[str]:
    name = request.field.name
    ways = [f"pass a non-blank {name}=... to connect() (the one given is blank)"
            if blank else f"pass {name}=... to connect()"]
    ways += [f"set ${variable}" for variable in env_names(connector, request)]
    ways.append(f"run 'restconnect login {connector}' to keep it in the OS keyring")
    return ways


def _wrap(request: FieldRequest, value: Any) -> str | Secret | None:
    if value is None:
        return None
    if request.field.secret:
        return value if isinstance(value, Secret) else Secret(str(value))
    return value.reveal() if isinstance(value, Secret) else str(value)
