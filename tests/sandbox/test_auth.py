"""The sandbox's server-side auth: each method accepted when right, refused when not.

Tokens and assertions are built in the test with PyJWT and the signatures
with ``hmac``/``hashlib`` directly, independent of the sandbox's own code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import quote

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _me(box, **kwargs) -> requests.Response:
    return requests.get(f"{box.url}/code/user", timeout=10, **kwargs)


# ---------------------------------------------------------------- static credentials


@pytest.mark.parametrize("scheme", ["Bearer", "token"])
def test_bearer_token_with_either_scheme_word(fresh, scheme):
    token = fresh.credentials["token"]
    response = _me(fresh, headers={"Authorization": f"{scheme} {token}"})

    assert response.status_code == 200
    assert response.json()["login"] == "demo"


def test_the_other_token_is_another_user(fresh):
    response = _me(fresh, headers={
        "Authorization": f"Bearer {fresh.credentials['other_token']}"})

    assert response.json()["login"] == fresh.credentials["other_username"] != "demo"


def test_missing_and_wrong_tokens_are_401_with_a_challenge(fresh):
    missing = _me(fresh)
    wrong = _me(fresh, headers={"Authorization": "Bearer sbx_tok_wrong"})

    assert missing.status_code == wrong.status_code == 401
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    assert "required" in missing.json()["message"]


@pytest.mark.parametrize("where", ["header", "query", "cookie"])
def test_api_key_in_header_query_or_cookie(fresh, where):
    key = fresh.credentials["api_key"]
    kwargs = {"header": {"headers": {"X-API-Key": key}},
              "query": {"params": {"api_key": key}},
              "cookie": {"cookies": {"api_key": key}}}[where]

    good = requests.get(f"{fresh.url}/pay/balance", timeout=10, **kwargs)
    bad = requests.get(f"{fresh.url}/pay/balance", headers={"X-API-Key": "nope"},
                       timeout=10)

    assert good.status_code == 200
    assert bad.status_code == 401
    assert bad.json()["error"]["type"] == "authentication_error"


def test_an_api_key_in_the_query_never_reaches_the_request_log(fresh):
    key = fresh.credentials["api_key"]
    requests.get(f"{fresh.url}/pay/balance", params={"api_key": key}, timeout=10)

    assert key not in repr(fresh.stats)


def test_rotating_keys_each_have_a_small_quota(fresh):
    first, second = fresh.credentials["api_keys"][:2]
    with fresh.configured(rotating_quota=3):
        answers = [requests.get(f"{fresh.url}/pay/balance", timeout=10,
                                headers={"X-API-Key": first}) for _ in range(4)]
        other = requests.get(f"{fresh.url}/pay/balance", headers={"X-API-Key": second},
                             timeout=10)

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert other.status_code == 200
    assert other.headers["X-RateLimit-Limit"] == "3"


def test_basic_auth(fresh):
    good = _me(fresh, auth=(fresh.credentials["username"],
                            fresh.credentials["password"]))
    bad = _me(fresh, auth=(fresh.credentials["username"], "wrong"))

    assert good.status_code == 200 and good.json()["login"] == "demo"
    assert bad.status_code == 401
    assert 'Basic realm="sandbox"' in bad.headers["WWW-Authenticate"]


# ---------------------------------------------------------------- JWT login


def _login(box, password=None) -> requests.Response:
    return requests.post(f"{box.url}/auth/login", timeout=10, json={
        "username": box.credentials["username"],
        "password": password or box.credentials["password"]})


def test_login_gives_a_short_lived_jwt_that_works(fresh):
    with fresh.configured(jwt_ttl=7):
        answer = _login(fresh)
    token = answer.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert claims["sub"] == "demo"
    assert 6 <= claims["exp"] - claims["iat"] <= 8
    assert _me(fresh, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert fresh.stats["logins"] == 1


def test_login_with_a_wrong_password_is_refused(fresh):
    assert _login(fresh, password="wrong").status_code == 401


def test_an_expired_login_token_is_401(fresh):
    with fresh.configured(jwt_ttl=1):
        token = _login(fresh).json()["access_token"]
    time.sleep(1.3)

    response = _me(fresh, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "expired" in response.json()["message"]


def test_a_forged_login_token_is_refused(fresh):
    now = int(time.time())
    claims = {"sub": "demo", "iss": "restconnect-sandbox", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, "guessed-secret-of-32-bytes-length!",
                       algorithm="HS256", headers={"kid": "sandbox-login"})

    assert _me(fresh, headers={"Authorization": f"Bearer {token}"}).status_code == 401


# ---------------------------------------------------------------- OAuth 2.0


def _token(box, data, auth=None) -> requests.Response:
    return requests.post(f"{box.url}/oauth/token", data=data, auth=auth, timeout=10)


def test_client_credentials_with_basic_and_with_post(fresh):
    creds = fresh.credentials
    by_basic = _token(fresh, {"grant_type": "client_credentials"},
                      auth=(creds["client_id"], creds["client_secret"]))
    by_post = _token(fresh, {"grant_type": "client_credentials",
                             "client_id": creds["client_id"],
                             "client_secret": creds["client_secret"]})

    for answer in (by_basic, by_post):
        body = answer.json()
        assert answer.status_code == 200, body
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert set(body["scope"].split()) == {"code:read", "pay:read"}
        me = _me(fresh, headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.status_code == 200
    assert fresh.stats["grants"] == {"client_credentials": 2}
    assert fresh.stats["token_requests"] == 2


def test_client_errors_use_the_rfc_6749_codes(fresh):
    creds = fresh.credentials
    wrong = _token(fresh, {"grant_type": "client_credentials"},
                   auth=(creds["client_id"], "wrong"))
    both = _token(fresh, {"grant_type": "client_credentials",
                          "client_secret": creds["client_secret"]},
                  auth=(creds["client_id"], creds["client_secret"]))
    password = _token(fresh, {"grant_type": "password", "username": "demo"},
                      auth=(creds["client_id"], creds["client_secret"]))
    json_body = requests.post(f"{fresh.url}/oauth/token", timeout=10,
                              json={"grant_type": "client_credentials"})

    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    assert password.json()["error"] == "unsupported_grant_type"
    assert json_body.status_code == 400


def test_expires_in_may_be_sent_as_a_string(fresh):
    creds = fresh.credentials
    with fresh.configured(expires_in_as_string=True, token_ttl=90):
        body = _token(fresh, {"grant_type": "client_credentials"},
                      auth=(creds["client_id"], creds["client_secret"])).json()

    assert body["expires_in"] == "90"


def test_scopes_limit_what_a_token_may_read(fresh):
    creds = fresh.credentials
    body = _token(fresh, {"grant_type": "client_credentials", "scope": "code:read"},
                  auth=(creds["client_id"], creds["client_secret"])).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    unknown = _token(fresh, {"grant_type": "client_credentials", "scope": "admin"},
                     auth=(creds["client_id"], creds["client_secret"]))

    assert body["scope"] == "code:read"
    assert _me(fresh, headers=headers).status_code == 200
    refused = requests.get(f"{fresh.url}/pay/balance", headers=headers, timeout=10)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert unknown.json()["error"] == "invalid_scope"


def test_an_expired_access_token_is_401(fresh):
    creds = fresh.credentials
    with fresh.configured(token_ttl=1):
        body = _token(fresh, {"grant_type": "client_credentials"},
                      auth=(creds["client_id"], creds["client_secret"])).json()
    time.sleep(1.2)

    response = _me(fresh, headers={"Authorization": f"Bearer {body['access_token']}"})

    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_refresh_tokens_rotate_and_the_old_one_dies(fresh):
    creds = fresh.credentials
    client = (creds["client_id"], creds["client_secret"])
    first = fresh.new_refresh_token()

    renewed = _token(fresh, {"grant_type": "refresh_token", "refresh_token": first},
                     auth=client).json()
    replay = _token(fresh, {"grant_type": "refresh_token", "refresh_token": first},
                    auth=client)
    again = _token(fresh, {"grant_type": "refresh_token",
                           "refresh_token": renewed["refresh_token"]}, auth=client)

    assert renewed["refresh_token"] != first
    assert _me(fresh, headers={
        "Authorization": f"Bearer {renewed['access_token']}"}).status_code == 200
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert again.status_code == 200
    assert fresh.stats["grants"] == {"refresh_token": 3}


def test_a_refresh_token_from_the_http_control_endpoint(fresh):
    creds = fresh.credentials
    token = requests.post(f"{fresh.url}/_sandbox/refresh-token",
                          timeout=10).json()["refresh_token"]

    answer = _token(fresh, {"grant_type": "refresh_token", "refresh_token": token,
                            "client_id": creds["client_id"],
                            "client_secret": creds["client_secret"]})

    assert answer.status_code == 200


def _assertion(box, key, algorithm, kid=None, **claims):
    now = int(time.time())
    payload = {"iss": box.credentials["jwt_issuer"], "sub": "demo",
               "aud": box.credentials["jwt_audience"], "iat": now, "exp": now + 300,
               "jti": uuid.uuid4().hex}
    payload.update(claims)
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


@pytest.mark.parametrize("kind", ["rsa", "ec", "hs"])
def test_jwt_bearer_grant_with_each_key_type(fresh, kind):
    creds = fresh.credentials
    key, algorithm = {"rsa": (creds["rsa_private_key"], "RS256"),
                      "ec": (creds["ec_private_key"], "ES256"),
                      "hs": (creds["hs_secret"], "HS256")}[kind]
    assertion = _assertion(fresh, key, algorithm, kid=creds[f"{kind}_kid"])

    answer = _token(fresh, {"grant_type": JWT_BEARER, "assertion": assertion})

    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert _me(fresh, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert fresh.stats["grants"] == {JWT_BEARER: 1}


def test_jwt_bearer_refuses_bad_assertions(fresh):
    creds = fresh.credentials
    rsa = creds["rsa_private_key"]
    public_pem = serialization.load_pem_private_key(rsa.encode(), None).public_key(
    ).public_bytes(serialization.Encoding.PEM,
                   serialization.PublicFormat.SubjectPublicKeyInfo)
    reused = _assertion(fresh, rsa, "RS256", kid="sandbox-rsa")
    cases = {
        "wrong audience": _assertion(fresh, rsa, "RS256", aud="https://elsewhere"),
        "expired": _assertion(fresh, rsa, "RS256", iat=int(time.time()) - 600,
                              exp=int(time.time()) - 300),
        "too long": _assertion(fresh, rsa, "RS256", exp=int(time.time()) + 7200),
        "wrong issuer": _assertion(fresh, rsa, "RS256", iss="someone@else"),
        # The RSA public key used as an HMAC secret: the classic algorithm confusion.
        "alg confusion": _hs256_with(public_pem, fresh),
    }
    first_use = _token(fresh, {"grant_type": JWT_BEARER, "assertion": reused})

    for name, assertion in cases.items():
        answer = _token(fresh, {"grant_type": JWT_BEARER, "assertion": assertion})
        outcome = (answer.status_code, answer.json()["error"])
        assert outcome == (400, "invalid_grant"), name
    replay = _token(fresh, {"grant_type": JWT_BEARER, "assertion": reused})
    assert first_use.status_code == 200
    assert replay.json()["error"] == "invalid_grant"
    assert "jti" in replay.json()["error_description"]


def _hs256_with(secret: bytes, box) -> str:
    now = int(time.time())
    payload = {"iss": box.credentials["jwt_issuer"], "sub": "demo",
               "aud": box.credentials["jwt_audience"], "iat": now, "exp": now + 60}
    header = {"alg": "HS256", "typ": "JWT", "kid": "sandbox-rsa"}

    def part(data: dict) -> bytes:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=")
    signing_input = part(header) + b"." + part(payload)
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


def test_a_self_signed_jwt_works_as_a_bearer_token(fresh):
    creds = fresh.credentials
    token = _assertion(fresh, creds["ec_private_key"], "ES256", kid="sandbox-ec",
                       aud=fresh.url)
    elsewhere = _assertion(fresh, creds["ec_private_key"], "ES256", kid="sandbox-ec")

    assert _me(fresh, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    refused = _me(fresh, headers={"Authorization": f"Bearer {elsewhere}"})
    assert refused.status_code == 401


# ---------------------------------------------------------------- HMAC signing


def _sign(box, method, path, query, body=b"", *, stamp=None, nonce=None,
          secret=None) -> dict[str, str]:
    """The documented scheme, written out independently of the sandbox."""
    stamp = str(int(time.time())) if stamp is None else stamp
    nonce = nonce or uuid.uuid4().hex
    pairs = sorted(query)
    canonical = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                         for k, v in pairs)
    text = "\n".join([method, path, canonical, stamp, nonce,
                      hashlib.sha256(body).hexdigest()])
    key = (secret or box.credentials["hmac_secret"]).encode()
    signature = base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest())
    return {"X-Key-Id": box.credentials["hmac_key_id"], "X-Timestamp": stamp,
            "X-Nonce": nonce, "X-Signature": signature.decode()}


def _signed_get(box, query, **sign_options) -> requests.Response:
    headers = _sign(box, "GET", "/code/issues", query, **sign_options)
    return requests.get(f"{box.url}/code/issues", params=query, headers=headers,
                        timeout=10)


def test_a_correctly_signed_request_is_accepted(fresh):
    query = [("state", "open"), ("per_page", "5"), ("labels", "good first issue")]

    response = _signed_get(fresh, query)

    assert response.status_code == 200, response.text
    assert len(response.json()) == 5
    assert fresh.stats["by_auth"] == {"hmac": 1}


def test_a_signed_post_covers_the_body(fresh):
    body = b'{"state": "closed", "limit": 3}'
    headers = _sign(fresh, "POST", "/code/issues/search", [], body)
    headers["Content-Type"] = "application/json"

    good = requests.post(f"{fresh.url}/code/issues/search", data=body, headers=headers,
                         timeout=10)
    headers = _sign(fresh, "POST", "/code/issues/search", [], body)
    tampered = requests.post(f"{fresh.url}/code/issues/search",
                             data=body.replace(b"3", b"4"), headers=headers, timeout=10)

    assert good.status_code == 200 and len(good.json()["items"]) == 3
    assert tampered.status_code == 401


def test_bad_signatures_stale_timestamps_and_reused_nonces_are_refused(fresh):
    query = [("per_page", "1")]
    wrong_secret = _signed_get(fresh, query, secret="not-the-secret")
    stale = _signed_get(fresh, query, stamp=str(int(time.time()) - 301))
    future = _signed_get(fresh, query, stamp=str(int(time.time()) + 301))
    first = _signed_get(fresh, query, nonce="once-only")
    second = _signed_get(fresh, query, nonce="once-only")
    incomplete = requests.get(f"{fresh.url}/code/issues", timeout=10,
                              headers={"X-Signature": "abc"})

    assert wrong_secret.status_code == 401
    assert "signature" in wrong_secret.json()["message"]
    assert stale.status_code == future.status_code == 401
    assert "window" in stale.json()["message"]
    assert first.status_code == 200
    assert second.status_code == 401 and "Nonce" in second.json()["message"]
    assert incomplete.status_code == 401 and "X-Key-Id" in incomplete.json()["message"]


def test_the_sandbox_helpers_match_the_documented_scheme(fresh):
    from restconnect.sandbox import canonical_query, hmac_signature, string_to_sign

    text = string_to_sign("get", "/p", "b=2&a=x+y&a=%2F", "10", "n", b"")
    assert canonical_query("b=2&a=x+y&a=%2F") == "a=%2F&a=x%20y&b=2"
    empty = hashlib.sha256(b"").hexdigest()
    assert text == "GET\n/p\na=%2F&a=x%20y&b=2\n10\nn\n" + empty
    expected = base64.b64encode(hmac.new(b"k", text.encode(), hashlib.sha256).digest())
    assert hmac_signature("k", text) == expected.decode()


# ---------------------------------------------------------------- per-path selection


def test_accepted_methods_are_chosen_per_path_prefix(fresh):
    bearer = {"Authorization": f"Bearer {fresh.credentials['token']}"}
    with fresh.configured(auth={"/pay/": ["api_key"], "/code/": ["bearer", "basic"]}):
        pay_bearer = requests.get(f"{fresh.url}/pay/balance", headers=bearer,
                                  timeout=10)
        pay_key = requests.get(f"{fresh.url}/pay/balance", timeout=10,
                               headers={"X-API-Key": fresh.credentials["api_key"]})
        code_bearer = _me(fresh, headers=bearer)
        code_key = _me(fresh, headers={"X-API-Key": fresh.credentials["api_key"]})

    assert pay_bearer.status_code == 401
    assert pay_bearer.json()["error"]["code"] == "method_not_accepted"
    assert pay_key.status_code == code_bearer.status_code == 200
    assert code_key.status_code == 401


def test_a_path_may_let_anonymous_requests_in(fresh):
    with fresh.configured(auth={"/code/labels": ["none", "bearer"]}):
        open_door = requests.get(f"{fresh.url}/code/labels", timeout=10)
        closed = requests.get(f"{fresh.url}/code/issues", timeout=10)

    assert open_door.status_code == 200
    assert closed.status_code == 401
    assert open_door.headers["X-RateLimit-Limit"] == "60"


def test_credentials_repr_hides_every_secret(fresh):
    shown = repr(fresh.credentials) + repr(fresh)

    for secret in fresh.secret_values():
        assert secret not in shown
    assert fresh.credentials["client_id"] in shown
