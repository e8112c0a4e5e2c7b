"""A loopback HTTP server that replays recorded GitHub REST exchanges.

The recordings live outside the repository, in ``<repo>/../shared/fixtures/github``
(one JSON object per line: method, url, request_headers, status,
response_headers, body). The server answers each request with the recorded
response whose method, path and sorted query parameters match, so a client
may order its query string differently from the original one.

Rules, following the fixtures' README:

* The N-th identical request gets the N-th recorded response; the last one
  repeats once they run out.
* A recorded request that carried ``If-None-Match`` only answers a request
  with the same validator; a request without one gets the unconditional
  recordings.
* ``https://api.github.com`` is rewritten to the server's own URL in headers
  and bodies, so ``Link`` pagination comes back to this server.
* A request nothing matches gets a GitHub-style 404 (recordings often stop
  while a ``rel="next"`` is still advertised).

Every request received is kept in :attr:`ReplayServer.received` so tests can
check what the client sent.

Example:
    >>> server = ReplayServer.from_files([path]).start()    # doctest: +SKIP
    >>> requests.get(server.url + "/rate_limit").status_code   # doctest: +SKIP
    200
    >>> server.stop()                                        # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "Exchange",
    "ReceivedRequest",
    "ReplayServer",
    "fixtures_dir",
    "load_exchanges",
    "request_key",
]

logger = logging.getLogger(__name__)

UPSTREAM = "https://api.github.com"

# Hop-by-hop or wire-encoding headers: they described the original connection.
_SKIPPED_HEADERS = {
    "connection", "content-encoding", "content-length", "keep-alive",
    "transfer-encoding",
}

_NO_BODY_STATUSES = {204, 304}

Key = tuple[str, str, tuple[tuple[str, str], ...]]


def fixtures_dir() -> Path:
    """Where the recorded GitHub exchanges are: ``<repo>/../shared/fixtures/github``."""
    repo = Path(__file__).resolve().parents[2]
    return (repo / ".." / "shared" / "fixtures" / "github").resolve()


def request_key(method: str, url: str) -> Key:
    """The matching key of a request: method, unquoted path, sorted query pairs."""
    parts = urlsplit(url)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return method.upper(), unquote(parts.path) or "/", query


Headers = Iterable[tuple[str, str]] | dict[str, str]
Answer = tuple[int, str, list[tuple[str, str]], bytes]


def header(headers: Headers, name: str) -> str | None:
    """A header value looked up case-insensitively, or None."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    wanted = name.lower()
    for key, value in pairs:
        if key.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its response."""

    method: str
    url: str
    request_headers: dict[str, str]
    status: int
    response_headers: dict[str, str]
    body: Any
    source: str = ""
    line: int = 0

    @property
    def key(self) -> Key:
        return request_key(self.method, self.url)

    @property
    def if_none_match(self) -> str | None:
        return header(self.request_headers, "If-None-Match")

    @property
    def reason(self) -> str:
        """The phrase of GitHub's recorded ``Status`` header, else the standard one."""
        status_line = header(self.response_headers, "Status") or ""
        code, _, phrase = status_line.partition(" ")
        if code == str(self.status) and phrase:
            return phrase
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "",
                  line: int = 0) -> Exchange:
        return cls(
            method=data["method"].upper(), url=data["url"],
            request_headers=dict(data.get("request_headers") or {}),
            status=int(data["status"]),
            response_headers=dict(data.get("response_headers") or {}),
            body=data.get("body", ""), source=source, line=line,
        )


def load_exchanges(path: str | Path) -> list[Exchange]:
    """Read one ``.jsonl`` recording, in recorded order."""
    path = Path(path)
    exchanges = []
    with path.open(encoding="utf-8") as stream:
        for number, text in enumerate(stream, start=1):
            if text.strip():
                exchange = Exchange.from_json(json.loads(text), path.name, number)
                exchanges.append(exchange)
    return exchanges


