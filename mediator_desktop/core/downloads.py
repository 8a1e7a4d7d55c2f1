"""Downloads as jobs: started by any frontend, watched and steered by any other.

The desktop app's downloads panel, the CLI's progress bar and an SDK script's callback all look
at the same ``DownloadJob``: its state, its latest ``Progress`` and, at the end, its ``Report``.
Watchers wait on a change counter (``wait``), so nobody polls with sleeps.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediator_desktop.core.errors import MediatorError, NotFound, ValidationError
from mediator_desktop.core.events import (
    DownloadCancelled,
    DownloadFailed,
    DownloadFinished,
    DownloadProgressed,
    DownloadStarted,
    EventBus,
)
from mediator_desktop.core.jobs import JobControl, Progress
from mediator_desktop.core.layout import DEFAULT_LAYOUT, Layout
from mediator_desktop.core.transfer import Downloader, Report

if TYPE_CHECKING:
    from mediator_desktop.core.service import Sets
    from mediator_desktop.core.tracking import Reproduction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """What to download where: the one value every frontend fills in (UI, API, SDK, CLI).

    Args:
        set_id: the replica set.
        destination: an absolute folder; it keeps its own record of what it holds.
        version: the version to bring the folder up to (None: the head).
        layout: the folder template (None: the node's ``download_layout`` setting).
        workers: leaves planned and placed at once (1 to 64).
        prune: delete files of leaves no longer in the version (only files this app wrote).
        only: leaf keys to consider (``Report.retry_keys()`` retries the failures alone).
        verify: re-hash every file already in place against the archive's MD5 (by size where
            it gave none) and fetch again the leaves that differ (without it, files are compared
            by size and modification time).
    """

    set_id: str
    destination: Path
    version: int | None = None
    layout: str | None = None
    workers: int = 8
    prune: bool = False
    only: frozenset[str] | None = None
    verify: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.destination, Path):
            object.__setattr__(self, "destination", Path(self.destination))
        if self.only is not None and not isinstance(self.only, frozenset):
            object.__setattr__(self, "only", frozenset(self.only))

    def check(self) -> None:
        """Raises ``ValidationError`` for what can be told wrong before anything starts."""
        if not self.destination.is_absolute():
            raise ValidationError(
                f"the destination must be an absolute folder path, not {str(self.destination)!r}"
            )
        if not 1 <= self.workers <= 64:
            raise ValidationError(f"workers must be between 1 and 64, not {self.workers}")
        if self.layout is not None:
            Layout(self.layout)


@dataclass(eq=False)
class DownloadJob:
    """One download of a set version into a folder. Read its fields under ``wait``'s counter."""

    id: str
    set_id: str
    set_name: str
    version: int
    destination: Path
    layout: str = DEFAULT_LAYOUT
    control: JobControl = field(default_factory=JobControl)
    state: str = "running"
    progress: Progress | None = None
    report: Report | None = None
    error: str | None = None  # the message of a failure that stopped the whole job
    error_type: str | None = None  # its class name: InsufficientSpace, DownloadBusy...
    changes: int = 0
    #: For a published version: its leaves against their archives now (``Tracker.reproduction``).
    reproduction: Reproduction | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def wait(self, after: int = -1, timeout: float | None = None) -> int:
        """Block until the job changed since change number ``after`` (or finished, or timed out);
        returns the current change number."""
        with self._cond:
            self._cond.wait_for(lambda: self.changes > after or self.finished, timeout)
            return self.changes

    def _update(self, **fields: Any) -> None:
        with self._cond:
            for name, value in fields.items():
                setattr(self, name, value)
            self.changes += 1
            self._cond.notify_all()

    def _steered(self, paused: bool) -> None:
        """A pause or resume shows in the state while the job runs; a finished job keeps its end."""
        with self._cond:
            if not self.finished:
                self._update(state="paused" if paused else "running")

    def to_json(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "id": self.id,
            "set_id": self.set_id,
            "set_name": self.set_name,
            "version": self.version,
            "destination": str(self.destination),
            "state": self.state,
            "changes": self.changes,
            "progress": None
            if progress is None
            else {
                "bytes_done": progress.bytes_done,
                "bytes_total": progress.bytes_total,
                "items_done": progress.items_done,
                "items_total": progress.items_total,
                "failed": progress.failed,
                "rate": round(progress.rate, 1),
                "eta": None if progress.eta is None else round(progress.eta, 1),
                "line": progress.line(),
            },
            "report": None if self.report is None else self.report.to_json(),
            "summary": None if self.report is None else self.report.summary(),
            "error": self.error,
            "error_type": self.error_type,
            "reproduction": None if self.reproduction is None else self.reproduction.to_json(),
        }


