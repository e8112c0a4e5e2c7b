"""OAuth 1.0a request signing (RFC 5849) through requests-oauthlib."""

from __future__ import annotations

from typing import Any, Literal

import requests
from pydantic import BaseModel, ConfigDict

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field

__all__ = ["OAuth1Auth", "OAuth1Options"]


class OAuth1Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: HMAC-SHA1 is what almost every OAuth 1.0a API uses (RFC 5849 section 3.4.2).
    signature_method: Literal["HMAC-SHA1", "HMAC-SHA256", "HMAC-SHA512",
                              "PLAINTEXT"] = "HMAC-SHA1"
    #: Where the oauth_* parameters go: the Authorization header, the query, the body.
    signature_type: Literal["header", "query", "body"] = "header"
    #: The ``realm`` of the Authorization header, when the API asks for one.
    realm: str | None = None


@register_auth
class OAuth1Auth(AuthMethod):
    """Sign each request with OAuth 1.0a (consumer key plus access token).

    The token pair comes from the provider's app console or a completed
    three-legged flow; the three-legged flow itself is not run here.

    Example spec (the X/Twitter v1.1 style)::

        auth:
          method: oauth1
          env: {client_key: X_API_KEY, client_secret: X_API_SECRET,
                resource_owner_key: X_ACCESS_TOKEN,
                resource_owner_secret: X_ACCESS_TOKEN_SECRET}
    """

    name = "oauth1"
    fields = (
        Field("client_key", help="consumer key (API key)"),
        Field("client_secret", secret=True, help="consumer secret"),
        Field("resource_owner_key", required=False, help="access token"),
        Field("resource_owner_secret", secret=True, required=False,
              help="access token secret"),
    )
    Options = OAuth1Options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from requests_oauthlib import OAuth1

        types = {"header": "AUTH_HEADER", "query": "QUERY", "body": "BODY"}
        self._oauth = OAuth1(
            self.credential("client_key") or "",
            client_secret=self.credential("client_secret"),
            resource_owner_key=self.credential("resource_owner_key"),
            resource_owner_secret=self.credential("resource_owner_secret"),
            signature_method=self.options.signature_method,
            signature_type=types[self.options.signature_type],
            realm=self.options.realm,
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        signed = self._oauth(request)
        # requests-oauthlib writes the Authorization header as bytes; the rest
        # of restconnect (cache keys, redaction) expects text.
        for name, value in list(signed.headers.items()):
            if isinstance(value, bytes):
                signed.headers[name] = value.decode("utf-8")
        return signed

    def query_param_names(self) -> list[str]:
        """With query signing, the signature is a query parameter to redact."""
        return ["oauth_signature"] if self.options.signature_type == "query" else []

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "client_key": self.credential("client_key") or "",
                "signature_method": self.options.signature_method}
