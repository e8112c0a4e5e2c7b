"""End to end: no secret ever shows in a log, output, error, repr, file or packet.

Every auth method the sandbox verifies is used as a user would use it, on
good and failing paths, and then every place a secret could end up is
searched for every secret value the sandbox issued and every value the test
passed (as is, URL-encoded, and as the Base64 of a Basic header). Transport
rules are checked on the wire: credentials are not forwarded to another host
on a redirect, never leave for a plain-http non-loopback host, and TLS is
verified by default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from leak_support import Audit, Recorder, audit_logging, basic_form, write_spec

from restconnect import connect
from restconnect.exceptions import (
    AuthError,
    CredentialsMissing,
    HTTPStatusError,
    RateLimitError,
    ResponseError,
    RestConnectError,
    SpecError,
    TransportError,
)

REPO = Path(__file__).resolve().parents[1]

# Flow-style ``auth:`` blocks; {url} is the sandbox.
AUTH = {
    "bearer": "{{method: bearer}}",
    "api_key_header": "{{method: api_key, location: header, param: X-API-Key}}",
    "api_key_query": "{{method: api_key, location: query, param: api_key}}",
    "api_key_cookie": "{{method: api_key, location: cookie, param: api_key}}",
    "basic": "{{method: basic}}",
    "jwt_login": ("{{method: jwt, mode: login, login_url: '{url}/auth/login', "
                  "body: json, token_path: access_token}}"),
    "oauth2_cc": ("{{method: oauth2, grant: client_credentials, "
                  "token_url: '{url}/oauth/token', scopes: [code:read, pay:read], "
                  "client_auth: client_secret_post}}"),
    "oauth2_refresh": ("{{method: oauth2, grant: refresh_token, "
                       "token_url: '{url}/oauth/token', "
                       "client_auth: client_secret_basic}}"),
    "jwt_assertion": ("{{method: jwt, mode: assertion, algorithm: RS256, "
                      "issuer: sandbox-service@sandbox.invalid, subject: demo, "
                      "audience: '{url}/oauth/token', key_id: sandbox-rsa, "
                      "scope: 'code:read pay:read', exchange: jwt_bearer, "
                      "token_url: '{url}/oauth/token'}}"),
    "hmac": ("{{method: hmac, components: [method, path, query, timestamp, nonce, "
             "body_hash], algorithm: sha256, encoding: base64, "
             "signature_header: X-Signature, timestamp_header: X-Timestamp, "
             "nonce_header: X-Nonce, key_id_header: X-Key-Id}}"),
}

# A wrong value per method, with characters that URL encoding changes.
WRONG = "wr0ng+Secret/{}=&x"


def _other_rsa_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


# A key the sandbox does not know, for a refused assertion.
OTHER_RSA_KEY = _other_rsa_key()


def credentials(box: Any, method: str) -> dict[str, str]:
    """The sandbox's good credentials for one of the methods above."""
    c = box.credentials
    if method == "bearer":
        return {"token": c["token"]}
    if method.startswith("api_key"):
        return {"api_key": c["api_key"]}
    if method in ("basic", "jwt_login"):
        return {"username": c["username"], "password": c["password"]}
    if method == "oauth2_cc":
        return {"client_id": c["client_id"], "client_secret": c["client_secret"]}
    if method == "jwt_assertion":
        return {"private_key": c["rsa_private_key"]}
    if method == "oauth2_refresh":
        return {"client_id": c["client_id"], "client_secret": c["client_secret"],
                "refresh_token": box.new_refresh_token()}
    return {"key_id": c["hmac_key_id"], "secret": c["hmac_secret"]}


def wrong_credentials(box: Any, method: str) -> dict[str, str]:
    """The same fields with every secret replaced by a wrong value."""
    good = credentials(box, method)
    if method == "jwt_assertion":
        return {"private_key": OTHER_RSA_KEY}
    secret_fields = {"token", "api_key", "password", "client_secret", "secret",
                     "refresh_token"}
    return {k: WRONG.format(k) if k in secret_fields else v for k, v in good.items()}


