"""The libcurl transport on local files: resuming a .part, and what it counts as progress; how it
takes a 412 (a pinned ETag the file no longer has); durable files synced before they are handed
over, and the writing threads' backlog holding the loops back without a hang."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from mediator_desktop.core.errors import IntegrityError
from mediator_desktop.core.jobs import JobControl
from mediator_desktop.core.source import RemoteFile
from mediator_desktop.sources import transport as transport_module
from mediator_desktop.sources.transport import CurlTransport
from tests.helpers.net import send_body


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


class _Blobs(BaseHTTPRequestHandler):
    blobs: ClassVar[dict[str, bytes]]
    wrong: ClassVar[dict[str, int]]  # path -> how many more times to answer zeros of the right size

    def do_GET(self) -> None:
        body = self.blobs[self.path]
        if self.wrong.get(self.path):
            self.wrong[self.path] -= 1
            body = bytes(len(body))
        send_body(self, 200, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def blobs() -> Iterator[tuple[str, dict[str, bytes], dict[str, int]]]:
    """A server answering ``GET /name`` with ``blobs[name]`` (zeros while ``wrong[name]`` counts
    down): its base URL, the blobs and ``wrong``."""
    served: dict[str, bytes] = {}
    wrong: dict[str, int] = {}
    handler = type("Blobs", (_Blobs,), {"blobs": served, "wrong": wrong})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", served, wrong
    finally:
        server.shutdown()
        server.server_close()


def _file(base: str, served: dict[str, bytes], name: str) -> RemoteFile:
    data = served[f"/{name}"]
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return RemoteFile(f"{base}/{name}", name, size=len(data), md5=md5)


@pytest.mark.parametrize("sync", ["syncfs", "fsync", "syncfs fails", "syncfs raises"])
def test_a_durable_file_is_synced_before_its_future_ends(
    tmp_path: Path,
    blobs: tuple[str, dict[str, bytes], dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
    sync: str,
) -> None:
    """Gathered in memory (small) or streamed into its ``.part`` (large), a ``durable`` file's data
    is on the disk before the engine hears of it: fsynced, or (where ``syncfs`` exists) its file
    system synced once it was whole, and a ``.part`` before its rename; without ``durable``
    nothing is synced. When ``syncfs`` fails (an I/O error of the file system) or raises, each
    file of the batch is fsynced on its own."""
    if sync != "fsync" and transport_module._SYNCFS is None:
        pytest.skip("no syncfs here (Linux only)")
    base, served, _ = blobs
    served.update({"/small": os.urandom(50_000), "/large": os.urandom(3 << 20)})
    synced: list[tuple[str, int]] = []  # (a file, its size) when it was synced
    real_fsync, real_syncfs = os.fsync, transport_module._SYNCFS

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))

    def syncfs(fd: int) -> int:
        if sync == "syncfs fails":
            return -1
        if sync == "syncfs raises":  # the syncing thread must live on (the futures would hang)
            raise RuntimeError("syncfs broke")
        folder = os.readlink(f"/proc/self/fd/{fd}")
        whole = [(str(p), p.stat().st_size) for p in Path(folder).iterdir()]  # what this sync covers
        assert real_syncfs is not None
        done = real_syncfs(fd)
        synced.extend(whole)
        return done

    monkeypatch.setattr(transport_module.os, "fsync", fsync)
    monkeypatch.setattr(transport_module, "_SYNCFS", None if sync == "fsync" else syncfs)
    monkeypatch.setattr(transport_module, "WRITEBACK_EVERY", 1 << 20)  # written back as it arrives too
    transport = CurlTransport(backoff=0.01)
    try:
        for durable in (True, False):
            synced.clear()
            folder = tmp_path / str(durable)
            folder.mkdir()
            futures = {
                name: transport.submit(
                    _file(base, served, name), folder / name, group="t", control=JobControl(),
                    on_bytes=lambda n: None, durable=durable,
                )
                for name in ("small", "large")
            }  # fmt: skip
            for name, future in futures.items():
                data = served[f"/{name}"]
                assert future.result(timeout=30).read_bytes() == data
                if durable:  # the small one where it landed, the large one as its .part before the rename
                    where = str(folder / ("small" if name == "small" else "large.part"))
                    assert (where, len(data)) in synced, f"{where} not synced whole: {synced}"
            if not durable:
                assert synced == []
    finally:
        transport.close()


def test_files_arrive_while_the_writing_threads_hold_the_loops_back(
    tmp_path: Path, blobs: tuple[str, dict[str, bytes], dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond ``FINISH_BACKLOG`` bytes waiting to be written no transfer starts; each file written
    lets the next start (nothing waits forever), and a file whose bytes fail their MD5 on a writing
    thread goes back to its loop and is fetched again."""
    base, served, wrong = blobs
    monkeypatch.setattr(transport_module, "FINISH_BACKLOG", 1)  # every file holds the loops back
    for i in range(40):
        served[f"/f{i}"] = os.urandom(10_000 + i)
    wrong["/f3"] = 1  # zeros once, then the right bytes
    transport = CurlTransport(backoff=0.01)
    try:
        futures = [
            transport.submit(
                _file(base, served, f"f{i}"), tmp_path / f"f{i}", group="t", control=JobControl(),
                on_bytes=lambda n: None, durable=True,
            )
            for i in range(40)
        ]  # fmt: skip
        for i, future in enumerate(futures):
            assert future.result(timeout=30).read_bytes() == served[f"/f{i}"]
        assert transport.requests == 41 and wrong["/f3"] == 0
    finally:
        transport.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"f{i}" for i in range(40))
