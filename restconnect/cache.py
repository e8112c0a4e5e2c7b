"""The response cache: GET pages kept on disk so re-runs cost no API quota.

One ``diskcache`` folder per connector under the cache root
(``$RESTCONNECT_HOME/cache`` or the platform's user cache folder), readable
by its owner only. Keys are an HMAC of the connector, method, URL, query,
the headers that change the answer and the caller's identity, under a
random key made once per installation, so two identities never share an
entry and nothing in a key can be read back. Values hold the status, the
headers minus cookies and credentials, and the body with every known secret
masked.

A stale entry that has an ``ETag`` or ``Last-Modified`` is revalidated with
``If-None-Match``/``If-Modified-Since``; a ``304`` reuses the stored body.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import requests
from requests.structures import CaseInsensitiveDict

from restconnect.exceptions import CacheError
from restconnect.redact import (
    MASK,
    is_sensitive_name,
    known_secrets,
    redact_url,
    secret_forms,
)

if TYPE_CHECKING:
    import diskcache
    import pandas as pd

    from restconnect.spec import CacheSpec, ConnectorSpec, EndpointSpec

__all__ = [
    "CachePolicy",
    "FrameSnapshot",
    "ResponseCache",
    "add_cache_parser",
    "add_cli",
    "cache_clear",
    "cache_cli",
    "cache_info",
    "cache_root",
    "resolve_policy",
    "restconnect_home",
]

logger = logging.getLogger(__name__)

#: Request headers that change what an API answers, besides the spec's own.
KEY_HEADERS = ("accept", "accept-language", "content-type")

#: Response headers never written to disk.
DROPPED_HEADERS = frozenset({
    "set-cookie", "cookie", "authorization", "proxy-authorization",
    "www-authenticate", "proxy-authenticate", "connection", "keep-alive",
    "transfer-encoding", "content-encoding", "content-length",
})

_KEY_FILE = "installation.key"
_DB_NAME = "cache.db"


def restconnect_home() -> Path | None:
    """``$RESTCONNECT_HOME`` as a path, or None when it is not set.

    The folder is created private (0700) when it does not exist yet: caches,
    state and tokens go below it.
    """
    home = os.environ.get("RESTCONNECT_HOME")
    if not home:
        return None
    path = Path(home).expanduser()
    return path if path.exists() else private_dir(path)


def cache_root() -> Path:
    """The folder holding every connector's cache."""
    home = restconnect_home()
    if home is not None:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("restconnect", appauthor=False))


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, mode 0600."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def installation_key(root: Path | None = None) -> bytes:
    """The random HMAC key of this installation, created on first use."""
    root = private_dir(root or cache_root())
    path = root / _KEY_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    fresh = secrets.token_bytes(32)
    # Per thread too: concurrent first fetches of one process race here.
    temp = root / f".{_KEY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(temp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(fresh)
    try:
        os.link(temp, path)
    except FileExistsError:
        # Another process made the key first; everybody uses that one.
        pass
    finally:
        temp.unlink(missing_ok=True)
    return path.read_bytes()


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class CachePolicy:
    """How one request uses the cache.

    Attributes:
        read: whether a stored answer may be served.
        write: whether the answer is stored.
        ttl: seconds a stored answer is fresh (0: always revalidate).
    """

    read: bool = True
    write: bool = True
    ttl: float = 300.0


OFF = CachePolicy(read=False, write=False, ttl=0)


def resolve_policy(value: Any, connector: ConnectorSpec | None = None,
                   endpoint: EndpointSpec | None = None) -> CachePolicy:
    """The policy for a ``cache=`` argument: None/True, False, "refresh" or seconds.

    Raises:
        ValueError: any other value.
    """
    if isinstance(value, CachePolicy):
        return value
    spec = connector.cache if connector is not None else None
    ttl = _default_ttl(spec, endpoint)
    if value is None or value is True:
        enabled = spec.enabled if spec is not None else True
        return CachePolicy(ttl=ttl) if enabled else OFF
    if value is False:
        return OFF
    if value == "refresh":
        return CachePolicy(read=False, write=True, ttl=ttl)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return CachePolicy(ttl=float(value))
    raise ValueError(f"cache= takes True, False, 'refresh' or a number of seconds, "
                     f"got {value!r}")


