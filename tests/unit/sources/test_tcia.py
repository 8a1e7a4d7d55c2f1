"""The TCIA source against the NBIA emulator, and the emulator against TCIA's own client."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.tcia import TciaSource, since_param
from tests.helpers.tcia_emulator import TciaEmulator
from tests.helpers.transfer import download, files_under


@pytest.fixture(scope="module")
def emulator() -> Iterator[TciaEmulator]:
    with TciaEmulator() as e:
        yield e


@pytest.fixture
def tcia(emulator: TciaEmulator) -> TciaSource:
    return TciaSource(base_url=emulator.v4, backoff=0.01, timeout=(2.0, 1.0))


def test_browse_down_to_series(tcia: TciaSource) -> None:
    collections = tcia.browse()
    assert [c.key for c in collections.items] == ["LIDC-IDRI", "SOFT-TISSUE-SARCOMA"]
    patients = tcia.browse(("LIDC-IDRI",))
    assert [p.key for p in patients.items] == ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"]
    studies = tcia.browse(("LIDC-IDRI", "LIDC-IDRI-0001"))
    series = tcia.browse(("LIDC-IDRI", "LIDC-IDRI-0001", studies.items[0].key))
    assert series.items and all(s.level == "series" and s.size for s in series.items)
    assert "CT" in tcia.filter_values("Modality", ("LIDC-IDRI",))
    with pytest.raises(ValidationError, match="cannot filter"):
        tcia.filter_values("Colour")


def test_resolve_uses_size_count_and_release_date(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = Selection.of(tcia.pointer("LIDC-IDRI", Modality="ct")).remove(
        tcia.pointer("LIDC-IDRI", "LIDC-IDRI-0002")
    )
    manifest = tcia.resolve(selection)
    expected = [
        s
        for s in emulator.series
        if s.collection == "LIDC-IDRI" and s.modality == "CT" and s.patient != "LIDC-IDRI-0002"
    ]
    assert {leaf.path[3] for leaf in manifest} == {s.uid for s in expected}
    leaf = next(iter(manifest))
    series = next(s for s in emulator.series if s.uid == leaf.path[3])
    assert leaf.fingerprint.size == series.size and leaf.fingerprint.count == series.image_count
    assert leaf.fingerprint.released and series.released.strftime("%m-%d-%Y") in leaf.fingerprint.released
    assert len(tcia.resolve(Selection.of(tcia.pointer()))) == len(emulator.series)


def test_updated_since_speaks_each_versions_date_format(tcia: TciaSource, emulator: TciaEmulator) -> None:
    assert since_param(dt.date(2024, 1, 31), "https://x/nbia-api/services/v4/") == ("fromDate", "01-31-2024")
    assert since_param(dt.date(2024, 1, 31), "https://x/nbia-api/services/v1/") == ("fromDate", "31/01/2024")
    newest = max(s.released for s in emulator.series)
    assert tcia.updated_since(newest) == []
    assert set(tcia.updated_since(dt.date(1999, 1, 1))) == {s.uid for s in emulator.series}
    v1 = TciaSource(base_url=emulator.url + "v1/", backoff=0.01)
    assert set(v1.updated_since(dt.date(1999, 1, 1))) == {s.uid for s in emulator.series}


def leaf_of(tcia: TciaSource, emulator: TciaEmulator, images: int = 2) -> Leaf:
    series = next(s for s in emulator.series if s.image_count >= images)
    manifest = tcia.resolve(
        Selection.of(Pointer.of("tcia", series.collection, series.patient, series.study, series.uid))
    )
    (leaf,) = list(manifest)
    return leaf


def test_download_verifies_and_places_a_series(
    tcia: TciaSource, emulator: TciaEmulator, tmp_path: Path
) -> None:
    leaf = leaf_of(tcia, emulator)
    report = download(tcia, [leaf], tmp_path / "dest", layout="{patient}/{modality}_{series}")
    assert report.ok and report.fetched == (leaf.key,), report
    files = files_under(tmp_path / "dest")
    series = next(s for s in emulator.series if s.uid == leaf.path[3])
    assert {f.rsplit("/", 1)[0] for f in files} == {f"{leaf.path[1]}/{series.modality}_{leaf.path[3]}"}
    images = [tmp_path / "dest" / f for f in files if not f.endswith("LICENSE")]
    assert len(images) == leaf.fingerprint.count
    assert all(pydicom.dcmread(f).SeriesInstanceUID == leaf.path[3] for f in images)
    assert not list((tmp_path / "dest" / ".mediator" / "partial").iterdir())  # no zip, no staging left


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("truncated_zip", "damaged zip"),
        ("corrupt_zip", "corrupt|damaged"),
        ("zip_slip", "outside its folder"),
        ("absolute_path", "outside its folder"),
        ("bomb", "far more than"),
        ("bad_md5", "does not match its MD5"),
        ("md5_field", "corrupt .*field larger"),
        ("encrypted", "corrupt .*encrypted"),
        ("missing_instance", "announced"),
        ("503", "503"),
        ("html", "not a zip"),
    ],
)
def test_download_faults_leave_nothing_that_looks_complete(
    tcia: TciaSource, emulator: TciaEmulator, tmp_path: Path, fault: str, message: str
) -> None:
    leaf = leaf_of(tcia, emulator, images=2)
    emulator.faults.add("getImage", *([fault] * 4))
    dest = tmp_path / "dest"
    try:
        report = download(tcia, [leaf], dest)
    finally:
        while emulator.faults.next("getImage"):
            pass
    assert not report.ok and [f.key for f in report.failed] == [leaf.key]
    assert re.search(message, report.failed[0].reason), report.failed[0].reason
    assert files_under(dest) == []
    assert not (tmp_path / "escaped.dcm").exists() and not Path("/tmp/absolute.dcm").exists()
    again = download(tcia, [leaf], dest, only=report.retry_keys())  # the fault has passed
    assert again.ok and again.fetched == (leaf.key,)


@pytest.mark.parametrize(
    ("fault", "message"),
    [("html", "not JSON"), ("badjson", "not JSON"), ("503", "503 .*after retries"), ("429", "429")],
)
def test_search_faults_are_clear_errors(
    tcia: TciaSource, emulator: TciaEmulator, fault: str, message: str
) -> None:
    emulator.faults.add("getCollectionValues", *([fault] * 4))
    try:
        with pytest.raises(SourceError, match=message):
            tcia.browse()
    finally:
        while emulator.faults.next("getCollectionValues"):
            pass


def test_v4_refuses_unknown_parameters_and_empty_results_are_empty(emulator: TciaEmulator) -> None:
    import requests

    wrong = requests.get(emulator.v4 + "getSeries", params={"Colection": "LIDC-IDRI"}, timeout=5)
    assert wrong.status_code == 400 and "Invalid query parameter: 'Colection'" in wrong.text
    empty = requests.get(emulator.v4 + "getSeries", params={"Collection": "NOPE"}, timeout=5)
    assert empty.status_code == 200 and empty.content == b""
    missing = requests.get(emulator.v4 + "getImage", timeout=5)
    assert missing.status_code == 400 and "SeriesInstanceUID, is required" in missing.text


def test_tcias_own_client_lists_and_downloads_through_the_emulator(
    emulator: TciaEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tcia_utils builds each URL with ``nbia.setApiUrl`` at request time: point it at the emulator."""
    from tcia_utils import nbia, utils

    monkeypatch.setattr(nbia, "setApiUrl", lambda endpoint, api_url="nbia": emulator.v4)
    monkeypatch.setattr(utils, "_proxies", None)
    collections = nbia.getCollections()
    assert [c["Collection"] for c in collections] == ["LIDC-IDRI", "SOFT-TISSUE-SARCOMA"]
    patients = nbia.getPatient(collection="LIDC-IDRI")
    assert {p["PatientId"] for p in patients} == {"LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"}
    series = nbia.getSeries(collection="SOFT-TISSUE-SARCOMA")
    assert len(series) == len([s for s in emulator.series if s.collection == "SOFT-TISSUE-SARCOMA"])
    assert nbia.getSeries(collection="NOPE") is None  # the empty 200 means "No results found"
    chosen = series[:2]
    before = emulator.requests["getImage"]
    nbia.downloadSeries(chosen, path=str(tmp_path / "tcia_utils"), max_workers=2)
    assert emulator.requests["getImage"] - before == 2
    for row in chosen:
        folder = tmp_path / "tcia_utils" / row["SeriesInstanceUID"]
        images = sorted(folder.glob("*.dcm"))
        assert len(images) == row["ImageCount"]
        assert images[0].name.startswith("1-")  # NewFileNames=Yes naming
        assert pydicom.dcmread(images[0]).SeriesInstanceUID == row["SeriesInstanceUID"]
        assert (folder / "LICENSE").exists()


