"""AWS SigV4: AWS's published test suite, botocore's signer, and moto's server."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from restconnect.auth.sigv4 import SigV4Auth, SigV4Options
from restconnect.secret import Secret

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / ".." / "shared" / "vectors" / "aws-sigv4"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc)

# requests keeps one value per header name and refuses line breaks in a value.
NOT_EXPRESSIBLE = {
    "get-header-key-duplicate": "a header name repeated with several values",
    "get-header-value-order": "a header name repeated with several values",
    "get-header-value-multiline": "a header value folded over several lines",
}


def _cases() -> list[Path]:
    if not VECTORS.is_dir():
        return []
    return sorted(path.parent for path in VECTORS.rglob("*.req"))


def _token_in(case: Path) -> str | None:
    """The session token the case's signed request (.sreq) carries, if any."""
    _, _, headers, _ = _parse_req(case / f"{case.name}.sreq")
    for name, value in headers:
        if name.lower() == "x-amz-security-token":
            return value
    return None


def _parse_req(path: Path) -> tuple[str, str, list[tuple[str, str]], bytes]:
    head, _, body = path.read_bytes().partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
            continue
        name, _, value = line.partition(":")
        headers.append((name, value))
    return method, target, headers, body


def _request_for(case: Path) -> requests.PreparedRequest:
    """The .req as a PreparedRequest whose request target is exactly the file's."""
    method, target, headers, body = _parse_req(case / f"{case.name}.req")
    names = [name.lower() for name, _ in headers]
    if len(set(names)) != len(names) or any("\n" in v for _, v in headers):
        pytest.skip("requests' header model cannot carry this request")
    prepared = requests.PreparedRequest()
    prepared.method = method
    kept = {n: v for n, v in headers if n.lower() not in ("x-amz-date",
                                                          "x-amz-security-token")}
    host = dict((n.lower(), v) for n, v in headers)["host"]
    prepared.url = f"https://{host}{target}"
    prepared.headers = CaseInsensitiveDict(kept)
    prepared.body = body or None
    return prepared


def _suite_handler(token: str | None = None, sign_token: bool = True) -> SigV4Auth:
    options = SigV4Options(service="service", region="us-east-1",
                           unsigned_headers=[], sign_session_token=sign_token)
    creds = {"access_key_id": ACCESS_KEY, "secret_access_key": Secret(SECRET_KEY)}
    if token:
        creds["session_token"] = Secret(token)
    return SigV4Auth(options, creds, clock=lambda: SUITE_TIME)


def test_suite_is_complete():
    if not VECTORS.is_dir():
        pytest.skip(f"AWS SigV4 test suite not found at {VECTORS}")
    assert len(_cases()) == 34


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_aws_suite_vector(case: Path):
    if case.name in NOT_EXPRESSIBLE:
        pytest.skip(f"requests cannot send {NOT_EXPRESSIBLE[case.name]}")
    prepared = _request_for(case)
    token = _token_in(case)
    handler = _suite_handler(token, sign_token=case.name != "post-sts-header-after")
    parts = handler.signed_parts(prepared)
    stem = case / case.name
    assert parts.canonical_request == stem.with_suffix(".creq").read_text()
    assert parts.string_to_sign == stem.with_suffix(".sts").read_text()
    assert parts.authorization == stem.with_suffix(".authz").read_text()
    assert prepared.headers["Authorization"] == parts.authorization
    if token:
        assert prepared.headers["X-Amz-Security-Token"] == token


def test_every_skip_is_a_real_limit():
    """The skipped cases really repeat or fold a header; nothing else is skipped."""
    if not VECTORS.is_dir():
        pytest.skip(f"AWS SigV4 test suite not found at {VECTORS}")
    for name in NOT_EXPRESSIBLE:
        _, _, headers, _ = _parse_req(VECTORS / name / f"{name}.req")
        names = [n.lower() for n, _ in headers]
        assert len(set(names)) != len(names) or any("\n" in v for _, v in headers)


# ------------------------------------------------------------------ botocore


def _botocore_sign(prepared: requests.PreparedRequest, service: str, region: str,
                   token: str | None, monkeypatch, s3: bool = False) -> str:
    auth_mod = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    monkeypatch.setattr(auth_mod, "get_current_datetime", lambda: SUITE_TIME)
    headers = {k: v for k, v in prepared.headers.items()
               if k.lower() not in ("authorization", "x-amz-date",
                                    "x-amz-security-token", "x-amz-content-sha256")}
    request = AWSRequest(method=prepared.method, url=prepared.url, headers=headers,
                         data=prepared.body or b"")
    signer_cls = auth_mod.S3SigV4Auth if s3 else auth_mod.SigV4Auth
    signer_cls(Credentials(ACCESS_KEY, SECRET_KEY, token), service, region
               ).add_auth(request)
    return request.headers["Authorization"]


BOTOCORE_UNSIGNED = [
    "authorization", "connection", "expect", "user-agent", "x-amzn-trace-id",
    "transfer-encoding", "keep-alive", "te", "trailer", "upgrade",
]

