"""What every token-based method shares: the token, its lifecycle and its store.

``TokenAuth`` keeps one current token, renews it shortly before it expires
(``leeway`` absorbs clock skew), and makes renewal single-flight: one thread
renews while the others wait and reuse the result, and the token store's file
lock does the same between processes (a notebook and a cron job). Each new
token is written to the store before it is used, so a rotated refresh token
cannot be lost.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict
from pydantic import Field as OptionField

from restconnect.auth.base import AuthContext, AuthMethod
from restconnect.exceptions import (
    AuthError,
    CredentialsMissing,
    HTTPStatusError,
    TokenRefreshError,
)
from restconnect.http import is_loopback
from restconnect.redact import redact_text, register_secret
from restconnect.secret import Secret
from restconnect.spec import fill_env_references

__all__ = ["Token", "TokenAuth", "TokenOptions", "oauth_error", "require_secure_url"]

logger = logging.getLogger(__name__)

_ERROR_STATUSES = (400, 401, 403)
_KNOWN_KEYS = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "scope",
        "id_token",
    }
)


def _secret(value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    text = value.reveal() if isinstance(value, Secret) else str(value)
    register_secret(text)
    return Secret(text)


@dataclass
class Token:
    """An access token and what came with it.

    Attributes:
        access_token: the value sent to the API.
        token_type: usually ``Bearer``.
        expires_at: epoch seconds, or None when the server gave no lifetime.
        refresh_token: for the refresh-token grant, if one was issued.
        scope: the granted scopes.
        id_token: an OpenID Connect ID token, if one was issued.
        obtained_at: epoch seconds when the token was received.
        extra: other fields of the token response (non-secret ones only).
    """

    access_token: Secret
    token_type: str = "Bearer"
    expires_at: float | None = None
    refresh_token: Secret | None = None
    scope: tuple[str, ...] = ()
    id_token: Secret | None = None
    obtained_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.access_token = _secret(self.access_token) or Secret("")
        self.refresh_token = _secret(self.refresh_token)
        self.id_token = _secret(self.id_token)

    def __repr__(self) -> str:
        return (
            f"Token(type={self.token_type!r}, expires_at={self.expires_at!r}, "
            f"scope={' '.join(self.scope)!r}, refresh={self.refresh_token is not None})"
        )

    @classmethod
    def from_response(
        cls,
        payload: Mapping[str, Any],
        *,
        previous: Token | None = None,
        now: float | None = None,
    ) -> Token:
        """Build a token from a token-endpoint answer.

        ``expires_in`` may be a number or a numeric string. A refresh token
        missing from the answer is kept from ``previous`` (no rotation).
        """
        now = time.time() if now is None else now
        refresh = payload.get("refresh_token") or (
            previous.refresh_token if previous is not None else None
        )
        scope = payload.get("scope")
        if scope is None and previous is not None:
            scope = list(previous.scope)
        return cls(
            access_token=payload.get("access_token"),
            token_type=str(payload.get("token_type") or "Bearer"),
            expires_at=_expiry(payload, now),
            refresh_token=refresh,
            scope=_scopes(scope),
            id_token=payload.get("id_token"),
            obtained_at=now,
            extra={
                k: v
                for k, v in payload.items()
                if k not in _KNOWN_KEYS and not _looks_secret(k)
            },
        )

    def lifetime(self) -> float | None:
        """Seconds between receipt and expiry."""
        return None if self.expires_at is None else self.expires_at - self.obtained_at

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds left, or None when unknown."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def is_expired(self, leeway: float = 0.0, now: float | None = None) -> bool:
        """Whether the token expires within ``leeway`` seconds.

        The leeway never exceeds half the token's lifetime, so a token that
        lives 30 s is not treated as expired from the start.
        """
        left = self.expires_in(now)
        if left is None:
            return False
        lifetime = self.lifetime()
        if lifetime is not None and lifetime > 0:
            leeway = min(leeway, lifetime / 2)
        return left <= leeway

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping for the (encrypted) token store."""
        return {
            "access_token": self.access_token.reveal(),
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token.reveal()
            if self.refresh_token
            else None,
            "scope": list(self.scope),
            "id_token": self.id_token.reveal() if self.id_token else None,
            "obtained_at": self.obtained_at,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """The inverse of :meth:`to_dict`."""
        return cls(
            access_token=data["access_token"],
            token_type=data.get("token_type") or "Bearer",
            expires_at=data.get("expires_at"),
            refresh_token=data.get("refresh_token"),
            scope=tuple(data.get("scope") or ()),
            id_token=data.get("id_token"),
            obtained_at=data.get("obtained_at") or time.time(),
            extra=dict(data.get("extra") or {}),
        )

    def values(self) -> list[str]:
        """The secret values in this token, for redaction."""
        return [
            s.reveal()
            for s in (self.access_token, self.refresh_token, self.id_token)
            if s
        ]


def _expiry(payload: Mapping[str, Any], now: float) -> float | None:
    expires_in = payload.get("expires_in")
    if expires_in not in (None, ""):
        try:
            return now + float(expires_in)
        except (TypeError, ValueError):
            raise AuthError(
                f"the token response has a non-numeric expires_in: "
                f"{str(expires_in)[:40]!r}"
            ) from None
    expires_at = payload.get("expires_at")
    if isinstance(expires_at, (int, float)):
        return float(expires_at)
    if isinstance(expires_at, str) and expires_at:
        return _parse_timestamp(expires_at)
    return None


def _parse_timestamp(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        logger.warning("ignoring an unreadable token expiry %r", value[:40])
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _scopes(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(str(item) for item in value)


def _looks_secret(name: str) -> bool:
    from restconnect.redact import is_sensitive_name

    return is_sensitive_name(name)


class TokenOptions(BaseModel):
    """Spec keys every token method accepts."""

    model_config = ConfigDict(extra="forbid")

    #: Renew this many seconds before expiry (absorbs clock skew).
    leeway: float = OptionField(60.0, ge=0, le=3600)
    #: Keep tokens in the encrypted token store between runs.
    store: bool = True
    #: A label keeping several signed-in accounts of one connector apart.
    account: str = ""


def expand_url(value: str, base_url: str = "") -> str:
    """Fill ``${VAR}``/``${VAR:-default}`` from the environment; resolve ``/path``.

    A spec may write ``token_url: /oauth/token`` (relative to the connector's
    base URL) or ``${AUTH_HOST:-https://auth.example.com}/token``.
    """

    def unset(match: re.Match[str]) -> str:
        raise AuthError(f"environment variable {match.group(1)} is not set "
                        f"(it is used in {value!r})")

    expanded = fill_env_references(value, unset)
    if expanded.startswith("/") and base_url:
        return base_url.rstrip("/") + expanded
    return expanded


def require_secure_url(
    url: str, what: str, connector: str = "", method: str = ""
) -> None:
    """Refuse to send credentials to ``url`` unless it is https or loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback(url):
        return
    raise AuthError(
        f"the {what} must be an https:// URL (plain http only to "
        f"127.0.0.1/localhost); got {parts.scheme}://{parts.hostname}",
        connector=connector or None,
        method=method or None,
    )


def oauth_error(exc: Exception) -> str:
    """The OAuth ``error`` code an oauthlib exception or AuthError carries."""
    return str(getattr(exc, "error", "") or getattr(exc, "oauth_error", "") or "")


class TokenAuth(AuthMethod):
    """Base class of methods that send an expiring token.

    Subclasses implement :meth:`obtain_token` (a new token without a person)
    and, when they can, :meth:`refresh` and :meth:`interactive_token`.

    Example:
        >>> class StaticTokenAuth(TokenAuth):                   # doctest: +SKIP
        ...     name = "static_token"
        ...     def obtain_token(self):
        ...         return Token(access_token="abc", expires_at=time.time() + 60)
    """

    Options = TokenOptions

    #: Whether obtain_token needs no person (client credentials, assertions).
    silent: bool = True

    def __init__(
        self,
        options: BaseModel | None = None,
        credentials: Mapping[str, str | Secret | None] | None = None,
        context: AuthContext | None = None,
        *,
        on_token: Callable[[Token], None] | None = None,
    ):
        super().__init__(options, credentials, context)
        self.on_token = on_token
        self._lock = threading.RLock()
        self._token: Token | None = None
        self._store_checked = False

    # ------------------------------------------------------------ hooks

    def obtain_token(self) -> Token:
        """A new token without asking anyone; interactive methods raise."""
        raise self.sign_in_needed()

    def refresh(self, token: Token) -> Token:
        """A new token from ``token.refresh_token``; AuthError if refused."""
        raise TokenRefreshError(
            "this method cannot refresh tokens",
            connector=self.context.connector,
            method=self.name,
        )

    def interactive_token(self, **kwargs: Any) -> Token:
        """Ask a person to sign in (browser, device code); the default is silent."""
        return self.obtain_token()

    def store_identity(self) -> str:
        """A non-secret key that tells this configuration's tokens apart."""
        return f"{self.name}|{getattr(self.options, 'account', '')}"

    # ------------------------------------------------------------ requests

    def url(self, value: str | None) -> str | None:
        """A URL option with environment references filled and ``/path`` resolved."""
        return expand_url(value, self.context.base_url) if value else value

    @property
    def leeway(self) -> float:
        return float(getattr(self.options, "leeway", 60.0))

    def authorization_value(self, token: Token) -> str:
        """The ``Authorization`` header value for ``token``."""
        scheme = token.token_type or "Bearer"
        if scheme.lower() == "bearer":
            scheme = "Bearer"
        return f"{scheme} {token.access_token.reveal()}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.authorization_value(self.token())
        return request

    def handle_401(self, response: requests.Response) -> bool:
        """Renew once after a 401, unless another thread already did."""
        sent = (
            response.request.headers.get("Authorization") if response.request else None
        )
        with self._lock:
            current = self._token
            if (
                current is not None
                and sent
                and self.authorization_value(current) != sent
            ):
                return True
            logger.debug(
                "%s: the API refused the token; renewing", self.context.connector
            )
            self._renew(rejected=current)
        return True

    # ------------------------------------------------------------ lifecycle

    def token(self) -> Token:
        """The current token, renewed first when it is missing or about to expire."""
        token = self._token
        if token is not None and not token.is_expired(self.leeway):
            return token
        with self._lock:
            if self._token is None and not self._store_checked:
                self._store_checked = True
                self._token = self._read_store()
            token = self._token
            if token is not None and not token.is_expired(self.leeway):
                return token
            return self._renew(rejected=None)

    def _renew(self, rejected: Token | None) -> Token:
        with self._store_lock():
            stored = self._read_store()
            if (
                stored is not None
                and not stored.is_expired(self.leeway)
                and not _same(stored, rejected)
                and not _same(stored, self._token)
            ):
                logger.debug(
                    "%s: using the token another process stored", self.context.connector
                )
                self._token = stored
                return stored
            base = stored or self._token
            token = self._new_token(base)
            self._accept(token)
            return token

    def _new_token(self, base: Token | None) -> Token:
        if base is not None and base.refresh_token:
            try:
                return self.refresh(base)
            except AuthError as exc:
                self._refresh_failed(exc)
        return self.obtain_token()

    def _refresh_failed(self, exc: AuthError) -> None:
        """After a failed refresh: clear a dead refresh token, fall back or raise."""
        refused = oauth_error(exc) == "invalid_grant"
        if refused:
            self.forget()
        if self.silent:
            logger.debug(
                "%s: refresh failed; fetching a new token", self.context.connector
            )
            return
        if not refused:
            raise exc
        name = self.context.connector or "NAME"
        raise TokenRefreshError(
            "the provider refused the refresh token (invalid_grant), so the stored "
            f"token was removed; sign in again with `restconnect login {name}`",
            connector=self.context.connector,
            method=self.name,
        ) from None

    def _accept(self, token: Token) -> None:
        """Persist first, then use: a rotated refresh token must never be lost."""
        self._save_store(token)
        self._token = token
        logger.debug(
            "%s: new token, expires in %s s",
            self.context.connector,
            None if token.expires_in() is None else round(token.expires_in()),
        )
        if self.on_token is not None:
            self.on_token(token)

    def login(self, **kwargs: Any) -> Token:
        """Sign in now (``restconnect login``), store the token and return it."""
        with self._lock:
            token = self.interactive_token(**kwargs)
            with self._store_lock():
                self._accept(token)
            return token

    def logout(self) -> bool:
        """Drop the current token and remove it from the store."""
        with self._lock:
            self._token = None
            return self.forget()

    def forget(self) -> bool:
        """Remove the stored token (after ``invalid_grant``)."""
        store = self._store()
        self._token = None
        if store is None:
            return False
        return store.delete(self.context.connector, self.store_identity())

    # ------------------------------------------------------------ the store

    def _store(self) -> Any:
        """The token store in use (the default one unless given; None if off)."""
        if not getattr(self.options, "store", True):
            return None
        if self.context.token_store is None:
            from restconnect.auth.tokens import default_token_store

            self.context.token_store = default_token_store()
        return self.context.token_store

    def _store_lock(self) -> contextlib.AbstractContextManager[None]:
        store = self._store()
        if store is None:
            return contextlib.nullcontext()
        return store.lock(self.context.connector, self.store_identity())

    def _read_store(self) -> Token | None:
        store = self._store()
        if store is None:
            return None
        data = store.load(self.context.connector, self.store_identity())
        if not data:
            return None
        try:
            return Token.from_dict(data)
        except (KeyError, TypeError, ValueError):
            logger.warning(
                "%s: ignoring an unreadable stored token", self.context.connector
            )
            return None

    def _save_store(self, token: Token) -> None:
        store = self._store()
        if store is None:
            return
        try:
            store.save(self.context.connector, self.store_identity(), token.to_dict())
        except OSError as exc:
            # The provider may have rotated the refresh token already: dropping
            # the new token now would lose the only valid one.
            logger.error(
                "%s: the token store cannot be written (%s); the new token is "
                "kept in memory only and the next run will sign in again",
                self.context.connector,
                exc.strerror or type(exc).__name__,
            )

    # ------------------------------------------------------------ side requests

    def post_token_request(
        self,
        url: str,
        data: Mapping[str, Any] | str,
        *,
        headers: Mapping[str, str] | None = None,
        what: str = "token endpoint",
    ) -> dict[str, Any]:
        """POST a form to a token endpoint; the parsed JSON answer, errors raised."""
        require_secure_url(url, what, self.context.connector, self.name)
        all_headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            **(headers or {}),
        }
        response = self.send("POST", url, data=data, headers=all_headers)
        return self.parse_token_answer(response, what)

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A side request through the connector's HTTP client (no API auth)."""
        context = self.context
        if context.http is None:
            context = AuthContext(connector=context.connector, http=_direct_http())
        try:
            return context.request(
                method, url, auth=False, accept_statuses=_ERROR_STATUSES, **kwargs
            )
        except HTTPStatusError as exc:
            raise AuthError(
                f"the {urlsplit(url).path or url} request failed with "
                f"HTTP {exc.status}",
                connector=self.context.connector,
                method=self.name,
            ) from None

    def parse_token_answer(
        self, response: requests.Response, what: str
    ) -> dict[str, Any]:
        """The JSON body of a token-endpoint answer; OAuth errors become AuthError."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Not quoted: a form-encoded or odd token answer holds a token no
            # one has registered for masking yet.
            kind = response.headers.get("Content-Type") or "no Content-Type"
            raise AuthError(
                f"the {what} answered HTTP {response.status_code} without "
                f"a JSON object ({kind}, {len(response.content)} bytes)",
                connector=self.context.connector,
                method=self.name,
            )
        if response.status_code >= 400 or "error" in body:
            raise self.protocol_error(body, response.status_code, what)
        return body

    def protocol_error(
        self, body: Mapping[str, Any], status: int, what: str
    ) -> AuthError:
        """An AuthError for an OAuth error answer; ``.oauth_error`` holds the code."""
        code = str(body.get("error") or f"http_{status}")
        description = redact_text(str(body.get("error_description") or ""))[:300]
        text = f"the {what} refused the request: {code}"
        if description:
            text += f" ({description})"
        exc = AuthError(text, connector=self.context.connector, method=self.name)
        exc.oauth_error = code  # type: ignore[attr-defined]
        return exc

    # ------------------------------------------------------------ reporting

    def sign_in_needed(self) -> CredentialsMissing:
        """The error for a token that needs a person, in a run that cannot ask one."""
        name = self.context.connector or "NAME"
        return CredentialsMissing(
            self.context.connector or self.name,
            {
                "token": [
                    f"run `restconnect login {name}` in a terminal",
                    "sign in from a notebook with the connector's Sign in button",
                ],
            },
        )

    def secrets(self) -> list[str]:
        values = super().secrets()
        token = self._token
        if token is not None:
            values.extend(token.values())
        return values

    def identity_key(self) -> str:
        """A cache-key digest that stays the same when the token is renewed."""
        import hashlib

        material = "\0".join(
            [
                self.name,
                self.context.connector,
                self.store_identity(),
                *sorted(v for v in super().secrets()),
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def subject(self) -> str | None:
        """Who the token belongs to, when known (overridden by OIDC)."""
        return None

    def describe(self) -> dict[str, Any]:
        token = self._token
        facts: dict[str, Any] = {"method": self.name, "signed_in": token is not None}
        subject = self.subject()
        if subject:
            facts["identity"] = subject
        if token is not None:
            facts["token_type"] = token.token_type
            facts["scopes"] = list(token.scope)
            facts["refreshable"] = token.refresh_token is not None
            if token.expires_at is not None:
                facts["expires_at"] = datetime.fromtimestamp(
                    token.expires_at, timezone.utc
                ).isoformat(timespec="seconds")
                facts["expires_in"] = max(0, round(token.expires_in() or 0))
        return facts


def _same(one: Token | None, other: Token | None) -> bool:
    if one is None or other is None:
        return False
    return one.access_token.reveal() == other.access_token.reveal()


def client_basic_header(client_id: str, client_secret: str) -> dict[str, str]:
    """``Authorization: Basic`` for client_secret_basic (RFC 6749 section 2.3.1).

    The id and secret are form-encoded before base64, as the RFC requires.
    """
    from requests.auth import _basic_auth_str

    return {
        "Authorization": _basic_auth_str(
            quote(client_id, safe=""), quote(client_secret, safe="")
        )
    }


class _DirectHttp:
    """Side requests for a handler used without a connector (plain requests)."""

    def __init__(self, timeout: float = 30.0):
        self.session = requests.Session()
        self.timeout = timeout

    def request(
        self,
        method: str,
        url: str,
        *,
        auth: Any = None,
        accept_statuses: Any = (),
        **kwargs: Any,
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            from restconnect.exceptions import TransportError

            raise TransportError(
                f"{method} {urlsplit(url).hostname}: {type(exc).__name__}"
            ) from None


_direct: _DirectHttp | None = None


def _direct_http() -> _DirectHttp:
    global _direct
    if _direct is None:
        _direct = _DirectHttp()
    return _direct
