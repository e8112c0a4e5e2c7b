"""The sandbox's demo credentials and the server-side check of every method.

All secrets are random per start. :class:`Keyring` holds them, issues and
verifies tokens, and turns a request's credentials into a :class:`Principal`.
JWTs are signed and verified with PyJWT, keys come from ``cryptography``, and
signatures are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from restconnect.sandbox.routing import ApiError, Request
from restconnect.sandbox.settings import Settings

__all__ = [
    "SCOPES",
    "Credentials",
    "Keyring",
    "Principal",
    "canonical_query",
    "hmac_signature",
    "string_to_sign",
]

logger = logging.getLogger(__name__)

#: Every OAuth scope the sandbox grants; each service needs its own.
SCOPES = ("code:read", "pay:read")
ISSUER = "restconnect-sandbox"
LOGIN_KID = "sandbox-login"
MAX_ASSERTION_LIFETIME = 3600

_PUBLIC_FIELDS = frozenset({
    "username", "other_username", "client_id", "scope", "token_url", "login_url",
    "jwt_issuer", "jwt_audience", "rsa_kid", "ec_kid", "hs_kid", "hmac_key_id",
    "base_url",
})


class Credentials(dict):  # type: ignore[type-arg]
    """The demo credentials: a plain dict whose repr hides the secret values."""

    def __repr__(self) -> str:
        shown = {key: (value if key in _PUBLIC_FIELDS else "***")
                 for key, value in self.items()}
        return f"Credentials({shown!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Principal:
    """Who a request's credentials say is calling.

    Attributes:
        login: the code-hosting user the credential belongs to.
        method: the auth method that proved it (``bearer``, ``oauth2``, ...).
        bucket: the rate-limit bucket the request spends from.
        rotating: whether the bucket is one of the small rotating-key quotas.
        scopes: the OAuth scopes granted, or None when the method has none.
    """

    login: str
    method: str
    bucket: str
    rotating: bool = False
    scopes: frozenset[str] | None = None


@dataclass
class _Grant:
    login: str
    client: str
    scopes: frozenset[str]
    expires_at: float = math.inf


def canonical_query(raw_query: str) -> str:
    """The query as the HMAC scheme signs it.

    Pairs are decoded, sorted by name then value, and each name and value is
    percent-encoded with only ``A-Z a-z 0-9 - _ . ~`` left as they are.
    """
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in pairs)


def string_to_sign(method: str, path: str, raw_query: str, timestamp: str,
                   nonce: str, body: bytes) -> str:
    """METHOD, path, canonical query, timestamp, nonce and body SHA-256, one a line."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, canonical_query(raw_query), timestamp,
                      nonce, digest))


def hmac_signature(secret: str, text: str) -> str:
    """Base64 of HMAC-SHA256 over ``text`` with ``secret``."""
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def _unauthorized(message: str, allowed: list[str], *, code: str = "unauthorized",
                  token_error: bool = False) -> ApiError:
    challenges = []
    if token_error:
        challenges.append(f'Bearer realm="sandbox", error="invalid_token", '
                          f'error_description="{message}"')
    elif {"bearer", "oauth2", "jwt"} & set(allowed):
        challenges.append('Bearer realm="sandbox"')
    if "basic" in allowed:
        challenges.append('Basic realm="sandbox"')
    headers = {"WWW-Authenticate": ", ".join(challenges)} if challenges else {}
    return ApiError(401, message, code=code, headers=headers)


