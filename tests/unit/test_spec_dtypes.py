"""Declared dtypes are checked when a spec is loaded, not after the download."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from restconnect.exceptions import SpecError
from restconnect.spec import parse_spec

SPEC = """
name: demo
base_url: https://api.example.com
endpoints:
  repos:
    path: /repos
{declared}
"""


def spec_with(declared: str) -> str:
    return SPEC.format(declared="\n".join(f"    {line}" for line in declared.splitlines()))


def test_an_unknown_dtype_names_file_key_and_the_likely_dtype():
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with("dtypes: {stargazers_count: Int65}"), source="x.yaml")
    error = info.value
    assert error.source == "x.yaml"
    assert error.path == "endpoints.repos.dtypes.stargazers_count"
    assert "'Int65' is not a pandas dtype" in str(error)
    assert "did you mean 'Int64'?" in str(error)


@pytest.mark.parametrize("dtype", [
    "Int64", "int32", "float64", "string", "category", "boolean", "object",
    "datetime64[ns, UTC]", "datetime", "timestamp",
])
def test_dtypes_pandas_knows_are_accepted(dtype):
    spec = parse_spec(spec_with(f"dtypes: {{count: '{dtype}'}}"), source="x.yaml")
    assert spec.endpoints["repos"].dtypes == {"count": dtype}


def test_every_wrong_dtype_is_reported_with_its_own_key_path():
    text = spec_with("dtypes: {id: Int64, size: flaot64}")
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="x.yaml")
    assert info.value.path == "endpoints.repos.dtypes.size"
    assert "did you mean 'float64'?" in str(info.value)


def test_cli_validate_refuses_an_unknown_dtype(tmp_path: Path):
    path = tmp_path / "trial.yaml"
    path.write_text(spec_with("dtypes: {stargazers_count: Int65}"))
    command = [sys.executable, "-m", "restconnect.cli", "validate", str(path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 2
    assert "trial.yaml: endpoints.repos.dtypes.stargazers_count" in run.stderr
    assert "Int65" in run.stderr


def _modules_after_parsing(text: str) -> list[str]:
    code = ("import json, sys\n"
            "from restconnect.spec import parse_spec\n"
            f"parse_spec({text!r}, source='x.yaml')\n"
            "print(json.dumps([m for m in ('pandas', 'pyarrow', 'numpy') "
            "if m in sys.modules]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(run.stdout)


def test_a_spec_without_dtypes_loads_without_pandas():
    assert _modules_after_parsing(spec_with("datetimes: [created_at]")) == []

