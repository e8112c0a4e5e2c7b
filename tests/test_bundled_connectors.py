"""Every spec bundled in ``connectors/``: valid, documented and free of secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import restconnect
from restconnect import catalog
from restconnect.auth import get_auth_method
from restconnect.catalog import bundled_dir, list_specs
from restconnect.http import is_loopback
from restconnect.spec import ConnectorSpec, load_spec

REPO = Path(__file__).resolve().parents[1]
CONNECTORS = REPO / "connectors"
DOCS = REPO / "docs" / "connectors.md"
# Specs of this project's own servers link a docs page of the repository.
OWN_DOCS = "https://github.com/restconnect/restconnect/blob/main/"
SPEC_FILES = sorted(CONNECTORS.glob("*.yaml"))
IDS = [path.stem for path in SPEC_FILES]

# Shapes of real credentials; none may appear in a file that ships in the wheel.
SECRET_PATTERNS = {
    "GitHub token": r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    "Stripe key": r"\b[sr]k_(live|test)_[A-Za-z0-9]{16,}",
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "Slack token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "JWT": r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.",
    "long hex string": r"\b[0-9a-fA-F]{32,}\b",
}


@pytest.fixture(params=SPEC_FILES, ids=IDS)
def spec_file(request) -> Path:
    return request.param


@pytest.fixture
def spec(spec_file) -> ConnectorSpec:
    return load_spec(spec_file)


def test_there_are_bundled_connectors():
    assert {"github", "stripe", "openweather", "artic"} <= set(IDS)


def test_each_spec_validates_and_is_named_after_its_file(spec_file, spec):
    assert spec.name == spec_file.stem


def test_each_bundled_spec_is_found_by_name(spec_file, tmp_path, monkeypatch):
    # A developer's own specs folder may hold a spec of the same name; not here.
    monkeypatch.setattr(catalog, "user_dir", lambda: tmp_path)
    assert list_specs()[spec_file.stem].resolve() == spec_file.resolve()
    assert bundled_dir().resolve() == CONNECTORS.resolve()


def test_each_spec_says_what_it_is_and_links_its_docs(spec):
    assert spec.title.strip()
    assert len(spec.description.strip()) >= 40
    assert re.match(r"^https://[^/\s]+\.[a-z]{2,}/", spec.docs + "/"), spec.docs
    if spec.docs.startswith(OWN_DOCS):
        assert (REPO / spec.docs.removeprefix(OWN_DOCS)).is_file(), spec.docs
    base = spec.resolved_base_url()
    assert base.startswith("https://") or is_loopback(base), base


def test_each_endpoint_has_a_description_and_an_absolute_path(spec):
    for name, endpoint in spec.endpoints.items():
        assert len(endpoint.description.strip()) >= 15, name
        assert endpoint.path.startswith("/"), name
        assert "?" not in endpoint.path, f"{name}: query parameters belong in params"


@pytest.mark.parametrize("label", list(SECRET_PATTERNS))
def test_no_literal_secret_in_any_spec_file(label):
    pattern = re.compile(SECRET_PATTERNS[label])
    for path in SPEC_FILES:
        found = pattern.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.name} holds what looks like a {label}"


def test_the_secret_patterns_recognise_what_they_name():
    # Built from pieces so that this file holds no credential-shaped string either.
    samples = {
        "GitHub token": "ghp" + "_" + "a1B2" * 9,
        "Stripe key": "sk" + "_live_" + "Z9y8" * 6,
        "AWS access key id": "AK" + "IA" + "ABCDEFGH23456789",
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "Slack token": "xo" + "xb-" + "1234-5678-abcdef",
        "Google API key": "AI" + "za" + "x" * 35,
        "JWT": "ey" + "J" + "a" * 12 + ".ey" + "J" + "b" * 12 + ".sig",
        "long hex string": "0f" * 20,
    }
    assert set(samples) == set(SECRET_PATTERNS)
    for label, sample in samples.items():
        assert re.search(SECRET_PATTERNS[label], f"token: {sample}\n"), label


def test_every_secret_field_comes_from_the_environment_or_the_caller(spec):
    for entry in spec.auth_entries:
        method = get_auth_method(entry.method)
        for field in method.fields:
            if not field.secret:
                continue
            assert field.name not in entry.options(), (entry.method, field.name)
            variable = entry.env.get(field.name) or field.env
            if field.required:
                assert variable, f"{entry.method}.{field.name} names no variable"
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", variable), variable


def test_each_endpoint_builds_a_request_under_the_base_url(spec, monkeypatch):
    for variable in ("AWS_REGION",):
        monkeypatch.delenv(variable, raising=False)
    credentials = {field.name: f"dummy-{field.name}"
                   for entry in spec.auth_entries
                   for field in get_auth_method(entry.method).fields if field.required}
    conn = restconnect.connect(spec, interactive=False, **credentials)
    base = spec.resolved_base_url()

    for name, endpoint in spec.endpoints.items():
        values = {param: "x1" for param in endpoint.path_params + endpoint.required}
        request = conn.build_request(name, values)
        assert request.url.startswith(base + "/"), name
        assert "{" not in request.url, name
        for secret in credentials.values():
            assert secret not in repr(request), name
    conn.close()


def test_the_docs_page_lists_every_connector_and_endpoint(spec):
    if spec.docs.startswith(OWN_DOCS):
        pytest.skip(f"{spec.name} is one of this project's servers, documented in "
                    f"{spec.docs.removeprefix(OWN_DOCS)}")
    text = DOCS.read_text(encoding="utf-8")
    heading = re.search(rf"^## .*`{re.escape(spec.name)}`.*$", text, re.MULTILINE)
    assert heading, f"docs/connectors.md has no '## ... `{spec.name}`' section"

    section = text[heading.end():]
    following = re.search(r"^## ", section, re.MULTILINE)
    section = section[: following.start()] if following else section
    missing = [name for name in spec.endpoints if f"`{name}`" not in section]
    assert not missing, f"{spec.name}: endpoints not in docs/connectors.md: {missing}"
    assert spec.docs in section
