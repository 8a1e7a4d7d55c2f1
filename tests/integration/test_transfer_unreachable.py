"""The transfer engine when an archive is out of reach, when a download is cancelled mid-flight,
and when the node dies under its finishing processes: real sockets on 127.0.0.1 (a port nobody
listens on, a server that accepts and never answers, a file server that goes away), the NBIA
emulator, and a child process killed with SIGKILL."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from mediator_desktop.core.errors import SourceError
from mediator_desktop.core.jobs import JobControl, Progress
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest
from mediator_desktop.core.pointer import Hierarchy
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.source import LeafPlan, RemoteFile
from mediator_desktop.core.transfer import Downloader, Report
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.tcia import TciaSource
from mediator_desktop.sources.transport import CurlTransport
from tests.helpers.idc import series_row, small_index
from tests.helpers.net import free_ports
from tests.helpers.proc import read_line, stop_process
from tests.helpers.tcia_emulator import TciaEmulator
from tests.helpers.transfer import downloader

ADVICE = "check the network, a proxy or VPN, then run the download again"


def tcia_leaves(source_id: str, n: int) -> list[Leaf]:
    fingerprint = Fingerprint(size=1000, count=1)
    return [Leaf(source_id, ("C", f"P{i}", f"S{i}", f"1.2.{i}"), fingerprint) for i in range(n)]


def idc_at(port: int, folder: Path, n: int) -> tuple[IdcSource, list[Leaf]]:
    """An IDC of ``n`` one-instance series whose bucket listings go to 127.0.0.1:``port``."""
    paths = [("coll", f"P{i}", f"P{i}.1", f"1.{i}") for i in range(n)]
    rows = [series_row(path, f"uuid-{i}", [b"x"]) for i, path in enumerate(paths)]
    source = IdcSource(small_index(folder / "index.parquet", rows), endpoint_url=f"http://127.0.0.1:{port}")
    leaves = [
        Leaf("idc", path, Fingerprint(size=1, count=1, version=f"uuid-{i}")) for i, path in enumerate(paths)
    ]
    return source, leaves


def tcia_at(port: int, source_id: str = "tcia", title: str = "The Cancer Imaging Archive") -> TciaSource:
    return TciaSource(source_id, f"http://127.0.0.1:{port}/nbia-api/services/v4/", title=title, backoff=0.01)


class Silent:
    """A server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() a close alone would leave blocked
        self.sock.close()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    try:
        yield server
    finally:
        server.close()


