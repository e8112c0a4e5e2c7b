"""The token store and the token lifecycle shared by every token method."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from oidc_server import NATIVE, OIDCProvider

from restconnect.auth.base import AuthContext
from restconnect.auth.oauth2 import OAuth2Auth, OAuth2Options
from restconnect.auth.token_base import Token, TokenAuth
from restconnect.auth.tokens import TokenStore, default_token_store
from restconnect.exceptions import AuthError, CredentialsMissing, TokenRefreshError

REPO = Path(__file__).resolve().parents[2]
ACCESS = "at-7c1f0a9e55d24b3a8e6f"
REFRESH = "rt-2b8d4e6f0a1c3e5f7a9b"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- Token


def test_token_reads_expires_in_given_as_a_string() -> None:
    token = Token.from_response(
        {"access_token": ACCESS, "expires_in": "3600", "token_type": "bearer"},
        now=1000.0,
    )

    assert token.expires_at == 4600.0
    assert token.token_type == "bearer"


def test_token_reads_an_iso_expires_at() -> None:
    token = Token.from_response(
        {"access_token": ACCESS, "expires_at": "2030-01-01T00:00:00Z"}
    )

    assert token.expires_at == 1893456000.0


def test_token_keeps_the_old_refresh_token_when_none_is_rotated_in() -> None:
    old = Token(access_token="a-old", refresh_token=REFRESH, scope=("read",))

    new = Token.from_response({"access_token": ACCESS, "expires_in": 60}, previous=old)

    assert new.refresh_token.reveal() == REFRESH
    assert new.scope == ("read",)


def test_token_takes_a_rotated_refresh_token() -> None:
    old = Token(access_token="a-old", refresh_token=REFRESH)

    new = Token.from_response(
        {"access_token": ACCESS, "refresh_token": "rt-new-0001"}, previous=old
    )

    assert new.refresh_token.reveal() == "rt-new-0001"


def test_non_numeric_expires_in_is_a_clear_error() -> None:
    with pytest.raises(AuthError, match="expires_in"):
        Token.from_response({"access_token": ACCESS, "expires_in": "soon"})


def test_leeway_treats_a_token_close_to_expiry_as_expired() -> None:
    token = Token(access_token=ACCESS, obtained_at=0.0, expires_at=3600.0)

    assert not token.is_expired(leeway=60, now=3500.0)
    assert token.is_expired(leeway=60, now=3541.0)
    assert token.is_expired(leeway=0, now=3600.0)


def test_leeway_never_exceeds_half_a_short_lifetime() -> None:
    token = Token(access_token=ACCESS, obtained_at=0.0, expires_at=30.0)

    assert not token.is_expired(leeway=60, now=10.0)
    assert token.is_expired(leeway=60, now=16.0)


def test_token_repr_hides_every_value() -> None:
    token = Token(access_token=ACCESS, refresh_token=REFRESH, id_token="id-3f9a8b7c6d")

    text = repr(token) + str(token.to_dict().keys())

    assert ACCESS not in text and REFRESH not in text and "id-3f9a8b7c6d" not in text


def test_token_round_trips_through_a_dict() -> None:
    token = Token(
        access_token=ACCESS,
        refresh_token=REFRESH,
        scope=("a", "b"),
        expires_at=123.0,
        extra={"x": 1},
    )

    again = Token.from_dict(json.loads(json.dumps(token.to_dict())))

    assert again.access_token.reveal() == ACCESS
    assert again.refresh_token.reveal() == REFRESH
    assert (again.scope, again.expires_at, again.extra) == (("a", "b"), 123.0, {"x": 1})


# ---------------------------------------------------------------- TokenStore


def test_store_encrypts_at_rest_with_private_permissions(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "home", use_keyring=False)

    store.save("github", "client-1", {"access_token": ACCESS, "refresh_token": REFRESH})

    path = store.path_for("github", "client-1")
    data = path.read_bytes()
    assert ACCESS.encode() not in data and REFRESH.encode() not in data
    assert b"access_token" not in data
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert _mode(tmp_path / "home") == 0o700
    assert _mode(tmp_path / "home" / "token-store.key") == 0o600
    assert store.load("github", "client-1")["access_token"] == ACCESS


def test_store_keeps_identities_and_connectors_apart(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, use_keyring=False)
    store.save("a", "one", {"access_token": "token-a-one"})
    store.save("a", "two", {"access_token": "token-a-two"})
    store.save("b", "one", {"access_token": "token-b-one"})

    assert store.load("a", "one")["access_token"] == "token-a-one"
    assert store.load("a", "two")["access_token"] == "token-a-two"
    assert store.load("b", "one")["access_token"] == "token-b-one"
    assert store.delete_connector("a") == 2
    assert store.load("a", "one") is None and store.load("b", "one") is not None


def test_a_second_store_on_the_same_folder_reads_the_tokens(tmp_path: Path) -> None:
    TokenStore(tmp_path, use_keyring=False).save("c", "i", {"access_token": ACCESS})

    assert (
        TokenStore(tmp_path, use_keyring=False).load("c", "i")["access_token"] == ACCESS
    )


def test_a_file_from_another_key_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TokenStore(tmp_path, use_keyring=False)
    store.save("c", "i", {"access_token": ACCESS})
    (tmp_path / "token-store.key").unlink()

    assert TokenStore(tmp_path, use_keyring=False).load("c", "i") is None
    assert "cannot be decrypted" in caplog.text


def test_a_failed_write_leaves_the_previous_token_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TokenStore(tmp_path, use_keyring=False)
    store.save("c", "i", {"refresh_token": "rt-only-valid-one"})

    def crash(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.save("c", "i", {"refresh_token": "rt-never-written"})
    monkeypatch.undo()

    assert store.load("c", "i") == {"refresh_token": "rt-only-valid-one"}
    leftovers = [
        p.name
        for p in store.path_for("c", "i").parent.iterdir()
        if p.name.startswith(".tmp-")
    ]
    assert leftovers == []


def test_default_store_follows_restconnect_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTCONNECT_HOME", str(tmp_path / "x"))

    assert default_token_store().root == tmp_path / "x"


def test_a_keyring_that_forgets_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class Forgetful(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            pass

        def delete_password(self, service: str, username: str) -> None:
            pass

    previous = keyring.get_keyring()
    keyring.set_keyring(Forgetful())
    try:
        store = TokenStore(tmp_path)
        store.save("c", "i", {"access_token": ACCESS})
        assert TokenStore(tmp_path).load("c", "i")["access_token"] == ACCESS
    finally:
        keyring.set_keyring(previous)
    assert (tmp_path / "token-store.key").exists()


# ---------------------------------------------------------------- TokenAuth


class CountingAuth(TokenAuth):
    """A token method whose 'server' is a counter (pure unit tests)."""

    name = "counting"

    def __init__(
        self,
        *args: Any,
        lifetime: float = 3600,
        delay: float = 0.0,
        refresh_error: str | None = None,
        silent: bool = True,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.obtained = 0
        self.refreshed = 0
        self.lifetime = lifetime
        self.delay = delay
        self.refresh_error = refresh_error
        self.silent = silent
        self._count_lock = threading.Lock()

    def obtain_token(self) -> Token:
        if not self.silent:
            raise self.sign_in_needed()
        with self._count_lock:
            self.obtained += 1
            number = self.obtained
        time.sleep(self.delay)
        return Token(
            access_token=f"access-{number:04d}",
            refresh_token="refresh-0001",
            expires_at=time.time() + self.lifetime,
        )

    def refresh(self, token: Token) -> Token:
        with self._count_lock:
            self.refreshed += 1
            number = self.refreshed
        if self.refresh_error:
            exc = AuthError(
                f"the token endpoint refused the request: {self.refresh_error}"
            )
            exc.oauth_error = self.refresh_error  # type: ignore[attr-defined]
            raise exc
        time.sleep(self.delay)
        return Token(
            access_token=f"refreshed-{number:04d}",
            refresh_token="refresh-0002",
            expires_at=time.time() + self.lifetime,
        )


def _context(tmp_path: Path, name: str = "unit") -> AuthContext:
    return AuthContext(
        connector=name, token_store=TokenStore(tmp_path, use_keyring=False)
    )


def _header(auth: TokenAuth) -> str:
    request = requests.Request("GET", "http://127.0.0.1/x").prepare()
    return auth(request).headers["Authorization"]


def test_many_threads_with_no_token_cause_one_fetch(tmp_path: Path) -> None:
    auth = CountingAuth(context=_context(tmp_path), delay=0.2)
    results: list[str] = []

    threads = [
        threading.Thread(target=lambda: results.append(_header(auth)))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert auth.obtained == 1
    assert results == ["Bearer access-0001"] * 12


def test_an_expiring_token_is_refreshed_once_before_use(tmp_path: Path) -> None:
    auth = CountingAuth(context=_context(tmp_path), lifetime=3600, delay=0.1)
    _header(auth)
    auth._token.obtained_at = time.time() - 3570
    auth._token.expires_at = time.time() + 30  # inside the 60 s leeway

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_header(auth))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert auth.refreshed == 1
    assert set(results) == {"Bearer refreshed-0001"}


def test_a_new_token_is_stored_before_it_is_used(tmp_path: Path) -> None:
    context = _context(tmp_path)
    seen: list[str | None] = []

    def on_token(token: Token) -> None:
        stored = context.token_store.load("unit", auth.store_identity())
        seen.append(stored["access_token"] if stored else None)

    auth = CountingAuth(context=context, on_token=on_token)
    header = _header(auth)

    assert seen == ["access-0001"] and header == "Bearer access-0001"


def test_an_unwritable_store_keeps_the_new_token_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    context = _context(tmp_path)
    auth = CountingAuth(context=context)

    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(context.token_store, "save", full)

    assert _header(auth) == "Bearer access-0001"
    assert _header(auth) == "Bearer access-0001"
    assert auth.obtained == 1
    assert "No space left on device" in caplog.text


def test_a_stored_token_is_reused_by_a_new_handler(tmp_path: Path) -> None:
    first = CountingAuth(context=_context(tmp_path))
    _header(first)

    second = CountingAuth(context=_context(tmp_path))

    assert _header(second) == "Bearer access-0001"
    assert second.obtained == 0


def test_a_401_renews_once_and_concurrent_401s_reuse_the_renewal(
    tmp_path: Path,
) -> None:
    auth = CountingAuth(context=_context(tmp_path))
    request = auth(requests.Request("GET", "http://127.0.0.1/x").prepare())
    response = requests.Response()
    response.status_code = 401
    response.request = request

    assert auth.handle_401(response) is True
    assert auth.handle_401(response) is True

    assert auth.refreshed == 1
    assert _header(auth) == "Bearer refreshed-0001"


def test_invalid_grant_clears_the_store_and_asks_for_a_new_sign_in(
    tmp_path: Path,
) -> None:
    context = _context(tmp_path, "crm")
    auth = CountingAuth(context=context, refresh_error="invalid_grant", silent=True)
    _header(auth)
    auth.silent = False
    auth._token.expires_at = time.time() - 1

    with pytest.raises(TokenRefreshError, match="restconnect login crm"):
        _header(auth)

    assert context.token_store.load("crm", auth.store_identity()) is None


def test_a_silent_method_fetches_anew_after_invalid_grant(tmp_path: Path) -> None:
    auth = CountingAuth(context=_context(tmp_path), refresh_error="invalid_grant")
    _header(auth)
    auth._token.expires_at = time.time() - 1

    assert _header(auth) == "Bearer access-0002"


def test_an_interactive_method_without_a_token_names_the_login_command(
    tmp_path: Path,
) -> None:
    auth = CountingAuth(context=_context(tmp_path, "crm"), silent=False)

    with pytest.raises(CredentialsMissing, match="restconnect login crm"):
        _header(auth)


def test_secrets_and_describe(tmp_path: Path) -> None:
    auth = CountingAuth(context=_context(tmp_path))
    _header(auth)

    facts = auth.describe()

    assert "access-0001" in auth.secrets() and "refresh-0001" in auth.secrets()
    assert "access-0001" not in json.dumps(facts)
    assert facts["signed_in"] is True and 3590 <= facts["expires_in"] <= 3600


def test_identity_key_survives_a_refresh(tmp_path: Path) -> None:
    auth = CountingAuth(context=_context(tmp_path))
    _header(auth)
    before = auth.identity_key()
    auth._token.expires_at = time.time() - 1
    _header(auth)

    assert auth.identity_key() == before


def test_logout_removes_the_stored_token(tmp_path: Path) -> None:
    context = _context(tmp_path)
    auth = CountingAuth(context=context)
    _header(auth)

    assert auth.logout() is True
    assert context.token_store.load("unit", auth.store_identity()) is None


# ---------------------------------------------------------------- two processes


_CHILD = """
import hashlib, os, sys, time
sys.path.insert(0, {repo!r})
from restconnect.auth.base import AuthContext
from restconnect.auth.oauth2 import OAuth2Auth, OAuth2Options
from restconnect.auth.tokens import TokenStore
options = OAuth2Options(grant="authorization_code", token_url={token_url!r},
                        authorization_url={auth_url!r},
                        scopes=["openid", "offline_access"])
