"""Record and replay: HTTP exchanges kept in cassettes for offline work and tests.

``connect(..., record="dir")`` mounts a transport adapter on the connector's
session that writes each exchange to ``dir/<connector>.jsonl``, one JSON
object a line, after scrubbing: sensitive headers, query parameters and form
or JSON fields are masked by name, and every secret value restconnect knows
is masked wherever it appears, bodies included. ``connect(..., replay="dir")``
mounts an adapter that answers from that file and never opens a socket; a
request the cassette does not hold raises :class:`CacheError`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from restconnect.exceptions import CacheError
from restconnect.redact import (
    MASK,
    is_sensitive_name,
    known_secrets,
    redact_url,
    secret_forms,
)

__all__ = [
    "Cassette",
    "RecordingAdapter",
    "ReplayAdapter",
    "cassette_path",
    "mount_cassette",
    "scrub_text",
]

logger = logging.getLogger(__name__)

#: JSON body fields masked by name. Narrower than header names on purpose:
#: record fields such as ``key`` or ``author`` are data, not credentials.
SECRET_FIELDS = frozenset({
    "access_token", "refresh_token", "id_token", "client_secret", "password",
    "api_key", "apikey", "secret", "token", "assertion", "client_assertion",
    "code_verifier", "private_key",
})

#: Response headers not written: they describe the original transfer only.
_TRANSFER_HEADERS = frozenset({"content-encoding", "content-length",
                               "transfer-encoding", "connection", "keep-alive"})


def cassette_path(folder: str | os.PathLike[str], connector: str) -> Path:
    """Where a connector's cassette lives in a folder."""
    return Path(folder).expanduser() / f"{connector}.jsonl"


# ---------------------------------------------------------------- scrubbing


def scrub_text(text: str, values: Iterable[str] | None = None) -> str:
    """``text`` with every secret value, raw or URL-encoded, masked."""
    for form in secret_forms(values if values is not None else known_secrets()):
        if form in text:
            text = text.replace(form, MASK)
    return text


def _scrub_url(url: str, names: Iterable[str], values: Iterable[str]) -> str:
    return scrub_text(redact_url(url, names), values)


def _scrub_headers(headers: Mapping[str, str], values: Iterable[str]) -> dict[str, str]:
    return {name: MASK if is_sensitive_name(name) else scrub_text(str(value), values)
            for name, value in headers.items()}


def _scrub_json(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: MASK if str(key).lower() in SECRET_FIELDS and data[key]
                else _scrub_json(data[key]) for key in data}
    if isinstance(data, list):
        return [_scrub_json(item) for item in data]
    return data


def _scrub_body(body: bytes | str | None, content_type: str,
                values: Iterable[str]) -> dict[str, Any]:
    """The body as cassette fields: ``body`` (text) or ``body_base64``."""
    if body is None or body == b"" or body == "":
        return {"body": None}
    raw = body.encode() if isinstance(body, str) else body
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Binary bodies are kept as base64; secret values are masked in the bytes.
        masked = raw
        for form in secret_forms(values):
            masked = masked.replace(form.encode(), MASK.encode())
        return {"body": None, "body_base64": base64.b64encode(masked).decode()}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        pairs = [(k, MASK if is_sensitive_name(k) else v)
                 for k, v in parse_qsl(text, keep_blank_values=True)]
        text = urlencode(pairs, safe="*")
    elif kind.endswith("json") or text[:1] in ("{", "["):
        try:
            text = orjson.dumps(_scrub_json(orjson.loads(text))).decode()
        except orjson.JSONDecodeError:
            pass
    return {"body": scrub_text(text, values)}


def _body_bytes(fields: Mapping[str, Any]) -> bytes:
    if fields.get("body_base64"):
        return base64.b64decode(fields["body_base64"])
    body = fields.get("body")
    return body.encode() if isinstance(body, str) else b""


def _match_key(method: str, url: str, body: str | None) -> str:
    parts = urlsplit(url)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)), safe="*")
    normal = urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", query,
                         ""))
    return f"{method.upper()} {normal} {body or ''}"


# ---------------------------------------------------------------- the cassette


