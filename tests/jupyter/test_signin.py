"""The OAuth sign-in panel against a real authorization server (oidc-provider).

Each flow is driven as an analyst would: click the button, follow the link
the panel shows (the provider's pages are filled in by the provider helper),
and wait for the panel to say who is signed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from restconnect import connect
from restconnect.jupyter import sign_in
from restconnect.jupyter.signin import SignInPanel, is_remote_kernel, sign_in_modes
from restconnect.spec import parse_spec
from tests.auth.oidc_server import NATIVE, OIDCProvider, running_provider

pytest.importorskip("ipywidgets")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc-signin")) as running:
        yield running


def _spec(provider: OIDCProvider) -> Any:
    return parse_spec(
        f"""
name: signin_demo
base_url: {provider.issuer}
auth:
  method: oauth2
  grant: authorization_code
  token_url: {provider.issuer}/token
  authorization_url: {provider.issuer}/auth
  device_authorization_url: {provider.issuer}/device/auth
  scopes: [openid, offline_access]
check: {{path: /api/whoami, identity: sub}}
endpoints:
  whoami: {{path: /api/whoami, pagination: {{kind: none}}, records: "@"}}
""",
        source="signin_demo",
    )


@pytest.fixture()
def conn(provider: OIDCProvider) -> Iterator[Any]:
    spec = _spec(provider)
    with connect(spec, client_id=NATIVE, interactive=False, cache=False) as connector:
        yield connector


def _link(panel: SignInPanel) -> str:
    found = re.search(r"href='([^']+)'", panel.instructions.value)
    assert found, panel.instructions.value
    return found.group(1).replace("&amp;", "&")


def _redirect_uri(url: str) -> str:
    return parse_qs(urlsplit(url).query)["redirect_uri"][0]


def _signed_in(panel: SignInPanel, conn: Any) -> None:
    assert panel.wait(30), "the sign-in did not finish"
    assert "Signed in as" in panel.status.value, panel.status.value
    facts = conn.explain()["auth"][0]
    assert facts["signed_in"] is True and "openid" in facts["scopes"]
    assert conn.fetch("whoami")["sub"].tolist() == [conn.identity]


def test_remote_kernels_get_the_device_flow_first_and_no_loopback(conn: Any) -> None:
    handler = conn.auth[0]
    assert sign_in_modes(handler, remote=True) == ["device", "paste"]
    assert sign_in_modes(handler, remote=False) == ["browser", "device", "paste"]
    panel = sign_in(conn, remote=True)
    assert list(panel.buttons) == ["device", "paste"]
    assert panel.buttons["device"].button_style == "primary"


def test_remote_kernels_are_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "JUPYTERHUB_API_URL",
        "BINDER_SERVICE_HOST",
        "COLAB_RELEASE_TAG",
        "RESTCONNECT_REMOTE_KERNEL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert is_remote_kernel() is False
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    assert is_remote_kernel() is True
    monkeypatch.setenv("RESTCONNECT_REMOTE_KERNEL", "0")
    assert is_remote_kernel() is False


def test_device_flow_shows_a_code_and_signs_in_when_approved(
    conn: Any, provider: OIDCProvider
) -> None:
    panel = SignInPanel(conn, conn.auth[0], remote=True)
    panel.start("device")
    code = re.search(
        r"class='restconnect-user-code'[^>]*>([^<]+)<", panel.instructions.value
    )
    assert code, panel.instructions.value
    assert _link(panel).startswith(f"{provider.issuer}/device")
    provider.approve_device(code.group(1), login="carol")
    _signed_in(panel, conn)
    assert conn.identity == "carol"


def test_paste_back_sign_in_keeps_the_pasted_address_out_of_widget_state(
    conn: Any, provider: OIDCProvider
) -> None:
    panel = SignInPanel(conn, conn.auth[0], remote=True)
    panel.start("paste")
    url = _link(panel)
    callback = provider.sign_in(url, _redirect_uri(url), login="dave")
    assert panel.finish_paste() is False  # nothing pasted yet
    panel.paste.set_state({"value": callback})
    assert panel.paste.value == "" and panel.paste.get_state()["value"] == ""
    assert panel.finish_paste() is True
    _signed_in(panel, conn)
    assert conn.identity == "dave"


def test_browser_sign_in_catches_the_loopback_redirect(
    conn: Any, provider: OIDCProvider
) -> None:
    panel = SignInPanel(conn, conn.auth[0], remote=False, open_browser=False)
    panel.start("browser")
    url = _link(panel)
    redirect = _redirect_uri(url)
    assert re.match(r"http://127\.0\.0\.1:\d+/callback$", redirect)
    callback = provider.sign_in(url, redirect, login="erin")
    assert requests.get(callback, timeout=10).status_code == 200
    _signed_in(panel, conn)
    assert conn.identity == "erin"


def test_a_denied_device_sign_in_is_shown_inline(
    conn: Any, provider: OIDCProvider
) -> None:
    panel = SignInPanel(conn, conn.auth[0], remote=True)
    panel.start("device")
    code = re.search(
        r"class='restconnect-user-code'[^>]*>([^<]+)<", panel.instructions.value
    )
    provider.approve_device(code.group(1), abort=True)
    assert panel.wait(30)
    assert "denied" in panel.status.value and "Traceback" not in panel.status.value


def _approve_in(panel: SignInPanel, provider: OIDCProvider, login: str) -> None:
    panel.start("device")
    code = re.search(
        r"class='restconnect-user-code'[^>]*>([^<]+)<", panel.instructions.value
    )
    assert code, panel.status.value
    provider.approve_device(code.group(1), login=login)


def test_in_a_notebook_connect_offers_the_sign_in_by_itself(
    provider: OIDCProvider, notebook_mode: list[Any]
) -> None:
    with connect(_spec(provider), client_id=NATIVE, cache=False) as conn:
        assert len(notebook_mode) == 1 and isinstance(notebook_mode[0], SignInPanel)
        _approve_in(notebook_mode[0], provider, "frank")
        _signed_in(notebook_mode[0], conn)
        assert conn.identity == "frank"


def test_the_form_asks_for_the_client_id_then_shows_the_sign_in(
    provider: OIDCProvider, notebook_mode: list[Any]
) -> None:
    from restconnect.jupyter.form import CredentialForm

    with connect(_spec(provider), cache=False) as conn:
        form = notebook_mode[0]
        assert isinstance(form, CredentialForm) and "client_id" in form.inputs
        form.inputs["client_id"].value = NATIVE
        assert form.submit() is False
        assert "Now sign in" in form.status.value
        assert form.sign_in.widget in form.widget.children
        _approve_in(form.sign_in, provider, "grace")
        assert form.sign_in.wait(30)
        assert "Signed in as <b>grace</b>" in form.status.value
        assert conn.fetch("whoami")["sub"].tolist() == ["grace"]