def test_zips_are_checked_and_unpacked_in_worker_processes(
    tcia: TciaSource, emulator: TciaEmulator, tmp_path: Path
) -> None:
    leaf = leaf_of(tcia, emulator, images=2)
    good = download(tcia, [leaf], tmp_path / "good", processes=2, layout="{series}")
    assert good.ok and len(files_under(tmp_path / "good")) == leaf.fingerprint.count + 1  # + LICENSE
    emulator.faults.add("getImage", "bad_md5")
    bad = download(tcia, [leaf], tmp_path / "bad", processes=2)
    assert "does not match its MD5" in bad.failed[0].reason and files_under(tmp_path / "bad") == []


def test_metadata_is_asked_for_only_when_the_layout_names_it(
    tcia: TciaSource, emulator: TciaEmulator, tmp_path: Path
) -> None:
    leaf = leaf_of(tcia, emulator)
    before = emulator.requests["getSeries"]
    assert download(tcia, [leaf], tmp_path / "plain", layout="{collection}/{series}").ok
    assert emulator.requests["getSeries"] == before  # no modality in the layout: no search
    assert download(tcia, [leaf], tmp_path / "full").ok  # the default layout names the modality
    assert emulator.requests["getSeries"] == before + 1


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _unsupported_version(data: bytes) -> bytes:
    """The central directory says a zip version (13.5) zipfile cannot read."""
    at = data.index(b"PK\x01\x02") + 6
    return data[:at] + (135).to_bytes(2, "little") + data[at + 2 :]


