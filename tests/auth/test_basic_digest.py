"""Basic, digest and bearer against httpbin; Basic over HTTPS; the plain-HTTP rule."""

from __future__ import annotations

import socket

import pytest
import requests

from restconnect.auth.basic import BasicAuth, require_secure_transport
from restconnect.auth.bearer import BearerAuth, BearerOptions
from restconnect.auth.digest import DigestAuth
from restconnect.exceptions import AuthError
from restconnect.secret import Secret
from restconnect.spec import parse_spec
from tests.servers.httpbin_server import httpbin_url  # noqa: F401  (a fixture)
from tests.servers.tls_server import (  # noqa: F401  (fixtures)
    BASIC_PASSWORD,
    BASIC_USER,
    tls_certs,
    tls_server,
)

USER, PASSWORD = "alice", "digest-pass-2718"

DIGEST_SPEC = """
name: digest_box
base_url: {url}
auth: {{method: digest}}
retry: {{attempts: 1}}
endpoints:
  check: {{path: "/digest-auth/auth/{user}/{password}{algorithm}", records: "@",
          pagination: {{kind: none}}}}
"""


def _digest_conn(url: str, password: str, algorithm: str = ""):
    from restconnect import connect

    spec = parse_spec(DIGEST_SPEC.format(url=url, user=USER, password=PASSWORD,
                                         algorithm=algorithm))
    return connect(spec, username=USER, password=password)


@pytest.mark.peer
@pytest.mark.parametrize("algorithm", ["", "/MD5", "/SHA-256"])
def test_digest_against_httpbin(httpbin_url, algorithm):
    with _digest_conn(httpbin_url, PASSWORD, algorithm) as conn:
        frame = conn.fetch("check")
        again = conn.fetch("check")
    assert bool(frame.loc[0, "authenticated"])
    assert again.loc[0, "user"] == USER


@pytest.mark.peer
def test_digest_wrong_password_is_an_auth_error(httpbin_url, caplog):
    wrong = "not-the-digest-password"
    conn = _digest_conn(httpbin_url, wrong)
    with conn, pytest.raises(AuthError) as info:
        conn.fetch("check")
    assert "401" in str(info.value) and "digest" in str(info.value)
    assert wrong not in str(info.value) and wrong not in caplog.text


@pytest.mark.peer
def test_basic_against_httpbin(httpbin_url):
    handler = BasicAuth(None, {"username": USER, "password": Secret(PASSWORD)})
    good = requests.get(f"{httpbin_url}/basic-auth/{USER}/{PASSWORD}", auth=handler,
                        timeout=10)
    bad = requests.get(f"{httpbin_url}/basic-auth/{USER}/other", auth=handler,
                       timeout=10)
    assert good.status_code == 200 and good.json()["user"] == USER
    assert bad.status_code == 401


@pytest.mark.peer
def test_bearer_scheme_against_httpbin(httpbin_url):
    token = "bearer-token-1618"
    bearer = BearerAuth(BearerOptions(), {"token": Secret(token)})
    answer = requests.get(f"{httpbin_url}/bearer", auth=bearer, timeout=10)
    assert answer.status_code == 200 and answer.json()["token"] == token
    github_style = BearerAuth(BearerOptions(scheme="token"), {"token": Secret(token)})
    refused = requests.get(f"{httpbin_url}/bearer", auth=github_style, timeout=10)
    assert refused.status_code == 401


BASIC_SPEC = """
name: basic_tls
base_url: {url}
auth: {{method: basic}}
retry: {{attempts: 1}}
endpoints:
  me: {{path: /basic, records: "@", pagination: {{kind: none}}}}
"""


def test_basic_over_https(tls_server, monkeypatch):
    from restconnect import connect

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    spec = parse_spec(BASIC_SPEC.format(url=tls_server.url))
    with connect(spec, ca_bundle=tls_server.ca_file, username=BASIC_USER,
                 password=BASIC_PASSWORD) as conn:
        assert conn.fetch("me").loc[0, "user"] == BASIC_USER
    wrong = connect(spec, ca_bundle=tls_server.ca_file, username=BASIC_USER,
                    password="wrong-password-999")
    with wrong, pytest.raises(AuthError, match="401"):
        wrong.fetch("me")


@pytest.fixture()
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("url", [
    "http://api.example.com/v1/me", "http://10.0.0.5/me", "http://[2001:db8::1]/me"])
def test_basic_refused_over_plain_http_to_other_hosts(url, no_network):
    from restconnect.http import HttpClient

    handler = BasicAuth(None, {"username": "u", "password": Secret("pw-123456")})
    with pytest.raises(AuthError, match="plain http is allowed only to loopback"):
        handler(requests.Request("GET", url).prepare())
    client = HttpClient(connector="plain", auth=[handler])
    with pytest.raises(AuthError) as info:
        client.request("GET", url)
    assert "pw-123456" not in str(info.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x",
    "https://api.example.com/x"])
def test_loopback_and_https_are_allowed(url):
    require_secure_transport(url)


def test_digest_keeps_its_own_hook_apart():
    handler = DigestAuth(None, {"username": USER, "password": Secret(PASSWORD)})
    assert handler.handle_401(requests.Response()) is False
    assert handler.describe() == {"method": "digest", "user": USER}
