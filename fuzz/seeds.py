"""Write the committed seeds of each target to ``fuzz/corpus/<target>/`` (``python -m fuzz.seeds``).

Seeds are small, valid inputs (and a few near misses) so that the fuzzer starts deep in each parser.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

from fuzz.targets import SEP, sample_zip

CORPUS = Path(__file__).resolve().parent / "corpus"
SET_ID = "0123456789abcdef0123456789abcdef"
UUID = "1b2c3d4e-0000-4000-8000-00000000abcd"


def _envelopes() -> dict[str, bytes]:
    from mediator_desktop.core.commands import seal
    from mediator_desktop.core.identity import Identity

    me = Identity.from_seed(bytes(range(32)), "seed")
    return {
        "create_set": seal(me, "create_set", {"set_id": SET_ID, "name": "lungs", "description": ""}, 2, 2.0),
        "chunk": seal(
            me, "put_manifest_chunk", {"manifest_id": "a" * 64, "index": 0, "total": 1}, 3, 3.5, b"\x28"
        ),
        "nested": seal(
            me, "rename_set", {"set_id": SET_ID, "name": "x", "extra": [[{"a": [1.5, None]}]]}, 4, 4.0
        ),
    }


def _state_ops() -> dict[str, bytes]:
    def record(op: str, args: dict[str, object], payload: bytes = b"") -> bytes:
        return op.encode() + b"\n" + json.dumps(args).encode() + b"\n" + payload

    create = record("create_set", {"set_id": SET_ID, "name": "lungs", "visibility": "cluster"})
    return {
        "create": create,
        "create_rename_delete": b"\x1e".join(
            [
                create,
                record("rename_set", {"set_id": SET_ID, "name": "chest", "description": "d"}),
                record("set_visibility", {"set_id": SET_ID, "visibility": "public"}),
                record("follow", {"set_id": SET_ID}),
                record("duplicate_set", {"source_id": SET_ID, "set_id": "f" * 32, "version": 1, "name": "c"}),
                record("delete_set", {"set_id": SET_ID}),
            ]
        ),
        "upload": b"\x1e".join(
            [
                create,
                record("put_manifest_chunk", {"manifest_id": "b" * 64, "index": 0, "total": 2}, b"\x28\xb5"),
                record("put_manifest_chunk", {"manifest_id": "b" * 64, "index": 1, "total": 2}, b"\x2f\xfd"),
                record("commit_manifest", {"manifest_id": "b" * 64}),
                record(
                    "commit_version",
                    {"set_id": SET_ID, "expected_head": 0, "message": "m", "manifest_id": "b" * 64},
                ),
                record("record_drift", {"set_id": SET_ID, "version": 1, "summary": "+1", "state": "open"}),
                record("record_checks", {"checks": [{"set_id": SET_ID, "time": 1.0}]}),
                record("put_table_chunk", {"table_id": "c" * 64, "index": 0, "total": 1}, b"PAR1"),
                record("commit_table", {"table_id": "c" * 64, "name": "t", "key_column": "id", "rows": 1}),
            ]
        ),
    }


def _manifests() -> dict[str, bytes]:
    from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest

    manifest = Manifest.build(
        [
            Leaf("idc", ("lung", "P1", "1.2.3"), Fingerprint(size=10, count=2, checksum="md5:ab")),
            Leaf("idc", ("lung", "P%2", "1.2\x1f4"), Fingerprint(version="v1", released="2024-01-01")),
            Leaf("s3", ("bucket", "a/b.dcm"), Fingerprint(size=0)),
        ]
    )
    return {
        "decode": b"d" + manifest.encode(),
        "chunks": b"z" + b"".join(manifest.chunks()),
        "empty": b"dmediator-manifest 1\n",
        "unsorted": b"d" + b"mediator-manifest 1\nb\x1fk\t1\x1f\x1f\x1f\x1f\na\x1fk\t1\x1f\x1f\x1f\x1f\n",
    }


def _exports(folder: Path) -> tuple[bytes, dict[str, bytes], bytes]:
    """A crate's JSON, a bag's files and the set export of one small set."""
    from mediator_desktop.core import exports
    from mediator_desktop.core.imports import export_document
    from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest
    from mediator_desktop.core.pointer import Pointer
    from mediator_desktop.core.selection import Rule, Selection

    selection = Selection(
        frozenset({Rule(Pointer.of("idc", "lung"), True), Rule(Pointer.of("idc", "lung", "P9"), False)})
    )
    manifest = Manifest.build(
        [Leaf("idc", ("lung", "P1", "1.2.3"), Fingerprint(size=5, checksum="md5:" + "0" * 32))]
    )
    document = export_document("lungs", "a set", selection, {"set_id": SET_ID, "version": 1})
    export = exports.SetExport(
        SET_ID,
        "lungs",
        "a set",
        1,
        1_700_000_000.0,
        "a" * 32,
        selection,
        manifest,
        lambda: [(leaf, f"s3://bucket/{UUID}/") for leaf in manifest],
        document,
    )
    exports.write(export, "rocrate", folder / "s.crate")
    exports.write(export, "bdbag", folder / "s.bag")
    bag = folder / "s.bag"
    files = {str(p.relative_to(bag)): p.read_bytes() for p in sorted(bag.rglob("*")) if p.is_file()}
    return (folder / "s.crate" / exports.CRATE_FILE).read_bytes(), files, json.dumps(document).encode()


def _manifest_files() -> dict[str, bytes]:
    from mediator_desktop.core import exports

    folder = Path(tempfile.mkdtemp())
    try:
        crate, bag, document = _exports(folder)
    finally:
        shutil.rmtree(folder)
    bag_parts = [bag["bag-info.txt"], bag["fetch.txt"], bag[exports.BAG_SET_FILE]]
    return {
        "tcia": b"tdownloadServerUrl=https://x\nincludeAnnotation=true\nListOfSeriesToDownload=\n1.2.3\n1.2.4\n",
        "s5cmd": b"s" + f"cp s3://idc-open-data/{UUID}/* .\n# note\nsync s3://b/{UUID}/ x\n".encode(),
        "gdc": b"g" + f"id\tfilename\tmd5\tsize\tstate\n{UUID}\ta.bam\t00\t1\treleased\n".encode(),
        "export": b"j" + document,
        "crate": b"c" + crate,
        "bag": b"b" + SEP.join(bag_parts),
        "bag_zip": b"Z"
        + SEP.join(
            part
            for name, content in bag.items()
            if not name.startswith("data/")
            for part in (name.encode(), content)
        ),
        "zip_raw": b"z" + sample_zip({"s.crate/ro-crate-metadata.json": crate}),
    }


def _tcia_zips() -> dict[str, bytes]:
    image = b"DICM" * 8
    md5 = hashlib.md5(image, usedforsecurity=False).hexdigest()
    entries = {
        "1-1.dcm": image,
        "md5hashes.csv": f"Filename,MD5Hash\n1-1.dcm,{md5}\n".encode(),
        "LICENSE": b"CC",
    }
    return {
        "raw": b"r" + sample_zip(entries),
        "parts": b"s" + SEP.join(p for name, content in entries.items() for p in (name.encode(), content)),
        "no_md5s": b"s" + SEP.join([b"1-1.dcm", image, b"1-2.dcm", image]),
        "escape": b"s" + SEP.join([b"../x.dcm", image]),
    }


def _multipart() -> dict[str, bytes]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    def instance(uid: str) -> bytes:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = uid
        ds.Modality = "CT"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()

    one = instance("1.2.3.1")
    header = b"Content-Type: application/dicom\r\n\r\n"
    return {
        "raw": b"r--b0\r\n" + header + one + b"\r\n--b0--\r\n",
        "parts": b"s" + SEP.join([b"b1", header + one + b"\r\n", b"\r\n" + instance("1.2.3.2") + b"\r\n"]),
        "base64": b"s"
        + SEP.join(
            [
                b"b2",
                b"Content-Transfer-Encoding: base64\r\n\r\n" + __import__("base64").b64encode(one) + b"\r\n",
            ]
        ),
    }


def _api_models() -> dict[str, bytes]:
    from mediator_desktop.api import models

    bodies = sorted(
        (
            k
            for k in vars(models).values()
            if isinstance(k, type) and issubclass(k, models._Body) and k is not models._Body
        ),
        key=lambda k: k.__name__,
    )
    index = {k.__name__: bytes([i]) for i, k in enumerate(bodies)}
    pointer = {"source": "idc", "path": ["lung", "P1"], "filters": {"Modality": ["CT"]}}
    return {
        "new_set": index["NewSet"] + json.dumps({"name": "s", "add": [pointer]}).encode(),
        "update": index["Update"]
        + json.dumps({"add": [pointer], "remove": [pointer], "expected_head": 2}).encode(),
        "download": index["NewDownload"]
        + json.dumps({"set_id": SET_ID, "destination": "/tmp/x", "only": ["k"]}).encode(),
        "import": index["ImportBody"]
        + json.dumps({"name": "m.tcia", "text": "ListOfSeriesToDownload=\n1.2\n"}).encode(),
        "publish": index["PublishBody"] + b'{"service": "datacite", "landing_url": "https://x.org/a"}',
    }


def _local_api() -> dict[str, bytes]:
    from fuzz.targets import API_ROUTES

    route = {path: bytes([i]) for i, (_, path) in enumerate(API_ROUTES)}
    pointer = {"source": "lab", "path": ["P1"], "filters": {"Modality": ["CT"]}}
    return {
        "new_set": route["/v1/sets"] + json.dumps({"name": "n", "add": [pointer], "strict": True}).encode(),
        "rename": route["/v1/sets/{set}/name"] + b'{"name": "renamed", "description": "d"}',
        "update": route["/v1/sets/{set}/versions"]
        + json.dumps({"add": [pointer], "expected_head": 1}).encode(),
        "import": route["/v1/sets/import"]
        + json.dumps({"name": "m.tcia", "text": "ListOfSeriesToDownload=\n1.2.3\n"}).encode(),
        "match": route["/v1/matches"] + b'{"origin": "lab", "into": ["lab"], "patients": ["P1"]}',
        "checks": route["/v1/checks"] + b'{"sets": [], "full": true}',
    }


def main() -> None:
    from mediator_desktop.core.commands import MAGIC

    seeds = {
        "envelope": {**_envelopes(), "short": MAGIC + b"\0" * 64 + b"{}\n"},
        "state_ops": _state_ops(),
        "manifest": _manifests(),
        "manifest_file": _manifest_files(),
        "tcia_zip": _tcia_zips(),
        "dicomweb_multipart": _multipart(),
        "api_models": _api_models(),
        "local_api": _local_api(),
    }
    for target, files in seeds.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
