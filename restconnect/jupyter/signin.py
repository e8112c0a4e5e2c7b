"""OAuth sign-in buttons for notebooks.

Three ways in, built on :class:`~restconnect.auth.oauth2.OAuth2Auth`:

* **browser**: authorization code + PKCE with a loopback redirect to a free
  port on 127.0.0.1; works when the kernel runs on the analyst's computer.
* **device**: the device flow (RFC 8628) shows a code and a link, polls in the
  background and updates the status line.
* **paste**: authorization code + PKCE where no redirect can reach the kernel
  (JupyterHub, a cloud notebook): open the link, then paste the address the
  browser landed on.

On a remote kernel the device flow is offered first and paste-back second; the
loopback button is not offered there because the redirect would land on the
analyst's computer, not the kernel's.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from restconnect.exceptions import RestConnectError
from restconnect.jupyter.form import KEPT, SecretInput
from restconnect.redact import redact_text, register_secret
from restconnect.secret import Secret

__all__ = ["SignInPanel", "is_remote_kernel", "sign_in_modes"]

logger = logging.getLogger(__name__)

# Variables set by hosted notebook services whose kernels are not on the
# analyst's computer.
_REMOTE_MARKERS = (
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_SERVICE_PREFIX",
    "BINDER_SERVICE_HOST",
    "COLAB_RELEASE_TAG",
    "KAGGLE_KERNEL_RUN_TYPE",
    "SM_CURRENT_HOST",
    "DATABRICKS_RUNTIME_VERSION",
    "CODESPACES",
)
_LABELS = {
    "browser": "Sign in with the browser",
    "device": "Sign in with a code",
    "paste": "Sign in and paste the address",
}


def is_remote_kernel() -> bool:
    """Whether the kernel likely runs away from the analyst's browser.

    ``RESTCONNECT_REMOTE_KERNEL=1`` (or ``0``) overrides the guess, which
    looks for the variables JupyterHub, Binder, Colab and similar set.
    """
    forced = os.environ.get("RESTCONNECT_REMOTE_KERNEL")
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() not in ("0", "false", "no")
    if "google.colab" in sys.modules:
        return True
    return any(os.environ.get(name) for name in _REMOTE_MARKERS)


def sign_in_modes(handler: Any, remote: bool | None = None) -> list[str]:
    """The sign-in ways a handler supports here, best first."""
    options = handler.options
    remote = is_remote_kernel() if remote is None else remote
    device = bool(getattr(options, "device_authorization_url", None))
    code = bool(getattr(options, "authorization_url", None))
    if remote:
        return [m for m, ok in (("device", device), ("paste", code)) if ok]
    if options.grant == "device_code":
        return [
            m
            for m, ok in (("device", device), ("browser", code), ("paste", code))
            if ok
        ]
    return [
        m for m, ok in (("browser", code), ("device", device), ("paste", code)) if ok
    ]


class SignInPanel:
    """Sign-in buttons for one OAuth handler of a connector.

    Args:
        connector: the connector whose handler signs in.
        handler: an ``OAuth2Auth`` (or OIDC) handler of that connector.
        remote: force remote-kernel mode (None: guess).
        on_signed_in: called with the connector's identity after a sign-in.
        open_browser: also open the sign-in page with the kernel's browser
            (only the loopback way, which runs where the kernel runs).
    """

    def __init__(
        self,
        connector: Any,
        handler: Any,
        *,
        remote: bool | None = None,
        on_signed_in: Callable[[Any], None] | None = None,
        poll_sleep: Callable[[float], None] | None = None,
        open_browser: bool = True,
    ):
        self.connector = connector
        self.handler = handler
        self.remote = is_remote_kernel() if remote is None else remote
        self.modes = sign_in_modes(handler, self.remote)
        self.on_signed_in = on_signed_in
        self._poll_sleep = poll_sleep
        self.open_browser = open_browser
        self._pending: Any = None
        self._thread: threading.Thread | None = None
        self._callback: Secret | None = None
        self.buttons = {mode: self._button(mode) for mode in self.modes}
        self.instructions = widgets.HTML(value="")
        self.instructions.add_class("restconnect-signin-instructions")
        self.paste = SecretInput(
            description="Address after sign-in",
            placeholder="paste the full address here",
            continuous_update=False,
            style={"description_width": "initial"},
            layout=widgets.Layout(display="none", width="95%"),
        )
        self.paste.add_class("restconnect-paste")
        self.paste.observe(self._take_callback, names="value")
        self.finish = widgets.Button(
            description="Finish sign-in", layout=widgets.Layout(display="none")
        )
        self.finish.on_click(lambda _b: self.finish_paste())
        self.status = widgets.HTML(value="")
        self.status.add_class("restconnect-signin-status")
        self.widget = widgets.VBox(
            [
                widgets.HBox(list(self.buttons.values())),
                self.instructions,
                self.paste,
                self.finish,
                self.status,
            ]
        )
        self.widget.add_class("restconnect-signin")

    def _button(self, mode: str) -> widgets.Button:
        button = widgets.Button(
            description=_LABELS[mode],
            icon="sign-in",
            button_style="primary" if mode == self.modes[0] else "",
            layout=widgets.Layout(width="auto"),
        )
        button.add_class(f"restconnect-signin-{mode}")
        button.on_click(lambda _b, m=mode: self.start(m))
        return button

    # ------------------------------------------------------------ flows

    def start(self, mode: str) -> None:
        """Start one sign-in way (what the buttons call)."""
        self._say("", "")
        try:
            {
                "browser": self._start_browser,
                "device": self._start_device,
                "paste": self._start_paste,
            }[mode]()
        except RestConnectError as exc:
            self._fail(exc)

    def _start_browser(self) -> None:
        from restconnect.auth._loopback import LoopbackReceiver

        receiver = LoopbackReceiver().start()
        self._pending = self.handler.begin_authorization(receiver.redirect_uri)
        self._show_link(
            self._pending.url,
            "Open the sign-in page",
            "The page sends you back here by itself once you have signed in.",
        )
        if self.open_browser:
            import webbrowser

            webbrowser.open(self._pending.url)
        self._run(lambda: self._wait_loopback(receiver))

    def _wait_loopback(self, receiver: Any) -> None:
        try:
            timeout = float(getattr(self.handler.options, "login_timeout", 300))
            callback = receiver.wait(timeout)
        finally:
            receiver.stop()
        self.handler.complete_authorization(callback, self._pending)

    def _start_device(self) -> None:
        device = self.handler.begin_device()
        link = device.verification_uri_complete or device.verification_uri
        self._show_link(
            link,
            html.escape(device.verification_uri),
            f"and enter the code <b class='restconnect-user-code' "
            f"style='font-size:1.3em;letter-spacing:.1em'>"
            f"{html.escape(device.user_code)}</b>. Waiting for approval...",
        )
        sleep = self._poll_sleep
        self._run(
            lambda: self.handler.poll_device(
                device, **({"sleep": sleep} if sleep else {})
            )
        )

    def _start_paste(self) -> None:
        self._pending = self.handler.begin_authorization()
        self._show_link(
            self._pending.url,
            "Open the sign-in page",
            "After signing in, the browser lands on an address that may "
            "not load. Copy that whole address, paste it below, then "
            "click Finish.",
        )
        self.paste.layout.display = ""
        self.finish.layout.display = ""

    def _take_callback(self, change: dict[str, Any]) -> None:
        """The pasted address carries a one-time code: keep it out of widget state."""
        value = change.get("new") or ""
        if not value:
            return
        register_secret(value)
        self._callback = Secret(value)
        self.paste.value = ""
        self.paste.placeholder = KEPT

    def finish_paste(self) -> bool:
        """Finish a paste-back sign-in with the pasted address."""
        if self._callback is None:
            self._say("Paste the address first.", "color:#cf222e")
            return False
        callback, self._callback = self._callback, None
        try:
            self.handler.complete_authorization(callback.reveal(), self._pending)
        except RestConnectError as exc:
            self._fail(exc)
            return False
        self._done()
        return True

    # ------------------------------------------------------------ background work

    def _run(self, work: Callable[[], Any]) -> None:
        def target() -> None:
            try:
                work()
            except RestConnectError as exc:
                self._fail(exc)
                return
            except Exception as exc:  # noqa: BLE001 - shown inline, not raised
                logger.debug("sign-in failed: %s", type(exc).__name__)
                self._say(f"Sign-in failed: {type(exc).__name__}", "color:#cf222e")
                return
            self._done()

        self._thread = threading.Thread(
            target=target, daemon=True, name=f"restconnect-signin-{self.connector.name}"
        )
        self._thread.start()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait for a background sign-in to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------ reporting

    def _done(self) -> None:
        self.instructions.value = ""
        self.paste.layout.display = "none"
        self.finish.layout.display = "none"
        try:
            identity = self.connector.after_sign_in()
        except RestConnectError as exc:
            self._fail(exc)
            return
        who = f" as <b>{html.escape(str(identity))}</b>" if identity else ""
        self._say(f"Signed in{who}.", "color:#1a7f37", escape=False)
        if self.on_signed_in is not None:
            self.on_signed_in(identity)

    def _fail(self, exc: Exception) -> None:
        self._say(str(exc), "color:#cf222e")

    def _show_link(self, url: str, text: str, after: str) -> None:
        self.instructions.value = (
            f"<a href='{html.escape(url, quote=True)}' target='_blank' "
            f"rel='noopener' class='restconnect-signin-link'>{text}</a> {after}"
        )

    def _say(self, message: str, style: str, *, escape: bool = True) -> None:
        text = html.escape(redact_text(message)) if escape else message
        self.status.value = f"<div style='{style}'>{text}</div>" if message else ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
