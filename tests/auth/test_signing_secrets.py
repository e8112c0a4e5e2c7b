"""No secret of the signing and transport methods in a log line, repr or error.

Every flow runs with every logger at DEBUG; then the captured log text, the
handlers' reprs and descriptions, and the error messages are searched for
each test secret.
"""

from __future__ import annotations

import logging

import pytest

from restconnect.exceptions import RestConnectError
from restconnect.spec import parse_spec
from tests.servers.httpbin_server import httpbin_url  # noqa: F401  (fixtures)
from tests.servers.tls_server import mtls_server, tls_certs  # noqa: F401
from tests.servers.oauth1_server import (  # noqa: F401
    CLIENT_KEY,
    CLIENT_SECRET,
    TOKEN,
    TOKEN_SECRET,
    oauth1_server,
)

SECRETS = {
    "basic": "basic-secret-pw-0001",
    "digest": "digest-secret-pw-0002",
    "hmac": "hmac-secret-value-0003",
    "sigv4": "sigv4SecretAccessKey0004/abc+def",
    "sigv4_token": "sigv4-session-token-0005",
    "api_key_a": "api-key-secret-0006",
    "api_key_b": "api-key-secret-0007",
    "oauth1": "oauth1-wrong-secret-0008",
}

SPEC = """
name: leaks_{name}
base_url: {url}
auth: {auth}
retry: {{attempts: 1}}
cache: {{enabled: false}}
endpoints:
  one: {{path: "{path}", records: "@", pagination: {{kind: none}}, params: {params}}}
"""


def _run(url: str, name: str, auth: str, path: str, params: str = "{}",
         **credentials) -> list[str]:
    """Connect, fetch once, and return every text a user could see."""
    from restconnect import connect

    spec = parse_spec(SPEC.format(name=name, url=url, auth=auth, path=path,
                                  params=params))
    texts = []
    with connect(spec, **credentials) as conn:
        texts += [repr(conn), repr(conn.auth), str([h.describe() for h in conn.auth])]
        try:
            conn.fetch("one")
        except RestConnectError as exc:
            texts += [str(exc), repr(exc)]
    return texts


@pytest.fixture()
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _assert_clean(texts: list[str], caplog) -> None:
    seen = "\n".join(texts) + "\n" + caplog.text
    for label, secret in SECRETS.items():
        assert secret not in seen, f"the {label} secret leaked"


@pytest.mark.peer
def test_http_auth_methods_leak_nothing(httpbin_url, everything_logged):
    texts = _run(httpbin_url, "basic", "{method: basic}",
                 "/basic-auth/u/other", username="u", password=SECRETS["basic"])
    texts += _run(httpbin_url, "digest", "{method: digest}",
                  "/digest-auth/auth/u/other", username="u",
                  password=SECRETS["digest"])
    texts += _run(httpbin_url, "key", "{method: api_key, location: query, param: key}",
                  "/status/429",
                  api_key=f"{SECRETS['api_key_a']},{SECRETS['api_key_b']}")
    texts += _run(httpbin_url, "hmac", "{method: hmac}", "/status/401",
                  key_id="kid", secret=SECRETS["hmac"])
    texts += _run(httpbin_url, "sigv4",
                  "{method: aws_sigv4, service: execute-api, region: eu-west-1}",
                  "/status/403", access_key_id="AKIDEXAMPLE",
                  secret_access_key=SECRETS["sigv4"],
                  session_token=SECRETS["sigv4_token"])
    assert any("401" in text for text in texts)
    _assert_clean(texts, everything_logged)


@pytest.mark.peer
def test_oauth1_leaks_nothing(oauth1_server, everything_logged):
    texts = _run(oauth1_server.url, "oauth1", "{method: oauth1}", "/items",
                 client_key=CLIENT_KEY, client_secret=SECRETS["oauth1"],
                 resource_owner_key=TOKEN, resource_owner_secret=TOKEN_SECRET)
    assert any("401" in text for text in texts)
    _assert_clean(texts, everything_logged)


def test_mtls_passphrase_leaks_nothing(mtls_server, tls_certs, tmp_path,
                                       everything_logged):
    from cryptography.hazmat.primitives import serialization

    from restconnect import connect

    passphrase = "mtls-passphrase-0009"
    key = serialization.load_pem_private_key(
        tls_certs["client"].private_key_pem.bytes(), None)
    key_file = tmp_path / "client.key"
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode())))
    spec = parse_spec(SPEC.format(name="mtls", url=mtls_server.url,
                                  auth="{method: mtls}", path="/whoami", params="{}"))
    texts = []
    for given in (passphrase, passphrase[::-1]):
        with connect(spec, client_cert=mtls_server.client_cert,
                     client_key=str(key_file), passphrase=given,
                     ca_bundle=mtls_server.ca_file) as conn:
            texts.append(repr(conn.auth))
            try:
                texts.append(str(conn.fetch("one").to_dict()))
            except RestConnectError as exc:
                texts += [str(exc), repr(exc)]
    assert any("wrong passphrase" in text for text in texts)
    assert any("good-client" in text for text in texts)
    for secret in (passphrase, passphrase[::-1]):
        assert secret not in "\n".join(texts) + everything_logged.text
