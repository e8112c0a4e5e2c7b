"""AWS Signature Version 4.

The protocol part (:func:`canonical_request`, :func:`string_to_sign`,
:func:`signing_key`, :func:`authorization_header`) works on plain values so
it can be checked byte for byte against AWS's published test suite;
:class:`SigV4Auth` applies it to each ``requests.PreparedRequest``.
Reference: docs.aws.amazon.com, "Create a signed AWS API request".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import posixpath
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, ConfigDict, Field as PydanticField, field_validator

from restconnect.auth import register_auth
from restconnect.auth.base import AuthMethod, Field
from restconnect.exceptions import AuthError
from restconnect.spec import fill_env_references

__all__ = [
    "SigV4Auth",
    "SigV4Options",
    "SignedParts",
    "authorization_header",
    "canonical_request",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

#: Headers left out of the signature by default: proxies and the HTTP stack
#: may change or drop them, which would break a signature for no gain.
DEFAULT_UNSIGNED = (
    "user-agent", "expect", "x-amzn-trace-id", "accept", "accept-encoding",
    "connection", "content-length", "transfer-encoding", "authorization",
)


class SigV4Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The signing name of the service, such as ``s3``, ``execute-api``, ``sts``.
    service: str
    #: The region, such as ``eu-west-1``; ``us-east-1`` for global services.
    region: str = "us-east-1"
    #: Headers never signed (lower case). An empty list signs every header.
    unsigned_headers: list[str] = PydanticField(
        default_factory=lambda: list(DEFAULT_UNSIGNED))
    #: Send ``X-Amz-Content-SHA256`` (S3 requires it); default: only for s3.
    content_sha256_header: bool | None = None
    #: Sign the body as ``UNSIGNED-PAYLOAD`` (S3 over TLS only).
    unsigned_payload: bool = False
    #: Normalise the path (dot segments, double slashes); default: not for s3.
    normalize_path: bool | None = None
    #: Put ``X-Amz-Security-Token`` in the signed headers (most services) or
    #: add it after signing (the few that ask for that).
    sign_session_token: bool = True

    @field_validator("region", "service")
    @classmethod
    def _from_environment(cls, value: str) -> str:
        """Fill ``${AWS_REGION:-us-east-1}`` the way ``base_url`` is filled."""
        filled = fill_env_references(value, lambda match: "")
        if not filled:
            raise ValueError(f"{value!r} is empty once the environment is applied")
        return filled


@dataclass(frozen=True)
class SignedParts:
    """Every intermediate value of one signature, for tests and debugging."""

    canonical_request: str
    string_to_sign: str
    signed_headers: str
    signature: str
    authorization: str


def canonical_request(method: str, url: str, headers: Mapping[str, str],
                      payload_hash: str, *, normalize_path: bool = True,
                      ) -> tuple[str, str]:
    """The canonical request and the ``SignedHeaders`` list.

    ``url`` is the request target as sent; its path is encoded once more
    (AWS's rule for every service but S3, which passes ``normalize_path=False``
    and gets the path as sent).
    """
    parts = urlsplit(url)
    canonical_headers, names = _canonical_headers(headers, parts)
    lines = [
        method.upper(),
        _canonical_path(parts.path, normalize_path),
        canonical_query(parts.query),
        canonical_headers,
        names,
        payload_hash,
    ]
    return "\n".join(lines), names


def canonical_query(query: str) -> str:
    """Query pairs decoded, re-encoded the AWS way (RFC 3986), sorted."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if "%" in item:
            key, value = unquote(key), unquote(value)
        pairs.append((_aws_quote(key), _aws_quote(value)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, creq: str) -> str:
    digest = hashlib.sha256(creq.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, timestamp, scope, digest])


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key: four chained HMACs from ``AWS4`` + secret."""
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def authorization_header(access_key: str, scope: str, signed_headers: str,
                         signature: str) -> str:
    return (f"{ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}")


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _aws_quote(text: str) -> str:
    # Most names and values need no escaping; skipping quote() for them keeps
    # signing cheap on every page request.
    if _UNRESERVED.fullmatch(text):
        return text
    return quote(text, safe="-_.~")


def _canonical_path(path: str, normalize: bool) -> str:
    if not path:
        return "/"
    if not normalize:
        return path
    cleaned = posixpath.normpath(path)
    while cleaned.startswith("//"):
        cleaned = cleaned[1:]
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return quote(cleaned, safe="/~")


def _canonical_headers(headers: Mapping[str, str], parts: Any) -> tuple[str, str]:
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.lower().strip(), []).append(_trim(str(value)))
    if "host" not in merged:
        merged["host"] = [_host(parts)]
    names = sorted(merged)
    text = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return text, ";".join(names)


def _trim(value: str) -> str:
    return " ".join(value.split())


def _host(parts: Any) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default:
        return f"{host}:{parts.port}"
    return host


def amz_date(now: dt.datetime | None = None) -> str:
    """``X-Amz-Date``: the time in UTC as ``YYYYMMDD'T'HHMMSS'Z'``."""
    moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return (f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T"
            f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z")


@register_auth
class SigV4Auth(AuthMethod):
    """Sign every request with AWS Signature Version 4.

    Example spec::

        auth:
          method: aws_sigv4
          service: s3
          region: eu-west-1
          env: {access_key_id: AWS_ACCESS_KEY_ID,
                secret_access_key: AWS_SECRET_ACCESS_KEY,
                session_token: AWS_SESSION_TOKEN}

    The derived signing key is cached per day, so a request costs two
    SHA-256 hashes and one HMAC besides the canonicalisation.
    """

    name = "aws_sigv4"
    fields = (
        Field("access_key_id", help="AWS access key ID", env="AWS_ACCESS_KEY_ID"),
        Field("secret_access_key", secret=True, help="AWS secret access key",
              env="AWS_SECRET_ACCESS_KEY"),
        Field("session_token", secret=True, required=False,
              help="session token of temporary credentials", env="AWS_SESSION_TOKEN"),
    )
    Options = SigV4Options

    def __init__(self, *args: Any, clock: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._key_lock = threading.Lock()
        self._key_cache: tuple[str, bytes] | None = None
        service = self.options.service.lower()
        opts = self.options
        self._content_header = (service == "s3" if opts.content_sha256_header is None
                                else opts.content_sha256_header)
        self._normalize = (service != "s3" if opts.normalize_path is None
                           else opts.normalize_path)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        access_key = self.credential("access_key_id")
        if not access_key or not self.credential("secret_access_key"):
            raise AuthError("access_key_id and secret_access_key are required",
                            connector=self.context.connector, method=self.name)
        stamp = amz_date(self._clock())
        request.headers.pop("Authorization", None)
        request.url = _plus_as_space(request.url or "")
        request.headers["X-Amz-Date"] = stamp
        payload_hash = self._payload_hash(request)
        if self._content_header:
            request.headers["X-Amz-Content-SHA256"] = payload_hash
        token = self.credential("session_token")
        if token and self.options.sign_session_token:
            request.headers["X-Amz-Security-Token"] = token
        request.headers["Authorization"] = self._sign(request, stamp, payload_hash,
                                                      access_key).authorization
        if token and not self.options.sign_session_token:
            request.headers["X-Amz-Security-Token"] = token
        return request

    def signed_parts(self, request: requests.PreparedRequest) -> SignedParts:
        """Sign ``request`` and return every intermediate value."""
        self(request)
        stamp = request.headers["X-Amz-Date"]
        return self._sign(request, stamp, self._payload_hash(request),
                          self.credential("access_key_id") or "")

    def _sign(self, request: requests.PreparedRequest, stamp: str, payload_hash: str,
              access_key: str) -> SignedParts:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() != "authorization"}
        if not self.options.sign_session_token:
            headers.pop("X-Amz-Security-Token", None)
        skip = {h.lower() for h in self.options.unsigned_headers}
        signed = {k: v for k, v in headers.items() if k.lower() not in skip}
        url = _canonical_url(request.url or "")
        creq, names = canonical_request(request.method or "GET", url, signed,
                                        payload_hash, normalize_path=self._normalize)
        scope = credential_scope(stamp[:8], self.options.region, self.options.service)
        sts = string_to_sign(stamp, scope, creq)
        signature = hmac.new(self._signing_key(stamp[:8]), sts.encode("utf-8"),
                             hashlib.sha256).hexdigest()
        authz = authorization_header(access_key, scope, names, signature)
        return SignedParts(creq, sts, names, signature, authz)

    def _signing_key(self, date: str) -> bytes:
        with self._key_lock:
            if self._key_cache is None or self._key_cache[0] != date:
                secret = self.credential("secret_access_key") or ""
                key = signing_key(secret, date, self.options.region,
                                  self.options.service)
                self._key_cache = (date, key)
            return self._key_cache[1]

    def _payload_hash(self, request: requests.PreparedRequest) -> str:
        if self.options.unsigned_payload:
            return UNSIGNED_PAYLOAD
        body = request.body
        if body is None:
            return EMPTY_SHA256
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, (bytes, bytearray)):
            return hashlib.sha256(body).hexdigest()
        raise AuthError("cannot sign a streamed body; send bytes or set "
                        "unsigned_payload: true (S3 only)",
                        connector=self.context.connector, method=self.name)

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "service": self.options.service,
                "region": self.options.region,
                "access_key_id": self.credential("access_key_id") or ""}


def _plus_as_space(url: str) -> str:
    """Requests encodes a space in ``params`` as ``+``; AWS wants ``%20``.

    A literal plus sign from ``params`` arrives as ``%2B``, so every raw ``+``
    in a prepared query is a space, and sending ``%20`` keeps the server's
    reading of the query identical to the signed one.
    """
    parts = urlsplit(url)
    if "+" not in parts.query:
        return url
    return urlunsplit(parts._replace(query=parts.query.replace("+", "%20")))


def _canonical_url(url: str) -> str:
    """Drop the fragment; the signature covers path and query only."""
    return url.partition("#")[0]