def _default_ttl(spec: CacheSpec | None, endpoint: EndpointSpec | None) -> float:
    if endpoint is not None and endpoint.cache_ttl is not None:
        return endpoint.cache_ttl
    return spec.ttl if spec is not None else 300.0


# ---------------------------------------------------------------- storage


def _private_disk_class() -> type:
    """A diskcache ``Disk`` that writes value files with mode 0600."""
    import diskcache

    class PrivateDisk(diskcache.Disk):
        def _write(self, full_path: str, iterator: Iterable[Any], mode: str,
                   encoding: str | None = None) -> int:
            folder = Path(full_path).parent
            for level in (folder.parent, folder):
                level.mkdir(exist_ok=True, mode=0o700)
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
            fd = os.open(full_path, flags, 0o600)
            size = 0
            with os.fdopen(fd, "wb") as writer:
                for chunk in iterator:
                    data = chunk.encode(encoding or "utf-8") if isinstance(chunk, str) \
                        else chunk
                    size += len(data)
                    writer.write(data)
            return size

    return PrivateDisk


def open_store(folder: Path, size_limit: int) -> diskcache.Cache:
    """Open (creating) one connector's private diskcache folder."""
    import diskcache

    private_dir(folder.parent)
    private_dir(folder)
    # SQLite gives its -wal and -shm files the mode of the database file.
    private_file(folder / _DB_NAME)
    return diskcache.Cache(str(folder), disk=_private_disk_class(),
                           size_limit=size_limit, eviction_policy="least-recently-used")


def _pack(meta: dict[str, Any], body: bytes) -> bytes:
    # orjson escapes control characters, so the first newline ends the metadata.
    return orjson.dumps(meta) + b"\n" + body


def _unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, body = blob.partition(b"\n")
    return orjson.loads(head), body


def scrub_bytes(data: bytes, values: Iterable[str]) -> bytes:
    """``data`` with every secret value (and its URL-encoded form) masked."""
    for form in secret_forms(values):
        encoded = form.encode()
        if encoded in data:
            data = data.replace(encoded, MASK.encode())
    return data


# ---------------------------------------------------------------- the cache


