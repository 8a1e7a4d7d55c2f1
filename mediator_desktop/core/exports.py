"""A set version written in the formats the field uses, from its manifest and selection alone.

Formats (``FORMATS``):

- ``rocrate``: a folder ``NAME.crate/`` holding a detached RO-Crate 1.1: ``ro-crate-metadata.json``
  (every leaf a web data entity whose ``@id`` is its archive URL, with its size, MD5, version and
  release; the selection's rules, its hash and the manifest id as ``PropertyValue``\\ s; the DataCite
  metadata of a published version) and ``ro-crate-preview.html``, a page people read;
- ``bdbag``: a BagIt folder ``NAME.bag/``: ``fetch.txt`` (URL, size, path of each leaf whose
  fingerprint has an MD5: pointers, never data) with ``manifest-md5.txt``; the other leaves (series
  folders, pointers) in ``metadata/fetch-unverified.txt``, same syntax; the set export under
  ``metadata/``; ``tagmanifest-sha256.txt`` over every tag file. With ``SetExport.plan`` (opt-in,
  online: ``Sets.export_file(..., files=True)``) a leaf whose download plan is verifiable
  (``bag_files``) is listed file by file instead, ``data/<leaf>/<file>``, so ``bdbag --resolve-fetch
  all`` materializes it and ``bdbag --validate full`` checks every byte;
- ``s5cmd``: IDC's manifest (``cp s3://BUCKET/UUID/* .`` per series), as IDC's tools read it;
- ``tcia``: the NBIA Data Retriever's ``.tcia`` manifest of the TCIA and IDC series;
- ``csv``: one row per leaf: source, path, fingerprint and URL;
- ``gdc`` and ``mediator`` are written by the service (the archives' ``manifest_file``, the set export).

Writers stream: a million leaves are written in seconds without a second copy of the manifest in
memory. ``write`` writes to a temporary name beside the target and renames it when complete, so
a failure never leaves a partial export. ``read_crate`` and ``read_bag`` (used by
``core.imports``) read our own exports back and refuse one edited by hand, naming the mismatch.

No network here by default: each leaf's URL comes from its archive's optional, offline
``leaf_urls(leaves) -> Iterable[(leaf, url)]``; a leaf of an archive without one is exported as a
MEDIator pointer (``mediator:<source>/<path>``). Only a bag with ``SetExport.plan`` asks the
archives (their ``plan(leaf)``, the listing downloads use), a few leaves at once.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import html
import json
import os
import re
import shutil
import tempfile
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import quote

from mediator_desktop.core.commands import canonical_json
from mediator_desktop.core.errors import EditedExport, ValidationError
from mediator_desktop.core.manifest import (
    TAB,
    US,
    Fingerprint,
    Leaf,
    Manifest,
    escape_component,
    unescape_component,
)
from mediator_desktop.core.publishing import DoiMetadata
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.source import LeafPlan, RemoteFile

#: Every export format, by the name ``--format`` takes.
FORMATS: Final = ("rocrate", "bdbag", "s5cmd", "tcia", "gdc", "csv", "mediator")
#: Formats written as a folder, and the suffix of its name.
FOLDERS: Final = {"rocrate": ".crate", "bdbag": ".bag"}
#: Formats written as one file, and the suffix of its name.
SUFFIXES: Final = {"s5cmd": ".s5cmd", "tcia": ".tcia", "gdc": ".txt", "csv": ".csv", "mediator": ".json"}

CRATE_FILE: Final = "ro-crate-metadata.json"
PREVIEW_FILE: Final = "ro-crate-preview.html"
BAG_SET_FILE: Final = "metadata/mediator-set.json"
#: The leaves without an MD5 (IDC and TCIA series are folders of files, pointers have no bytes), in
#: fetch.txt's syntax: BagIt fetches only what a payload manifest can verify.
BAG_REMOTE_FILE: Final = "metadata/fetch-unverified.txt"
#: Leaves planned at once for a bag of files (each plan is one archive listing).
PLAN_WORKERS: Final = 8
#: Terms of the crate that schema.org lacks, defined in the crate's own context.
TERMS: Final = "https://github.com/mediator-desktop/terms#"
_CONTEXT: Final = [
    "https://w3id.org/ro/crate/1.1/context",
    {
        "md5": f"{TERMS}md5",
        "instanceCount": f"{TERMS}instanceCount",
        "released": f"{TERMS}released",
    },
]
_IDC_SERIES = re.compile(r"^s3://([^/\s]+)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$")
_encode = json.JSONEncoder(ensure_ascii=False).encode
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*').fullmatch


def _q(text: str) -> str:
    """``text`` as a JSON string: quoted as it is when nothing in it needs escaping (the fast path)."""
    return f'"{text}"' if _PLAIN(text) else _encode(text)


#: A leaf and its archive URL.
Located = tuple[Leaf, str]
#: A leaf's download plan (its archive's ``plan``), or None when no archive here can plan it.
Planner = Callable[[Leaf], LeafPlan | None]


def pointer_url(leaf: Leaf) -> str:
    """The URL of a leaf whose archive gives none: a MEDIator pointer any node resolves."""
    return f"mediator:{quote(leaf.source_id, safe='')}/" + "/".join(quote(k, safe="") for k in leaf.path)


def leaves_of(manifest: Manifest, source_id: str) -> Iterator[Leaf]:
    """The leaves of one source, as ``manifest.under(source_id)`` gives them, made without checking
    each line again: a manifest was checked when it was decoded, and a million checks cost seconds."""
    key = escape_component(source_id)
    lines = manifest.lines()
    start = bisect_left(lines, key + US)
    new_fp, new_leaf, setattr_ = Fingerprint.__new__, Leaf.__new__, object.__setattr__
    for i in range(start, len(lines)):
        line = lines[i]
        head, _, fp = line.partition(TAB)
        parts = head.split(US)
        if parts[0] != key:
            break
        if "%" in line:
            parts = [unescape_component(p) for p in parts]
        size, count, checksum, version, released = fp.split(US)
        fingerprint = new_fp(Fingerprint)
        setattr_(fingerprint, "size", int(size) if size else None)
        setattr_(fingerprint, "count", int(count) if count else None)
        setattr_(fingerprint, "checksum", unescape_component(checksum) or None)
        setattr_(fingerprint, "version", unescape_component(version) or None)
        setattr_(fingerprint, "released", unescape_component(released) or None)
        leaf = new_leaf(Leaf)
        setattr_(leaf, "source_id", parts[0])
        setattr_(leaf, "path", tuple(parts[1:]))
        setattr_(leaf, "fingerprint", fingerprint)
        yield leaf


def selection_hash(selection: Selection) -> str:
    """sha256 (hex) of the selection's canonical JSON: what a crate records to notice an edit."""
    return hashlib.sha256(canonical_json(selection.to_json())).hexdigest()


