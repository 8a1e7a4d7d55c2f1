"""A local DICOM folder: indexing (on first use, on changes, on demand), incremental re-indexing,
broken files, browsing and resolving."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.source import ScanProgress, ScanReport
from mediator_desktop.sources.local import LocalFolderSource
from tests.helpers.dicom import make_instance, make_series
from tests.helpers.transfer import download, files_under


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    make_series(root, "P1", "1.2.1", "1.2.1.1", 3, modality="CT")
    make_series(root, "P1", "1.2.1", "1.2.1.2", 2, modality="SEG", body_part=None)
    make_series(root, "P2", "1.2.2", "1.2.2.1", 4, modality="MR", body_part="HEAD")
    (root / "notes.txt").write_text("not DICOM")
    (root / "P2" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    # pydicom's own CT sample, as a scanner would have written it.
    shutil.copy(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm", root / "ct_small.dcm")
    return root


@pytest.fixture
def source(folder: Path, tmp_path: Path) -> Iterator[LocalFolderSource]:
    s = LocalFolderSource("lab", folder, tmp_path / "index" / "lab.sqlite")
    yield s
    s.close()


def test_index_skips_and_reports_what_is_not_dicom(source: LocalFolderSource) -> None:
    report = source.rescan()
    assert report.read == 12 and report.unchanged == 0
    skipped = dict(report.skipped)
    assert set(skipped) == {"notes.txt", os.path.join("P2", "broken.dcm")}
    assert "not readable as DICOM" in skipped["notes.txt"]
    assert skipped[os.path.join("P2", "broken.dcm")]


def test_rescan_reads_only_new_or_modified_files(source: LocalFolderSource, folder: Path) -> None:
    source.rescan()
    assert source.rescan().read == 0
    make_instance(
        folder / "P2" / "1.2.2.1" / "new.dcm",
        patient="P2",
        study="1.2.2",
        series="1.2.2.1",
        sop="1.2.2.1.99",
        modality="MR",
    )
    touched = folder / "P1" / "1.2.1.1" / "0000.dcm"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    (folder / "P1" / "1.2.1.2" / "0001.dcm").unlink()
    report = source.rescan()
    assert (report.read, report.removed, report.unchanged) == (2, 1, 10)


def test_browse_and_filters(source: LocalFolderSource) -> None:
    source.rescan()
    patients = source.browse()
    assert [i.key for i in patients.items] == ["1CT1", "P1", "P2"]
    assert next(i for i in patients.items if i.key == "P1").leaves == 2
    series = source.browse(("P1", "1.2.1"))
    assert [(i.key, i.leaves) for i in series.items] == [("1.2.1.1", 1), ("1.2.1.2", 1)]
    assert source.filter_values("Modality") == ["CT", "MR", "SEG"]
    ct = source.browse(filters=Pointer.of("lab", Modality="CT").filters)
    assert [i.key for i in ct.items] == ["1CT1", "P1"]
    with pytest.raises(ValidationError, match="leaf"):
        source.browse(("P1", "1.2.1", "1.2.1.1"))
    with pytest.raises(ValidationError, match="cannot filter"):
        source.filter_values("Colour")


def test_resolve_and_fingerprints_follow_the_files(source: LocalFolderSource, folder: Path) -> None:
    source.rescan()
    selection = Selection.of(Pointer.of("lab", "P1")).remove(Pointer.of("lab", "P1", "1.2.1", Modality="SEG"))
    first = source.resolve(selection)
    (leaf,) = list(first)
    assert leaf.path == ("P1", "1.2.1", "1.2.1.1") and leaf.fingerprint.count == 3
    assert leaf.fingerprint.checksum and leaf.fingerprint.checksum.startswith("uids-sha256:")
    assert [p.name for p in source.files_of(leaf.path)] == ["0000.dcm", "0001.dcm", "0002.dcm"]
    # A rewritten file changes the fingerprint; the diff says so.
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 3, modality="CT", pixels=32)
    source.rescan()
    diff = ManifestDiff.between(first, source.resolve(selection))
    assert len(diff.changed) == 1 and not diff.added and not diff.removed


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    s = LocalFolderSource("gone", tmp_path / "nowhere", tmp_path / "gone.sqlite")
    try:
        with pytest.raises(SourceError, match="is not a folder"):
            s.rescan()
    finally:
        s.close()


def test_download_copies_a_series_only_while_it_matches(
    source: LocalFolderSource, folder: Path, tmp_path: Path
) -> None:
    source.rescan()
    (leaf,) = list(source.resolve(Selection.of(Pointer.of("lab", "P2"))))
    report = download(source, [leaf], tmp_path / "dest")
    copied = [tmp_path / "dest" / f for f in files_under(tmp_path / "dest")]
    assert report.ok and len(copied) == 4
    assert all(pydicom.dcmread(f).SeriesInstanceUID == "1.2.2.1" for f in copied)
    assert all(
        f.parent.relative_to(tmp_path / "dest").as_posix() == "lab/P2/1.2.2/MR_1.2.2.1" for f in copied
    )
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 4, modality="MR", body_part="HEAD", pixels=16)
    source.rescan()
    report = download(source, [leaf], tmp_path / "dest2")
    assert "changed on disk" in report.failed[0].reason and files_under(tmp_path / "dest2") == []


# -- indexing by itself ---------------------------------------------------------------------------
class Progress:
    """Collects a source's progress reports; waits for one that matches, with a timeout."""

    def __init__(self) -> None:
        self.seen: list[ScanProgress] = []
        self._changed = threading.Condition()

    def __call__(self, progress: ScanProgress) -> None:
        with self._changed:
            self.seen.append(progress)
            self._changed.notify_all()

    def wait_for(
        self, match: Callable[[ScanProgress], bool], *, since: int = 0, timeout: float = 20
    ) -> ScanProgress:
        """The first report (from the ``since``-th on) that ``match``es; waits for it."""

        def found() -> ScanProgress | None:
            return next((p for p in self.seen[since:] if match(p)), None)

        with self._changed:
            assert self._changed.wait_for(lambda: found() is not None, timeout), f"not in {self.seen}"
            progress = found()
        assert progress is not None
        return progress


