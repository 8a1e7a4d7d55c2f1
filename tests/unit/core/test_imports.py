"""Manifest files as people have them: TCIA .tcia, IDC .s5cmd, GDC TSV, MEDIator exports; and the
clear errors for everything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.imports import export_document, read_manifest_file
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection

TCIA = """downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet
includeAnnotation=true
noOfrRetry=4
databasketId=manifest-1700000000000.tcia
manifestVersion=3.0
ListOfSeriesToDownload=
1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192
1.3.6.1.4.1.14519.5.2.1.6279.6001.619372068417051974713149104919

1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192
"""

S5CMD = """# IDC download manifest
cp s3://idc-open-data/5b1d5e4e-6c3a-4b4c-8a8f-1f0e2d3c4b5a/* .
cp 's3://public-datasets-idc/A4E27F3C-1111-4000-8000-000000000001/*' ./data
"""

GDC = "id\tfilename\tmd5\tsize\tstate\n6a0d6b6b-8d44-4f8f-9b07-2f0b4e8f2a11\ta.bam\t0123\t10\treleased\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_the_formats_people_have(tmp_path: Path) -> None:
    tcia = read_manifest_file(write(tmp_path, "lidc.tcia", TCIA))
    assert (tcia.kind, tcia.name, tcia.identifier_kind) == ("tcia", "lidc", "series_uid")
    assert len(tcia.identifiers) == 2  # the repeated UID once
    idc = read_manifest_file(write(tmp_path, "cohort.s5cmd", S5CMD))
    assert idc.identifiers == ("5b1d5e4e-6c3a-4b4c-8a8f-1f0e2d3c4b5a", "a4e27f3c-1111-4000-8000-000000000001")
    gdc = read_manifest_file(write(tmp_path, "gdc_manifest.2024.txt", GDC))
    assert (gdc.kind, gdc.identifiers) == ("gdc", ("6a0d6b6b-8d44-4f8f-9b07-2f0b4e8f2a11",))
    selection = Selection.of(Pointer.of("idc", "nlst", Modality="CT")).remove(
        Pointer.of("idc", "nlst", "100002")
    )
    doc = export_document("NLST CT", "for the paper", selection, {"set_id": "0" * 32, "version": 3})
    exported = read_manifest_file(write(tmp_path, "nlst.json", json.dumps(doc)))
    assert (exported.kind, exported.name, exported.description, exported.selection) == (
        "mediator",
        "NLST CT",
        "for the paper",
        selection,
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.tcia",
            TCIA.replace("1.3.6.1.4.1.14519.5.2.1.6279.6001.619", "1.3.6.x.619"),
            "line 8: .* not a SeriesInstanceUID",
        ),
        ("a.tcia", "manifestVersion=3.0\nListOfSeriesToDownload=\n", "names no series"),
        (
            "a.s5cmd",
            "cp s3://idc-open-data/not-a-uuid/* .\n",
            "line 1: .* is not `cp s3://BUCKET/SERIES-UUID",
        ),
        ("a.s5cmd", "rm -rf /\n", "line 1"),
        ("gdc.txt", "id\tfilename\nnope\tx\n", "line 2: 'nope' is not a GDC file UUID"),
        ("a.json", '{"format": "other"}', "not a MEDIator set export"),
        ("a.json", '{"format": "mediator-set", "version": 9, "name": "x"}', "version 9"),
        ("a.json", "{broken", "not valid JSON"),
        ("a.bin", b"\xff\xfe\x00\x01binary", "not a text file"),
        ("notes.txt", "hello\nworld\n", "none of the manifests"),
        ("a.tcia", "url=x\n# ListOfSeriesToDownload= below\n1.2.3\n", "no line starts with it"),
    ],
)
def test_malformed_files_say_what_is_wrong(
    tmp_path: Path, name: str, text: str | bytes, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        read_manifest_file(write(tmp_path, name, text))


def test_missing_and_huge_files_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        read_manifest_file(tmp_path / "gone.tcia")
    import mediator_desktop.core.imports as imports

    monkeypatch.setattr(imports, "MAX_BYTES", 10)
    with pytest.raises(ValidationError, match="over 10 bytes"):
        read_manifest_file(write(tmp_path, "big.tcia", TCIA))


# -- found by fuzz/ (manifest_file) ----------------------------------------------------------------
def _zipped(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _bad_local_header(data: bytes) -> bytes:
    return b"XX" + data[2:]  # the first entry's local header loses its magic


def _name_not_utf8(data: bytes) -> bytes:
    at = data.index(b"PK\x01\x02")
    return data[: at + 8] + b"\x00\x08" + data[at + 10 : at + 46] + b"\xff" + data[at + 47 :]


def _last_name_empty(data: bytes) -> bytes:
    """The last entry's one-letter name removed from the central directory (and its size fixed)."""
    import struct

    at = data.rindex(b"PK\x01\x02")
    entry = data[at : at + 28] + b"\x00\x00" + data[at + 30 : at + 46] + data[at + 47 :]
    end = entry.index(b"PK\x05\x06")
    size = struct.unpack_from("<I", entry, end + 12)[0]
    entry = entry[: end + 12] + struct.pack("<I", size - 1) + entry[end + 16 :]
    return data[:at] + entry


