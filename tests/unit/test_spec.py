"""Spec validation: every broken input names the file, the key path and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from restconnect.catalog import bundled_dir
from restconnect.exceptions import SpecError
from restconnect.spec import load_spec, parse_spec, spec_json_schema

MINIMAL = """
name: demo
base_url: https://api.example.com
endpoints:
  items:
    path: /items
"""


def write(tmp_path: Path, text: str, name: str = "api.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_spec_gets_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.timeout == 30
    assert spec.pagination.kind == "auto"
    assert spec.retry.statuses == [429, 502, 503, 504]
    assert spec.endpoints["items"].method == "GET"


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "name: demo\nendpoints: [unclosed\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert "not valid YAML" in message
    assert "line" in message


def test_top_level_must_be_mapping():
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_spec("- just\n- a list\n")


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, MINIMAL.replace("    path: /items", "    path: /items\n"
                                           "    recrods: data"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    error = info.value
    assert error.source == str(path)
    assert error.path == "endpoints.items.recrods"
    assert "did you mean 'records'" in str(error)


def test_unknown_pagination_kind_lists_the_kinds():
    text = MINIMAL + "    pagination: {kind: curser}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="x.yaml")
    assert info.value.path == "endpoints.items.pagination.kind"
    assert "'cursor'" in str(info.value) and "'curser'" in str(info.value)


def test_wrong_type_says_what_was_expected():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL.replace("endpoints:", "timeout: soon\nendpoints:"))
    assert info.value.path == "timeout"
    assert "number" in str(info.value) and "'soon'" in str(info.value)


def test_missing_required_key():
    with pytest.raises(SpecError) as info:
        parse_spec("name: demo\nendpoints: {a: {path: /a}}\n", source="s.yaml")
    assert info.value.path == "base_url"
    assert "required" in str(info.value)


def test_several_problems_are_all_listed():
    text = "name: Bad Name\nbase_url: ftp://x\nendpoints: {a: {pth: /a}}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    message = str(info.value)
    for path in ("name", "base_url", "endpoints.a.pth", "endpoints.a.path"):
        assert path in message


def test_literal_secret_is_refused():
    text = MINIMAL + "auth:\n  method: bearer\n  token: ghp_not_allowed_here\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.path == "auth.token"
    assert "secret" in str(info.value)
    assert "ghp_not_allowed_here" not in str(info.value)


def test_unknown_auth_method_lists_known_ones():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "auth: {method: bearr}\n")
    assert info.value.path == "auth.method"
    assert "bearer" in str(info.value)


def test_auth_option_typo_is_caught_with_hint():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "auth: {method: bearer, schme: token}\n")
    assert info.value.path == "auth.schme"
    assert "did you mean 'scheme'" in str(info.value)


def test_env_mapping_must_name_a_field():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "auth: {method: bearer, env: {tokn: X}}\n")
    assert info.value.path == "auth.env.tokn"
    assert "token" in str(info.value)


def test_bad_records_expression():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "    records: 'data[?'\n")
    assert info.value.path == "endpoints.items.records"


def test_base_url_from_environment(monkeypatch):
    spec = parse_spec(MINIMAL.replace("https://api.example.com",
                                      "${DEMO_URL:-http://127.0.0.1:1}"))
    assert spec.resolved_base_url() == "http://127.0.0.1:1"
    monkeypatch.setenv("DEMO_URL", "http://127.0.0.1:2/")
    assert spec.resolved_base_url() == "http://127.0.0.1:2"


def test_every_bundled_spec_is_valid():
    paths = sorted(bundled_dir().glob("*.yaml"))
    assert paths, "no bundled specs found"
    for path in paths:
        assert load_spec(path).name == path.stem


def test_json_schema_describes_the_format():
    schema = spec_json_schema()
    assert "endpoints" in schema["properties"]
    assert "source" not in schema["properties"]
    json.dumps(schema)


def test_cli_validate_reports_errors(tmp_path):
    bad = write(tmp_path, MINIMAL + "    methd: GET\n", "bad.yaml")
    good = write(tmp_path, MINIMAL, "good.yaml")
    run = subprocess.run([sys.executable, "-m", "restconnect.cli", "validate",
                          str(good), str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "good.yaml: ok" in run.stdout
    assert "endpoints.items.methd" in run.stderr and "did you mean 'method'" in run.stderr


@pytest.mark.parametrize(("path", "problem"), [
    ("code/issues", "must start with '/'"),
    ("/users/{login", "unmatched or empty brace"),
    ("/users/{}/repos", "unmatched or empty brace"),
])
def test_bad_endpoint_paths_are_caught_by_validation(path, problem):
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL.replace("path: /items", f"path: '{path}'"))
    assert info.value.path == "endpoints.items.path"
    assert problem in str(info.value)


def test_env_typo_gets_a_suggestion():
    with pytest.raises(SpecError, match="did you mean 'token'"):
        parse_spec(MINIMAL + "auth: {method: bearer, env: {tokn: X}}\n")


def test_a_token_pasted_as_an_env_name_is_refused_unseen():
    with pytest.raises(SpecError) as info:
        parse_spec(MINIMAL + "auth: {method: bearer, env: {token: ghp_abc123def456}}\n")
    assert info.value.path == "auth.env.token"
    assert "ghp_abc123def456" not in str(info.value)


@pytest.mark.parametrize(("text", "path"), [
    ("name: a\nname: b\nbase_url: http://127.0.0.1:1\nendpoints: {x: {path: /x}}\n",
     "name"),
    ("name: a\nbase_url: http://127.0.0.1:1\nendpoints:\n  x: {path: /x}\n"
     "  x: {path: /y}\n", "endpoints.x"),
    ("name: a\nbase_url: http://127.0.0.1:1\nendpoints:\n"
     "  x: {path: /x, params: {q: 1, q: 2}}\n", "endpoints.x.params.q"),
], ids=["top level", "endpoint", "nested"])
def test_a_key_written_twice_is_an_error(text, path):
    with pytest.raises(SpecError, match="written twice") as caught:
        parse_spec(text, source="dup.yaml")
    assert caught.value.path == path and caught.value.source == "dup.yaml"


def test_an_unclosed_env_reference_in_base_url_is_an_error():
    text = 'name: a\nbase_url: "${API_URL:-http://x"\nendpoints: {x: {path: /x}}\n'
    with pytest.raises(SpecError, match="not a \\$\\{VARIABLE\\}") as caught:
        parse_spec(text, source="env.yaml")
    assert caught.value.path == "base_url"


@pytest.mark.parametrize("value", ["ftp://nowhere", "not a url", "https://"])
def test_base_url_is_checked_after_it_is_filled(monkeypatch, value):
    spec = parse_spec('name: a\nbase_url: "${API_URL}"\nendpoints: {x: {path: /x}}\n',
                      source="env.yaml")
    monkeypatch.setenv("API_URL", value)
    with pytest.raises(SpecError, match="http:// or https:// URL with a host") as caught:
        spec.resolved_base_url()
    assert caught.value.path == "base_url"


def test_wrong_values_of_auth_options_are_not_quoted():
    text = ("name: a\nbase_url: http://127.0.0.1:1\n"
            "auth: {method: api_key, location: ghp_LOCSECRET1}\n"
            "endpoints: {x: {path: /x}}\n")
    with pytest.raises(SpecError, match="got a str") as caught:
        parse_spec(text, source="v.yaml")
    assert caught.value.path == "auth.location"
    assert "ghp_LOCSECRET1" not in str(caught.value)


def test_the_repeated_key_check_follows_aliases_once():
    from restconnect.spec import read_yaml_mapping

    data = read_yaml_mapping(None, text="a: &x [1, *x]\nb: *x\n", source="s.yaml")
    assert data["a"][0] == 1 and data["a"][1] is data["a"] and data["b"] is data["a"]


def test_a_password_in_the_base_url_is_masked_in_the_specs_repr():
    from restconnect.spec import parse_spec

    secret = "pw-" + "7f3e9a1c"
    spec = parse_spec(f"""
name: x
base_url: http://someone:{secret}@127.0.0.1:9/v1
auth: {{method: none}}
endpoints:
  e: {{path: /e}}
""", source="x.yaml")
    assert secret in spec.base_url  # the value itself is kept for sending
    assert secret not in repr(spec) and secret not in str(spec)
    assert "127.0.0.1:9/v1" in repr(spec)
