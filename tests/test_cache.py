"""The response cache, over real HTTP against the sandbox (which counts requests)."""

from __future__ import annotations

import argparse
import io
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from cache_support import SPEC, connect_box, files_under, grep_tree, write_spec

from restconnect import connect
from restconnect.cache import (
    OFF,
    CachePolicy,
    add_cache_parser,
    cache_clear,
    cache_info,
    cache_root,
    resolve_policy,
)
from restconnect.exceptions import CacheError
from restconnect.spec import parse_spec

API_KEY_SPEC = SPEC.replace(
    "auth:\n  method: bearer\n  env: {token: CACHEBOX_TOKEN}",
    "auth:\n  method: api_key\n  location: query\n  param: api_key",
).replace("name: cachebox", "name: keybox")


def sent(box) -> int:
    return box.stats["total"]


def test_cache_folder_follows_restconnect_home(_isolated_home: Path) -> None:
    assert cache_root() == _isolated_home / "cache"


def test_second_identical_fetch_makes_no_request(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("issues")
    before = sent(fresh_sandbox)

    second = conn.fetch("issues")

    assert sent(fresh_sandbox) == before
    assert first.attrs["restconnect"]["pages_from_cache"] == 0
    meta = second.attrs["restconnect"]
    assert meta["pages"] == first.attrs["restconnect"]["pages"] == 12
    assert meta["pages_from_cache"] == meta["pages"]
    pd.testing.assert_frame_equal(first, second)


def test_a_new_connector_reuses_the_cache_on_disk(fresh_sandbox, tmp_path) -> None:
    connect_box(fresh_sandbox, tmp_path).fetch("repos")
    before = sent(fresh_sandbox)

    again = connect_box(fresh_sandbox, tmp_path).fetch("repos")

    assert sent(fresh_sandbox) == before
    assert again.attrs["restconnect"]["pages_from_cache"] == 3


def test_whole_frame_snapshot_skips_pages_and_parsing(fresh_sandbox, tmp_path,
                                                      monkeypatch) -> None:
    from restconnect import connector as connector_module

    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("repos")
    parsed = []
    real = connector_module.decode_body
    monkeypatch.setattr(connector_module, "decode_body",
                        lambda *a, **k: parsed.append(1) or real(*a, **k))

    again = connect_box(fresh_sandbox, tmp_path).fetch("repos")
    other = conn.fetch("repos", max_pages=1)

    assert parsed == [1]
    pd.testing.assert_frame_equal(again, first)
    assert again.attrs["restconnect"]["pages_from_cache"] == 3
    assert len(other) == 100


def test_a_tampered_snapshot_is_ignored(fresh_sandbox, tmp_path) -> None:
    from restconnect.cache import _pack, _unpack

    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("user")
    store = conn.http.cache.store
    for key in list(store):
        meta, blob = _unpack(store[key])
        if meta.get("kind") == "frame":
            store[key] = _pack(meta, blob.replace(b"demo", b"evil"))

    again = conn.fetch("user")

    assert again.loc[0, "login"] == first.loc[0, "login"]
    assert again.attrs["restconnect"]["pages_from_cache"] == 1


def test_cache_false_and_refresh_go_to_the_network(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    conn.fetch("repos")
    before = sent(fresh_sandbox)

    bypass = conn.fetch("repos", cache=False)
    refreshed = conn.fetch("repos", cache="refresh")

    assert sent(fresh_sandbox) - before == 6
    assert bypass.attrs["restconnect"]["pages_from_cache"] == 0
    assert refreshed.attrs["restconnect"]["pages_from_cache"] == 0


def test_connect_cache_false_stores_nothing(fresh_sandbox, tmp_path,
                                            _isolated_home) -> None:
    conn = connect_box(fresh_sandbox, tmp_path, cache=False)
    conn.fetch("repos")
    before = sent(fresh_sandbox)

    conn.fetch("repos")

    assert sent(fresh_sandbox) - before == 3
    assert not (_isolated_home / "cache").exists()


def test_stale_entry_is_revalidated_with_etag(fresh_sandbox, tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    first = conn.fetch("repos")
    stats = fresh_sandbox.stats

    again = conn.fetch("repos", cache=0)

    after = fresh_sandbox.stats
    assert after["total"] - stats["total"] == 3
    assert after["not_modified"] - stats["not_modified"] == 3
    assert again.attrs["restconnect"]["pages_from_cache"] == 3
    pd.testing.assert_frame_equal(first, again)


def test_changed_data_is_fetched_again_after_revalidation(fresh_sandbox,
                                                          tmp_path) -> None:
    conn = connect_box(fresh_sandbox, tmp_path)
    conn.fetch("repos")
    touched = fresh_sandbox.touch("repos", count=1)["touched"][0]
    stats = fresh_sandbox.stats

    again = conn.fetch("repos", cache=0)

    changed = fresh_sandbox.stats["not_modified"] - stats["not_modified"]
    assert changed < 3
    row = again.set_index("id").loc[touched]
    expected = fresh_sandbox.data.repos.get(touched)
    assert row["stargazers_count"] == expected["stargazers_count"]


def test_endpoint_ttl_overrides_the_connector_ttl(fresh_sandbox, tmp_path) -> None:
    text = SPEC.replace("  repos:\n    path: /code/repos\n",
                        "  repos:\n    path: /code/repos\n    cache_ttl: 0\n")
    conn = connect_box(fresh_sandbox, tmp_path, text=text)
    conn.fetch("repos")
    conn.fetch("user")
    stats = fresh_sandbox.stats

    conn.fetch("repos")
    conn.fetch("user")

    after = fresh_sandbox.stats
    assert after["total"] - stats["total"] == 3
    assert after["not_modified"] - stats["not_modified"] == 3


def test_two_identities_never_share_entries(fresh_sandbox, tmp_path) -> None:
    mine = connect_box(fresh_sandbox, tmp_path)
    theirs = connect_box(fresh_sandbox, tmp_path,
                         token=fresh_sandbox.credentials["other_token"])
    me = mine.fetch("user")
    before = sent(fresh_sandbox)

    other = theirs.fetch("user")

    assert sent(fresh_sandbox) - before == 1
    assert other.attrs["restconnect"]["pages_from_cache"] == 0
    assert me.loc[0, "login"] != other.loc[0, "login"]
    assert mine.fetch("user").loc[0, "login"] == me.loc[0, "login"]
    assert theirs.fetch("user").loc[0, "login"] == other.loc[0, "login"]
    assert sent(fresh_sandbox) - before == 1
    # One page and one whole-frame snapshot per identity.
    assert len(mine.http.cache.store) == 4


def test_no_secret_is_written_to_the_cache(fresh_sandbox, tmp_path,
                                           _isolated_home) -> None:
    box = fresh_sandbox
    connect_box(box, tmp_path).fetch("issues")
    spec = write_spec(tmp_path / "keyed", API_KEY_SPEC)
    by_key = connect(str(spec), base_url=box.url, api_key=box.credentials["api_key"])
    by_key.fetch("repos")
    by_key.fetch("repos")

    assert by_key.last_result.pages_from_cache == 3
    found = grep_tree(_isolated_home / "cache", box.secret_values())
    assert found == []
    assert len(files_under(_isolated_home / "cache")) > 3


def test_secret_in_a_body_is_masked_before_storing(fresh_sandbox, tmp_path,
                                                   _isolated_home) -> None:
    from restconnect.redact import register_secret

    conn = connect_box(fresh_sandbox, tmp_path)
    title = fresh_sandbox.data.repos.rows[0]["name"]
    register_secret(title)
    try:
        conn.fetch("repos")
        assert grep_tree(_isolated_home / "cache", [title]) == []
    finally:
        from restconnect import redact

        with redact._lock:
            redact._secrets.discard(title)
            redact._pattern = None


def test_cache_files_are_private(fresh_sandbox, tmp_path, _isolated_home) -> None:
    connect_box(fresh_sandbox, tmp_path).fetch("issues")
    root = _isolated_home / "cache"

    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = files_under(root)

    assert any(f.suffix == ".val" for f in files)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in files} == {0o600}


def test_size_limit_evicts_old_entries(fresh_sandbox, tmp_path) -> None:
    text = SPEC.replace("concurrency: 1\n",
                        "concurrency: 1\ncache: {max_size_mb: 0.3}\n")
    conn = connect_box(fresh_sandbox, tmp_path, text=text)
    store = conn.http.cache.store

    conn.fetch("issues")

    assert store.size_limit == int(0.3 * 1024 * 1024)
    assert len(store) < 12
    assert store.volume() < 0.3 * 1024 * 1024 * 1.5


def test_cache_info_and_clear(fresh_sandbox, tmp_path) -> None:
    connect_box(fresh_sandbox, tmp_path).fetch("repos")
    parser = argparse.ArgumentParser()
    add_cache_parser(parser.add_subparsers(dest="command"))

    out = io.StringIO()
    args = parser.parse_args(["cache", "info"])
    assert args.func(args, out) == 0
    rows = cache_info()

    assert [row["name"] for row in rows] == ["cachebox"]
    assert rows[0]["entries"] == 4  # three pages and the frame
    assert "cachebox" in out.getvalue() and "4 entries" in out.getvalue()
    with pytest.raises(CacheError, match="no cache for 'nope'.*cachebox"):
        cache_clear("nope")
    args = parser.parse_args(["cache", "clear", "cachebox"])
    assert args.func(args, io.StringIO()) == 0
    assert cache_info() == []


def test_cache_command_through_the_cli(fresh_sandbox, tmp_path, capsys) -> None:
    from restconnect.cli import main

    connect_box(fresh_sandbox, tmp_path).fetch("repos")

    assert main(["cache", "info"]) == 0
    assert "cachebox" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "cleared: cachebox" in capsys.readouterr().out


def test_resolve_policy_values() -> None:
    spec = parse_spec(SPEC.replace("concurrency: 1\n",
                                   "concurrency: 1\ncache: {ttl: 60}\n"))
    repos = spec.endpoints["repos"]
    repos.cache_ttl = 5

    assert resolve_policy(None, spec) == CachePolicy(ttl=60)
    assert resolve_policy(True, spec, repos) == CachePolicy(ttl=5)
    assert resolve_policy(False, spec) == OFF
    assert resolve_policy("refresh", spec) == CachePolicy(read=False, ttl=60)
    assert resolve_policy(10, spec) == CachePolicy(ttl=10)
    spec.cache.enabled = False
    assert resolve_policy(None, spec) == OFF
    with pytest.raises(ValueError, match="cache= takes"):
        resolve_policy("sometimes", spec)
