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
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediator_desktop.core.errors import MediatorError, NotFound, ValidationError
from mediator_desktop.core.jobs import JobControl, Progress
from mediator_desktop.core.transfer import DEFAULT_LAYOUT, Report

if TYPE_CHECKING:
    from mediator_desktop.core.service import Service

log = logging.getLogger(__name__)

STATES = ("running", "paused", "done", "failed", "cancelled")


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
        }


class Downloads:
    """The download jobs of one node, each on its own thread."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._jobs: dict[str, DownloadJob] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def start(
        self,
        set_id: str,
        destination: Path,
        *,
        version: int | None = None,
        layout: str = DEFAULT_LAYOUT,
        workers: int = 8,
        prune: bool = False,
        only: Collection[str] | None = None,
    ) -> DownloadJob:
        """Start bringing ``destination`` up to a version (default: the head) of a set.

        Checks what can be checked at once (the set, the version, an absolute destination) and
        raises; everything after that ends up in the job's state, report and error.
        """
        if not destination.is_absolute():
            raise ValidationError(
                f"the destination must be an absolute folder path, not {str(destination)!r}"
            )
        rs = self._service.get_set(set_id)
        number = self._service.version(set_id, version).number
        if not 1 <= workers <= 64:
            raise ValidationError(f"workers must be between 1 and 64, not {workers}")
        job = DownloadJob(
            f"{next(self._counter)}-{secrets.token_hex(4)}", set_id, rs.name, number, destination, layout
        )
        job.control.on_change(lambda: job._update(state="paused" if job.control.paused else "running"))
        thread = threading.Thread(
            target=self._run, args=(job, workers, prune, only), name=f"download-{job.id}", daemon=True
        )
        with self._lock:
            self._jobs[job.id] = job
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        self._service.store.events.emit("download_started", job=job.id, set_id=set_id)
        return job

    def _run(self, job: DownloadJob, workers: int, prune: bool, only: Collection[str] | None) -> None:
        events = self._service.store.events
        try:
            report = self._service.download(
                job.set_id,
                job.version,
                job.destination,
                layout=job.layout,
                workers=workers,
                progress=lambda p: self._progressed(job, p),
                control=job.control,
                prune=prune,
                only=only,
            )
        except MediatorError as exc:
            job._update(state="failed", error=str(exc), error_type=type(exc).__name__)
            events.emit("download_failed", job=job.id, set_id=job.set_id, message=str(exc))
            return
        except Exception as exc:  # a bug: the job fails visibly, the node goes on
            log.exception("download %s failed", job.id)
            job._update(state="failed", error=f"internal error: {exc!r}", error_type="InternalError")
            events.emit("download_failed", job=job.id, set_id=job.set_id, message=repr(exc))
            return
        state = "cancelled" if report.cancelled else "done" if not report.failed else "failed"
        job._update(state=state, report=report, error=None if state != "failed" else report.summary())
        events.emit(f"download_{'finished' if state == 'done' else state}", job=job.id, set_id=job.set_id)

    def _progressed(self, job: DownloadJob, progress: Progress) -> None:
        job._update(progress=progress)
        self._service.store.events.emit("download_progress", job=job.id)

    def get(self, job_id: str) -> DownloadJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no download job {job_id!r} on this node (jobs last until the node stops)")
        return job

    def list(self) -> list[DownloadJob]:
        with self._lock:
            return list(self._jobs.values())

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every running job and wait for its thread (what finished stays)."""
        with self._lock:
            jobs, threads = list(self._jobs.values()), list(self._threads)
        for job in jobs:
            job.control.cancel()
        for thread in threads:
            thread.join(timeout)
