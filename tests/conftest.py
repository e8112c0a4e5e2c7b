"""Fixtures shared by the whole suite.

Every test runs with a private restconnect home (tokens, cache, state), no OS
keyring and no interactive prompts, so a developer's own credentials and
caches never leak into a test and a test never asks for input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("restconnect-home")
    monkeypatch.setenv("RESTCONNECT_HOME", str(home))
    monkeypatch.setenv("RESTCONNECT_NONINTERACTIVE", "1")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.delenv("RESTCONNECT_PATH", raising=False)
    for name in list(os.environ):
        if name.startswith("RESTCONNECT_") and name not in (
                "RESTCONNECT_HOME", "RESTCONNECT_NONINTERACTIVE"):
            monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared fixtures folder beside the repository, or a skip."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the recorded fixtures and vectors live "
                    "beside the repository, not in it")
    return SHARED


@pytest.fixture(scope="session")
def sandbox():
    """The embedded sandbox API, one per test session."""
    from restconnect import sandbox as sandbox_module

    server = sandbox_module.start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_sandbox():
    """A sandbox of its own, for tests that count requests or change data."""
    from restconnect import sandbox as sandbox_module

    server = sandbox_module.start()
    yield server
    server.stop()


@pytest.fixture()
def notebook_mode(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Pretend to run in a kernel with a person, recording what is displayed.

    ``connect()`` then shows its credential form or sign-in panel.
    """
    import restconnect.jupyter as rj

    shown: list[Any] = []
    monkeypatch.delenv("RESTCONNECT_NONINTERACTIVE", raising=False)
    monkeypatch.setattr(rj, "in_notebook", lambda: True)
    monkeypatch.setattr(rj, "is_interactive", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    return shown
