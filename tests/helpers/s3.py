"""moto's standalone S3 server on a free loopback port: a real HTTP S3 endpoint for tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import requests

from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process


class MotoServer:
    def __init__(self) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.url, timeout=1)
                return self
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
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
