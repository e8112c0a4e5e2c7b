"""mTLS against a real HTTPS server on 127.0.0.1 that requires client certificates."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import requests

from restconnect.auth.mtls import MTLSAuth, MTLSOptions, explain_tls_error
from restconnect.exceptions import AuthError, TransportError
from restconnect.secret import Secret
from restconnect.spec import parse_spec
from tests.servers.tls_server import (  # noqa: F401  (fixtures)
    OB_PREFIX,
    OB_TOKEN,
    mtls_server,
    tls_certs,
)

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PASSPHRASE = "correct horse battery staple"

SPEC = """
name: bank
base_url: {url}
auth:
  method: mtls
  env: {{server_ca: BANK_SERVER_CA}}
retry: {{attempts: 1}}
endpoints:
  whoami: {{path: /whoami, records: "@", pagination: {{kind: none}}}}
  linked: {{path: /linked, pagination: {{kind: link_header}}}}
"""


@pytest.fixture(autouse=True)
def _environment_bundles(monkeypatch):
    """This machine's setting everywhere: both variables name the system bundle."""
    bundle = SYSTEM_BUNDLE if os.path.exists(SYSTEM_BUNDLE) else __file__
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    monkeypatch.setenv("CURL_CA_BUNDLE", bundle)


def _connect(world, **credentials):
    from restconnect import connect

    return connect(parse_spec(SPEC.format(url=world.url)), **credentials)


def _files(certs, name):
    folder = certs["folder"]
    return str(folder / f"{name}.crt"), str(folder / f"{name}.key")


def test_good_certificate_succeeds_despite_the_environment_bundle(mtls_server):
    with _connect(mtls_server, client_cert=mtls_server.client_cert,
                  client_key=mtls_server.client_key,
                  ca_bundle=mtls_server.ca_file) as conn:
        frame = conn.fetch("whoami")
    assert frame.loc[0, "subject.commonName"] == "good-client"


def test_link_pages_sent_ahead_keep_the_certificate_and_the_connection(mtls_server,
                                                                       monkeypatch):
    from restconnect.transport import Transport

    received = []
    receive = Transport.receive

    def counting(self, sent):
        received.append(sent.request.url)
        return receive(self, sent)
    monkeypatch.setattr(Transport, "receive", counting)

    with _connect(mtls_server, client_cert=mtls_server.client_cert,
                  client_key=mtls_server.client_key,
                  ca_bundle=mtls_server.ca_file) as conn:
        frame = conn.fetch("linked", cache=False, concurrency=1)

    assert frame["id"].tolist() == [10, 11, 20, 21, 30, 31]
    assert set(frame["client"]) == {"good-client"}
    assert frame["port"].nunique() == 1  # one TLS connection for every page
    assert [url.rpartition("=")[2] for url in received] == ["2", "3"]  # sent ahead


def test_the_environment_really_overrides_a_session_verify(mtls_server):
    """Why verify goes on every request: a session-level setting loses."""
    session = requests.Session()
    session.verify = mtls_server.ca_file
    session.cert = (mtls_server.client_cert, mtls_server.client_key)
    with pytest.raises(requests.exceptions.SSLError):
        session.get(mtls_server.url + "/whoami", timeout=10)


def _transport_error(world, **credentials) -> str:
    conn = _connect(world, **credentials)
    with conn, pytest.raises(TransportError) as info:
        conn.fetch("whoami")
    return str(info.value)


def test_certificate_from_another_ca_is_refused_clearly(mtls_server, tls_certs):
    cert, key = _files(tls_certs, "stranger")
    text = _transport_error(mtls_server, client_cert=cert, client_key=key,
                            ca_bundle=mtls_server.ca_file)
    # TLS 1.3 sends the refusal after the client's side of the handshake is
    # done, so the alert (unknown CA) may or may not reach the client before
    # the connection closes; both messages say what happened and name the CA.
    assert "refused our client certificate" in text and "some other CA" in text


def test_expired_certificate_warns_and_is_refused_clearly(mtls_server, tls_certs,
                                                         caplog):
    cert, key = _files(tls_certs, "expired")
    with caplog.at_level(logging.WARNING, logger="restconnect.auth.mtls"):
        text = _transport_error(mtls_server, client_cert=cert, client_key=key,
                                ca_bundle=mtls_server.ca_file)
    assert "expired on" in caplog.text
    assert "refused our client certificate" in text and "expired on" in text


def test_no_certificate_is_explained(mtls_server):
    with pytest.raises(requests.exceptions.SSLError) as info:
        requests.get(mtls_server.url + "/whoami", verify=mtls_server.ca_file,
                     timeout=10)
    text = explain_tls_error(info.value)
    assert text is not None and "client certificate" in text
    assert "none was sent" in text


