"""OAuth 2.0 grants (RFC 6749, 7636, 8252, 8628, 8707), through oauthlib.

Supported grants: ``client_credentials``, ``authorization_code`` (always with
PKCE S256 and a checked ``state``), ``device_code`` and ``refresh_token``.
OAuth 2.1 removed the implicit and password grants, so a spec asking for them
is refused. oauthlib prepares every request body and URI and parses the
callback; requests go through the connector's ``HttpClient``.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field as OptionField
from pydantic import field_validator, model_validator

from restconnect.auth import register_auth
from restconnect.auth._loopback import LoopbackReceiver
from restconnect.auth.base import Field
from restconnect.auth.token_base import (
    Token,
    TokenAuth,
    TokenOptions,
    client_basic_header,
    oauth_error,
    require_secure_url,
)
from restconnect.exceptions import AuthError, TokenRefreshError
from restconnect.http import is_loopback
from restconnect.secret import Secret

__all__ = [
    "AuthorizationRequest",
    "DeviceAuthorization",
    "OAuth2Auth",
    "OAuth2Options",
]

logger = logging.getLogger(__name__)

GRANTS = ("client_credentials", "authorization_code", "device_code", "refresh_token")
_REMOVED = {"implicit", "password"}
_INTERACTIVE = {"authorization_code", "device_code"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SLOW_DOWN_STEP = 5.0


class OAuthCommonOptions(TokenOptions):
    """Spec keys shared by ``oauth2`` and ``oidc``."""

    #: Which grant obtains the first token.
    grant: str = "client_credentials"
    #: Scopes to request (a list, or one space-separated string).
    scopes: list[str] = OptionField(default_factory=list)
    #: ``audience`` parameter (Auth0 and others).
    audience: str | None = None
    #: RFC 8707 resource indicator(s).
    resource: str | list[str] | None = None
    #: How the client authenticates at the token endpoint; by default
    #: ``client_secret_basic`` with a secret and ``none`` without one.
    client_auth: Literal["client_secret_basic", "client_secret_post", "none"] | None = (
        None
    )
    #: The registered redirect URI; by default a free loopback port.
    redirect_uri: str | None = None
    #: Extra parameters for the authorization URL and the token request.
    authorize_params: dict[str, str] = OptionField(default_factory=dict)
    token_params: dict[str, str] = OptionField(default_factory=dict)
    #: Seconds to wait for the browser to come back to the loopback redirect.
    login_timeout: float = OptionField(300.0, gt=0, le=3600)

    @field_validator("scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value

    @field_validator("grant")
    @classmethod
    def _known_grant(cls, value: str) -> str:
        if value in _REMOVED:
            raise ValueError(
                f"the {value} grant is not supported: OAuth 2.1 removed the implicit "
                "and password grants; use authorization_code (with PKCE) or "
                "device_code for a person, client_credentials for a service"
            )
        if value not in GRANTS:
            raise ValueError(f"unknown grant {value!r}; use one of {', '.join(GRANTS)}")
        return value


class OAuth2Options(OAuthCommonOptions):
    """Spec keys of ``method: oauth2``."""

    token_url: str
    authorization_url: str | None = None
    device_authorization_url: str | None = None

    @model_validator(mode="after")
    def _endpoints_for_grant(self) -> OAuth2Options:
        if self.grant == "authorization_code" and not self.authorization_url:
            raise ValueError("grant authorization_code needs authorization_url")
        if self.grant == "device_code" and not self.device_authorization_url:
            raise ValueError("grant device_code needs device_authorization_url")
        return self


@dataclass
class AuthorizationRequest:
    """A started authorization-code sign-in: open ``url``, then complete it.

    Attributes:
        url: where to send the person's browser.
        state: the anti-forgery value the callback must bring back.
        code_verifier: the PKCE secret, sent with the code.
        redirect_uri: the callback address in this request.
        nonce: the OpenID Connect nonce, if any.
    """

    url: str
    state: str
    code_verifier: Secret
    redirect_uri: str
    nonce: str | None = None
    created_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        return f"AuthorizationRequest(redirect_uri={self.redirect_uri!r})"


@dataclass
class DeviceAuthorization:
    """A started device sign-in (RFC 8628): show the code, then poll.

    Attributes:
        user_code: what the person types at ``verification_uri``.
        verification_uri: the page to open on any device.
        verification_uri_complete: the same page with the code filled in.
        interval: seconds between polls (grows by 5 on ``slow_down``).
        expires_at: epoch seconds after which the code is dead.
    """

    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: float
    expires_at: float
    next_poll: float = 0.0

    def __repr__(self) -> str:
        return (
            f"DeviceAuthorization(user_code={self.user_code!r}, "
            f"verification_uri={self.verification_uri!r})"
        )

    def message(self) -> str:
        """The instruction to show a person."""
        return (
            f"To sign in, open {self.verification_uri} and enter the code "
            f"{self.user_code}"
        )


def _tell(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@register_auth
class OAuth2Auth(TokenAuth):
    """OAuth 2.0 access tokens, renewed before they expire.

    Example spec::

        auth:
          method: oauth2
          grant: client_credentials
          token_url: https://auth.example.com/oauth/token
          scopes: [read:data]
          env: {client_id: EXAMPLE_CLIENT_ID, client_secret: EXAMPLE_CLIENT_SECRET}
    """

    name = "oauth2"
    fields = (
        Field("client_id", help="OAuth client id"),
        Field(
            "client_secret",
            secret=True,
            required=False,
            help="OAuth client secret (confidential clients only)",
        ),
        Field(
            "refresh_token",
            secret=True,
            required=False,
            help="a refresh token issued elsewhere (grant: refresh_token)",
        ),
    )
    Options = OAuth2Options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pending: AuthorizationRequest | None = None

    # ------------------------------------------------------------ configuration

    @property
    def silent(self) -> bool:  # type: ignore[override]
        return self.options.grant in ("client_credentials", "refresh_token")

    def endpoints(self) -> dict[str, str | None]:
        """The token, authorization and device endpoints."""
        return {
            "token": self.url(self.options.token_url),
            "authorization": self.url(self.options.authorization_url),
            "device": self.url(self.options.device_authorization_url),
        }

    def endpoint(self, kind: str) -> str:
        url = self.endpoints().get(kind)
        if not url:
            raise AuthError(
                f"no {kind} endpoint is configured",
                connector=self.context.connector,
                method=self.name,
            )
        return url

    def store_identity(self) -> str:
        return "|".join(
            [
                self.name,
                self.endpoint("token"),
                self.credential("client_id") or "",
                self.options.grant,
                " ".join(sorted(self.options.scopes)),
                self.options.account,
            ]
        )

    @property
    def client_id(self) -> str:
        value = self.credential("client_id")
        if not value:
            raise AuthError(
                "client_id is not set",
                connector=self.context.connector,
                method=self.name,
            )
        return value

    def client_auth(self) -> str:
        if self.options.client_auth:
            return self.options.client_auth
        return "client_secret_basic" if self.credential("client_secret") else "none"

    # ------------------------------------------------------------ token requests

    def token_request(self, body: str, *, extra: bool = True) -> dict[str, Any]:
        """POST an oauthlib-prepared body with client authentication."""
        pairs = [(k, v) for k, v in parse_qsl(body, keep_blank_values=True)
                 if k not in ("client_id", "client_secret")]
        headers = self._authenticate_client(pairs)
        if extra:
            pairs.extend(self._extra_params())
        return self.post_token_request(self.endpoint("token"), pairs, headers=headers)

    def _authenticate_client(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """The headers for ``client_auth``; form-field credentials go onto ``pairs``."""
        method = self.client_auth()
        secret = self.credential("client_secret") or ""
        if method == "client_secret_basic":
            return client_basic_header(self.client_id, secret)
        pairs.append(("client_id", self.client_id))
        if method == "client_secret_post":
            pairs.append(("client_secret", secret))
        return {}

    def _extra_params(self) -> list[tuple[str, str]]:
        params = list(self.options.token_params.items())
        if self.options.audience:
            params.append(("audience", self.options.audience))
        resources = self.options.resource
        if isinstance(resources, str):
            resources = [resources]
        params.extend(("resource", value) for value in resources or ())
        return params

    def _client(self, kind: str = "web") -> Any:
        from oauthlib.oauth2 import BackendApplicationClient, WebApplicationClient

        if kind == "backend":
            return BackendApplicationClient(self.client_id)
        return WebApplicationClient(self.client_id)

    def obtain_token(self) -> Token:
        grant = self.options.grant
        if grant == "client_credentials":
            return self.client_credentials()
        if grant == "refresh_token":
            return self._redeem_seed()
        if not self.context.interactive:
            raise self.sign_in_needed()
        return self.interactive_token()

    def _redeem_seed(self) -> Token:
        """Redeem the refresh token given as a credential (grant: refresh_token)."""
        seed = self.credential("refresh_token")
        if not seed:
            raise self.sign_in_needed()
        try:
            return self.refresh(Token(access_token="", refresh_token=seed))
        except AuthError as exc:
            if oauth_error(exc) != "invalid_grant":
                raise
        raise TokenRefreshError(
            "the refresh_token credential was refused (invalid_grant): it was "
            "already used, expired or revoked; provide a new one",
            connector=self.context.connector,
            method=self.name,
        )

    def client_credentials(self) -> Token:
        """The client-credentials grant (RFC 6749 section 4.4)."""
        scope = self.options.scopes or None
        body = self._client("backend").prepare_request_body(scope=scope)
        return self.new_token(self.token_request(body))

    def refresh(self, token: Token) -> Token:
        """The refresh-token grant; a rotated refresh token replaces the old one."""
        assert token.refresh_token is not None
        body = self._client().prepare_refresh_body(
            refresh_token=token.refresh_token.reveal()
        )
        logger.debug("%s: refreshing the access token", self.context.connector)
        return self.new_token(self.token_request(body, extra=False), previous=token)

    def new_token(
        self,
        answer: Mapping[str, Any],
        *,
        previous: Token | None = None,
        nonce: str | None = None,
    ) -> Token:
        """Check and convert a token answer (OIDC validates the ID token here)."""
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error

        try:
            self._client().parse_request_body_response(_json_text(answer))
        except (OAuth2Error, ValueError, Warning) as exc:
            raise AuthError(
                f"the token answer is not usable: {type(exc).__name__}",
                connector=self.context.connector,
                method=self.name,
            ) from None
        return Token.from_response(answer, previous=previous)

    # ------------------------------------------------------------ authorization code

    def begin_authorization(
        self, redirect_uri: str | None = None
    ) -> AuthorizationRequest:
        """Start an authorization-code + PKCE sign-in; open ``.url`` in a browser."""
        from oauthlib.common import generate_token

        client = self._client()
        verifier = client.create_code_verifier(64)
        challenge = client.create_code_challenge(verifier, "S256")
        state = generate_token(32)
        redirect = redirect_uri or self.options.redirect_uri or _free_loopback_uri()
        nonce = generate_token(32) if self.uses_nonce() else None
        params = {
            **self.authorize_params(),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if nonce:
            params["nonce"] = nonce
        authorization_url = self.endpoint("authorization")
        require_secure_url(
            authorization_url, "authorization URL", self.context.connector, self.name
        )
        url = _restore_scheme(
            authorization_url,
            client.prepare_request_uri(
                _oauthlib_url(authorization_url),
                redirect_uri=redirect,
                scope=self.options.scopes or None,
                state=state,
                **params,
            ),
        )
        self._pending = AuthorizationRequest(
            url=url,
            state=state,
            code_verifier=Secret(verifier),
            redirect_uri=redirect,
            nonce=nonce,
        )
        return self._pending

    def authorize_params(self) -> dict[str, str]:
        """Extra authorization-URL parameters (audience, resource, spec extras)."""
        params = dict(self.options.authorize_params)
        if self.options.audience:
            params.setdefault("audience", self.options.audience)
        if isinstance(self.options.resource, str):
            params.setdefault("resource", self.options.resource)
        if "offline_access" in self.options.scopes:
            # OpenID Connect Core 11: offline access needs the consent prompt.
            params.setdefault("prompt", "consent")
        return params

    def uses_nonce(self) -> bool:
        return False

    def complete_authorization(
        self, callback_url: str, request: AuthorizationRequest | None = None
    ) -> Token:
        """Finish a sign-in from the callback URL (pasted or caught on loopback).

        The token is stored and used from now on.
        """
        token = self.exchange_code(callback_url, request)
        with self._lock, self._store_lock():
            self._accept(token)
        return token

    def exchange_code(
        self, callback_url: str, request: AuthorizationRequest | None = None
    ) -> Token:
        """Check ``state`` and trade the code for a token (not stored)."""
        request = request or self._pending
        if request is None:
            raise AuthError(
                "no sign-in was started; call begin_authorization() first",
                connector=self.context.connector,
                method=self.name,
            )
        code = self._code_from_callback(callback_url.strip(), request)
        body = self._client().prepare_request_body(
            code=code,
            redirect_uri=request.redirect_uri,
            code_verifier=request.code_verifier.reveal(),
        )
        token = self.new_token(self.token_request(body), nonce=request.nonce)
        self._pending = None
        return token

    def _code_from_callback(
        self, callback_url: str, request: AuthorizationRequest
    ) -> str:
        from oauthlib.oauth2.rfc6749 import errors

        self.check_callback_issuer(callback_url)
        try:
            params = self._client().parse_request_uri_response(
                _oauthlib_url(callback_url), state=request.state
            )
        except errors.MismatchingStateError:
            raise AuthError(
                "the callback's state does not match this sign-in "
                "(a stale or forged redirect); start again",
                connector=self.context.connector,
                method=self.name,
            ) from None
        except errors.OAuth2Error as exc:
            raise self._callback_error(exc) from None
        return str(params["code"])

    def check_callback_issuer(self, callback_url: str) -> None:
        """RFC 9207 ``iss`` check; OIDC knows its issuer and overrides this."""

    def _callback_error(self, exc: Exception) -> AuthError:
        code = oauth_error(exc) or "invalid_request"
        text = {"access_denied": "sign-in was cancelled or denied at the provider"}.get(
            code, f"the provider returned an error to the callback: {code}"
        )
        error = AuthError(text, connector=self.context.connector, method=self.name)
        error.oauth_error = code  # type: ignore[attr-defined]
        return error

    def browser_sign_in(
        self,
        *,
        open_browser: bool = True,
        notify: Callable[[str], None] = _tell,
        timeout: float | None = None,
    ) -> Token:
        """Sign in through a browser and a loopback redirect (not stored)."""
        configured = self.options.redirect_uri
        path, port = "/callback", 0
        if configured:
            parts = urlsplit(configured)
            if parts.hostname not in _LOOPBACK_HOSTS:
                raise AuthError(
                    "the redirect_uri is not a loopback address, so the "
                    "callback cannot be caught here; use paste mode",
                    connector=self.context.connector,
                    method=self.name,
                )
            path, port = parts.path or "/", parts.port or 0
        with LoopbackReceiver(path=path, port=port) as receiver:
            request = self.begin_authorization(receiver.redirect_uri)
            notify(f"Open this address to sign in: {request.url}")
            if open_browser:
                webbrowser.open(request.url)
            callback = receiver.wait(timeout or self.options.login_timeout)
        return self.exchange_code(callback, request)

    def paste_sign_in(
        self,
        *,
        notify: Callable[[str], None] = _tell,
        read: Callable[[str], str] = input,
    ) -> Token:
        """Sign in where no loopback redirect can reach us: paste the callback URL."""
        request = self.begin_authorization()
        notify(
            f"Open this address to sign in: {request.url}\nAfter signing in, your "
            "browser lands on a page that may not load; copy its full address."
        )
        return self.exchange_code(read("Callback URL: "), request)

    # ------------------------------------------------------------ device flow

    def begin_device(self) -> DeviceAuthorization:
        """Start a device sign-in (RFC 8628); show ``.message()`` to the person."""
        pairs: list[tuple[str, str]] = []
        if self.options.scopes:
            pairs.append(("scope", " ".join(self.options.scopes)))
        pairs.extend(self._extra_params())
        headers = self._authenticate_client(pairs)
        answer = self.post_token_request(
            self.endpoint("device"),
            pairs,
            headers=headers,
            what="device authorization endpoint",
        )
        return _device_from(answer)

    def poll_device(
        self,
        device: DeviceAuthorization,
        *,
        wait: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Token | None:
        """Poll until the person approves; with ``wait=False`` poll once.

        The token is stored and used from now on. Returns None only when
        ``wait`` is False and the sign-in is still pending.
        """
        token = self.device_token(device, wait=wait, sleep=sleep)
        if token is not None:
            with self._lock, self._store_lock():
                self._accept(token)
        return token

    def device_token(
        self,
        device: DeviceAuthorization,
        *,
        wait: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Token | None:
        """The device-grant polling loop (not stored)."""
        from oauthlib.oauth2 import DeviceClient

        body = DeviceClient(self.client_id).prepare_request_body(
            device.device_code.reveal(), include_client_id=False
        )
        while True:
            if time.time() >= device.expires_at:
                raise self._device_error("expired_token")
            if wait:
                sleep(max(0.0, device.next_poll - time.time()))
            device.next_poll = time.time() + device.interval
            try:
                return self.new_token(self.token_request(body, extra=False))
            except AuthError as exc:
                self._device_pending(device, exc)
            if not wait:
                return None

    def _device_pending(self, device: DeviceAuthorization, exc: AuthError) -> None:
        code = oauth_error(exc)
        if code == "slow_down":
            device.interval += _SLOW_DOWN_STEP
            device.next_poll = time.time() + device.interval
            logger.debug("device flow: slow_down, polling every %s s", device.interval)
        elif code != "authorization_pending":
            raise (
                self._device_error(code)
                if code in ("expired_token", "access_denied")
                else exc
            )

    def _device_error(self, code: str) -> AuthError:
        text = {
            "expired_token": "the device code expired before the sign-in was "
            "approved; start the sign-in again",
            "access_denied": "the sign-in was denied on the verification page",
        }[code]
        error = AuthError(text, connector=self.context.connector, method=self.name)
        error.oauth_error = code  # type: ignore[attr-defined]
        return error

    def device_sign_in(
        self,
        *,
        notify: Callable[[str], None] = _tell,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Token:
        """The whole device flow, telling the person what to do (not stored)."""
        device = self.begin_device()
        notify(device.message())
        token = self.device_token(device, wait=True, sleep=sleep)
        assert token is not None
        return token

    # ------------------------------------------------------------ sign-in entry point

    def interactive_token(self, mode: str = "auto", **kwargs: Any) -> Token:
        """Run the configured grant with a person.

        Args:
            mode: ``auto`` (the grant's natural flow), ``browser``, ``paste`` or
                ``device``.
            kwargs: passed to the flow (``notify``, ``open_browser``, ``read``).
        """
        grant = self.options.grant
        if grant not in _INTERACTIVE and mode == "auto":
            return self.obtain_token()
        if mode == "device" or (mode == "auto" and grant == "device_code"):
            return self.device_sign_in(**kwargs)
        if mode == "paste":
            return self.paste_sign_in(**kwargs)
        return self.browser_sign_in(**kwargs)

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts["grant"] = self.options.grant
        return facts


def _device_from(answer: Mapping[str, Any]) -> DeviceAuthorization:
    try:
        device_code = str(answer["device_code"])
        user_code = str(answer["user_code"])
        # Google spells it verification_url.
        uri = str(answer.get("verification_uri") or answer["verification_url"])
    except KeyError as exc:
        raise AuthError(
            f"the device authorization answer lacks {exc.args[0]}"
        ) from None
    now = time.time()
    return DeviceAuthorization(
        device_code=Secret(device_code),
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=answer.get("verification_uri_complete"),
        interval=float(answer.get("interval") or 5),
        expires_at=now + float(answer.get("expires_in") or 600),
        next_poll=now,
    )


def _json_text(answer: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(answer))


def _oauthlib_url(url: str) -> str:
    """oauthlib insists on https; a loopback http URL is allowed by our own rules."""
    if urlsplit(url).scheme == "http" and is_loopback(url):
        return "https" + url[len("http") :]
    return url


def _restore_scheme(original: str, built: str) -> str:
    if original.startswith("http://") and built.startswith("https://"):
        return "http" + built[len("https") :]
    return built


def _free_loopback_uri(path: str = "/callback") -> str:
    """A loopback redirect URI on a port free right now (for paste-back sign-in)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
