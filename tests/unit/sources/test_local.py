"""A local DICOM folder: indexing, incremental re-indexing, broken files, browsing and resolving."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
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
    report = source.reindex()
    assert report.read == 12 and report.unchanged == 0
    skipped = dict(report.skipped)
    assert set(skipped) == {"notes.txt", os.path.join("P2", "broken.dcm")}
    assert "not readable as DICOM" in skipped["notes.txt"]
    assert skipped[os.path.join("P2", "broken.dcm")]


def test_reindex_reads_only_new_or_modified_files(source: LocalFolderSource, folder: Path) -> None:
    source.reindex()
    assert source.reindex().read == 0
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
    report = source.reindex()
    assert (report.read, report.removed, report.unchanged) == (2, 1, 10)


def test_browse_and_filters(source: LocalFolderSource) -> None:
    source.reindex()
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
    source.reindex()
    selection = Selection.of(Pointer.of("lab", "P1")).remove(Pointer.of("lab", "P1", "1.2.1", Modality="SEG"))
    first = source.resolve(selection)
    (leaf,) = list(first)
    assert leaf.path == ("P1", "1.2.1", "1.2.1.1") and leaf.fingerprint.count == 3
    assert leaf.fingerprint.checksum and leaf.fingerprint.checksum.startswith("uids-sha256:")
    assert [p.name for p in source.files_of(leaf.path)] == ["0000.dcm", "0001.dcm", "0002.dcm"]
    # A rewritten file changes the fingerprint; the diff says so.
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 3, modality="CT", pixels=32)
    source.reindex()
    diff = ManifestDiff.between(first, source.resolve(selection))
    assert len(diff.changed) == 1 and not diff.added and not diff.removed


def test_a_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    s = LocalFolderSource("gone", tmp_path / "nowhere", tmp_path / "gone.sqlite")
    try:
        with pytest.raises(SourceError, match="is not a folder"):
            s.reindex()
    finally:
        s.close()


def test_download_copies_a_series_only_while_it_matches(
    source: LocalFolderSource, folder: Path, tmp_path: Path
) -> None:
    source.reindex()
    (leaf,) = list(source.resolve(Selection.of(Pointer.of("lab", "P2"))))
    report = download(source, [leaf], tmp_path / "dest")
    copied = [tmp_path / "dest" / f for f in files_under(tmp_path / "dest")]
    assert report.ok and len(copied) == 4
    assert all(pydicom.dcmread(f).SeriesInstanceUID == "1.2.2.1" for f in copied)
    assert all(
        f.parent.relative_to(tmp_path / "dest").as_posix() == "lab/P2/1.2.2/MR_1.2.2.1" for f in copied
    )
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 4, modality="MR", body_part="HEAD", pixels=16)
    source.reindex()
    report = download(source, [leaf], tmp_path / "dest2")
    assert "changed on disk" in report.failed[0].reason and files_under(tmp_path / "dest2") == []
