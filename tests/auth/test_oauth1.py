"""OAuth 1.0a signing, verified by oauthlib's own resource endpoint."""

from __future__ import annotations

import pytest
import requests

from restconnect.auth.oauth1 import OAuth1Auth, OAuth1Options
from restconnect.exceptions import AuthError
from restconnect.secret import Secret
from restconnect.spec import parse_spec
from tests.servers.oauth1_server import (  # noqa: F401  (oauth1_server is a fixture)
    CLIENT_KEY,
    CLIENT_SECRET,
    TOKEN,
    TOKEN_SECRET,
    oauth1_server,
)

SPEC = """
name: oauth1_api
base_url: {url}
auth: {{method: oauth1, signature_type: {where}}}
retry: {{attempts: 1}}
endpoints:
  items: {{path: /1.1/items.json, records: items, params: {{q: "two words"}},
          pagination: {{kind: none}}}}
"""


def _credentials(**changes):
    values = {"client_key": CLIENT_KEY, "client_secret": CLIENT_SECRET,
              "resource_owner_key": TOKEN, "resource_owner_secret": TOKEN_SECRET}
    values.update(changes)
    return values


@pytest.mark.peer
@pytest.mark.parametrize("where", ["header", "query"])
def test_oauthlib_accepts_our_signature(oauth1_server, where):
    from restconnect import connect

    spec = parse_spec(SPEC.format(url=oauth1_server.url, where=where))
    with connect(spec, **_credentials()) as conn:
        first = conn.fetch("items")
        second = conn.fetch("items")
    assert list(first["name"]) == ["first", "second"] and len(second) == 2


@pytest.mark.peer
@pytest.mark.parametrize("field", ["client_secret", "resource_owner_secret"])
def test_oauthlib_refuses_a_wrong_secret(oauth1_server, field, caplog):
    from restconnect import connect

    wrong = "a-wrong-secret-value-77"
    spec = parse_spec(SPEC.format(url=oauth1_server.url, where="header"))
    conn = connect(spec, **_credentials(**{field: wrong}))
    with conn, pytest.raises(AuthError, match="401") as info:
        conn.fetch("items")
    assert wrong not in str(info.value) and wrong not in caplog.text


@pytest.mark.peer
def test_post_form_body_is_signed(oauth1_server):
    handler = OAuth1Auth(OAuth1Options(), {
        "client_key": CLIENT_KEY, "client_secret": Secret(CLIENT_SECRET),
        "resource_owner_key": TOKEN, "resource_owner_secret": Secret(TOKEN_SECRET)})
    answer = requests.post(f"{oauth1_server.url}/1.1/statuses/update.json",
                           data={"status": "hello, world & more"}, auth=handler,
                           timeout=10)
    assert answer.status_code == 200 and answer.json()["valid"] is True


def test_header_format_and_redaction_names():
    handler = OAuth1Auth(OAuth1Options(signature_type="query"), {
        "client_key": CLIENT_KEY, "client_secret": Secret(CLIENT_SECRET)})
    prepared = handler(requests.Request("GET", "https://api.example.com/x").prepare())
    assert "oauth_signature=" in prepared.url and "oauth_signature_method=HMAC-SHA1" \
        in prepared.url
    assert handler.query_param_names() == ["oauth_signature"]
    header = OAuth1Auth(OAuth1Options(realm="photos"), {
        "client_key": CLIENT_KEY, "client_secret": Secret(CLIENT_SECRET)})
    signed = header(requests.Request("GET", "https://api.example.com/x").prepare())
    assert signed.headers["Authorization"].startswith('OAuth realm="photos"')
