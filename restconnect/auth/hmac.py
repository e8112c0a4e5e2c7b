"""Generic HMAC request signing, configured in the spec.

Many APIs (exchanges, payment gateways, internal gateways) sign each request
with a shared secret over a string built from parts of the request. The spec
lists those parts; the defaults are the scheme most such APIs (and the
sandbox) use::

    METHOD \\n PATH \\n sorted query \\n timestamp \\n nonce \\n hex SHA-256 of the body

signed with HMAC-SHA256, Base64-encoded, in ``X-Signature``, with the key id,
timestamp and nonce in ``X-Key-Id``, ``X-Timestamp`` and ``X-Nonce``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac as hmac_lib
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests
from pydantic import (
    BaseModel,
    ConfigDict,
    Field as PydanticField,
    field_validator,
    model_validator,
)

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field
from restconnect.exceptions import AuthError

__all__ = ["HMACAuth", "HMACOptions", "canonical_query", "string_to_sign"]

_SIMPLE_PARTS = frozenset({
    "method", "path", "path_and_query", "query", "raw_query", "timestamp", "nonce",
    "body_hash",
    "body", "key_id", "host", "content_type",
})


class HMACOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Parts of the string to sign, in order: method, path, query (sorted,
    #: percent-encoded), raw_query (as sent), path_and_query, timestamp, nonce,
    #: body_hash, body, key_id, host, content_type, ``header:<Name>`` or
    #: ``literal:<text>``.
    components: list[str] = PydanticField(default_factory=lambda: [
        "method", "path", "query", "timestamp", "nonce", "body_hash"])
    #: Text between the parts.
    separator: str = "\n"
    #: Hash of the HMAC.
    algorithm: Literal["sha256", "sha512", "sha384", "sha1"] = "sha256"
    #: Hash of the body for ``body_hash``; hex-encoded.
    body_hash: Literal["sha256", "sha512", "md5"] = "sha256"
    #: How the signature is written.
    encoding: Literal["base64", "base64url", "hex"] = "base64"
    #: How the secret is turned into key bytes.
    secret_encoding: Literal["utf-8", "base64", "hex"] = "utf-8"
    #: Header that carries the signature; ``null`` when it goes in the query.
    signature_header: str | None = "X-Signature"
    #: Query parameter that carries the signature instead (Binance: ``signature``).
    signature_param: str | None = None
    #: Query parameter for the timestamp, added before signing (Binance: ``timestamp``).
    timestamp_param: str | None = None
    #: Template of the signature header's value; ``{signature}``, ``{key_id}``,
    #: ``{timestamp}``, ``{nonce}`` are filled in.
    #: Example: ``HMAC {key_id}:{signature}``.
    signature_template: str = "{signature}"
    #: Headers for the timestamp, nonce and key id; ``null`` leaves one out.
    timestamp_header: str | None = "X-Timestamp"
    nonce_header: str | None = "X-Nonce"
    key_id_header: str | None = "X-Key-Id"
    #: ``unix`` seconds, ``unix_ms`` milliseconds, or ``iso8601`` (UTC, ``Z``).
    timestamp_format: Literal["unix", "unix_ms", "iso8601"] = "unix"
    #: ``hex`` (32 random hex digits) or ``uuid4``.
    nonce_format: Literal["hex", "uuid4"] = "hex"
    #: Upper-case the method in the string to sign.
    uppercase_method: bool = True

    @field_validator("components")
    @classmethod
    def _known_parts(cls, parts: list[str]) -> list[str]:
        for part in parts:
            if part in _SIMPLE_PARTS or part.startswith(("header:", "literal:")):
                continue
            known = ", ".join(sorted(_SIMPLE_PARTS))
            raise ValueError(f"unknown component {part!r}; use one of {known}, "
                             "header:<Name> or literal:<text>")
        return parts

    @model_validator(mode="after")
    def _signature_goes_somewhere(self) -> HMACOptions:
        if not self.signature_header and not self.signature_param:
            raise ValueError("set signature_header or signature_param")
        return self

    @field_validator("signature_template")
    @classmethod
    def _has_signature(cls, template: str) -> str:
        if "{signature}" not in template:
            raise ValueError("signature_template must contain {signature}")
        unknown = set(re.findall(r"{(\w*)}", template)) - {
            "signature", "key_id", "timestamp", "nonce"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}")
        return template


def canonical_query(raw_query: str) -> str:
    """Decoded pairs sorted by name then value, re-encoded (RFC 3986 unreserved)."""
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in pairs)


def string_to_sign(options: HMACOptions, request: requests.PreparedRequest, *,
                   timestamp: str, nonce: str, key_id: str) -> str:
    """The text the HMAC covers, built from ``options.components``."""
    parts = urlsplit(request.url or "")
    body = _body_bytes(request)
    values: dict[str, Callable[[], str]] = {
        "method": lambda: (request.method or "GET").upper()
        if options.uppercase_method else request.method or "GET",
        "path": lambda: parts.path or "/",
        "query": lambda: canonical_query(parts.query),
        "raw_query": lambda: parts.query,
        "path_and_query": lambda: (parts.path or "/") + (
            f"?{parts.query}" if parts.query else ""),
        "timestamp": lambda: timestamp,
        "nonce": lambda: nonce,
        "body_hash": lambda: hashlib.new(options.body_hash, body).hexdigest(),
        "body": lambda: body.decode("utf-8", errors="replace"),
        "key_id": lambda: key_id,
        "host": lambda: parts.netloc,
        "content_type": lambda: request.headers.get("Content-Type", ""),
    }
    texts = []
    for component in options.components:
        kind, _, arg = component.partition(":")
        if kind == "header":
            texts.append(str(request.headers.get(arg, "")).strip())
        elif kind == "literal":
            texts.append(arg)
        else:
            texts.append(values[component]())
    return options.separator.join(texts)


def _add_query_param(url: str, name: str, value: str) -> str:
    """Append ``name=value`` to the query, keeping the order that was signed."""
    parts = urlsplit(url)
    pair = f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
    query = f"{parts.query}&{pair}" if parts.query else pair
    return urlunsplit(parts._replace(query=query))


def _body_bytes(request: requests.PreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    raise TypeError("a streamed body cannot be signed; send bytes")


@register_auth
class HMACAuth(AuthMethod):
    """Sign every request with an HMAC over a configurable string.

    It signs the final request, so list it after methods that add query
    parameters or headers it must cover (``auth: [api_key, hmac]``).

    Example spec (a gateway that signs ``METHOD|path|timestamp`` in hex)::

        auth:
          method: hmac
          components: [method, path_and_query, timestamp]
          separator: "|"
          encoding: hex
          signature_header: Authorization
          signature_template: "HMAC {key_id}:{signature}"
          key_id_header: null
          nonce_header: null
          env: {key_id: GATEWAY_KEY_ID, secret: GATEWAY_SECRET}
    """

    name = "hmac"
    fields = (
        Field("key_id", help="key id sent with each signed request", required=False),
        Field("secret", secret=True, help="shared signing secret"),
    )
    Options = HMACOptions

    def __init__(self, *args: Any, clock: Callable[[], float] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clock = clock or time.time
        self._key: bytes | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        opts = self.options
        key_id = self.credential("key_id") or ""
        stamp, nonce = self._timestamp(), self._nonce()
        if opts.timestamp_param:
            request.url = _add_query_param(request.url or "", opts.timestamp_param,
                                           stamp)
        try:
            text = string_to_sign(opts, request, timestamp=stamp, nonce=nonce,
                                  key_id=key_id)
        except TypeError as exc:
            raise AuthError(str(exc), connector=self.context.connector,
                            method=self.name) from None
        signature = self.signature(text)
        for header, value in ((opts.timestamp_header, stamp),
                              (opts.nonce_header, nonce),
                              (opts.key_id_header, key_id)):
            if header:
                request.headers[header] = value
        value = opts.signature_template.format(
            signature=signature, key_id=key_id, timestamp=stamp, nonce=nonce)
        if opts.signature_param:
            request.url = _add_query_param(request.url or "", opts.signature_param,
                                           value)
        else:
            request.headers[opts.signature_header] = value
        return request

    def query_param_names(self) -> list[str]:
        """Query parameters that carry the signature, for URL redaction."""
        return [self.options.signature_param] if self.options.signature_param else []

    def signature(self, text: str) -> str:
        """The encoded HMAC of ``text``."""
        digest = hmac_lib.new(self._secret_key(), text.encode("utf-8"),
                              self.options.algorithm).digest()
        if self.options.encoding == "hex":
            return digest.hex()
        if self.options.encoding == "base64url":
            return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
        return base64.b64encode(digest).decode("ascii")

    def _secret_key(self) -> bytes:
        if self._key is None:
            self._key = _decode_secret(self.credential("secret") or "",
                                       self.options.secret_encoding, self)
        return self._key

    def _timestamp(self) -> str:
        now = self._clock()
        if self.options.timestamp_format == "unix_ms":
            return str(int(now * 1000))
        if self.options.timestamp_format == "iso8601":
            moment = dt.datetime.fromtimestamp(now, dt.timezone.utc)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(int(now))

    def _nonce(self) -> str:
        if self.options.nonce_format == "uuid4":
            return str(uuid.uuid4())
        return secrets.token_hex(16)

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "key_id": self.credential("key_id") or "",
                "algorithm": f"HMAC-{self.options.algorithm.upper()}",
                "components": list(self.options.components)}


def _decode_secret(secret: str, encoding: str, handler: HMACAuth) -> bytes:
    if not secret:
        raise AuthError("the signing secret is empty",
                        connector=handler.context.connector, method=handler.name)
    try:
        if encoding == "base64":
            return base64.b64decode(secret, validate=True)
        if encoding == "hex":
            return bytes.fromhex(secret)
    except ValueError:
        raise AuthError(f"the signing secret is not valid {encoding} "
                        "(check secret_encoding)",
                        connector=handler.context.connector,
                        method=handler.name) from None
    return secret.encode("utf-8")
