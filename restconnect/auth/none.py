"""No authentication, for public APIs."""

from __future__ import annotations

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod

__all__ = ["NoAuth"]


@register_auth
class NoAuth(AuthMethod):
    """Send requests as they are."""

    name = "none"
    sends_credentials = False
