"""Helpers for the end-to-end leak audit: secret forms, the audit, spec files,
and a small loopback server that redirects and records what reaches it."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import traceback
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

AUDITED_LOGGERS = ("restconnect", "urllib3", "requests_oauthlib", "oauthlib")

SPEC = """
name: {name}
title: leak audit over the sandbox
base_url: {base_url}
auth: {auth}
timeout: {timeout}
retry: {{attempts: 3, backoff: 0.01, max_backoff: 0.05,
        statuses: [429, 500, 502, 503, 504]}}
rate_limit: {{max_wait: 2}}
pagination: {{kind: link_header, page_size: 50, page_size_param: per_page}}
concurrency: 1
check: {{path: /code/user, identity: login}}
endpoints:
  me: {{path: /code/user, pagination: {{kind: none}}, records: "@"}}
  repos: {{path: /code/repos, primary_key: id}}
  user: {{path: "/code/users/{{login}}", pagination: {{kind: none}}, records: "@"}}
  issues:
    path: /code/issues
    primary_key: id
    params: {{sort: updated, direction: asc}}
    incremental: {{field: updated_at, mode: param, param: since}}
    pagination: {{kind: link_header, page_size: 100, page_size_param: per_page}}
  customers:
    path: /pay/customers
    records: data
    pagination: {{kind: cursor, page_size: 20, page_size_param: limit,
                 cursor_path: "data[-1].id", cursor_param: starting_after,
                 has_more_path: has_more}}
  not_json: {{path: /code/broken/not-json, pagination: {{kind: none}}}}
"""


def write_spec(folder: Path, name: str, auth: str, base_url: str,
               timeout: float = 5) -> Path:
    """A spec file over the sandbox with the given ``auth:`` flow mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, auth=auth, base_url=base_url,
                                timeout=timeout), encoding="utf-8")
    return path


def secret_forms(value: str) -> set[str]:
    """The ways a secret could show up: as is, URL-encoded, PEM body lines."""
    if len(value) < 4:
        return set()
    forms = {value, quote(value, safe=""), quote_plus(value)}
    if "-----BEGIN" in value:
        forms |= {line for line in value.splitlines() if len(line) >= 40}
    return forms


def basic_form(username: str, password: str) -> str:
    """The Base64 an ``Authorization: Basic`` header carries."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def exception_text(exc: BaseException) -> str:
    """str, repr and the whole formatted chain of an exception."""
    chain = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join([str(exc), repr(exc), chain])


class Audit:
    """Collects secrets and every place they must not be, then checks them all."""

    def __init__(self, secrets: Iterable[str], caplog: Any, capfd: Any, home: Path,
                 recwarn: Any = None):
        self.caplog, self.capfd, self.home = caplog, capfd, home
        self.recwarn = recwarn
        self.needles: set[str] = set()
        self.texts: list[tuple[str, str]] = []
        self.folders: list[Path] = [home]
        self.add_secrets(*secrets)

    def add_secrets(self, *values: str | None) -> None:
        for value in values:
            if value:
                self.needles |= secret_forms(value)

    def add_connector(self, conn: Any) -> None:
        """The handlers' own secrets: issued tokens, rotated refresh tokens."""
        for handler in conn.auth:
            self.add_secrets(*handler.secrets())

    def see(self, label: str, *objects: Any) -> None:
        for obj in objects:
            if isinstance(obj, BaseException):
                self.texts.append((label, exception_text(obj)))
            else:
                self.texts.append((label, f"{obj!s}\n{obj!r}"))

    def see_folder(self, folder: Path) -> None:
        self.folders.append(folder)

    def found(self) -> list[str]:
        """Every (place, secret start) pair where a secret shows."""
        places = list(self.texts)
        places += [(f"log {r.name}", r.getMessage()) for r in self.caplog.records]
        places.append(("log text", self.caplog.text))
        places += [("warning", str(w.message)) for w in self.recwarn or ()]
        out, err = self.capfd.readouterr()
        places += [("stdout", out), ("stderr", err)]
        for folder in self.folders:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                data = path.read_bytes()
                places.append((f"file {path}", data.decode("latin-1")))
        return [f"{label}: {needle[:6]}..." for label, text in places
                for needle in self.needles if needle in text]

    def check(self) -> None:
        assert self.needles, "the audit has no secret to look for"
        leaks = self.found()
        assert not leaks, "secrets leaked:\n" + "\n".join(sorted(set(leaks)))


def audit_logging(caplog: Any) -> None:
    for name in AUDITED_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)


class Recorder(ThreadingHTTPServer):
    """A loopback server that redirects and records every request.

    ``/hop/http__host:port/path`` answers 302 to ``http://host:port/path``
    (``/hop307/...`` a 307); ``/cookie...`` sets a session cookie;
    ``/token-form``, ``/token-cut`` and ``/token-html`` answer 200 with a
    token (``cookie``) in a body that is not a JSON object;
    ``/echo/<status>`` answers that status with the request it got (line,
    headers and body) as its JSON body, as careless APIs do; any other path
    answers 200 with JSON. Every request's line and headers are kept in ``seen``.
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.seen: list[dict[str, Any]] = []
        self.cookie = uuid.uuid4().hex
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _RecorderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Recorder = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        server.seen.append({"line": self.requestline, "headers": dict(self.headers),
                            "body": body})
        if self.path.startswith(("/hop/", "/hop307/")):
            hop, _, target = self.path[1:].partition("/")
            target = target.replace("__", "://", 1)
            self.send_response(307 if hop == "hop307" else 302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body = 200, json.dumps({"login": "landed"}).encode()
        if self.path.startswith("/echo/"):
            status = int(self.path.split("/")[2][:3])
            body = json.dumps(server.seen[-1]).encode()
        if self.path.startswith("/token-"):
            body = self._odd_token_answer(server.cookie)
        self.send_response(status)
        if self.path.startswith("/cookie"):
            self.send_header("Set-Cookie", f"sid={server.cookie}; HttpOnly")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _odd_token_answer(self, token: str) -> bytes:
        kind = self.path[len("/token-"):]
        if kind == "form":
            return f"access_token={token}&token_type=bearer&scope=repo".encode()
        if kind == "cut":
            return f'{{"access_token": "{token}", "token_type'.encode()
        return f"<html><body>signed in, token {token}</body></html>".encode()

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass
