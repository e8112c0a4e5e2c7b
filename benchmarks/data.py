"""GitHub-like repository records for the benchmark server.

Each record has about twenty top-level fields, a nested ``owner`` object, a
``license`` object that is null for about a third of the records, a list of
topics, timestamps and a few other nulls; serialized it weighs about 1.1 KB,
close to what GitHub's ``/repos`` endpoints return per repository.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["LANGUAGES", "LICENSES", "make_page", "make_record"]

LANGUAGES = ("Python", "Go", "Rust", "TypeScript", "C", "Java", "Ruby", None)

LICENSES = (
    ("mit", "MIT License", "MIT"),
    ("apache-2.0", "Apache License 2.0", "Apache-2.0"),
    ("gpl-3.0", "GNU General Public License v3.0", "GPL-3.0"),
    ("bsd-3-clause", 'BSD 3-Clause "New" or "Revised" License', "BSD-3-Clause"),
)

WORDS = (
    "data", "stream", "fast", "tiny", "cloud", "graph", "query", "async", "cli",
    "parser", "kit", "lab", "flow", "hub", "sync", "cache", "zeta", "núcleo",
)

API = "https://api.example.test"
WEB = "https://code.example.test"


def _stamp(rng: random.Random, year: int) -> str:
    return (
        f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    )


def _owner(rng: random.Random, login: str) -> dict[str, Any]:
    owner_id = rng.randint(1_000, 90_000_000)
    return {
        "login": login,
        "id": owner_id,
        "node_id": f"MDQ6VXNlcj{owner_id:08d}",
        "avatar_url": f"https://avatars.example.test/u/{owner_id}?v=4",
        "html_url": f"{WEB}/{login}",
        "type": rng.choice(("User", "Organization")),
        "site_admin": rng.random() < 0.02,
    }


def _license(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.33:
        return None
    key, name, spdx = rng.choice(LICENSES)
    return {
        "key": key,
        "name": name,
        "spdx_id": spdx,
        "url": f"{API}/licenses/{key}",
        "node_id": f"MDc6TGljZW5zZT{len(key):03d}",
    }


def make_record(index: int) -> dict[str, Any]:
    """The repository record number ``index``, the same on every call."""
    rng = random.Random(index)
    login = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}{rng.randint(1, 999)}"
    name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{index}"
    full_name = f"{login}/{name}"
    has_text = rng.random() < 0.8
    return {
        "id": 10_000_000 + index,
        "node_id": f"MDEwOlJlcG9zaXRvcnk{index:010d}",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": _owner(rng, login),
        "html_url": f"{WEB}/{full_name}",
        "description": (f"A {rng.choice(WORDS)} library for {rng.choice(WORDS)} "
                        f"{rng.choice(WORDS)} work, with {rng.choice(WORDS)} support"
                        if has_text else None),
        "fork": rng.random() < 0.15,
        "url": f"{API}/repos/{full_name}",
        "created_at": _stamp(rng, rng.randint(2010, 2019)),
        "updated_at": _stamp(rng, 2024),
        "pushed_at": _stamp(rng, 2024) if rng.random() < 0.95 else None,
        "homepage": f"https://{name}.example.test" if rng.random() < 0.3 else None,
        "size": rng.randint(0, 500_000),
        "stargazers_count": rng.randint(0, 50_000),
        "language": rng.choice(LANGUAGES),
        "watchers_count": rng.randint(0, 50_000),
        "forks_count": rng.randint(0, 5_000),
        "open_issues_count": rng.randint(0, 900),
        "license": _license(rng),
        "topics": rng.sample(WORDS, rng.randint(0, 5)),
        "visibility": "public",
        "default_branch": rng.choice(("main", "master", "develop")),
        "score": round(rng.random() * 100, 3),
        "archived": rng.random() < 0.05,
        "has_issues": rng.random() < 0.9,
        "mirror_url": None,
    }


def make_page(first: int, count: int) -> list[dict[str, Any]]:
    """``count`` records starting at number ``first``."""
    return [make_record(index) for index in range(first, first + count)]