def _header_before_the_start(data: bytes) -> bytes:
    """The end record places the central directory 1000 bytes later than it is: zipfile then seeks
    to an entry's header 1000 bytes before the file's start."""
    at = data.rindex(b"PK\x05\x06") + 16
    offset = int.from_bytes(data[at : at + 4], "little") + 1000
    return data[:at] + offset.to_bytes(4, "little") + data[at + 4 :]


def _name_not_utf8(data: bytes) -> bytes:
    """An entry's name flagged as UTF-8 (bit 11) but holding a byte UTF-8 never has."""
    at = data.index(b"PK\x01\x02")
    return data[: at + 8] + b"\x00\x08" + data[at + 10 : at + 46] + b"\xff" + data[at + 47 :]


def _local_name_not_utf8(data: bytes) -> bytes:
    """The entry's local header (not the central directory) flags its name as UTF-8 and is not."""
    return data[:6] + b"\x00\x08" + data[8:30] + b"\xff" + data[31:]


# Found by fuzz/ (tcia_zip): NotImplementedError, OSError(EINVAL) and UnicodeDecodeError escaped.
@pytest.mark.parametrize(
    "damage", [_unsupported_version, _header_before_the_start, _name_not_utf8, _local_name_not_utf8]
)
def test_zips_zipfile_cannot_read_are_integrity_errors(damage: Any, tmp_path: Path) -> None:
    from mediator_desktop.core.errors import IntegrityError

    zip_path = tmp_path / "series.zip"
    zip_path.write_bytes(damage(_zip_bytes({"md5hashes.csv": b"Filename,MD5Hash\n", "1-1.dcm": b"DICM"})))
    (tmp_path / "stage").mkdir()
    with pytest.raises(IntegrityError, match=r"TCIA('s zip| sent a damaged zip)"):
        TciaSource._unpack(zip_path, tmp_path / "stage", "1.2.3", None)


# Found by fuzz/ (tcia_zip): a bzip2 entry whose data is damaged raised a bare OSError ("Invalid data
# stream", no errno), an LZMA one LZMAError.
@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
@pytest.mark.parametrize("member", ["md5hashes.csv", "1-1.dcm"])
def test_an_entry_whose_compressed_data_is_damaged_is_an_integrity_error(
    method: int, member: str, tmp_path: Path
) -> None:
    from mediator_desktop.core.errors import IntegrityError

    zip_path = tmp_path / "series.zip"
    with zipfile.ZipFile(zip_path, "w", compression=method) as archive:
        archive.writestr("md5hashes.csv", "Filename,MD5Hash\n1-1.dcm,0\n" * 20)
        archive.writestr("1-1.dcm", b"DICM" * 500)
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(member)
    data = bytearray(zip_path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 4, start + min(info.compress_size, 40)):
        data[i] ^= 0x5A  # the compressed stream itself, not the headers around it
    zip_path.write_bytes(bytes(data))
    (tmp_path / "stage").mkdir()
    with pytest.raises(IntegrityError, match=r"^TCIA's zip for series 1\.2\.3 is corrupt"):
        TciaSource._unpack(zip_path, tmp_path / "stage", "1.2.3", None)
