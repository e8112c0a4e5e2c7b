"""OAuth 2.0 grants against the real oidc-provider on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from oidc_server import (
    CC_BASIC,
    CC_POST,
    DEVICE_CONFIDENTIAL,
    NATIVE,
    RESOURCE,
    TEST_SECRETS,
    OIDCProvider,
    running_provider,
)
from token_servers import get_in_threads, tiny_server

from restconnect.auth.base import AuthContext
from restconnect.auth.oauth2 import OAuth2Auth, OAuth2Options
from restconnect.auth.tokens import TokenStore
from restconnect.exceptions import (
    AuthError,
    CredentialsMissing,
    SpecError,
    TokenRefreshError,
)
from restconnect.http import HttpClient
from restconnect.spec import parse_spec

pytestmark = pytest.mark.peer


def _context(
    tmp_path: Path, *, interactive: bool = False, connector: str = "demo"
) -> AuthContext:
    return AuthContext(
        connector=connector,
        http=HttpClient(connector=connector),
        token_store=TokenStore(tmp_path / "store", use_keyring=False),
        interactive=interactive,
    )


def _client_credentials(
    provider: OIDCProvider, tmp_path: Path, client: tuple[str, str], **options: Any
) -> OAuth2Auth:
    opts = OAuth2Options(
        grant="client_credentials",
        token_url=f"{provider.issuer}/token",
        scopes=["api:read"],
        resource=RESOURCE,
        **options,
    )
    return OAuth2Auth(
        opts, {"client_id": client[0], "client_secret": client[1]}, _context(tmp_path)
    )


def _native(
    provider: OIDCProvider,
    tmp_path: Path,
    grant: str = "authorization_code",
    **kwargs: Any,
) -> OAuth2Auth:
    opts = OAuth2Options(
        grant=grant,
        token_url=f"{provider.issuer}/token",
        authorization_url=f"{provider.issuer}/auth",
        device_authorization_url=f"{provider.issuer}/device/auth",
        scopes=["openid", "offline_access"],
    )
    return OAuth2Auth(opts, {"client_id": NATIVE}, _context(tmp_path, **kwargs))


def _whoami(provider: OIDCProvider, auth: OAuth2Auth) -> dict[str, Any]:
    return (
        HttpClient(connector="demo", auth=[auth])
        .request("GET", provider.api_url)
        .json()
    )


def _signed_in(provider: OIDCProvider, tmp_path: Path) -> OAuth2Auth:
    auth = _native(provider, tmp_path)
    request = auth.begin_authorization()
    auth.complete_authorization(provider.sign_in(request.url, request.redirect_uri))
    return auth


def _expire(auth: OAuth2Auth) -> None:
    auth._token.expires_at = time.time() - 1


# ---------------------------------------------------------------- client credentials


@pytest.mark.parametrize(
    "client, method",
    [(CC_BASIC, "client_secret_basic"), (CC_POST, "client_secret_post")],
)
def test_client_credentials(
    oidc_provider: OIDCProvider, tmp_path: Path, client: tuple[str, str], method: str
) -> None:
    auth = _client_credentials(oidc_provider, tmp_path, client, client_auth=method)

    answer = _whoami(oidc_provider, auth)

    assert answer == {"client_id": client[0], "sub": None, "scope": "api:read"}
    calls = [
        c
        for c in oidc_provider.token_calls("client_credentials")
        if c["client_id"] == client[0]
    ]
    assert calls[-1]["status"] == 200


def test_a_wrong_client_secret_is_refused_without_echoing_it(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _client_credentials(
        oidc_provider, tmp_path, (CC_BASIC[0], "wrong-secret-1234")
    )

    with pytest.raises(AuthError) as info:
        _whoami(oidc_provider, auth)

    assert "invalid_client" in str(info.value)
    assert "wrong-secret-1234" not in str(info.value)


def test_many_threads_cause_one_client_credentials_request(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _client_credentials(
        oidc_provider,
        tmp_path,
        CC_POST,
        client_auth="client_secret_post",
        account="threads",
    )
    before = len(oidc_provider.token_calls("client_credentials"))
    http = HttpClient(connector="demo", auth=[auth], pool_size=16)
    answers = get_in_threads(http, oidc_provider.api_url, 16)

    assert answers == [200] * 16
    assert len(oidc_provider.token_calls("client_credentials")) - before == 1


def test_a_revoked_token_is_renewed_once_after_the_401(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _client_credentials(oidc_provider, tmp_path, CC_BASIC, account="revoked")
    _whoami(oidc_provider, auth)
    requests.post(
        f"{oidc_provider.issuer}/token/revocation",
        auth=CC_BASIC,
        timeout=5,
        data={"token": auth.token().access_token.reveal()},
    ).raise_for_status()
    before = len(oidc_provider.token_calls("client_credentials"))

    assert _whoami(oidc_provider, auth)["client_id"] == CC_BASIC[0]
    assert len(oidc_provider.token_calls("client_credentials")) - before == 1


def test_a_stored_client_token_is_reused_by_the_next_run(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    _whoami(
        oidc_provider,
        _client_credentials(oidc_provider, tmp_path, CC_BASIC, account="cron"),
    )
    before = len(oidc_provider.token_calls("client_credentials"))

    again = _client_credentials(oidc_provider, tmp_path, CC_BASIC, account="cron")

    assert _whoami(oidc_provider, again)["client_id"] == CC_BASIC[0]
    assert len(oidc_provider.token_calls("client_credentials")) == before


# ---------------------------------------------------------------- authorization code


def test_authorization_code_with_pkce_by_pasting_the_callback(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path)

    request = auth.begin_authorization()
    callback = oidc_provider.sign_in(request.url, request.redirect_uri, login="bob")
    token = auth.complete_authorization(callback)

    assert "code_challenge_method=S256" in request.url
    assert f"state={request.state}" in request.url
    assert token.refresh_token is not None
    assert _whoami(oidc_provider, auth)["sub"] == "bob"


def test_a_callback_with_another_state_is_refused(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path)
    request = auth.begin_authorization()
    callback = oidc_provider.sign_in(request.url, request.redirect_uri)

    forged = callback.replace(f"state={request.state}", "state=forged-state-value")

    with pytest.raises(AuthError, match="state does not match"):
        auth.complete_authorization(forged)


def test_a_denied_sign_in_is_a_clear_error(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path)
    request = auth.begin_authorization()
    callback = oidc_provider.sign_in(request.url, request.redirect_uri, deny=True)

    with pytest.raises(AuthError, match="cancelled or denied"):
        auth.complete_authorization(callback)


def test_browser_sign_in_through_the_loopback_redirect(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path)
    shown: list[str] = []
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["token"] = auth.login(
                mode="browser", open_browser=False, notify=shown.append, timeout=20
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while not shown and time.monotonic() < deadline:
        time.sleep(0.02)
    url = shown[0].split(": ", 1)[1]
    redirect = auth._pending.redirect_uri
    callback = oidc_provider.sign_in(url, redirect)
    page = requests.get(callback, timeout=5)
    worker.join(20)

    assert redirect.startswith("http://127.0.0.1:") and page.status_code == 200
    assert "error" not in result, result
    stored = auth.context.token_store.load("demo", auth.store_identity())
    assert stored["access_token"] == result["token"].access_token.reveal()


def test_interactive_grants_need_a_person_or_a_stored_token(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path)
    auth.context.connector = "crm"

    with pytest.raises(CredentialsMissing, match="restconnect login crm"):
        auth.token()


def test_refresh_rotates_the_refresh_token_and_keeps_the_new_one(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _signed_in(oidc_provider, tmp_path)
    old = auth.token()
    _expire(auth)
    before = len(oidc_provider.token_calls("refresh_token"))

    answer = _whoami(oidc_provider, auth)

    new = auth.token()
    assert answer["client_id"] == NATIVE
    assert len(oidc_provider.token_calls("refresh_token")) - before == 1
    assert new.refresh_token.reveal() != old.refresh_token.reveal()
    stored = auth.context.token_store.load("demo", auth.store_identity())
    assert stored["refresh_token"] == new.refresh_token.reveal()
    # The provider really rotated: the old refresh token is now dead.
    with pytest.raises(AuthError) as info:
        auth.refresh(old)
    assert getattr(info.value, "oauth_error", "") == "invalid_grant"


def test_many_threads_with_an_expired_token_cause_one_refresh(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _signed_in(oidc_provider, tmp_path)
    _expire(auth)
    before = len(oidc_provider.token_calls("refresh_token"))
    http = HttpClient(connector="demo", auth=[auth], pool_size=16)
    statuses = get_in_threads(http, oidc_provider.api_url, 12)

    assert statuses == [200] * 12
    assert len(oidc_provider.token_calls("refresh_token")) - before == 1


def test_a_dead_refresh_token_clears_the_store_and_asks_to_sign_in(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _signed_in(oidc_provider, tmp_path)
    old = auth.token()
    auth.refresh(old)  # rotates: the refresh token in `old` is dead now
    store = auth.context.token_store
    store.save("demo", auth.store_identity(), old.to_dict() | {"expires_at": 0})
    auth._token = None
    auth._store_checked = False

    with pytest.raises(TokenRefreshError, match="restconnect login demo"):
        auth.token()

    assert store.load("demo", auth.store_identity()) is None


# ---------------------------------------------------------------- device flow


def test_device_flow_for_a_public_client(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    auth = _native(oidc_provider, tmp_path, grant="device_code")
    device = auth.begin_device()

    assert auth.poll_device(device, wait=False) is None
    page = oidc_provider.approve_device(device.user_code, login="carol")
    time.sleep(max(0.0, device.next_poll - time.time()))
    token = auth.poll_device(device, wait=False)

    assert "Sign-in Success" in page
    assert device.verification_uri == f"{oidc_provider.issuer}/device"
    assert token is not None and token.refresh_token is not None
    assert _whoami(oidc_provider, auth)["sub"] == "carol"


def test_device_flow_slows_down_when_asked(tmp_path: Path) -> None:
    # oidc-provider never answers slow_down, so a small server of our own does.
    answers = iter(
        [
            {"error": "authorization_pending"},
            {"error": "slow_down"},
            {"error": "authorization_pending"},
            {
                "access_token": "device-token-5e1f",
                "expires_in": "300",
                "token_type": "Bearer",
            },
        ]
    )
    with tiny_server() as server:
        server.route("POST", "/device")(
            lambda call: (
                200,
                {
                    "device_code": "dc-1",
                    "user_code": "ABCD-EFGH",
                    "expires_in": 600,
                    "verification_uri": f"{server.url}/activate",
                    "interval": 2,
                },
                {},
            )
        )

        @server.route("POST", "/token")
        def token_endpoint(call: Any) -> tuple[int, Any, dict[str, str]]:
            if call.form().get("device_code") != "dc-1":
                return 400, {"error": "invalid_grant"}, {}
            answer = next(answers)
            return (400 if "error" in answer else 200), answer, {}

        opts = OAuth2Options(
            grant="device_code",
            token_url=f"{server.url}/token",
            device_authorization_url=f"{server.url}/device",
        )
        auth = OAuth2Auth(opts, {"client_id": "tv-app"}, _context(tmp_path))
        waits: list[float] = []
        device = auth.begin_device()
        token = auth.poll_device(device, sleep=waits.append)

    assert token is not None and token.access_token.reveal() == "device-token-5e1f"
    assert device.interval == 7
    assert [round(w) for w in waits[2:]] == [7, 7]
    assert server.counts["/token"] == 4


def test_device_flow_waits_and_polls_until_approved(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    opts = OAuth2Options(
        grant="device_code",
        token_url=f"{oidc_provider.issuer}/token",
        device_authorization_url=f"{oidc_provider.issuer}/device/auth",
        scopes=["openid"],
    )
    auth = OAuth2Auth(
        opts,
        {"client_id": DEVICE_CONFIDENTIAL[0], "client_secret": DEVICE_CONFIDENTIAL[1]},
        _context(tmp_path, interactive=True),
    )
    shown: list[str] = []
    approver = threading.Timer(
        0.5, lambda: oidc_provider.approve_device(shown[0].rsplit(" ", 1)[1])
    )
    approver.start()
    try:
        token = auth.login(notify=shown.append)
    finally:
        approver.join(10)

    assert shown[0].startswith(f"To sign in, open {oidc_provider.issuer}/device")
    assert token.access_token
    assert _whoami(oidc_provider, auth)["client_id"] == DEVICE_CONFIDENTIAL[0]


def test_device_flow_access_denied(oidc_provider: OIDCProvider, tmp_path: Path) -> None:
    auth = _native(oidc_provider, tmp_path, grant="device_code")
    device = auth.begin_device()
    oidc_provider.approve_device(device.user_code, abort=True)

    with pytest.raises(AuthError, match="denied") as info:
        auth.poll_device(device, wait=False)

    assert info.value.oauth_error == "access_denied"


def test_device_flow_expired_token(tmp_path: Path) -> None:
    with running_provider(tmp_path, device_ttl=1) as provider:
        auth = _native(provider, tmp_path, grant="device_code")
        device = auth.begin_device()
        device.expires_at = time.time() + 60  # let the provider be the judge
        time.sleep(1.5)

        with pytest.raises(AuthError, match="expired") as info:
            auth.poll_device(device, wait=False)

    assert info.value.oauth_error == "expired_token"


# ---------------------------------------------------------------- spec and logs


SPEC = """
name: crm
base_url: https://api.example.com
auth:
  method: oauth2
  grant: {grant}
  token_url: https://auth.example.com/token
