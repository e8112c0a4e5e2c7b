"""A local paginated API that is fast enough not to be what a benchmark measures.

Every page body is rendered once at start-up; a request costs a dictionary
lookup and one socket write. The server speaks HTTP/1.1 with keep-alive on an
asyncio protocol, so simulated latency (``/lat/<ms>/...``) costs no thread.

URL layout: ``[/lat/<ms>]/<auth>/<kind>/repos`` where ``auth`` is

- ``bearer``: ``Authorization: Bearer <token>``;
- ``sigv4``: an ``AWS4-HMAC-SHA256`` authorization header and ``X-Amz-Date``
  (the signature is not verified: the benchmark measures the client's cost);
- ``oauth``: a bearer token issued by ``POST /oauth/token`` (client credentials);

and ``kind`` is the pagination style:

- ``link``: ``?page=N&per_page=100``, a JSON array, a ``Link`` header with
  ``rel="next"`` and ``rel="last"`` (as GitHub);
- ``cursor``: ``?cursor=C&limit=100``, ``{"data": [...], "has_more", "next_cursor"}``;
- ``offset``: ``?offset=N&limit=100``, ``{"total", "offset", "items": [...]}``;
- ``page``: ``?page=N&per_page=100``, ``{"page", "total_pages", "total", "items"}``.

Run ``python -m benchmarks.server --records 100000``; it prints
``READY http://127.0.0.1:<port>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import secrets
import sys
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import orjson

from benchmarks.data import make_page

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
KINDS = ("link", "cursor", "offset", "page")
AUTHS = ("bearer", "sigv4", "oauth")


@dataclass
class Dataset:
    """The page bodies, rendered once.

    Only ``pool_pages`` distinct pages of records are rendered; later pages
    reuse them (ids repeat), which keeps a million-record server small.
    """

    records: int
    pool_pages: int = 1000
    pages: int = 0
    bodies: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pages = -(-self.records // PAGE_SIZE)
        distinct = min(self.pages, self.pool_pages)
        self.bodies = [orjson.dumps(make_page(i * PAGE_SIZE, PAGE_SIZE))
                       for i in range(distinct)]

    def records_body(self, page: int) -> bytes:
        """The JSON array of page ``page`` (0-based), cut short on the last page."""
        body = self.bodies[page % len(self.bodies)]
        left = self.records - page * PAGE_SIZE
        if left >= PAGE_SIZE:
            return body
        return orjson.dumps(orjson.loads(body)[:left])


def _cursor(page: int) -> str:
    return base64.urlsafe_b64encode(f"page:{page}".encode()).decode().rstrip("=")


def _page_of_cursor(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    return int(raw.split(":", 1)[1])


class Api:
    """Turns a parsed request into response bytes, with cached renderings."""

    def __init__(self, dataset: Dataset, token: str) -> None:
        self.dataset = dataset
        self.token = token
        self.oauth_tokens: set[str] = set()
        self.requests = 0
        # Bodies are shared by every auth variant; only the heads differ.
        self._bodies: dict[tuple[str, int], tuple[bytes, str]] = {}
        self._heads: dict[tuple[str, str, int, str], bytes] = {}

    def handle(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[float, bytes | tuple[bytes, bytes]]:
        """Return (latency in seconds, the response: bytes, or its head and body)."""
        self.requests += 1
        url = urlsplit(target)
        parts = [p for p in url.path.split("/") if p]
        latency = 0.0
        if len(parts) >= 2 and parts[0] == "lat":
            latency = float(parts[1]) / 1000
            parts = parts[2:]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        return latency, self._route(method, parts, query, headers, body)

    def _route(self, method: str, parts: list[str], query: dict[str, str],
               headers: dict[str, str], body: bytes) -> bytes | tuple[bytes, bytes]:
        if parts == ["oauth", "token"] and method == "POST":
            return self._issue_token(body, headers)
        if parts == ["health"]:
            return _response(200, b'{"ok":true}')
        if len(parts) != 3 or parts[0] not in AUTHS or parts[1] not in KINDS \
                or parts[2] != "repos":
            return _response(404, b'{"message":"Not Found"}')
        if not self._authorized(parts[0], headers):
            return _response(401, b'{"message":"Bad credentials"}')
        try:
            return self._page(parts[0], parts[1], query, headers.get("host", ""))
        except (ValueError, KeyError, IndexError):
            return _response(400, b'{"message":"bad pagination parameters"}')

    def _authorized(self, auth: str, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if auth == "bearer":
            return value == f"Bearer {self.token}"
        if auth == "sigv4":
            return (value.startswith("AWS4-HMAC-SHA256 Credential=")
                    and "Signature=" in value and "x-amz-date" in headers)
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and token in self.oauth_tokens

    def _issue_token(self, body: bytes, headers: dict[str, str]) -> bytes:
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return _response(400, b'{"error":"unsupported_grant_type"}')
        if "authorization" not in headers and "client_secret" not in form:
            return _response(401, b'{"error":"invalid_client"}')
        token = secrets.token_urlsafe(24)
        self.oauth_tokens.add(token)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        return _response(200, orjson.dumps(answer), cache="no-store")

    def _page(self, auth: str, kind: str, query: dict[str, str],
              host: str) -> tuple[bytes, bytes]:
        size = int(query.get("per_page") or query.get("limit") or PAGE_SIZE)
        if size != PAGE_SIZE:
            raise ValueError("only pages of 100 are served")
        page = self._page_index(kind, query)
        if not 0 <= page <= max(self.dataset.pages - 1, 0):
            raise IndexError(page)
        body_key = (kind, page)
        body = self._bodies.get(body_key)
        if body is None:
            data = self._body(kind, page)
            body = (data, _etag(data))
            if len(self._bodies) < 4_000:
                self._bodies[body_key] = body
        head_key = (auth, kind, page, host)
        head = self._heads.get(head_key)
        if head is None:
            extra = [("Link", _link(host, auth, page + 1, self.dataset.pages))] \
                if kind == "link" else []
            head = _head(200, len(body[0]), body[1], extra=extra)
            if len(self._heads) < 50_000:
                self._heads[head_key] = head
        return head, body[0]  # written one after the other: no copy of the body

    @staticmethod
    def _page_index(kind: str, query: dict[str, str]) -> int:
        if kind in ("link", "page"):
            return int(query.get("page", "1")) - 1
        if kind == "offset":
            offset = int(query.get("offset", "0"))
            if offset % PAGE_SIZE:
                raise ValueError("offset must be a multiple of 100")
            return offset // PAGE_SIZE
        cursor = query.get("cursor")
        return _page_of_cursor(cursor) if cursor else 0

    def _body(self, kind: str, page: int) -> bytes:
        data = self.dataset.records_body(page)
        last = self.dataset.pages
        if kind == "link":
            return data
        if kind == "cursor":
            more = page + 1 < last
            tail = f'"{_cursor(page + 1)}"' if more else "null"
            flag = b"true" if more else b"false"
            return (b'{"data":' + data + b',"has_more":' + flag
                    + b',"next_cursor":' + tail.encode() + b"}")
        if kind == "offset":
            return (b'{"total":%d,"offset":%d,"items":' % (self.dataset.records,
                                                           page * PAGE_SIZE)
                    + data + b"}")
        return (b'{"page":%d,"total_pages":%d,"total":%d,"items":'
                % (page + 1, last, self.dataset.records) + data + b"}")


def _link(host: str, auth: str, page: int, last: int) -> str:
    base = f"http://{host}/{auth}/link/repos?per_page={PAGE_SIZE}&page="
    links = []
    if page < last:
        links.append(f'<{base}{page + 1}>; rel="next"')
    links.append(f'<{base}{last}>; rel="last"')
    if page > 1:
        links.append(f'<{base}1>; rel="first"')
    return ", ".join(links)


def _response(status: int, body: bytes, *, extra: list[tuple[str, str]] = (),
              cache: str = "max-age=60") -> bytes:
    return _head(status, len(body), _etag(body), extra=extra, cache=cache) + body


def _head(status: int, length: int, etag: str, *, extra: list[tuple[str, str]] = (),
          cache: str = "max-age=60") -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized",
              404: "Not Found"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
             f"Content-Length: {length}", f'ETag: "{etag}"',
             f"Cache-Control: {cache}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _etag(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=8).hexdigest()


class HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive: one request at a time per connection."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.transport is None:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4:end + 4 + length]
        self.buffer = self.buffer[end + 4 + length:]
        method, target, _ = (head[0].split(" ") + ["", ""])[:3]
        latency, response = self.api.handle(method, target, headers, body)
        self.busy = True
        if latency:
            asyncio.get_running_loop().call_later(latency, self._send, response)
        else:
            self._send(response)

    def _send(self, response: bytes | tuple[bytes, ...]) -> None:
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in response if isinstance(response, tuple) else (response,):
            self.transport.write(chunk)
        if self.buffer:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(records: int, token: str, port: int, pool_pages: int) -> None:
    """Render the dataset, listen, and print READY with the base URL."""
    api = Api(Dataset(records, pool_pages=pool_pages), token)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(api), "127.0.0.1", port,
                                      backlog=256)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pool-pages", type=int, default=1000,
                        help="distinct pages rendered; later pages reuse them")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.records, args.token, args.port, args.pool_pages))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
