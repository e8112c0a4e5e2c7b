"""Webhook signature checks against published examples and reference verifiers."""

from __future__ import annotations

import subprocess
import time

import pytest

from restconnect import webhooks
from restconnect.secret import Secret
from restconnect.webhooks import WebhookVerificationError, verify

# docs.github.com, "Validating webhook deliveries": the published test values.
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Slack's "Verifying requests from Slack" worked example.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA"
    b"&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J"
    b"%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

STRIPE_SECRET = "whsec_test_0123456789abcdef"
BODY = b'{"id":"evt_1","object":"event","data":{"amount":1250}}'


def test_github_published_vector():
    verify("github", GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG}, GITHUB_SECRET)


def test_github_accepts_secret_object_and_lowercase_header():
    verify("GitHub", GITHUB_BODY, {"x-hub-signature-256": GITHUB_SIG},
           Secret(GITHUB_SECRET))


@pytest.mark.parametrize("body,header,reason", [
    (b"Hello, World?", GITHUB_SIG, "bad_signature"),
    (GITHUB_BODY, GITHUB_SIG.replace("sha256=", "sha1="), "malformed_header"),
    (GITHUB_BODY, None, "missing_header"),
])
def test_github_refusals(body, header, reason):
    headers = {"X-Hub-Signature-256": header} if header else {}
    with pytest.raises(WebhookVerificationError) as info:
        verify("github", body, headers, GITHUB_SECRET)
    assert info.value.reason == reason
    assert GITHUB_SECRET not in str(info.value)


def test_slack_published_example():
    headers = {"X-Slack-Signature": SLACK_SIG, "X-Slack-Request-Timestamp": SLACK_TS}
    verify("slack", SLACK_BODY, headers, SLACK_SECRET, now=int(SLACK_TS) + 60)


def test_slack_replay_window():
    headers = {"X-Slack-Signature": SLACK_SIG, "X-Slack-Request-Timestamp": SLACK_TS}
    with pytest.raises(WebhookVerificationError) as info:
        verify("slack", SLACK_BODY, headers, SLACK_SECRET, now=int(SLACK_TS) + 301)
    assert info.value.reason == "stale_timestamp"


def test_slack_agrees_with_slack_sdk():
    sdk = pytest.importorskip("slack_sdk.signature")
    now = time.time()
    stamp = str(int(now))
    reference = sdk.SignatureVerifier("another-signing-secret")
    signature = reference.generate_signature(timestamp=stamp, body=BODY)
    headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": stamp}
    verify("slack", BODY, headers, "another-signing-secret")
    with pytest.raises(WebhookVerificationError):
        verify("slack", BODY + b" ", headers, "another-signing-secret")


def test_stripe_against_the_stripe_library():
    stripe = pytest.importorskip("stripe")
    stamp = int(time.time())
    header = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), STRIPE_SECRET, timestamp=stamp)
    verify("stripe", BODY, {"Stripe-Signature": header}, STRIPE_SECRET)
    assert stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, 300)


def test_stripe_multiple_v1_any_matches():
    stripe = pytest.importorskip("stripe")
    stamp = 1_700_000_000
    good = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), STRIPE_SECRET, timestamp=stamp).split("v1=")[1]
    old = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), "whsec_rolled_away", timestamp=stamp).split("v1=")[1]
    header = f"t={stamp},v1={old},v1={good},v0=deadbeef"
    verify("stripe", BODY, {"Stripe-Signature": header}, STRIPE_SECRET, now=stamp + 5)
    with pytest.raises(WebhookVerificationError) as info:
        verify("stripe", BODY, {"Stripe-Signature": f"t={stamp},v1={old}"},
               STRIPE_SECRET, now=stamp + 5)
    assert info.value.reason == "bad_signature"


def test_stripe_tolerance_and_malformed():
    stripe = pytest.importorskip("stripe")
    stamp = 1_700_000_000
    header = stripe.WebhookSignature.generate_signature_header(
        BODY.decode(), STRIPE_SECRET, timestamp=stamp)
    with pytest.raises(WebhookVerificationError) as info:
        verify("stripe", BODY, {"Stripe-Signature": header}, STRIPE_SECRET,
               now=stamp + 301)
    assert info.value.reason == "stale_timestamp"
    verify("stripe", BODY, {"Stripe-Signature": header}, STRIPE_SECRET,
           tolerance=600, now=stamp + 301)
    for bad in ("v1=abc", f"t={stamp}", "t=soon,v1=abc"):
        with pytest.raises(WebhookVerificationError) as info:
            verify("stripe", BODY, {"Stripe-Signature": bad}, STRIPE_SECRET,
                   now=stamp)
        assert info.value.reason == "malformed_header"


def _openssl_base64_hmac(secret: str, body: bytes) -> str:
    """Shopify publishes no vector: OpenSSL's command line is the reference."""
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret, "-binary"],
        input=body, capture_output=True, check=True).stdout
    return subprocess.run(["openssl", "base64", "-A"], input=digest,
                          capture_output=True, check=True).stdout.decode().strip()


def test_shopify_against_openssl():
    try:
        expected = _openssl_base64_hmac("shpss_example", BODY)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the openssl command is not available as a reference")
    verify("shopify", BODY, {"X-Shopify-Hmac-Sha256": expected}, "shpss_example")
    with pytest.raises(WebhookVerificationError):
        verify("shopify", BODY, {"X-Shopify-Hmac-Sha256": expected}, "other")


def test_unknown_provider_and_empty_secret():
    with pytest.raises(ValueError, match="known: github, shopify, slack, stripe"):
        verify("gitlab", BODY, {}, "x")
    with pytest.raises(ValueError, match="empty"):
        verify("github", GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG}, "")
    assert set(webhooks.PROVIDERS) == {"github", "shopify", "slack", "stripe"}
