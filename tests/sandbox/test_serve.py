"""``restconnect sandbox serve`` prints what another shell needs, and fetching works."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_prints_exports_that_make_fetch_work(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "restconnect.cli", "sandbox", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        exports = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line or line.startswith("Press Ctrl-C"):
                break
            if line.strip().startswith("export ") and "$(cat" not in line:
                name, _, value = line.strip()[len("export "):].partition("=")
                exports[name] = value
        assert exports.get("RESTCONNECT_SANDBOX_URL") == f"http://127.0.0.1:{port}"
        assert "RESTCONNECT_SANDBOX_TOKEN" in exports
        env = {**os.environ, **exports, "RESTCONNECT_HOME": str(tmp_path)}
        fetched = subprocess.run(
            [sys.executable, "-m", "restconnect.cli", "fetch", "sandbox", "labels"],
            capture_output=True, text=True, env=env, timeout=60)
        assert fetched.returncode == 0, fetched.stderr

        taken = subprocess.run(
            [sys.executable, "-m", "restconnect.cli", "sandbox", "serve", "--port",
             str(port)], capture_output=True, text=True, timeout=60)
        assert taken.returncode == 1
        assert "choose another port" in taken.stderr
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("sandbox serve did not stop on SIGTERM")
