"""Blank credential values count as not given, from every source of the chain."""

from __future__ import annotations

import pytest

from restconnect.auth.base import Field
from restconnect.credentials import FieldRequest, resolve_credentials, set_prompter
from restconnect.exceptions import CredentialsMissing
from restconnect.secret import Secret

TOKEN = FieldRequest(Field("token", secret=True), "bearer", env="UNIT_BLANK_TOKEN")
USER = FieldRequest(Field("username"), "basic")


@pytest.fixture(autouse=True)
def _no_prompter():
    yield
    set_prompter(None)


@pytest.mark.parametrize("blank", ["", " ", "\t\n", Secret("  ")])
def test_a_blank_keyword_falls_through_to_the_environment(blank, monkeypatch):
    monkeypatch.setenv("UNIT_BLANK_TOKEN", "from-env")

    values = resolve_credentials("unit", [TOKEN], {"token": blank}, interactive=False)

    assert values["token"].reveal() == "from-env"


@pytest.mark.parametrize("keyword", ["", "   "])
@pytest.mark.parametrize("env", [None, "", "   "])
def test_blank_everywhere_is_missing_and_says_so(keyword, env, monkeypatch):
    if env is None:
        monkeypatch.delenv("UNIT_BLANK_TOKEN", raising=False)
    else:
        monkeypatch.setenv("UNIT_BLANK_TOKEN", env)

    with pytest.raises(CredentialsMissing) as caught:
        resolve_credentials("unit", [TOKEN], {"token": keyword}, interactive=False)

    ways = caught.value.missing["token"]
    assert ways[0] == "pass a non-blank token=... to connect() (the one given is blank)"
    assert "set $UNIT_BLANK_TOKEN" in ways


def test_a_field_not_given_keeps_the_usual_hint(monkeypatch):
    monkeypatch.delenv("UNIT_BLANK_TOKEN", raising=False)

    with pytest.raises(CredentialsMissing) as caught:
        resolve_credentials("unit", [TOKEN], {}, interactive=False)

    assert caught.value.missing["token"][0] == "pass token=... to connect()"


def test_a_blank_non_secret_field_is_missing_too():
    with pytest.raises(CredentialsMissing) as caught:
        resolve_credentials("unit", [USER], {"username": " "}, interactive=False)

    assert list(caught.value.missing) == ["username"]


def test_a_blank_prompt_answer_is_still_missing(monkeypatch):
    monkeypatch.delenv("UNIT_BLANK_TOKEN", raising=False)
    asked = []

    def answer(connector, missing):
        asked.append([request.field.name for request in missing])
        return {"token": "   "}

    set_prompter(answer)

    with pytest.raises(CredentialsMissing):
        resolve_credentials("unit", [TOKEN], {}, interactive=True)

    assert asked == [["token"]]


def test_a_value_with_spaces_around_it_is_kept_as_given():
    values = resolve_credentials("unit", [TOKEN], {"token": " abc "}, interactive=False)

    assert values["token"].reveal() == " abc "
