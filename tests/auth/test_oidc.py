"""OpenID Connect: discovery, sign-in and ID-token validation.

The sign-in runs against the real oidc-provider; the ID-token checks that a
well-behaved provider never triggers (alg none, HMAC with a public key,
rotated keys) use tokens signed here with PyJWT and a small JWKS server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from oidc_server import NATIVE, OIDCProvider
from token_servers import TinyServer, tiny_server

from restconnect.auth.base import AuthContext
from restconnect.auth.oidc import OIDCAuth, OIDCOptions
from restconnect.auth.tokens import TokenStore
from restconnect.exceptions import AuthError
from restconnect.http import HttpClient

CLIENT = "rp-client"


def _context(tmp_path: Path) -> AuthContext:
    return AuthContext(
        connector="idp",
        http=HttpClient(connector="idp"),
        token_store=TokenStore(tmp_path / "store", use_keyring=False),
    )


# ---------------------------------------------------------------- the real provider


def _oidc(provider: OIDCProvider, tmp_path: Path, **options: Any) -> OIDCAuth:
    opts = OIDCOptions(issuer=provider.issuer, **options)
    return OIDCAuth(opts, {"client_id": NATIVE}, _context(tmp_path))


@pytest.mark.peer
def test_sign_in_validates_the_id_token_and_exposes_the_identity(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _oidc(oidc_provider, tmp_path, scopes=["openid", "profile", "email"])

    request = auth.begin_authorization()
    auth.complete_authorization(
        oidc_provider.sign_in(request.url, request.redirect_uri, login="dana")
    )
    identity = auth.identity()

    claims = auth.claims()
    assert request.nonce and f"nonce={request.nonce}" in request.url
    assert claims["sub"] == "dana" and claims["nonce"] == request.nonce
    assert claims["iss"] == oidc_provider.issuer and claims["aud"] == NATIVE
    assert identity["sub"] == "dana"
    assert identity["userinfo"] == {
        "sub": "dana",
        "name": "User dana",
        "email": "dana@example.test",
    }
    assert auth.describe()["identity"] == "dana"


@pytest.mark.peer
def test_refresh_keeps_the_identity_and_checks_the_new_id_token(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _oidc(oidc_provider, tmp_path, scopes=["openid", "offline_access"])
    request = auth.begin_authorization()
    first = auth.complete_authorization(
        oidc_provider.sign_in(request.url, request.redirect_uri, login="erin")
    )

    second = auth.refresh(first)

    assert second.extra["id_token_claims"]["sub"] == "erin"
    assert second.refresh_token.reveal() != first.refresh_token.reveal()


@pytest.mark.peer
def test_a_callback_from_another_issuer_is_refused(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _oidc(oidc_provider, tmp_path)
    request = auth.begin_authorization()
    callback = oidc_provider.sign_in(request.url, request.redirect_uri)

    forged = callback.replace("iss=http", "iss=https")

    with pytest.raises(AuthError, match="from issuer"):
        auth.complete_authorization(forged)


@pytest.mark.peer
def test_a_stored_sign_in_is_known_after_a_restart(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _oidc(oidc_provider, tmp_path)
    request = auth.begin_authorization()
    auth.complete_authorization(
        oidc_provider.sign_in(request.url, request.redirect_uri, login="fay")
    )

    restarted = _oidc(oidc_provider, tmp_path)

    assert restarted.claims()["sub"] == "fay"
    assert restarted.token().access_token.reveal() == auth.token().access_token.reveal()


# ---------------------------------------------------------------- a provider of our own


class KeyedProvider:
    """Discovery and a JWKS whose keys a test can change."""

    def __init__(self, server: TinyServer):
        self.server = server
        self.issuer = server.url
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.published = [self.jwk(self.rsa, "rsa-1"), self.jwk(self.ec, "ec-1")]
        self.metadata = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256"],
        }
        server.route("GET", "/.well-known/openid-configuration")(
            lambda call: (200, self.metadata, {})
        )
        server.route("GET", "/jwks")(lambda call: (200, {"keys": self.published}, {}))

    @staticmethod
    def jwk(key: Any, kid: str) -> dict[str, Any]:
        algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        data = algorithm.to_jwk(key.public_key(), as_dict=True)
        return {**data, "kid": kid, "use": "sig"}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": CLIENT,
            "iat": now,
            "exp": now + 300,
            "nonce": "n-0123456789",
            **overrides,
        }

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: Any = None,
        kid: str = "rsa-1",
        alg: str = "RS256",
    ) -> str:
        return jwt.encode(
            claims or self.claims(),
            key or self.rsa,
            algorithm=alg,
            headers={"kid": kid},
        )


@pytest.fixture
def keyed() -> Iterator[KeyedProvider]:
    with tiny_server() as server:
        yield KeyedProvider(server)


def _handler(keyed: KeyedProvider, tmp_path: Path) -> OIDCAuth:
    return OIDCAuth(
        OIDCOptions(issuer=keyed.issuer), {"client_id": CLIENT}, _context(tmp_path)
    )


def test_a_good_id_token_passes(keyed: KeyedProvider, tmp_path: Path) -> None:
    auth = _handler(keyed, tmp_path)

    claims = auth.validate_id_token(keyed.sign(), nonce="n-0123456789")

    assert claims["sub"] == "user-1"


def test_an_es256_id_token_passes(keyed: KeyedProvider, tmp_path: Path) -> None:
    auth = _handler(keyed, tmp_path)
    token = keyed.sign(key=keyed.ec, kid="ec-1", alg="ES256")

    assert auth.validate_id_token(token, nonce="n-0123456789")["sub"] == "user-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hmac_with_public_key(keyed: KeyedProvider) -> str:
    # The classic confusion attack: HS256 keyed with the provider's public key.
    public = keyed.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = ".".join(
        [
            _b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode()),
            _b64(json.dumps(keyed.claims()).encode()),
        ]
    )
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("alg_none", "unsigned"),
        ("hmac_public_key", "HMAC"),
        ("wrong_audience", "InvalidAudience"),
        ("wrong_issuer", "InvalidIssuer"),
        ("expired", "ExpiredSignature"),
        ("issued_in_the_future", "not yet valid|future"),
        ("wrong_nonce", "nonce"),
        ("missing_nonce", "nonce"),
        ("missing_exp", "exp"),
        ("other_key", "InvalidSignature"),
        ("several_audiences_without_azp", "azp"),
    ],
)
def test_bad_id_tokens_are_refused(
    keyed: KeyedProvider, tmp_path: Path, case: str, expected: str
) -> None:
    auth = _handler(keyed, tmp_path)
    now = int(time.time())
    claims = keyed.claims()
    token = {
        "alg_none": lambda: _unsigned(claims),
        "hmac_public_key": lambda: _hmac_with_public_key(keyed),
        "wrong_audience": lambda: keyed.sign(keyed.claims(aud="someone-else")),
        "wrong_issuer": lambda: keyed.sign(keyed.claims(iss=keyed.issuer + "/")),
        "expired": lambda: keyed.sign(keyed.claims(exp=now - 3600, iat=now - 4000)),
        "issued_in_the_future": lambda: keyed.sign(keyed.claims(iat=now + 3600)),
        "wrong_nonce": lambda: keyed.sign(keyed.claims(nonce="n-other")),
        "missing_nonce": lambda: keyed.sign(
            {k: v for k, v in claims.items() if k != "nonce"}
        ),
        "missing_exp": lambda: keyed.sign(
            {k: v for k, v in claims.items() if k != "exp"}
        ),
        "other_key": lambda: keyed.sign(
            key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "several_audiences_without_azp": lambda: keyed.sign(
            keyed.claims(aud=[CLIENT, "other"])
        ),
    }[case]()

    with pytest.raises(AuthError, match=expected):
        auth.validate_id_token(token, nonce="n-0123456789")


def test_an_unknown_kid_refetches_the_jwks_once(
    keyed: KeyedProvider, tmp_path: Path
) -> None:
    auth = _handler(keyed, tmp_path)
    auth.validate_id_token(keyed.sign(), nonce="n-0123456789")
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keyed.published.append(keyed.jwk(rotated, "rsa-2"))

    claims = auth.validate_id_token(
        keyed.sign(key=rotated, kid="rsa-2"), nonce="n-0123456789"
    )

    assert claims["sub"] == "user-1"
    assert keyed.server.counts["/jwks"] == 2


def test_a_kid_still_unknown_after_the_refetch_is_refused(
    keyed: KeyedProvider, tmp_path: Path
) -> None:
    auth = _handler(keyed, tmp_path)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(AuthError, match="no key with kid 'rsa-9'"):
        auth.validate_id_token(
            keyed.sign(key=stranger, kid="rsa-9"), nonce="n-0123456789"
        )

    assert keyed.server.counts["/jwks"] == 2


def test_the_discovery_issuer_must_match_exactly(
    keyed: KeyedProvider, tmp_path: Path
) -> None:
    keyed.metadata["issuer"] = keyed.issuer + "/"
    auth = _handler(keyed, tmp_path)

    with pytest.raises(AuthError, match="must match exactly"):
        auth.begin_authorization()


def test_discovery_is_fetched_once(keyed: KeyedProvider, tmp_path: Path) -> None:
    auth = _handler(keyed, tmp_path)

    auth.begin_authorization()
    auth.begin_authorization()

    assert keyed.server.counts["/.well-known/openid-configuration"] == 1


def test_the_openid_scope_is_always_requested(keyed: KeyedProvider) -> None:
    assert OIDCOptions(issuer=keyed.issuer, scopes=["email"]).scopes == [
        "openid",
        "email",
    ]


@pytest.mark.peer
def test_no_token_or_code_reaches_the_logs(
    oidc_provider: OIDCProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = _oidc(oidc_provider, tmp_path, scopes=["openid", "offline_access"])
    request = auth.begin_authorization()
    callback = oidc_provider.sign_in(request.url, request.redirect_uri)
    first = auth.complete_authorization(callback)
    auth.refresh(first)
    auth.identity()

    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    values = [code, request.code_verifier.reveal(), *first.values(), *auth.secrets()]
    assert caplog.records
    assert [value for value in values if value in caplog.text] == []
