"""The credential form ``connect()`` shows in a notebook when fields are missing.

The form is built from the auth methods' field declarations: a password box
for each secret field, a drop-down for fields with choices, a text box for
the rest, the help text under each. *Connect* hands the values to
:meth:`Connector.sign_in`, which runs the spec's ``check`` request, and shows
"Signed in as ..." or the error, inline and without a traceback.

Secrets never stay in widget state. A password box syncs only when it loses
focus (or on Enter); the moment its value reaches the kernel it is moved into
a :class:`~restconnect.secret.Secret` held in kernel memory and the box is
reset to empty, so any later save of the notebook (JupyterLab's "save widget
state", nbclient's recorded state, checkpoints) finds nothing. The value is
never echoed back to other frontends either.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from traitlets import Unicode

from restconnect.credentials import FieldRequest, remember_in_keyring
from restconnect.exceptions import CredentialsMissing, RestConnectError
from restconnect.redact import redact_text, register_secret
from restconnect.secret import MASK, Secret

if TYPE_CHECKING:
    from restconnect.connector import Connector

__all__ = ["CredentialForm", "SecretInput"]

logger = logging.getLogger(__name__)

KEPT = f"{MASK} kept in kernel memory; type again to replace"
_OK = "color:#1a7f37"
_ERROR = "color:#cf222e"


class SecretInput(widgets.Password):
    """A password box whose value is never echoed to other frontends.

    ipywidgets echoes every value a frontend sends back to all frontends; for
    a secret that would put it on the wire again (and into nbclient's
    recorded widget state), so the echo is switched off for ``value``.
    """

    value = Unicode("", help="the typed secret (emptied by the form on arrival)").tag(
        sync=True, echo_update=False
    )


class CredentialForm:
    """A form for a connector's missing credential fields.

    Args:
        connector: the connector to sign in.
        fields: the fields to ask for.
        sign_in: the panel for OAuth sign-in buttons, shown under the fields.

    Example:
        >>> form = CredentialForm(conn, requests)       # doctest: +SKIP
        >>> form                                         # doctest: +SKIP
    """

    def __init__(
        self, connector: Connector, fields: Sequence[FieldRequest], sign_in: Any = None
    ):
        self.connector = connector
        self.fields = list(fields)
        self._secrets: dict[str, Secret] = {}
        self.sign_in: Any = sign_in
        self.inputs: dict[str, widgets.Widget] = {
            r.field.name: self._input(r) for r in self.fields
        }
        self.remember = widgets.Checkbox(
            value=False, indent=False, description="Remember on this computer"
        )
        self.remember.add_class("restconnect-remember")
        self.button = widgets.Button(
            description="Connect",
            button_style="primary",
            icon="plug",
            tooltip="Run the credentials check",
        )
        self.button.add_class("restconnect-connect")
        self.button.on_click(lambda _button: self.submit())
        self.status = widgets.HTML(value="")
        self.status.add_class("restconnect-status")
        self.widget = widgets.VBox(self._rows(sign_in))
        self.widget.add_class("restconnect-form")

    # ------------------------------------------------------------ building

    def _input(self, request: FieldRequest) -> widgets.Widget:
        field = request.field
        label = field.name if field.required else f"{field.name} (optional)"
        style = {"description_width": "initial"}
        if field.secret:
            box: widgets.Widget = SecretInput(
                description=label,
                placeholder=field.help,
                continuous_update=False,
                style=style,
            )
            box.observe(
                lambda change, name=field.name: self._take_secret(name, change),
                names="value",
            )
        elif field.choices:
            box = widgets.Dropdown(
                description=label,
                options=list(field.choices),
                value=field.default or field.choices[0],
                style=style,
            )
        else:
            box = widgets.Text(
                description=label,
                placeholder=field.help,
                value=field.default or "",
                style=style,
            )
        box.tooltip = field.help or None
        box.add_class(f"restconnect-field-{field.name}")
        return box

    def _rows(self, sign_in: Any) -> list[widgets.Widget]:
        title = self.connector.spec.title or self.connector.name
        rows: list[widgets.Widget] = [
            widgets.HTML(
                f"<b>{html.escape(title)}</b>: credentials needed "
                f"(<code>{html.escape(self.connector.name)}</code>)"
            )
        ]
        for request in self.fields:
            rows.append(self.inputs[request.field.name])
            if request.field.help:
                rows.append(
                    widgets.HTML(
                        f"<small style='color:#57606a'>"
                        f"{html.escape(request.field.help)}</small>"
                    )
                )
        if sign_in is not None:
            rows.append(getattr(sign_in, "widget", sign_in))
        rows += [self.remember, self.button, self.status]
        return rows

    # ------------------------------------------------------------ secrets

    def _take_secret(self, name: str, change: Mapping[str, Any]) -> None:
        """Move a secret out of the synced widget model into kernel memory."""
        value = change.get("new") or ""
        if not value:
            return
        register_secret(value)
        self._secrets[name] = Secret(value)
        box = self.inputs[name]
        box.value = ""
        box.placeholder = KEPT
        logger.debug(
            "%s: secret field %s received and cleared from the widget",
            self.connector.name,
            name,
        )

    def values(self) -> dict[str, str | Secret]:
        """The values entered so far (secrets as ``Secret``)."""
        values: dict[str, str | Secret] = dict(self._secrets)
        for request in self.fields:
            name = request.field.name
            if not request.field.secret:
                text = str(self.inputs[name].value or "").strip()
                if text:
                    values[name] = text
        return values

    def missing(self) -> list[str]:
        """Required fields still empty."""
        values = self.values()
        return [
            r.field.name
            for r in self.fields
            if r.field.required and not values.get(r.field.name)
        ]

    # ------------------------------------------------------------ connecting

    def submit(self) -> bool:
        """Sign the connector in with the form's values; True on success."""
        missing = self.missing()
        if missing:
            self.show_error(f"Fill in: {', '.join(missing)}")
            return False
        self.button.disabled = True
        self.show(f"Checking the credentials of {self.connector.name}...", "")
        try:
            identity = self.connector.sign_in(**self.values())
        except CredentialsMissing as exc:
            if not self._offer_sign_in():
                self.show_error(str(exc))
            return False
        except RestConnectError as exc:
            self.show_error(str(exc))
            return False
        finally:
            self.button.disabled = False
        self.show_success(identity)
        self._remember()
        return True

    def _offer_sign_in(self) -> bool:
        """Show sign-in buttons when an OAuth method still needs a person."""
        from restconnect.jupyter import needs_sign_in, sign_in_handlers
        from restconnect.jupyter.signin import SignInPanel

        waiting = [h for h in sign_in_handlers(self.connector) if needs_sign_in(h)]
        if not waiting:
            return False
        self.sign_in = SignInPanel(
            self.connector, waiting[0], on_signed_in=self._signed_in_elsewhere
        )
        children = list(self.widget.children)
        self.widget.children = children[:-1] + [self.sign_in.widget, children[-1]]
        self.show("Now sign in with one of the buttons above.", "color:#57606a")
        return True

    def _signed_in_elsewhere(self, identity: Any) -> None:
        self.show_success(identity)
        self._remember()

    def _remember(self) -> None:
        if not self.remember.value:
            return
        try:
            stored = remember_in_keyring(self.connector.name, self.values())
        except (RuntimeError, ImportError) as exc:
            self.status.value += _line(f"Not remembered: {exc}", _ERROR)
            return
        self.status.value += _line(
            f"Remembered on this computer ({', '.join(stored)}); "
            f"<code>restconnect logout {html.escape(self.connector.name)}</code> "
            "forgets them.",
            "color:#57606a",
            escape=False,
        )

    def show_success(self, identity: Any) -> None:
        who = f" as <b>{html.escape(str(identity))}</b>" if identity else ""
        self.show(f"Signed in{who}. You can run the next cells.", _OK, escape=False)

    def show_error(self, message: str) -> None:
        self.show(redact_text(message), _ERROR)

    def show(self, message: str, style: str, *, escape: bool = True) -> None:
        self.status.value = _line(message, style, escape=escape)

    # ------------------------------------------------------------ display

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        names = ", ".join(r.field.name for r in self.fields)
        return f"<CredentialForm {self.connector.name!r} fields=[{names}]>"


def _line(message: str, style: str, *, escape: bool = True) -> str:
    text = html.escape(message) if escape else message
    text = text.replace("\n", "<br>")
    return f"<div style='{style}'>{text}</div>"
