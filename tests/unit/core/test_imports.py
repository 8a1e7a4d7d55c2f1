"""Manifest files as people have them: TCIA .tcia, IDC .s5cmd, GDC TSV, MEDIator exports; and the
clear errors for everything else."""

from __future__ import annotations

import json
from pathlib import Path

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
