"""OpenID Connect sign-in: discovery, authorization code + PKCE + nonce, ID tokens.

The provider is found from ``{issuer}/.well-known/openid-configuration``; the
document's ``issuer`` must equal the configured one exactly. Every ID token is
verified with PyJWT against the provider's JWKS: signature, ``iss``, ``aud``,
``exp``, ``iat`` and ``nonce``. Unsigned tokens and HMAC algorithms are
refused (the keys are public), and an unknown ``kid`` refetches the JWKS once.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field as OptionField
from pydantic import field_validator

from restconnect.auth import register_auth
from restconnect.auth.oauth2 import OAuth2Auth, OAuthCommonOptions
from restconnect.auth.token_base import Token, require_secure_url
from restconnect.exceptions import AuthError

__all__ = ["OIDCAuth", "OIDCOptions", "validate_id_token"]

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: the JWKS holds public keys, and accepting an
# HMAC algorithm would let anyone who has the public key forge a token.
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
    }
)
_PROTOCOL_CLAIMS = (
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "auth_time",
    "azp",
    "sid",
    "jti",
)


class OIDCOptions(OAuthCommonOptions):
    """Spec keys of ``method: oidc``."""

    #: The provider's issuer URL, exactly as its discovery document states it.
    issuer: str
    grant: str = "authorization_code"
    scopes: list[str] = OptionField(default_factory=lambda: ["openid"])
    #: Seconds of clock difference tolerated on ``exp`` and ``iat``.
    clock_skew: float = OptionField(60.0, ge=0, le=600)
    #: Fetch the userinfo endpoint for ``identity``.
    userinfo: bool = True

    @field_validator("scopes", mode="after")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]


@register_auth
class OIDCAuth(OAuth2Auth):
    """Sign in with an OpenID Connect provider and know who signed in.

    Example spec::

        auth:
          method: oidc
          issuer: https://accounts.example.com
          scopes: [openid, profile, email, offline_access]
          env: {client_id: EXAMPLE_OIDC_CLIENT_ID}
    """

    name = "oidc"
    Options = OIDCOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._metadata: dict[str, Any] | None = None
        self._jwks: Any = None
        self._meta_lock = threading.Lock()
        self._userinfo: dict[str, Any] | None = None

    # ------------------------------------------------------------ discovery

    @property
    def issuer(self) -> str:
        """The configured issuer, with environment references filled."""
        return self.url(self.options.issuer) or ""

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        with self._meta_lock:
            if self._metadata is None:
                self._metadata = self._discover()
            return self._metadata

    def _discover(self) -> dict[str, Any]:
        issuer = self.issuer
        require_secure_url(issuer, "issuer", self.context.connector, self.name)
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url, "discovery document")
        if document.get("issuer") != issuer:
            raise self._error(
                f"the discovery document names issuer "
                f"{document.get('issuer')!r}, not the configured "
                f"{issuer!r}; they must match exactly"
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not document.get(key):
                raise self._error(f"the discovery document has no {key}")
        return document

    def endpoints(self) -> dict[str, str | None]:
        meta = self.metadata()
        return {
            "token": meta.get("token_endpoint"),
            "authorization": meta.get("authorization_endpoint"),
            "device": meta.get("device_authorization_endpoint"),
            "userinfo": meta.get("userinfo_endpoint"),
        }

    def store_identity(self) -> str:
        # The issuer, not the discovered token URL: no request just to name the entry.
        return "|".join(
            [
                self.name,
                self.issuer,
                self.credential("client_id") or "",
                self.options.grant,
                " ".join(sorted(self.options.scopes)),
                self.options.account,
            ]
        )

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        response = self.send("GET", url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise self._error(
                f"the {what} at {url} answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._error(f"the {what} at {url} is not a JSON object")
        return body

    def _error(self, text: str) -> AuthError:
        return AuthError(text, connector=self.context.connector, method=self.name)

    # ------------------------------------------------------------ keys

    def signing_key(self, kid: str | None, alg: str) -> Any:
        """The JWKS key for ``kid``; an unknown kid refetches the JWKS once."""
        for attempt in (1, 2):
            if self._jwks is None or attempt == 2:
                self._jwks = self._fetch_jwks()
            key = _pick_key(self._jwks, kid, alg)
            if key is not None:
                return key
            logger.debug("oidc: no key with kid %s; refetching the JWKS", kid)
        raise self._error(f"the provider's JWKS has no key with kid {kid!r} for {alg}")

    def _fetch_jwks(self) -> Any:
        from jwt import PyJWKSet
        from jwt.exceptions import PyJWKSetError

        url = self.metadata()["jwks_uri"]
        require_secure_url(url, "jwks_uri", self.context.connector, self.name)
        try:
            return PyJWKSet.from_dict(self._get_json(url, "JWKS"))
        except PyJWKSetError as exc:
            raise self._error(f"the provider's JWKS cannot be read: {exc}") from None

    # ------------------------------------------------------------ tokens

    def uses_nonce(self) -> bool:
        return True

    def check_callback_issuer(self, callback_url: str) -> None:
        """RFC 9207: a callback that names an issuer must name ours."""
        params = dict(parse_qsl(urlsplit(callback_url).query))
        if "iss" in params and params["iss"] != self.issuer:
            raise self._error(
                f"the callback comes from issuer {params['iss']!r}, "
                f"not {self.issuer!r}"
            )

    def new_token(
        self, answer: Any, *, previous: Token | None = None, nonce: str | None = None
    ) -> Token:
        token = super().new_token(answer, previous=previous)
        if token.id_token is not None:
            claims = self.validate_id_token(token.id_token.reveal(), nonce=nonce)
            self._check_same_subject(claims, previous)
            token.extra["id_token_claims"] = claims
        elif previous is not None and "id_token_claims" in previous.extra:
            token.extra["id_token_claims"] = previous.extra["id_token_claims"]
            token.id_token = previous.id_token
        elif self.options.grant in ("authorization_code", "device_code"):
            raise self._error(
                "the token answer has no id_token; is 'openid' among "
                "the client's allowed scopes?"
            )
        return token

    def _check_same_subject(
        self, claims: dict[str, Any], previous: Token | None
    ) -> None:
        old = (previous.extra.get("id_token_claims") or {}) if previous else {}
        if old.get("sub") and old["sub"] != claims.get("sub"):
            raise self._error("the refreshed ID token is for a different subject")

    def validate_id_token(self, id_token: str, *, nonce: str | None) -> dict[str, Any]:
        """Verify an ID token; the verified claims."""
        return validate_id_token(
            id_token,
            issuer=self.issuer,
            client_id=self.client_id,
            key_for=self.signing_key,
            nonce=nonce,
            leeway=self.options.clock_skew,
            allowed=self._allowed_algorithms(),
            connector=self.context.connector,
        )

    def _allowed_algorithms(self) -> set[str]:
        offered = self.metadata().get("id_token_signing_alg_values_supported") or [
            "RS256"
        ]
        return {alg for alg in offered if alg in ASYMMETRIC_ALGORITHMS}

    # ------------------------------------------------------------ identity

    def claims(self) -> dict[str, Any]:
        """The verified ID-token claims of the signed-in person ({} if none)."""
        token = self._token or self._read_store()
        return dict((token.extra.get("id_token_claims") if token else None) or {})

    def subject(self) -> str | None:
        claims = self.claims()
        return (
            claims.get("email") or claims.get("preferred_username") or claims.get("sub")
        )

    def identity(self) -> dict[str, Any]:
        """Who is signed in: ``sub``, the verified claims and the userinfo answer."""
        claims = self.claims()
        if not claims:
            return {}
        userinfo: dict[str, Any] = {}
        if self.options.userinfo:
            try:
                userinfo = self.fetch_userinfo()
            except AuthError as exc:
                logger.warning(
                    "%s: userinfo left out of the identity: %s",
                    self.context.connector,
                    exc,
                )
        return {
            "sub": claims.get("sub"),
            "claims": {k: v for k, v in claims.items() if k not in _PROTOCOL_CLAIMS},
            "userinfo": userinfo,
        }

    def fetch_userinfo(self) -> dict[str, Any]:
        """The userinfo endpoint's answer (fetched once per subject).

        Its ``sub`` must match the ID token's (OpenID Connect Core 5.3.4).
        """
        subject = self.claims().get("sub")
        if self._userinfo is not None and self._userinfo.get("sub") == subject:
            return dict(self._userinfo)
        url = self.endpoints().get("userinfo")
        if not url:
            return {}
        require_secure_url(url, "userinfo endpoint", self.context.connector, self.name)
        response = self.send(
            "GET",
            url,
            headers={
                "Accept": "application/json",
                "Authorization": self.authorization_value(self.token()),
            },
        )
        if response.status_code != 200:
            raise self._error(
                f"the userinfo endpoint answered HTTP {response.status_code}"
            )
        info = response.json()
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise self._error("the userinfo answer is for a different subject")
        self._userinfo = info
        return dict(info)

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts["issuer"] = self.issuer
        return facts


def _pick_key(jwks: Any, kid: str | None, alg: str) -> Any:
    keys = list(jwks.keys)
    if kid is not None:
        matches = [key for key in keys if key.key_id == kid]
    else:
        # Without a kid, a single key of the right family is unambiguous.
        matches = [key for key in keys if _family(key) == _family_of_alg(alg)]
        if len(matches) != 1:
            return None
    for key in matches:
        if getattr(key, "public_key_use", None) in (None, "sig"):
            return key
    return None


def _family(key: Any) -> str:
    return {"RSA": "RS", "EC": "ES", "OKP": "Ed"}.get(key.key_type, key.key_type)


def _family_of_alg(alg: str) -> str:
    return "RS" if alg.startswith("PS") else alg[:2]


def validate_id_token(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    key_for: Any,
    nonce: str | None,
    leeway: float = 60.0,
    allowed: set[str] | frozenset[str] = ASYMMETRIC_ALGORITHMS,
    connector: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Verify an OpenID Connect ID token (Core 1.0 section 3.1.3.7).

    Args:
        key_for: ``(kid, alg) -> PyJWK``; called once the header is known.
        nonce: the value sent in the authorization request, or None after a refresh.

    Raises:
        AuthError: naming the check that failed.
    """
    import jwt

    def fail(text: str) -> AuthError:
        return AuthError(
            f"the ID token was rejected: {text}",
            connector=connector or None,
            method="oidc",
        )

    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.InvalidTokenError:
        raise fail("it is not a JWT") from None
    alg = str(header.get("alg") or "none")
    if alg.lower() == "none":
        raise fail("it is unsigned (alg none)")
    if alg.startswith("HS"):
        raise fail(f"{alg} is an HMAC algorithm; only the provider's public keys count")
    if alg not in allowed:
        raise fail(f"algorithm {alg} is not one the provider announced")
    key = key_for(header.get("kid"), alg)
    try:
        claims = jwt.decode(
            id_token,
            key=key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise fail(f"{type(exc).__name__}: {exc}") from None
    _check_claims(
        claims,
        client_id=client_id,
        nonce=nonce,
        leeway=leeway,
        now=time.time() if now is None else now,
        fail=fail,
    )
    return claims


def _check_claims(
    claims: dict[str, Any],
    *,
    client_id: str,
    nonce: str | None,
    leeway: float,
    now: float,
    fail: Any,
) -> None:
    if float(claims["iat"]) > now + leeway:
        raise fail("it was issued in the future (iat)")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise fail("it has several audiences and azp is not this client")
    if nonce is not None:
        sent = str(claims.get("nonce") or "")
        if not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise fail("the nonce does not match this sign-in")
