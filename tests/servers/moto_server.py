"""moto's AWS server on 127.0.0.1, with request-signature checking switched on.

moto checks SigV4 signatures (and IAM policies) once its "no auth" allowance
of requests is used up. The fixture sets up an IAM user with an access key
while checking is off, then turns it on with moto's ``/moto-api/reset-auth``
endpoint, so every later request must be signed with that user's key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

POLICY = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class MotoAWS:
    url: str
    access_key_id: str
    secret_access_key: str
    log_groups: list[str]
    events: list[str]


def _setup(url: str) -> MotoAWS:
    import boto3

    root = {"endpoint_url": url, "region_name": "us-east-1",
            "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **root)
    iam.create_user(UserName="restconnect-test")
    iam.put_user_policy(UserName="restconnect-test", PolicyName="all",
                        PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName="restconnect-test")["AccessKey"]
    logs = boto3.client("logs", **root)
    # More groups than one page of 50 holds, so pagination is exercised.
    groups = [f"/restconnect/test-{index:02d}" for index in range(57)]
    for name in groups:
        logs.create_log_group(logGroupName=name)
    logs.create_log_stream(logGroupName=groups[0], logStreamName="app")
    events = [f"event number {index}" for index in range(5)]
    now_ms = int(time.time() * 1000) - 60_000
    logs.put_log_events(logGroupName=groups[0], logStreamName="app", logEvents=[
        {"timestamp": now_ms + index, "message": message}
        for index, message in enumerate(events)])
    return MotoAWS(url, key["AccessKeyId"], key["SecretAccessKey"], groups, events)


def _set_auth_allowance(url: str, count: float) -> None:
    response = requests.post(f"{url}/moto-api/reset-auth", data=str(count).encode(),
                             timeout=10)
    response.raise_for_status()


@pytest.fixture(scope="module")
def moto_aws() -> Iterator[MotoAWS]:
    """A signature-checking moto server with an IAM user and 57 log groups."""
    server_mod = pytest.importorskip("moto.moto_server.threaded_moto_server")
    pytest.importorskip("boto3")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0,
                                           verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        world = _setup(url)
        _set_auth_allowance(url, 0)
        yield world
        _set_auth_allowance(url, float("inf"))
    finally:
        server.stop()
