"""The notebook credential form: widgets, secrets out of widget state, Connect.

Most tests drive the form objects in this process against the real sandbox;
the last one runs a real kernel with nbclient and talks to it the way a
browser does (a ``comm_msg`` update carrying the typed token), then checks
every message the kernel broadcast and the widget state nbclient saved.
"""

from __future__ import annotations

import json
import os
import queue
import time
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from restconnect import CredentialsMissing, connect
from restconnect.auth.base import Field
from restconnect.credentials import FieldRequest
from restconnect.jupyter.form import KEPT, CredentialForm, SecretInput
from restconnect.secret import Secret

ipywidgets = pytest.importorskip("ipywidgets")

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that keeps passwords in a dict (this test's OS keyring)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture()
def memory_keyring() -> Any:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture()
def pending(notebook_mode: list[Any], sandbox: Any) -> Any:
    conn = connect("sandbox", base_url=sandbox.url)
    yield conn
    conn.close()


def _sent(widget: Any) -> list[dict[str, Any]]:
    """Record every message the widget sends to frontends from now on."""
    messages: list[dict[str, Any]] = []
    original = widget.comm.send

    def send(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        messages.append(data)
        original(data=data, metadata=metadata, buffers=buffers)

    widget.comm.send = send
    return messages


# ---------------------------------------------------------------- building


def test_outside_a_notebook_connect_raises_and_names_every_way(sandbox: Any) -> None:
    with pytest.raises(CredentialsMissing) as caught:
        connect("sandbox", base_url=sandbox.url)
    text = str(caught.value)
    assert "RESTCONNECT_SANDBOX_TOKEN" in text and "token=..." in text
    assert "restconnect login sandbox" in text


def test_in_a_notebook_connect_shows_the_form_and_returns(
    pending: Any, notebook_mode: list[Any]
) -> None:
    assert notebook_mode == [pending.form]
    assert [r.field.name for r in pending.form.fields] == ["token"]
    with pytest.raises(CredentialsMissing, match="fill in the form"):
        pending.fetch("me")
    assert "waiting for credentials" in pending.explain()["status"]


def test_widgets_follow_the_field_declarations(pending: Any) -> None:
    fields = [
        FieldRequest(Field("account", help="the account name"), "demo"),
        FieldRequest(Field("secret", secret=True, help="the shared secret"), "demo"),
        FieldRequest(Field("region", choices=("eu", "us"), default="us"), "demo"),
        FieldRequest(Field("note", required=False), "demo"),
    ]
    form = CredentialForm(pending, fields)
    assert type(form.inputs["account"]) is ipywidgets.Text
    assert isinstance(form.inputs["secret"], ipywidgets.Password)
    assert form.inputs["secret"].continuous_update is False
    assert isinstance(form.inputs["region"], ipywidgets.Dropdown)
    assert form.inputs["region"].options == ("eu", "us")
    assert form.inputs["region"].value == "us"
    assert form.inputs["note"].description == "note (optional)"
    texts = [w.value for w in form.widget.children if isinstance(w, ipywidgets.HTML)]
    assert any("the shared secret" in t for t in texts)
    assert form.remember.description == "Remember on this computer"
    assert form.button.description == "Connect"


# ---------------------------------------------------------------- secrets


def test_a_typed_secret_leaves_the_widget_model_at_once(
    pending: Any, sandbox: Any
) -> None:
    token = sandbox.credentials["token"]
    box = pending.form.inputs["token"]
    sent = _sent(box)
    box.set_state({"value": token})  # what ipywidgets does with a frontend update
    assert box.value == ""
    assert box.get_state()["value"] == ""
    assert box.placeholder == KEPT
    kept = pending.form.values()["token"]
    assert isinstance(kept, Secret) and kept.reveal() == token
    assert token not in json.dumps(sent)
    assert any(m.get("state", {}).get("value") == "" for m in sent)
    assert token not in repr(pending.form) + repr(box) + str(pending.explain())


def test_the_secret_box_is_never_echoed_to_other_frontends() -> None:
    assert SecretInput.class_traits()["value"].metadata["echo_update"] is False
    assert SecretInput().get_state()["_model_name"] == "PasswordModel"


# ---------------------------------------------------------------- connecting


def test_connect_shows_the_error_inline_then_who_is_signed_in(
    pending: Any, sandbox: Any
) -> None:
    form = pending.form
    form.inputs["token"].set_state({"value": "sbx_tok_not-a-real-token"})
    assert form.submit() is False
    assert "Traceback" not in form.status.value and "401" in form.status.value
    with pytest.raises(CredentialsMissing):
        pending.fetch("me")

    form.inputs["token"].set_state({"value": sandbox.credentials["token"]})
    assert form.submit() is True
    login = sandbox.data.users.rows[0]["login"]
    assert f"Signed in as <b>{login}</b>" in form.status.value
    assert pending.fetch("me")["login"].tolist() == [login]
    assert pending.identity == login


def test_connect_names_the_fields_still_empty(pending: Any) -> None:
    assert pending.form.submit() is False
    assert "Fill in: token" in pending.form.status.value


def test_remember_keeps_the_token_in_the_keyring_until_logout(
    pending: Any, sandbox: Any, memory_keyring: MemoryKeyring
) -> None:
    from restconnect.login import logout

    token = sandbox.credentials["token"]
    pending.form.inputs["token"].set_state({"value": token})
    pending.form.remember.value = True
    assert pending.form.submit() is True
    assert memory_keyring.store == {("restconnect:sandbox", "token"): token}
    assert "Remembered on this computer" in pending.form.status.value

    again = connect("sandbox", base_url=sandbox.url)  # no form: the keyring has it
    assert again.form is None and again.check()["ok"]
    assert logout("sandbox")["removed"] == ["token"]
    assert memory_keyring.store == {}


def test_login_asks_for_missing_fields_and_stores_them(
    sandbox: Any, memory_keyring: MemoryKeyring
) -> None:
    from restconnect.login import login

    asked: list[str] = []

    def ask(request: FieldRequest) -> str:
        asked.append(request.field.name)
        return sandbox.credentials["token"]

    result = login("sandbox", ask=ask, sign_in=False)
    assert asked == ["token"] and result["stored"] == ["token"]
    assert connect("sandbox", base_url=sandbox.url).check()["identity"]


def test_the_logout_command(
    sandbox: Any, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    from restconnect.cli import main

    memory_keyring.set_password("restconnect:sandbox", "token", "x")
    assert main(["logout", "sandbox"]) == 0
    assert "removed token" in capsys.readouterr().out
    assert memory_keyring.store == {}


# ---------------------------------------------------------------- a real kernel


def _iopub_until(client: Any, comm_id: str, deadline: float) -> list[dict[str, Any]]:
    """Read iopub until the kernel resets the widget's value; every message read."""
    from nbclient.util import run_sync

    read = run_sync(client.kc.get_iopub_msg)
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = read(timeout=1)
        except queue.Empty:
            continue
        seen.append(msg)
        content = msg.get("content", {})
        state = content.get("data", {}).get("state", {})
        if content.get("comm_id") == comm_id and state.get("placeholder") == KEPT:
            return seen
    raise AssertionError("the kernel never cleared the secret box")


def test_a_real_kernel_clears_the_secret_and_nbclient_saves_none(
    sandbox: Any, tmp_path: Path
) -> None:
    token = sandbox.credentials["token"]
    notebook = new_notebook(
        cells=[
            new_code_cell('from restconnect import connect\nconn = connect("sandbox")'),
            new_code_cell('print(conn.form.inputs["token"].model_id)'),
            new_code_cell(
                'assert conn.form.inputs["token"].value == ""\n'
                "assert conn.form.submit(), conn.form.status.value\n"
                'print(conn.fetch("me").shape)'
            ),
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    env.update(
        {
            "RESTCONNECT_SANDBOX_URL": sandbox.url,
            "RESTCONNECT_NONINTERACTIVE": "",
            "RESTCONNECT_HOME": str(tmp_path / "home"),
        }
    )
    client = NotebookClient(
        notebook,
        timeout=30,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with client.setup_kernel(env=env):
        client.execute_cell(notebook.cells[0], 0)
        client.execute_cell(notebook.cells[1], 1)
        comm_id = notebook.cells[1].outputs[0]["text"].strip()
        update = client.kc.session.msg(
            "comm_msg",
            {
                "comm_id": comm_id,
                "data": {
                    "method": "update",
                    "state": {"value": token},
                    "buffer_paths": [],
                },
            },
        )
        client.kc.shell_channel.send(update)
        broadcast = _iopub_until(client, comm_id, time.monotonic() + 20)
        client.execute_cell(notebook.cells[2], 2)
        client.set_widgets_metadata()
    assert token not in json.dumps(broadcast, default=str)
    printed = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert "(1, " in printed
    saved = nbformat.writes(notebook)
    assert token not in saved
    state = notebook.metadata["widgets"][WIDGET_STATE]["state"]
    assert state[comm_id]["model_name"] == "PasswordModel"
    assert state[comm_id]["state"].get("value", "") == ""


def test_without_a_usable_keyring_login_says_so(
    sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyring.backends.null import Keyring as NullKeyring

    from restconnect.cli import main
    from restconnect.login import login

    previous = keyring.get_keyring()
    keyring.set_keyring(NullKeyring())
    try:
        with pytest.raises(RuntimeError, match="did not keep sandbox token"):
            login("sandbox", {"token": "x"}, ask=None, sign_in=False)
        assert main(["logout", "sandbox"]) == 0
        assert "removed nothing" in capsys.readouterr().out
    finally:
        keyring.set_keyring(previous)
