"""The transfer engine: download exactly the data a manifest points to, and later only what changed.

A download folder keeps its own record in ``<destination>/.mediator/state.sqlite``: for each leaf,
the fingerprint it was fetched at and the files written for it. A run compares the manifest with
that record and fetches only leaves that are new or changed; leaves that left the manifest are
reported and, only when asked, pruned (only files this app wrote). Files arrive in a staging folder
``.mediator/partial/<leaf>/`` as ``.part`` files (resumed with HTTP Range where the server allows),
are verified against what the archive promised, and then move into the layout folder by rename.
After a crash or SIGKILL a rerun picks up where it stopped: completed leaves are not fetched again,
completed files of a half-done leaf neither.

Damage after download: the record keeps each placed file's size, modification time and MD5 (the
archive's, where it gave one and it was checked on arrival). A rerun compares every file's size and
time with it (a ``stat`` each, no reads) and fetches again the leaves whose files changed or went
(``Report.refetched``); ``verify=True`` re-hashes every file that has an MD5 and checks the others
by size (``Report.unverifiable``): files are not read back to hash them when placed, which would
triple the time of large multipart objects. A leaf whose files the archive gave no MD5 for (a TCIA zip without
``md5hashes.csv``, a multipart S3 object) is recorded as checked by count and size only
(``CHECKED_SIZE``, ``Report.size_only``), never as verified.

Power loss: each file's data is fsynced before its rename into place, the folder after (and every
folder made for it, in its parent), and the record (SQLite in WAL mode, ``synchronous=FULL``)
commits the claim before the renames and "done" after them, so the record never says done for a
file the disk may not have. The next rerun's size and time check catches what still came back wrong.
Files the transport fetched arrive already synced (``durable``: it syncs each as it lands, beside
the transfers still running); the others (left by an earlier run, made by a ``finish`` step) are
synced by the leaf's thread, several at once. Leaves finished while the record commits are
recorded done together in the next commit (group commit: one sync of the record for several
leaves), and none counts as fetched before its own commit returned.

An archive that cannot be reached at all (its name does not resolve, it refuses or times out
connections, a proxy or TLS handshake fails: what the transport's ``unreachable`` recognises) is
given up on after ``UNREACHABLE_AFTER`` of its leaves fail that way in a row with none arriving
since: its remaining leaves are neither planned nor fetched, they fail with one shared reason that
names the archive, and ``Report.unreachable`` holds that reason once. Other archives go on. One
failure among successes is a blip: the transport retried it, and the run goes on.

Threads: ``download`` blocks its caller; leaves are planned and placed by ``workers`` daemon
threads; bytes move on the transport's own thread(s); heavy finishing steps run in worker
processes that exit when this process dies. Progress, failures included as they happen, is
reported from a ticker thread. A cancel returns within a fraction of a second: transfers end at
once, and a thread waiting on an archive (planning a leaf, asking for its layout fields) is left
behind (it drops its leaf when the archive answers); only local work (unpacking, placing files)
is waited for.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from mediator_desktop.core.errors import (
    ArchiveUnreachable,
    Cancelled,
    DownloadBusy,
    InsufficientSpace,
    IntegrityError,
    MediatorError,
    ValidationError,
)
from mediator_desktop.core.jobs import JobControl, Progress, ProgressMeter, human_bytes
from mediator_desktop.core.layout import DEFAULT_LAYOUT, Layout
from mediator_desktop.core.locks import FileLock
from mediator_desktop.core.manifest import Leaf, Manifest
from mediator_desktop.core.paths import inside, safe_component
from mediator_desktop.core.source import DataSource, LeafPlan, RemoteFile

log = logging.getLogger(__name__)

STATE_DIR = ".mediator"
#: Fields every layout may use besides the sources' level names.
COMMON_FIELDS = frozenset({"source", "leaf", "collection", "patient", "study", "modality", "series"})
#: Kept free beyond what a download needs (at most; a tenth of the need for small downloads).
SPACE_RESERVE = 16 << 20
#: Leaves of one archive failing in a row because it cannot be reached, with none arriving since,
#: after which the run stops asking it (one failure among successes is a blip, not an outage).
UNREACHABLE_AFTER = 3
#: How a leaf was checked when it arrived (the record's ``checks`` table): every data file against
#: an MD5 the archive gave, or only by its count of files and their sizes (no MD5 from the archive).
CHECKED_MD5 = "md5"
CHECKED_SIZE = "size"


class Transport(Protocol):
    """Moves bytes: GET ``file`` into ``target`` (via ``target.part``), resuming and verifying."""

    def submit(
        self,
        file: RemoteFile,
        target: Path,
        *,
        group: str,
        control: JobControl,
        on_bytes: Callable[[int], None],
        durable: bool = False,
    ) -> Future[Path]:
        """Start (or queue) the download. The future ends with ``target`` once size and MD5 (when
        known) match, or with ``SourceError`` (``ArchiveUnreachable`` when the host could not be
        reached) / ``IntegrityError`` / ``Cancelled`` / ``OSError``. Cancelling ``control`` ends
        the file's transfer promptly. ``on_bytes`` gets byte counts as they arrive (negative when
        a restart discards bytes). ``durable``: the future ends only once ``target``'s data is on
        the disk (fsynced), so the caller need not sync it again before renaming it."""
        ...

    def set_limit(self, group: str, connections: int) -> None:
        """At most ``connections`` transfers of ``group`` at once."""
        ...

    def unreachable(self, error: BaseException) -> ArchiveUnreachable | None:
        """``error`` as ``ArchiveUnreachable`` when it, or an error it was raised from, means a host
        could not be reached at all (a source's ``plan`` may fail so); None when it is about an item."""
        ...


@dataclass(frozen=True, slots=True)
class LeafFailure:
    key: str
    source_id: str
    path: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Report:
    """What a download did. ``failed`` lists every leaf that did not arrive, with the reason.

    ``unreachable`` maps each archive the run stopped asking (it could not be reached) to the one
    reason its leaves in ``failed`` share: show it once, then ``other_failures()`` one by one.
    """

    destination: Path
    manifest_id: str
    fetched: tuple[str, ...] = ()
    unchanged: int = 0
    removed: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()
    failed: tuple[LeafFailure, ...] = ()
    pending: int = 0  # not attempted: the job was cancelled first
    bytes: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    unreachable: Mapping[str, str] = field(default_factory=dict)  # source id -> the shared reason
    #: Leaves fetched again because their files changed or were deleted since they were placed.
    refetched: tuple[str, ...] = ()
    #: Leaves placed in this run that were checked by count and size only (the archive gave no MD5
    #: for some of their files): never shown as verified.
    size_only: tuple[str, ...] = ()
    #: With ``verify``: files re-hashed and found to match; files that had no MD5 to compare with
    #: (the archive gave none, or a record from before MD5s were kept), checked by size only.
    verified: int = 0
    unverifiable: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled and not self.pending

    def retry_keys(self) -> set[str]:
        """The failed leaves: pass as ``only=`` to retry them alone."""
        return {failure.key for failure in self.failed}

    def other_failures(self) -> tuple[LeafFailure, ...]:
        """The failures ``unreachable`` does not already tell (each has a reason of its own)."""
        return tuple(f for f in self.failed if self.unreachable.get(f.source_id) != f.reason)

    def summary(self) -> str:
        parts = [f"{len(self.fetched)} fetched ({human_bytes(self.bytes)})", f"{self.unchanged} unchanged"]
        if self.refetched:
            parts.append(
                f"{len(self.refetched)} {_leaves(len(self.refetched))} re-fetched: files changed or deleted "
                "since download"
            )
        if self.size_only:
            parts.append(
                f"{len(self.size_only)} {_leaves(len(self.size_only))} verified by count and size only "
                "(the archive gave no MD5)"
            )
        if self.verified or self.unverifiable:
            parts.append(f"{self.verified} {_files(self.verified)} re-hashed and verified")
        if self.unverifiable:
            count = self.unverifiable
            parts.append(f"{count} {_files(count)} checked by size only (no MD5 from the archive)")
        if self.removed:
            parts.append(f"{len(self.removed)} no longer in the set" + (" (pruned)" if self.pruned else ""))
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.cancelled:
            parts.append(f"cancelled with {self.pending} not started")
        text = ", ".join(parts) + f" in {self.seconds:.1f} s"
        for source_id in sorted(self.unreachable):
            text += f"; stopped: {self.unreachable[source_id]}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": str(self.destination),
            "manifest_id": self.manifest_id,
            "fetched": list(self.fetched),
            "unchanged": self.unchanged,
            "removed": list(self.removed),
            "pruned": list(self.pruned),
            "failed": [
                {"key": f.key, "source": f.source_id, "path": list(f.path), "reason": f.reason}
                for f in self.failed
            ],
            "pending": self.pending,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
            "unreachable": dict(self.unreachable),
            "refetched": list(self.refetched),
            "size_only": list(self.size_only),
            "verified": self.verified,
            "unverifiable": self.unverifiable,
            "ok": self.ok,
        }