def finished(match: Callable[[ScanReport], bool] = lambda _: True) -> Callable[[ScanProgress], bool]:
    return lambda p: p.finished and p.report is not None and match(p.report)


@pytest.fixture
def watched(folder: Path, tmp_path: Path) -> Iterator[tuple[LocalFolderSource, Progress]]:
    s = LocalFolderSource("lab", folder, tmp_path / "index" / "lab.sqlite", debounce=0.2)
    progress = Progress()
    s.watch(progress)
    yield s, progress
    s.close()


def test_first_use_indexes_without_a_rescan(watched: tuple[LocalFolderSource, Progress]) -> None:
    source, progress = watched
    assert [i.key for i in source.browse().items] == ["1CT1", "P1", "P2"]  # waited for the first index
    done = progress.wait_for(finished())
    assert done.report is not None and done.report.read == 12 and len(done.report.skipped) == 2
    first = progress.seen[0]
    assert (first.done, first.total, first.finished) == (0, 12, False)
    assert first.line() == "lab: indexing 12 files... (0 done)"
    assert done.line().startswith("lab: indexed 12 files: 12 read")


@pytest.mark.timeout(60)
def test_first_use_without_watch_indexes_synchronously(source: LocalFolderSource) -> None:
    assert source.filter_values("Modality") == ["CT", "MR", "SEG"]
    assert len(source.resolve(Selection.of(Pointer.of("lab")))) == 4


def test_a_completed_index_is_kept_across_runs(folder: Path, tmp_path: Path) -> None:
    index = tmp_path / "index" / "lab.sqlite"
    first = LocalFolderSource("lab", folder, index)
    first.rescan()
    first.close()
    folder.rename(tmp_path / "unmounted")
    again = LocalFolderSource("lab", folder, index)
    try:  # browses the last complete index, with the folder gone
        assert [i.key for i in again.browse().items] == ["1CT1", "P1", "P2"]
    finally:
        again.close()


@pytest.mark.timeout(60)
def test_changes_to_a_watched_folder_are_indexed(
    watched: tuple[LocalFolderSource, Progress], folder: Path
) -> None:
    source, progress = watched
    progress.wait_for(finished())
    make_series(folder, "P3", "1.2.3", "1.2.3.1", 3, modality="CT")
    progress.wait_for(finished(lambda r: r.read == 3))
    assert [i.key for i in source.browse().items] == ["1CT1", "P1", "P2", "P3"]
    (folder / "P3" / "1.2.3.1" / "0001.dcm").unlink()
    later = progress.wait_for(finished(lambda r: r.removed == 1))
    assert later.report is not None and later.report.read == 0
    (patient,) = [i for i in source.browse().items if i.key == "P3"]
    assert patient.size == 2 * (folder / "P3" / "1.2.3.1" / "0000.dcm").stat().st_size


@pytest.mark.timeout(60)
def test_resolve_waits_for_a_rescan_under_way(source: LocalFolderSource, folder: Path) -> None:
    source.rescan()
    selection = Selection.of(Pointer.of("lab"))
    before = source.resolve(selection)
    for n in range(8):
        make_series(folder, f"Q{n}", f"1.3.{n}", f"1.3.{n}.1", 50, modality="MR", pixels=4)
    progress = Progress()
    source.watch(progress)  # indexed already: it catches up (a rescan), then watches
    started = progress.wait_for(lambda p: p.total == 412 and not p.finished)
    assert started.done == 0
    during = source.resolve(selection)  # waits for the rescan the thread started
    done = progress.wait_for(finished())
    assert done.report is not None and done.report.read == 400
    assert len(during) == len(before) + 8 and during == source.resolve(selection)


@pytest.mark.timeout(60)
def test_concurrent_rescans_take_turns(source: LocalFolderSource, folder: Path) -> None:
    source.rescan()
    make_series(folder, "P3", "1.2.3", "1.2.3.1", 100, pixels=4)
    reports: list[ScanReport] = []
    threads = [threading.Thread(target=lambda: reports.append(source.rescan())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.read for r in reports) == [0, 0, 100]
    assert all(r.files == 112 for r in reports)


@pytest.mark.timeout(60)
def test_a_missing_folder_reports_an_error_and_fails_clearly(tmp_path: Path) -> None:
    s = LocalFolderSource("gone", tmp_path / "nowhere", tmp_path / "gone.sqlite")
    progress = Progress()
    try:
        s.watch(progress)
        failed = progress.wait_for(lambda p: p.error is not None)
        assert "is not a folder (moved or unmounted?)" in (failed.error or "")
        assert failed.line().startswith("gone: indexing failed:")
        with pytest.raises(SourceError, match="nowhere is not a folder"):
            s.browse()
        with pytest.raises(SourceError, match="is not a folder"):
            s.check()
    finally:
        s.close()


def test_check_counts_files_without_reading_them(source: LocalFolderSource, folder: Path) -> None:
    assert source.check() == f"folder {folder} with 12 files"
