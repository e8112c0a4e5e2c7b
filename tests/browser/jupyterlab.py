"""Start and stop a JupyterLab server for browser tests, and find Chromium.

JupyterLab runs as a child process in its own session on 127.0.0.1 with a
token made up by the test, private settings (widget-state saving on, news and
update checks off) and a private workspace, so nothing from a developer's own
JupyterLab leaks in. It is stopped by its process group id, never by name.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL = Path(__file__).resolve().parent / "install.sh"

# JupyterLab user settings written before the server starts.
SETTINGS = {
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {
        "saveState": True
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": True},
}


def missing_tools() -> list[str]:
    """What the browser test needs and this machine lacks."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    importlib.invalidate_caches()  # install.sh may have just added them
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    return missing


def try_install(timeout: float = 420.0) -> str:
    """Run install.sh with this interpreter; returns its output's last lines."""
    try:
        done = subprocess.run(
            ["bash", str(INSTALL), sys.executable],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{INSTALL} did not finish within {timeout:.0f} s"
    return "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class JupyterLab:
    """A JupyterLab server serving ``root`` on 127.0.0.1.

    Args:
        root: the folder the server shows.
        home: a private folder for settings, workspaces, runtime files and logs.
        env: extra environment variables for the server and its kernels.
    """

    def __init__(self, root: Path, home: Path, env: dict[str, str]):
        self.root = root
        self.home = home
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = home / "jupyterlab.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _write_settings(self) -> Path:
        settings = self.home / "settings"
        for relative, values in SETTINGS.items():
            path = settings / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return settings

    def _environment(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))
        }
        env.update(
            {
                "JUPYTERLAB_SETTINGS_DIR": str(self._write_settings()),
                "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
                "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
                "JUPYTER_CONFIG_DIR": str(self.home / "config"),
                "JUPYTER_DATA_DIR": str(self.home / "data"),
                "JUPYTER_PLATFORM_DIRS": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            }
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 40.0) -> JupyterLab:
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_remote_access=False",
            "--ServerApp.allow_root=True",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=self.root,
            env=self._environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{self.log_tail()}")
            try:
                answer = requests.get(
                    f"{self.url}/api/status",
                    timeout=2,
                    headers={"Authorization": f"token {self.token}"},
                )
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError(
            f"JupyterLab did not answer within {timeout} s:\n{self.log_tail()}"
        )

    def lab_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def api(self, path: str) -> Any:
        answer = requests.get(
            f"{self.url}/api/{path}",
            timeout=5,
            headers={"Authorization": f"token {self.token}"},
        )
        answer.raise_for_status()
        return answer.json()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(
                self.log_path.read_text(errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and its kernels: SIGTERM to the process group, then KILL."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        group = os.getpgid(process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            process.wait(5)
        _reap_group(group)
        self.process = None


def _reap_group(group: int) -> None:
    """Kill kernels left in the server's process group."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def copy_notebook(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    shutil.copyfile(source, target)
    return target
