"""Record and replay over real HTTP: cassettes hold no secret and replay offline."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest
import requests
from cache_support import SPEC, connect_box, write_spec

from restconnect import connect
from restconnect.cassette import Cassette, cassette_path, scrub_text
from restconnect.exceptions import CacheError
from restconnect.redact import MASK

API_KEY_SPEC = SPEC.replace(
    "auth:\n  method: bearer\n  env: {token: CACHEBOX_TOKEN}",
    "auth:\n  method: api_key\n  location: query\n  param: api_key",
)


def test_record_then_replay_with_the_server_gone(fresh_sandbox, tmp_path) -> None:
    tapes = tmp_path / "tapes"
    recorder = connect_box(fresh_sandbox, tmp_path, record=str(tapes))
    issues = recorder.fetch("issues")
    user = recorder.fetch("user")
    recorder.close()
    token = fresh_sandbox.credentials["token"]
    fresh_sandbox.stop()

    player = connect_box(fresh_sandbox, tmp_path, replay=str(tapes), token=token)

    pd.testing.assert_frame_equal(player.fetch("issues"), issues)
    pd.testing.assert_frame_equal(player.fetch("user"), user)


def test_cassette_is_json_lines_without_any_secret(fresh_sandbox, tmp_path) -> None:
    tapes = tmp_path / "tapes"
    conn = connect_box(fresh_sandbox, tmp_path, record=str(tapes))
    conn.fetch("repos")
    spec = write_spec(tmp_path / "keyed", API_KEY_SPEC.replace("cachebox", "keybox"))
    keyed = connect(str(spec), base_url=fresh_sandbox.url, record=str(tapes),
                    api_key=fresh_sandbox.credentials["api_key"])
    keyed.fetch("user")

    lines = cassette_path(tapes, "cachebox").read_bytes().splitlines()
    entries = [orjson.loads(line) for line in lines]
    text = b"".join(path.read_bytes() for path in tapes.iterdir()).decode()

    assert sorted(p.name for p in tapes.iterdir()) == ["cachebox.jsonl", "keybox.jsonl"]
    assert len(entries) == 3
    assert entries[0]["request"]["headers"]["Authorization"] == MASK
    assert entries[0]["response"]["status"] == 200
    assert "api_key=%2A%2A%2A" in text or "api_key=***" in text
    for secret in fresh_sandbox.secret_values():
        assert secret not in text


def test_secret_values_in_bodies_are_masked(tmp_path) -> None:
    from restconnect.redact import register_secret

    name = "octocat-private-note-7f3a"
    register_secret(name)
    try:
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response.headers["Set-Cookie"] = "session=abc"
        response._content = orjson.dumps({"note": f"see {name}", "access_token": "zz",
                                          "license": {"key": "mit"}})
        request = requests.Request("POST", "http://127.0.0.1/x?q=1",
                                   data={"client_secret": "s3cr3t", "user": name})
        entry = Cassette(tmp_path / "c.jsonl", "c").entry(request.prepare(), response)
    finally:
        from restconnect import redact

        with redact._lock:
            redact._secrets.discard(name)
            redact._pattern = None

    body = orjson.loads(entry["response"]["body"])
    assert body == {"note": f"see {MASK}", "access_token": MASK,
                    "license": {"key": "mit"}}
    assert entry["response"]["headers"]["Set-Cookie"] == MASK
    assert "s3cr3t" not in entry["request"]["body"]
    assert name not in orjson.dumps(entry).decode()


def test_replay_fails_clearly_on_an_unrecorded_request(fresh_sandbox, tmp_path) -> None:
    tapes = tmp_path / "tapes"
    connect_box(fresh_sandbox, tmp_path, record=str(tapes)).fetch("user")
    before = fresh_sandbox.stats["total"]

    player = connect_box(fresh_sandbox, tmp_path, replay=str(tapes))

    with pytest.raises(CacheError, match=r"holds no response for GET .*/code/repos"):
        player.fetch("repos")
    assert fresh_sandbox.stats["total"] == before


def test_replay_without_a_cassette_names_the_file(fresh_sandbox, tmp_path) -> None:
    with pytest.raises(CacheError, match=r"no cassette at .*cachebox\.jsonl"):
        connect_box(fresh_sandbox, tmp_path, replay=str(tmp_path / "none"))


def test_repeated_requests_replay_in_recorded_order(fresh_sandbox, tmp_path) -> None:
    tapes = tmp_path / "tapes"
    recorder = connect_box(fresh_sandbox, tmp_path, record=str(tapes))
    before = recorder.fetch("repos", per_page=100, max_pages=1)
    touched = fresh_sandbox.touch("repos", count=1)["touched"][0]
    after = recorder.fetch("repos", per_page=100, max_pages=1)

    player = connect_box(fresh_sandbox, tmp_path, replay=str(tapes))
    first = player.fetch("repos", max_pages=1)
    second = player.fetch("repos", max_pages=1)

    pd.testing.assert_frame_equal(first, before)
    pd.testing.assert_frame_equal(second, after)
    if touched in set(after["id"]):
        assert not first.equals(second)


def test_record_and_replay_together_is_refused(fresh_sandbox, tmp_path) -> None:
    with pytest.raises(ValueError, match="not both"):
        connect_box(fresh_sandbox, tmp_path, record=str(tmp_path),
                    replay=str(tmp_path))


def test_scrub_text_masks_encoded_forms() -> None:
    secret = "a b/c+d"
    text = f"x={secret}&y=a%20b%2Fc%2Bd"

    assert scrub_text(text, [secret]) == f"x={MASK}&y={MASK}"
