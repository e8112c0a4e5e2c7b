"""Start the real ``oidc-provider`` (npm) on 127.0.0.1 and drive its pages over HTTP.

The provider runs ``tests/servers/oidc_provider/server.mjs`` with a JSON config
written by the fixture; ``install.sh`` in that folder installs it.
"""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

SERVER_DIR = Path(__file__).resolve().parents[1] / "servers" / "oidc_provider"
RESOURCE = "urn:restconnect:test-api"
CC_BASIC = ("cc-basic", "cc-basic-secret-8f3a1d77c2e94b05")
CC_POST = ("cc-post", "cc-post-secret-41be0c9ad7725e13")
NATIVE = "native-app"
DEVICE_CONFIDENTIAL = ("device-conf", "device-conf-secret-0d5b3e8c1f4a")
TEST_SECRETS = (CC_BASIC[1], CC_POST[1], DEVICE_CONFIDENTIAL[1])
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clients() -> list[dict[str, Any]]:
    confidential = {
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
    }
    return [
        {
            "client_id": CC_BASIC[0],
            "client_secret": CC_BASIC[1],
            "token_endpoint_auth_method": "client_secret_basic",
            **confidential,
        },
        {
            "client_id": CC_POST[0],
            "client_secret": CC_POST[1],
            "token_endpoint_auth_method": "client_secret_post",
            **confidential,
        },
        {
            "client_id": NATIVE,
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "response_types": ["code"],
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
        },
        {
            "client_id": DEVICE_CONFIDENTIAL[0],
            "client_secret": DEVICE_CONFIDENTIAL[1],
            "token_endpoint_auth_method": "client_secret_basic",
            "response_types": [],
            "redirect_uris": [],
            "grant_types": [
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
        },
    ]


class OIDCProvider:
    """One running provider process, stopped by its PID."""

    def __init__(self, workdir: Path, *, access_ttl: int = 60, device_ttl: int = 60):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config = {
            "port": self.port,
            "resource": RESOURCE,
            "accessTokenTTL": access_ttl,
            "deviceCodeTTL": device_ttl,
            "clients": _clients(),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OIDCProvider:
        config = self.workdir / "oidc-config.json"
        config.write_text(json.dumps(self.config))
        self._log = open(self.workdir / "oidc-provider.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["node", str(SERVER_DIR / "server.mjs"), str(config)],
            cwd=SERVER_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: see {self._log.name}")
            try:
                requests.get(
                    f"{self.issuer}/.well-known/openid-configuration", timeout=1
                )
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"oidc-provider did not start within {READY_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    # ------------------------------------------------------------ inspection

    def token_calls(self, grant_type: str | None = None) -> list[dict[str, Any]]:
        calls = requests.get(f"{self.issuer}/test/stats", timeout=5).json()[
            "token_calls"
        ]
        return [c for c in calls if grant_type is None or c["grant_type"] == grant_type]

    @property
    def api_url(self) -> str:
        return f"{self.issuer}/api/whoami"

    # ------------------------------------------------------------ a person's browser

    def sign_in(
        self,
        authorization_url: str,
        redirect_prefix: str,
        *,
        login: str = "alice",
        deny: bool = False,
    ) -> str:
        """Follow the provider's pages like a browser; the final callback URL."""
        browser = requests.Session()
        url = authorization_url
        response = browser.get(url, allow_redirects=False, timeout=10)
        for _ in range(20):
            location = response.headers.get("Location")
            if location:
                url = urljoin(url, location)
                if url.startswith(redirect_prefix):
                    return url
                response = browser.get(url, allow_redirects=False, timeout=10)
                continue
            response = self._submit_page(browser, url, response.text, login, deny)
        raise AssertionError("the sign-in did not reach the redirect URI")

    def approve_device(
        self, user_code: str, *, login: str = "alice", abort: bool = False
    ) -> str:
        """Enter a device user code and approve (or abort); the final page text."""
        browser = requests.Session()
        url = f"{self.issuer}/device"
        response = browser.get(url, timeout=10)
        form = parse_form(response.text)
        form.fields["user_code"] = user_code
        response = browser.post(urljoin(url, form.action), data=form.fields, timeout=10)
        confirm = parse_form(response.text)
        if abort:
            confirm.fields["abort"] = "yes"
            confirm.fields.pop("confirm", None)
        response = browser.post(
            urljoin(url, confirm.action),
            data=confirm.fields,
            allow_redirects=False,
            timeout=10,
        )
        if abort:
            return response.text
        for _ in range(20):
            location = response.headers.get("Location")
            if location:
                url = urljoin(url, location)
                response = browser.get(url, allow_redirects=False, timeout=10)
                continue
            if "<form" not in response.text:
                return response.text
            response = self._submit_page(browser, url, response.text, login, False)
        raise AssertionError("the device approval did not finish")

    @staticmethod
    def _submit_page(
        browser: requests.Session, url: str, page: str, login: str, deny: bool
    ) -> requests.Response:
        form = parse_form(page)
        if deny:
            abort = urljoin(url, form.action).rstrip("/") + "/abort"
            return browser.get(abort, allow_redirects=False, timeout=10)
        if form.fields.get("prompt") == "login":
            form.fields.update(login=login, password="any-password")
        return browser.post(
            urljoin(url, form.action),
            data=form.fields,
            allow_redirects=False,
            timeout=10,
        )


class Form:
    def __init__(self) -> None:
        self.action = ""
        self.fields: dict[str, str] = {}


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = Form()
            self.form.action = values.get("action", "")
        elif tag == "input" and self.form is not None and values.get("name"):
            if values.get("type") == "hidden" or "value" in values:
                self.form.fields[values["name"]] = values.get("value", "")


def parse_form(page: str) -> Form:
    """The first form of an HTML page: its action and its pre-filled inputs."""
    parser = _FormParser()
    parser.feed(page)
    if parser.form is None:
        raise AssertionError(f"no form on the page: {page[:300]!r}")
    return parser.form


def provider_available() -> str | None:
    """None when the provider can run here, else the reason it cannot."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"oidc-provider is not installed: run {SERVER_DIR / 'install.sh'}"
    return None


@contextmanager
def running_provider(workdir: Path, **kwargs: Any) -> Iterator[OIDCProvider]:
    reason = provider_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    provider = OIDCProvider(workdir, **kwargs).start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider
