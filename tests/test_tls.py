"""TLS verification stays on, and a refused handshake is explained, not retried."""

from __future__ import annotations

import pytest

from restconnect import connect
from restconnect.exceptions import TransportError
from restconnect.spec import parse_spec
from tests.servers.tls_server import tls_certs, tls_server  # noqa: F401  (fixtures)

SPEC = """
name: tls_check
base_url: {url}
auth: {{method: none}}
retry: {{attempts: 3, backoff: 0.01}}
endpoints:
  accounts: {{path: /accounts}}
"""


def test_an_untrusted_server_fails_once_with_an_explanation(tls_server, monkeypatch):
    # The system bundle in the environment does not know the test CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    conn = connect(parse_spec(SPEC.format(url=tls_server.url)))
    with pytest.raises(TransportError) as info:
        conn.fetch("accounts")
    assert "not trusted" in str(info.value)
    assert conn.http.stats.sent == 1


def test_the_given_ca_bundle_wins_over_the_environment(tls_server, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    conn = connect(parse_spec(SPEC.format(url=tls_server.url)),
                   ca_bundle=tls_server.ca_file)
    assert conn.get("/accounts") is not None
