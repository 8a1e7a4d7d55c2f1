"""A real Orthanc server (Debian packages orthanc, orthanc-dicomweb) on a free loopback port."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "lab", "orthanc-test-password"


class Orthanc:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.http_port, self.dicom_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.auth = (USER, PASSWORD)
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("Orthanc") is not None and PLUGIN.exists()

    def start(self, timeout: float = 30.0) -> Orthanc:
        config = {
            "Name": "MEDIatorTest",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpsVerifyPeers": False,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "orthanc.json").write_text(json.dumps(config))
        log = (self.root / "orthanc.log").open("wb")
        self.proc = subprocess.Popen(["Orthanc", str(self.root / "orthanc.json")], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                wait = max(1.0, deadline - time.monotonic())  # a loaded machine answers late
                if requests.get(f"{self.url}/system", auth=self.auth, timeout=wait).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("Orthanc did not answer in time")
            time.sleep(0.05)

    def upload(self, files: list[Path]) -> None:
        for path in files:
            response = requests.post(
                f"{self.url}/instances", data=path.read_bytes(), auth=self.auth, timeout=30
            )
            response.raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc, 15)
