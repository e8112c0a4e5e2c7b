"""A small spec over the sandbox's code service, for the cache, cassette,
incremental and extract tests (they must not depend on the bundled specs)."""

from __future__ import annotations

from pathlib import Path

SPEC = """
name: cachebox
title: sandbox code service, for cache and extract tests
base_url: http://127.0.0.1:9
auth:
  method: bearer
  env: {token: CACHEBOX_TOKEN}
pagination: {kind: link_header, page_size: 100, page_size_param: per_page}
concurrency: 1
endpoints:
  issues:
    path: /code/issues
    primary_key: id
    params: {sort: updated, direction: asc}
    datetimes: [created_at, updated_at, closed_at]
    incremental: {field: updated_at, mode: param, param: since}
  issues_newest:
    path: /code/issues
    primary_key: id
    incremental:
      field: updated_at
      mode: stop
      sort: {sort: updated, direction: desc}
  repo_issues:
    path: /code/repos/{owner}/{repo}/issues
    primary_key: id
  user:
    path: /code/user
  repos:
    path: /code/repos
    primary_key: id
"""


def write_spec(folder: Path, text: str = SPEC) -> Path:
    """Write the spec into ``folder`` and return its path."""
    path = folder / "cachebox.yaml"
    path.write_text(text, encoding="utf-8")
    return path
