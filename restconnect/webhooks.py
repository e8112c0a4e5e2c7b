"""Receiving-side checks of webhook signatures.

Each provider signs the raw request body (some with a timestamp) with a
shared secret. Verify the bytes exactly as they arrived, before any JSON
parsing, because re-serialising changes them.

Example:
    >>> from restconnect import webhooks
    >>> webhooks.verify("github", body, request.headers, secret)  # doctest: +SKIP

Every check compares with :func:`hmac.compare_digest` and raises
:class:`WebhookVerificationError`, whose message never holds the secret or
the expected signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from restconnect.exceptions import RestConnectError
from restconnect.secret import Secret, reveal

__all__ = [
    "PROVIDERS",
    "WebhookVerificationError",
    "verify",
    "verify_github",
    "verify_shopify",
    "verify_slack",
    "verify_stripe",
]

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 300


class WebhookVerificationError(RestConnectError):
    """A webhook's signature is missing, malformed, wrong or too old.

    Attributes:
        provider: the provider name, such as ``stripe``.
        reason: a short machine-readable code: ``missing_header``,
            ``malformed_header``, ``bad_signature`` or ``stale_timestamp``.
    """

    def __init__(self, provider: str, reason: str, message: str):
        self.provider = provider
        self.reason = reason
        super().__init__(f"{provider} webhook: {message}")


def verify(provider: str, body: bytes, headers: Mapping[str, str],
           secret: str | Secret, tolerance: float = DEFAULT_TOLERANCE,
           now: float | None = None) -> None:
    """Check a webhook from ``provider`` (github, stripe, shopify, slack).

    Args:
        provider: one of :data:`PROVIDERS`.
        body: the raw request body, byte for byte.
        headers: the request headers (any capitalisation).
        secret: the webhook signing secret.
        tolerance: seconds a timestamped signature stays valid (stripe, slack).
        now: the current Unix time, for tests; defaults to the clock.

    Raises:
        WebhookVerificationError: the signature does not prove the body.
        ValueError: unknown provider.
    """
    try:
        check = PROVIDERS[provider.lower()]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(
            f"unknown webhook provider {provider!r}; known: {known}") from None
    check(body, headers, secret, tolerance=tolerance, now=now)


def verify_github(body: bytes, headers: Mapping[str, str], secret: str | Secret,
                  **_: Any) -> None:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""
    header = _header(headers, "X-Hub-Signature-256", "github")
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        raise WebhookVerificationError(
            "github", "malformed_header",
            "X-Hub-Signature-256 must start with 'sha256='")
    expected = _hmac_hex(secret, _bytes(body))
    _compare("github", given, expected)


def verify_shopify(body: bytes, headers: Mapping[str, str], secret: str | Secret,
                   **_: Any) -> None:
    """Shopify: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>``."""
    given = _header(headers, "X-Shopify-Hmac-Sha256", "shopify")
    digest = hmac.new(_key(secret), _bytes(body), hashlib.sha256).digest()
    _compare("shopify", given, base64.b64encode(digest).decode("ascii"))


def verify_stripe(body: bytes, headers: Mapping[str, str], secret: str | Secret,
                  tolerance: float = DEFAULT_TOLERANCE,
                  now: float | None = None) -> None:
    """Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

    The signed text is ``<t>.<body>``; any one matching ``v1`` passes (Stripe
    sends several while a secret is being rolled). ``v0`` entries are ignored.
    """
    header = _header(headers, "Stripe-Signature", "stripe")
    stamp, candidates = _parse_stripe_header(header)
    _check_age("stripe", stamp, tolerance, now)
    expected = _hmac_hex(secret, f"{stamp}.".encode() + _bytes(body))
    if not any(hmac.compare_digest(c.encode(), expected.encode()) for c in candidates):
        raise WebhookVerificationError(
            "stripe", "bad_signature", "no v1 signature matches the body")


def verify_slack(body: bytes, headers: Mapping[str, str], secret: str | Secret,
                 tolerance: float = DEFAULT_TOLERANCE,
                 now: float | None = None) -> None:
    """Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:<timestamp>:<body>``.

    The timestamp comes from ``X-Slack-Request-Timestamp``; Slack asks that
    requests older than five minutes be refused to stop replays.
    """
    signature = _header(headers, "X-Slack-Signature", "slack")
    stamp_text = _header(headers, "X-Slack-Request-Timestamp", "slack")
    stamp = _parse_int(stamp_text, "slack", "X-Slack-Request-Timestamp")
    _check_age("slack", stamp, tolerance, now)
    version, _, given = signature.partition("=")
    if version != "v0" or not given:
        raise WebhookVerificationError(
            "slack", "malformed_header", "X-Slack-Signature must start with 'v0='")
    expected = _hmac_hex(secret, f"v0:{stamp_text}:".encode() + _bytes(body))
    _compare("slack", given, expected)


PROVIDERS: dict[str, Callable[..., None]] = {
    "github": verify_github,
    "shopify": verify_shopify,
    "slack": verify_slack,
    "stripe": verify_stripe,
}


def _parse_stripe_header(header: str) -> tuple[int, list[str]]:
    stamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            stamp = _parse_int(value, "stripe", "Stripe-Signature t")
        elif key == "v1" and value:
            candidates.append(value)
    if stamp is None:
        raise WebhookVerificationError(
            "stripe", "malformed_header", "Stripe-Signature has no t= timestamp")
    if not candidates:
        raise WebhookVerificationError(
            "stripe", "malformed_header", "Stripe-Signature has no v1= signature")
    return stamp, candidates


def _header(headers: Mapping[str, str], name: str, provider: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered and value:
            return str(value).strip()
    raise WebhookVerificationError(provider, "missing_header", f"no {name} header")


def _parse_int(text: str, provider: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise WebhookVerificationError(
            provider, "malformed_header", f"{what} is not a Unix timestamp") from None


def _check_age(provider: str, stamp: int, tolerance: float, now: float | None) -> None:
    current = time.time() if now is None else now
    age = current - stamp
    if abs(age) > tolerance:
        logger.warning("%s webhook refused: timestamp %ss away from now", provider,
                       int(age))
        raise WebhookVerificationError(
            provider, "stale_timestamp",
            f"timestamp is {int(abs(age))}s {'old' if age > 0 else 'in the future'}, "
            f"more than the {int(tolerance)}s tolerance (a replay?)")


def _compare(provider: str, given: str, expected: str) -> None:
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookVerificationError(
            provider, "bad_signature", "the signature does not match the body")


def _key(secret: str | Secret) -> bytes:
    value = reveal(secret)
    if not value:
        raise ValueError("the webhook secret is empty")
    return value.encode("utf-8")


def _hmac_hex(secret: str | Secret, message: bytes) -> str:
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def _bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)