@dataclass
class ReceivedRequest:
    """A request the server received, and how it was answered."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0
    exchange: Exchange | None = None

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        return header(self.headers, name)

    @property
    def matched(self) -> bool:
        return self.exchange is not None

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)


@dataclass
class _Group:
    """The recorded responses for one key and one ``If-None-Match`` value."""

    exchanges: list[Exchange]
    served: int = 0

    def next(self) -> Exchange:
        index = min(self.served, len(self.exchanges) - 1)
        self.served += 1
        return self.exchanges[index]


@dataclass
class _Book:
    """Recorded exchanges indexed for lookup, with per-group counters."""

    groups: dict[tuple[Key, str | None], _Group] = field(default_factory=dict)

    @classmethod
    def of(cls, exchanges: Iterable[Exchange]) -> _Book:
        book = cls()
        for exchange in exchanges:
            slot = (exchange.key, exchange.if_none_match)
            book.groups.setdefault(slot, _Group([])).exchanges.append(exchange)
        return book

    def take(self, key: Key, if_none_match: str | None) -> Exchange | None:
        group = self.groups.get((key, if_none_match)) or self.groups.get((key, None))
        return group.next() if group else None


class ReplayServer:
    """Serve recorded exchanges on ``127.0.0.1`` from a background thread.

    Args:
        exchanges: the recordings to serve, in recorded order.
        upstream: the origin written in the recordings, replaced by :attr:`url`.
    """

    def __init__(self, exchanges: Iterable[Exchange], *, upstream: str = UPSTREAM):
        self.exchanges = list(exchanges)
        self.upstream = upstream.rstrip("/")
        self.received: list[ReceivedRequest] = []
        self._book = _Book.of(self.exchanges)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], **kwargs: Any) -> ReplayServer:
        """A server for the exchanges of one or more recordings."""
        exchanges = [item for path in paths for item in load_exchanges(path)]
        return cls(exchanges, **kwargs)

    @property
    def url(self) -> str:
        """The base URL clients use instead of ``https://api.github.com``."""
        if self._httpd is None:
            raise RuntimeError("the replay server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        """Bind a free port and serve in a daemon thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.replay = self  # type: ignore[attr-defined]  # read by _Handler
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="github-replay", daemon=True)
        self._thread.start()
        logger.debug("replay server on %s with %s exchanges", self.url,
                     len(self.exchanges))
        return self

    def stop(self) -> None:
        """Stop serving and release the port (waits at most a few seconds)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ inspection

    def requests_for(self, path: str) -> list[ReceivedRequest]:
        """Received requests whose path is ``path``."""
        with self._lock:
            return [item for item in self.received if item.path == path]

    def misses(self) -> list[ReceivedRequest]:
        """Received requests no recording matched (answered 404)."""
        with self._lock:
            return [item for item in self.received if not item.matched]

    def served(self) -> list[Exchange]:
        """The recorded exchanges sent back, in the order they were sent."""
        with self._lock:
            return [item.exchange for item in self.received if item.exchange]

    # ------------------------------------------------------------ answering

    def answer(self, received: ReceivedRequest) -> Answer:
        """Pick the recording for a request; returns status, reason, headers, body."""
        key = (received.method, received.path, received.query)
        with self._lock:
            exchange = self._book.take(key, received.header("If-None-Match"))
            received.exchange = exchange
            received.status = exchange.status if exchange else 404
            self.received.append(received)
        if exchange is None:
            return self._miss(received)
        return (exchange.status, exchange.reason, self._headers(exchange),
                self._body(exchange))

    def _headers(self, exchange: Exchange) -> list[tuple[str, str]]:
        return [(name, value.replace(self.upstream, self.url))
                for name, value in exchange.response_headers.items()
                if name.lower() not in _SKIPPED_HEADERS]

    def _body(self, exchange: Exchange) -> bytes:
        if exchange.status in _NO_BODY_STATUSES or exchange.body in ("", None):
            return b""
        text = exchange.body if isinstance(exchange.body, str) else json.dumps(
            exchange.body, ensure_ascii=False)
        return text.replace(self.upstream, self.url).encode("utf-8")

    def _miss(self, received: ReceivedRequest) -> Answer:
        logger.debug("replay miss: %s %s %s", received.method, received.path,
                     received.query)
        body = {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "replay": f"no recorded exchange for {received.method} {received.path}",
        }
        headers = [("Content-Type", "application/json; charset=utf-8"),
                   ("X-Replay-Miss", "1")]
        return 404, "Not Found", headers, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a :class:`ReceivedRequest` for the server."""

    protocol_version = "HTTP/1.1"
    server_version = "github-replay"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._replay()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _replay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method, path, query = request_key(self.command, self.path)
        headers = list(self.headers.items())
        received = ReceivedRequest(method, path, query, headers, body)
        replay: ReplayServer = self.server.replay  # type: ignore[attr-defined]
        status, reason, headers, payload = replay.answer(received)
        self._respond(status, reason, headers, payload)

    def _respond(self, status: int, reason: str, headers: list[tuple[str, str]],
                 payload: bytes) -> None:
        # send_response_only: the recorded Date and Server headers are the real ones.
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if status not in _NO_BODY_STATUSES:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and status not in _NO_BODY_STATUSES and self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base name
        logger.debug("replay %s", format % args)


def iter_fixture_files(directory: Path | None = None) -> Iterator[Path]:
    """Every ``.jsonl`` recording in the fixtures folder, sorted by name."""
    yield from sorted((directory or fixtures_dir()).glob("*.jsonl"))


def main(argv: list[str] | None = None) -> None:
    """Serve recordings until interrupted: ``python -m tests.servers.replay FILE``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    server = ReplayServer.from_files(args.files).start()
    print(f"replaying {len(server.exchanges)} exchanges on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
