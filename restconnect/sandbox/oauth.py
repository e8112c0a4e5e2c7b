"""The sandbox's token endpoints: ``POST /oauth/token`` and ``POST /auth/login``.

The OAuth endpoint follows RFC 6749 (client credentials, refresh token with
rotation) and RFC 7523 (the jwt-bearer grant); errors use the RFC 6749
section 5.2 codes.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import unquote_plus

import jwt

from restconnect.sandbox.credentials import SCOPES, Keyring
from restconnect.sandbox.limits import Stats
from restconnect.sandbox.routing import (
    ApiError,
    Request,
    Response,
    Router,
    json_response,
)

__all__ = ["JWT_BEARER", "token_routes"]

logger = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(status: int, code: str, description: str, **headers: str) -> ApiError:
    return ApiError(status, description, code=code, headers=headers)


def token_routes(keyring: Keyring, stats: Stats) -> Router:
    """The routes of the login and OAuth token endpoints."""
    router = Router()

    @router.add("POST", "/oauth/token", "auth",
                "OAuth 2.0 token endpoint: client_credentials, refresh_token, "
                "jwt-bearer")
    def token(req: Request) -> Response:
        form = req.form()
        grant = form.get("grant_type", "")
        stats.record_token(grant)
        logger.debug("token request, grant %s", grant or "(none)")
        if grant == "client_credentials":
            answer = _client_credentials(keyring, req, form)
        elif grant == "refresh_token":
            answer = _refresh(keyring, req, form)
        elif grant == JWT_BEARER:
            answer = _jwt_bearer(keyring, req, form)
        elif not grant:
            raise _error(400, "invalid_request", "grant_type is required")
        else:
            raise _error(400, "unsupported_grant_type",
                         f"grant_type {grant!r} is not supported here")
        return json_response(answer, headers=dict(_NO_STORE), cacheable=False)

    @router.add("POST", "/auth/login", "auth",
                "JSON {username, password} -> {access_token: short-lived JWT}")
    def login(req: Request) -> Response:
        stats.record_login()
        body = req.json()
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "username and password are required",
                           code="invalid_request")
        if not keyring.check_password(username, password):
            raise ApiError(401, "wrong username or password", code="bad_credentials")
        return json_response(keyring.login_token(username), headers=dict(_NO_STORE),
                             cacheable=False)

    return router


def _client(keyring: Keyring, req: Request, form: dict[str, str], *,
            required: bool = True) -> str | None:
    """Authenticate the client by Basic header or by form fields (not both)."""
    header = req.header("Authorization") or ""
    in_form = "client_secret" in form
    if header.lower().startswith("basic "):
        if in_form:
            raise _error(400, "invalid_request",
                         "use one client authentication method, not two")
        client_id, secret = _basic_pair(header[6:].strip())
        challenge = {"WWW-Authenticate": 'Basic realm="sandbox"'}
    elif in_form:
        client_id, secret = form.get("client_id", ""), form["client_secret"]
        challenge = {}
    elif required:
        raise _error(401, "invalid_client", "client authentication is required",
                     **{"WWW-Authenticate": 'Basic realm="sandbox"'})
    else:
        return None
    if not keyring.check_client(client_id, secret):
        raise _error(401, "invalid_client", "unknown client or wrong secret",
                     **challenge)
    return client_id


def _basic_pair(value: str) -> tuple[str, str]:
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _error(401, "invalid_client", "malformed Basic credentials") from None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _scopes(form: dict[str, str], granted: frozenset[str]) -> frozenset[str]:
    requested = frozenset(form.get("scope", "").split())
    if not requested:
        return granted
    extra = requested - granted
    if extra:
        raise _error(400, "invalid_scope",
                     f"scope {' '.join(sorted(extra))} is not available; "
                     f"known: {' '.join(sorted(granted))}")
    return requested


def _client_credentials(keyring: Keyring, req: Request,
                        form: dict[str, str]) -> dict[str, object]:
    client = _client(keyring, req, form)
    scopes = _scopes(form, frozenset(SCOPES))
    return keyring.issue_access(keyring.login, client or "", scopes)


def _refresh(keyring: Keyring, req: Request, form: dict[str, str]) -> dict[str, object]:
    client = _client(keyring, req, form)
    token = form.get("refresh_token")
    if not token:
        raise _error(400, "invalid_request", "refresh_token is required")
    grant = keyring.redeem_refresh(token, client or "")
    if grant is None:
        raise _error(400, "invalid_grant",
                     "the refresh token is invalid, expired or already used")
    scopes = _scopes(form, grant.scopes)
    return keyring.issue_access(grant.login, grant.client, scopes, refresh=True)


def _jwt_bearer(keyring: Keyring, req: Request,
                form: dict[str, str]) -> dict[str, object]:
    _client(keyring, req, form, required=False)
    assertion = form.get("assertion")
    if not assertion:
        raise _error(400, "invalid_request", "assertion is required")
    audiences = [f"{req.base_url}/oauth/token", req.base_url]
    try:
        claims = keyring.verify_assertion(assertion, audiences)
    except jwt.InvalidTokenError as exc:
        raise _error(400, "invalid_grant",
                     f"the assertion was refused: {exc}") from None
    jti = claims.get("jti")
    if jti is not None and not keyring.use_jti(str(jti), float(claims["exp"])):
        raise _error(400, "invalid_grant", "the assertion's jti was already used")
    scopes = _scopes(form, frozenset(SCOPES))
    return keyring.issue_access(keyring.login, "jwt-bearer", scopes)
