"""Fixtures of the sandbox's own tests: a private server and signed-in sessions.

These tests talk plain ``requests`` to the server, so a bug in restconnect's
client cannot hide a bug in the sandbox (or the other way round).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from restconnect import sandbox as sandbox_module


@pytest.fixture(scope="session")
def box() -> Iterator[sandbox_module.Sandbox]:
    """A sandbox for this folder only, so changed settings touch no other test."""
    server = sandbox_module.start()
    yield server
    server.stop()


@pytest.fixture()
def fresh(box: sandbox_module.Sandbox) -> sandbox_module.Sandbox:
    """The sandbox with counts, quotas, failure counters and records reset."""
    box.reset_stats(data=True)
    return box


@pytest.fixture()
def bearer(fresh: sandbox_module.Sandbox) -> Iterator[requests.Session]:
    """A session that sends the demo bearer token."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {fresh.credentials['token']}"
        yield session


@pytest.fixture()
def keyed(fresh: sandbox_module.Sandbox) -> Iterator[requests.Session]:
    """A session that sends the main demo API key."""
    with requests.Session() as session:
        session.headers["X-API-Key"] = fresh.credentials["api_key"]
        yield session
