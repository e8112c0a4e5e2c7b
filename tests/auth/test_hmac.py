"""Generic HMAC signing: the sandbox's verifier, Binance's published example."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
import requests

from restconnect.auth.api_key import APIKeyAuth, APIKeyOptions
from restconnect.auth.hmac import HMACAuth, HMACOptions, string_to_sign
from restconnect.exceptions import AuthError
from restconnect.secret import Secret
from restconnect.spec import parse_spec

# Binance's API documentation, "SIGNED endpoint examples" (HMAC keys).
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
BINANCE_PARAMS = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"),
                  ("timeInForce", "GTC"), ("quantity", "1"), ("price", "0.1"),
                  ("recvWindow", "5000")]


def _handler(secret: str, key_id: str = "kid-1", clock=None, **options) -> HMACAuth:
    credentials = {"key_id": key_id, "secret": Secret(secret)}
    return HMACAuth(HMACOptions(**options), credentials, clock=clock)


def test_binance_published_example():
    handler = _handler(
        BINANCE_SECRET, clock=lambda: 1499827319.559,
        components=["raw_query"], separator="", encoding="hex",
        timestamp_format="unix_ms", timestamp_param="timestamp",
        signature_param="signature", signature_header=None,
        timestamp_header=None, nonce_header=None, key_id_header=None)
    prepared = requests.Request("POST", "https://api.binance.com/api/v3/order",
                                params=BINANCE_PARAMS).prepare()
    handler(prepared)
    assert prepared.url.endswith(
        "&recvWindow=5000&timestamp=1499827319559&signature=" + BINANCE_SIGNATURE)
    assert "X-Signature" not in prepared.headers
    assert handler.query_param_names() == ["signature"]


def _independent_signature(secret: str, request: requests.PreparedRequest) -> str:
    """The sandbox scheme written out by hand, to check the configurable builder."""
    from urllib.parse import parse_qsl, quote, urlsplit

    parts = urlsplit(request.url)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    body = request.body or b""
    body = body.encode() if isinstance(body, str) else body
    text = "\n".join([request.method, parts.path, query,
                      request.headers["X-Timestamp"], request.headers["X-Nonce"],
                      hashlib.sha256(body).hexdigest()])
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def test_defaults_sign_after_an_api_key_in_the_query():
    key = APIKeyAuth(APIKeyOptions(location="query", param="api_key"),
                     {"api_key": Secret("key-in-the-query")})
    signer = _handler("s3cr3t-value")
    prepared = requests.Request("POST", "https://api.example.com/v1/orders",
                                params={"b": "two words", "a": "1"},
                                json={"qty": 3}).prepare()
    for handler in (key, signer):
        prepared = handler(prepared)
    assert "api_key=key-in-the-query" in prepared.url
    assert prepared.headers["X-Signature"] == _independent_signature(
        "s3cr3t-value", prepared)
    assert prepared.headers["X-Key-Id"] == "kid-1"
    assert len(prepared.headers["X-Nonce"]) == 32


def test_template_hex_sha512_and_header_component():
    handler = _handler("k", clock=lambda: 1_700_000_000, algorithm="sha512",
                       encoding="hex", separator="|",
                       components=["method", "path_and_query", "header:X-Account",
                                   "timestamp", "literal:v2"],
                       signature_header="Authorization", key_id_header=None,
                       nonce_header=None,
                       signature_template="HMAC {key_id}:{timestamp}:{signature}")
    prepared = requests.Request("GET", "https://h.example/a/b?z=1&y=2",
                                headers={"X-Account": "acct-9 "}).prepare()
    handler(prepared)
    text = "GET|/a/b?z=1&y=2|acct-9|1700000000|v2"
    expected = hmac.new(b"k", text.encode(), hashlib.sha512).hexdigest()
    assert prepared.headers["Authorization"] == f"HMAC kid-1:1700000000:{expected}"
    assert "X-Nonce" not in prepared.headers


def test_base64_secret_and_iso_timestamp():
    raw = b"\x00\x01binary-key\xff"
    handler = _handler(base64.b64encode(raw).decode(), secret_encoding="base64",
                       clock=lambda: 0, timestamp_format="iso8601",
                       components=["timestamp"], encoding="base64url")
    prepared = requests.Request("GET", "https://h.example/").prepare()
    handler(prepared)
    assert prepared.headers["X-Timestamp"] == "1970-01-01T00:00:00Z"
    digest = hmac.new(raw, b"1970-01-01T00:00:00Z", hashlib.sha256).digest()
    assert prepared.headers["X-Signature"] == base64.urlsafe_b64encode(
        digest).decode().rstrip("=")


def test_bad_secret_encoding_is_clear_and_masked():
    handler = _handler("not base64 at all!", secret_encoding="base64")
    with pytest.raises(AuthError, match="not valid base64") as info:
        handler(requests.Request("GET", "https://h.example/").prepare())
    assert "not base64 at all!" not in str(info.value)


@pytest.mark.parametrize("options,message", [
    ({"components": ["method", "verb"]}, "unknown component 'verb'"),
    ({"signature_template": "HMAC {key_id}"}, "must contain {signature}"),
    ({"signature_template": "{signature} {user}"}, "unknown placeholder"),
    ({"signature_header": None}, "signature_header or signature_param"),
])
def test_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        HMACOptions(**options)


def test_string_to_sign_refuses_a_stream():
    prepared = requests.Request("POST", "https://h.example/",
                                data=iter([b"x"])).prepare()
    with pytest.raises(TypeError, match="streamed body"):
        string_to_sign(HMACOptions(), prepared, timestamp="1", nonce="n", key_id="k")


# ------------------------------------------------------------------ sandbox

SANDBOX_SPEC = """
name: sandbox_hmac
base_url: {url}
auth:
  method: hmac
