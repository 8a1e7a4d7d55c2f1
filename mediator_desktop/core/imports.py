"""Manifest files people already have, read into something a replica set can be made of.

- TCIA ``.tcia`` (NBIA Data Retriever): ``ListOfSeriesToDownload=`` then one SeriesInstanceUID a line;
- IDC ``.s5cmd``: ``cp s3://<bucket>/<crdc_series_uuid>/* <folder>`` lines;
- GDC manifest TSV: ``id  filename  md5  size  state`` with one file UUID a line;
- a MEDIator set export (JSON, ``"format": "mediator-set"``): name, description and selection;
- an RO-Crate or a BDBag MEDIator exported (``core.exports``): the folder, the crate's
  ``ro-crate-metadata.json`` or the bag's ``bag-info.txt``; one edited by hand is refused
  (``IntegrityError`` naming the mismatch).

Identifiers are checked for their shape here; which archive holds them is the sources' business
(``locate``). Every malformed file is a ``ValidationError`` naming the file and the line.
"""

from __future__ import annotations

import json
import lzma
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.selection import Selection

#: Larger files are refused before reading (a million series UIDs take about 60 MB).
MAX_BYTES = 128 * 1024 * 1024
EXPORT_FORMAT = "mediator-set"

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_S5CMD = re.compile(r"""^\s*(?:cp|sync)\s+(?:--\S+\s+)*['"]?s3://([^/\s'"]+)/([^/\s'"]+)/""")

#: What the identifiers of each kind are, for ``DataSource.locate``.
KINDS = {"tcia": "series_uid", "idc-s5cmd": "crdc_series_uuid", "gdc": "gdc_file_id"}


@dataclass(frozen=True, slots=True)
class ImportedManifest:
    """What a manifest file names. ``selection`` is set for MEDIator exports, ``identifiers`` otherwise."""

    kind: str  # tcia, idc-s5cmd, gdc, mediator, rocrate, bdbag
    name: str
    identifiers: tuple[str, ...] = ()
    selection: Selection | None = None
    description: str = ""

    @property
    def identifier_kind(self) -> str:
        return KINDS.get(self.kind, "")


def read_manifest_file(path: Path) -> ImportedManifest:
    """Read and check a manifest file; ``ValidationError`` says what is wrong with it.

    An RO-Crate or a bag we exported may come as its folder, its main file, or zipped (as the
    local API and the app's drag hand them out)."""
    exported = _exported_folder(path)
    if exported is not None:
        return exported
    if path.suffix.lower() == ".zip" or (path.is_file() and zipfile.is_zipfile(path)):
        return _zipped_export(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ValidationError(
                f"{path.name} is {size:,} bytes; manifest files over {MAX_BYTES:,} bytes are refused"
            )
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{path.name} is not a text file (UTF-8); drop a .tcia, .s5cmd, GDC TSV or set export"
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}") from None
    name = path.name.split(".")[0] or path.name
    stripped = text.lstrip()
    if stripped.startswith("{"):
        if '"@graph"' in stripped[:4096]:  # a detached RO-Crate under another name
            from mediator_desktop.core.exports import read_crate

            crate_name, description, selection = read_crate(path)
            return ImportedManifest(
                "rocrate", crate_name or name, selection=selection, description=description
            )
        return _export(path, text)
    if "ListOfSeriesToDownload=" in text:
        return _tcia(path, text, name)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.split("\t")[:2] == ["id", "filename"]:
        return _gdc(path, text, name)
    if _S5CMD.match(first) or path.suffix == ".s5cmd":
        return _s5cmd(path, text, name)
    raise ValidationError(
        f"{path.name} is none of the manifests MEDIator reads: a TCIA .tcia, an IDC .s5cmd, "
        "a GDC manifest (TSV with id and filename columns) or a MEDIator set export"
    )


#: What reading a damaged zip raises (beyond OSError): a broken entry, an unknown compression
#: (NotImplementedError), an encrypted entry (RuntimeError), a name flagged UTF-8 that is not.
ZIP_DAMAGE: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
)

#: What a zipped crate or bag may unpack to, at most (a crate of a million leaves is about 1 GB).
MAX_ZIP_BYTES = 4 * 1024 * 1024 * 1024


