"""HTTP Digest authentication (RFC 7616), through requests' own handler."""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import HTTPDigestAuth

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field

__all__ = ["DigestAuth"]


@register_auth
class DigestAuth(AuthMethod):
    """Answer the server's Digest challenge with a username and password.

    The first request goes out bare; the server's 401 carries a nonce, and
    requests' ``HTTPDigestAuth`` re-sends it with the response hash on the
    same connection. Later requests reuse the nonce (with a growing nonce
    count) until the server marks it stale. MD5, SHA-256 and SHA-512-256
    challenges with ``qop=auth`` are supported; ``auth-int`` is not.

    Example spec::

        auth:
          method: digest
          env: {username: CAMERA_USER, password: CAMERA_PASSWORD}
    """

    name = "digest"
    fields = (
        Field("username", help="user name"),
        Field("password", secret=True, help="password"),
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Composition, not inheritance: HTTPDigestAuth has its own handle_401
        # with another signature, which must not shadow AuthMethod's hook.
        self._digest = HTTPDigestAuth(self.credential("username") or "",
                                      self.credential("password") or "")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return self._digest(request)

    def describe(self) -> dict[str, str]:
        return {"method": self.name, "user": self.credential("username") or ""}