class Cassette:
    """One connector's cassette file.

    Args:
        path: the ``.jsonl`` file.
        connector: the connector name, for messages.
        param_names: extra query parameter names to mask (API keys in queries).

    Example:
        >>> tape = Cassette(Path("tapes/sandbox.jsonl"), "sandbox")  # doctest: +SKIP
        >>> len(tape.load())                                         # doctest: +SKIP
        12
    """

    def __init__(self, path: Path, connector: str, param_names: Iterable[str] = ()):
        self.path = path
        self.connector = connector
        self.param_names = list(param_names)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Cassette {self.connector!r} {self.path}>"

    # ------------------------------------------------------------ writing

    def start(self) -> None:
        """Create the folder and an empty, private cassette file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.close(fd)

    def entry(self, request: requests.PreparedRequest,
              response: requests.Response) -> dict[str, Any]:
        """The scrubbed cassette line of one exchange."""
        values = known_secrets()
        request_type = request.headers.get("Content-Type", "")
        response_type = response.headers.get("Content-Type", "")
        response_headers = {k: v for k, v in response.headers.items()
                            if k.lower() not in _TRANSFER_HEADERS}
        return {
            "request": {
                "method": request.method,
                "url": _scrub_url(request.url or "", self.param_names, values),
                "headers": _scrub_headers(request.headers, values),
                **_scrub_body(request.body, request_type, values),
            },
            "response": {
                "status": response.status_code, "reason": response.reason,
                "url": _scrub_url(response.url or "", self.param_names, values),
                "headers": _scrub_headers(response_headers, values),
                **_scrub_body(response.content, response_type, values),
            },
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def append(self, request: requests.PreparedRequest,
               response: requests.Response) -> None:
        """Write one exchange, flushed at once so a crash keeps what was recorded."""
        line = orjson.dumps(self.entry(request, response)) + b"\n"
        with self._lock, open(self.path, "ab") as handle:
            handle.write(line)

    # ------------------------------------------------------------ reading

    def load(self) -> list[dict[str, Any]]:
        """Every recorded exchange.

        Raises:
            CacheError: the file is missing or a line is not JSON.
        """
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            raise CacheError(f"{self.connector}: no cassette at {self.path}; record "
                             f"one with connect(..., record={str(self.path.parent)!r})"
                             ) from None
        entries = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise CacheError(f"{self.path}: line {number} is not JSON") from None
        return entries

    def request_key(self, request: requests.PreparedRequest) -> str:
        """How a live request is matched against recorded ones."""
        values = known_secrets()
        url = _scrub_url(request.url or "", self.param_names, values)
        body = _scrub_body(request.body, request.headers.get("Content-Type", ""),
                           values)
        return _match_key(request.method or "GET", url,
                          body.get("body") or body.get("body_base64"))


# ---------------------------------------------------------------- adapters


class RecordingAdapter(BaseAdapter):
    """Sends through the real adapter and writes each exchange to the cassette."""

    def __init__(self, inner: BaseAdapter, cassette: Cassette):
        super().__init__()
        self.inner = inner
        self.cassette = cassette

    def send(self, request: requests.PreparedRequest, **kwargs: Any
             ) -> requests.Response:
        response = self.inner.send(request, **kwargs)
        _ = response.content  # read the body so it can be written and still used
        self.cassette.append(request, response)
        return response

    def close(self) -> None:
        self.inner.close()


class ReplayAdapter(BaseAdapter):
    """Answers from a cassette; never touches the network."""

    def __init__(self, cassette: Cassette):
        super().__init__()
        self.cassette = cassette
        self._lock = threading.Lock()
        self._answers: dict[str, deque[dict[str, Any]]] = {}
        for entry in cassette.load():
            recorded = entry["request"]
            key = _match_key(recorded["method"], recorded["url"],
                             recorded.get("body") or recorded.get("body_base64"))
            self._answers.setdefault(key, deque()).append(entry["response"])
        logger.debug("%s: replaying %d exchanges from %s", cassette.connector,
                     sum(len(q) for q in self._answers.values()), cassette.path)

    def send(self, request: requests.PreparedRequest, **kwargs: Any
             ) -> requests.Response:
        key = self.cassette.request_key(request)
        with self._lock:
            queue = self._answers.get(key)
            if not queue:
                raise CacheError(
                    f"{self.cassette.connector}: the cassette {self.cassette.path} "
                    f"holds no response for {request.method} "
                    f"{redact_url(request.url or '', self.cassette.param_names)}; "
                    "record it again with connect(..., record=...)")
            # Repeated requests get the recorded answers in order; the last repeats.
            recorded = queue.popleft() if len(queue) > 1 else queue[0]
        return _response(request, recorded, self)

    def close(self) -> None:
        return None


def _response(request: requests.PreparedRequest, recorded: Mapping[str, Any],
              adapter: BaseAdapter) -> requests.Response:
    response = requests.Response()
    response.status_code = int(recorded["status"])
    response.reason = recorded.get("reason") or ""
    response.headers = CaseInsensitiveDict(recorded.get("headers") or {})
    response._content = _body_bytes(recorded)
    response._content_consumed = True  # type: ignore[attr-defined]
    response.url = request.url or ""
    response.request = request
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response.elapsed = timedelta(0)
    response.connection = adapter  # type: ignore[attr-defined]
    response.replayed = True  # type: ignore[attr-defined]
    return response


def mount_cassette(connector: Any, *, record: str | os.PathLike[str] | None = None,
                   replay: str | os.PathLike[str] | None = None) -> Cassette:
    """Mount a recording or replaying adapter on a connector's session.

    Raises:
        ValueError: both ``record`` and ``replay`` are given.
        CacheError: the replay cassette is missing or unreadable.
    """
    if record is not None and replay is not None:
        raise ValueError("connect() takes record= or replay=, not both")
    session: requests.Session = connector.http.session
    names = list(getattr(connector.http, "redact_params", []))
    folder = record if record is not None else replay
    cassette = Cassette(cassette_path(folder, connector.name), connector.name, names)
    if record is not None:
        cassette.start()
        for prefix, adapter in list(session.adapters.items()):
            session.mount(prefix, RecordingAdapter(adapter, cassette))
        logger.info("%s: recording exchanges to %s", connector.name, cassette.path)
    else:
        replayer = ReplayAdapter(cassette)
        for prefix in {*session.adapters, "http://", "https://"}:
            session.mount(prefix, replayer)
        logger.info("%s: replaying from %s (no network)", connector.name, cassette.path)
    return cassette
