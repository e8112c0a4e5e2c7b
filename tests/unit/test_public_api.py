"""The flat public API: what ``restconnect`` exposes, and what importing it costs."""

from __future__ import annotations

import json
import subprocess
import sys

import restconnect


def test_all_is_sorted_and_resolves():
    assert restconnect.__all__ == sorted(restconnect.__all__)
    for name in restconnect.__all__:
        assert getattr(restconnect, name) is not None, name


def test_import_is_cheap():
    code = ("import sys, json, restconnect; heavy = ['pandas', 'pyarrow', 'ipywidgets', "
            "'jwt', 'cryptography', 'oauthlib', 'requests_oauthlib', 'pydantic', 'yaml', "
            "'diskcache', 'keyring', 'tqdm']; "
            "print(json.dumps([m for m in heavy if m in sys.modules]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(run.stdout) == []


def test_lazy_names_are_all_public():
    assert set(restconnect._LAZY) <= set(restconnect.__all__)
    assert {"join", "sql", "connect", "Secret"} <= set(restconnect.__all__)
