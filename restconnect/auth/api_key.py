"""An API key in a header, a query parameter or a cookie."""

from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import urlsplit, parse_qsl

import requests
from pydantic import BaseModel, ConfigDict, Field as PydanticField

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field
from restconnect.http import with_query_param
from restconnect.redact import register_secret

logger = logging.getLogger(__name__)

__all__ = ["APIKeyAuth"]


class APIKeyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the key goes.
    location: Literal["header", "query", "cookie"] = "header"
    #: The header, query parameter or cookie name.
    param: str = "X-API-Key"
    #: Text before the key in a header, such as ``Api-Key``.
    prefix: str = ""
    #: Several keys in one credential, split on this text, are rotated: when
    #: the API rate-limits one key, requests continue with the next.
    separator: str = ","
    #: Seconds a rate-limited key rests when the response gives no reset time.
    cooldown: float = PydanticField(60.0, ge=0)


@register_auth
class APIKeyAuth(AuthMethod):
    """Put an API key where the API expects it.

    A key in the query string is masked in every log line, error and cache key.

    Example spec::

        auth:
          method: api_key
          location: query
          param: appid
          env: {api_key: OPENWEATHER_API_KEY}
    """

    name = "api_key"
    fields = (Field("api_key", secret=True,
                    help="API key (several, comma-separated, are rotated)"),)
    Options = APIKeyOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        raw = self.credential("api_key") or ""
        separator = self.options.separator
        keys = [k.strip() for k in raw.split(separator)] if separator else [raw]
        self._keys = [k for k in keys if k] or [raw]
        for key in self._keys:
            register_secret(key)
        self._index = 0
        self._resting_until = [0.0] * len(self._keys)
        self._lock = threading.Lock()

    def current_key(self) -> str:
        """The key to send now."""
        with self._lock:
            return self._keys[self._index]

    def secrets(self) -> list[str]:
        return sorted(set(super().secrets()) | set(self._keys) - {""})

    def handle_rate_limited(self, response: requests.Response) -> bool:
        """Switch to a key that is not resting; True means: send again now.

        ``HttpClient`` calls this on a 429 (or a 403 with no requests left).
        The key that was refused rests until the reset time the response
        gives (``Retry-After``, ``X-RateLimit-Reset``) or for ``cooldown``.
        When every key rests, the one free soonest is chosen and False lets
        the client wait as usual.
        """
        if len(self._keys) < 2:
            return False
        used = self._key_in(response.request)
        now = time.time()
        with self._lock:
            refused = self._keys.index(used) if used in self._keys else self._index
            rest = _rest_seconds(response, self.options.cooldown)
            self._resting_until[refused] = now + rest
            if self._index != refused and self._resting_until[self._index] <= now:
                return True
            return self._switch_from(refused, now)

    def _switch_from(self, refused: int, now: float) -> bool:
        """Move to the next key that is not resting (the lock is held)."""
        count = len(self._keys)
        name = self.context.connector or self.name
        for step in range(1, count):
            candidate = (refused + step) % count
            if self._resting_until[candidate] <= now:
                self._index = candidate
                logger.info("%s: API key %d of %d is rate limited; using key %d",
                            name, refused + 1, count, candidate + 1)
                return True
        self._index = min(range(count), key=self._resting_until.__getitem__)
        logger.info("%s: all %d API keys are rate limited", name, count)
        return False

    def _key_in(self, request: requests.PreparedRequest | None) -> str | None:
        """The key a sent request carried."""
        if request is None:
            return None
        where, name = self.options.location, self.options.param
        if where == "header":
            value = request.headers.get(name, "")
            prefix = self.options.prefix
            if prefix and value.startswith(prefix):
                return value[len(prefix) + 1:]
            return value
        if where == "cookie":
            cookie = SimpleCookie()
            cookie.load(request.headers.get("Cookie", ""))
            return cookie[name].value if name in cookie else None
        pairs = dict(parse_qsl(urlsplit(request.url or "").query))
        return pairs.get(name)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        key = self.current_key()
        where, name = self.options.location, self.options.param
        if where == "header":
            prefix = self.options.prefix
            request.headers[name] = f"{prefix} {key}" if prefix else key
        elif where == "cookie":
            cookie = request.headers.get("Cookie")
            pair = f"{name}={key}"
            request.headers["Cookie"] = f"{cookie}; {pair}" if cookie else pair
        else:
            request.url = with_query_param(request.url or "", name, key)
        return request

    def query_param_names(self) -> list[str]:
        """Query parameters that carry a secret, for URL redaction."""
        return [self.options.param] if self.options.location == "query" else []


def _rest_seconds(response: requests.Response, default: float) -> float:
    """How long the API asked this key to rest."""
    headers = response.headers
    retry_after = headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        try:
            return max(parsedate_to_datetime(retry_after).timestamp() - time.time(), 0)
        except (TypeError, ValueError):
            pass
    reset = headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        value = float(reset)
        return max(value - time.time(), 0) if value > 1e9 else value
    return default
