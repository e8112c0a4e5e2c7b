"""The wheel ships the bundled specs, so a non-editable install finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_connectors_and_sandbox(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("restconnect-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {p.name for p in (REPO / "connectors").glob("*.yaml")}
    assert bundled, "no bundled specs in connectors/"
    for name in bundled:
        assert f"restconnect/connectors/{name}" in names, name
    assert "restconnect/sandbox/__init__.py" in names
    assert not any(name.startswith("tests/") for name in names)