class FileServer:
    """Plain HTTP over a folder on 127.0.0.1, which can go away (its port then refuses)."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.up = True

    def stop(self) -> None:
        if self.up:
            self.up = False
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class Folder:
    """A small archive of one-file series served over HTTP; a leaf may point at another address."""

    source_id = "web"
    title = "Web Archive"
    hierarchy = Hierarchy(("collection", "patient", "study", "series"))
    filterable: tuple[str, ...] = ()
    connections = 4

    def __init__(self, root: Path, port: int, count: int) -> None:
        self.port = port
        self.elsewhere: dict[str, int] = {}  # series -> the port its file is asked from instead
        self.blobs: dict[str, bytes] = {}
        self.leaves: list[Leaf] = []
        for i in range(count):
            series = f"1.{i}"
            blob = os.urandom(1000 + i)
            (root / f"{series}.dcm").write_bytes(blob)
            self.blobs[series] = blob
            self.leaves.append(
                Leaf(self.source_id, ("C", f"P{i}", f"S{i}", series), Fingerprint(size=len(blob), count=1))
            )

    def plan(self, leaf: Leaf) -> LeafPlan:
        series = leaf.path[-1]
        blob = self.blobs[series]
        port = self.elsewhere.get(series, self.port)
        md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
        remote = RemoteFile(f"http://127.0.0.1:{port}/{series}.dcm", "image.dcm", size=len(blob), md5=md5)
        return LeafPlan((remote,), {"modality": "CT"}, count=1)


# -- an archive out of reach -----------------------------------------------------------------------
def test_an_archive_that_refuses_connections_stops_fast_with_one_reason(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # nobody listens there
    source = tcia_at(port)
    seen: list[Progress] = []
    transport = CurlTransport()  # the real retry schedule: half a second, then doubling
    engine = Downloader({"tcia": source}, transport)
    try:
        began = time.monotonic()
        report = engine.download(
            Manifest.build(tcia_leaves("tcia", 168)), tmp_path / "dest", progress=seen.append
        )
        took = time.monotonic() - began
    finally:
        transport.close()
        engine.close()
    assert took < 2.0, f"168 leaves of an unreachable archive took {took:.2f} s"
    reason = report.unreachable["tcia"]
    assert reason == (
        f"cannot reach The Cancer Imaging Archive (127.0.0.1:{port}): "
        f"{reason.split(': ', 1)[1].rsplit('; check', 1)[0]}; {ADVICE}"
    )
    assert "Could not connect" in reason or "Connection refused" in reason
    assert len(report.failed) == 168 and {f.reason for f in report.failed} == {reason}
    assert report.other_failures() == () and report.pending == 0 and not report.cancelled
    assert report.summary().endswith(f"; stopped: {reason}")
    assert transport.requests < 16  # the remaining leaves were never asked for
    assert seen[-1].failed == 168 and "168 failed" in seen[-1].line()


def test_an_archive_whose_listings_cannot_connect_is_given_up_on(tmp_path: Path) -> None:
    """IDC plans each series with a listing (its own HTTP client, with its own retries)."""
    (port,) = free_ports(1)
    source, leaves = idc_at(port, tmp_path, 40)
    with downloader(source) as engine:
        began = time.monotonic()
        report = engine.download(Manifest.build(leaves), tmp_path / "dest", workers=4)
        took = time.monotonic() - began
    reason = report.unreachable["idc"]
    assert reason.startswith(f"cannot reach NCI Imaging Data Commons (127.0.0.1:{port}): ")
    assert reason.endswith(ADVICE) and {f.reason for f in report.failed} == {reason}
    assert len(report.failed) == 40 and took < 10


def test_other_archives_go_on_and_failures_count_as_they_happen(tmp_path: Path) -> None:
    (dead_port,) = free_ports(1)
    with TciaEmulator() as emulator:
        live = TciaSource(base_url=emulator.v4, backoff=0.01)
        manifest = list(live.resolve(Selection.of(live.pointer("LIDC-IDRI"))))[:6]
        dead = tcia_at(dead_port, "dead", "Dead Archive")
        both = Manifest.build([*manifest, *tcia_leaves("dead", 20)])  # "dead/..." sorts first
        emulator.image_delay = 0.2
        seen: list[Progress] = []
        with downloader(live, dead) as engine:
            report = engine.download(both, tmp_path / "dest", progress=seen.append, progress_interval=0.02)
    assert set(report.unreachable) == {"dead"}
    assert report.unreachable["dead"].startswith(f"cannot reach Dead Archive (127.0.0.1:{dead_port}): ")
    assert len(report.fetched) == len(manifest) and len(report.failed) == 20
    assert all(f.source_id == "dead" for f in report.failed) and report.other_failures() == ()
    during = [p for p in seen if p.items_done < len(manifest)]
    assert any(p.failed == 20 and "20 failed" in p.line() for p in during), "failures showed only at the end"


def test_one_unreachable_leaf_among_successes_does_not_stop_the_run(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    server = FileServer(tmp_path / "files")
    try:
        archive = Folder(tmp_path / "files", server.port, 12)
        (archive.elsewhere["1.5"],) = free_ports(1)  # one series asked from where nobody listens
        with downloader(archive) as engine:  # type: ignore[arg-type]
            report = engine.download(Manifest.build(archive.leaves), tmp_path / "dest", workers=2)
    finally:
        server.stop()
    assert report.unreachable == {} and len(report.fetched) == 11
    (failure,) = report.failed
    assert failure.path[-1] == "1.5" and failure.reason.startswith("cannot reach 127.0.0.1:")
    assert ADVICE in failure.reason
    assert report.other_failures() == (failure,)


def test_unreachable_recognises_what_a_sources_own_requests_raised() -> None:
    (port,) = free_ports(1)
    transport = CurlTransport()
    with pytest.raises(SourceError) as refused:
        tcia_at(port).browse()
    gone = transport.unreachable(refused.value)
    assert gone is not None and gone.host == f"127.0.0.1:{port}" and "refused" in gone.reason.lower()
    with TciaEmulator() as emulator:
        emulator_source = TciaSource(base_url=emulator.v4 + "nothing-here/", backoff=0.01)
        with pytest.raises(SourceError) as missing:
            emulator_source.browse()
    assert transport.unreachable(missing.value) is None  # the archive answered: about an item


# -- cancel ----------------------------------------------------------------------------------------
def cancel_latency(engine: Downloader, manifest: Manifest, dest: Path, ready: threading.Event) -> Report:
    """Start ``manifest``, cancel once ``ready`` is set; asserts the download returns in 0.5 s."""
    control = JobControl()
    result: list[Report] = []
    worker = threading.Thread(target=lambda: result.append(engine.download(manifest, dest, control=control)))
    worker.start()
    try:
        assert ready.wait(30), "the download never got going"
        began = time.monotonic()
        control.cancel()
        worker.join(5)
        took = time.monotonic() - began
    finally:
        control.cancel()
        worker.join(30)
    assert not worker.is_alive() and took < 0.5, f"the download returned {took:.3f} s after cancel()"
    (report,) = result
    return report


def until(condition: object, event: threading.Event) -> None:
    """Set ``event`` once ``condition()`` holds (polled on a daemon thread, for 30 s at most)."""

    def poll() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                event.set()
                return
            time.sleep(0.01)

    threading.Thread(target=poll, daemon=True).start()


@pytest.mark.parametrize("where", ["transfers", "listings"])
def test_cancel_returns_at_once_while_connections_hang(silent: Silent, tmp_path: Path, where: str) -> None:
    if where == "transfers":  # TCIA plans without asking: its zips hang
        source: TciaSource | IdcSource = tcia_at(silent.port)
        leaves = tcia_leaves("tcia", 40)
    else:  # IDC lists each series first: the listings hang, inside the source's own client
        source, leaves = idc_at(silent.port, tmp_path, 40)
    ready = threading.Event()
    until(lambda: len(silent.accepted) >= 4, ready)
    with downloader(source) as engine:
        report = cancel_latency(engine, Manifest.build(leaves), tmp_path / "dest", ready)
        assert report.cancelled and report.pending == 40 and not report.failed
        at_once = threading.Event()
        at_once.set()
        again = cancel_latency(engine, Manifest.build(leaves), tmp_path / "dest", at_once)
    assert again.cancelled  # the folder was let go: a new run starts and cancels as quickly


def test_cancel_returns_at_once_against_a_port_that_refuses(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    transport = CurlTransport()
    engine = Downloader({"tcia": tcia_at(port)}, transport)
    ready = threading.Event()
    until(lambda: transport.requests >= 1, ready)
    try:
        report = cancel_latency(engine, Manifest.build(tcia_leaves("tcia", 40)), tmp_path / "dest", ready)
    finally:
        transport.close()
        engine.close()
    assert len(report.failed) + report.pending == 40


def test_cancel_ends_the_wait_before_a_retry(tmp_path: Path) -> None:
    """The archive answered, then went away: its next file waits seconds before a retry (a blip is
    ridden out), and a cancel must not wait with it."""
    (tmp_path / "files").mkdir()
    server = FileServer(tmp_path / "files")

    class GoesAway(Folder):
        """Serves the first series; when the second is planned the port refuses from then on
        (one worker: leaves go one after the other, in key order)."""

        def plan(self, leaf: Leaf) -> LeafPlan:
            if leaf != self.leaves[0]:
                server.stop()
            return super().plan(leaf)

    archive = GoesAway(tmp_path / "files", server.port, 6)
    transport = CurlTransport(backoff=5.0)
    engine = Downloader({"web": archive}, transport)  # type: ignore[dict-item]
    control = JobControl()
    result: list[Report] = []
    worker = threading.Thread(
        target=lambda: result.append(
            engine.download(Manifest.build(archive.leaves), tmp_path / "dest", workers=1, control=control)
        )
    )
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while server.up and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the next file was refused (or cut) at once: it waits five seconds to retry
        began = time.monotonic()
        control.cancel()
        worker.join(5)
        took = time.monotonic() - began
    finally:
        control.cancel()
        worker.join(30)
        server.stop()
        transport.close()
        engine.close()
    assert took < 0.5, f"the download returned {took:.3f} s after cancel()"
    (report,) = result
    assert report.cancelled and report.unreachable == {} and 1 <= len(report.fetched) < 6


# -- finishing processes ---------------------------------------------------------------------------
def worker_pid(stage: Path, downloaded: list[Path]) -> list[Path]:
    """A heavy finishing step that tells which process ran it."""
    return [Path(str(os.getpid()))]


NODE = """
import sys
from pathlib import Path
from mediator_desktop.core.source import LeafPlan
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.sources.transport import CurlTransport
from tests.integration.test_transfer_unreachable import worker_pid

engine = Downloader({}, CurlTransport(), processes=1)
print(engine.finish(LeafPlan((), finish=worker_pid, heavy=True), Path("."), [])[0].name, flush=True)
sys.stdin.read()  # until killed
"""


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_finishing_processes_exit_when_the_node_is_killed(tmp_path: Path) -> None:
    # The killed node's resource tracker complains of leaked semaphores: kept out of the test's output.
    with (tmp_path / "node.err").open("w") as errors:
        node = subprocess.Popen(
            [sys.executable, "-c", NODE],
            cwd=Path(__file__).parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    worker: int | None = None
    try:
        try:
            worker = int(read_line(node, 60))
        except (TimeoutError, RuntimeError, ValueError) as exc:
            raise AssertionError(f"{exc}: {(tmp_path / 'node.err').read_text()}") from None
        assert psutil.Process(worker).ppid() == node.pid and not gone(worker)
        node.send_signal(signal.SIGKILL)
        node.wait(10)
        killed = time.monotonic()
        while not gone(worker) and time.monotonic() - killed < 3:
            time.sleep(0.05)
        assert gone(worker), "the finishing process outlived its node by 3 s"
    finally:
        stop_process(node, 10)
        if worker is not None and not gone(worker):
            psutil.Process(worker).kill()