class Keyring:
    """Every demo secret, the token stores and the verification of requests.

    Args:
        logins: the first two code-hosting logins; credentials map to them.
        settings: the live settings (token lifetimes, HMAC skew).
    """

    def __init__(self, logins: list[str], settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self.login, self.other_login = logins[0], logins[1]
        self._make_static()
        self._make_keys()
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._nonces: dict[str, float] = {}
        self._jtis: dict[str, float] = {}
        self.initial_refresh_token = self.issue_refresh_token()

    def _make_static(self) -> None:
        self.token = "sbx_tok_" + secrets.token_urlsafe(24)
        self.other_token = "sbx_tok_" + secrets.token_urlsafe(24)
        self.api_key = "sbx_key_" + secrets.token_urlsafe(24)
        self.api_keys = ["sbx_rot_" + secrets.token_urlsafe(18) for _ in range(3)]
        self.password = secrets.token_urlsafe(16)
        self.other_password = secrets.token_urlsafe(16)
        self.client_id = "sandbox-client"
        self.client_secret = secrets.token_urlsafe(32)
        self.hmac_key_id = "sbx-hmac-1"
        self.hmac_secret = secrets.token_urlsafe(32)
        self._tokens = {self.token: ("token", self.login),
                        self.other_token: ("other_token", self.other_login)}
        self._keys = {self.api_key: ("main", False)}
        self._keys.update({key: (f"rotating{n}", True)
                           for n, key in enumerate(self.api_keys, 1)})
        self._passwords = {self.login: self.password,
                           self.other_login: self.other_password}

    def _make_keys(self) -> None:
        self.jwt_issuer = "sandbox-service@sandbox.invalid"
        self._login_secret = secrets.token_bytes(32)
        self.hs_secret = secrets.token_urlsafe(32)
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._ec = ec.generate_private_key(ec.SECP256R1())
        self._assertion_keys: dict[str, tuple[Any, str]] = {
            "sandbox-rsa": (self._rsa.public_key(), "RS256"),
            "sandbox-ec": (self._ec.public_key(), "ES256"),
            "sandbox-hs": (self.hs_secret.encode(), "HS256"),
        }

    # ------------------------------------------------------------ exposure

    def public(self, base_url: str) -> Credentials:
        """The demo credentials, with absolute URLs for ``base_url``."""
        token_url = f"{base_url}/oauth/token"
        return Credentials(
            base_url=base_url, token=self.token, other_token=self.other_token,
            api_key=self.api_key, api_keys=list(self.api_keys),
            username=self.login, password=self.password,
            other_username=self.other_login, other_password=self.other_password,
            client_id=self.client_id, client_secret=self.client_secret,
            refresh_token=self.initial_refresh_token, scope=" ".join(SCOPES),
            token_url=token_url, login_url=f"{base_url}/auth/login",
            jwt_issuer=self.jwt_issuer, jwt_audience=token_url,
            rsa_private_key=_pem(self._rsa), rsa_kid="sandbox-rsa",
            ec_private_key=_pem(self._ec), ec_kid="sandbox-ec",
            hs_secret=self.hs_secret, hs_kid="sandbox-hs",
            hmac_key_id=self.hmac_key_id, hmac_secret=self.hmac_secret,
        )

    def secret_values(self) -> list[str]:
        """Every secret the sandbox hands out, for leak checks in tests."""
        return [self.token, self.other_token, self.api_key, *self.api_keys,
                self.password, self.other_password, self.client_secret,
                self.hs_secret, self.hmac_secret, self.initial_refresh_token,
                _pem(self._rsa), _pem(self._ec)]

    # -------------------------------------------------------- verification

    def authenticate(self, req: Request, allowed: list[str]) -> Principal | None:
        """Verify every credential the request carries.

        Returns:
            The principal of the first accepted method, or None for an
            anonymous request on a path that accepts ``none``.

        Raises:
            ApiError: 401 for a missing, invalid or expired credential, or one
                of a method this path does not accept.
        """
        principals = self._verify_all(req)
        if not principals:
            if "none" in allowed:
                return None
            raise _unauthorized(
                f"credentials are required; accepted here: {', '.join(allowed)}",
                allowed, code="credentials_required")
        for principal in principals:
            if principal.method in allowed:
                return principal
        used = ", ".join(p.method for p in principals)
        raise _unauthorized(f"{used} is not accepted on this path; accepted: "
                            f"{', '.join(allowed)}", allowed,
                            code="method_not_accepted")

    def _verify_all(self, req: Request) -> list[Principal]:
        found = []
        authorization = req.header("Authorization")
        if authorization:
            found.append(self._authorization(authorization, req.base_url))
        key = req.header("X-API-Key") or req.query.get("api_key") or _cookie(req)
        if key is not None:
            found.append(self._api_key(key))
        if any(req.header(name) for name in ("X-Signature", "X-Key-Id")):
            found.append(self._hmac(req))
        return found

    def _authorization(self, value: str, base_url: str) -> Principal:
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "basic":
            return self._basic(credential)
        if scheme.lower() not in ("bearer", "token"):
            raise _unauthorized(f"unsupported Authorization scheme {scheme!r}",
                                ["bearer", "basic"])
        if credential in self._tokens:
            name, login = self._tokens[credential]
            return Principal(login, "bearer", f"bearer:{name}")
        if credential.count(".") == 2:
            return self._jwt(credential, base_url)
        return self._access_token(credential)

    def _basic(self, credential: str) -> Principal:
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise _unauthorized("malformed Basic credentials", ["basic"]) from None
        user, _, password = decoded.partition(":")
        expected = self._passwords.get(user, "")
        if not (expected and hmac.compare_digest(password.encode(), expected.encode())):
            raise _unauthorized("wrong username or password", ["basic"],
                                code="bad_credentials")
        return Principal(user, "basic", f"basic:{user}")

    def _api_key(self, key: str) -> Principal:
        for known, (name, rotating) in self._keys.items():
            if hmac.compare_digest(key.encode(), known.encode()):
                return Principal(self.login, "api_key", f"api_key:{name}", rotating)
        raise _unauthorized("invalid API key", ["api_key"], code="invalid_api_key")

    def _access_token(self, token: str) -> Principal:
        with self._lock:
            grant = self._access.get(token)
        if grant is None:
            raise _unauthorized("invalid access token", ["oauth2"],
                                code="invalid_token", token_error=True)
        if time.time() >= grant.expires_at:
            raise _unauthorized("the access token has expired", ["oauth2"],
                                code="token_expired", token_error=True)
        return Principal(grant.login, "oauth2", f"oauth2:{grant.client}",
                         scopes=grant.scopes)

    def _jwt(self, token: str, base_url: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") == LOGIN_KID:
                claims = jwt.decode(token, self._login_secret, algorithms=["HS256"],
                                    issuer=ISSUER,
                                    options={"require": ["exp", "iat", "sub"]})
                return Principal(claims["sub"], "jwt", f"jwt:{claims['sub']}")
            self.verify_assertion(token, [base_url, base_url + "/"])
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired", ["jwt"],
                                code="token_expired", token_error=True) from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}", ["jwt"],
                                code="invalid_token", token_error=True) from None
        return Principal(self.login, "jwt", "jwt:assertion")

    def verify_assertion(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """Check a client-signed JWT (RS256, ES256 or HS256) and return its claims.

        Raises:
            jwt.InvalidTokenError: bad signature, claims, lifetime or key.
        """
        header = jwt.get_unverified_header(token)
        key, algorithm = self._assertion_key(header)
        claims = jwt.decode(token, key, algorithms=[algorithm], audience=audiences,
                            issuer=self.jwt_issuer,
                            options={"require": ["exp", "iss", "aud", "sub"]})
        issued = claims.get("iat", time.time())
        if claims["exp"] - issued > MAX_ASSERTION_LIFETIME:
            raise jwt.InvalidTokenError("the assertion lives longer than an hour")
        return claims

    def _assertion_key(self, header: dict[str, Any]) -> tuple[Any, str]:
        kid = header.get("kid")
        if kid is not None:
            if kid not in self._assertion_keys:
                raise jwt.InvalidTokenError(f"unknown key id {kid!r}")
            return self._assertion_keys[kid]
        for key, algorithm in self._assertion_keys.values():
            if algorithm == header.get("alg"):
                return key, algorithm
        raise jwt.InvalidTokenError(f"algorithm {header.get('alg')!r} is not accepted")

    def _hmac(self, req: Request) -> Principal:
        names = ("X-Key-Id", "X-Timestamp", "X-Nonce", "X-Signature")
        values = [req.header(name) or "" for name in names]
        missing = [name for name, value in zip(names, values, strict=True)
                   if not value]
        if missing:
            raise _unauthorized(f"signed requests need {', '.join(missing)}", ["hmac"],
                                code="signature_incomplete")
        key_id, stamp, nonce, signature = values
        if key_id != self.hmac_key_id:
            raise _unauthorized("unknown key id", ["hmac"], code="unknown_key")
        self._check_timestamp(stamp)
        text = string_to_sign(req.method, req.raw_path, req.raw_query, stamp, nonce,
                              req.body)
        expected = hmac_signature(self.hmac_secret, text)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _unauthorized("the signature does not match", ["hmac"],
                                code="bad_signature")
        self._use_nonce(nonce)
        return Principal(self.login, "hmac", f"hmac:{key_id}")

    def _check_timestamp(self, stamp: str) -> None:
        try:
            moment = int(stamp)
        except ValueError:
            raise _unauthorized("X-Timestamp must be unix seconds", ["hmac"],
                                code="bad_timestamp") from None
        if abs(time.time() - moment) > self.settings.hmac_skew:
            raise _unauthorized("X-Timestamp is outside the allowed window", ["hmac"],
                                code="stale_timestamp")

    def _use_nonce(self, nonce: str) -> None:
        now = time.time()
        with self._lock:
            horizon = now - 2 * self.settings.hmac_skew
            for old in [n for n, seen in self._nonces.items() if seen < horizon]:
                del self._nonces[old]
            if nonce in self._nonces:
                raise _unauthorized("X-Nonce was already used", ["hmac"],
                                    code="nonce_reused")
            self._nonces[nonce] = now

    # ------------------------------------------------------------- issuing

    def check_password(self, username: str, password: str) -> bool:
        expected = self._passwords.get(username, "")
        return bool(expected) and hmac.compare_digest(password.encode(),
                                                      expected.encode())

    def login_token(self, username: str) -> dict[str, Any]:
        """A short-lived HS256 JWT for ``POST /auth/login``."""
        now = time.time()
        ttl = self.settings.jwt_ttl
        claims = {"iss": ISSUER, "sub": username, "iat": int(now),
                  "exp": round(now + ttl, 3), "jti": secrets.token_hex(8)}
        token = jwt.encode(claims, self._login_secret, algorithm="HS256",
                           headers={"kid": LOGIN_KID})
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": self._expires_in(ttl)}

    def issue_refresh_token(self, scopes: frozenset[str] | None = None) -> str:
        """A new refresh token for the demo client, valid for one use."""
        token = "sbx_rt_" + secrets.token_urlsafe(32)
        grant = _Grant(self.login, self.client_id, scopes or frozenset(SCOPES))
        with self._lock:
            self._refresh[token] = grant
        return token

    def issue_access(self, login: str, client: str, scopes: frozenset[str], *,
                     refresh: bool = False) -> dict[str, Any]:
        """An opaque access token (and a rotated refresh token when asked)."""
        ttl = self.settings.token_ttl
        token = "sbx_at_" + secrets.token_urlsafe(32)
        with self._lock:
            self._access[token] = _Grant(login, client, scopes, time.time() + ttl)
        answer: dict[str, Any] = {
            "access_token": token, "token_type": "Bearer",
            "expires_in": self._expires_in(ttl), "scope": " ".join(sorted(scopes))}
        if refresh:
            answer["refresh_token"] = self.issue_refresh_token(scopes)
        return answer

    def redeem_refresh(self, token: str, client: str) -> _Grant | None:
        """Take a refresh token out of the store; None when it is not valid."""
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None or grant.client != client:
                return None
            del self._refresh[token]
            return grant

    def use_jti(self, jti: str, expires: float) -> bool:
        """Record an assertion's ``jti``; False when it was seen before."""
        now = time.time()
        with self._lock:
            for old in [j for j, until in self._jtis.items() if until < now]:
                del self._jtis[old]
            if jti in self._jtis:
                return False
            self._jtis[jti] = expires
            return True

    def check_client(self, client_id: str, client_secret: str) -> bool:
        return client_id == self.client_id and hmac.compare_digest(
            client_secret.encode(), self.client_secret.encode())

    def _expires_in(self, ttl: float) -> int | str:
        seconds = max(int(round(ttl)), 0)
        return str(seconds) if self.settings.expires_in_as_string else seconds


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cookie(req: Request) -> str | None:
    header = req.header("Cookie")
    if not header:
        return None
    try:
        morsel = SimpleCookie(header).get("api_key")
    except CookieError:
        return None
    return morsel.value if morsel else None