@pytest.mark.parametrize(
    ("entries", "damage"),
    [
        ({"s.bag/bagit.txt": b"BagIt-Version: 1.0\n"}, _bad_local_header),  # BadZipFile escaped
        ({"s.bag/" + "n" * 300: b"x"}, None),  # OSError (file name too long) escaped
        ({"s.bag/bagit.txt": b"BagIt-Version: 1.0\n"}, _name_not_utf8),  # UnicodeDecodeError escaped
        ({"s.bag/bagit.txt": b"BagIt-Version: 1.0\n", "A": b"x"}, _last_name_empty),  # IndexError escaped
    ],
)
def test_damaged_zips_are_validation_errors(tmp_path: Path, entries: dict[str, bytes], damage: Any) -> None:
    data = _zipped(entries)
    path = write(tmp_path, "s.zip", damage(data) if damage else data)
    with pytest.raises(ValidationError, match=r"s\.zip"):
        read_manifest_file(path)


def test_json_nested_too_deeply_is_a_validation_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # RecursionError escaped
    export = write(tmp_path, "a.json", f'{{"format": "mediator-set", "version": 1, "selection": {deep}}}')
    with pytest.raises(ValidationError, match=r"not valid JSON"):
        read_manifest_file(export)
    crate = tmp_path / "c.crate"
    crate.mkdir()
    write(crate, "ro-crate-metadata.json", '{"@graph": [\n' + deep + "\n]}")
    with pytest.raises(ValidationError, match=r"not an RO-Crate written by MEDIator"):
        read_manifest_file(crate)


def test_a_bag_whose_tag_manifest_is_not_utf8_is_an_edited_export(tmp_path: Path) -> None:
    from mediator_desktop.core.errors import EditedExport

    bag = tmp_path / "s.bag"
    bag.mkdir()
    write(bag, "bagit.txt", "BagIt-Version: 1.0\n")
    write(bag, "tagmanifest-sha256.txt", b"\xff" * 64 + b"  bag-info.txt\n")  # UnicodeDecodeError escaped
    with pytest.raises(EditedExport, match=r"tagmanifest-sha256.txt line 1 is malformed"):
        read_manifest_file(bag)


def test_a_bag_whose_tag_manifest_names_an_impossible_file_is_an_edited_export(tmp_path: Path) -> None:
    from mediator_desktop.core.errors import EditedExport

    bag = tmp_path / "s.bag"
    bag.mkdir()
    write(bag, "bagit.txt", "BagIt-Version: 1.0\n")
    # the first name: OSError (file name too long) escaped
    names = ("n" * 300, "bag-info.txt", "fetch.txt", "metadata/mediator-set.json")
    write(bag, "tagmanifest-sha256.txt", "".join(f"{'0' * 64}  {name}\n" for name in names))
    with pytest.raises(EditedExport, match=r"n{80} is missing"):
        read_manifest_file(bag)
