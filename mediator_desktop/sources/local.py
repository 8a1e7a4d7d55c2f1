"""A folder of DICOM files on this machine (a scanner export, a lab share), as a source.

Files are indexed from their headers (pydicom, pixels never read) into a SQLite file; a re-index
reads only files that are new or whose size or modification time changed. Files that are not
DICOM, or are broken, are skipped and reported, never fatal. Levels: patient > study > series; a
leaf is a series, fingerprinted by its instance count, bytes, and a hash of its SOP Instance UIDs
with each file's size and modification time.

The source indexes itself (``Scanning``): the first browse or resolve waits for a first complete
index (done then, or by the background thread ``watch`` starts), ``watch`` re-indexes after the
folder changes (watchdog, debounced), and ``rescan`` does it on demand. Browsing during a
re-index answers from the previous complete index; resolving waits for the re-index to finish,
so a manifest never mixes two states of the folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediator_desktop.core.errors import IntegrityError, NotFound, SourceError, ValidationError
from mediator_desktop.core.manifest import Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.paths import private_dir
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    LeafPlan,
    RemoteFile,
    ScanProgress,
    ScanReport,
    SourceKind,
    SourceOption,
)

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

KIND = SourceKind(
    "local",
    "Local DICOM folder",
    "DICOM files in a folder of this computer or a mounted share (a scanner export); indexed "
    "from their headers and kept up to date as files come and go.",
    options=(
        SourceOption(
            "folder",
            "Folder",
            "The folder holding the DICOM files (subfolders included).",
            required=True,
            kind="folder",
        ),
    ),
)

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
#: Files read between two progress reports.
PROGRESS_EVERY = 200
#: What watchdog reports that may change the index (not opened/closed: our own reads).
_CHANGES = frozenset({"created", "deleted", "moved", "modified"})

_SCHEMA = """
create table if not exists files (
    path text primary key,
    size integer not null,
    mtime_ns integer not null,
    patient text, study text, series text, sop text, modality text, body_part text,
    error text
);
create index if not exists files_series on files (patient, study, series);
create table if not exists meta (key text primary key, value text not null);
"""


class _Stopped(Exception):
    """The source was closed during an index."""


class LocalFolderSource:
    """DICOM files under ``root``, indexed into ``index_file``. Thread-safe.

    Args:
        debounce: seconds of quiet after the last change seen before ``watch`` re-indexes.
    """

    title = "Local DICOM folder"
    hierarchy: Hierarchy = Hierarchy(("patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    connections: int = 4

    def __init__(self, source_id: str, root: Path, index_file: Path, *, debounce: float = 1.0) -> None:
        self.source_id = source_id
        self.root = root
        self.title = f"Local folder {root}"
        self.debounce = debounce
        self._index_file = index_file
        #: Guards the SQLite connection (held briefly).
        self._lock = threading.Lock()
        #: Held for a whole index: indexes run one at a time, and resolve waits for a running one.
        self._scan_lock = threading.Lock()
        private_dir(index_file.parent)  # patient identifiers: this user's only
        self._db = sqlite3.connect(index_file, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        row = self._db.execute("select value from meta where key = 'indexed_root'").fetchone()
        #: Set once an index of this root completed (now or in an earlier run).
        self._indexed = threading.Event()
        if row is not None and row[0] == str(root):
            self._indexed.set()
        self._closed = False
        self._on_progress: Callable[[ScanProgress], None] | None = None
        self._stopping = threading.Event()
        self._changed = threading.Event()
        self._last_change = 0.0
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None

    def close(self) -> None:
        """Stop watching (waits a few seconds at most for the background thread) and close the index."""
        self._stopping.set()
        self._changed.set()
        if self._thread is not None:  # first: it may be starting the observer
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("%s: the indexing thread did not stop in time", self.title)
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        with self._lock:
            self._closed = True
            self._db.close()

    # -- indexing ------------------------------------------------------------------------------
    def _files(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime_ns) of every file under the root: the quick walk, no reads."""
        root = str(self.root)
        if not os.path.isdir(root):
            raise SourceError(f"{self.title}: {self.root} is not a folder (moved or unmounted?)")
        out: list[tuple[str, int, int]] = []

        def walk(folder: str, prefix: str) -> None:
            try:
                with os.scandir(folder) as entries:
                    found = list(entries)
            except OSError:
                if not prefix:
                    raise
                return  # an unreadable subfolder: its files are not indexed
            for entry in found:
                if self._stopping.is_set():
                    raise _Stopped
                rel = prefix + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path, rel + os.sep)
                    elif entry.is_file():
                        info = entry.stat()
                        out.append((rel, info.st_size, info.st_mtime_ns))
                except OSError:
                    continue  # vanished while we walked

        try:
            walk(root, "")
        except PermissionError:
            raise SourceError(
                f"{self.title}: {self.root} cannot be read (permission denied); check its permissions"
            ) from None
        except OSError as exc:
            raise SourceError(f"{self.title}: {self.root} cannot be read: {exc.strerror or exc}") from None
        return out

    def check(self) -> str:
        """Whether the folder is there and readable (counts its files, reads none).

        Raises:
            SourceError: the folder is missing or unreadable.
        """
        files = self._files()
        return f"folder {self.root} with {len(files):,} files"

    def watch(self, on_progress: Callable[[ScanProgress], None]) -> None:
        """Index in the background (everything when never indexed, else what changed while the app
        was closed), then re-index ``debounce`` seconds after the folder last changed.

        ``on_progress`` is called on the indexing thread (this one's or ``rescan``'s caller's),
        every ``PROGRESS_EVERY`` files and once finished (or failed): it returns quickly and does
        not call ``rescan``. A second call only replaces the callback. When the folder cannot be
        watched (missing, or the system's limit of watches reached), a warning is logged and only
        ``rescan`` notices changes.
        """
        self._on_progress = on_progress
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"index-{self.source_id}", daemon=True)
        self._thread.start()

    def rescan(self) -> ScanReport:
        """Index again now: read new and modified files, forget removed ones; blocks until done.

        Indexes run one at a time: a call made during another waits for it, then does its own
        pass (cheap: only what changed since is read), so its report is never older than the call.

        Raises:
            SourceError: the folder is missing or unreadable, or the source was closed meanwhile.
        """
        with self._scan_lock:
            report = self._scan()
        self._report(ScanProgress(self.source_id, report.files, report.files, True, report))
        return report

    #: The name tests and older callers know.
    reindex = rescan

    def _report(self, progress: ScanProgress) -> None:
        callback = self._on_progress
        if callback is not None:
            callback(progress)

    def _scan(self) -> ScanReport:
        """One index pass. Called with ``_scan_lock`` held, on any thread."""
        try:
            return self._scan_files()
        except _Stopped:
            raise SourceError(f"{self.title}: closed while indexing") from None
        except SourceError as exc:
            self._report(ScanProgress(self.source_id, 0, None, True, error=str(exc)))
            raise

    def _scan_files(self) -> ScanReport:
        import pydicom
        from pydicom.errors import InvalidDicomError

        files = self._files()
        total = len(files)
        self._report(ScanProgress(self.source_id, 0, total))
        with self._lock:
            known = {p: (s, m) for p, s, m in self._db.execute("select path, size, mtime_ns from files")}
        read = unchanged = 0
        skipped: list[tuple[str, str]] = []
        rows = []
        # Rows are written at the end, in one transaction: browsing meanwhile sees the last index.
        for done, (rel, size, mtime_ns) in enumerate(files, 1):
            if self._stopping.is_set():
                raise _Stopped
            if done % PROGRESS_EVERY == 0:
                self._report(ScanProgress(self.source_id, done, total))
            if known.get(rel) == (size, mtime_ns):
                unchanged += 1
                continue
            read += 1
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
                skipped.append((rel, error))
            rows.append((rel, size, mtime_ns, *values, error))
        seen = {rel for rel, _, _ in files}
        gone = [(p,) for p in known if p not in seen]
        with self._lock:
            if self._closed:
                raise _Stopped
            with self._db:  # one transaction
                self._db.executemany("insert or replace into files values (?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("delete from files where path = ?", gone)
                self._db.executemany(
                    "insert or replace into meta values (?, ?)",
                    [
                        ("indexed_root", str(self.root)),
                        ("indexed_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
                    ],
                )
            reported = {path for path, _ in skipped}
            skipped.extend(  # files skipped earlier and unchanged since
                (p, e)
                for p, e in self._db.execute("select path, error from files where error is not null")
                if p not in reported
            )
        self._indexed.set()
        return ScanReport(read, unchanged, len(gone), tuple(sorted(skipped)))

    def _ensure_indexed(self) -> None:
        """Makes sure a first index completed before the index is read: waits for the one ``watch``
        started, or does it now."""
        if self._indexed.is_set():
            return
        with self._scan_lock:
            if self._indexed.is_set():  # the background thread's index finished meanwhile
                return
            report = self._scan()
        self._report(ScanProgress(self.source_id, report.files, report.files, True, report))

    # -- watching (the background thread) ------------------------------------------------------
    def _run(self) -> None:
        """The background thread: an index now, then one after each burst of changes."""
        self._observe()
        self._rescan_quietly()
        while not self._stopping.is_set():
            self._changed.wait()
            while not self._stopping.is_set():
                delay = self._last_change + self.debounce - time.monotonic()
                if delay <= 0:
                    break
                self._stopping.wait(delay)
            if self._stopping.is_set():
                return
            # Cleared before the walk: a change during this index triggers the next one.
            self._changed.clear()
            self._rescan_quietly()

    def _rescan_quietly(self) -> None:
        """A rescan whose failure was reported to the callback (and logged), not raised."""
        try:
            self.rescan()
        except SourceError as exc:
            if not self._stopping.is_set():
                log.warning("%s", exc)

    def _changed_on_disk(self, event: FileSystemEvent) -> None:
        """Called on watchdog's thread."""
        if event.event_type not in _CHANGES:
            return
        path = os.fsdecode(event.src_path)
        if path.startswith(str(self._index_file)):  # our own index (and its journal), if inside
            return
        self._last_change = time.monotonic()
        self._changed.set()

    def _observe(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                source._changed_on_disk(event)

        observer = Observer()
        try:
            observer.schedule(Handler(), str(self.root), recursive=True)
            observer.start()
        except OSError as exc:
            # A missing folder, or the system's limit of inotify watches reached.
            log.warning(
                "%s: cannot watch %s for changes (%s); re-index it by hand after changes",
                self.title,
                self.root,
                exc.strerror or exc,
            )
            observer.stop()
            return
        self._observer = observer

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
        self._ensure_indexed()
        with self._lock:
            rows = self._db.execute(
                f"select {column}, count(distinct series), sum(size), min(modality) from files "
                f"where {where} group by {column} order by {column}",
                args,
            ).fetchall()
        level = self.hierarchy.levels[len(path)]
        items = [
            BrowseItem(
                key,
                level,
                key if level != "series" else f"{modality or '?'} series",
                n,
                size,
                (("Modality", modality),) if level == "series" and modality else (),
            )
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
        self._ensure_indexed()
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
        self._ensure_indexed()
        # A re-index under way finishes first: a manifest never mixes two states of the folder.
        with self._scan_lock, self._lock:
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

    def preview(self, path: tuple[str, ...]) -> bytes | None:
        """A thumbnail of a series: its middle file decoded (``sources.thumbnail``). Raises
        ``NotFound`` when the folder no longer holds it, ``SourceError`` when it cannot be decoded."""
        from mediator_desktop.sources.thumbnail import render

        if len(path) != len(LEVEL_COLUMNS):
            return None
        files = self.files_of((path[0], path[1], path[2]))
        if not files:
            raise NotFound(f"series {path[-1]} is no longer in the folder {self.root}")
        try:
            return render(files[len(files) // 2])
        except FileNotFoundError:
            raise NotFound(f"series {path[-1]} was removed from the folder; rescan it") from None

    def files_of(self, path: tuple[str, str, str]) -> list[Path]:
        """The files of one series (for the transfer engine)."""
        self._ensure_indexed()
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
