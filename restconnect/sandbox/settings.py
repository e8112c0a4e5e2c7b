"""The sandbox's runtime settings, changeable while it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

__all__ = ["ALL_METHODS", "Settings"]

#: Every auth method the sandbox verifies, by the spec's method name.
ALL_METHODS = ("api_key", "basic", "bearer", "hmac", "jwt", "oauth2")


@dataclass
class Settings:
    """Knobs tests turn, through ``Sandbox.configure()`` or ``POST /_sandbox/config``.

    Attributes:
        latency: seconds every API request waits before it is answered.
        jwt_ttl: lifetime in seconds of tokens from ``POST /auth/login``.
        token_ttl: lifetime in seconds of OAuth access tokens.
        expires_in_as_string: send ``expires_in`` as a string, as some
            providers do.
        quota: requests per window for each credential.
        quota_window: the rate-limit window in seconds.
        rotating_quota: requests per window for each of the rotating API keys.
        rotating_window: the window in seconds of the rotating API keys.
        auth: path prefix -> accepted auth methods; the longest prefix wins.
            ``none`` in a list lets requests without credentials in.
        max_page_size: the largest page a list endpoint returns.
        hmac_skew: how far in seconds an HMAC timestamp may be from the clock.
    """

    latency: float = 0.0
    jwt_ttl: float = 300.0
    token_ttl: float = 3600.0
    expires_in_as_string: bool = False
    quota: int = 5000
    quota_window: float = 3600.0
    rotating_quota: int = 5
    rotating_window: float = 60.0
    auth: dict[str, list[str]] = field(
        default_factory=lambda: {"/": list(ALL_METHODS)})
    max_page_size: int = 100
    hmac_skew: float = 300.0

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` and return the previous values of what changed.

        Raises:
            ValueError: an unknown setting or a value of the wrong type.
        """
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown sandbox settings: {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
        checked = {name: _check(name, value, getattr(self, name))
                   for name, value in changes.items()}
        previous = {name: getattr(self, name) for name in checked}
        for name, value in checked.items():
            setattr(self, name, value)
        return previous

    def copy(self) -> Settings:
        return replace(self, auth={k: list(v) for k, v in self.auth.items()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def methods_for(self, path: str) -> list[str]:
        """The auth methods accepted on ``path``."""
        best = ""
        for prefix in self.auth:
            if path.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.auth.get(best, list(ALL_METHODS))


def _check(name: str, value: Any, current: Any) -> Any:
    if name == "auth":
        return _check_auth(value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"setting {name} takes true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"setting {name} takes a number, got {value!r}")
    if value < 0:
        raise ValueError(f"setting {name} may not be negative")
    return type(current)(value)


def _check_auth(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ValueError("setting auth maps path prefixes to lists of methods")
    allowed = set(ALL_METHODS) | {"none"}
    for prefix, methods in value.items():
        if not str(prefix).startswith("/") or not isinstance(methods, (list, tuple)):
            raise ValueError("setting auth maps '/prefix' to a list of methods")
        wrong = sorted(set(methods) - allowed)
        if wrong:
            raise ValueError(f"unknown auth methods {wrong}; "
                             f"known: {', '.join(sorted(allowed))}")
    return {str(prefix): list(methods) for prefix, methods in value.items()}