endpoints:
  items: {{path: /items}}
"""


@pytest.mark.parametrize("grant", ["implicit", "password"])
def test_removed_grants_are_refused_in_the_spec(grant: str) -> None:
    with pytest.raises(SpecError, match="OAuth 2.1 removed") as info:
        parse_spec(SPEC.format(grant=grant), source="crm.yaml")

    assert info.value.path.startswith("auth")


def test_authorization_code_needs_its_endpoint_in_the_spec() -> None:
    with pytest.raises(SpecError, match="authorization_url"):
        parse_spec(SPEC.format(grant="authorization_code"))


def test_no_secret_reaches_the_logs(
    oidc_provider: OIDCProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cc = _client_credentials(oidc_provider, tmp_path, CC_BASIC, account="logs")
    _whoami(oidc_provider, cc)
    auth = _signed_in(oidc_provider, tmp_path)
    first = auth.token()
    _expire(auth)
    _whoami(oidc_provider, auth)

    values = [*TEST_SECRETS, *cc.secrets(), *auth.secrets(), *first.values()]
    leaked = [value for value in values if value in caplog.text]
    assert len(values) >= 8 and caplog.records and leaked == []
    assert repr(auth).count("oauth2") == 1 and "Bearer" not in repr(auth)


# ---------------------------------------------------------------- the sandbox


@pytest.fixture(scope="module")
def box() -> Any:
    from restconnect import sandbox

    with sandbox.start() as running:
        yield running


def _sandbox_auth(box: Any, tmp_path: Path, grant: str, **options: Any) -> OAuth2Auth:
    creds = box.credentials
    opts = OAuth2Options(grant=grant, token_url=creds["token_url"], **options)
    fields = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    if grant == "refresh_token":
        fields["refresh_token"] = box.new_refresh_token()
    return OAuth2Auth(opts, fields, _context(tmp_path))


def _sandbox_user(box: Any, auth: OAuth2Auth) -> dict[str, Any]:
    return (
        HttpClient(connector="demo", auth=[auth])
        .request("GET", f"{box.url}/code/user")
        .json()
    )


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_sandbox_client_credentials_with_expires_in_as_a_string(
    box: Any, tmp_path: Path, client_auth: str
) -> None:
    box.reset_stats()
    with box.configured(expires_in_as_string=True, token_ttl=900):
        auth = _sandbox_auth(
            box,
            tmp_path,
            "client_credentials",
            client_auth=client_auth,
            scopes=["code:read"],
        )
        user = _sandbox_user(box, auth)

    assert user["login"] == box.credentials["username"]
    assert 890 <= auth.token().expires_in() <= 900
    assert auth.token().scope == ("code:read",)
    assert box.stats["grants"] == {"client_credentials": 1}


def test_sandbox_refresh_grant_keeps_each_rotated_refresh_token(
    box: Any, tmp_path: Path
) -> None:
    box.reset_stats()
    auth = _sandbox_auth(box, tmp_path, "refresh_token")
    seed = auth.credential("refresh_token")
    _sandbox_user(box, auth)
    first = auth.token()
    _expire(auth)

    client = HttpClient(connector="demo", auth=[auth], pool_size=10)
    statuses = get_in_threads(client, f"{box.url}/code/user", 10)

    second = auth.token()
    assert statuses == [200] * 10
    assert box.stats["grants"] == {"refresh_token": 2}
    assert len({seed, first.refresh_token.reveal(), second.refresh_token.reveal()}) == 3
    stored = auth.context.token_store.load("demo", auth.store_identity())
    assert stored["refresh_token"] == second.refresh_token.reveal()


def test_a_connector_keeps_its_token_for_the_next_run(box: Any) -> None:
    from restconnect.connector import Connector

    spec = parse_spec(f"""
name: crm
base_url: {box.url}
auth:
  method: oauth2
  token_url: ${{CRM_AUTH_URL:-http://unset.invalid}}/oauth/token
  scopes: [code:read]
  env: {{client_id: CRM_CLIENT_ID, client_secret: CRM_CLIENT_SECRET}}
endpoints:
  user: {{path: /code/user}}
""")
    creds = box.credentials
    given = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    box.reset_stats()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRM_AUTH_URL", box.url)
        for _ in range(2):
            conn = Connector(spec, credentials=given, cache=False)
            assert conn.http.request("GET", f"{box.url}/code/user").status_code == 200
            conn.close()

    assert box.stats["grants"] == {"client_credentials": 1}


def test_a_used_refresh_token_credential_asks_for_a_new_one(
    box: Any, tmp_path: Path
) -> None:
    auth = _sandbox_auth(box, tmp_path, "refresh_token", store=False)
    seed = auth.credential("refresh_token")
    again = _sandbox_auth(box, tmp_path, "refresh_token", store=False)
    again._credentials["refresh_token"] = seed
    _sandbox_user(box, auth)  # redeems the seed; the sandbox rotates it

    with pytest.raises(TokenRefreshError, match="provide a new one"):
        _sandbox_user(box, again)