def _files(count: int) -> str:
    return "file" if count == 1 else "files"


def _leaves(n: int) -> str:
    return "leaf" if n == 1 else "leaves"


@dataclass(frozen=True, slots=True)
class _Row:
    fingerprint: str
    folder: str
    status: str  # "placing" while files move into place, then "done"
    checked: str | None = None  # CHECKED_MD5, CHECKED_SIZE, or None (recorded before checks were kept)


@dataclass(frozen=True, slots=True)
class Placed:
    """One file as the record has it once placed. ``size``/``mtime_ns`` are None in a record made
    before they were kept (then checked by existence, and stored on the next rerun); ``md5`` is the
    archive's MD5 where it gave one (checked at download), else None (``verify`` checks the size)."""

    path: str
    size: int | None
    mtime_ns: int | None
    md5: str | None


@dataclass(slots=True)
class _Finished:
    """A leaf waiting for the commit that records it done (``TransferState.done``)."""

    key: str
    files: list[Placed]
    checked: str
    settled: bool = False  # a commit took it (``error`` when that commit failed)
    error: BaseException | None = None


@dataclass(slots=True)
class _Claim:
    """A leaf's files waiting for the commit that records them its own (``TransferState.claim``)."""

    key: str
    fingerprint: str
    folder: str
    files: list[str]
    size: int
    on_disk: set[str]  # those of ``files`` seen on the disk just before (each must be the leaf's)
    old: list[str] = field(default_factory=list)  # the leaf's files the commit forgot
    settled: bool = False
    error: BaseException | None = None


class Checked(list[Path]):
    """What a ``finish`` step may return instead of a plain list: the files, with the MD5s it
    checked them against (by file name) and whether every data file had one. A plain list means
    nothing beyond count and size was checked. Picklable (a worker process may return it)."""

    def __init__(
        self, files: list[Path], md5s: Mapping[str, str] | None = None, complete: bool = False
    ) -> None:
        super().__init__(files)
        self.md5s: dict[str, str] = dict(md5s or {})
        self.complete = complete

    def __reduce__(self) -> tuple[Any, ...]:
        return (Checked, (list(self), self.md5s, self.complete))


