"""The notebook side of restconnect: the credential form and OAuth sign-in.

``connect()`` calls :func:`offer_form` when credentials are missing. In a
notebook (with ipywidgets installed, and unless the run is marked
non-interactive) it shows the form and returns a placeholder handler, so
``connect()`` returns at once and the kernel stays free to receive the form's
values; anywhere else it re-raises ``CredentialsMissing`` with every way to
provide each field.

This package imports ipywidgets only when a form is really shown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from restconnect.auth.base import AuthMethod
from restconnect.credentials import (
    FieldRequest,
    field_requests,
    find_values,
    in_notebook,
    is_interactive,
)
from restconnect.exceptions import CredentialsMissing

if TYPE_CHECKING:
    from restconnect.connector import Connector

__all__ = [
    "PendingAuth",
    "form_available",
    "form_fields",
    "needs_sign_in",
    "offer_form",
    "offer_sign_in",
    "sign_in",
    "sign_in_handlers",
]

logger = logging.getLogger(__name__)


class PendingAuth(AuthMethod):
    """Stands in for the real handlers until the notebook form is submitted.

    Every request through it raises ``CredentialsMissing`` that says to fill
    in the form (or how else to provide the fields).
    """

    name = "pending"
    sends_credentials = False

    def __init__(self, missing: CredentialsMissing):
        super().__init__()
        self.missing = missing

    def __call__(self, request: Any) -> Any:
        ways = {
            field: ["fill in the form shown by connect() and click Connect", *rest]
            for field, rest in self.missing.missing.items()
        }
        raise CredentialsMissing(self.missing.connector, ways)

    def describe(self) -> dict[str, Any]:
        return {
            "method": "pending",
            "signed_in": False,
            "missing": sorted(self.missing.missing),
        }


def form_available(interactive: bool | None) -> bool:
    """Whether a form can be shown: a notebook, a person, ipywidgets installed."""
    if interactive is False or not in_notebook():
        return False
    if interactive is None and not is_interactive():
        return False
    try:
        import ipywidgets  # noqa: F401 - only checking that it is installed
    except ImportError:
        return False
    return True


def form_fields(connector: Connector, given: Mapping[str, Any]) -> list[FieldRequest]:
    """The fields of every auth entry that nothing in the chain provides."""
    fields: list[FieldRequest] = []
    for entry in connector.spec.auth_entries:
        requests = field_requests(entry)
        found = find_values(connector.name, requests, given)
        fields += [
            r
            for r in requests
            if found.get(r.field.name) is None
            and r.field.name not in {f.field.name for f in fields}
        ]
    return fields


def offer_form(
    connector: Connector,
    missing: CredentialsMissing,
    given: Mapping[str, Any],
    interactive: bool | None,
) -> list[AuthMethod]:
    """Show the credential form, or re-raise when nobody can fill it in."""
    if not form_available(interactive):
        raise missing
    from IPython.display import display

    from restconnect.jupyter.form import CredentialForm

    form = CredentialForm(connector, form_fields(connector, given))
    connector.form = form
    display(form)
    logger.debug("%s: showing the credential form", connector.name)
    return [PendingAuth(missing)]


def sign_in_handlers(connector: Connector) -> list[Any]:
    """The connector's handlers that sign in with a person (OAuth code or device)."""
    handlers = []
    for handler in connector.auth:
        options = getattr(handler, "options", None)
        if hasattr(handler, "begin_device") and (
            getattr(options, "authorization_url", None)
            or getattr(options, "device_authorization_url", None)
            or getattr(options, "issuer", None)
        ):
            handlers.append(handler)
    return handlers


def sign_in(connector: Connector, *, remote: bool | None = None) -> Any:
    """The OAuth sign-in panel of a connector (display it to sign in).

    Raises:
        ValueError: the connector has no OAuth method that signs in with a person.
    """
    from restconnect.jupyter.signin import SignInPanel

    handlers = sign_in_handlers(connector)
    if not handlers:
        raise ValueError(
            f"{connector.name}: no auth method here signs in through a "
            "browser or a device code"
        )
    return SignInPanel(connector, handlers[0], remote=remote)


def needs_sign_in(handler: Any) -> bool:
    """Whether a handler waits for a person: no current token and none stored."""
    if getattr(handler, "silent", True) or getattr(handler, "_token", None) is not None:
        return False
    try:
        return handler._read_store() is None
    except Exception as exc:  # noqa: BLE001 - an unreadable store means: sign in
        logger.debug("token store unreadable: %s", type(exc).__name__)
        return True


def offer_sign_in(connector: Connector, interactive: bool | None) -> Any:
    """Show the sign-in panel when an OAuth method still needs a person to sign in."""
    if not form_available(interactive):
        return None
    waiting = [h for h in sign_in_handlers(connector) if needs_sign_in(h)]
    if not waiting:
        return None
    from IPython.display import display

    from restconnect.jupyter.signin import SignInPanel

    panel = SignInPanel(connector, waiting[0])
    connector.form = panel
    display(panel)
    return panel
