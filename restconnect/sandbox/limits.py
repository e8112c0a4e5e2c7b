"""Request statistics, per-credential quotas and failure injection."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

__all__ = ["Bucket", "Failure", "FailureInjector", "RateLimiter", "Stats",
           "parse_failure"]

# Query parameters whose values are credentials; the request log drops them.
_SECRET_PARAMS = frozenset({"api_key", "access_token", "token", "client_secret",
                            "assertion", "refresh_token", "password"})


class Stats:
    """Counts of what the sandbox answered, safe to read from any thread.

    ``snapshot()`` returns plain dicts: ``total``, ``by_path`` (``"GET /code/repos"``),
    ``by_route`` (with ``{placeholders}``), ``by_status``, ``by_auth``,
    ``token_requests``, ``grants``, ``logins``, ``not_modified`` and ``log``
    (the last requests: method, path, query without secrets, status, auth, user).
    """

    def __init__(self, log_size: int = 2000):
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._counters: dict[str, Counter[str]] = {
                name: Counter() for name in ("by_path", "by_route", "by_status",
                                             "by_auth", "grants")}
            self._token_requests = 0
            self._logins = 0
            self._not_modified = 0
            self._log: deque[dict[str, Any]] = deque(maxlen=self._log_size)

    def record(self, method: str, path: str, route: str, status: int,
               query: list[tuple[str, str]], auth: str | None = None,
               user: str | None = None) -> None:
        """Count one answered request."""
        with self._lock:
            self._total += 1
            self._counters["by_path"][f"{method} {path}"] += 1
            self._counters["by_route"][f"{method} {route}"] += 1
            self._counters["by_status"][str(status)] += 1
            if auth:
                self._counters["by_auth"][auth] += 1
            if status == 304:
                self._not_modified += 1
            self._log.append({
                "method": method, "path": path, "status": status, "auth": auth,
                "user": user, "time": time.time(),
                "query": {k: v for k, v in query if k not in _SECRET_PARAMS}})

    def record_token(self, grant: str) -> None:
        with self._lock:
            self._token_requests += 1
            self._counters["grants"][grant or "(none)"] += 1

    def record_login(self) -> None:
        with self._lock:
            self._logins += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = {name: dict(counter)
                                      for name, counter in self._counters.items()}
            result.update(total=self._total, token_requests=self._token_requests,
                          logins=self._logins, not_modified=self._not_modified,
                          log=list(self._log))
            return result


@dataclass
class Bucket:
    """One credential's quota in the current window."""

    limit: int
    window: float
    reset_at: float
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self, now: float) -> dict[str, str]:
        """GitHub's ``X-RateLimit-*`` and the IETF ``RateLimit`` fields."""
        left = max(math.ceil(self.reset_at - now), 0)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Resource": "core",
            "RateLimit-Policy": f'"default";q={self.limit};w={int(self.window)}',
            "RateLimit": f'"default";r={self.remaining};t={left}',
        }


class RateLimiter:
    """Fixed-window quotas, one bucket per credential."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def take(self, name: str, limit: int, window: float, *,
             spend: bool = True) -> tuple[bool, Bucket]:
        """Spend one request from ``name``'s bucket.

        Returns:
            Whether the request is allowed, and a copy of the bucket after it.
        """
        now = time.time()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None or now >= bucket.reset_at or bucket.limit != limit:
                bucket = Bucket(limit=limit, window=window, reset_at=now + window)
                self._buckets[name] = bucket
            allowed = bucket.used < bucket.limit
            if allowed and spend:
                bucket.used += 1
            return allowed, Bucket(bucket.limit, bucket.window, bucket.reset_at,
                                   bucket.used)


@dataclass(frozen=True)
class Failure:
    """A failure a request asked for.

    Attributes:
        status: the status to answer with, 0 for ``drop`` (close the
            connection without an answer) or 200 for ``slow`` (answer normally
            after ``delay``).
        count: fail only the first ``count`` matching requests; None is always.
        retry_after: ``Retry-After`` value: seconds as text, or an HTTP-date.
        delay: seconds to wait before answering.

    Requests with the same spec text, method and path share one counter; a
    ``key=<name>`` option in the spec gives a test a counter of its own.
    """

    spec: str
    status: int
    count: int | None = None
    retry_after: str | None = None
    delay: float = 0.0


def parse_failure(spec: str, now: float | None = None) -> Failure:
    """Read ``429;count=2;retry_after=1`` style text.

    ``retry_after`` takes seconds, ``date`` (an HTTP-date two seconds ahead) or
    ``date:N`` (N seconds ahead). The first item is an error status, ``drop``
    or ``slow``; ``delay=<seconds>`` waits before answering.

    Raises:
        ValueError: text that does not follow that form.
    """
    parts = [part.strip() for part in spec.split(";") if part.strip()]
    if not parts:
        raise ValueError("an empty failure spec")
    named = {"drop": 0, "slow": 200}
    status = named[parts[0]] if parts[0] in named else _status(parts[0])
    options = dict(_option(part) for part in parts[1:])
    unknown = set(options) - {"count", "retry_after", "delay", "key"}
    if unknown:
        raise ValueError(f"unknown failure options: {', '.join(sorted(unknown))}")
    count = int(options["count"]) if "count" in options else None
    retry_after = options.get("retry_after")
    if retry_after is None and status in (429, 503):
        retry_after = "1"
    if retry_after is not None:
        retry_after = _retry_after(retry_after, time.time() if now is None else now)
    delay = float(options.get("delay", 0))
    return Failure(spec=spec, status=status, count=count, retry_after=retry_after,
                   delay=delay)


def _status(text: str) -> int:
    if not text.isdigit() or not 400 <= int(text) <= 599:
        raise ValueError(f"{text!r} is not an error status, 'drop' or 'slow'")
    return int(text)


def _option(part: str) -> tuple[str, str]:
    name, sep, value = part.partition("=")
    if not sep:
        raise ValueError(f"failure option {part!r} is not name=value")
    return name.strip(), value.strip()


def _retry_after(value: str, now: float) -> str:
    if value == "date" or value.startswith("date:"):
        ahead = float(value[5:]) if value.startswith("date:") else 2.0
        return formatdate(math.ceil(now + ahead), usegmt=True)
    if not value.isdigit():
        raise ValueError(f"retry_after takes seconds or 'date', got {value!r}")
    return value


class FailureInjector:
    """Decides whether a request that asked for a failure gets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, str, str]] = Counter()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    def should_fail(self, failure: Failure, method: str, path: str) -> bool:
        """Count the request; True while the failure's ``count`` is not used up."""
        if failure.count is None:
            return True
        key = ("".join(failure.spec.split()), method, path)
        with self._lock:
            self._seen[key] += 1
            return self._seen[key] <= failure.count
