"""Downloads that notice damage and survive power loss (issue 21): files changed after download are
fetched again, ``verify`` re-hashes, TCIA zips without MD5s are never called verified, free space
counts the zip beside its images, a ``.part`` left by a crash resumes with ``Range`` and multipart
S3 objects are checked by size over HTTP (moto's S3 server behind a counting proxy); the order of
fsyncs and renames is read from ``strace``."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.core.errors import InsufficientSpace
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.transfer import CHECKED_MD5, CHECKED_SIZE, _stage_name
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.tcia import TciaSource
from mediator_desktop.sources.transport import GATHER_UP_TO
from tests.helpers.faulty_proxy import FaultyProxy
from tests.helpers.idc import series_row, small_index, upload_series
from tests.helpers.s3 import MotoServer
from tests.helpers.tcia_emulator import TciaEmulator
from tests.helpers.transfer import downloader

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


class World:
    """Series in moto's bucket and an IDC index pointing at them, read through the proxy."""

    def __init__(self, moto: MotoServer, proxy: FaultyProxy, root: Path) -> None:
        self.moto, self.proxy, self.root = moto, proxy, root
        self.rows: list[dict[str, object]] = []
        self.blobs: dict[str, list[bytes]] = {}

    def add(self, series: str, count: int, *, size: int = 2000) -> str:
        uuid = hashlib.sha1(f"{self.root}{series}".encode()).hexdigest()
        blobs = [os.urandom(size) for _ in range(count)]
        upload_series(self.moto.client(), BUCKET, uuid, blobs)
        self.rows.append(series_row(("coll", "P1", "P1.1", series), uuid, blobs))
        self.blobs[uuid] = blobs
        return uuid

    def source(self) -> IdcSource:
        return IdcSource(
            small_index(self.root / "index.parquet", list(self.rows)), endpoint_url=self.proxy.url
        )


@pytest.fixture
def world(moto: MotoServer, proxy: FaultyProxy, tmp_path: Path) -> World:
    return World(moto, proxy, tmp_path)


def folder(dest: Path, series: str) -> Path:
    return dest / "coll" / "P1" / "P1.1" / f"CT_{series}"


def record(dest: Path, sql: str) -> list[Any]:
    with sqlite3.connect(dest / ".mediator" / "state.sqlite") as db:
        return db.execute(sql).fetchall()


# -- damage after download ---------------------------------------------------------------------
def test_a_rerun_fetches_again_the_leaves_whose_files_changed_or_went(world: World, tmp_path: Path) -> None:
    uuids = {s: world.add(s, 2) for s in ("1.1", "1.2", "1.3", "1.4")}
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    dest = tmp_path / "dest"
    with downloader(source) as d:
        assert d.download(manifest, dest).ok
        (folder(dest, "1.1") / "inst-0.dcm").unlink()  # deleted
        with (folder(dest, "1.2") / "inst-1.dcm").open("r+b") as f:  # truncated
            f.truncate(100)
        edited = folder(dest, "1.3") / "inst-0.dcm"  # edited in place: same size, new time
        edited.write_bytes(bytes(2000))
        os.utime(edited, ns=(1, 1))
        before = len(world.proxy.gets())
        report = d.download(manifest, dest)
    assert report.ok and report.unchanged == 1
    assert sorted(leaf.split("\x1f")[-1] for leaf in report.refetched) == ["1.1", "1.2", "1.3"]
    assert report.fetched == report.refetched
    assert "3 leaves re-fetched: files changed or deleted since download" in report.summary()
    for series in ("1.1", "1.2", "1.3"):
        got = [(folder(dest, series) / f"inst-{i}.dcm").read_bytes() for i in range(2)]
        assert got == world.blobs[uuids[series]]
    gets = world.proxy.gets()[before:]
    assert not [g for g in gets if uuids["1.4"] in g[1]]  # the intact leaf was not asked for
    assert report.to_json()["refetched"] == list(report.refetched)


def test_verify_rehashes_and_fetches_again_what_a_size_and_time_check_cannot_see(
    world: World, tmp_path: Path
) -> None:
    uuid = world.add("1.1", 2)
    world.add("1.2", 1)
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    dest = tmp_path / "dest"
    rotten = folder(dest, "1.1") / "inst-1.dcm"
    with downloader(source) as d:
        first = d.download(manifest, dest)
        assert first.ok and first.size_only == ()  # single-part ETags: MD5s, checked on arrival
        st = rotten.stat()
        data = bytearray(rotten.read_bytes())
        data[10] ^= 0xFF  # bit rot: same size, and the time put back
        rotten.write_bytes(bytes(data))
        os.utime(rotten, ns=(st.st_atime_ns, st.st_mtime_ns))
        plain = d.download(manifest, dest)
        assert plain.unchanged == 2 and plain.fetched == ()  # no reads: it cannot see this
        verified = d.download(manifest, dest, verify=True)
        assert verified.ok and [k.split("\x1f")[-1] for k in verified.refetched] == ["1.1"]
        assert verified.verified == 2 and verified.unverifiable == 0  # 1.1's first file and 1.2's
        assert rotten.read_bytes() == world.blobs[uuid][1]
        again = d.download(manifest, dest, verify=True)
    assert (
        again.refetched == () and again.verified == 3 and "3 files re-hashed and verified" in again.summary()
    )
    assert {c for (c,) in record(dest, "select checked from checks")} == {CHECKED_MD5}