endpoints:
  me: {{path: /code/user, records: "@", pagination: {{kind: none}}}}
  repos: {{path: /code/repos, params: {{sort: full_name, q: "a b~*"}}}}
"""


def test_sandbox_verifies_our_signatures(sandbox):
    from restconnect import connect

    creds = sandbox.credentials
    spec = parse_spec(SANDBOX_SPEC.format(url=sandbox.url))
    conn = connect(spec, key_id=creds["hmac_key_id"], secret=creds["hmac_secret"])
    with conn:
        me = conn.fetch("me")
        repos = conn.fetch("repos", limit=5)
    assert me.loc[0, "login"] == "demo"
    assert len(repos) == 5


def test_sandbox_refuses_a_wrong_secret(sandbox, caplog):
    from restconnect import connect

    spec = parse_spec(SANDBOX_SPEC.format(url=sandbox.url))
    wrong = "definitely-not-the-secret"
    conn = connect(spec, key_id=sandbox.credentials["hmac_key_id"], secret=wrong)
    with conn, pytest.raises(AuthError) as info:
        conn.fetch("me")
    assert "signature does not match" in str(info.value)
    assert wrong not in str(info.value) and wrong not in caplog.text


def test_a_request_that_waits_for_the_pace_is_signed_when_it_goes():
    """Timestamps are whole seconds and the sandbox allows 1.2 s of skew; the
    pace waits 2 s between requests."""
    from restconnect import connect
    from restconnect import sandbox as sandbox_module

    box = sandbox_module.start(hmac_skew=1.2)
    try:
        creds = box.credentials
        text = SANDBOX_SPEC.format(url=box.url) + \
            "rate_limit: {requests_per_second: 0.5}\n" \
            "pagination: {kind: link_header, page_size: 40, page_size_param: per_page}\n"
        with connect(parse_spec(text), key_id=creds["hmac_key_id"],
                     secret=creds["hmac_secret"]) as conn:
            frame = conn.fetch("repos", max_pages=2, concurrency=1)
    finally:
        box.stop()
    assert len(frame) == 80
