"""The custom auth method from docs/auth.md works as written."""

from __future__ import annotations

import re
from pathlib import Path

from restconnect import connect
from restconnect.auth import available_methods
from restconnect.spec import parse_spec
from tests.servers.scripted import Reply, ScriptedServer

DOC = (Path(__file__).resolve().parents[2] / "docs" / "auth.md").read_text()


def test_the_documented_custom_method_registers_and_signs():
    example = re.search(r"## Writing your own method.*?```python\n(.*?)```", DOC, re.S)
    namespace: dict = {}
    exec(compile(example.group(1), "docs/auth.md", "exec"), namespace)
    assert "team_key" in available_methods()

    server = ScriptedServer()
    try:
        server.queue("/items", Reply(body=[{"id": 1}]))
        spec = parse_spec(f"""
name: team
base_url: {server.url}
auth: {{method: team_key, header: X-Team}}
endpoints: {{items: {{path: /items}}}}
""")
        connect(spec, team_key="tk-123456").fetch("items")
        assert server.requests_to("/items")[0].headers["X-Team"] == "tk-123456"
    finally:
        server.stop()


def test_every_method_in_the_table_exists():
    table = DOC.split("## The methods", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.M)
    assert set(listed) == set(available_methods()) - {"team_key"}
