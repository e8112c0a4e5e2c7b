"""Small HTTP servers on 127.0.0.1 for the JWT and ID-token tests.

Each server is a real ``ThreadingHTTPServer`` with routes registered as
functions of the request; it counts calls per path so a test can assert how
many token requests a client really made.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


Reply = tuple[int, Any, dict[str, str]]
Route = Callable[[Call], Reply]


class TinyServer:
    """Routes keyed by (method, path); every call is counted and kept."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        def register(function: Route) -> Route:
            self.routes[(method, path)] = function
            return function

        return register

    def _record(self, call: Call) -> Reply:
        with self._lock:
            self.calls.append(call)
            self.counts[call.path] += 1
        route = self.routes.get((call.method, call.path))
        if route is None:
            return 404, {"error": "not_found"}, {}
        return route(call)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                call = Call(
                    self.command,
                    urlsplit(self.path).path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                status, body, headers = server._record(call)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", headers.pop("Content-Type", "application/json")
                )
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve  # noqa: N815 - http.server hook names

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self) -> TinyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def tiny_server() -> Iterator[TinyServer]:
    server = TinyServer().start()
    try:
        yield server
    finally:
        server.stop()


def get_in_threads(http: Any, url: str, count: int, timeout: float = 20) -> list[int]:
    """GET ``url`` from ``count`` threads at once; the statuses, in finishing order."""
    statuses: list[int] = []

    def call() -> None:
        statuses.append(http.request("GET", url).status_code)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return statuses
