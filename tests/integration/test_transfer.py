"""The transfer engine end to end: the IDC source against moto's S3 server (behind a proxy that
counts requests and injects faults), the TCIA source against the NBIA emulator, real files on disk."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mediator_desktop.core.errors import DownloadBusy, InsufficientSpace, ValidationError
from mediator_desktop.core.jobs import JobControl, Progress
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.transfer import _stage_name
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.tcia import TciaSource
from tests.helpers.faulty_proxy import FaultyProxy
from tests.helpers.idc import series_row, small_index, upload_series
from tests.helpers.proc import stop_process
from tests.helpers.s3 import MotoServer
from tests.helpers.tcia_emulator import TciaEmulator
from tests.helpers.transfer import downloader, files_under

BUCKET = "idc-open-data"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        server.public_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultyProxy]:
    with FaultyProxy(moto.url) as p:
        yield p


@dataclass
class World:
    """Series in a bucket and an index that points at them."""

    moto: MotoServer
    proxy: FaultyProxy
    root: Path
    rows: list[dict[str, object]] = field(default_factory=list)
    blobs: dict[str, list[bytes]] = field(default_factory=dict)  # by uuid

    def add(self, patient: str, series: str, count: int, *, size: int = 2000, modality: str = "CT") -> str:
        uuid = hashlib.sha1(f"{self.root}{patient}{series}{len(self.rows)}".encode()).hexdigest()
        blobs = [os.urandom(size) for _ in range(count)]
        upload_series(self.moto.client(), BUCKET, uuid, blobs)
        self.rows.append(
            series_row(("coll", patient, f"{patient}.1", series), uuid, blobs, modality=modality)
        )
        self.blobs[uuid] = blobs
        return uuid

    def source(self, name: str = "index") -> IdcSource:
        index = small_index(self.root / f"{name}.parquet", list(self.rows))
        return IdcSource(index, endpoint_url=self.proxy.url)

    def manifest(self, source: IdcSource) -> Manifest:
        return source.resolve(Selection.of(source.pointer("coll")))


@pytest.fixture
def world(moto: MotoServer, proxy: FaultyProxy, tmp_path: Path) -> World:
    return World(moto, proxy, tmp_path)


def folder_of(dest: Path, patient: str, series: str, modality: str = "CT") -> Path:
    return dest / "coll" / patient / f"{patient}.1" / f"{modality}_{series}"


def test_download_places_files_and_an_unchanged_rerun_asks_nothing(world: World, tmp_path: Path) -> None:
    uuids = [world.add("P1", "1.1", 3), world.add("P1", "1.2", 2, modality="MR"), world.add("P2", "2.1", 4)]
    source = world.source()
    manifest = world.manifest(source)
    dest = tmp_path / "dest"
    seen: list[Progress] = []
    with downloader(source) as d:
        report = d.download(manifest, dest, progress=seen.append)
        assert report.ok and len(report.fetched) == 3 and report.bytes == 9 * 2000
        assert (folder_of(dest, "P1", "1.1") / "inst-0.dcm").read_bytes() == world.blobs[uuids[0]][0]
        assert (folder_of(dest, "P1", "1.2", "MR") / "inst-1.dcm").read_bytes() == world.blobs[uuids[1]][1]
        assert len(files_under(dest)) == 9
        assert seen[-1].items_done == 3 and seen[-1].bytes_done == seen[-1].bytes_total == 9 * 2000
        asked = len(world.proxy.requests)
        again = d.download(manifest, dest)
    assert again.ok and again.fetched == () and again.unchanged == 3
    assert len(world.proxy.requests) == asked  # not even a listing
    assert not list((dest / ".mediator").glob("partial/*"))  # no staging left behind


def test_a_new_version_fetches_only_what_changed_and_prunes_only_on_request(
    world: World, tmp_path: Path
) -> None:
    world.add("P1", "1.1", 2)
    world.add("P1", "1.2", 2)
    world.add("P2", "2.1", 2)
    v1_source = world.source("v1")
    v1 = world.manifest(v1_source)
    dest = tmp_path / "dest"
    with downloader(v1_source) as d:
        assert d.download(v1, dest).ok
    (folder_of(dest, "P2", "2.1") / "my-notes.txt").write_text("mine")
    # version 2: 1.1 unchanged, 1.2 revised (a new uuid, new bytes), 2.1 withdrawn, 3.1 new
    world.rows = [r for r in world.rows if r["SeriesInstanceUID"] == "1.1"]
    revised = world.add("P1", "1.2", 3)
    world.add("P3", "3.1", 1)
    v2_source = world.source("v2")
    v2 = world.manifest(v2_source)
    before = len(world.proxy.gets())
    with downloader(v2_source) as d:
        report = d.download(v2, dest)
        assert report.ok and len(report.fetched) == 2 and report.unchanged == 1 and len(report.removed) == 1
        assert len(world.proxy.gets()) - before == 3 + 1 + 2  # two listings, four objects
        assert [
            (folder_of(dest, "P1", "1.2") / f"inst-{i}.dcm").read_bytes() for i in range(3)
        ] == world.blobs[revised]
        assert (folder_of(dest, "P2", "2.1") / "inst-0.dcm").exists()  # reported, not deleted
        pruned = d.download(v2, dest, prune=True)
    assert pruned.pruned == report.removed and pruned.fetched == ()
    assert sorted(p.name for p in folder_of(dest, "P2", "2.1").iterdir()) == ["my-notes.txt"]


def test_a_revised_series_whose_files_all_have_new_names_lands_in_its_folder(
    world: World, tmp_path: Path
) -> None:
    """The old version's files go first, and with them the folder they leave empty: the new
    version's folder is made again (a 1%-changed rerun at the original's scale failed on it)."""
    world.add("P1", "1.1", 2)
    world.add("P1", "1.2", 2)
    dest = tmp_path / "dest"
    with downloader(world.source("v1")) as d:
        assert d.download(world.manifest(world.source("v1")), dest).ok
    uuid = hashlib.sha1(f"{tmp_path}revised".encode()).hexdigest()
    blobs = [os.urandom(1500) for _ in range(3)]
    s3 = world.moto.client()
    for i, blob in enumerate(blobs):  # IDC names a new version's instances anew
        s3.put_object(Bucket=BUCKET, Key=f"{uuid}/rev-{i}.dcm", Body=blob)
    world.rows = [r for r in world.rows if r["SeriesInstanceUID"] != "1.2"]
    world.rows.append(series_row(("coll", "P1", "P1.1", "1.2"), uuid, blobs))
    v2 = world.source("v2")
    with downloader(v2) as d:
        report = d.download(world.manifest(v2), dest)
    assert report.ok and len(report.fetched) == 1, report.summary()
    folder = folder_of(dest, "P1", "1.2")
    assert sorted(p.name for p in folder.iterdir()) == ["rev-0.dcm", "rev-1.dcm", "rev-2.dcm"]
    assert [(folder / f"rev-{i}.dcm").read_bytes() for i in range(3)] == blobs


@pytest.mark.parametrize("fault", ["corrupt", "cut", "503", "ignore_range"])
def test_a_fault_once_is_retried_and_the_file_is_right(world: World, tmp_path: Path, fault: str) -> None:
    uuid = world.add("P1", "1.1", 2, size=300_000)
    source = world.source()
    world.proxy.fault(f"{uuid}/inst-1.dcm", "cut" if fault == "ignore_range" else fault)
    if fault == "ignore_range":
        world.proxy.ignore_range = True
    with downloader(source) as d:
        report = d.download(world.manifest(source), tmp_path / "dest")
    assert report.ok, report.failed
    assert (folder_of(tmp_path / "dest", "P1", "1.1") / "inst-1.dcm").read_bytes() == world.blobs[uuid][1]
    gets = world.proxy.gets(f"{uuid}/inst-1.dcm")
    assert len(gets) == 2
    if fault in ("cut", "ignore_range"):  # resumed where the cut left it (the server may ignore it)
        assert gets[1][2].startswith("bytes=") and gets[1][2] != "bytes=0-"
    else:
        assert gets[1][2] == ""


def test_bytes_that_stay_wrong_are_reported_and_never_kept(world: World, tmp_path: Path) -> None:
    bad = world.add("P1", "1.1", 2)
    world.add("P1", "1.2", 2)
    source = world.source()
    world.proxy.fault(f"{bad}/inst-0.dcm", "corrupt", "corrupt", "corrupt")
    dest = tmp_path / "dest"
    with downloader(source) as d:
        report = d.download(world.manifest(source), dest)
        assert len(report.fetched) == 1 and [f.path[-1] for f in report.failed] == ["1.1"]
        assert "MD5" in report.failed[0].reason and "3 times" in report.failed[0].reason
        assert not folder_of(dest, "P1", "1.1").exists()
        assert not [p for p in (dest / ".mediator").rglob("*.part")]
        retried = d.download(world.manifest(source), dest, only=report.retry_keys())
    assert retried.ok and retried.fetched == tuple(f.key for f in report.failed)
    assert len(world.proxy.gets(f"{bad}/inst-1.dcm")) == 1  # the good file of the leaf was kept


def test_too_little_space_is_refused_before_anything_is_fetched(world: World, tmp_path: Path) -> None:
    world.add("P1", "1.1", 1)
    world.rows[0]["series_size_MB"] = 10.0**12  # an exabyte
    source = world.source()
    with downloader(source) as d, pytest.raises(InsufficientSpace, match="free some space"):
        d.download(world.manifest(source), tmp_path / "dest")
    assert world.proxy.requests == [] and files_under(tmp_path / "dest") == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_leaf_clearly_and_leaves_no_partial_file(
    world: World, small_disk: Path
) -> None:
    world.add("P1", "1.1", 4, size=400_000)
    world.rows[0]["series_size_MB"] = 0.1  # the archive under-reports: the space check passes
    source = world.source()
    with downloader(source) as d:
        report = d.download(world.manifest(source), small_disk / "dest")
    assert [f.path[-1] for f in report.failed] == ["1.1"] and "disk is full" in report.failed[0].reason
    assert files_under(small_disk / "dest") == []
    assert not [p for p in (small_disk / "dest").rglob("*.part")]


def test_archive_names_cannot_escape_and_layouts_cannot_collide(world: World, tmp_path: Path) -> None:
    world.add("../../etc", "CON", 1, modality="a/b")
    world.add("P1", "1.2", 1)
    source = world.source()
    dest = tmp_path / "dest"
    with downloader(source) as d:
        report = d.download(world.manifest(source), dest)
        assert report.ok
        assert sorted(files_under(dest)) == [
            "coll/.._.._etc/.._.._etc.1/a_b_CON/inst-0.dcm",
            "coll/P1/P1.1/CT_1.2/inst-0.dcm",
        ]
        clash = d.download(world.manifest(source), tmp_path / "flat", layout="{collection}")
    assert len(clash.fetched) == 1 and "two leaves the same folder" in clash.failed[0].reason
    (tmp_path / "foreign" / "coll").mkdir(parents=True)
    (tmp_path / "foreign" / "coll" / "inst-0.dcm").write_text("someone else's")
    with downloader(source) as d:
        foreign = d.download(world.manifest(source), tmp_path / "foreign", layout="{collection}")
    assert all("not written by MEDIator" in f.reason or "same folder" in f.reason for f in foreign.failed)
    assert (tmp_path / "foreign" / "coll" / "inst-0.dcm").read_text() == "someone else's"


def test_pause_resume_cancel_and_one_download_per_folder(world: World, tmp_path: Path) -> None:
    for i in range(6):
        world.add(f"P{i}", f"{i}.1", 2)
    source = world.source()
    manifest = world.manifest(source)
    dest = tmp_path / "dest"
    control = JobControl()
    control.pause()
    result: list[object] = []
    with downloader(source) as d:
        worker = threading.Thread(target=lambda: result.append(d.download(manifest, dest, control=control)))
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while not (dest / ".mediator" / "lock").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(DownloadBusy, match="another download"):
                d.download(manifest, dest)
            assert world.proxy.gets() == []  # paused from the start: nothing asked
            control.cancel()
        finally:
            worker.join(30)
        (cancelled,) = result
        assert cancelled.cancelled and cancelled.pending == 6 and not cancelled.failed  # type: ignore[attr-defined]
        finished = d.download(manifest, dest)
    assert finished.ok and len(finished.fetched) == 6


CHILD = """
import sys
from pathlib import Path
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.sources.tcia import TciaSource
from mediator_desktop.sources.transport import CurlTransport