store = TokenStore({root!r}, use_keyring=False)
context = AuthContext(connector="shared", token_store=store)
auth = OAuth2Auth(options, {{"client_id": {client!r}}}, context)
deadline = time.time() + 20
while not os.path.exists({go!r}) and time.time() < deadline:
    time.sleep(0.01)
token = auth.token()
print(hashlib.sha256(token.access_token.reveal().encode()).hexdigest())
"""


@pytest.mark.peer
def test_two_processes_sharing_a_store_refresh_once(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    root = tmp_path / "shared-store"
    options = OAuth2Options(
        grant="authorization_code",
        token_url=f"{oidc_provider.issuer}/token",
        authorization_url=f"{oidc_provider.issuer}/auth",
        scopes=["openid", "offline_access"],
    )
    store = TokenStore(root, use_keyring=False)
    auth = OAuth2Auth(
        options,
        {"client_id": NATIVE},
        AuthContext(connector="shared", token_store=store),
    )
    request = auth.begin_authorization()
    first = auth.complete_authorization(
        oidc_provider.sign_in(request.url, request.redirect_uri)
    )
    stale = first.to_dict() | {"expires_at": time.time() - 10}
    store.save("shared", auth.store_identity(), stale)
    before = len(oidc_provider.token_calls("refresh_token"))

    go = tmp_path / "go"
    script = _CHILD.format(
        repo=str(REPO),
        token_url=options.token_url,
        auth_url=options.authorization_url,
        root=str(root),
        client=NATIVE,
        go=str(go),
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [child.communicate(timeout=30) for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    digests = {out.strip() for out, _ in outputs}
    assert len(digests) == 1
    assert len(oidc_provider.token_calls("refresh_token")) - before == 1
    renewed = store.load("shared", auth.store_identity())
    assert hashlib.sha256(renewed["access_token"].encode()).hexdigest() in digests
    assert renewed["refresh_token"] != first.refresh_token.reveal()
