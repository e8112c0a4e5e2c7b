"""One place for every masking rule.

Headers, query parameters, URLs, form bodies and free text all pass through
here before they reach a log line, an exception, a repr or a file on disk.
Besides names that look sensitive, every secret value an auth handler holds
is registered with :func:`register_secret` and masked wherever it appears.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import (
    parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit,
)

__all__ = [
    "MASK",
    "SENSITIVE_HEADERS",
    "is_sensitive_name",
    "redact_library_logs",
    "redact_headers",
    "redact_params",
    "redact_text",
    "redact_url",
    "register_secret",
    "secret_forms",
]

MASK = "***"

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-api-key", "api-key", "x-auth-token", "x-amz-security-token",
    "x-hub-signature", "x-hub-signature-256", "stripe-signature",
})

_SENSITIVE_PARTS = (
    "token", "secret", "password", "passwd", "apikey", "api_key", "api-key",
    "key", "signature", "sig", "auth", "credential", "assertion", "code_verifier",
    "session",
)
_NOT_SENSITIVE = frozenset({
    "keyword", "keywords", "sort_key", "primary_key", "page_token_type",
    "author", "authors", "auth_method",
})

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Values shorter than this are not masked inside free text: masking "1" or
# "ab" everywhere would corrupt ordinary output without protecting anything.
_MIN_SECRET_LENGTH = 4


def register_secret(value: str | None) -> None:
    """Mask ``value``, and its URL-encoded forms, in every redacted text from now on."""
    global _pattern
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    # A key in a query string reaches urllib3's log line percent-encoded.
    forms = {value, quote(value, safe=""), quote_plus(value)}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        longest_first = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in longest_first))


def known_secrets() -> frozenset[str]:
    """Every registered secret value (for scrubbing files such as cassettes)."""
    with _lock:
        return frozenset(_secrets)


def secret_forms(values: Iterable[str]) -> list[str]:
    """Each value with its URL-encoded forms, longest first.

    Replacing them in this order masks a secret that contains another one
    whole, instead of leaving the longer one's remainder in the clear.
    """
    forms = {form for value in values
             for form in (value, quote(value, safe=""), quote(value))}
    return sorted(forms, key=len, reverse=True)


def is_sensitive_name(name: str) -> bool:
    """Whether a header, parameter or field name suggests a secret value."""
    lowered = name.lower()
    if lowered in SENSITIVE_HEADERS:
        return True
    if lowered in _NOT_SENSITIVE:
        return False
    return any(part in lowered for part in _SENSITIVE_PARTS)


def redact_text(text: str) -> str:
    """Mask every registered secret value, and URL-encoded forms of it, in text."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A copy of ``headers`` with sensitive values masked."""
    if not headers:
        return {}
    return {
        name: MASK if is_sensitive_name(name) else redact_text(str(value))
        for name, value in headers.items()
    }


def redact_params(params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
                  extra_names: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of query parameters with sensitive values masked."""
    if not params:
        return {}
    items = params.items() if isinstance(params, Mapping) else params
    extra = {name.lower() for name in extra_names}
    return {
        name: MASK if (is_sensitive_name(name) or name.lower() in extra)
        else (redact_text(value) if isinstance(value, str) else value)
        for name, value in items
    }


def redact_url(url: str, extra_names: Iterable[str] = ()) -> str:
    """The URL with user info and sensitive query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        extra = {name.lower() for name in extra_names}
        pairs = [
            (name, MASK if is_sensitive_name(name) or name.lower() in extra else value)
            for name, value in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    cleaned = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return redact_text(cleaned)


class _SecretFilter(logging.Filter):
    """Masks registered secrets in records of loggers restconnect does not own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SECRET_FILTER = _SecretFilter()

#: Libraries whose DEBUG lines can carry a secret: urllib3 logs each request
#: line, query string (and so a query-string API key) included; requests-oauthlib
#: and oauthlib log signed headers and signatures (PLAINTEXT holds the secrets).
#: A logger's filter does not apply to its children's records, so the loggers
#: that emit are named one by one.
LIBRARY_LOGGERS = (
    "urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager",
    "requests_oauthlib", "requests_oauthlib.oauth1_auth",
    "requests_oauthlib.oauth1_session", "requests_oauthlib.oauth2_session",
    "oauthlib", "oauthlib.oauth1.rfc5849", "oauthlib.oauth1.rfc5849.signature",
)


def redact_library_logs(names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Mask registered secrets in the log records of third-party libraries."""
    names = tuple(names)
    existing = [name for name in list(logging.root.manager.loggerDict)
                if name.startswith(tuple(f"{n}." for n in names))]
    for name in (*names, *existing):
        library_logger = logging.getLogger(name)
        if _SECRET_FILTER not in library_logger.filters:
            library_logger.addFilter(_SECRET_FILTER)