def _zipped_export(path: Path) -> ImportedManifest:
    """A zipped RO-Crate or bag of ours (one folder inside): its metadata files unpacked into a
    temporary folder (never a bag's payload under ``data/``, never outside that folder) and read."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError, OSError) as exc:
        raise ValidationError(
            f"{path.name} is not a readable zip file ({exc}); export the set again"
        ) from None
    with archive, tempfile.TemporaryDirectory(prefix="mediator-import-") as scratch:
        if any(not m.filename for m in archive.infolist()):  # zipfile's is_dir() fails on it
            raise ValidationError(f"{path.name} holds an entry without a name; it is not an export of ours")
        members = [m for m in archive.infolist() if not m.is_dir()]
        tops = {PurePosixPath(m.filename).parts[0] for m in members if PurePosixPath(m.filename).parts}
        if len(tops) != 1:
            raise ValidationError(
                f"{path.name} holds {len(tops)} top-level entries; a zipped RO-Crate or bag holds one "
                "folder (NAME.crate/ or NAME.bag/)"
            )
        (top,) = tops
        budget = MAX_ZIP_BYTES
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if member.filename.startswith("/") or ".." in parts or "\\" in member.filename:
                raise ValidationError(f"{path.name} names a file outside its folder ({member.filename!r})")
            if len(parts) > 2 and parts[1] == "data":  # a resolved bag's payload: not needed to import
                continue
            target = Path(scratch).joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("wb") as out:
                    while block := source.read(1 << 20):
                        budget -= len(block)
                        if budget < 0:
                            raise ValidationError(
                                f"{path.name} unpacks to more than {MAX_ZIP_BYTES // 1024**3} GB; "
                                "it is not an export of ours"
                            )
                        out.write(block)
            except ZIP_DAMAGE as exc:
                # A damaged entry, an unknown compression, an encrypted one (RuntimeError), ...
                raise ValidationError(
                    f"{path.name} is a damaged zip file ({member.filename!r}: {exc}); export the set again"
                ) from None
            except OSError as exc:  # a name no folder here can hold (too long, a file in the way)
                raise ValidationError(
                    f"{path.name}: cannot unpack {member.filename[:80]!r} ({exc.strerror or exc}); "
                    "it is not an export of ours"
                ) from None
        folder = Path(scratch) / top
        ours = (folder / "ro-crate-metadata.json").is_file() or (folder / "bagit.txt").is_file()
        found = _exported_folder(folder) if ours else None
        if found is None:
            raise ValidationError(
                f"{path.name} is a zip file, but not of an RO-Crate or bag MEDIator exported; "
                "drop a .tcia, .s5cmd, GDC TSV, set export, or a zipped .crate/.bag folder"
            )
        return found


def _exported_folder(path: Path) -> ImportedManifest | None:
    """An RO-Crate or a bag of ours, given as its folder or its main file; None for anything else."""
    from mediator_desktop.core import exports

    folder = path if path.is_dir() else path.parent
    if path.is_dir() or path.name in (exports.CRATE_FILE, "bag-info.txt", "bagit.txt"):
        stem = folder.name.removesuffix(".crate").removesuffix(".bag") or folder.name
        if (folder / exports.CRATE_FILE).is_file() and path.name != "bag-info.txt":
            name, description, selection = exports.read_crate(folder / exports.CRATE_FILE)
            return ImportedManifest("rocrate", name or stem, selection=selection, description=description)
        if (folder / "bagit.txt").is_file():
            name, description, selection = exports.read_bag(folder)
            return ImportedManifest("bdbag", name or stem, selection=selection, description=description)
        if path.is_dir():
            raise ValidationError(
                f"{path.name} is a folder but neither an RO-Crate (ro-crate-metadata.json) nor a bag "
                "(bagit.txt); name a manifest file"
            )
    return None


def _unique(items: list[str], path: Path) -> tuple[str, ...]:
    if not items:
        raise ValidationError(f"{path.name} names no series or files")
    return tuple(dict.fromkeys(items))


def _tcia(path: Path, text: str, name: str) -> ImportedManifest:
    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.strip().startswith("ListOfSeriesToDownload=")), None
    )
    if start is None:
        raise ValidationError(
            f"{name} mentions ListOfSeriesToDownload= but no line starts with it; "
            "a .tcia manifest lists its series after a line ListOfSeriesToDownload="
        )
    uids = []
    for number, line in enumerate(lines[start + 1 :], start + 2):
        value = line.strip()
        if not value:
            continue
        if not _UID.fullmatch(value) or len(value) > 64:
            raise ValidationError(f"{path.name} line {number}: {value[:80]!r} is not a SeriesInstanceUID")
        uids.append(value)
    return ImportedManifest("tcia", name, _unique(uids, path))


def _s5cmd(path: Path, text: str, name: str) -> ImportedManifest:
    uuids = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _S5CMD.match(line)
        if match is None or not _UUID.fullmatch(match.group(2)):
            raise ValidationError(
                f"{path.name} line {number}: {line.strip()[:80]!r} is not "
                "`cp s3://BUCKET/SERIES-UUID/* FOLDER`"
            )
        uuids.append(match.group(2).lower())
    return ImportedManifest("idc-s5cmd", name, _unique(uuids, path))


def _gdc(path: Path, text: str, name: str) -> ImportedManifest:
    ids = []
    for number, line in enumerate(text.splitlines()[1:], 2):
        if not line.strip():
            continue
        file_id = line.split("\t", 1)[0].strip()
        if not _UUID.fullmatch(file_id):
            raise ValidationError(f"{path.name} line {number}: {file_id[:80]!r} is not a GDC file UUID")
        ids.append(file_id.lower())
    return ImportedManifest("gdc", name, _unique(ids, path))


def _export(path: Path, text: str) -> ImportedManifest:
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise ValidationError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValidationError(
            f'{path.name} is JSON but not a MEDIator set export ("format": "{EXPORT_FORMAT}")'
        )
    if data.get("version") != 1:
        raise ValidationError(
            f"{path.name} is a set export of version {data.get('version')!r}; this app reads version 1"
        )
    name = data.get("name")
    description = data.get("description", "")
    if not isinstance(name, str) or not name.strip() or not isinstance(description, str):
        raise ValidationError(f"{path.name}: the export needs a name (text) and a description (text)")
    return ImportedManifest(
        "mediator", name, selection=Selection.from_json(data.get("selection")), description=description
    )


def export_document(
    name: str, description: str, selection: Selection, source: dict[str, Any]
) -> dict[str, Any]:
    """A set version as a file others can drop into their app (``read_manifest_file`` reads it)."""
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "name": name,
        "description": description,
        "selection": selection.to_json(),
        "exported_from": source,
    }
