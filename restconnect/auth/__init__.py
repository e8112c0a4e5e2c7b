"""Auth methods, looked up by the name a spec gives in ``auth.method``.

Built-in methods are imported on first use; third-party packages add more
through the ``restconnect.auth`` entry-point group or :func:`register_auth`.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import TypeVar

from restconnect.auth.base import AuthContext, AuthMethod, Field, NoOptions

__all__ = [
    "AuthContext",
    "AuthMethod",
    "Field",
    "NoOptions",
    "available_methods",
    "get_auth_method",
    "register_auth",
]

logger = logging.getLogger(__name__)

# name -> module that defines it; imported only when a spec asks for it.
_BUILTIN = {
    "api_key": "restconnect.auth.api_key",
    "aws_sigv4": "restconnect.auth.sigv4",
    "basic": "restconnect.auth.basic",
    "bearer": "restconnect.auth.bearer",
    "digest": "restconnect.auth.digest",
    "hmac": "restconnect.auth.hmac",
    "jwt": "restconnect.auth.jwt",
    "mtls": "restconnect.auth.mtls",
    "none": "restconnect.auth.none",
    "oauth1": "restconnect.auth.oauth1",
    "oauth2": "restconnect.auth.oauth2",
    "oidc": "restconnect.auth.oidc",
}

_registry: dict[str, type[AuthMethod]] = {}

M = TypeVar("M", bound=type[AuthMethod])


def register_auth(cls: M) -> M:
    """Register an auth method class under its ``name``; usable as a decorator."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _registry[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of every method a spec may use."""
    names = set(_BUILTIN) | set(_registry)
    names.update(ep.name for ep in entry_points(group="restconnect.auth"))
    return sorted(names)


def get_auth_method(name: str) -> type[AuthMethod]:
    """The class registered for ``name``.

    Raises:
        KeyError: no such method; the message lists the known ones.
    """
    if name in _registry:
        return _registry[name]
    if name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    else:
        for ep in entry_points(group="restconnect.auth"):
            if ep.name == name:
                register_auth(ep.load())
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(
            f"unknown auth method {name!r}; known: {', '.join(available_methods())}"
        ) from None
