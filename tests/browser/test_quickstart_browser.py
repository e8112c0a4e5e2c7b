"""The quickstart in a real JupyterLab, driven through headless Chromium.

With "save widget state" on, the test runs the quickstart up to its
``connect()`` cell, types the sandbox token into the credential form, saves
the notebook *before* clicking Connect, clicks Connect, runs the rest until
the DataFrame appears, saves again, and checks both times that the token is
in neither the notebook nor its checkpoint, while the saved widget state does
hold the form (so the check cannot pass because nothing was saved).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.jupyterlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JupyterLab,
    copy_notebook,
    missing_tools,
    try_install,
)

# The run itself takes about 35 s; the margin is for a first-time install in CI.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
OUTPUT = REPO / "test-output" / "browser"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
KEPT_PREFIX = "******** kept in kernel memory"
STEP = 30_000  # ms, the longest any single browser step may take


@pytest.fixture(scope="module")
def browser_tools() -> None:
    missing = missing_tools()
    if missing and os.environ.get("CI"):
        log = try_install()
        missing = missing_tools()
        if missing:
            pytest.skip(f"cannot install {', '.join(missing)}: {log}")
    if missing:
        pytest.skip(f"missing {', '.join(missing)}; run tests/browser/install.sh")


@pytest.fixture()
def lab(browser_tools: None, sandbox: Any, tmp_path: Path) -> Iterator[JupyterLab]:
    root = tmp_path / "notebooks"
    copy_notebook(QUICKSTART, root)
    env = {
        "RESTCONNECT_SANDBOX_URL": sandbox.url,
        "RESTCONNECT_HOME": str(tmp_path / "restconnect-home"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "RESTCONNECT_NONINTERACTIVE": "",
        "RESTCONNECT_SANDBOX_TOKEN": "",
    }
    server = JupyterLab(root, tmp_path / "lab", env)
    (tmp_path / "lab").mkdir()
    server.start()
    yield server
    server.stop()


def _saved(path: Path, after: float, timeout: float = 20.0) -> str:
    """The file's text once it was written after ``after`` (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime > after:
            text = path.read_text()
            try:
                json.loads(text)
                return text
            except ValueError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not saved within {timeout} s")


def _check_no_secret(root: Path, secret: str, after: float) -> dict[str, Any]:
    notebook = _saved(root / "quickstart.ipynb", after)
    checkpoint = _saved(
        root / ".ipynb_checkpoints" / "quickstart-checkpoint.ipynb", after
    )
    for name, text in (("notebook", notebook), ("checkpoint", checkpoint)):
        assert secret not in text, f"the token was written into the {name}"
    state = json.loads(notebook)["metadata"]["widgets"][WIDGET_STATE]["state"]
    passwords = [m for m in state.values() if m["model_name"] == "PasswordModel"]
    assert passwords, "no password widget in the saved widget state: saving is off?"
    assert all(m["state"].get("value", "") == "" for m in passwords)
    return state


def _run_cells(page: Any, first: int, count: int) -> None:
    """Select cell ``first`` and run ``count`` cells with Shift+Enter."""
    page.locator(".jp-Notebook .jp-Cell").nth(first).locator(".jp-InputPrompt").click()
    for _ in range(count):
        page.keyboard.press("Shift+Enter")


def _wait_idle(page: Any) -> None:
    """Wait until the kernel is connected and idle (the status bar says so)."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible()


def _save(page: Any) -> float:
    before = time.time() - 0.5
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+s")
    return before


def _cell_index(notebook: dict[str, Any], needle: str) -> int:
    return next(
        i
        for i, cell in enumerate(notebook["cells"])
        if needle in "".join(cell["source"])
    )


def test_quickstart_form_keeps_the_token_out_of_saved_notebooks(
    lab: JupyterLab, sandbox: Any
) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=STEP)
    secret = sandbox.credentials["token"]
    notebook = json.loads(QUICKSTART.read_text())
    connect_cell = _cell_index(notebook, 'conn = connect("sandbox")')
    last_cell = len(notebook["cells"]) - 1
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(lab.home / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        context.set_default_timeout(STEP)
        try:
            page = context.new_page()
            page.goto(lab.lab_url("quickstart.ipynb"))
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
            _wait_idle(page)

            _run_cells(page, 0, connect_cell + 1)
            field = page.locator(".restconnect-field-token input")
            expect(field).to_be_visible()
            field.fill(secret)
            field.press("Tab")
            expect(field).to_have_attribute(
                "placeholder", KEPT_PREFIX + "; type again to replace"
            )
            expect(field).to_have_value("")
            page.screenshot(path=str(OUTPUT / "form-filled.png"))

            _check_no_secret(lab.root, secret, _save(page))

            page.locator("button.restconnect-connect").click()
            expect(page.locator(".restconnect-status")).to_contain_text("Signed in as")
            page.locator(".restconnect-form").screenshot(
                path=str(OUTPUT / "signed-in.png")
            )
            _run_cells(page, connect_cell + 1, last_cell - connect_cell - 1)
            expect(
                page.locator(".jp-OutputArea-output table.dataframe").first
            ).to_be_visible()
            _wait_idle(page)
            page.locator(
                ".jp-OutputArea-output table.dataframe"
            ).first.scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / "result.png"))

            state = _check_no_secret(lab.root, secret, _save(page))
            assert any(m["model_name"] == "ButtonModel" for m in state.values())
        except Exception:
            page.screenshot(path=str(OUTPUT / "failure.png"))
            raise
        finally:
            context.close()
