"""An HTTPS server on 127.0.0.1 that can require client certificates.

Built on Python's ``ssl`` and ``http.server``; each connection's handshake
runs in its own thread, so a refused handshake never blocks the server.
Certificates come from ``trustme`` (a CA, the server's certificate, client
certificates) and ``cryptography`` (an expired one, another CA's one).

Routes:
    ``/whoami``   the client certificate's subject, as JSON.
    ``/basic``    HTTP Basic check against ``user`` / ``password``.
    ``/records``  a small JSON list, for fetching through a spec.
    ``/linked``   three pages of a JSON list with ``Link: rel="next"`` headers;
                  each record names the client certificate and the connection.
    ``/open-banking/v3.1/aisp/accounts``  two pages shaped as the UK Open
                  Banking specification shows them, behind a bearer token.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BASIC_USER = "tls-user"
BASIC_PASSWORD = "tls-password-3141"
OB_TOKEN = "ob-access-token-5772"
OB_PREFIX = "/open-banking/v3.1/aisp"


class _Handler(BaseHTTPRequestHandler):
    server: _TLSServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.startswith("/basic"):
            self._basic()
        elif self.path.startswith(OB_PREFIX):
            self._accounts()
        elif self.path.startswith("/linked"):
            self._linked()
        elif self.path.startswith("/records"):
            rows = [{"id": i, "name": f"row {i}"} for i in range(3)]
            self._send(200, {"records": rows})
        else:
            peer = self.connection.getpeercert()
            subject = dict(item[0] for item in peer["subject"]) if peer else {}
            self._send(200, {"subject": subject})

    def _accounts(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {OB_TOKEN}":
            self._send(401, {"Code": "401", "Message": "invalid token"})
            return
        host = f"https://{self.headers.get('Host')}{OB_PREFIX}"
        second = "page=2" in self.path
        first_ids, links = (["22289"], {"Self": f"{host}/accounts",
                                        "Next": f"{host}/accounts?page=2"})
        if second:
            first_ids, links = ["31820"], {"Self": f"{host}/accounts?page=2"}
        accounts = [{"AccountId": ident, "Status": "Enabled", "Currency": "GBP",
                     "AccountType": "Personal", "AccountSubType": "CurrentAccount",
                     "Nickname": "Bills", "OpeningDate": "2019-01-01T06:06:06+00:00",
                     "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                  "Identification": "80200110203345",
                                  "Name": "Mr Kevin"}]} for ident in first_ids]
        self._send(200, {"Data": {"Account": accounts}, "Links": links,
                         "Meta": {"TotalPages": 2}})

    def _linked(self) -> None:
        number = int(self.path.partition("page=")[2] or 1)
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        rows = [{"id": number * 10 + i, "client": subject.get("commonName"),
                 "port": self.client_address[1]} for i in range(2)]
        headers = {}
        if number < 3:
            url = f"https://{self.headers.get('Host')}/linked?page={number + 1}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._send(200, rows, headers)

    def _basic(self) -> None:
        expected = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {expected}":
            self._send(200, {"authenticated": True, "user": BASIC_USER})
        else:
            self._send(401, {"authenticated": False},
                       {"WWW-Authenticate": 'Basic realm="tls"'})

    def _send(self, status: int, body: Any,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, in the connection's own thread.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            _drain(request)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


def _drain(sock: socket.socket, timeout: float = 1.0) -> None:
    """Read what the client still sends before closing, as web servers do.

    Closing with unread data makes the kernel send a reset, and the client
    then loses the TLS alert that says why its certificate was refused.
    """
    try:
        sock.settimeout(timeout)
        while sock.recv(65536):
            pass
    except OSError:
        pass


@dataclass
class TLSWorld:
    """The running server and every certificate a test may need (file paths)."""

    url: str
    ca_file: str
    client_cert: str
    client_key: str
    files: dict[str, str] = field(default_factory=dict)


def _server_context(ca: Any, server_cert: Any, require_client: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
    return context


def _expired_cert(ca: Any) -> Any:
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)
    return ca.issue_cert("expired-client@example.org", common_name="expired-client",
                         not_before=past - dt.timedelta(days=30), not_after=past)


def make_certificates(folder: Path) -> dict[str, Any]:
    """The CA, the server's certificate and clients: good, soon-expiring, expired,
    another CA's. Returns trustme objects and writes PEM files into ``folder``."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA(organization_name="restconnect test CA")
    other_ca = trustme.CA(organization_name="some other CA")
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5)
    made = {
        "ca": ca, "other_ca": other_ca,
        "server": ca.issue_cert("127.0.0.1", "localhost"),
        "client": ca.issue_cert("client@example.org", common_name="good-client"),
        "soon": ca.issue_cert("soon@example.org", common_name="soon-client",
                              not_after=soon),
        "expired": _expired_cert(ca),
        "stranger": other_ca.issue_cert("stranger@example.org", common_name="stranger"),
    }
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    other_ca.cert_pem.write_to_path(str(folder / "other-ca.pem"))
    for name in ("client", "soon", "expired", "stranger"):
        leaf = made[name]
        leaf.cert_chain_pems[0].write_to_path(str(folder / f"{name}.crt"))
        leaf.private_key_pem.write_to_path(str(folder / f"{name}.key"))
    return made


def start_tls_server(ca: Any, server_cert: Any, require_client: bool = True
                     ) -> tuple[_TLSServer, threading.Thread]:
    server = _TLSServer(_server_context(ca, server_cert, require_client))
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.1},
                              name="tls-test-server", daemon=True)
    thread.start()
    _wait_listening(server.server_address[1])
    return server, thread


def _wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    while dt.datetime.now() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            continue
    raise RuntimeError(f"the TLS test server did not listen on port {port}")


def stop_tls_server(server: _TLSServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("tls-certs")
    made = make_certificates(folder)
    made["folder"] = folder
    yield made


@pytest.fixture(scope="module")
def mtls_server(tls_certs: dict[str, Any]) -> Iterator[TLSWorld]:
    """An HTTPS server on 127.0.0.1 that requires a client certificate."""
    server, thread = start_tls_server(tls_certs["ca"], tls_certs["server"])
    folder = tls_certs["folder"]
    try:
        yield TLSWorld(f"https://127.0.0.1:{server.server_address[1]}",
                       str(folder / "ca.pem"), str(folder / "client.crt"),
                       str(folder / "client.key"))
    finally:
        stop_tls_server(server, thread)


@pytest.fixture(scope="module")
def tls_server(tls_certs: dict[str, Any]) -> Iterator[TLSWorld]:
    """An HTTPS server on 127.0.0.1 that does not ask for a client certificate."""
    server, thread = start_tls_server(tls_certs["ca"], tls_certs["server"],
                                      require_client=False)
    folder = tls_certs["folder"]
    try:
        yield TLSWorld(f"https://127.0.0.1:{server.server_address[1]}",
                       str(folder / "ca.pem"), str(folder / "client.crt"),
                       str(folder / "client.key"))
    finally:
        stop_tls_server(server, thread)