def test_a_record_from_before_sizes_were_kept_is_checked_by_existence_then_restated(
    world: World, tmp_path: Path
) -> None:
    world.add("1.1", 2)
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    dest = tmp_path / "dest"
    with downloader(source) as d:
        assert d.download(manifest, dest).ok
        with sqlite3.connect(dest / ".mediator" / "state.sqlite") as db:  # as an older version left it
            db.execute("drop table stats")
            db.execute("drop table checks")
        old = d.download(manifest, dest)
        assert old.unchanged == 1 and old.fetched == ()
        assert len(record(dest, "select * from stats")) == 2  # stated once, now kept
        with (folder(dest, "1.1") / "inst-0.dcm").open("r+b") as f:
            f.truncate(1)
        later = d.download(manifest, dest)
        assert len(later.refetched) == 1
        verify = d.download(manifest, dest, verify=True)
    assert verify.verified == 2 and verify.unverifiable == 0


# -- power loss: the order of fsyncs and renames ---------------------------------------------------
STRACED = """
import sys
from pathlib import Path
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.sources.idc import IdcSource
from tests.helpers.transfer import downloader
index, endpoint, manifest, dest = sys.argv[1:5]
source = IdcSource(Path(index), endpoint_url=endpoint)
with downloader(source) as d:
    report = d.download(Manifest.decode(Path(manifest).read_bytes()), Path(dest), workers=1)
assert report.ok, report.summary()
"""

_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)$")


def _events(trace: str) -> list[tuple[str, str]]:
    """(syscall, path) in the order the calls returned: an fsync's, syncfs's or close's fd path, a
    rename's target (and ``("from", source)`` just before it)."""
    out: list[tuple[str, str]] = []
    pending: dict[str, tuple[str, str]] = {}
    for line in trace.splitlines():
        resumed = re.match(r"^(\d+)\s+<\.\.\. (\w+) resumed>.*= (-?\d+)", line)
        if resumed:
            pid = resumed.group(1)
            if pid in pending and resumed.group(3) == "0":
                out.append(pending.pop(pid))
            continue
        call = _CALL.match(line)
        if not call:
            continue
        pid, name, rest = call.groups()
        if name in ("fsync", "fdatasync", "syncfs", "close"):
            path = re.match(r"\d+<([^>]*)>", rest)
            event = (name, path.group(1) if path else "?")
        elif name.startswith("rename"):
            quoted = re.findall(r'"([^"]*)"', rest)
            event = ("rename", "\0".join(quoted[-2:]))
        else:
            continue
        if "<unfinished ...>" in rest:
            pending[pid] = event
        elif re.search(r"= 0$", rest.strip()):
            out.append(event)
    split: list[tuple[str, str]] = []
    for call, path in out:
        if call == "rename":
            source, _, target = path.rpartition("\0")
            split += [("from", source), ("rename", target)]
        else:
            split.append((call, path))
    return split