def auth_block(method: str, url: str) -> str:
    """The ``auth:`` block of a method, with token and login URLs on ``url``."""
    return AUTH[method].format(url=url)


def open_spec(box: Any, folder: Path, method: str, *, base_url: str | None = None,
              timeout: float = 5, **creds: Any) -> Any:
    name = f"leak_{method}_{uuid.uuid4().hex[:6]}"
    spec = write_spec(folder, name, auth_block(method, box.url),
                      base_url or box.url, timeout=timeout)
    return connect(str(spec), base_url=base_url or box.url, **creds)


@pytest.fixture()
def audit(sandbox, caplog, capfd, recwarn, _isolated_home) -> Audit:
    audit_logging(caplog)
    c = sandbox.credentials
    found = Audit(sandbox.secret_values(), caplog, capfd, _isolated_home, recwarn)
    found.add_secrets(c["rsa_private_key"], c["ec_private_key"], c["refresh_token"],
                      basic_form(c["username"], c["password"]),
                      basic_form(c["other_username"], c["other_password"]),
                      basic_form(c["client_id"], c["client_secret"]))
    for field in ("token", "api_key", "password", "client_secret", "secret",
                  "refresh_token"):
        found.add_secrets(WRONG.format(field))
    found.add_secrets(OTHER_RSA_KEY)
    return found


def user_session(audit: Audit, conn: Any) -> None:
    """What a user does with a connector, with every output put in the audit."""
    from restconnect.display import FrameView

    frame = conn.fetch("repos", max_pages=2, progress=True)
    again = conn.fetch("repos", max_pages=2)
    pages = list(conn.iter_pages("customers", max_pages=2))
    raw = conn.get("/code/user", params={"per_page": 1})
    identity = conn.check()
    explanation = conn.explain()
    assert len(frame) == len(again) == 100 and pages and raw["login"]
    audit.see("fetch", frame.attrs, again.attrs, frame.head(3).to_string())
    audit.see("frame view", FrameView(frame), FrameView(frame)._repr_html_())
    audit.see("pages", *[page.records[:2] for page in pages], raw, identity)
    audit.see("explain", explanation, explanation._repr_html_())
    audit.see("connector", conn, conn._repr_html_(), *conn.auth)
    audit.see("handler describe", *[handler.describe() for handler in conn.auth])
    tokens = [getattr(handler, "_token", None) for handler in conn.auth]
    audit.see("token reprs", *[repr(token) for token in tokens if token is not None])
    audit.see("spec and options", conn.spec, *[h.options for h in conn.auth])


@pytest.mark.parametrize("method", sorted(AUTH))
def test_every_method_keeps_its_secrets_out(sandbox, audit, tmp_path, method) -> None:
    conn = open_spec(sandbox, tmp_path, method, **credentials(sandbox, method))
    user_session(audit, conn)
    audit.add_connector(conn)
    conn.close()

    wrong = open_spec(sandbox, tmp_path, method, **wrong_credentials(sandbox, method))
    with pytest.raises(AuthError) as refused:
        wrong.fetch("repos", max_pages=1)
    audit.see("refused", refused.value, wrong, wrong.explain())
    wrong.close()

    audit.check()


FAILURES = {
    "403": ("repos", {"_fail": "403"}, HTTPStatusError),
    "404": ("user", {"login": "no-such-user-here"}, HTTPStatusError),
    "429 beyond max_wait": ("repos", {"_fail": "429;retry_after=3600"}, RateLimitError),
    "500 every time": ("repos", {"_fail": "500"}, HTTPStatusError),
    "timeout": ("me", {"_fail": "slow;delay=1"}, TransportError),
    "dropped connection": ("me", {"_fail": "drop"}, TransportError),
    "not json": ("not_json", {}, ResponseError),
}