base, manifest_file, dest = sys.argv[1:]
source = TciaSource(base_url=base, backoff=0.01)
manifest = Manifest.decode(Path(manifest_file).read_bytes())
Downloader({"tcia": source}, CurlTransport()).download(manifest, Path(dest), workers=1)
"""


def test_sigkill_mid_download_then_a_rerun_fetches_only_the_rest(tmp_path: Path) -> None:
    with TciaEmulator() as emulator:
        source = TciaSource(base_url=emulator.v4, backoff=0.01)
        manifest = source.resolve(Selection.of(source.pointer("LIDC-IDRI")))
        assert len(manifest) >= 4
        (tmp_path / "manifest").write_bytes(manifest.encode())
        dest = tmp_path / "dest"
        emulator.image_delay = 0.15
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, emulator.v4, str(tmp_path / "manifest"), str(dest)],
            cwd=Path(__file__).parents[2],
        )
        try:
            done: list[str] = []
            deadline = time.monotonic() + 60
            while len(done) < 2 and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.05)
                if (dest / ".mediator" / "state.sqlite").exists():
                    try:
                        with sqlite3.connect(dest / ".mediator" / "state.sqlite") as db:
                            done = [k for (k,) in db.execute("select key from leaves where status = 'done'")]
                    except sqlite3.OperationalError:  # tables not there yet
                        pass
            assert child.poll() is None and len(done) >= 2, "the child finished or stalled before the kill"
            child.send_signal(signal.SIGKILL)
        finally:
            stop_process(child, 10)
        emulator.image_delay = 0.0
        before = emulator.image_requests.copy()
        with downloader(source) as d:
            report = d.download(manifest, dest)
        assert report.ok and report.unchanged >= len(done)
        rerequested = {
            k for k in done if emulator.image_requests[k.split("\x1f")[-1]] != before[k.split("\x1f")[-1]]
        }
        assert not rerequested
        assert len(report.fetched) + report.unchanged == len(manifest)


def test_a_pause_holds_new_transfers_until_resumed(tmp_path: Path) -> None:
    with TciaEmulator() as emulator:
        source = TciaSource(base_url=emulator.v4, backoff=0.01)
        manifest = source.resolve(Selection.of(source.pointer("LIDC-IDRI")))
        control = JobControl()
        paused = threading.Event()

        def on_progress(p: Progress) -> None:
            if p.items_done >= 1 and not paused.is_set():
                control.pause()
                paused.set()

        emulator.image_delay = 0.05
        with downloader(source) as d:
            result: list[object] = []
            worker = threading.Thread(
                target=lambda: result.append(
                    d.download(
                        manifest,
                        tmp_path / "dest",
                        workers=1,
                        progress=on_progress,
                        control=control,
                        progress_interval=0.01,
                    )
                )
            )
            worker.start()
            try:
                assert paused.wait(30)
                asked = sum(emulator.image_requests.values())
                assert not threading.Event().wait(0.5)  # half a second paused...
                assert sum(emulator.image_requests.values()) <= asked + 1  # ...starts nothing new
            finally:
                control.resume()
                worker.join(60)
        (report,) = result
        assert report.ok and len(report.fetched) == len(manifest)  # type: ignore[attr-defined]


def test_an_update_that_cannot_be_placed_keeps_the_version_on_disk(world: World, tmp_path: Path) -> None:
    """The new version of a series would overwrite a file MEDIator did not write: the leaf fails,
    and the files of the version on disk stay (they were deleted first, while the record still
    listed them, so going back to that version reported them present)."""
    uuid = world.add("P1", "1.1", 2)
    old_source = world.source("v1")
    old = world.manifest(old_source)
    dest = tmp_path / "dest"
    with downloader(old_source) as d:
        assert d.download(old, dest).ok
    folder = dest / "coll/P1/P1.1/CT_1.1"
    (folder / "new-0.dcm").write_text("the user's notes")
    s3 = world.moto.client()
    for i in range(2):
        s3.delete_object(Bucket=BUCKET, Key=f"{uuid}/inst-{i}.dcm")
    s3.put_object(Bucket=BUCKET, Key=f"{uuid}/new-0.dcm", Body=b"revised")
    world.rows[0].update(instanceCount=1, series_size_MB=7e-6, series_revised_idc_version=26)
    new_source = world.source("v2")
    with downloader(new_source) as d:
        update = d.download(world.manifest(new_source), dest)
    assert "not written by MEDIator" in update.failed[0].reason
    on_disk = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert on_disk == {
        "inst-0.dcm": world.blobs[uuid][0],
        "inst-1.dcm": world.blobs[uuid][1],
        "new-0.dcm": b"the user's notes",
    }
    with downloader(old_source) as d:
        again = d.download(old, dest)
    assert again.ok and sorted(p.name for p in folder.iterdir()) == ["inst-0.dcm", "inst-1.dcm", "new-0.dcm"]


def test_a_file_named_like_another_ones_part_file_fails_the_leaf(world: World, tmp_path: Path) -> None:
    """X arrives as X.part: an archive file called X.part would overwrite it, or be renamed to X."""
    uuid = world.add("P1", "1.1", 1)
    world.moto.client().put_object(Bucket=BUCKET, Key=f"{uuid}/inst-0.dcm.part", Body=b"other bytes")
    world.rows[0]["instanceCount"] = 2
    source = world.source()
    with downloader(source) as d:
        report = d.download(world.manifest(source), tmp_path / "dest")
    assert "'inst-0.dcm.part', the name under which 'inst-0.dcm' arrives" in report.failed[0].reason
    assert files_under(tmp_path / "dest") == []


def test_a_destination_that_is_not_a_folder_is_a_clear_error(world: World, tmp_path: Path) -> None:
    world.add("P1", "1.1", 1)
    source = world.source()
    (tmp_path / "a file").write_text("x")
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / ".mediator").write_text("x")
    with downloader(source) as d:
        for destination in (tmp_path / "a file", tmp_path / "marked", tmp_path / "a file" / "below"):
            with pytest.raises(ValidationError, match=r"cannot download into .*choose"):
                d.download(world.manifest(source), destination)
    assert (tmp_path / "a file").read_text() == "x"


def test_a_staged_file_cut_short_since_is_fetched_again(world: World, tmp_path: Path) -> None:
    """A file verified into staging by a run that stopped before placing its series can be short
    after a crash (the disk never got it all): its size is checked before it is trusted."""
    uuid = world.add("P1", "1.1", 2)
    source = world.source()
    manifest = world.manifest(source)
    key, _, fingerprint = manifest.lines()[0].partition("\t")
    stage = tmp_path / "dest" / ".mediator" / "partial" / _stage_name(key, fingerprint)
    stage.mkdir(parents=True)
    (stage / "inst-0.dcm").write_bytes(world.blobs[uuid][0][:100])
    (stage / "inst-1.dcm").write_bytes(world.blobs[uuid][1])  # whole: kept, not fetched again
    with downloader(source) as d:
        report = d.download(manifest, tmp_path / "dest")
    assert report.ok
    placed = tmp_path / "dest" / "coll/P1/P1.1/CT_1.1"
    assert [(placed / f"inst-{i}.dcm").read_bytes() for i in range(2)] == world.blobs[uuid]
    assert [len(world.proxy.gets(f"/inst-{i}.dcm")) for i in range(2)] == [1, 0]


def test_prune_never_deletes_outside_the_folder_whatever_the_record_says(
    world: World, tmp_path: Path
) -> None:
    """A download folder copied from a share carries its record: a path in it that leads outside
    the folder is left alone."""
    world.add("P1", "1.1", 1)
    source = world.source()
    dest = tmp_path / "downloads" / "lung"
    with downloader(source) as d:
        assert d.download(world.manifest(source), dest).ok
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file")
    with sqlite3.connect(dest / ".mediator" / "state.sqlite") as db:
        db.execute("insert into leaves values ('idc/gone', 'fp', 'x', 'done', 1, 0)")
        db.execute("insert into files values ('../../victim.txt', 'idc/gone')")
    with downloader(source) as d:
        report = d.download(world.manifest(source), dest, prune=True)
    assert report.pruned == ("idc/gone",)
    assert victim.read_text() == "the user's own file"
