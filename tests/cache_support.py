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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cachebox.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def connect_box(box, folder: Path, *, token: str | None = None, text: str = SPEC,
                **options):
    """``connect()`` the test spec to a running sandbox."""
    from restconnect import connect

    spec = write_spec(folder, text)
    return connect(str(spec), base_url=box.url,
                   token=token or box.credentials["token"], **options)


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``."""
    return [path for path in folder.rglob("*") if path.is_file()]


def grep_tree(folder: Path, needles) -> list[tuple[Path, str]]:
    """Which files below ``folder`` contain any of the byte strings ``needles``."""
    from urllib.parse import quote

    found = []
    for path in files_under(folder):
        data = path.read_bytes()
        for needle in needles:
            for form in {needle, quote(needle, safe="")}:
                if form.encode() in data:
                    found.append((path, needle[:6] + "..."))
    return found