@pytest.mark.parametrize("method", ["api_key_query", "oauth2_cc"])
def test_failure_paths_keep_secrets_out(sandbox, audit, tmp_path, method) -> None:
    for label, (endpoint, params, kind) in FAILURES.items():
        # One connector per case: a 429 leaves its quota state behind.
        failing = open_spec(sandbox, tmp_path, method, timeout=0.25,
                            **credentials(sandbox, method))
        with pytest.raises(kind) as failed:
            failing.fetch(endpoint, max_pages=1, **params)
        audit.see(label, failed.value, failing.explain())
        audit.add_connector(failing)
        failing.close()
    conn = open_spec(sandbox, tmp_path, method, timeout=0.4,
                     **credentials(sandbox, method))
    key = uuid.uuid4().hex
    recovered = conn.fetch("repos", max_pages=1, _fail=f"500;count=2;key={key}")
    slowed = conn.fetch("repos", max_pages=1,
                        _fail=f"429;count=1;retry_after=1;key={key}")
    assert len(recovered) == len(slowed) == 50
    audit.see("recovered", recovered.attrs, slowed.attrs, conn.explain())
    assert any("retrying" in r.getMessage() for r in audit.caplog.records)
    audit.add_connector(conn)
    conn.close()
    audit.check()


def test_an_insufficient_scope_403_keeps_the_token_out(sandbox, audit,
                                                       tmp_path) -> None:
    spec = write_spec(tmp_path, "leak_scoped", auth_block("oauth2_cc",
        sandbox.url).replace("[code:read, pay:read]", "[code:read]"), sandbox.url)
    conn = connect(str(spec), base_url=sandbox.url,
                   **credentials(sandbox, "oauth2_cc"))
    with pytest.raises(HTTPStatusError) as refused:
        conn.fetch("customers", max_pages=1)
    assert refused.value.status == 403
    audit.see("403 scope", refused.value, conn.explain())
    audit.add_connector(conn)
    audit.check()


def test_joins_and_failed_lookups_keep_both_sides_secrets_out(sandbox, audit,
                                                              tmp_path) -> None:
    from restconnect import enrich, join

    code = open_spec(sandbox, tmp_path, "oauth2_cc",
                     **credentials(sandbox, "oauth2_cc"))
    pay = open_spec(sandbox, tmp_path, "api_key_query",
                    **credentials(sandbox, "api_key_query"))
    customers = pay.fetch("customers", max_pages=2)
    logins = list(code.fetch("repos", max_pages=1)["owner.login"].unique()[:5])
    users = pd.DataFrame({"owner.login": [*logins, "no-such-user-here"]})
    looked_up = enrich(users, pay, "user", {"login": "owner.login"}, prefix="u_")
    joined = join(looked_up, customers, left_on="owner.login", right_on="code_login",
                  how="left")

    errors = looked_up.filter(like="error").dropna(how="all")
    assert len(errors) == 1 and "404" in errors.to_string()
    audit.see("enrich", looked_up.to_string(), looked_up.attrs, errors.to_string())
    audit.see("join", joined.head().to_string(), joined.attrs)
    for conn in (code, pay):
        audit.add_connector(conn)
        conn.close()
    audit.check()


def test_a_dataset_file_with_a_literal_credential_is_refused_quietly(
        sandbox, audit, tmp_path) -> None:
    from restconnect.dataset import load_dataset

    audit.add_secrets(LITERAL)
    spec = write_spec(tmp_path, "leak_set", auth_block("api_key_query", ""),
                      sandbox.url)
    dataset = tmp_path / "set.yaml"
    dataset.write_text(textwrap.dedent(f"""
        name: leaky
        sources:
          customers:
            connector: {spec}
            endpoint: customers
            credentials: {{api_key: '{LITERAL}'}}
        joins: []
    """))
    with pytest.raises(SpecError) as refused:
        load_dataset(dataset)
    audit.see("dataset", refused.value)
    audit.check()


# ---------------------------------------------------------------- files on disk


