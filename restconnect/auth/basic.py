"""HTTP Basic authentication (RFC 7617)."""

from __future__ import annotations

import requests
from requests.auth import _basic_auth_str

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field

__all__ = ["BasicAuth"]


@register_auth
class BasicAuth(AuthMethod):
    """Send a username and password in the ``Authorization`` header.

    Like every method that sends a credential, it is refused over plain
    ``http://`` to any host but loopback.
    """

    name = "basic"
    fields = (
        Field("username", help="user name"),
        Field("password", secret=True, help="password"),
    )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        username = self.credential("username") or ""
        password = self.credential("password") or ""
        request.headers["Authorization"] = _basic_auth_str(username, password)
        return request

    def describe(self) -> dict[str, str]:
        return {"method": self.name, "user": self.credential("username") or ""}