class ResponseCache:
    """The ``http.cache`` layer of one connector.

    Args:
        connector: the connector name (the folder under the cache root).
        identity: returns the identity fingerprint of the current credentials.
        headers: names of request headers that change the answer.
        drop_params: query parameters that carry credentials (covered by the
            identity instead).
        folder: the cache folder; ``cache_root()/<connector>`` by default.
        size_limit: bytes kept before the least recently used entries go.
        spec: the connector spec, for the default TTL.

    Example:
        >>> conn = connect("sandbox", base_url=url, token=t)        # doctest: +SKIP
        >>> conn.fetch("repos"); conn.fetch("repos")                # doctest: +SKIP
        >>> conn.last_result.pages_from_cache                       # doctest: +SKIP
        3
    """

    def __init__(self, connector: str, *, identity: Callable[[], str] = lambda: "",
                 headers: Sequence[str] = (), drop_params: Sequence[str] = (),
                 folder: Path | None = None, size_limit: int = 1 << 30,
                 spec: ConnectorSpec | None = None,
                 clock: Callable[[], float] = time.time):
        self.connector = connector
        self.folder = Path(folder) if folder else cache_root() / connector
        self.size_limit = size_limit
        self.spec = spec
        self._identity = identity
        self._headers = tuple(dict.fromkeys(
            [*KEY_HEADERS, *(h.lower() for h in headers if not is_sensitive_name(h))]))
        self._drop_params = drop_params
        self._clock = clock
        self._store: diskcache.Cache | None = None
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.revalidated = 0

    def __repr__(self) -> str:
        return f"<ResponseCache {self.connector!r} {self.folder}>"

    @property
    def store(self) -> diskcache.Cache:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.folder, self.size_limit)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # ------------------------------------------------------------ keys

    def key_of(self, material: bytes) -> str:
        """HMAC-SHA256 of ``material`` under the installation key, in hex."""
        if self._key is None:
            self._key = installation_key(self.folder.parent)
        return hmac.new(self._key, material, hashlib.sha256).hexdigest()

    def key(self, request: requests.PreparedRequest) -> str:
        """The HMAC-SHA256 hex key of a request for the current identity."""
        parts = urlsplit(request.url or "")
        drop = {name.lower() for name in self._drop_params}
        query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k.lower() not in drop)
        headers = [(name, request.headers.get(name, "")) for name in self._headers]
        material = orjson.dumps([
            self.connector, request.method, parts.scheme, parts.netloc.lower(),
            parts.path, query, headers, self._identity(),
        ])
        return self.key_of(material)

    # ------------------------------------------------------------ the hook

    def before_send(self, request: requests.PreparedRequest,
                    policy: Any) -> requests.Response | None:
        """Serve a fresh entry, or add revalidation headers for a stale one."""
        policy = resolve_policy(policy, self.spec)
        if not policy.read:
            return None
        entry = self._get(self.key(request))
        if entry is None:
            return None
        meta, body = entry
        age = self._clock() - meta["stored_at"]
        if age < policy.ttl:
            logger.debug("%s: cache hit (age %.0f s) for %s", self.connector, age,
                         redact_url(request.url or ""))
            self.hits += 1
            return self._response(request, meta, body)
        self._add_validators(request, meta)
        return None

    def after_receive(self, request: requests.PreparedRequest,
                      response: requests.Response, policy: Any) -> requests.Response:
        """Turn a 304 into the stored answer; store a cacheable 200."""
        policy = resolve_policy(policy, self.spec)
        if response.status_code == 304 and policy.read:
            return self._revalidated(request, response) or response
        if policy.write and response.status_code == 200 and _storable(response):
            self._put(self.key(request), request, response)
        return response

    # ------------------------------------------------------------ internals

    def _get(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        try:
            blob = self.store.get(key)
        except Exception as exc:  # a damaged cache must not break a fetch
            logger.warning("%s: cache read failed (%s); fetching instead",
                           self.connector, type(exc).__name__)
            return None
        return _unpack(blob) if isinstance(blob, bytes) else None

    def _put(self, key: str, request: requests.PreparedRequest,
             response: requests.Response, stored_at: float | None = None) -> None:
        values = known_secrets()
        headers = {name: value for name, value in response.headers.items()
                   if name.lower() not in DROPPED_HEADERS
                   and not is_sensitive_name(name)}
        meta = {
            "status": response.status_code, "reason": response.reason or "OK",
            "url": redact_url(request.url or ""),
            "headers": {k: scrub_bytes(v.encode(), values).decode() for k, v in
                        headers.items()},
            "stored_at": stored_at if stored_at is not None else self._clock(),
        }
        blob = _pack(meta, scrub_bytes(response.content, values))
        try:
            self.store.set(key, blob)
        except Exception as exc:  # a full or read-only disk must not break a fetch
            logger.warning("%s: cache write failed (%s)", self.connector,
                           type(exc).__name__)

    def _add_validators(self, request: requests.PreparedRequest,
                        meta: dict[str, Any]) -> None:
        headers = CaseInsensitiveDict(meta["headers"])
        if headers.get("ETag"):
            request.headers["If-None-Match"] = headers["ETag"]
        if headers.get("Last-Modified"):
            request.headers["If-Modified-Since"] = headers["Last-Modified"]

    def _revalidated(self, request: requests.PreparedRequest,
                     response: requests.Response) -> requests.Response | None:
        key = self.key(request)
        entry = self._get(key)
        if entry is None:
            return None
        meta, body = entry
        for name, value in response.headers.items():
            if name.lower() not in DROPPED_HEADERS and not is_sensitive_name(name):
                meta["headers"][name] = value
        meta["stored_at"] = self._clock()
        try:
            self.store.set(key, _pack(meta, body))
        except Exception as exc:  # see _put
            logger.warning("%s: cache write failed (%s)", self.connector,
                           type(exc).__name__)
        logger.debug("%s: 304 Not Modified, reusing the cached body for %s",
                     self.connector, redact_url(request.url or ""))
        self.revalidated += 1
        served = self._response(request, meta, body)
        served.revalidated = True  # type: ignore[attr-defined]
        return served

    def _response(self, request: requests.PreparedRequest, meta: dict[str, Any],
                  body: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code = meta["status"]
        response.reason = meta.get("reason", "OK")
        response.headers = CaseInsensitiveDict(meta["headers"])
        response._content = body
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.elapsed = timedelta(0)
        response.from_cache = True  # type: ignore[attr-defined]
        return response


class FrameSnapshot:
    """The finished frame of a whole fetch, kept beside its pages.

    Reading pages back from the cache still costs decoding and building the
    frame; a snapshot skips both. It is served only while fresh under the
    same TTL as the pages, is signed with the installation key (the pickle is
    verified before it is loaded), and is not stored at all when a known
    secret value appears anywhere in it.

    Args:
        connector: the connector fetching.
        endpoint, spec: the endpoint and its spec.
        params: the fetch's parameters.
        options: whatever else shapes the frame (limit, max_pages, explode).
        policy: the ``cache=`` argument of the fetch.
    """

    def __init__(self, connector: Any, endpoint: str, spec: EndpointSpec,
                 params: Mapping[str, Any], options: Sequence[Any], policy: Any):
        self.cache: ResponseCache | None = connector.http.cache
        self.policy = resolve_policy(policy, connector.spec, spec)
        self.key = ""
        if self.cache is not None and (self.policy.read or self.policy.write):
            material = orjson.dumps(
                ["frame", connector.base_url, endpoint, spec.model_dump_json(),
                 sorted(params.items()), list(options), self.cache._identity()],
                default=str)
            self.key = self.cache.key_of(material)

    frame: pd.DataFrame | None = None

    @classmethod
    def open(cls, connector: Any, endpoint: str, spec: EndpointSpec,
             params: Mapping[str, Any], options: Sequence[Any],
             policy: Any) -> FrameSnapshot:
        """A snapshot whose ``frame`` is the cached frame when there is a fresh one."""
        snapshot = cls(connector, endpoint, spec, params, options, policy)
        loaded = snapshot.load()
        if loaded is not None:
            from restconnect.connector import FetchResult

            snapshot.frame, attrs = loaded
            attrs["pages_from_cache"] = attrs.get("pages", 0)
            snapshot.frame.attrs["restconnect"] = attrs
            result = FetchResult(connector.name, endpoint, params)
            vars(result).update({k: v for k, v in attrs.items() if k != "params"})
            connector.last_result = result
            connector.http.stats.add("from_cache")
        return snapshot

    def load(self) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The stored frame and its ``attrs`` when fresh, else None."""
        if not self.key or not self.policy.read:
            return None
        entry = self.cache._get(self.key)
        if entry is None:
            return None
        meta, blob = entry
        if self.cache._clock() - meta["stored_at"] >= self.policy.ttl:
            return None
        if not hmac.compare_digest(meta.get("mac", ""), self.cache.key_of(blob)):
            logger.warning("%s: a cached frame failed its integrity check; ignored",
                           self.cache.connector)
            return None
        try:
            frame = pickle.loads(blob)
        except Exception:  # a pandas upgrade can make old pickles unreadable
            return None
        logger.debug("%s: whole frame served from the cache", self.cache.connector)
        return frame, meta["attrs"]

    def save(self, frame: pd.DataFrame) -> None:
        """Store the frame (without ``attrs``) unless it holds a secret value."""
        if not self.key or not self.policy.write or self.policy.ttl <= 0:
            return
        attrs = dict(frame.attrs.get("restconnect", {}))
        bare = frame.copy(deep=False)
        bare.attrs = {}
        blob = pickle.dumps(bare, protocol=pickle.HIGHEST_PROTOCOL)
        if any(value.encode() in blob for value in known_secrets()):
            return
        if len(blob) > self.cache.size_limit // 4:
            # One huge frame would evict everything else; its pages stay cached.
            return
        meta = {"kind": "frame", "stored_at": self.cache._clock(),
                "mac": self.cache.key_of(blob), "attrs": attrs}
        try:
            self.cache.store.set(self.key, _pack(orjson.loads(orjson.dumps(
                meta, default=str)), blob))
        except Exception as exc:  # see ResponseCache._put
            logger.warning("%s: cache write failed (%s)", self.cache.connector,
                           type(exc).__name__)


def _storable(response: requests.Response) -> bool:
    control = response.headers.get("Cache-Control", "").lower()
    return "no-store" not in control


def build_cache(connector: Any, setting: Any) -> ResponseCache | None:
    """The cache for a ``Connector`` given ``connect(cache=...)``.

    Args:
        connector: the connector (its spec and auth handlers are read).
        setting: True (default folder), False (no cache) or a folder path.
    """
    if setting is False or setting is None:
        return None
    spec = connector.spec
    if setting is True and not spec.cache.enabled:
        return None
    root = cache_root() if setting is True else Path(setting).expanduser()
    headers = [*spec.headers, *(h for e in spec.endpoints.values() for h in e.headers)]
    limit = int(getattr(spec.cache, "max_size_mb", 1024) * 1024 * 1024)
    # Both are read on every request: credentials may change after connect().
    return ResponseCache(spec.name, identity=lambda: _identity(connector.auth),
                         headers=headers, drop_params=connector.http.redact_params,
                         folder=root / spec.name, size_limit=limit, spec=spec)


def _identity(handlers: Sequence[Any]) -> str:
    return "\0".join(f"{getattr(h, 'name', '')}:{h.identity_key()}" for h in handlers)


# ---------------------------------------------------------------- cache info / clear


def cache_info(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per connector folder: name, entries, bytes, path."""
    root = root or cache_root()
    rows = []
    if not root.is_dir():
        return rows
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        rows.append({"name": folder.name, "entries": _count(folder), "bytes": size,
                     "path": str(folder)})
    return rows


def _count(folder: Path) -> int:
    import sqlite3

    database = folder / _DB_NAME
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM Cache").fetchone()[0])
    except sqlite3.Error:
        return 0


def cache_clear(name: str | None = None, root: Path | None = None) -> list[str]:
    """Delete one connector's cache folder, or every one; returns the names cleared.

    Raises:
        CacheError: ``name`` has no cache folder.
    """
    root = root or cache_root()
    if name is not None:
        folder = root / name
        if not folder.is_dir() or name in (".", "..") or "/" in name:
            known = ", ".join(row["name"] for row in cache_info(root)) or "none"
            raise CacheError(f"no cache for {name!r} in {root}; cached connectors: "
                             f"{known}")
        shutil.rmtree(folder)
        return [name]
    cleared = [row["name"] for row in cache_info(root)]
    for cleared_name in cleared:
        shutil.rmtree(root / cleared_name)
    return cleared


def add_cache_parser(subparsers: Any) -> Any:
    """Add ``cache info | clear [NAME]`` to an argparse subparsers object."""
    parser = subparsers.add_parser("cache", help="show or clear the response cache")
    actions = parser.add_subparsers(dest="cache_action", required=True)
    actions.add_parser("info", help="cached connectors, entries and sizes")
    clear = actions.add_parser("clear", help="delete cached responses")
    clear.add_argument("name", nargs="?", help="one connector (default: all)")
    parser.set_defaults(func=cache_cli)
    return parser


#: The hook ``restconnect.cli`` calls to register the command.
add_cli = add_cache_parser


def cache_cli(args: Any, out: Any = None) -> int:
    """Run ``restconnect cache ...`` from parsed arguments; returns the exit code."""
    import sys

    out = out or sys.stdout
    if args.cache_action == "info":
        rows = cache_info()
        out.write(f"cache folder: {cache_root()}\n")
        for row in rows:
            out.write(f"{row['name']:<20} {row['entries']:>8} entries "
                      f"{row['bytes'] / 1e6:>10.1f} MB\n")
        if not rows:
            out.write("(empty)\n")
        return 0
    cleared = cache_clear(args.name)
    out.write(f"cleared: {', '.join(cleared) or 'nothing'}\n")
    return 0