REAL_REQUESTS = [
    ("GET", "https://sts.amazonaws.com/", {"Action": "GetCallerIdentity",
                                          "Version": "2011-06-15"}, None),
    ("GET", "https://execute-api.eu-west-1.amazonaws.com/prod/items/a b",
     {"q": "space here", "z": "1", "a": "~x*"}, None),
    ("POST", "https://dynamodb.eu-west-1.amazonaws.com/", None,
     b'{"TableName":"orders"}'),
    ("GET", "https://logs.eu-west-1.amazonaws.com//a/./b/../c", None, None),
]


@pytest.mark.parametrize("method,url,params,body", REAL_REQUESTS)
@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLETOKEN//+=="])
def test_matches_botocore(method, url, params, body, token, monkeypatch):
    service = urlparse_service(url)
    prepared = requests.Request(method, url, params=params, data=body,
                                headers={"Content-Type": "application/x-amz-json-1.0"}
                                if body else {}).prepare()
    options = SigV4Options(service=service, region="eu-west-1",
                           unsigned_headers=BOTOCORE_UNSIGNED)
    creds = {"access_key_id": ACCESS_KEY, "secret_access_key": Secret(SECRET_KEY)}
    if token:
        creds["session_token"] = Secret(token)
    SigV4Auth(options, creds, clock=lambda: SUITE_TIME)(prepared)
    expected = _botocore_sign(prepared, service, "eu-west-1", token, monkeypatch)
    assert prepared.headers["Authorization"] == expected


def test_s3_matches_botocore(monkeypatch):
    prepared = requests.Request(
        "PUT", "https://my-bucket.s3.eu-west-1.amazonaws.com/photos//2024/a+b.jpg",
        data=b"\x89PNG...").prepare()
    options = SigV4Options(service="s3", region="eu-west-1",
                           unsigned_headers=BOTOCORE_UNSIGNED)
    creds = {"access_key_id": ACCESS_KEY, "secret_access_key": Secret(SECRET_KEY)}
    SigV4Auth(options, creds, clock=lambda: SUITE_TIME)(prepared)
    assert prepared.headers["X-Amz-Content-SHA256"] == hashlib.sha256(
        b"\x89PNG...").hexdigest()
    expected = _botocore_sign(prepared, "s3", "eu-west-1", None, monkeypatch, s3=True)
    assert prepared.headers["Authorization"] == expected


def urlparse_service(url: str) -> str:
    return url.split("//", 1)[1].split(".", 1)[0]


def test_signing_cost_is_small():
    """Not a timed assertion: signing must not dominate a request (printed)."""
    options = SigV4Options(service="s3", region="eu-west-1")
    handler = SigV4Auth(options, {"access_key_id": ACCESS_KEY,
                                  "secret_access_key": Secret(SECRET_KEY)})
    prepared = requests.Request("GET", "https://b.s3.amazonaws.com/",
                                params={"list-type": "2", "max-keys": "100"}).prepare()
    start = time.perf_counter()
    for _ in range(2000):
        handler(prepared.copy())
    per_request = (time.perf_counter() - start) / 2000
    print(f"SigV4 signing: {per_request * 1e6:.1f} microseconds per request")


# ------------------------------------------------------------------ moto


from tests.servers.moto_server import moto_aws  # noqa: E402,F401  (a fixture)

SPEC = REPO / "connectors" / "aws_logs.yaml"


@pytest.mark.peer
def test_moto_accepts_the_right_secret(moto_aws):
    from restconnect import connect

    conn = connect(str(SPEC), base_url=moto_aws.url,
                   access_key_id=moto_aws.access_key_id,
                   secret_access_key=moto_aws.secret_access_key)
    with conn:
        groups = conn.fetch("log_groups")
        group_pages = conn.last_result.pages
        events = conn.fetch("events", logGroupName=moto_aws.log_groups[0])
    assert sorted(groups["logGroupName"]) == moto_aws.log_groups
    assert group_pages == 2 and len(events) == 5
    assert list(events["message"]) == moto_aws.events
    assert conn.auth[0].describe()["service"] == "logs"


@pytest.mark.peer
def test_moto_refuses_a_wrong_secret(moto_aws, caplog):
    from restconnect import connect
    from restconnect.exceptions import RestConnectError

    wrong = moto_aws.secret_access_key[:-4] + "AAAA"
    conn = connect(str(SPEC), base_url=moto_aws.url,
                   access_key_id=moto_aws.access_key_id, secret_access_key=wrong)
    with conn, pytest.raises(RestConnectError) as info:
        conn.fetch("log_groups")
    text = str(info.value)
    assert "403" in text and "signature" in text.lower()
    assert wrong not in text and wrong not in caplog.text


@pytest.mark.peer
def test_moto_refuses_a_forged_signature(moto_aws):
    response = requests.post(f"{moto_aws.url}/", data=b"{}", timeout=10, headers={
        "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Date": "20240101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential="
                         f"{moto_aws.access_key_id}/20240101/us-east-1/logs/"
                         "aws4_request,"
                         " SignedHeaders=host;x-amz-date, Signature=" + "0" * 64})
    assert response.status_code == 403
