"""Secrets are masked in every text restconnect produces."""

from __future__ import annotations

import copy
import pickle

import pytest

from restconnect.redact import (
    MASK,
    redact_headers,
    redact_params,
    redact_text,
    redact_url,
    register_secret,
)
from restconnect.secret import Secret


def test_secret_masks_itself():
    value = Secret("s3cr3t-value-123")
    assert "s3cr3t" not in repr(value)
    assert "s3cr3t" not in str(value)
    assert "s3cr3t" not in f"{value}"
    assert value.reveal() == "s3cr3t-value-123"


def test_secret_refuses_pickling_and_hides_equality():
    value = Secret("s3cr3t-value-123")
    with pytest.raises(TypeError):
        pickle.dumps(value)
    assert value != Secret("s3cr3t-value-123")
    assert value == value
    assert copy.deepcopy(value) is value


def test_sensitive_headers_are_masked():
    headers = redact_headers({"Authorization": "Bearer x", "X-API-Key": "k",
                              "Accept": "application/json"})
    assert headers == {"Authorization": MASK, "X-API-Key": MASK,
                       "Accept": "application/json"}


def test_query_keys_are_masked_in_urls():
    url = redact_url("https://user:pw@api.test/x?appid=abc123&q=rain&access_token=t0k")
    assert "t0k" not in url and "pw" not in url
    assert "q=rain" in url


def test_extra_param_names_are_masked():
    url = redact_url("https://api.test/x?appid=abc123&q=rain", ["appid"])
    assert "abc123" not in url and "q=rain" in url


def test_registered_values_are_masked_anywhere():
    register_secret("very-secret-token-xyz")
    assert redact_text("error: very-secret-token-xyz was refused") == (
        f"error: {MASK} was refused")
    assert "very-secret-token-xyz" not in redact_url(
        "https://api.test/path/very-secret-token-xyz")


def test_params_keep_ordinary_names():
    assert redact_params({"author": "me", "api_key": "k", "keyword": "x"}) == {
        "author": "me", "api_key": MASK, "keyword": "x"}


def test_cache_scrub_masks_a_secret_that_contains_another_whole():
    from restconnect.cache import scrub_bytes

    inner, outer = "inner-key-0001", "inner-key-0001-and-more"
    assert scrub_bytes(f"k={outer}".encode(), [inner, outer]) == f"k={MASK}".encode()