class Downloads:
    """The download jobs of one node, each on its own thread; any frontend starts, watches and
    steers them."""

    def __init__(
        self,
        sets: Sets,
        events: EventBus,
        downloader: Downloader | None,
        default_layout: Callable[[], str] = lambda: DEFAULT_LAYOUT,
        reproduction: Callable[[str, int], Reproduction | None] = lambda set_id, number: None,
    ) -> None:
        """Args:
        reproduction: a version's leaves against their archives now, or None when not wanted
            (the service asks it for published versions: ``Tracker.reproduction``).
        """
        self._sets = sets
        self._reproduction = reproduction
        self._events = events
        self._downloader = downloader
        self._default_layout = default_layout
        self._jobs: dict[str, DownloadJob] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def default_layout(self) -> str:
        """The layout a request without one gets (the ``download_layout`` setting)."""
        return self._default_layout()

    def run(
        self,
        request: DownloadRequest,
        *,
        progress: Callable[[Progress], None] | None = None,
        control: JobControl | None = None,
    ) -> Report:
        """Bring a folder up to a version of a set in this thread; blocks until done.

        Only leaves new or changed since the folder's last download are fetched; see
        ``core.transfer.Downloader.download`` for the errors.
        """
        request.check()
        if self._downloader is None:
            raise ValidationError("this service was built without a downloader")
        version = self._sets.version(request.set_id, request.version)
        self._refuse_empty(request, version.manifest_id, version.number)
        manifest = self._sets.manifest(version.manifest_id)
        return self._downloader.download(
            manifest,
            request.destination,
            layout=request.layout or self._default_layout(),
            workers=request.workers,
            progress=progress,
            control=control,
            prune=request.prune,
            only=request.only,
            verify=request.verify,
        )

    def start(self, request: DownloadRequest) -> DownloadJob:
        """Start a download job; returns at once.

        Checks what can be checked at once (the set, the version, an absolute destination) and
        raises; everything after that ends up in the job's state, report and error.
        """
        request.check()
        rs = self._sets.get(request.set_id)
        version = self._sets.version(request.set_id, request.version)
        number = version.number
        self._refuse_empty(request, version.manifest_id, number)
        layout = request.layout or self._default_layout()
        request = replace(request, version=number, layout=layout)
        job = DownloadJob(
            f"{next(self._counter)}-{secrets.token_hex(4)}",
            request.set_id,
            rs.name,
            number,
            request.destination,
            layout,
        )
        job.control.on_change(lambda: job._steered(job.control.paused))
        thread = threading.Thread(
            target=self._run, args=(job, request), name=f"download-{job.id}", daemon=True
        )
        with self._lock:
            self._jobs[job.id] = job
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        self._events.emit(DownloadStarted(job.id, job.set_id))  # before any event of the job's own
        thread.start()
        return job

    def _refuse_empty(self, request: DownloadRequest, manifest_id: str, number: int) -> None:
        """A version that selects no data is a mistake to say out loud, not a download of 0 files."""
        if request.prune or self._sets.totals(manifest_id)[0]:
            return
        name = self._sets.get(request.set_id).name
        raise ValidationError(
            f"version {number} of {name!r} selects no data (0 leaves): there is nothing to download; "
            "add data to the set first (or pass prune to empty the folder)"
        )

    def _run(self, job: DownloadJob, request: DownloadRequest) -> None:
        # A set whose data you keep is one you want to hear about when its archives change.
        self._sets.ensure_following(request.set_id)
        try:
            report = self.run(request, progress=lambda p: self._progressed(job, p), control=job.control)
        except MediatorError as exc:
            job._update(state="failed", error=str(exc), error_type=type(exc).__name__)
            self._events.emit(DownloadFailed(job.id, job.set_id, str(exc)))
            return
        except Exception as exc:  # a bug: the job fails visibly, the node goes on
            log.exception("download %s failed", job.id)
            job._update(state="failed", error=f"internal error: {exc!r}", error_type="InternalError")
            self._events.emit(DownloadFailed(job.id, job.set_id, repr(exc)))
            return
        state = "cancelled" if report.cancelled else "done" if not report.failed else "failed"
        reproduction = self._compare(job, report)
        job._update(
            state=state,
            report=report,
            error=None if state != "failed" else report.summary(),
            reproduction=reproduction,
        )
        if state == "done":
            self._events.emit(DownloadFinished(job.id, job.set_id))
        elif state == "cancelled":
            self._events.emit(DownloadCancelled(job.id, job.set_id))
        else:
            self._events.emit(DownloadFailed(job.id, job.set_id, report.summary()))

    def _compare(self, job: DownloadJob, report: Report) -> Reproduction | None:
        """A published version's leaves against their archives, marked by this download."""
        if report.cancelled:
            return None
        try:
            reproduction = self._reproduction(job.set_id, job.version)
        except MediatorError as exc:
            log.warning("could not compare %s v%d with its archives: %s", job.set_name, job.version, exc)
            return None
        if reproduction is None:
            return None
        failed = {failure.key: failure.reason for failure in report.failed}
        return reproduction.with_download(failed, complete=not report.pending)

    def _progressed(self, job: DownloadJob, progress: Progress) -> None:
        job._update(progress=progress)
        self._events.emit(DownloadProgressed(job.id, job.set_id))

    def get(self, job_id: str) -> DownloadJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no download job {job_id!r} on this node (jobs last until the node stops)")
        return job

    def list(self) -> list[DownloadJob]:
        with self._lock:
            return list(self._jobs.values())

    def control(self, job_id: str, action: str) -> DownloadJob:
        """``pause``, ``resume`` or ``cancel`` a job; returns it."""
        job = self.get(job_id)
        if action not in ("pause", "resume", "cancel"):
            raise ValidationError(f"a download can be paused, resumed or cancelled, not {action!r}")
        getattr(job.control, action)()
        return job

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every running job and wait for its thread (what finished stays)."""
        with self._lock:
            jobs, threads = list(self._jobs.values()), list(self._threads)
        for job in jobs:
            job.control.cancel()
        for thread in threads:
            thread.join(timeout)
