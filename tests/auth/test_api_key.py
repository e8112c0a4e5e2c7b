"""API keys: placement, redaction, and rotation over several keys on the sandbox."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from restconnect.auth.api_key import APIKeyAuth, APIKeyOptions
from restconnect.exceptions import RateLimitError
from restconnect.redact import redact_text, redact_url
from restconnect.secret import Secret
from restconnect.spec import parse_spec


def _handler(key: str, **options) -> APIKeyAuth:
    return APIKeyAuth(APIKeyOptions(**options), {"api_key": Secret(key)})


def test_header_query_and_cookie_placement():
    url = "https://api.example.com/v1/x?a=1"
    header = _handler("key-one-1111", param="Authorization", prefix="Api-Key")
    assert header(requests.Request("GET", url).prepare()).headers[
        "Authorization"] == "Api-Key key-one-1111"
    query = _handler("key-one-1111", location="query", param="appid")
    sent = query(requests.Request("GET", url).prepare())
    assert sent.url.endswith("?a=1&appid=key-one-1111")
    assert "key-one-1111" not in redact_url(sent.url, query.query_param_names())
    cookie = _handler("key-one-1111", location="cookie", param="session_key")
    sent = cookie(requests.Request("GET", url, cookies={"lang": "fi"}).prepare())
    assert sent.headers["Cookie"] == "lang=fi; session_key=key-one-1111"


def test_each_rotated_key_is_a_secret_of_its_own():
    handler = _handler("first-key-aaaa, second-key-bbbb,third-key-cccc")
    assert {"first-key-aaaa", "second-key-bbbb", "third-key-cccc"} <= set(
        handler.secrets())
    assert redact_text("used second-key-bbbb today") == "used *** today"
    assert handler.current_key() == "first-key-aaaa"


def _limited(handler: APIKeyAuth, key: str,
             retry_after: str = "30") -> requests.Response:
    sent = handler(requests.Request("GET", "https://api.example.com/").prepare())
    sent.headers[handler.options.param] = key
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = retry_after
    response.request = sent
    return response


def test_rotation_rules():
    handler = _handler("k-one-1111,k-two-2222")
    single = _handler("only-key-9999")
    assert single.handle_rate_limited(_limited(single, "only-key-9999")) is False
    assert handler.handle_rate_limited(_limited(handler, "k-one-1111")) is True
    assert handler.current_key() == "k-two-2222"
    # A second thread's late 429 for the old key must not rotate again.
    assert handler.handle_rate_limited(_limited(handler, "k-one-1111")) is True
    assert handler.current_key() == "k-two-2222"
    # Both keys resting: keep the one free soonest and let the client wait.
    assert handler.handle_rate_limited(_limited(handler, "k-two-2222", "5")) is False
    assert handler.current_key() == "k-two-2222"


SPEC = """
name: sandbox_keys
base_url: {url}
auth: {{method: api_key, location: header, param: X-API-Key}}
rate_limit: {{max_wait: 1, slow_down_below: 0}}
retry: {{attempts: 2}}
cache: {{enabled: false}}
endpoints:
  me: {{path: /code/user, records: "@", pagination: {{kind: none}}}}
"""


def test_rotation_keeps_going_on_the_sandbox(fresh_sandbox, caplog):
    from restconnect import connect

    keys = fresh_sandbox.credentials["api_keys"]
    spec = parse_spec(SPEC.format(url=fresh_sandbox.url))
    with fresh_sandbox.configured(rotating_quota=2, rotating_window=60):
        with caplog.at_level(logging.INFO, logger="restconnect.auth.api_key"):
            with connect(spec, api_key=",".join(keys), cache=False) as conn:
                logins = []
                for number in range(6):
                    if number in (2, 4):
                        # Each key's window starts in another second, so the
                        # key free soonest is unambiguous at 1 s resolution.
                        time.sleep(1.1)
                    logins.append(conn.fetch("me").loc[0, "login"])
                assert logins == ["demo"] * 6
                # Key 3's last answer said "0 left": every key now rests, and
                # the one free soonest (key 1) is kept for after the reset.
                assert conn.auth[0].current_key() == keys[0]
                with pytest.raises(RateLimitError) as info:
                    conn.fetch("me")
    assert "using key 2" in caplog.text and "using key 3" in caplog.text
    assert "all 3 API keys are rate limited" in caplog.text
    for key in keys:
        assert key not in caplog.text and key not in str(info.value)
