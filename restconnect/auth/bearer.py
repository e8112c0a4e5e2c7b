"""A static token in the ``Authorization`` header."""

from __future__ import annotations

import requests
from pydantic import BaseModel, ConfigDict

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field

__all__ = ["BearerAuth"]


class BearerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The word before the token: ``Bearer`` (RFC 6750) or ``token`` (GitHub).
    scheme: str = "Bearer"


@register_auth
class BearerAuth(AuthMethod):
    """Send ``Authorization: <scheme> <token>`` on every request.

    Example spec::

        auth:
          method: bearer
          scheme: token
          env: {token: GITHUB_TOKEN}
    """

    name = "bearer"
    fields = (Field("token", secret=True, help="API token"),)
    Options = BearerOptions

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        scheme = self.options.scheme
        token = self.credential("token")
        request.headers["Authorization"] = f"{scheme} {token}" if scheme else token
        return request
