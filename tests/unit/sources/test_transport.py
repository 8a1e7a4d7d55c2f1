"""The libcurl transport on local files: resuming a .part, and what it counts as progress."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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
