"""A folder of DICOM files on this machine (a scanner export, a lab share), as a source.

Files are indexed from their headers (pydicom, pixels never read) into a SQLite file; a re-index
reads only files that are new or whose size or modification time changed. Files that are not
DICOM, or are broken, are skipped and reported, never fatal. Levels: patient > study > series; a
leaf is a series, fingerprinted by its instance count, bytes, and a hash of its SOP Instance UIDs
with each file's size and modification time.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import IntegrityError, SourceError, ValidationError
from mediator_desktop.core.manifest import Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.paths import private_dir
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Selection, decide
from mediator_desktop.core.source import BrowseItem, BrowsePage, LeafPlan, RemoteFile

LEVEL_COLUMNS = ("patient", "study", "series")
FILTERABLE = ("Modality", "BodyPartExamined")
_FILTER_COLUMNS = {"Modality": "modality", "BodyPartExamined": "body_part"}
_TAGS = [
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "BodyPartExamined",
]

_SCHEMA = """
create table if not exists files (
    path text primary key,
    size integer not null,
    mtime_ns integer not null,
    patient text, study text, series text, sop text, modality text, body_part text,
    error text
);
create index if not exists files_series on files (patient, study, series);
"""


@dataclass
class IndexReport:
    """What a (re-)index did."""

    read: int = 0  # headers read (new or modified files)
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


class LocalFolderSource:
    """DICOM files under ``root``, indexed into ``index_file``. Thread-safe."""

    title = "Local DICOM folder"
    hierarchy: Hierarchy = Hierarchy(("patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    connections: int = 4

    def __init__(self, source_id: str, root: Path, index_file: Path) -> None:
        self.source_id = source_id
        self.root = root
        self.title = f"Local folder {root}"
        self._index_file = index_file
        self._lock = threading.Lock()
        private_dir(index_file.parent)  # patient identifiers: this user's only
        self._db = sqlite3.connect(index_file, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- indexing ------------------------------------------------------------------------------
    def _walk(self) -> Iterator[tuple[str, os.stat_result]]:
        if not self.root.is_dir():
            raise SourceError(f"{self.title}: {self.root} is not a folder (moved or unmounted?)")
        for folder, _, names in os.walk(self.root):
            for name in names:
                full = Path(folder) / name
                try:
                    info = full.stat()
                except OSError:
                    continue  # vanished while we walked
                yield str(full.relative_to(self.root)), info

    def reindex(self) -> IndexReport:
        """Read the headers of new and modified files; forget removed ones."""
        import pydicom
        from pydicom.errors import InvalidDicomError

        report = IndexReport()
        with self._lock:
            known = {p: (s, m) for p, s, m in self._db.execute("select path, size, mtime_ns from files")}
            seen: set[str] = set()
            rows = []
            for rel, info in self._walk():
                seen.add(rel)
                if known.get(rel) == (info.st_size, info.st_mtime_ns):
                    report.unchanged += 1
                    continue
                report.read += 1
                values: list[str | None] = [None] * 6
                error = None
                try:
                    with warnings.catch_warnings():  # odd files are reported below, not warned about
                        warnings.simplefilter("ignore")
                        ds = pydicom.dcmread(self.root / rel, stop_before_pixels=True, specific_tags=_TAGS)
                    values = [str(ds.get(tag, "")) or None for tag in _TAGS]
                    if not all(values[:4]):
                        error = "not an image instance: patient, study, series or SOP UID missing"
                except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError) as exc:
                    error = f"not readable as DICOM: {type(exc).__name__}: {exc}"[:300]
                if error:
                    report.skipped.append((rel, error))
                rows.append((rel, info.st_size, info.st_mtime_ns, *values, error))
            self._db.executemany("insert or replace into files values (?,?,?,?,?,?,?,?,?,?)", rows)
            gone = [(p,) for p in known if p not in seen]
            self._db.executemany("delete from files where path = ?", gone)
            report.removed = len(gone)
            self._db.commit()
            reported = {path for path, _ in report.skipped}
            report.skipped.extend(  # files skipped earlier and unchanged since
                (p, e)
                for p, e in self._db.execute("select path, error from files where error is not null")
                if p not in reported
            )
        return report

    # -- browsing ------------------------------------------------------------------------------
    def _where(self, path: tuple[str, ...], filters: Filters) -> tuple[str, list[str]]:
        if len(path) > len(LEVEL_COLUMNS):
            raise ValidationError(f"{self.title} has {len(LEVEL_COLUMNS)} levels; {'/'.join(path)} is deeper")
        clauses, args = ["error is null"], []
        for column, key in zip(LEVEL_COLUMNS, path, strict=False):
            clauses.append(f"{column} = ?")
            args.append(key)
        for name, values in filters:
            if name not in _FILTER_COLUMNS:
                raise ValidationError(
                    f"{self.title} cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}"
                )
            clauses.append(f"{_FILTER_COLUMNS[name]} in ({','.join('?' * len(values))})")
            args.extend(values)
        return " and ".join(clauses), args

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        if len(path) >= len(LEVEL_COLUMNS):
            raise ValidationError("a series is a leaf: it has no children to browse")
        column = LEVEL_COLUMNS[len(path)]
        where, args = self._where(path, filters)
        with self._lock:
            rows = self._db.execute(
                f"select {column}, count(distinct series), sum(size), min(modality) from files "
                f"where {where} group by {column} order by {column}",
                args,
            ).fetchall()
        level = self.hierarchy.levels[len(path)]
        items = [
            BrowseItem(key, level, key if level != "series" else f"{modality or '?'} series", n, size)
            for key, n, size, modality in rows
        ]
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        if name not in _FILTER_COLUMNS:
            raise ValidationError(
                f"{self.title} cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}"
            )
        where, args = self._where(path, ())
        column = _FILTER_COLUMNS[name]
        with self._lock:
            rows = self._db.execute(f"select distinct {column} from files where {where}", args).fetchall()
        return sorted(v for (v,) in rows if v)

    # -- resolution ----------------------------------------------------------------------------
    def resolve(self, selection: Selection) -> Manifest:
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        builder = ManifestBuilder()
        if not any(r.include for r in rules):
            return builder.build()
        with self._lock:
            rows = self._db.execute(
                "select patient, study, series, modality, body_part, sop, size, mtime_ns from files "
                "where error is null order by patient, study, series, sop"
            ).fetchall()
        series: dict[tuple[str, str, str], list[tuple[str, int, int, str | None, str | None]]] = {}
        for patient, study, uid, modality, body_part, sop, size, mtime in rows:
            series.setdefault((patient, study, uid), []).append((sop, size, mtime, modality, body_part))
        for path, instances in series.items():
            metadata = {"Modality": instances[0][3], "BodyPartExamined": instances[0][4]}
            if not decide(rules, self.source_id, path, metadata):
                continue
            digest = hashlib.sha256()
            for sop, size, mtime, _, _ in instances:
                digest.update(f"{sop}\t{size}\t{mtime}\n".encode())
            builder.add(
                self.source_id,
                path,
                size=sum(i[1] for i in instances),
                count=len({i[0] for i in instances}),
                checksum=f"uids-sha256:{digest.hexdigest()}",
            )
        return builder.build()

    def plan(self, leaf: Leaf) -> LeafPlan:
        """The series' files, copied as ``file://`` downloads, if they still match the fingerprint
        (re-index first to notice changes)."""
        current = {x.path: x for x in self.resolve(Selection.of(Pointer(self.source_id, leaf.path)))}.get(
            leaf.path
        )
        if current is None:
            raise SourceError(f"{self.title}: series {leaf.path[-1]} is no longer in the folder")
        if current.fingerprint != leaf.fingerprint:
            raise IntegrityError(
                f"{self.title}: series {leaf.path[-1]} changed on disk since the set pinned it"
            )
        files = self.files_of((leaf.path[0], leaf.path[1], leaf.path[2]))
        remote = tuple(
            RemoteFile(f.as_uri(), f"{i:06d}_{f.name}", size=f.stat().st_size) for i, f in enumerate(files)
        )
        with self._lock:
            row = self._db.execute(
                "select modality from files where patient = ? and study = ? and series = ? "
                "and error is null limit 1",
                leaf.path,
            ).fetchone()
        return LeafPlan(remote, {"modality": (row[0] if row else "") or ""}, count=len(remote))

    def files_of(self, path: tuple[str, str, str]) -> list[Path]:
        """The files of one series (for the transfer engine)."""
        with self._lock:
            rows = self._db.execute(
                "select path from files where patient = ? and study = ? and series = ? and error is null "
                "order by path",
                path,
            ).fetchall()
        return [self.root / p for (p,) in rows]


def create(
    source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path
) -> LocalFolderSource:
    """Registry factory. Options: ``folder`` (required)."""
    if not options.get("folder"):
        raise ValidationError(f"local folder source {source_id!r} needs a folder")
    return LocalFolderSource(
        source_id, Path(str(options["folder"])).expanduser(), data_dir / "sources" / f"{source_id}.sqlite"
    )
