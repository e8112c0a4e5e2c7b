"""A resource server on 127.0.0.1 that checks OAuth 1.0a signatures with oauthlib.

The check is oauthlib's server side (``ResourceEndpoint`` plus a
``RequestValidator``), an implementation independent of the client signer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CLIENT_KEY = "restconnectClientKey0001"
CLIENT_SECRET = "consumer-secret-value-42"
TOKEN = "restconnectAccessToken01"
TOKEN_SECRET = "token-secret-value-4242"


def _validator_class() -> type:
    from oauthlib.oauth1 import RequestValidator

    class Validator(RequestValidator):
        """Knows one client and one access token; refuses a nonce seen twice."""

        enforce_ssl = False  # the test server is plain HTTP on loopback

        def __init__(self) -> None:
            super().__init__()
            self.nonces: set[tuple[str, str, str]] = set()
            self.lock = threading.Lock()

        @property
        def dummy_client(self) -> str:
            return "dummyClientKeyForTiming"

        @property
        def dummy_access_token(self) -> str:
            return "dummyAccessTokenTiming"

        def validate_client_key(self, client_key: str, request: Any) -> bool:
            return client_key == CLIENT_KEY

        def validate_access_token(self, client_key: str, token: str,
                                  request: Any) -> bool:
            return client_key == CLIENT_KEY and token == TOKEN

        def get_client_secret(self, client_key: str, request: Any) -> str:
            return CLIENT_SECRET if client_key == CLIENT_KEY else "dummy-secret"

        def get_access_token_secret(self, client_key: str, token: str,
                                    request: Any) -> str:
            return TOKEN_SECRET if token == TOKEN else "dummy-token-secret"

        def validate_timestamp_and_nonce(self, client_key: str, timestamp: str,
                                         nonce: str, request: Any,
                                         request_token: Any = None,
                                         access_token: Any = None) -> bool:
            key = (client_key, timestamp, nonce)
            with self.lock:
                if key in self.nonces:
                    return False
                self.nonces.add(key)
            return True

        def validate_realms(self, *args: Any, **kwargs: Any) -> bool:
            return True

    return Validator


@dataclass
class OAuth1World:
    url: str
    endpoint: Any


def _handler_class(endpoint: Any) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._check()

        def do_POST(self) -> None:
            self._check()

        def _check(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else None
            host = self.headers.get("Host")
            valid, request = endpoint.validate_protected_resource_request(
                f"http://{host}{self.path}", self.command, body, dict(self.headers))
            status = 200 if valid else 401
            answer = {"valid": valid,
                      "items": [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]
                      if valid else []}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def oauth1_server() -> Iterator[OAuth1World]:
    oauth1 = pytest.importorskip("oauthlib.oauth1")
    endpoint = oauth1.ResourceEndpoint(_validator_class()())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(endpoint))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="oauth1", daemon=True)
    thread.start()
    try:
        yield OAuth1World(f"http://127.0.0.1:{server.server_address[1]}", endpoint)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
