"""moto's standalone S3 server on a free loopback port: a real HTTP S3 endpoint for tests.

By default moto checks no signature. ``MotoServer(auth=True)`` makes it check every request as AWS
does: an IAM user allowed every S3 action is created while checks are still off, then moto's
``INITIAL_NO_AUTH_ACTION_COUNT`` is set to 0 (``/moto-api/reset-auth``), so from then on a wrong
secret is ``SignatureDoesNotMatch`` and an unknown key ``InvalidAccessKeyId``. ``client()`` signs
with that user's key. (moto 5.2 then answers presigned GETs and unsigned requests with a 500: test
downloads on a server without auth.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import requests

from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process


class MotoServer:
    def __init__(self, *, auth: bool = False) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.auth = auth
        #: (access key id, secret access key) that ``client()`` signs with.
        self.access_key = ("test", "test")

    def start(self, timeout: float = 30.0) -> MotoServer:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                # moto answers its first request slowly (it imports its backends then); a loaded
                # machine makes that seconds: wait for the answer, not only for the port.
                requests.get(self.url, timeout=max(1.0, deadline - time.monotonic()))
                break
            except (requests.ConnectionError, requests.Timeout):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        if self.auth:
            try:
                self._check_signatures()
            except BaseException:
                self.stop()
                raise
        return self

    def _check_signatures(self) -> None:
        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        iam.create_user(UserName="lab")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="lab", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="lab")["AccessKey"]
        self.access_key = (key["AccessKeyId"], key["SecretAccessKey"])
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key[0],
            aws_secret_access_key=self.access_key[1],
        )

    def public_bucket(self, name: str) -> None:
        """A bucket anyone may list and read, as IDC's are."""
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
                 "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]},
            ],
        }  # fmt: skip
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))

    def stop(self) -> None:
        stop_process(self.proc, 10)