@dataclass(frozen=True, slots=True)
class SetExport:
    """What an export is made of: one version of a set, its manifest and each leaf's URL.

    Attributes:
        located: every leaf of ``manifest`` with its archive URL (called once per writer; streams).
        document: the MEDIator set export of the version (``core.imports.export_document``).
        metadata: the DataCite metadata of a published version, or None.
        doi: its DOI, once minted.
        plan: for a bag of files (opt-in, asks the archives): each leaf's download plan; a leaf
            whose plan ``bag_files`` accepts is listed file by file. None: every leaf a pointer.
    """

    set_id: str
    name: str
    description: str
    version: int
    time: float
    author: str
    selection: Selection
    manifest: Manifest
    located: Callable[[], Iterable[Located]]
    document: dict[str, Any]
    metadata: DoiMetadata | None = None
    doi: str | None = None
    plan: Planner | None = None

    @property
    def stem(self) -> str:
        """A file name for the export: the set's name, safe on every file system, and the version."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("._") or "set"
        return f"{safe[:80]}_v{self.version}"

    @property
    def published(self) -> str:
        return dt.datetime.fromtimestamp(self.time, dt.UTC).isoformat(timespec="seconds")


def default_name(export: SetExport, fmt: str) -> str:
    """The name an export of ``fmt`` gets in a folder: ``NAME_v3.crate``, ``NAME_v3.tcia``..."""
    return export.stem + (FOLDERS.get(fmt) or SUFFIXES[fmt])


# -- writing atomically ----------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[IO[str]]:
    """A text file written beside ``target`` and renamed to it when the block ends without error."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(name, target)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(name)


