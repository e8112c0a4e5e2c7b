"""HTTP Basic authentication (RFC 7617)."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from requests.auth import _basic_auth_str

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field
from restconnect.exceptions import AuthError

__all__ = ["BasicAuth", "require_secure_transport"]


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
        require_secure_transport(request.url or "", self.context.connector, self.name)
        username = self.credential("username") or ""
        password = self.credential("password") or ""
        request.headers["Authorization"] = _basic_auth_str(username, password)
        return request

    def secrets(self) -> list[str]:
        """The password and the Base64 pair the header carries (an echo may show it)."""
        header = _basic_auth_str(self.credential("username") or "",
                                 self.credential("password") or "")
        return [*super().secrets(), header.split(" ", 1)[1]]

    def describe(self) -> dict[str, str]:
        return {"method": self.name, "user": self.credential("username") or ""}


def require_secure_transport(url: str, connector: str = "",
                             method: str = "basic") -> None:
    """Refuse plain ``http://`` unless the host is this machine.

    ``HttpClient`` applies the same rule to every method; checking here too
    keeps a password off the wire when the handler is used with plain requests.

    Raises:
        AuthError: the URL is ``http://`` to a host that is not loopback.
    """
    from restconnect.http import is_loopback

    parts = urlsplit(url)
    if parts.scheme == "https" or is_loopback(url):
        return
    raise AuthError(f"refusing to send a password over {parts.scheme or 'no'} scheme "
                    f"to {parts.hostname}; use https:// (plain http is allowed only "
                    "to loopback hosts)", connector=connector or None, method=method)
