"""Every notebook in notebooks/ runs top to bottom with nbclient, offline.

Each runs in a fresh kernel, in a copy of the notebooks folder, against the
sandbox this test session started (its URL and demo credentials are in the
kernel's environment, as a scheduled run would have them). Any error fails
the test, and no sandbox secret may appear in the executed notebook.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.timeout(120)


def kernel_env(box: Any, home: Path) -> dict[str, str]:
    """The environment of a scheduled run: the sandbox's URL and credentials."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    env.update(
        {
            "RESTCONNECT_HOME": str(home),
            "RESTCONNECT_NONINTERACTIVE": "1",
            "RESTCONNECT_SANDBOX_URL": box.url,
            "RESTCONNECT_SANDBOX_TOKEN": box.credentials["token"],
            "RESTCONNECT_SANDBOX_API_KEY": box.credentials["api_key"],
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env


def test_there_are_notebooks() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", "github.ipynb", "auth_tour.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path: Path, sandbox: Any, tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    shutil.copytree(
        path.parent, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    notebook = nbformat.read(folder / path.name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        store_widget_state=True,
    )
    with client.setup_kernel(env=kernel_env(sandbox, tmp_path / "home")):
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        client.set_widgets_metadata()
    text = nbformat.writes(notebook)
    leaked = [value[:4] + "..." for value in sandbox.secret_values() if value in text]
    assert not leaked, f"{path.name} shows sandbox secrets: {leaked}"


def test_notebook_outputs_are_cleared() -> None:
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        dirty = [
            i
            for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
        ]
        assert not dirty, f"{path.name}: clear the outputs of cells {dirty}"