def test_cache_state_cassette_job_and_token_files_hold_no_secret(
        sandbox, audit, tmp_path, _isolated_home) -> None:
    tapes = tmp_path / "tapes"
    audit.see_folder(tapes)
    keyed = open_spec(sandbox, tmp_path, "api_key_query", record=str(tapes),
                      **credentials(sandbox, "api_key_query"))
    keyed.fetch("repos", max_pages=2)
    keyed.fetch("customers", max_pages=1)
    oauth = open_spec(sandbox, tmp_path, "oauth2_refresh", record=str(tapes),
                      **credentials(sandbox, "oauth2_refresh"))
    oauth.fetch("repos", max_pages=1)
    posting = open_spec(sandbox, tmp_path, "oauth2_cc", record=str(tapes),
                        **credentials(sandbox, "oauth2_cc"))
    posting.fetch("customers", max_pages=1)
    cached = open_spec(sandbox, tmp_path, "jwt_login",
                       **credentials(sandbox, "jwt_login"))
    cached.fetch("repos", max_pages=2)
    assert cached.fetch("repos", max_pages=2).attrs["restconnect"]["pages_from_cache"]

    incremental = cached.fetch("issues", incremental=True)
    assert len(incremental) and len(cached.fetch("issues", incremental=True)) == 0
    job = cached.job("issues", incremental=True, output=str(tmp_path / "out.csv"))
    job_file = tmp_path / "issues.job.yaml"
    audit.see("cron line", job.save(str(job_file)), job)
    audit.see("job file", job_file.read_text())
    for conn in (keyed, oauth, posting, cached):
        audit.add_connector(conn)
        conn.close()

    tokens = list((_isolated_home / "tokens").rglob("*.token"))
    assert len(tokens) == 3, "the jwt and oauth2 connectors stored no token"
    for path in tokens:
        blob = path.read_bytes()
        assert blob.startswith(b"gAAAAA") and b"{" not in blob, f"{path} is not Fernet"
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    assert sorted(p.name for p in tapes.iterdir())
    audit.check()


def test_a_session_cookie_set_by_the_api_is_kept_off_disk(sandbox, audit, hosts,
                                                         tmp_path, _isolated_home
                                                         ) -> None:
    server, _ = hosts
    audit.add_secrets(server.cookie)
    tapes = tmp_path / "tapes"
    audit.see_folder(tapes)
    cached = open_spec(sandbox, tmp_path, "bearer", base_url=server.url,
                       **credentials(sandbox, "bearer"))
    recorder = open_spec(sandbox, tmp_path, "bearer", base_url=server.url,
                         record=str(tapes), **credentials(sandbox, "bearer"))
    for conn in (cached, recorder):
        assert conn.get("/cookie/first") == conn.get("/cookie/second")
        conn.close()

    cookies_sent = [h for seen in server.seen for k, h in seen["headers"].items()
                    if k.lower() == "cookie"]
    assert cookies_sent, "the session cookie was never sent back, so never kept"
    assert list(tapes.iterdir()) and list((_isolated_home / "cache").rglob("*.db"))
    audit.check()


# ---------------------------------------------------------- errors before any request


def test_credentials_missing_names_variables_without_values(
        sandbox, audit, tmp_path, monkeypatch) -> None:
    auth = "[{method: bearer}, {method: api_key, location: query, param: api_key}]"
    spec = write_spec(tmp_path, "leak_pair", auth, sandbox.url)
    monkeypatch.setenv("RESTCONNECT_LEAK_PAIR_TOKEN", sandbox.credentials["token"])
    with pytest.raises(CredentialsMissing) as missing:
        connect(str(spec), base_url=sandbox.url, interactive=False)
    assert "RESTCONNECT_LEAK_PAIR_API_KEY" in str(missing.value)
    audit.see("missing", missing.value)
    audit.check()


LITERAL = "lit3ral-Secret+in/spec=9f2c"

LITERAL_SPECS = {
    "secret field": "{{method: bearer, token: '{s}'}}",
    "secret field of a second method": ("[{{method: bearer}}, {{method: api_key, "
                                         "api_key: '{s}'}}]"),
    "misspelt option": "{{method: bearer, tokn: '{s}'}}",
    "the token as the whole auth entry": "'{s}'",
    "the token as an env name of the wrong type": ("{{method: bearer, env: "
                                                   "{{token: ['{s}']}}}}"),
    "a literal Authorization header": ("{{method: bearer}}\nheaders: "
                                       "{{Authorization: 'Bearer {s}'}}"),
    "a literal X-API-Key header": ("{{method: bearer}}\nheaders: "
                                   "{{X-API-Key: '{s}'}}"),
    "secret of a combined method": ("[{{method: basic}}, {{method: hmac, "
                                    "key_id: k, secret: '{s}'}}]"),
}


