"""The DICOMweb source against a real Orthanc, and against answers a real server may give in a bad day."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pydicom
import pytest

from mediator_desktop.core.errors import IntegrityError, SourceError, ValidationError
from mediator_desktop.core.manifest import Fingerprint, Leaf
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.dicomweb import DicomWebSource, _split_multipart
from tests.helpers.dicom import make_series
from tests.helpers.net import send_body
from tests.helpers.orthanc import Orthanc
from tests.helpers.transfer import download, files_under


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    # Only the tests that talk to Orthanc skip without it; the bad-server and multipart ones run.
    if not Orthanc.available():
        pytest.skip("Orthanc is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(root).start()
    files = [
        *make_series(root / "data", "P1", "1.2.1", "1.2.1.1", 3, modality="CT"),
        *make_series(root / "data", "P1", "1.2.1", "1.2.1.2", 2, modality="SEG", body_part=None),
        *make_series(root / "data", "P2", "1.2.2", "1.2.2.1", 4, modality="MR", body_part="HEAD"),
    ]
    server.upload(files)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def source(orthanc: Orthanc) -> DicomWebSource:
    return DicomWebSource("pacs", orthanc.dicomweb, auth=orthanc.auth, page_size=2)


def test_browse_pages_through_the_archive(source: DicomWebSource) -> None:
    patients = source.browse()
    assert [(p.key, p.leaves) for p in patients.items] == [("P1", 2), ("P2", 1)]
    studies = source.browse(("P1",))
    assert [s.key for s in studies.items] == ["1.2.1"]
    series = source.browse(("P1", "1.2.1"))
    assert [(s.key, s.label) for s in series.items] == [("1.2.1.1", "CT series"), ("1.2.1.2", "SEG series")]
    assert source.filter_values("Modality") == ["CT", "MR", "SEG"]
    assert [p.key for p in source.browse(filters=Pointer.of("pacs", Modality="MR").filters).items] == ["P2"]
    with pytest.raises(ValidationError, match="leaf"):
        source.browse(("P1", "1.2.1", "1.2.1.1"))


def test_resolve_fingerprints_by_sop_uids(source: DicomWebSource) -> None:
    manifest = source.resolve(Selection.of(source.pointer("P1")).remove(source.pointer("P1", Modality="SEG")))
    (leaf,) = list(manifest)
    assert leaf.path == ("P1", "1.2.1", "1.2.1.1") and leaf.fingerprint.count == 3
    everything = source.resolve(Selection.of(source.pointer()))
    assert len(everything) == 3
    assert len(source.resolve(Selection.of(source.pointer("nobody")))) == 0


def test_check_asks_for_one_study_with_the_credentials(source: DicomWebSource, orthanc: Orthanc) -> None:
    assert source.check() in ("reachable (studies found)", "reachable (no studies yet)")
    with pytest.raises(SourceError, match="refused access"):
        DicomWebSource("pacs", orthanc.dicomweb, auth=("lab", "wrong"), backoff=0.01).check()


def test_wrong_password_is_a_clear_error(orthanc: Orthanc) -> None:
    wrong = DicomWebSource("pacs", orthanc.dicomweb, auth=("lab", "wrong"))
    with pytest.raises(SourceError, match=r"refused access .* check the credentials"):
        wrong.browse()


class _Bad(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, str, bytes]]] = []

    def do_GET(self) -> None:
        status, kind, body = self.answers.pop(0) if self.answers else (200, "application/json", b"[]")
        send_body(self, status, body, kind)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[_Bad]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bad)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web", _Bad
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([(200, "text/html", b"<html>Login</html>")], "not JSON"),
        ([(200, "application/json", b"[{")], "not JSON"),
        ([(200, "application/json", b'{"a": 1}'), (200, "application/json", b"[]")], ""),
        ([(200, "application/json", b"[1, 2]")], "not a list of datasets"),
        ([(503, "text/plain", b"busy")] * 4, "503 .* after retries; try later"),
        ([(404, "text/plain", b"no such thing")], "404"),
    ],
)
def test_bad_answers_are_source_errors(
    bad_server: tuple[str, type[_Bad]], answers: list[tuple[int, str, bytes]], message: str
) -> None:
    url, handler = bad_server
    handler.answers = list(answers)
    source = DicomWebSource("bad", url, backoff=0.01)
    if not message:
        assert source.browse().total == 0  # a single object instead of a list is accepted
        return
    with pytest.raises(SourceError, match=message):
        source.browse()


def test_unreachable_archive(tmp_path: Path) -> None:
    from tests.helpers.net import free_ports

    (port,) = free_ports(1)
    with pytest.raises(SourceError, match="cannot be reached"):
        DicomWebSource("gone", f"http://127.0.0.1:{port}/dicom-web", backoff=0.01).browse()


def test_download_retrieves_a_series_by_wado_rs(
    source: DicomWebSource, orthanc: Orthanc, tmp_path: Path
) -> None:
    (leaf,) = [x for x in source.resolve(Selection.of(source.pointer("P2"))) if x.path[-1] == "1.2.2.1"]
    report = download(source, [leaf], tmp_path / "dest", layout="{patient}/{modality}_{series}")
    files = [tmp_path / "dest" / f for f in files_under(tmp_path / "dest")]
    assert report.ok and len(files) == 4
    assert {pydicom.dcmread(f).SOPInstanceUID for f in files} == {f"1.2.2.1.{i}" for i in range(1, 5)}
    assert {f.parent.name for f in files} == {"MR_1.2.2.1"}


def test_fetch_refuses_a_series_that_changed_since_it_was_pinned(
    source: DicomWebSource, orthanc: Orthanc, tmp_path: Path
) -> None:
    made = make_series(tmp_path / "late", "P3", "1.2.3", "1.2.3.1", 3, modality="CT")
    orthanc.upload(made[:2])
    (leaf,) = list(source.resolve(Selection.of(source.pointer("P3"))))
    orthanc.upload(made[2:])  # a third instance arrives after the set was resolved
    report = download(source, [leaf], tmp_path / "dest")
    assert "changed since" in report.failed[0].reason
    assert files_under(tmp_path / "dest") == []


def test_paging_goes_on_until_an_empty_page(bad_server: tuple[str, type[_Bad]]) -> None:
    """A server may cap a page below the limit asked for; only an empty page ends the search."""
    url, handler = bad_server
    series = (
        '[{"00100020":{"vr":"LO","Value":["P%d"]},"0020000D":{"vr":"UI","Value":["1.%d"]},'
        '"0020000E":{"vr":"UI","Value":["1.%d.1"]}}]'
    )
    handler.answers = [(200, "application/json", (series % (i, i, i)).encode()) for i in (1, 2)]
    handler.answers.append((200, "application/json", b"[]"))
    assert [p.key for p in DicomWebSource("capped", url, page_size=500).browse().items] == ["P1", "P2"]


PREAMBLE = bytes(128) + b"DICM"
DAMAGED_PARTS = {
    # group length with a length that is no multiple of 4: pydicom raises BytesLengthException
    "odd length": PREAMBLE + b"\x02\x00\x00\x00UL" + struct.pack("<H", 122) + bytes(122),
    # a value representation that does not exist: pydicom raises NotImplementedError
    "unknown VR": PREAMBLE
    + b"\x02\x00\x00\x00UL"
    + struct.pack("<HL", 4, 10)
    + b"\x02\x00\x10\x00\x55\xeb"
    + struct.pack("<H", 2)
    + b"ab",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_PARTS))
def test_a_part_pydicom_cannot_read_fails_the_series_not_the_download(
    bad_server: tuple[str, type[_Bad]], tmp_path: Path, damage: str
) -> None:
    url, handler = bad_server
    body = b"--BND\r\nContent-Type: application/dicom\r\n\r\n" + DAMAGED_PARTS[damage] + b"\r\n--BND--\r\n"
    handler.answers = [(200, 'multipart/related; type="application/dicom"; boundary=BND', body)]
    source = DicomWebSource("bad", url, backoff=0.01)
    leaf = Leaf("bad", ("P", "1.2", "1.2.3"), Fingerprint(count=1))
    report = download(source, [leaf], tmp_path / "dest", layout="{patient}/{series}")
    assert [f.key for f in report.failed] == [leaf.key]
    assert "not DICOM" in report.failed[0].reason
    assert files_under(tmp_path / "dest") == []


def test_a_big_series_is_split_without_holding_it_in_memory(tmp_path: Path) -> None:
    """A WADO-RS body of 64 MB: parts are copied a megabyte at a time from a memory map (the email
    parser held a series about nine times over: a 2 GB series needed about 18 GB)."""
    instance = os.urandom(16 << 20)
    body = tmp_path / "series.multipart"
    with body.open("wb") as f:
        for _ in range(4):
            f.write(b"--BND\r\nContent-Type: application/dicom\r\n\r\n" + instance + b"\r\n")
        f.write(b"--BND--\r\n")
    tracemalloc.start()
    try:
        parts = _split_multipart(body, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.read_bytes() == instance for p in parts] == [True] * 4
    assert peak < 8 << 20, peak


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (
            b"--b\r\n\r\nfirst\r\n--b\r\nContent-Type: application/dicom\r\n\r\nsecond\r\n--b--",
            [b"first", b"second"],
        ),
        (b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n", [b"hello"]),
        (b"--b \r\n\r\nx\r\n--b  \r\n\r\ny\r\n--b--", [b"x", b"y"]),  # white space after boundaries
    ],
)
def test_multipart_bodies_as_servers_write_them(tmp_path: Path, body: bytes, parts: list[bytes]) -> None:
    (tmp_path / "body").write_bytes(body)
    assert [p.read_bytes() for p in _split_multipart(tmp_path / "body", tmp_path)] == parts


@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\n\r\nfirst\r\n--b\r\n\r\nsecond",  # no closing boundary
        b"--b\r\nContent-Type: application/dicom",  # headers never end
        b"--b\r\nContent-Transfer-Encoding: gzip\r\n\r\nx\r\n--b--",
        # Found by fuzz/ (dicomweb_multipart): binascii.Error escaped.
        b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8\r\n--b--",
    ],
)
def test_damaged_multipart_bodies_are_integrity_errors(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "body").write_bytes(body)
    with pytest.raises(IntegrityError):
        _split_multipart(tmp_path / "body", tmp_path)
