"""An API key in a header, a query parameter or a cookie."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import requests
from pydantic import BaseModel, ConfigDict

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field

__all__ = ["APIKeyAuth"]


class APIKeyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the key goes.
    location: Literal["header", "query", "cookie"] = "header"
    #: The header, query parameter or cookie name.
    param: str = "X-API-Key"
    #: Text before the key in a header, such as ``Api-Key``.
    prefix: str = ""


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
    fields = (Field("api_key", secret=True, help="API key"),)
    Options = APIKeyOptions

    def current_key(self) -> str:
        """The key to send now."""
        return self.credential("api_key") or ""

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
            request.url = _with_query_param(request.url or "", name, key)
        return request

    def query_param_names(self) -> list[str]:
        """Query parameters that carry a secret, for URL redaction."""
        return [self.options.param] if self.options.location == "query" else []


def _with_query_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != name]
    pairs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(pairs)))