def test_each_file_is_synced_before_its_rename_and_its_folder_after(world: World, tmp_path: Path) -> None:
    """What this proves: the engine asks the kernel, in this order, to write each file's data to
    the disk (an fsync of it, or a ``syncfs`` of its file system after its last ``close``), to
    rename it into place, to write the folder's entries, and then to commit the record
    (an fsync of SQLite's WAL). Small files are synced where they land in the staging folder,
    large ones (streamed, above ``GATHER_UP_TO``) as their ``.part`` before it is renamed. What it
    does not prove: that the disk honours fsync (a write cache that lies), nor a simulated lost page
    cache; the size and time check of the next rerun is what catches a file that still came back
    wrong."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    world.add("1.1", 3)
    world.add("1.2", 2, size=GATHER_UP_TO + 1)
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    (tmp_path / "manifest").write_bytes(manifest.encode())
    dest = tmp_path / "dest"
    trace = tmp_path / "trace"
    subprocess.run(
        [strace, "-f", "-y", "-qq", "-o", str(trace),
         "-e", "trace=fsync,fdatasync,syncfs,close,rename,renameat,renameat2",
         sys.executable, "-c", STRACED, str(tmp_path / "index.parquet"), world.proxy.url,
         str(tmp_path / "manifest"), str(dest)],
        cwd=Path(__file__).parents[2], check=True, timeout=60,
    )  # fmt: skip
    events = _events(trace.read_text())
    real = str(dest.resolve())
    for series, count in (("1.1", 3), ("1.2", 2)):
        leaf = str(folder(dest, series).resolve())
        placed = [
            i for i, (name, path) in enumerate(events) if name == "rename" and path.startswith(leaf + "/")
        ]
        assert len(placed) == count
        for i in placed:
            staged = events[i - 1][1]  # where it came from: the leaf's staging folder
            assert events[i - 1][0] == "from" and "/.mediator/partial/" in staged
            files = (staged, staged + ".part")  # a large file streams into a .part first
            closed = max(j for j, (call, path) in enumerate(events[:i]) if call == "close" and path in files)
            synced = [  # the staged file itself, or its whole file system once it was closed
                j for j, (call, path) in enumerate(events[:i])
                if (call == "fsync" and path in files) or (call == "syncfs" and j > closed)
            ]  # fmt: skip
            assert synced, f"{staged} renamed into place before its data was synced"
        folder_synced = [j for j, e in enumerate(events) if e == ("fsync", leaf) and j > max(placed)]
        assert folder_synced, f"{leaf} not fsynced after its files were renamed into it"
        committed = [
            j for j, (call, path) in enumerate(events)
            if call in ("fsync", "fdatasync") and path.endswith("state.sqlite-wal") and j > folder_synced[0]
        ]  # fmt: skip
        assert committed, "the leaf was recorded done without a synced commit after its folder"
    for parent in ("", "coll", "coll/P1", "coll/P1/P1.1"):  # folders made for the leaves: entries synced
        assert ("fsync", str(Path(real, parent)).rstrip("/")) in events


# -- TCIA zips without MD5s, free space ------------------------------------------------------------
@pytest.mark.parametrize("entries", ["none", "some", "all"])
def test_tcia_zips_without_md5s_are_recorded_as_checked_by_count_and_size_only(
    tmp_path: Path, entries: str
) -> None:
    with TciaEmulator() as emulator:
        emulator.md5_entries = entries
        source = TciaSource(base_url=emulator.v4, backoff=0.01)
        manifest = source.resolve(Selection.of(source.pointer("LIDC-IDRI")))
        leaves = [leaf for leaf in manifest if (leaf.fingerprint.count or 0) >= 2][:2]
        assert len(leaves) == 2
        dest = tmp_path / "dest"
        with downloader(source) as d:
            report = d.download(Manifest.build(leaves), dest, layout="{series}")
            assert report.ok, report.summary()
            checked = {c for (c,) in record(dest, "select checked from checks")}
            if entries == "all":
                assert report.size_only == () and checked == {CHECKED_MD5}
                assert "count and size only" not in report.summary()
            else:
                assert sorted(report.size_only) == sorted(leaf.key for leaf in leaves)
                assert checked == {CHECKED_SIZE}
                assert "2 leaves verified by count and size only" in report.summary()
                assert report.to_json()["size_only"] == list(report.size_only)
            # what verify compares with later: the archive's MD5s, and nothing where it gave none
            md5s = dict(record(dest, "select path, md5 from stats"))
            listed = {path: md5 for path, md5 in md5s.items() if md5 is not None}
            assert all(
                md5 == hashlib.md5((dest / path).read_bytes()).hexdigest() for path, md5 in listed.items()
            )
            images = sum(leaf.fingerprint.count or 0 for leaf in leaves)
            assert len(listed) == {"all": images, "some": images - 2, "none": 0}[entries]
            verified = d.download(Manifest.build(leaves), dest, layout="{series}", verify=True)
            assert verified.refetched == () and verified.verified == len(listed)
            assert verified.unverifiable == len(md5s) - len(listed)  # by size only, and said so


def test_free_space_counts_the_zip_beside_its_unpacked_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TciaEmulator() as emulator:
        source = TciaSource(base_url=emulator.v4, backoff=0.01)
        manifest = source.resolve(Selection.of(source.pointer("LIDC-IDRI")))
        sizes = sorted((leaf.fingerprint.size or 0 for leaf in manifest), reverse=True)
        total, workers = sum(sizes), 2
        peak = total + sum(sizes[:workers])  # every image, plus the zips of the leaves unpacked at once
        real = shutil.disk_usage

        def free(amount: int) -> None:
            monkeypatch.setattr(
                shutil,
                "disk_usage",
                lambda path: real(path)._replace(free=amount),
            )

        with downloader(source) as d:
            free(total + total // 10 + 1)  # room for the images, not for the zips beside them
            with pytest.raises(InsufficientSpace, match=r"while zips are unpacked"):
                d.download(manifest, tmp_path / "dest", workers=workers)
            assert emulator.image_requests.total() == 0
            free(peak + peak // 10 + 1)
            assert d.download(manifest, tmp_path / "dest", workers=workers).ok


# -- HTTP resume after a crash, multipart ETags -------------------------------------------------------
def test_a_part_file_left_by_a_crash_is_resumed_with_a_range_request(world: World, tmp_path: Path) -> None:
    uuid = world.add("1.1", 1, size=300_000)
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    (leaf,) = list(manifest)
    dest = tmp_path / "dest"
    stage = dest / ".mediator" / "partial" / _stage_name(leaf.key, leaf.fingerprint.encode())
    stage.mkdir(parents=True)
    blob = world.blobs[uuid][0]
    (stage / "inst-0.dcm.part").write_bytes(blob[:123_456])  # what a killed run left
    with downloader(source) as d:
        report = d.download(manifest, dest)
    assert report.ok
    assert (folder(dest, "1.1") / "inst-0.dcm").read_bytes() == blob
    (get,) = world.proxy.gets(f"{uuid}/inst-0.dcm")
    assert get[2] == "bytes=123456-"  # only the 176,544 bytes still missing were asked for
    assert not stage.exists()


def test_a_multipart_object_over_http_is_checked_by_size_never_called_md5_verified(
    world: World, moto: MotoServer, tmp_path: Path
) -> None:
    from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

    blob = os.urandom(11 << 20)
    uuid = hashlib.sha1(f"{tmp_path}multipart".encode()).hexdigest()
    s3 = moto.client()
    s3.upload_fileobj(
        io.BytesIO(blob),
        BUCKET,
        f"{uuid}/inst-0.dcm",
        Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20),
    )
    etag = s3.head_object(Bucket=BUCKET, Key=f"{uuid}/inst-0.dcm")["ETag"].strip('"')
    assert etag.endswith("-3")  # three parts: not an MD5 of the object
    world.rows.append(series_row(("coll", "P1", "P1.1", "9.9"), uuid, [blob]))
    source = world.source()
    manifest = source.resolve(Selection.of(source.pointer("coll")))
    dest = tmp_path / "dest"
    with downloader(source) as d:
        report = d.download(manifest, dest)
        assert report.ok, report.summary()
        assert [k.split("\x1f")[-1] for k in report.size_only] == ["9.9"]
        assert "1 leaf verified by count and size only" in report.summary()
        assert (folder(dest, "9.9") / "inst-0.dcm").read_bytes() == blob
        assert record(dest, "select checked from checks") == [(CHECKED_SIZE,)]
        assert record(dest, "select md5 from stats") == [(None,)]  # the ETag is no MD5 to keep
        verify = d.download(manifest, dest, verify=True)
    assert (verify.verified, verify.unverifiable, verify.refetched) == (0, 1, ())
    assert "1 file checked by size only (no MD5 from the archive)" in verify.summary()


# -- frontends ----------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_the_sdk_and_the_cli_ask_for_verify(mediator_home: Path, tmp_path: Path) -> None:
    from mediator_desktop import Mediator
    from mediator_desktop.cli import build_parser
    from tests.helpers.dicom import make_series

    scans = tmp_path / "scanner"
    make_series(scans, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    make_series(scans, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", pixels=8)
    with Mediator() as m:
        m.add_source("local", id="lab", folder=str(scans))
        rs = m.create_set("scans", add=["lab/P1", "lab/P2"])
        out = tmp_path / "out"
        first = m.download(rs.id, out)
        assert first.state == "done" and first.report is not None and first.report.verified == 0
        victim = next(out.rglob("*.dcm"))
        victim.write_bytes(victim.read_bytes()[:-1])  # cut short after download
        again = m.download(rs.id, out)
        assert again.report is not None and len(again.report.refetched) == 1 and again.report.unchanged == 1
        assert again.report.refetched[0].startswith("lab/")  # a pointer, as ``fetched`` lists it
        assert again.summary is not None and "1 leaf re-fetched: files changed or deleted" in again.summary
        checked = m.download(rs.id, out, verify=True)  # a local folder gives no MD5s: sizes only, said so
        assert checked.report is not None and checked.report.refetched == []
        assert (checked.report.verified, checked.report.unverifiable) == (0, 5)
        assert checked.summary is not None and "5 files checked by size only" in checked.summary
    args = build_parser().parse_args(["download", "scans", str(tmp_path / "out"), "--verify"])
    assert args.verify is True