class TransferState:
    """The download folder's record (SQLite, WAL). Thread-safe."""

    def __init__(self, destination: Path) -> None:
        self.root = destination
        self.dir = destination / STATE_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the connection; held by whoever commits
        self._pending_lock = threading.Lock()
        self._pending: list[_Claim | _Finished] = []  # writes waiting for the next commit
        try:
            self._db = sqlite3.connect(
                self.dir / "state.sqlite", check_same_thread=False, isolation_level=None
            )
            self._db.execute("pragma journal_mode=wal")
            # Every commit reaches the disk before the files it describes move (a claim) or the
            # leaf counts as done: after a power cut the record never runs ahead of the files.
            self._db.execute("pragma synchronous=full")
            self._db.executescript(
                """
                create table if not exists leaves (
                    key text primary key, fingerprint text not null, folder text not null,
                    status text not null, bytes integer not null, updated real not null);
                create table if not exists files (path text primary key, key text not null);
                create index if not exists files_by_key on files (key);
                create table if not exists runs (
                    id integer primary key, finished real not null, report text not null);
                -- Kept since damage is looked for: a record from before has no rows here, so its
                -- files are checked by existence once and their size and time stored then.
                create table if not exists stats (
                    path text primary key, size integer not null, mtime_ns integer not null, md5 text);
                create table if not exists checks (key text primary key, checked text not null);
                """
            )
        except sqlite3.DatabaseError as exc:
            raise ValidationError(
                f"the download record {self.dir / 'state.sqlite'} is unreadable ({exc}); move the folder "
                ".mediator away to start the record afresh (files already there will then count as foreign)"
            ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def leaves(self) -> dict[str, _Row]:
        with self._lock:
            rows = self._db.execute(
                "select l.key, fingerprint, folder, status, checked from leaves l left join checks c "
                "on c.key = l.key"
            ).fetchall()
        return {key: _Row(fp, folder, status, checked) for key, fp, folder, status, checked in rows}

    def placed(self) -> dict[str, list[Placed]]:
        """Every leaf's files as recorded, by leaf key."""
        with self._lock:
            rows = self._db.execute(
                "select key, f.path, size, mtime_ns, md5 from files f left join stats s on s.path = f.path"
            ).fetchall()
        out: dict[str, list[Placed]] = {}
        for key, path, size, mtime_ns, md5 in rows:
            out.setdefault(key, []).append(Placed(path, size, mtime_ns, md5))
        return out

    def restat(self, stats: list[tuple[str, int, int]]) -> None:
        """Store (path, size, mtime_ns) of files a record from before kept none for."""
        with self._lock:
            self._db.execute("begin")
            self._db.executemany(
                "insert or replace into stats (path, size, mtime_ns) values (?, ?, ?)", stats
            )
            self._db.execute("commit")

    def files_of(self, key: str) -> list[str]:
        with self._lock:
            return [p for (p,) in self._db.execute("select path from files where key = ?", (key,))]

    def check_claim(self, key: str, files: list[str], *, new_folders: bool = False) -> None:
        """Raise ``ValidationError`` when one of ``files`` belongs to another leaf (the layout gives
        two leaves the same folder) or exists without being ours. ``new_folders``: the caller saw
        that none of the files' folders exists (no file there needs a look)."""
        on_disk = set() if new_folders else self._on_disk(files)
        with self._lock:
            self._check_owners(key, files, on_disk)

    def _on_disk(self, files: list[str]) -> set[str]:
        return {path for path in files if os.path.exists(f"{self.root}/{path}")}

    def _check_owners(self, key: str, files: list[str], on_disk: set[str]) -> None:
        owners = dict(
            self._db.execute(
                f"select path, key from files where path in ({','.join('?' * len(files))})", files
            ).fetchall()
        )
        for path in files:
            owner = owners.get(path)
            if owner is not None and owner != key:
                raise ValidationError(
                    f"{path} already holds another leaf: the layout gives two leaves the same folder; "
                    "use a layout with {series}"
                )
            if owner is None and path in on_disk:
                raise ValidationError(
                    f"{path} exists and was not written by MEDIator; move it away or download elsewhere"
                )

    def claim(
        self, key: str, fingerprint: str, folder: str, files: list[str], size: int, *, looked: bool = False
    ) -> list[str]:
        """Record that ``files`` are about to become ``key``'s; returns the key's files no longer needed.
        Durable once this returns.

        Raises ``ValidationError`` when a file belongs to another leaf (the layout gives two leaves
        the same folder) or exists without being ours. ``looked``: ``check_claim`` looked at the
        disk just before, or the caller made the files' folders (only the record is checked).
        Claims made on other threads while a commit is under way are committed together, as
        ``done`` does: a set of one-file leaves (S3, GDC, pathology) syncs the record about once
        per batch, not once per leaf.
        """
        claim = _Claim(key, fingerprint, folder, files, size, set() if looked else self._on_disk(files))
        self._submit(claim)
        keep = set(files)
        return [p for p in claim.old if p not in keep]

    def done(self, key: str, files: list[Placed], checked: str) -> None:
        """The leaf's files are in place (and on disk): record their sizes, times and MD5s, and how
        the leaf was checked (``CHECKED_MD5`` or ``CHECKED_SIZE``). Durable once this returns."""
        self._submit(_Finished(key, files, checked))

    def _submit(self, write: _Claim | _Finished) -> None:
        """Group commit: writes submitted on other threads while a commit is under way wait for it
        to end, then one of them commits them all in one transaction (one sync of the record for
        several leaves). Returns once ``write`` is committed; raises what its commit raised, or
        the claim's own refusal (which takes nobody else's write with it)."""
        with self._pending_lock:
            self._pending.append(write)
        with self._lock:  # whoever holds it commits everything waiting, this write included
            if not write.settled:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                try:
                    self._commit(batch)
                except BaseException as exc:  # the whole batch failed: everyone in it raises
                    for item in batch:
                        item.error = item.error or exc
                    raise
                finally:
                    for item in batch:
                        item.settled = True
        if write.error is not None:
            raise write.error

    def _commit(self, batch: list[_Claim | _Finished]) -> None:
        finished = [item for item in batch if isinstance(item, _Finished)]
        now = time.time()
        self._db.execute("begin")
        try:
            for item in batch:
                if isinstance(item, _Claim):
                    self._apply_claim(item, now)
            self._db.executemany(
                "insert or replace into stats (path, size, mtime_ns, md5) values (?, ?, ?, ?)",
                [(f.path, f.size, f.mtime_ns, f.md5) for item in finished for f in item.files],
            )
            self._db.executemany(
                "insert or replace into checks (key, checked) values (?, ?)",
                [(item.key, item.checked) for item in finished],
            )
            self._db.executemany(
                "update leaves set status = 'done', updated = ? where key = ?",
                [(now, item.key) for item in finished],
            )
        except BaseException:
            self._db.execute("rollback")
            raise
        self._db.execute("commit")

    def _apply_claim(self, claim: _Claim, now: float) -> None:
        """One claim inside the batch's transaction; a refused one is undone alone (a savepoint),
        and its error kept for the thread that made it."""
        key = claim.key
        self._db.execute("savepoint claim")
        try:
            self._check_owners(key, claim.files, claim.on_disk)
        except ValidationError as exc:
            self._db.execute("rollback to claim")
            self._db.execute("release claim")
            claim.error = exc
            return
        claim.old = [p for (p,) in self._db.execute("select path from files where key = ?", (key,))]
        if claim.old:
            self._db.execute("delete from stats where path in (select path from files where key = ?)", (key,))
            self._db.execute("delete from files where key = ?", (key,))
        self._db.execute("delete from checks where key = ?", (key,))
        self._db.executemany("insert into files (path, key) values (?, ?)", [(p, key) for p in claim.files])
        self._db.execute(
            "insert or replace into leaves values (?, ?, ?, 'placing', ?, ?)",
            (key, claim.fingerprint, claim.folder, claim.size, now),
        )
        self._db.execute("release claim")

    def forget(self, key: str) -> None:
        with self._lock:
            self._db.execute("begin")
            self._db.execute("delete from stats where path in (select path from files where key = ?)", (key,))
            self._db.execute("delete from files where key = ?", (key,))
            self._db.execute("delete from checks where key = ?", (key,))
            self._db.execute("delete from leaves where key = ?", (key,))
            self._db.execute("commit")

    def record(self, report: Report) -> None:
        with self._lock:
            self._db.execute(
                "insert into runs (finished, report) values (?, ?)",
                (time.time(), json.dumps(report.to_json())),
            )


class _FolderLock:
    """One download per folder at a time (an advisory lock on ``.mediator/lock``)."""

    def __init__(self, state_dir: Path) -> None:
        try:
            self._lock = FileLock(state_dir / "lock")
        except BlockingIOError:
            raise DownloadBusy(
                f"another download is writing into {state_dir.parent}; wait for it or choose another folder"
            ) from None

    def release(self) -> None:
        self._lock.release()


def _exit_with_parent(parent: int) -> None:
    """Initializer of the finishing processes: each exits once the process that started it is gone
    (a SIGKILLed node must not leave them behind). Called in the worker process."""
    handle = multiprocessing.parent_process()

    def watch() -> None:
        while True:
            if handle is not None:
                handle.join(0.5)  # returns at once when the parent dies (its sentinel closes)
                if not handle.is_alive():
                    os._exit(1)
            else:
                time.sleep(0.5)
            if os.getppid() != parent:  # adopted by another process: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _stage_name(key: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{key}\t{fingerprint}".encode()).hexdigest()[:24]


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full; free some space and run the download again (finished files are kept)"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is used up; free some space and run the download again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {exc.filename or 'the folder'}: {exc.strerror}; check its permissions"
    return f"{exc.strerror or exc.__class__.__name__} ({exc.filename or 'no file'}); run the download again"


class Downloader:
    """Downloads manifests through ``transport`` from ``sources`` (a source id to ``DataSource`` map).

    Args:
        processes: worker processes for CPU-bound finishing steps (unzipping and hashing a TCIA
            series); 0 runs them on the download threads. Started on first use, kept until ``close``;
            each exits by itself within about half a second once this process dies.
    """

    def __init__(
        self, sources: Mapping[str, DataSource], transport: Transport, *, processes: int = 0
    ) -> None:
        self.sources = sources
        self.transport = transport
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def finish(self, plan: LeafPlan, stage: Path, downloaded: list[Path]) -> list[Path]:
        """Run ``plan.finish``: in a worker process when it is heavy and processes are allowed."""
        assert plan.finish is not None
        if not (plan.heavy and self.processes):
            return plan.finish(stage, downloaded)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            pool = self._pool
        try:
            return pool.submit(plan.finish, stage, downloaded).result()
        except BrokenProcessPool:
            log.warning("a finishing process died; finishing on this thread instead")
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
            return plan.finish(stage, downloaded)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def download(
        self,
        manifest: Manifest,
        destination: Path,
        *,
        layout: str = DEFAULT_LAYOUT,
        workers: int = 8,
        progress: Callable[[Progress], None] | None = None,
        control: JobControl | None = None,
        prune: bool = False,
        only: Collection[str] | None = None,
        progress_interval: float = 0.25,
        verify: bool = False,
    ) -> Report:
        """Bring ``destination`` up to ``manifest``; see the module docstring. Blocks.

        Args:
            layout: folder template (fields: ``source``, ``leaf``, ``modality``, ``collection`` and the
                sources' level names).
            workers: leaves planned and placed at once (the transport bounds connections per source).
            progress: called from a ticker thread (failures count as they happen), and once at the end.
            control: pause / resume / cancel from another thread; after ``cancel()`` this returns
                within about half a second (see the module docstring).
            prune: delete files of leaves no longer in the manifest (only files this app wrote).
            only: leaf keys to consider (``report.retry_keys()`` retries the failures alone).
            verify: re-hash every file already in place against the MD5 the archive gave for it
                (files without one are checked by size: ``Report.unverifiable``) and fetch again
                the leaves that differ. Without it a rerun compares each file's size and
                modification time with the record (no reads) and fetches again what differs.

        Raises:
            InsufficientSpace: before anything is fetched, when the folder's disk cannot hold it.
            DownloadBusy: another download writes into the same folder.
            ValidationError: a bad layout, or an unreadable download record.
        """
        started = time.monotonic()
        control = control or JobControl()
        destination = destination.expanduser().absolute()
        plan_layout = Layout(layout)
        plan_layout.check(
            COMMON_FIELDS
            | {level for s in self.sources.values() for level in s.hierarchy.levels}
            # Metadata a source's plans give beyond the common fields (GDC's ``data_type``...).
            | {name for s in self.sources.values() for name in getattr(s, "layout_fields", ())}
        )
        try:
            destination.mkdir(parents=True, exist_ok=True)
            lock = _FolderLock(destination / STATE_DIR)
        except FileExistsError:
            raise ValidationError(
                f"cannot download into {destination}: it, or its {STATE_DIR} inside, is a file, not "
                "a folder; choose another folder"
            ) from None
        except OSError as exc:
            raise ValidationError(
                f"cannot download into {destination}: {exc.strerror or exc}; choose a folder you can write to"
            ) from None
        try:
            state = TransferState(destination)
        except BaseException:
            lock.release()
            raise
        try:
            return _Run(self, manifest, destination, plan_layout, state, control, workers).go(
                progress, progress_interval, prune, only, started, verify
            )
        finally:
            state.close()
            lock.release()


class _Closed(Exception):
    """The run returned while this leaf's thread waited on its archive: drop the leaf."""


class _Run:
    """One call of ``Downloader.download``.

    Each leaf's thread is *attached* (the run waits for it) except while it waits on its archive
    (``_away``): a cancelled run, or one whose only remaining leaves wait on archives it stopped
    asking, returns without waiting for those threads; they drop their leaf when they come back.
    """

    def __init__(
        self,
        downloader: Downloader,
        manifest: Manifest,
        destination: Path,
        layout: Layout,
        state: TransferState,
        control: JobControl,
        workers: int,
    ) -> None:
        self.downloader = downloader
        self.sources = downloader.sources
        self.transport = downloader.transport
        self.manifest = manifest
        self.destination = destination
        self.layout = layout
        self.state = state
        self.caller_control = control
        self.control = control.child()  # also cancelled when the run ends abnormally
        self.workers = max(1, workers)
        self.partial = state.dir / "partial"
        self._record = state.dir.resolve()  # where the record lives: no layout may put files there
        self._base = destination.resolve()
        self._known: frozenset[str] = frozenset()  # leaves the record had when the run began
        self._folder_syncs = _FolderSyncs()
        self.meter = ProgressMeter(0, 0)
        self._cond = threading.Condition()
        # Guarded by _cond:
        self._queue: deque[tuple[Leaf, str]] = deque()
        self._attached = 0
        self._away: dict[str, Leaf] = {}  # leaves whose thread waits on the archive, by key
        self._closed = False  # the report is made: nothing more is recorded, no thread re-attaches
        self._errors: list[BaseException] = []
        self._streak: dict[str, int] = {}  # leaves failed in a row, unreachable, by source
        self._controls: dict[str, JobControl] = {}
        self.unreachable: dict[str, str] = {}
        self.fetched: list[str] = []
        self.failed: list[tuple[LeafFailure, bool]] = []  # with: failed because unreachable
        self.bytes = 0
        self.size_only: list[str] = []  # leaves placed that were checked by count and size only

    def go(
        self,
        progress: Callable[[Progress], None] | None,
        interval: float,
        prune: bool,
        only: Collection[str] | None,
        started: float,
        verify: bool = False,
    ) -> Report:
        known = self.state.leaves()
        self._known = frozenset(known)
        placed = self.state.placed()
        wanted = set(only) if only is not None else None
        todo: list[tuple[Leaf, str]] = []
        in_place: list[tuple[str, str]] = []  # (key, manifest line) of leaves in place as recorded
        damaged: set[str] = set()
        restat: list[tuple[str, int, int]] = []
        in_manifest: set[str] = set()
        root = str(self.destination)
        for line in self.manifest.lines():
            key, _, fingerprint = line.partition("\t")
            in_manifest.add(key)
            if wanted is not None and key not in wanted:
                continue
            row = known.get(key)
            if row is not None and row.status == "done" and row.fingerprint == fingerprint:
                files = placed.get(key)
                if files is None:  # a leaf without files: its folder is all there is to check
                    if os.path.isdir(os.path.join(root, row.folder)):
                        in_place.append((key, line))
                        continue
                elif _intact(root, files, restat):
                    in_place.append((key, line))
                    continue
                else:
                    damaged.add(key)
            todo.append((Leaf.decode(line), fingerprint))
        if restat:
            self.state.restat(restat)
        verified = unverifiable = 0
        if verify and in_place:
            with self._ticking(progress, interval):
                bad, verified, unverifiable = self._verify(
                    [(key, placed.get(key, [])) for key, _ in in_place]
                )
            damaged |= bad
            todo += [(Leaf.decode(line), line.partition("\t")[2]) for key, line in in_place if key in bad]
        unchanged = sum(1 for key, _ in in_place if key not in damaged)
        if damaged:
            log.warning(
                "%d leaves of %s changed or were deleted since download; fetching them again",
                len(damaged),
                self.destination,
            )
        removed = sorted(k for k in known if k not in in_manifest) if wanted is None else []
        stages = {_stage_name(leaf.key, fp) for leaf, fp in todo}
        if wanted is None:
            self._sweep_partial(stages)
        self._check_space(todo, stages)
        self.meter = ProgressMeter(sum(leaf.fingerprint.size or 0 for leaf, _ in todo), len(todo))
        for source_id in {leaf.source_id for leaf, _ in todo}:
            source = self.sources.get(source_id)
            if source is not None:
                self.transport.set_limit(source_id, max(1, int(getattr(source, "connections", 8))))

        finished = threading.Event()
        ticker = None
        if progress is not None:
            ticker = threading.Thread(
                target=self._tick, args=(progress, interval, finished), name="download-progress", daemon=True
            )
            ticker.start()
        self._queue.extend(todo)
        self.control.on_change(self._stir)
        settled = False
        try:
            for i in range(min(self.workers, len(todo))):
                threading.Thread(target=self._work, name=f"download-{i}", daemon=True).start()
            with self._cond:
                while not self._settled():
                    self._cond.wait(1.0)  # every change notifies; the timeout is a safety net
                self._closed = True
                settled = True
                left_behind = [  # waiting on an archive given up on: failed like its other leaves
                    (LeafFailure(leaf.key, leaf.source_id, leaf.path, ""), True)
                    for leaf in self._away.values()
                    if leaf.source_id in self.unreachable
                ]
                failed = self.failed + left_behind
                fetched, placed_bytes = list(self.fetched), self.bytes
                unreachable = dict(self.unreachable)
                errors = list(self._errors)
        finally:
            if not settled:  # interrupted: stop the threads that write before the folder is let go
                self.control.cancel()
                with self._cond:
                    while self._attached:
                        self._cond.wait(1.0)
                    self._closed = True
            finished.set()
            if ticker is not None:
                ticker.join()
        if errors:
            raise errors[0]  # a programming error in a leaf's thread
        for _ in left_behind:
            self.meter.item_failed()
        pruned = self._prune(removed) if prune and not self.control.cancelled else []
        report = Report(
            destination=self.destination,
            manifest_id=self.manifest.id,
            fetched=tuple(sorted(fetched)),
            unchanged=unchanged,
            removed=tuple(removed),
            pruned=tuple(pruned),
            failed=tuple(
                sorted(
                    (
                        LeafFailure(f.key, f.source_id, f.path, unreachable[f.source_id])
                        if gone and f.source_id in unreachable
                        else f
                        for f, gone in failed
                    ),
                    key=lambda f: f.key,
                )
            ),
            pending=len(todo) - len(fetched) - len(failed),
            bytes=placed_bytes,
            seconds=time.monotonic() - started,
            cancelled=self.caller_control.cancelled,
            unreachable=unreachable,
            refetched=tuple(sorted(damaged & set(fetched))),
            size_only=tuple(sorted(set(self.size_only) & set(fetched))),
            verified=verified,
            unverifiable=unverifiable,
        )
        self.state.record(report)
        if progress is not None:
            progress(self.meter.snapshot(paused=self.control.paused))
        return report

    def _verify(self, leaves: list[tuple[str, list[Placed]]]) -> tuple[set[str], int, int]:
        """Re-hash the files of ``leaves`` (key, files) on ``workers`` threads; returns the keys
        whose files differ from their recorded MD5, the files that matched, and those that had no
        MD5 to compare with. Progress counts the bytes read."""
        total = 0
        for _, files in leaves:
            total += sum(f.size or 0 for f in files)
        self.meter = ProgressMeter(total, len(leaves))
        root = self.destination

        def check(item: tuple[str, list[Placed]]) -> tuple[str, bool, int, int]:
            key, files = item
            matched = unknown = 0
            for f in files:
                if self.control.cancelled:
                    return key, True, matched, unknown  # not checked: the run is cancelled anyway
                if f.md5 is None:
                    unknown += 1
                    continue
                try:
                    digest = _md5_of(root / f.path, self.meter.add_bytes)
                except OSError:
                    return key, False, matched, unknown
                if digest != f.md5.lower():
                    return key, False, matched, unknown
                matched += 1
            self.meter.item_done()
            return key, True, matched, unknown

        bad: set[str] = set()
        verified = unverifiable = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as pool:
            for key, ok, matched, unknown in pool.map(check, leaves):
                verified += matched
                unverifiable += unknown
                if not ok:
                    bad.add(key)
        return bad, verified, unverifiable

    def _settled(self) -> bool:
        """True when the report can be made (under ``_cond``)."""
        if self._attached:
            return False
        if self.control.cancelled:
            return True
        return not self._queue and all(leaf.source_id in self.unreachable for leaf in self._away.values())

    def _stir(self) -> None:
        """Called on the thread that paused, resumed or cancelled."""
        with self._cond:
            self._cond.notify_all()

    @contextmanager
    def _ticking(self, progress: Callable[[Progress], None] | None, interval: float) -> Iterator[None]:
        """Report ``self.meter`` every ``interval`` seconds while the block runs."""
        if progress is None:
            yield
            return
        finished = threading.Event()
        ticker = threading.Thread(
            target=self._tick, args=(progress, interval, finished), name="verify-progress", daemon=True
        )
        ticker.start()
        try:
            yield
        finally:
            finished.set()
            ticker.join()

    def _tick(self, progress: Callable[[Progress], None], interval: float, finished: threading.Event) -> None:
        while not finished.wait(interval):
            progress(self.meter.snapshot(paused=self.control.paused))

    def _sweep_partial(self, keep: set[str]) -> None:
        """Staging folders of leaves this manifest no longer wants (older versions) go."""
        if not self.partial.is_dir():
            return
        for entry in os.scandir(self.partial):
            if entry.name not in keep:
                shutil.rmtree(entry.path, ignore_errors=True)

    def _check_space(self, todo: list[tuple[Leaf, str]], stages: set[str]) -> None:
        """Refuse before anything is fetched when the disk cannot hold what ``todo`` needs at its
        peak: every leaf's bytes, plus, for a source whose leaves arrive packed (``unpacks``: a
        TCIA series' zip sits beside its unpacked images until the leaf is placed), the packed
        copies of the leaves unpacked at once (the ``workers`` largest), each counted at the size
        of the leaf (a zip of images is hardly smaller than they are)."""
        need = sum(leaf.fingerprint.size or 0 for leaf, _ in todo)
        packed = sorted(
            (
                leaf.fingerprint.size or 0
                for leaf, _ in todo
                if getattr(self.sources.get(leaf.source_id), "unpacks", False)
            ),
            reverse=True,
        )
        unpacking = sum(packed[: self.workers])
        need += unpacking
        have = 0
        for name in stages:
            folder = self.partial / name
            if folder.is_dir():
                have += sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())
        need = max(need - have, 0)
        if not need:
            return
        free = shutil.disk_usage(self.destination).free
        if need + min(SPACE_RESERVE, need // 10) > free:
            raise InsufficientSpace(
                f"{self.destination} has {human_bytes(free)} free but this download needs "
                f"{human_bytes(need)}"
                + (f" (of which {human_bytes(unpacking)} while zips are unpacked)" if unpacking else "")
                + "; free some space or choose another folder"
            )

    # -- one leaf, on a worker thread ------------------------------------------------------------
    def _work(self) -> None:
        """A download worker thread: takes leaves until none are left or the run ends."""
        attached = False
        while True:
            with self._cond:
                if attached:
                    self._attached -= 1
                    attached = False
                    self._cond.notify_all()
                if self._closed or self.control.cancelled or not self._queue:
                    return
                leaf, fingerprint = self._queue.popleft()
                self._attached += 1
                attached = True
            try:
                self._leaf(leaf, fingerprint)
            except _Closed:
                attached = False
            except BaseException as exc:  # noqa: BLE001 - re-raised by ``go`` on the caller's thread
                with self._cond:
                    self._errors.append(exc)

    @contextmanager
    def _waiting_on_archive(self, leaf: Leaf) -> Iterator[None]:
        """Detach while the archive is asked: the run need not wait for it once cancelled or once
        it stopped asking this archive. Raises ``_Closed`` when the run returned meanwhile."""
        with self._cond:
            self._attached -= 1
            self._away[leaf.key] = leaf
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                del self._away[leaf.key]
                if self._closed:
                    raise _Closed  # whatever the archive said: nobody listens any more
                self._attached += 1

    def _control_of(self, source_id: str) -> JobControl:
        """The control of one archive's transfers: the run's, also cancelled when it is given up on."""
        with self._cond:
            control = self._controls.get(source_id)
            if control is None:
                control = self._controls[source_id] = self.control.child()
            return control

    def _leaf(self, leaf: Leaf, fingerprint: str) -> None:
        """Called on a download worker thread, attached."""
        if not self.control.wait_while_paused():
            return  # counted as pending
        source = self.sources.get(leaf.source_id)
        try:
            if source is None:
                raise ValidationError(
                    f"source {leaf.source_id!r} is not configured on this machine; add it in the settings"
                )
            if self._given_up(leaf):
                return
            with self._waiting_on_archive(leaf):
                plan = source.plan(leaf)
            if self._given_up(leaf):
                return
            stage = self.partial / _stage_name(leaf.key, fingerprint)
            final, synced = self._fetch(leaf, source, plan, stage)
            with self._waiting_on_archive(leaf):  # may cost a request (a series' modality)
                fields = {name: plan.fields[name] for name in self.layout.fields & set(plan.fields)}
            placed = self._place(leaf, fingerprint, source, fields, plan, final, synced)
            try:
                os.rmdir(stage)  # every file moved out of it
            except OSError:  # what a finishing step left (a zip...)
                shutil.rmtree(stage, ignore_errors=True)
        except Cancelled:
            self._given_up(leaf)  # counted as failed when its archive was given up on, else pending
            return
        except (MediatorError, OSError, sqlite3.Error) as exc:
            self._failed(leaf, source, exc)
            return
        self.meter.item_done()
        with self._cond:
            self.fetched.append(leaf.key)
            self.bytes += placed
            self._streak[leaf.source_id] = 0

    def _given_up(self, leaf: Leaf) -> bool:
        """True (and the leaf counted as failed) when the run stopped asking the leaf's archive."""
        with self._cond:
            reason = self.unreachable.get(leaf.source_id)
            if reason is None:
                return False
            self.failed.append((LeafFailure(leaf.key, leaf.source_id, leaf.path, reason), True))
        self.meter.item_failed()
        return True

    def _failed(self, leaf: Leaf, source: DataSource | None, exc: BaseException) -> None:
        gone = self.transport.unreachable(exc) if source is not None else None
        if isinstance(exc, OSError) and gone is None:
            reason = _os_reason(exc)
        elif isinstance(exc, sqlite3.Error):
            reason = f"the download record could not be written ({exc}); free some space and run it again"
        else:
            reason = str(exc)
        name = leaf.key.replace("\x1f", "/")
        self.meter.item_failed()
        dropped: list[tuple[Leaf, str]] = []
        shared = None
        with self._cond:
            self.failed.append((LeafFailure(leaf.key, leaf.source_id, leaf.path, reason), gone is not None))
            if gone is not None and source is not None and leaf.source_id not in self.unreachable:
                streak = self._streak[leaf.source_id] = self._streak.get(leaf.source_id, 0) + 1
                if streak >= UNREACHABLE_AFTER:
                    shared = self._unreachable_reason(source, gone)
                    self.unreachable[leaf.source_id] = shared
                    kept: deque[tuple[Leaf, str]] = deque()
                    for item in self._queue:
                        (dropped if item[0].source_id == leaf.source_id else kept).append(item)
                    self._queue = kept
                    self.failed += [
                        (LeafFailure(other.key, other.source_id, other.path, shared), True)
                        for other, _ in dropped
                    ]
                    self._cond.notify_all()
        if gone is None:
            log.warning("download of %s failed: %s", name, reason)
            return
        log.info("download of %s failed, its archive out of reach: %s", name, reason)
        if shared is not None:
            for _ in dropped:
                self.meter.item_failed()
            log.warning("stopped downloading from %s: %s", leaf.source_id, shared)
            self._control_of(leaf.source_id).cancel()  # its transfers in flight end now

    @staticmethod
    def _unreachable_reason(source: DataSource, gone: ArchiveUnreachable) -> str:
        host = gone.host
        if not host:
            for name in ("base_url", "endpoint_url", "url"):  # the address a source was given
                value = getattr(source, name, None)
                if isinstance(value, str) and value:
                    host = urlsplit(value).netloc
                    break
        where = f" ({host})" if host else ""
        return (
            f"cannot reach {source.title}{where}: {gone.reason}; "
            "check the network, a proxy or VPN, then run the download again"
        )

    def _fetch(
        self, leaf: Leaf, source: DataSource, plan: LeafPlan, stage: Path
    ) -> tuple[list[Path], set[Path]]:
        """The leaf's files in ``stage``, and those of them already on the disk (fsynced)."""
        names = [safe_component(f.name) for f in plan.files]
        if len(set(names)) != len(names):
            raise IntegrityError(f"the archive names two files of {leaf.path[-1]} alike; cannot keep both")
        clash = sorted(set(names) & {name + ".part" for name in names})
        if clash:  # X.part is where X arrives: the two would overwrite each other
            raise IntegrityError(
                f"the archive names a file of {leaf.path[-1]} {clash[0]!r}, the name under which "
                f"{clash[0][: -len('.part')]!r} arrives; MEDIator cannot download this series"
            )
        try:
            stage.mkdir(parents=True)
            earlier: dict[str, os.DirEntry[str]] = {}  # a new staging folder: nothing arrived yet
        except FileExistsError:  # a run that stopped before the leaf was placed: what it left
            earlier = {entry.name: entry for entry in os.scandir(stage)}
        control = self._control_of(leaf.source_id)
        futures: list[Future[Path]] = []
        synced: set[Path] = set()  # what the transport put on the disk (``durable``)
        downloaded = [stage / name for name in names]
        for file, name, target in zip(plan.files, names, downloaded, strict=True):
            entry = earlier.get(name)
            if entry is not None:  # verified in an earlier run that stopped before the leaf was placed
                have = entry.stat().st_size
                if file.size is None or have == file.size:
                    self.meter.add_bytes(have)
                    continue
                target.unlink()  # cut short since (a crash before the disk had it all): fetch again
            futures.append(
                self.transport.submit(
                    file,
                    target,
                    group=leaf.source_id,
                    control=control,
                    on_bytes=self.meter.add_bytes,
                    durable=True,
                )
            )
            synced.add(target)
        wait_futures(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if any(isinstance(e, Cancelled) for e in errors):
            raise Cancelled("cancelled")
        if errors:
            first = errors[0]
            assert first is not None
            if (  # an unreachable archive keeps its host and reason: the run tells it once
                len(errors) > 1
                and isinstance(first, MediatorError)
                and not isinstance(first, ArchiveUnreachable)
            ):
                raise first.__class__(f"{first} (and {len(errors) - 1} more files of this leaf)")
            raise first
        if plan.finish is None:
            return downloaded, synced
        try:
            return self.downloader.finish(plan, stage, downloaded), set()  # new files (or changed)
        except IntegrityError:
            shutil.rmtree(stage, ignore_errors=True)  # never reuse what failed its check
            raise
        except (MediatorError, OSError):
            raise
        except Exception as exc:  # a source's unpacking met data it did not expect
            shutil.rmtree(stage, ignore_errors=True)
            raise IntegrityError(
                f"{source.title} sent data for {leaf.path[-1]} that could not be unpacked "
                f"({type(exc).__name__}: {exc}); it was discarded, try again"
            ) from exc

    def _place(
        self,
        leaf: Leaf,
        fingerprint: str,
        source: DataSource,
        fields: Mapping[str, str],
        plan: LeafPlan,
        files: list[Path],
        synced: Collection[Path] = (),
    ) -> int:
        """Move ``files`` into the leaf's folder and record it; ``synced``: those already on the disk."""
        if plan.count is not None and len(files) != plan.count:
            raise IntegrityError(
                f"{leaf.path[-1]} should have {plan.count} files but {len(files)} arrived; the archive "
                "changed since the set was resolved, or sent too few: try again, then resolve the set anew"
            )
        values = dict(zip(source.hierarchy.levels, leaf.path, strict=False))
        values.setdefault("collection", leaf.source_id)
        values.update({"source": leaf.source_id, "leaf": leaf.path[-1]})
        values.update({name: value for name, value in fields.items() if value})
        folder = self.layout.render(values)
        folder_path, created = self._folder(folder)
        record = self._record
        if (
            folder_path == record
            or record in folder_path.parents
            or folder.split("/")[0].lower() == STATE_DIR
        ):
            raise ValidationError(
                f"the layout puts {leaf.path[-1]} inside {STATE_DIR}; choose another layout"
            )
        relative = [f"{folder}/{f.name}" for f in files]
        if len(set(relative)) != len(relative):
            raise IntegrityError(
                f"the archive gave two files of {leaf.path[-1]} the same name; cannot keep both"
            )
        # Nothing is deleted unless the new files can be placed: a refusal keeps the version on disk
        # (a leaf new to the record has nothing to delete: its claim checks). In a folder not there
        # yet no file can be in the way: nothing to look at on the disk.
        new_folders = folder_path in created
        replacing = leaf.key in self._known
        if replacing:
            self.state.check_claim(leaf.key, relative, new_folders=new_folders)
        # MD5s the archive gave were checked on arrival (by the transport, or by ``finish``): they
        # are what ``verify`` compares with later. Files without one are not hashed here: reading
        # them back tripled the time of large multipart objects; ``verify`` checks those by size.
        if plan.finish is None:
            archive = {f.name: remote.md5 for f, remote in zip(files, plan.files, strict=True) if remote.md5}
            complete = all(remote.md5 for remote in plan.files)
        elif isinstance(files, Checked):
            archive, complete = files.md5s, files.complete
        else:
            archive, complete = {}, False
        # Power loss: each file's data reaches the disk before its rename can (a renamed file must
        # never turn out empty), its folder's entries after; the record says done only then. The
        # transport synced what it fetched; the rest is synced here.
        stats = _synced_stats(files, synced)
        entries = []
        for f, rel, st in zip(files, relative, stats, strict=True):
            known = archive.get(f.name)
            entries.append(Placed(rel, st.st_size, st.st_mtime_ns, known.lower() if known else None))
        size = sum(entry.size or 0 for entry in entries)
        # The files of the version being replaced go first: once the claim is recorded they are no
        # longer listed, and a crash between the two must not leave them behind untracked. A leaf
        # the record did not know when the run began has none.
        if replacing:
            keep = set(relative)
            removed = False
            for rel in self.state.files_of(leaf.key):
                if rel not in keep:
                    _remove_file(self.destination, rel)
                    removed = True
            if removed and not created:  # the old version's files went, and with them the folders
                created = _missing_levels(self._base, folder_path)  # they left empty (a new version
                # of a series in the same folder: its old files all had other names)
        self.state.claim(leaf.key, fingerprint, folder, relative, size, looked=replacing or new_folders)
        if created:
            folder_path.mkdir(parents=True, exist_ok=True)
        root = str(self.destination)
        for f, rel in zip(files, relative, strict=True):
            os.replace(f, f"{root}/{rel}")
        # The leaf's folder holds the renames; each folder made for it is an entry in its parent.
        self._folder_syncs.sync([folder_path, *(c.parent for c in created)])
        checked = CHECKED_MD5 if complete else CHECKED_SIZE
        self.state.done(leaf.key, entries, checked)
        if not complete:
            with self._cond:
                self.size_only.append(leaf.key)
        return size

    def _folder(self, folder: str) -> tuple[Path, list[Path]]:
        """Where ``folder`` (a rendered layout: safe names, no ``..``) is, and its levels not made
        yet, deepest first. Like ``inside``, refuses a folder that a link leads out of the
        destination, but looks only at the levels below it, and stops at the first one missing."""
        path = self._base
        created: list[Path] = []
        for name in folder.split("/"):
            path = path / name
            if created:
                created.append(path)
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                created.append(path)
                continue
            if stat.S_ISLNK(mode):  # a link made by hand: where it leads decides
                path = inside(self.destination, folder)
                created = []
                parent = path
                while not parent.exists() and parent != self._base:
                    created.append(parent)
                    parent = parent.parent
                return path, created
        created.reverse()
        return path, created

    def _prune(self, removed: list[str]) -> list[str]:
        pruned = []
        for key in removed:
            for rel in self.state.files_of(key):
                _remove_file(self.destination, rel)
            self.state.forget(key)
            pruned.append(key)
        return pruned


def _intact(root: str, files: list[Placed], restat: list[tuple[str, int, int]]) -> bool:
    """True when every file of a placed leaf still has the size and modification time recorded (a
    ``stat`` each, no reads). Files recorded without them (an older record) need only exist; their
    size and time are added to ``restat``."""
    for f in files:
        try:
            st = os.stat(f"{root}/{f.path}")
        except OSError:
            return False
        if f.size is None or f.mtime_ns is None:
            if not stat.S_ISREG(st.st_mode):
                return False
            restat.append((f.path, st.st_size, st.st_mtime_ns))
        elif st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
            return False
    return True


def _md5_of(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as f:
        while block := f.read(1 << 20):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()


def _fsync_file(path: Path) -> os.stat_result:
    """Flush one file's data to the disk (called on a download worker thread); returns its stat."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


#: Threads that fsync files not synced yet (most of the time spent waiting on the disk; several
#: fsyncs at once share a journal commit).
_SYNCERS = 8
_sync_pool: ThreadPoolExecutor | None = None
_sync_pool_lock = threading.Lock()


def _synced_stats(files: list[Path], synced: Collection[Path]) -> list[os.stat_result]:
    """Each file's stat, after an fsync of those not in ``synced`` (several at once)."""
    todo = [f for f in files if f not in synced]
    stats: dict[Path, os.stat_result] = {}
    if len(todo) > 1:
        global _sync_pool
        with _sync_pool_lock:
            if _sync_pool is None:
                _sync_pool = ThreadPoolExecutor(_SYNCERS, thread_name_prefix="fsync")
            pool = _sync_pool
        stats = dict(zip(todo, pool.map(_fsync_file, todo), strict=True))
    elif todo:
        stats[todo[0]] = _fsync_file(todo[0])
    return [stats[f] if f in stats else os.stat(f) for f in files]


class _FolderSyncs:
    """``fsync`` of folders after renames into them, grouped by folder: threads asking for a
    folder while another thread syncs it wait for that sync to end, then one of them syncs it
    once for all (where a layout puts many one-file leaves in one folder, each asks for it).
    Different folders sync at the same time, as separate fsyncs would (a series a folder of its
    own: the threads' fsyncs share the file system's journal commits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, _FolderSync] = {}

    def sync(self, folders: Iterable[Path]) -> None:
        """Returns once a sync that began after this call covered each of ``folders``; raises the
        ``OSError`` of this caller's own sync of one."""
        for folder in dict.fromkeys(folders):
            self.of(folder).sync()

    def of(self, folder: Path) -> _FolderSync:
        with self._lock:
            entry = self._folders.get(folder)
            if entry is None:
                entry = self._folders[folder] = _FolderSync(folder)
            return entry


class _FolderSync:
    """One folder's syncs: each asker takes a ticket; a sync covers the tickets taken before it
    began. A failed sync covers nobody: each waiter then tries its own, and raises its error."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.syncing = threading.Lock()  # held by whoever syncs the folder
        self._count = threading.Lock()
        self.asked = 0  # tickets taken
        self._synced = 0  # tickets covered by a finished sync

    def sync(self) -> None:
        with self._count:
            self.asked += 1
            mine = self.asked
        with self.syncing:
            if self._synced >= mine:
                return
            with self._count:
                covering = self.asked
            _fsync_dir(self.folder)
            self._synced = covering


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (files renamed or created in it) durable. Not possible on Windows."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing_levels(base: Path, folder: Path) -> list[Path]:
    """The levels of ``folder`` below ``base`` that do not exist, deepest first."""
    missing = []
    path = folder
    while path != base and base in path.parents and not path.is_dir():
        missing.append(path)
        path = path.parent
    return missing


def _remove_file(root: Path, relative: str) -> None:
    """Delete one file this app wrote, then the folders it leaves empty (never ``root`` itself).

    The record may come from elsewhere (a folder copied from a share, unpacked from an archive):
    a path in it that leads outside ``root`` is left alone.
    """
    try:
        path = inside(root, relative)
    except ValidationError:
        log.warning("the download record lists %r, which is outside %s; not deleting it", relative, root)
        return
    path.unlink(missing_ok=True)
    root = root.resolve()
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty, or gone
            break
        parent = parent.parent