def atomic_bytes(target: Path, data: bytes) -> None:
    """``data`` written to ``target`` through a temporary name beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def is_export_folder(path: Path) -> bool:
    """Whether ``path`` is an RO-Crate or bag folder (what a new export of it may replace)."""
    return path.is_dir() and ((path / CRATE_FILE).is_file() or (path / "bagit.txt").is_file())


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A folder filled beside ``target`` and renamed to it when the block ends without error.

    An existing ``target`` is replaced only then, and only when it is an earlier crate or bag:
    any other folder (a user's, with their files) is never touched.
    """
    if target.exists() and not is_export_folder(target):
        raise ValidationError(
            f"{target} exists and is not an RO-Crate or bag; nothing was written. Name a new folder, "
            "or the folder to write the export into (it is then named after the set)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    done = False
    try:
        yield work
        old = None
        if target.exists():
            if not is_export_folder(target):  # made meanwhile by someone else: theirs
                raise ValidationError(f"{target} appeared meanwhile, not an export; nothing was written")
            old = target.with_name(f".{target.name}.old{os.getpid()}")
            os.replace(target, old)
        os.replace(work, target)
        done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if not done:
            shutil.rmtree(work, ignore_errors=True)


def write(export: SetExport, fmt: str, target: Path) -> Path:
    """Write ``export`` as ``fmt`` to ``target`` (a file, or a folder for ``FOLDERS``), atomically.

    Raises:
        ValidationError: an unknown format, or a version that holds nothing the format lists.
    """
    if fmt == "rocrate":
        with atomic_folder(target) as folder:
            write_crate(export, folder)
    elif fmt == "bdbag":
        with atomic_folder(target) as folder:
            write_bag(export, folder)
    elif fmt in WRITERS:
        with atomic_file(target) as out:
            WRITERS[fmt](export, out)
    elif fmt == "mediator":
        with atomic_file(target) as out:
            json.dump(export.document, out, indent=2, ensure_ascii=False)
            out.write("\n")
    else:
        raise ValidationError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    return target


# -- flat files ------------------------------------------------------------------------------------------
def write_csv(export: SetExport, out: IO[str]) -> None:
    """One row per leaf: source, path (keys joined by ``/``), fingerprint, URL."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("source", "path", "size", "count", "checksum", "version", "released", "url"))
    rows = (
        (
            leaf.source_id,
            "/".join(leaf.path),
            "" if (fp := leaf.fingerprint).size is None else fp.size,
            "" if fp.count is None else fp.count,
            fp.checksum or "",
            fp.version or "",
            fp.released or "",
            url,
        )
        for leaf, url in export.located()
    )
    writer.writerows(rows)


def write_s5cmd(export: SetExport, out: IO[str]) -> None:
    """IDC's series as an s5cmd manifest (``s5cmd --no-sign-request run FILE``; idc-index reads it)."""
    out.write(
        f"# {export.name} (version {export.version}), the IDC series of a MEDIator replica set.\n"
        "# s5cmd --no-sign-request --endpoint-url https://s3.amazonaws.com run THIS_FILE\n"
    )
    written = 0
    for _, url in export.located():
        if _IDC_SERIES.match(url):
            out.write(f"cp {url}* .\n")
            written += 1
    if not written:
        raise ValidationError(
            f"version {export.version} of {export.name!r} holds no IDC series; "
            "an s5cmd manifest lists only those"
        )


def write_tcia(export: SetExport, out: IO[str]) -> None:
    """The TCIA and IDC series as a ``.tcia`` manifest of the NBIA Data Retriever."""
    stamp = int(export.time * 1000)
    out.write(
        "downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet\n"
        "includeAnnotation=true\n"
        "noOfrRetry=4\n"
        f"databasketId=manifest-{stamp}.tcia\n"
        "manifestVersion=3.0\n"
        "ListOfSeriesToDownload=\n"
    )
    written = 0
    for leaf, url in export.located():
        if "SeriesInstanceUID=" in url or _IDC_SERIES.match(url):
            out.write(f"{leaf.path[-1]}\n")
            written += 1
    if not written:
        raise ValidationError(
            f"version {export.version} of {export.name!r} holds no TCIA or IDC series; "
            "a .tcia manifest lists only those"
        )


WRITERS: Final[dict[str, Callable[[SetExport, IO[str]], None]]] = {
    "csv": write_csv,
    "s5cmd": write_s5cmd,
    "tcia": write_tcia,
}


# -- RO-Crate ----------------------------------------------------------------------------------------------
def _md5(checksum: str | None) -> str | None:
    return checksum[4:] if checksum and checksum.startswith("md5:") else None


def _leaf_entity(leaf: Leaf, url: str) -> str:
    fp = leaf.fingerprint
    name = _q(leaf.source_id + "/" + "/".join(leaf.path))
    out = f'{{"@id":{_q(url)},"@type":"File","name":{name}'
    if fp.size is not None:
        out += f',"contentSize":"{fp.size}"'
    if fp.count is not None:
        out += f',"instanceCount":{fp.count}'
    md5 = _md5(fp.checksum)
    if md5 is not None:
        out += f',"md5":{_q(md5)}'
    elif fp.checksum:
        out += f',"identifier":{_q(fp.checksum)}'
    if fp.version:
        out += f',"version":{_q(fp.version)}'
    if fp.released:
        out += f',"released":{_q(fp.released)}'
    return out + "}"


def _people(metadata: DoiMetadata) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The authors (refs) and their entities (ORCID iris where known)."""
    refs, entities = [], []
    for i, creator in enumerate(metadata.creators):
        iri = f"https://orcid.org/{creator.orcid_id}" if creator.orcid_id else f"#creator-{i + 1}"
        entity: dict[str, Any] = {
            "@id": iri,
            "@type": "Person" if "," in creator.name else "Organization",
            "name": creator.name,
        }
        if creator.given:
            entity["givenName"] = creator.given
        if creator.family:
            entity["familyName"] = creator.family
        if creator.affiliation:
            entity["affiliation"] = creator.affiliation
        refs.append({"@id": iri})
        entities.append(entity)
    return refs, entities


def _crate_head(export: SetExport) -> list[dict[str, Any]]:
    """Every entity but the leaves: the descriptor, the preview, the root, rules and metadata."""
    rules = export.selection.sorted_rules()
    properties: list[dict[str, Any]] = [
        {
            "@id": "#selection",
            "@type": "PropertyValue",
            "propertyID": "mediator:selection",
            "name": "selection (MEDIator rules, canonical JSON)",
            "value": canonical_json(export.selection.to_json()).decode(),
        },
        {
            "@id": "#selection-sha256",
            "@type": "PropertyValue",
            "propertyID": "mediator:selection-sha256",
            "name": "sha256 of the selection's canonical JSON",
            "value": selection_hash(export.selection),
        },
        {
            "@id": "#manifest",
            "@type": "PropertyValue",
            "propertyID": "mediator:manifest-id",
            "name": "manifest id (sha256 of the canonical manifest of the leaves and their fingerprints)",
            "value": export.manifest.id,
        },
        {
            "@id": "#leaves",
            "@type": "PropertyValue",
            "propertyID": "mediator:leaves",
            "name": "leaves",
            "value": len(export.manifest),
        },
    ]
    for i, rule in enumerate(rules, 1):
        properties.append(
            {
                "@id": f"#rule-{i}",
                "@type": "PropertyValue",
                "propertyID": "mediator:include" if rule.include else "mediator:exclude",
                "name": f"rule {i}: {'include' if rule.include else 'exclude'}",
                "value": str(rule.pointer),
            }
        )
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": export.name,
        "description": export.description
        or f"Version {export.version} of the MEDIator replica set {export.name}",
        "datePublished": export.published,
        "version": str(export.version),
        "identifier": [{"@id": "#set"}],
        "license": {"@id": "#license"},
        "variableMeasured": [{"@id": p["@id"]} for p in properties],
        "conditionsOfAccess": "The data stay in their archives; each part links to where it is fetched.",
    }
    extra: list[dict[str, Any]] = [
        {
            "@id": "#set",
            "@type": "PropertyValue",
            "propertyID": "mediator:set",
            "name": "MEDIator replica set and version",
            "value": f"{export.set_id}/v{export.version}",
        },
        {
            "@id": "#license",
            "@type": "CreativeWork",
            "name": "the licences of the source collections",
            "description": "Each leaf is under the licence of the archive collection it comes from.",
        },
    ]
    metadata = export.metadata
    if metadata is not None:
        refs, people = _people(metadata)
        root["author"] = refs
        extra.extend(people)
        root["name"] = metadata.title
        if metadata.description:
            root["description"] = metadata.description
        root["publisher"] = {"@id": "#publisher"}
        extra.append({"@id": "#publisher", "@type": "Organization", "name": metadata.publisher})
        root["datePublished"] = str(metadata.year)
        if metadata.license:
            iri = f"https://spdx.org/licenses/{metadata.license}"
            root["license"] = {"@id": iri}
            extra[1] = {"@id": iri, "@type": "CreativeWork", "name": metadata.license}
        if metadata.subjects:
            root["keywords"] = ", ".join(metadata.subjects)
        if metadata.funding:
            root["funder"] = [{"@id": f"#funder-{i}"} for i in range(1, len(metadata.funding) + 1)]
            extra.extend(
                {"@id": f"#funder-{i}", "@type": "Organization", "name": name}
                for i, name in enumerate(metadata.funding, 1)
            )
        if metadata.related:
            root["citation"] = [
                {"@id": f"https://doi.org/{r.identifier}" if r.kind == "DOI" else r.identifier}
                for r in metadata.related
            ]
        extra.append(
            {
                "@id": "#datacite",
                "@type": "PropertyValue",
                "propertyID": "datacite:attributes",
                "name": "DataCite metadata (kernel 4)",
                "value": json.dumps(metadata.datacite_attributes(), sort_keys=True, ensure_ascii=False),
            }
        )
        root["variableMeasured"].append({"@id": "#datacite"})
    if export.doi:
        root["identifier"].append({"@id": f"https://doi.org/{export.doi}"})
        root["cite-as"] = f"https://doi.org/{export.doi}"
    descriptor = {
        "@id": CRATE_FILE,
        "@type": "CreativeWork",
        "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
        "about": {"@id": "./"},
    }
    preview = {"@id": PREVIEW_FILE, "@type": "CreativeWork", "about": {"@id": "./"}}
    return [descriptor, preview, root, *properties, *extra]


def write_crate(export: SetExport, folder: Path) -> None:
    """``ro-crate-metadata.json`` and ``ro-crate-preview.html`` into ``folder``.

    One entity a line, the leaves last, so ``read_crate`` reads the head of a million-leaf crate
    without parsing the rest; the root's ``hasPart`` lists the leaves.
    """
    head = _crate_head(export)
    root = head[2]
    spool = folder / ".leaves.part"
    with (folder / CRATE_FILE).open("w", encoding="utf-8") as out:
        out.write('{"@context":' + _encode(_CONTEXT) + ',"@graph":[\n')
        for entity in head:
            if entity is not root:
                out.write(_encode(entity) + ",\n")
        # One pass over the leaves: their ids go into the root's hasPart, their entities to a
        # spool file appended after it.
        out.write(_encode(root)[:-1] + ',"hasPart":[')
        seen: set[int] = set()  # a GDC file under two cases is one data entity
        total = 0
        with spool.open("w", encoding="utf-8") as leaves:
            sep = ""
            for leaf, url in export.located():
                total += leaf.fingerprint.size or 0
                if (key := hash(url)) in seen:
                    continue
                seen.add(key)
                out.write(f'{sep}{{"@id":{_q(url)}}}')
                leaves.write(f"{sep and ',' + chr(10)}{_leaf_entity(leaf, url)}")
                sep = ","
        out.write("]}" + (",\n" if sep else "\n"))
        with spool.open(encoding="utf-8") as leaves:
            shutil.copyfileobj(leaves, out, 1 << 20)
        out.write("\n]}\n")
    spool.unlink()
    _write_preview(export, head, folder / PREVIEW_FILE, total)


def _write_preview(export: SetExport, head: list[dict[str, Any]], path: Path, total_size: int) -> None:
    esc = html.escape
    root = head[2]
    rows = [
        ("Set", f"{export.set_id} version {export.version}"),
        ("Published", str(root["datePublished"])),
        ("Leaves", f"{len(export.manifest):,}"),
        ("Bytes", f"{total_size:,}"),
        ("Manifest id", export.manifest.id),
        ("Selection sha256", selection_hash(export.selection)),
    ]
    if export.doi:
        rows.insert(0, ("DOI", f"https://doi.org/{export.doi}"))
    if export.metadata is not None:
        rows.insert(0, ("Creators", "; ".join(c.name for c in export.metadata.creators)))
        rows.insert(1, ("Publisher", export.metadata.publisher))
        if export.metadata.license:
            rows.append(("Licence", export.metadata.license))
    with path.open("w", encoding="utf-8") as out:
        out.write(
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(str(root['name']))}</title>"
            '<script type="application/ld+json">'
            + json.dumps({"@context": _CONTEXT, "@graph": head[:3]}).replace("</", "<\\/")
            + "</script></head><body>\n"
            f"<h1>{esc(str(root['name']))}</h1>\n<p>{esc(str(root['description']))}</p>\n<table>\n"
        )
        for name, value in rows:
            out.write(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>\n")
        out.write("</table>\n<h2>Selection</h2>\n<ul>\n")
        for rule in export.selection.sorted_rules():
            what = "include" if rule.include else "exclude"
            out.write(f"<li>{what} <code>{esc(str(rule.pointer))}</code></li>\n")
        out.write("</ul>\n<h2>Data</h2>\n<p>The data stay in their archives: ")
        out.write(f"<code>{CRATE_FILE}</code> lists every part with its archive URL and fingerprint.</p>\n")
        out.write("<ul>\n")
        for shown, (leaf, url) in enumerate(export.located()):
            if shown == 100:
                more = len(export.manifest) - 100
                out.write(f"<li>... and {more:,} more</li>\n")
                break
            name = esc(leaf.source_id + "/" + "/".join(leaf.path))
            out.write(f"<li><a href='{esc(url)}'>{name}</a></li>\n")
        out.write("</ul>\n</body></html>\n")


def read_crate(path: Path) -> tuple[str, str, Selection]:
    """The name, description and selection of a crate we exported (its folder or its JSON).

    Raises:
        ValidationError: not a MEDIator crate.
        EditedExport: edited by hand: the selection, its recorded hash or its rules disagree.
    """
    file = path / CRATE_FILE if path.is_dir() else path
    head: dict[str, dict[str, Any]] = {}
    try:
        with file.open(encoding="utf-8") as lines:
            first = lines.readline()
            if '"@graph"' not in first:
                raise ValidationError(
                    f"{file.name} is not an RO-Crate written by MEDIator (one entity a line)"
                )
            for line in lines:
                text = line.rstrip().rstrip(",")
                if text in ("]}", "]"):
                    break
                entity = json.loads(text)
                if entity.get("@type") == "File":
                    break
                head[str(entity.get("@id"))] = entity
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror or exc}") from None
    except (ValueError, AttributeError, RecursionError):  # RecursionError: nested thousands deep
        raise ValidationError(
            f"{file.name} is not an RO-Crate written by MEDIator (a line is not one JSON entity)"
        ) from None
    root, recorded, stored = head.get("./"), head.get("#selection-sha256"), head.get("#selection")
    if root is None or recorded is None or stored is None:
        raise ValidationError(
            f"{file.name} is an RO-Crate without a MEDIator selection; "
            "only crates exported by MEDIator import"
        )
    try:
        selection = Selection.from_json(json.loads(str(stored.get("value"))))
    except (ValueError, RecursionError) as exc:
        raise EditedExport(f"{file.name}: the selection (#selection) is not valid: {exc}") from None
    actual = selection_hash(selection)
    if actual != recorded.get("value"):
        raise EditedExport(
            f"{file.name} was changed by hand: the selection hashes to {actual[:12]}, the crate records "
            f"{str(recorded.get('value'))[:12]} (#selection-sha256); export the set again"
        )
    shown = {
        (str(e.get("propertyID")), str(e.get("value"))) for key, e in head.items() if key.startswith("#rule-")
    }
    rules = {
        ("mediator:include" if r.include else "mediator:exclude", str(r.pointer)) for r in selection.rules
    }
    if shown != rules:
        extra = sorted(shown - rules) or sorted(rules - shown)
        raise EditedExport(
            f"{file.name} was changed by hand: its rules disagree with its selection "
            f"({extra[0][0].split(':')[1]} {extra[0][1]}); export the set again"
        )
    name = str(root.get("name") or "")
    return name, str(root.get("description") or ""), selection


# -- BDBag ---------------------------------------------------------------------------------------------------
_UNSAFE_IN_BAG: Final = str.maketrans({"/": "_", "%": "_", "\r": "_", "\n": "_"})


def _bag_path(leaf: Leaf) -> str:
    parts = (leaf.source_id, *leaf.path)
    safe = ("_" if p in (".", "..") else p for p in parts)
    joined = "/".join(p.replace("/", "_") for p in safe)
    return "data/" + joined.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _bag_component(part: str) -> str:
    """One component of a payload path: never ``.`` or ``..``; ``/``, ``%``, CR and LF become ``_``.

    BagIt percent-encodes ``%``, CR and LF in paths, but its tools decode them differently (bagit's
    manifests only CR and LF, bdbag's ``fetch.txt`` every escape), so a path holding one would not
    match between ``fetch.txt`` and ``manifest-md5.txt``.
    """
    if part in (".", "..", ""):
        return "_"
    return part.translate(_UNSAFE_IN_BAG)


def _files_path(leaf: Leaf) -> str:
    """The folder of a leaf listed file by file (``_bag_component`` on each key)."""
    return "data/" + "/".join(_bag_component(p) for p in (leaf.source_id, *leaf.path))


def bag_files(plan: LeafPlan | None) -> tuple[RemoteFile, ...] | None:
    """The files of a leaf's plan when a bag can fetch and verify them all, else None (the leaf
    stays a pointer): the plan has files and no ``finish`` (what is fetched is the leaf's files),
    and each file has an MD5, an ``http(s)://`` URL and needs no request headers (a token), under a
    name no other file of the leaf has."""
    if plan is None or plan.finish is not None or not plan.files:
        return None
    names: set[str] = set()
    for file in plan.files:
        if not file.md5 or file.headers or not file.url.startswith(("http://", "https://")):
            return None
        name = _bag_component(file.name)
        if name in names:
            return None
        names.add(name)
    return plan.files


#: A leaf, its archive URL, and its files when the bag lists them (``bag_files``).
_BagLeaf = tuple[Leaf, str, tuple[RemoteFile, ...] | None]


def _planned(export: SetExport, plan: Planner) -> Iterator[_BagLeaf]:
    """Each leaf of ``export`` with its verifiable files, in manifest order; ``PLAN_WORKERS`` plans
    (archive listings) in flight at once. An error of a plan propagates; the others are dropped."""
    pool = ThreadPoolExecutor(PLAN_WORKERS, thread_name_prefix="bag-plan")
    window: deque[tuple[Leaf, str, Future[LeafPlan | None]]] = deque()
    try:
        for leaf, url in export.located():
            window.append((leaf, url, pool.submit(plan, leaf)))
            if len(window) >= 4 * PLAN_WORKERS:
                first, where, planned = window.popleft()
                yield first, where, bag_files(planned.result())
        while window:
            first, where, planned = window.popleft()
            yield first, where, bag_files(planned.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_bag(export: SetExport, folder: Path) -> None:
    """A BagIt 1.0 bag of pointers: ``fetch.txt`` and ``manifest-md5.txt`` for the leaves with an
    MD5, the rest in ``BAG_REMOTE_FILE``, the set export under ``metadata/``,
    ``tagmanifest-sha256.txt`` over every tag file.

    With ``export.plan``, a leaf whose plan ``bag_files`` accepts is listed file by file
    (``data/<leaf>/<file>``, each with its URL, size and MD5) instead; errors of a plan propagate.
    """
    (folder / "data").mkdir()
    (folder / "metadata").mkdir()
    (folder / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    files_listed = 0
    with (
        (folder / "fetch.txt").open("w", encoding="utf-8", newline="\n") as fetch,
        (folder / "manifest-md5.txt").open("w", encoding="utf-8", newline="\n") as md5s,
        (folder / BAG_REMOTE_FILE).open("w", encoding="utf-8", newline="\n") as remote,
    ):
        # the offline default asks no archive: every leaf a line of its own
        leaves = (
            ((leaf, url, None) for leaf, url in export.located())
            if export.plan is None
            else _planned(export, export.plan)
        )
        for leaf, url, files in leaves:
            if files is not None:
                folder_path = _files_path(leaf)
                for file in files:
                    inside = f"{folder_path}/{_bag_component(file.name)}"
                    size_text = "-" if file.size is None else file.size
                    fetch.write(f"{file.url.replace(' ', '%20')}\t{size_text}\t{inside}\n")
                    md5s.write(f"{(file.md5 or '').lower()}  {inside}\n")
                files_listed += len(files)
                continue
            where = _bag_path(leaf)
            size = leaf.fingerprint.size
            line = f"{url.replace(' ', '%20')}\t{'-' if size is None else size}\t{where}\n"
            md5 = _md5(leaf.fingerprint.checksum)
            if md5 is None:
                remote.write(line)
            else:
                fetch.write(line)
                md5s.write(f"{md5}  {where}\n")
    with (folder / BAG_SET_FILE).open("w", encoding="utf-8") as out:
        json.dump(export.document, out, indent=2, ensure_ascii=False)
        out.write("\n")
    description = " ".join((export.description or export.name).split())
    info = [
        ("Bag-Software-Agent", "MEDIator Desktop"),
        ("Bagging-Date", dt.date.today().isoformat()),
        ("External-Identifier", f"mediator:set/{export.set_id}/v{export.version}"),
        ("External-Description", description[:2000]),
        ("MEDIator-Set-Name", " ".join(export.name.split())),
        ("MEDIator-Manifest-Id", export.manifest.id),
        ("MEDIator-Selection-Sha256", selection_hash(export.selection)),
        ("MEDIator-Leaves", str(len(export.manifest))),
    ]
    if export.plan is not None:
        info.append(("MEDIator-Files-Listed", str(files_listed)))
    if export.doi:
        info.append(("Identifier", f"https://doi.org/{export.doi}"))
    (folder / "bag-info.txt").write_text("".join(f"{k}: {v}\n" for k, v in info), encoding="utf-8")
    tags = ["bagit.txt", "bag-info.txt", "fetch.txt", "manifest-md5.txt", BAG_SET_FILE, BAG_REMOTE_FILE]
    (folder / "tagmanifest-sha256.txt").write_text(
        "".join(f"{_sha256_file(folder / name)}  {name}\n" for name in tags), encoding="utf-8"
    )


def read_bag(path: Path) -> tuple[str, str, Selection]:
    """The name, description and selection of a bag we exported (its folder or its bag-info.txt).

    Raises:
        ValidationError: not a MEDIator bag.
        EditedExport: a tag file differs from the checksum ``tagmanifest-sha256.txt`` records.
    """
    from mediator_desktop.core.imports import read_manifest_file

    folder = path if path.is_dir() else path.parent
    tagmanifest = folder / "tagmanifest-sha256.txt"
    if not (folder / "bagit.txt").is_file() or not tagmanifest.is_file():
        raise ValidationError(
            f"{folder.name} is not a bag MEDIator exported (it needs bagit.txt and tagmanifest-sha256.txt)"
        )
    listed: dict[str, str] = {}
    # Not UTF-8 (edited by hand): the undecodable bytes fail the line's check or the hashes below.
    for number, line in enumerate(tagmanifest.read_text("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip()
        outside = ".." in Path(name).parts or Path(name).is_absolute()  # never hash a file outside the bag
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name or outside:
            raise EditedExport(f"{folder.name}: tagmanifest-sha256.txt line {number} is malformed")
        listed[name] = digest
    for name in ("bag-info.txt", "fetch.txt", BAG_SET_FILE):
        if name not in listed:
            raise EditedExport(
                f"{folder.name}: {name} is not in tagmanifest-sha256.txt; export the set again"
            )
    for name, digest in listed.items():
        file = folder / name
        if not os.path.isfile(file):  # False, not OSError, for a name no folder can hold (too long)
            raise EditedExport(f"{folder.name}: {name[:80]} is missing (tagmanifest-sha256.txt lists it)")
        actual = _sha256_file(file)
        if actual != digest:
            raise EditedExport(
                f"{folder.name} was changed by hand: {name} has sha256 {actual[:12]}, "
                f"tagmanifest-sha256.txt records {digest[:12]}; export the set again"
            )
    imported = read_manifest_file(folder / BAG_SET_FILE)
    assert imported.selection is not None
    recorded = next(
        (
            line.partition(":")[2].strip()
            for line in (folder / "bag-info.txt").read_text("utf-8", "replace").splitlines()
            if line.startswith("MEDIator-Selection-Sha256:")
        ),
        None,
    )
    if recorded is not None and recorded != selection_hash(imported.selection):
        raise EditedExport(
            f"{folder.name}: bag-info.txt records selection {recorded[:12]}, {BAG_SET_FILE} holds "
            f"{selection_hash(imported.selection)[:12]}; export the set again"
        )
    return imported.name, imported.description, imported.selection
