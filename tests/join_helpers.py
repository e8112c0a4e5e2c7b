"""Connector specs for the join tests: the sandbox's two services as two APIs.

The code-hosting service signs in with OAuth 2.0 client credentials and the
payments service with an API key, so every cross-API test runs two different
auth methods at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CODE_SPEC = """
name: code
title: Sandbox code hosting
base_url: {url}/code
auth:
  method: oauth2
  grant: client_credentials
  token_url: {url}/oauth/token
  scopes: ["code:read"]
  env: {{client_id: JOIN_TEST_CLIENT_ID, client_secret: JOIN_TEST_CLIENT_SECRET}}
pagination: {{kind: link_header, page_size: 100, page_size_param: per_page}}
endpoints:
  users: {{path: /users}}
  user: {{path: "/users/{{login}}"}}
  users_batch: {{path: /users, pagination: {{kind: none}}}}
  repos: {{path: /repos}}
  repo: {{path: "/repos/{{owner}}/{{repo}}"}}
  issues: {{path: /issues, params: {{state: all}}}}
  repo_issues:
    path: "/repos/{{owner}}/{{repo}}/issues"
    params: {{state: all}}
    parent: {{endpoint: repos, params: {{owner: owner.login, repo: name}}}}
  issue_authors:
    path: /users
    pagination: {{kind: none}}
    parent: {{endpoint: issues, params: {{ids: user.id}}, batch_size: 20, key: id}}
"""

PAY_SPEC = """
name: pay
title: Sandbox payments
base_url: {url}/pay
auth:
  method: api_key
  location: header
  param: X-API-Key
  env: {{api_key: JOIN_TEST_PAY_KEY}}
pagination:
  kind: cursor
  cursor_param: starting_after
  cursor_path: "data[-1].id"
  has_more_path: has_more
  page_size: 100
  page_size_param: limit
endpoints:
  customers: {{path: /customers, records: data}}
  customer: {{path: "/customers/{{id}}"}}
  customers_batch: {{path: /customers, records: data, pagination: {{kind: none}}}}
"""

#: Environment variables the dataset files name, by credential.
ENV = {"JOIN_TEST_CLIENT_ID": "client_id", "JOIN_TEST_CLIENT_SECRET": "client_secret",
       "JOIN_TEST_PAY_KEY": "api_key"}


def write_specs(folder: Path, url: str) -> tuple[Path, Path]:
    """Write both specs for a sandbox at ``url``; returns their paths."""
    code, pay = folder / "code.yaml", folder / "pay.yaml"
    code.write_text(CODE_SPEC.format(url=url), encoding="utf-8")
    pay.write_text(PAY_SPEC.format(url=url), encoding="utf-8")
    return code, pay


def credentials(box: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword credentials for ``connect()`` of the code and the pay spec."""
    code = {"client_id": box.credentials["client_id"],
            "client_secret": box.credentials["client_secret"]}
    return code, {"api_key": box.credentials["api_key"]}


def two_auth_methods(box: Any) -> dict[str, list[str]]:
    """Sandbox ``auth`` setting: OAuth only on /code, API key only on /pay."""
    return {"/": list(box.settings.auth.get("/", [])), "/code": ["oauth2"],
            "/pay": ["api_key"]}


def open_two_apis(box: Any, folder: Path) -> tuple[Any, Any]:
    """Set the sandbox to two auth methods and connect to both services."""
    from restconnect import connect

    box.configure(auth=two_auth_methods(box))
    code_spec, pay_spec = write_specs(folder, box.url)
    code_creds, pay_creds = credentials(box)
    return connect(str(code_spec), **code_creds), connect(str(pay_spec), **pay_creds)