def test_a_spec_error_never_quotes_the_literal(sandbox, audit, tmp_path) -> None:
    audit.add_secrets(LITERAL)
    files = []
    for index, case in enumerate(sorted(LITERAL_SPECS)):
        spec = write_spec(tmp_path / str(index), "leak_literal",
                          LITERAL_SPECS[case].format(s=LITERAL), sandbox.url)
        with pytest.raises(SpecError) as refused:
            connect(str(spec), base_url=sandbox.url, token="unused-token-value")
        audit.see(f"spec error, {case}", refused.value)
        assert "auth" in str(refused.value) or "headers" in str(refused.value), case
        files.append(str(spec))
    runs = run_clis([["--debug", "validate", path] for path in files])
    assert [run.returncode for run in runs] == [SpecError.exit_code] * len(files)
    for run in runs:
        audit.see("cli", run.stdout, run.stderr)
    audit.check()


def test_a_job_with_a_literal_credential_is_refused_quietly(sandbox, audit,
                                                            tmp_path) -> None:
    from restconnect.jobs import Job

    audit.add_secrets(LITERAL)
    spec = write_spec(tmp_path, "leak_job", auth_block("bearer", ""), sandbox.url)
    with pytest.raises((SpecError, ValueError)) as refused:
        Job(connector=str(spec), endpoint="repos", output=str(tmp_path / "o.csv"),
            credentials={"token": LITERAL})
    audit.see("job error", refused.value)
    job_file = tmp_path / "bad.job.yaml"
    job_file.write_text(f"connector: {spec}\nendpoint: repos\noutput: o.csv\n"
                        f"credentials: {{token: '{LITERAL}'}}\n")
    with pytest.raises(SpecError) as refused_file:
        Job.from_file(job_file)
    audit.see("job file error", refused_file.value)
    run = run_cli("--debug", "extract", str(job_file))
    assert run.returncode != 0
    audit.see("cli extract", run.stdout, run.stderr)
    audit.check()


# ---------------------------------------------------------------- the command line


