"""The bundled ``github_app`` spec: app JWT, installation token, then the API.

A loopback server plays api.github.com's two halves of the flow: it checks
the app JWT with PyJWT and the app's public key (RS256, issuer, at most ten
minutes of validity, as GitHub documents), issues an installation token, and
serves ``/installation/repositories`` only to that token.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import restconnect
from restconnect.exceptions import RestConnectError
from tests.auth.token_servers import Call, TinyServer

CLIENT_ID = "Iv1.0123456789abcdef"
INSTALLATION = "4242"
INSTALLATION_TOKEN = "ghs_" + "T0k3n" * 7
REPOSITORIES = [
    {"id": 101, "name": "data-tools", "owner": {"login": "acme", "id": 9},
     "created_at": "2021-03-04T05:06:07Z", "updated_at": "2024-01-02T03:04:05Z",
     "pushed_at": "2024-01-02T03:04:05Z"},
    {"id": 102, "name": "pipelines", "owner": {"login": "acme", "id": 9},
     "created_at": "2022-06-07T08:09:10Z", "updated_at": "2024-02-03T04:05:06Z",
     "pushed_at": None},
]


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github_api(app_key, monkeypatch):
    """The loopback GitHub, and the environment the spec reads."""
    server = TinyServer()
    issued: list[dict] = []

    @server.route("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    def access_token(call: Call):
        scheme, _, app_jwt = call.headers.get("authorization", "").partition(" ")
        claims = jwt.decode(app_jwt, app_key.public_key(), algorithms=["RS256"],
                            issuer=CLIENT_ID, options={"require": ["iat", "exp", "iss"]})
        issued.append({"scheme": scheme, "accept": call.headers.get("accept"), **claims})
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        return 201, {"token": INSTALLATION_TOKEN,
                     "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "repository_selection": "selected"}, {}

    @server.route("GET", "/installation/repositories")
    def repositories(call: Call):
        if call.headers.get("authorization") != f"Bearer {INSTALLATION_TOKEN}":
            return 401, {"message": "Bad credentials"}, {}
        return 200, {"total_count": len(REPOSITORIES),
                     "repositories": REPOSITORIES}, {}

    pem = app_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    monkeypatch.setenv("GITHUB_API_URL", server.url)
    monkeypatch.setenv("GITHUB_APP_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GITHUB_APP_INSTALLATION_ID", INSTALLATION)
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", pem)
    server.start()
    server.issued = issued
    yield server
    server.stop()


def test_the_app_reads_its_installation_repositories(github_api):
    conn = restconnect.connect("github_app")

    frame = conn.fetch("installation_repos")
    again = conn.fetch("installation_repos", cache=False)

    assert frame["name"].tolist() == [repo["name"] for repo in REPOSITORIES]
    assert frame["created_at"].iloc[0] == datetime(2021, 3, 4, 5, 6, 7,
                                                   tzinfo=timezone.utc)
    assert len(again) == len(REPOSITORIES)
    [claims] = github_api.issued
    assert claims["scheme"] == "Bearer"
    assert claims["accept"] == "application/vnd.github+json"
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["iat"] <= time.time() - 30
    conn.close()


def test_the_check_names_the_installation_account(github_api):
    with restconnect.connect("github_app") as conn:
        assert conn.check() == {"ok": True, "identity": "acme"}


def test_an_unset_installation_id_is_named(github_api, monkeypatch):
    monkeypatch.delenv("GITHUB_APP_INSTALLATION_ID")

    with restconnect.connect("github_app") as conn, \
            pytest.raises(RestConnectError) as caught:
        conn.fetch("installation_repos")

    assert "GITHUB_APP_INSTALLATION_ID" in str(caught.value)
    assert not github_api.issued
