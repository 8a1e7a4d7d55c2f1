"""The libcurl transport on local files: resuming a .part, and what it counts as progress; how it
takes a 412 (a pinned ETag the file no longer has)."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mediator_desktop.core.errors import IntegrityError
from mediator_desktop.core.jobs import JobControl
from mediator_desktop.core.source import RemoteFile
from mediator_desktop.sources.transport import CurlTransport


def fetch(file: RemoteFile, target: Path) -> tuple[Path, int]:
    counted: list[int] = []
    transport = CurlTransport(backoff=0.01)
    try:
        future = transport.submit(file, target, group="t", control=JobControl(), on_bytes=counted.append)
        return future.result(timeout=30), sum(counted)
    finally:
        transport.close()


def test_a_local_copy_resumes_its_part_file(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    (target.parent / "copy.bin.part").write_bytes(data[: 300 * 1024])  # left by an interrupted run
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    done, counted = fetch(RemoteFile(source.as_uri(), "copy.bin", size=len(data), md5=md5), target)
    assert done.read_bytes() == data and counted == len(data)
    assert not (target.parent / "copy.bin.part").exists()


def test_a_part_file_with_wrong_bytes_is_discarded_and_fetched_again(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    target = tmp_path / "copy.bin"
    (tmp_path / "copy.bin.part").write_bytes(bytes(50_000))  # zeros: not what the source holds
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    done, counted = fetch(RemoteFile(source.as_uri(), "copy.bin", size=len(data), md5=md5), target)
    assert done.read_bytes() == data and counted == len(data)


def test_a_412_to_if_match_fails_the_file_as_changed_and_keeps_nothing(tmp_path: Path) -> None:
    seen: list[str | None] = []

    class Changed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("If-Match"))
            body = b"<Error><Code>PreconditionFailed</Code></Error>"
            self.send_response(412)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Changed)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        target = tmp_path / "object.bin"
        (tmp_path / "object.bin.part").write_bytes(b"half of the old bytes")  # an interrupted run's
        file = RemoteFile(
            f"http://127.0.0.1:{server.server_port}/b/object.bin",
            "object.bin",
            headers=(("If-Match", '"e1"'),),
        )
        with pytest.raises(IntegrityError, match=r"changed since the set was resolved \(HTTP 412"):
            fetch(file, target)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ['"e1"']  # asked once: a 412 is not retried
    assert not target.exists() and not (tmp_path / "object.bin.part").exists()