@pytest.mark.parametrize("how", ["connect", "server_ca"])
def test_untrusted_server_certificate_names_our_bundle(mtls_server, tls_certs,
                                                       monkeypatch, how):
    other_ca = str(tls_certs["folder"] / "other-ca.pem")
    given = {"ca_bundle": other_ca}
    if how == "server_ca":
        monkeypatch.setenv("BANK_SERVER_CA", other_ca)
        given = {}
    text = _transport_error(mtls_server, client_cert=mtls_server.client_cert,
                            client_key=mtls_server.client_key, **given)
    assert "server's certificate is not trusted by" in text and "other-ca.pem" in text


def test_server_ca_from_the_environment_wins(mtls_server, monkeypatch):
    monkeypatch.setenv("BANK_SERVER_CA", mtls_server.ca_file)
    with _connect(mtls_server, client_cert=mtls_server.client_cert,
                  client_key=mtls_server.client_key) as conn:
        assert conn.fetch("whoami").loc[0, "subject.commonName"] == "good-client"


def _encrypted_key(tls_certs, folder: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(
        tls_certs["client"].private_key_pem.bytes(), None)
    path = folder / "client-encrypted.key"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    return str(path)


def _assert_private_and_removed(handler: MTLSAuth) -> None:
    for path in handler.cert:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    folder = Path(handler.cert[1]).parent
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    handler.close()
    assert not folder.exists()


def test_encrypted_key_with_passphrase(mtls_server, tls_certs, tmp_path):
    key = _encrypted_key(tls_certs, tmp_path)
    with _connect(mtls_server, client_cert=mtls_server.client_cert, client_key=key,
                  passphrase=PASSPHRASE, ca_bundle=mtls_server.ca_file) as conn:
        assert conn.fetch("whoami").loc[0, "subject.commonName"] == "good-client"
        handler = conn.auth[0]
        assert b"ENCRYPTED" not in Path(handler.cert[1]).read_bytes()
        folder = Path(handler.cert[1]).parent
        assert folder.exists()
    assert not folder.exists(), "conn.close() must remove the decrypted key"


def test_wrong_or_missing_passphrase_is_clear(tls_certs, tmp_path):
    key = _encrypted_key(tls_certs, tmp_path)
    cert = str(tls_certs["folder"] / "client.crt")
    with pytest.raises(AuthError, match="wrong passphrase") as info:
        MTLSAuth(MTLSOptions(), {"client_cert": cert, "client_key": key,
                                 "passphrase": Secret("not-the-passphrase")}).load()
    assert "not-the-passphrase" not in str(info.value)
    with pytest.raises(AuthError, match="encrypted: give the passphrase"):
        MTLSAuth(MTLSOptions(), {"client_cert": cert, "client_key": key}).load()


def test_pkcs12_bundle(mtls_server, tls_certs, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    leaf = tls_certs["client"]
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    bundle = tmp_path / "client.p12"
    bundle.write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", key, cert, None,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    with _connect(mtls_server, pkcs12=str(bundle), passphrase=PASSPHRASE,
                  ca_bundle=mtls_server.ca_file) as conn:
        assert conn.fetch("whoami").loc[0, "subject.commonName"] == "good-client"
        _assert_private_and_removed(conn.auth[0])


def test_soon_expiring_certificate_warns(tls_certs, caplog):
    cert, key = _files(tls_certs, "soon")
    with caplog.at_level(logging.WARNING, logger="restconnect.auth.mtls"):
        handler = MTLSAuth(MTLSOptions(), {"client_cert": cert, "client_key": key})
        handler.load()
    assert "expires in" in caplog.text and "soon-client" in caplog.text
    assert handler.describe()["subject"].startswith("CN=soon-client")


def test_mismatched_key_and_bad_paths(tls_certs):
    cert, _ = _files(tls_certs, "client")
    _, other_key = _files(tls_certs, "stranger")
    with pytest.raises(AuthError, match="does not belong"):
        MTLSAuth(MTLSOptions(), {"client_cert": cert, "client_key": other_key}).load()
    with pytest.raises(AuthError, match="cannot read"):
        MTLSAuth(MTLSOptions(), {"client_cert": "/nonexistent/client.crt"}).load()
    with pytest.raises(AuthError, match="give client_cert"):
        MTLSAuth(MTLSOptions(), {}).load()
    with pytest.raises(AuthError, match="server_ca .* does not exist"):
        MTLSAuth(MTLSOptions(), {"client_cert": cert, "client_key": _files(
            tls_certs, "client")[1], "server_ca": "/nonexistent/ca.pem"})


def test_bundled_open_banking_spec_over_mtls_and_a_token(mtls_server):
    from restconnect import connect

    conn = connect("open_banking_uk", base_url=mtls_server.url + OB_PREFIX,
                   ca_bundle=mtls_server.ca_file, client_cert=mtls_server.client_cert,
                   client_key=mtls_server.client_key, token=OB_TOKEN)
    with conn:
        accounts = conn.fetch("accounts")
    assert list(accounts["AccountId"]) == ["22289", "31820"]
    assert [h.name for h in conn.auth] == ["mtls", "bearer"]