def run_cli(*args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    return run_clis([list(args)], env=env)[0]


def run_clis(commands: list[list[str]], env: dict[str, str] | None = None
             ) -> list[subprocess.CompletedProcess]:
    """``restconnect ...`` in new processes, run side by side."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    started = [(args, subprocess.Popen(
        [sys.executable, "-m", "restconnect.cli", *args], env=merged, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for args in commands]
    done = []
    for args, process in started:
        try:
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


def test_cli_debug_output_holds_no_secret(sandbox, audit, tmp_path) -> None:
    spec = write_spec(tmp_path, "leak_cli", auth_block("api_key_query", ""),
                      sandbox.url, timeout=1)
    wrong_spec = write_spec(tmp_path, "leak_cli_wrong", auth_block("api_key_query", ""),
                            sandbox.url, timeout=1)
    out = tmp_path / "repos.csv"
    base = ["--debug", "fetch"]
    at = ["--base-url", sandbox.url]
    jobs = []
    for name, path in (("good", spec), ("wrong", wrong_spec)):
        conn = connect(str(path), base_url=sandbox.url, api_key="unused-here")
        job = conn.job("issues", incremental=True, output=str(tmp_path / f"{name}.csv"))
        job.save(str(tmp_path / f"{name}.job.yaml"))
        conn.close()
        jobs.append(["extract", str(tmp_path / f"{name}.job.yaml"), "--log-format",
                     "json", "--log-level", "DEBUG"])
    fetched, shown, failed, refused, extracted, extract_refused = run_clis([
        [*base, str(spec), "repos", "--max-pages", "2", *at, "-o", str(out)],
        [*base, str(spec), "me", *at],
        [*base, str(spec), "repos", "-p", "_fail=500", *at],
        [*base, str(wrong_spec), "repos", *at],
        *jobs,
    ], env={"RESTCONNECT_LEAK_CLI_API_KEY": sandbox.credentials["api_key"],
            "RESTCONNECT_LEAK_CLI_WRONG_API_KEY": WRONG.format("api_key")})
    assert extracted.returncode == 0, extracted.stderr[-2000:]
    assert extract_refused.returncode == AuthError.exit_code
    assert "/code/issues" in extracted.stderr + extracted.stdout, "no request logged"

    assert fetched.returncode == 0, fetched.stderr[-2000:]
    assert "GET" in fetched.stderr and "api_key=" in fetched.stderr
    assert shown.returncode == 0 and "demo" in shown.stdout
    # --debug lets the error out with its traceback (exit 1).
    assert failed.returncode and refused.returncode
    assert "HTTPStatusError" in failed.stderr and "AuthError" in refused.stderr
    assert "Traceback" in failed.stderr and "Traceback" in refused.stderr
    for run in (fetched, shown, failed, refused, extracted, extract_refused):
        audit.see("cli", run.stdout, run.stderr)
    audit.see_folder(tmp_path)
    audit.check()


# ---------------------------------------------------------------- transport rules


@pytest.fixture()
def hosts():
    first, second = Recorder(), Recorder()
    yield first, second
    first.close()
    second.close()


@pytest.mark.parametrize("method", ["bearer", "api_key_header", "api_key_cookie",
                                    "basic"])
def test_no_credential_follows_a_redirect_to_another_host(sandbox, audit, hosts,
                                                          tmp_path, method) -> None:
    first, second = hosts
    creds = credentials(sandbox, method)
    conn = open_spec(sandbox, tmp_path, method, base_url=first.url, **creds)
    port = second.server_address[1]
    same = conn.get(f"/hop/http__127.0.0.1:{first.server_address[1]}/landed")
    other = conn.get(f"/hop/http__localhost:{port}/landed")
    conn.close()

    assert same == other == {"login": "landed"}
    landed_here = json.dumps(first.seen[-1])
    landed_there = json.dumps(second.seen)
    secret = creds.get("token") or creds.get("api_key") or basic_form(
        creds["username"], creds["password"])
    assert secret in landed_here, "a same-host redirect should keep the credential"
    assert len(second.seen) == 1 and secret not in landed_there
    for name in ("authorization", "x-api-key", "cookie"):
        assert name not in {k.lower() for k in second.seen[0]["headers"]}
    audit.check()


@pytest.mark.parametrize("method", ["api_key_query", "bearer", "basic"])
def test_an_api_echoing_the_credential_in_its_error_body(sandbox, audit, hosts,
                                                         tmp_path, method) -> None:
    server, _ = hosts
    conn = open_spec(sandbox, tmp_path, method, base_url=server.url,
                     **credentials(sandbox, method))
    for status, kind in ((400, HTTPStatusError), (401, AuthError),
                         (500, HTTPStatusError)):
        with pytest.raises(kind) as failed:
            conn.get(f"/echo/{status}")
        assert failed.value.status == status
        audit.see(f"echo {status}", failed.value)
    conn.close()
    assert len(server.seen) >= 3
    audit.check()


@pytest.mark.parametrize("method", ["oauth2_cc", "oauth2_refresh", "jwt_login"])
@pytest.mark.parametrize("status", [400, 401])
def test_a_token_endpoint_echoing_the_request(sandbox, audit, hosts, tmp_path,
                                              method, status) -> None:
    server, _ = hosts
    auth = auth_block(method, server.url)
    auth = auth.replace("/oauth/token", f"/echo/{status}").replace(
        "/auth/login", f"/echo/{status}")
    spec = write_spec(tmp_path, f"leak_echo_{method}", auth, server.url)
    with pytest.raises(RestConnectError) as failed:
        conn = connect(str(spec), base_url=server.url, **credentials(sandbox, method))
        conn.get("/landed")
    assert server.seen and server.seen[0]["line"].startswith("POST /echo/")
    audit.see("token echo", failed.value)
    audit.check()


@pytest.mark.parametrize("method", ["oauth2_cc", "jwt_login"])
@pytest.mark.parametrize("answer", ["form", "cut", "html"])
def test_an_unreadable_token_answer_is_not_quoted(sandbox, audit, hosts, tmp_path,
                                                  method, answer) -> None:
    server, _ = hosts
    audit.add_secrets(server.cookie)
    auth = auth_block(method, server.url).replace("/oauth/token", f"/token-{answer}")
    auth = auth.replace("/auth/login", f"/token-{answer}")
    spec = write_spec(tmp_path, f"leak_odd_{method}", auth, server.url)
    with pytest.raises(RestConnectError) as failed:
        conn = connect(str(spec), base_url=server.url, **credentials(sandbox, method))
        conn.get("/landed")
    assert server.seen[0]["line"].startswith(f"POST /token-{answer}")
    audit.see("odd token answer", failed.value)
    audit.check()


def test_oauth1_library_logs_are_masked_too(sandbox, audit, hosts, tmp_path) -> None:
    """PLAINTEXT signing puts both secrets in requests-oauthlib's DEBUG lines."""
    server, _ = hosts
    secrets = {"client_secret": uuid.uuid4().hex,
               "resource_owner_secret": uuid.uuid4().hex}
    audit.add_secrets(*secrets.values())
    spec = write_spec(tmp_path, "leak_oauth1",
                      "{method: oauth1, signature_method: PLAINTEXT}", server.url)
    conn = connect(str(spec), base_url=server.url, client_key="consumer-key",
                   resource_owner_key="access-token", **secrets)
    assert conn.get("/landed") == {"login": "landed"}
    conn.close()
    assert secrets["client_secret"] in json.dumps(server.seen), "not signed PLAINTEXT"
    assert any(r.name.startswith("requests_oauthlib") for r in audit.caplog.records)
    audit.check()


@pytest.mark.parametrize("method", ["jwt_login", "oauth2_cc", "oauth2_refresh",
                                    "jwt_assertion"])
def test_a_307_to_another_host_does_not_carry_a_credential_body(
        sandbox, audit, hosts, tmp_path, method) -> None:
    first, second = hosts
    hop = f"{first.url}/hop307/http__localhost:{second.server_address[1]}/landed"
    auth = auth_block(method, first.url).replace(f"{first.url}/oauth/token", hop)
    auth = auth.replace(f"{first.url}/auth/login", hop)
    spec = write_spec(tmp_path, f"leak_hop_{method}", auth, first.url)
    with pytest.raises(RestConnectError) as refused:
        conn = connect(str(spec), base_url=first.url, **credentials(sandbox, method))
        conn.get("/landed")

    assert first.seen and first.seen[0]["line"].startswith("POST /hop307/")
    assert first.seen[0]["body"], "the token request carried no body"
    assert len(second.seen) == 0, "the credential body was re-sent to another host"
    audit.see("307", refused.value)
    audit.check()


NO_TRAFFIC = textwrap.dedent("""
    import json, sys
    events = []
    watched = {"socket.getaddrinfo", "socket.gethostbyname", "socket.connect",
               "socket.sendto", "socket.sendmsg"}
    def hook(event, args):
        if event in watched:
            events.append(event + " " + repr(args)[:120])
    from restconnect import connect
    from restconnect.exceptions import AuthError
    jobs = json.load(sys.stdin)
    results = {}
    sys.addaudithook(hook)
    for name, path, base_url, creds, how in jobs:
        events.clear()
        try:
            conn = connect(path, base_url=base_url, **creds)
            if how == "fetch":
                conn.fetch("repos", max_pages=1)
            else:
                conn.get(how)
            results[name] = {"error": None, "events": list(events)}
        except AuthError as exc:
            results[name] = {"error": str(exc) + repr(exc), "events": list(events)}
    print(json.dumps(results))
""")


def test_plain_http_to_another_host_is_refused_before_any_packet(sandbox, audit,
                                                                 tmp_path) -> None:
    far = "http://api.example.invalid"
    jobs = []
    for method in ("bearer", "api_key_query", "api_key_header", "api_key_cookie",
                   "basic", "jwt_login", "oauth2_cc", "hmac"):
        spec = write_spec(tmp_path, f"leak_plain_{method}", auth_block(method, far),
                          far)
        creds = credentials(sandbox, method)
        jobs.append([f"{method} fetch", str(spec), far, creds, "fetch"])
        jobs.append([f"{method} get", str(spec), far, creds, "/code/user"])
    secure = "https://api.example.invalid"
    for method in ("jwt_login", "oauth2_cc"):
        spec = write_spec(tmp_path, f"leak_plain_{method}_side",
                          auth_block(method, far), secure)
        jobs.append([f"{method} with a plain-http token URL", str(spec), secure,
                     credentials(sandbox, method), "fetch"])
    for host in ("localhost.example.invalid", "127.0.0.1.example.invalid"):
        spec = write_spec(tmp_path, "leak_plain_lookalike", auth_block("bearer", ""),
                          f"http://{host}")
        jobs.append([f"bearer to {host}", str(spec), f"http://{host}",
                     credentials(sandbox, "bearer"), "fetch"])
    near = write_spec(tmp_path, "leak_plain_near", auth_block("bearer", ""),
                      sandbox.url)
    jobs.append(["absolute URL from a loopback connector", str(near), sandbox.url,
                 credentials(sandbox, "bearer"), f"{far}/code/user"])
    jobs.append(["control: loopback is allowed", str(near), sandbox.url,
                 credentials(sandbox, "bearer"), "fetch"])
    run = subprocess.run([sys.executable, "-c", NO_TRAFFIC], check=False,
                         input=json.dumps(jobs),
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.splitlines()[-1])

    control = results.pop("control: loopback is allowed")
    assert control["error"] is None and any("socket.connect" in e
                                            for e in control["events"]), control
    assert len(results) == len(jobs) - 1
    for name, outcome in results.items():
        assert outcome["error"], f"{name}: credentials were sent over plain http"
        assert "http" in outcome["error"].lower(), outcome["error"]
        assert outcome["events"] == [], f"{name}: traffic before refusing: {outcome}"
        audit.see(name, outcome["error"])
    audit.see("subprocess", run.stdout, run.stderr)
    audit.check()


class _Watching(requests.adapters.HTTPAdapter):
    """A real adapter that notes the TLS settings of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.verify: list[Any] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.verify.append(kwargs.get("verify"))
        return super().send(request, **kwargs)


@pytest.mark.parametrize("environment", [{}, {"CURL_CA_BUNDLE": "",
                                              "REQUESTS_CA_BUNDLE": ""}])
def test_tls_verification_is_on_for_every_request(sandbox, audit, tmp_path,
                                                  monkeypatch, environment) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for method in ("oauth2_cc", "jwt_login", "api_key_query"):
        session = requests.Session()
        watcher = _Watching()
        session.mount("http://", watcher)
        session.mount("https://", watcher)
        conn = open_spec(sandbox, tmp_path, method, session=session,
                         **credentials(sandbox, method))
        conn.fetch("repos", max_pages=1)
        conn.close()
        assert len(watcher.verify) >= (1 if method == "api_key_query" else 2)
        assert all(v is not False and v is not None for v in watcher.verify), (
            method, watcher.verify)
    audit.check()


def test_an_untrusted_certificate_fails_unless_its_ca_is_given(sandbox, audit,
                                                               tmp_path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = Recorder(tls=context)
    try:
        untrusted = open_spec(sandbox, tmp_path, "bearer", base_url=server.url,
                              **credentials(sandbox, "bearer"))
        with pytest.raises(TransportError) as refused:
            untrusted.get("/landed")
        trusted = connect(untrusted.spec, base_url=server.url, ca_bundle=str(bundle),
                          **credentials(sandbox, "bearer"))
        assert trusted.get("/landed") == {"login": "landed"}
    finally:
        server.close()
    assert len(server.seen) == 1, "an untrusted handshake must not reach HTTP"
    audit.see("tls", refused.value)
    audit.check()


def test_the_audit_itself_finds_a_leak(sandbox, audit) -> None:
    """A self-check: the same search does see a secret when one is shown."""
    audit.see("planted", {"value": sandbox.credentials["token"]})
    assert audit.found()
    with pytest.raises(AssertionError):
        audit.check()
