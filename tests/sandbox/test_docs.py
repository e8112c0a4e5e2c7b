"""docs/sandbox.md keeps up with the server."""

from __future__ import annotations

from pathlib import Path

from restconnect import sandbox as sandbox_module
from restconnect.sandbox.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"


def test_every_route_is_documented():
    text = DOC.read_text(encoding="utf-8")
    box = sandbox_module.Sandbox()
    try:
        routes = [(route.method, route.pattern) for route in box._app.router.routes]
        keys = set(box.credentials)
    finally:
        box.stop()

    missing = [f"{method} {pattern}" for method, pattern in routes
               if f"`{method} {pattern}`" not in text and pattern != "/"]
    assert not missing, f"undocumented routes: {missing}"
    assert not [key for key in keys if f"`{key}`" not in text]


def test_every_setting_is_documented():
    text = DOC.read_text(encoding="utf-8")

    assert not [name for name in Settings().as_dict() if f"`{name}`" not in text]


def test_every_endpoint_of_the_sandbox_specs_is_documented():
    from restconnect.spec import load_spec

    text = DOC.read_text(encoding="utf-8")
    connectors = DOC.parents[1] / "connectors"
    for path in sorted(connectors.glob("sandbox*.yaml")):
        spec = load_spec(path)
        assert f"`{spec.name}`" in text
        missing = [name for name in spec.endpoints if f"`{name}`" not in text]
        assert not missing, f"{spec.name}: endpoints not in docs/sandbox.md: {missing}"
