"""The jwt method: login-for-token and signed assertions.

Login, direct assertions and the RFC 7523 exchange run against the sandbox
(its ``/auth/login`` and ``/oauth/token``); the GitHub App exchange runs
against a small server that checks the app JWT the way GitHub documents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from token_servers import Call, get_in_threads, tiny_server

from restconnect import sandbox
from restconnect.auth.base import AuthContext
from restconnect.auth.jwt import JWTAuth, JWTOptions, load_private_key
from restconnect.auth.tokens import TokenStore
from restconnect.exceptions import AuthError, SpecError
from restconnect.http import HttpClient
from restconnect.spec import parse_spec


@pytest.fixture(scope="module")
def box() -> Iterator[sandbox.Sandbox]:
    with sandbox.start() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_stats(box: sandbox.Sandbox) -> None:
    box.reset_stats()


def _context(tmp_path: Path) -> AuthContext:
    return AuthContext(
        connector="jwtdemo",
        http=HttpClient(connector="jwtdemo"),
        token_store=TokenStore(tmp_path / "store", use_keyring=False),
    )


def _login(
    box: sandbox.Sandbox, tmp_path: Path, password: str | None = None, **options: Any
) -> JWTAuth:
    creds = box.credentials
    opts = JWTOptions(mode="login", login_url=creds["login_url"], **options)
    return JWTAuth(
        opts,
        {"username": creds["username"], "password": password or creds["password"]},
        _context(tmp_path),
    )


def _user(box: sandbox.Sandbox, auth: JWTAuth) -> dict[str, Any]:
    client = HttpClient(connector="jwtdemo", auth=[auth])
    return client.request("GET", f"{box.url}/code/user").json()


# ---------------------------------------------------------------- login mode


def test_login_reads_the_expiry_from_the_token(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    auth = _login(box, tmp_path)

    assert _user(box, auth)["login"] == box.credentials["username"]
    _user(box, auth)

    token = auth.token()
    exp = pyjwt.decode(
        token.access_token.reveal(), options={"verify_signature": False}
    )["exp"]
    assert token.expires_at == exp
    assert box.stats["logins"] == 1


def test_login_again_shortly_before_expiry(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    with box.configured(jwt_ttl=3):
        auth = _login(box, tmp_path, leeway=1)
        _user(box, auth)
        time.sleep(2.2)
        _user(box, auth)

    assert box.stats["logins"] == 2
    assert box.stats["by_status"].get("401", 0) == 0


def test_login_again_after_a_401(box: sandbox.Sandbox, tmp_path: Path) -> None:
    with box.configured(jwt_ttl=1):
        auth = _login(box, tmp_path, leeway=0)
        _user(box, auth)
        auth._token.expires_at = time.time() + 3600  # our clock thinks it is fine
        auth._token.obtained_at = time.time()
        time.sleep(1.2)
        answer = _user(box, auth)

    assert answer["login"] == box.credentials["username"]
    assert box.stats["logins"] == 2
    assert box.stats["by_status"]["401"] == 1


def test_a_wrong_password_is_refused_without_echoing_it(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    auth = _login(box, tmp_path, password="not-the-password-7781")

    with pytest.raises(AuthError, match="refused with HTTP 401") as info:
        _user(box, auth)

    assert "not-the-password-7781" not in str(info.value)


# ---------------------------------------------------------------- assertions


def _assertion(
    box: sandbox.Sandbox, tmp_path: Path, algorithm: str, **options: Any
) -> JWTAuth:
    creds = box.credentials
    key_field, kid = {
        "RS256": ("rsa_private_key", "rsa_kid"),
        "ES256": ("ec_private_key", "ec_kid"),
        "HS256": ("hs_secret", "hs_kid"),
    }[algorithm]
    fields = (
        {"signing_secret": creds[key_field]}
        if algorithm == "HS256"
        else {"private_key": creds[key_field]}
    )
    opts = JWTOptions(
        mode="assertion",
        algorithm=algorithm,
        issuer=creds["jwt_issuer"],
        subject=creds["username"],
        key_id=creds[kid],
        lifetime=120,
        **options,
    )
    return JWTAuth(opts, fields, _context(tmp_path))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "HS256"])
def test_a_signed_assertion_as_the_bearer_token(
    box: sandbox.Sandbox, tmp_path: Path, algorithm: str
) -> None:
    auth = _assertion(box, tmp_path, algorithm, audience=box.url)

    assert _user(box, auth)["login"] == box.credentials["username"]
    assert box.stats["by_auth"] == {"jwt": 1}


def test_the_assertion_carries_the_configured_claims(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    auth = _assertion(
        box,
        tmp_path,
        "RS256",
        audience="https://aud.example",
        scope=["read", "write"],
        claims={"tenant": "t-1"},
    )
    token, expires_at = auth.sign_assertion()

    public = load_private_key(box.credentials["rsa_private_key"]).public_key()
    claims = pyjwt.decode(
        token, public, algorithms=["RS256"], audience="https://aud.example"
    )
    assert claims["iss"] == box.credentials["jwt_issuer"]
    assert claims["sub"] == box.credentials["username"]
    assert (claims["scope"], claims["tenant"]) == ("read write", "t-1")
    assert claims["exp"] - claims["iat"] == 120 and claims["exp"] == expires_at
    assert pyjwt.get_unverified_header(token)["kid"] == box.credentials["rsa_kid"]
    assert auth.sign_assertion()[0] != token  # a fresh jti every time


def test_jwt_bearer_exchange_happens_once_for_many_threads(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    creds = box.credentials
    auth = _assertion(
        box,
        tmp_path,
        "RS256",
        audience=creds["token_url"],
        exchange="jwt_bearer",
        token_url=creds["token_url"],
    )
    client = HttpClient(connector="jwtdemo", auth=[auth], pool_size=12)
    statuses = get_in_threads(client, f"{box.url}/code/user", 12)

    assert statuses == [200] * 12
    assert box.stats["grants"] == {"urn:ietf:params:oauth:grant-type:jwt-bearer": 1}
    assert box.stats["by_auth"] == {"oauth2": 12}


def test_an_assertion_for_another_audience_is_refused_by_the_exchange(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    creds = box.credentials
    auth = _assertion(
        box,
        tmp_path,
        "ES256",
        audience="https://elsewhere.example",
        exchange="jwt_bearer",
        token_url=creds["token_url"],
    )

    with pytest.raises(AuthError, match="invalid_grant"):
        _user(box, auth)


# ---------------------------------------------------------------- GitHub App


APP_ID = "424242"
INSTALLATION_TOKEN = "ghs_installation_token_5d0c2e7f9a1b"


@pytest.fixture
def github_app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def test_github_app_installation_token(
    tmp_path: Path, github_app_key: rsa.RSAPrivateKey
) -> None:
    expires = "2030-01-01T00:00:00Z"
    with tiny_server() as github:

        @github.route("POST", "/app/installations/7/access_tokens")
        def exchange(call: Call) -> tuple[int, Any, dict[str, str]]:
            app_jwt = call.headers["authorization"].removeprefix("Bearer ")
            claims = pyjwt.decode(
                app_jwt,
                github_app_key.public_key(),
                algorithms=["RS256"],
                issuer=APP_ID,
                options={"require": ["iat", "exp", "iss"]},
            )
            assert claims["exp"] - claims["iat"] <= 600
            assert call.headers["accept"] == "application/vnd.github+json"
            return 201, {"token": INSTALLATION_TOKEN, "expires_at": expires}, {}

        @github.route("GET", "/installation/repositories")
        def repositories(call: Call) -> tuple[int, Any, dict[str, str]]:
            if call.headers.get("authorization") != f"Bearer {INSTALLATION_TOKEN}":
                return 401, {"message": "Bad credentials"}, {}
            return 200, {"total_count": 0, "repositories": []}, {}

        opts = JWTOptions(
            mode="assertion",
            algorithm="RS256",
            issuer=APP_ID,
            lifetime=540,
            backdate=60,
            exchange="github_app",
            token_url=f"{github.url}/app/installations/7/access_tokens",
        )
        auth = JWTAuth(opts, {"private_key": _pem(github_app_key)}, _context(tmp_path))
        client = HttpClient(connector="jwtdemo", auth=[auth])
        first = client.request("GET", f"{github.url}/installation/repositories")
        client.request("GET", f"{github.url}/installation/repositories")

    assert first.json() == {"total_count": 0, "repositories": []}
    assert github.counts["/app/installations/7/access_tokens"] == 1
    assert (
        auth.token().expires_at == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    )


# ---------------------------------------------------------------- keys and options


def test_an_encrypted_key_needs_its_passphrase(
    github_app_key: rsa.RSAPrivateKey,
) -> None:
    pem = _pem(github_app_key, b"pass-phrase-9d2c")

    key = load_private_key(pem, "pass-phrase-9d2c")
    with pytest.raises(AuthError, match="passphrase") as info:
        load_private_key(pem, "wrong-phrase-0000")

    assert (
        key.public_key().public_numbers()
        == github_app_key.public_key().public_numbers()
    )
    assert "wrong-phrase-0000" not in str(info.value)


def test_a_key_pasted_with_literal_newline_escapes_loads(
    github_app_key: rsa.RSAPrivateKey,
) -> None:
    one_line = _pem(github_app_key).strip().replace("\n", "\\n")

    key = load_private_key(one_line)

    assert (
        key.public_key().public_numbers()
        == github_app_key.public_key().public_numbers()
    )


SPEC = """
name: crm
base_url: https://api.example.com
auth:
{auth}
endpoints:
  items: {{path: /items}}
"""


@pytest.mark.parametrize(
    "auth, problem",
    [
        ("  method: jwt\n  mode: login", "login_url"),
        ("  method: jwt\n  mode: assertion\n  exchange: jwt_bearer", "token_url"),
        ("  method: jwt\n  mode: assertion\n  algorithm: none", "algorithm"),
    ],
)
def test_spec_mistakes_are_named(auth: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_spec(SPEC.format(auth=auth), source="crm.yaml")


def test_no_secret_reaches_the_logs(
    box: sandbox.Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login = _login(box, tmp_path)
    _user(box, login)
    creds = box.credentials
    exchange = _assertion(
        box,
        tmp_path,
        "HS256",
        audience=creds["token_url"],
        exchange="jwt_bearer",
        token_url=creds["token_url"],
    )
    _user(box, exchange)

    values = [*box.secret_values(), *login.secrets(), *exchange.secrets()]
    assert caplog.records
    assert [value for value in values if value in caplog.text] == []
