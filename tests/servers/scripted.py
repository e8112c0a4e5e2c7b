"""A real HTTP server on loopback whose answers each test scripts.

Tests queue responses per path; the server records every request it gets, so
a test can check exactly what restconnect sent over the wire.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: Close the connection after answering, without a ``Connection: close``.
    close: bool = False
    #: Close the connection instead of answering, as a server timing out an
    #: idle kept-alive connection does just as a request arrives.
    drop: bool = False
    #: Send only this many bytes of the body (announcing all of it), then close.
    cut: int | None = None
    #: With ``cut``: seconds to wait, silent, before closing.
    stall: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: The client's (host, port): one per connection it opened.
    client: tuple[str, int] = ("", 0)


class ScriptedServer:
    """Serve queued replies; the last reply of a path repeats once the queue ends."""

    def __init__(self) -> None:
        self.replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                server._record(Seen(self.command, parts.path,
                                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                                    dict(self.headers), body,
                                    self.client_address[:2]))
                reply = server._next(parts.path)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.payload()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if reply.cut is not None:
                    self.wfile.write(payload[:reply.cut])
                    self.wfile.flush()
                    time.sleep(reply.stall)
                    self.close_connection = True
                    return
                self.wfile.write(payload)
                if reply.close:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self.replies[path].extend(replies)

    def _next(self, path: str) -> Reply:
        with self._lock:
            queue = self.replies.get(path)
            if not queue:
                return Reply(404, {"message": f"nothing scripted for {path}"})
            return queue.popleft() if len(queue) > 1 else queue[0]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
