"""What deserves a desktop notification, decided from core events (no Qt here).

- a set becomes visible or editable to you (shared with you);
- a set you follow gets a new version by someone else (with the diff's one-line summary);
- an update check found that the archives behind a set you follow or own changed;
- a download ends or fails.

``Notices.on_event`` may decode manifests (for a summary): call it off the GUI thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.events import (
    DownloadFailed,
    DownloadFinished,
    DriftRecorded,
    Event,
    SetChanged,
    VersionCommitted,
)
from mediator_desktop.core.replica import ReplicaSet
from mediator_desktop.core.service import Service


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    text: str
    set_id: str | None = None  # clicking the notification opens this set
    error: bool = False
    #: What clicking it shows: ``set`` (the set) or ``drift`` (the pinned version against the
    #: archives now, with "Update set").
    action: str = "set"


class Notices:
    """Remembers what the user could see, to tell what is new."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._access: dict[str, str | None] = {rs.id: self._level(rs) for rs in service.sets.list()}

    def _level(self, rs: ReplicaSet) -> str:
        me = self._service.key_id
        if rs.owner == me:
            return "owner"
        return "editor" if me in rs.editors else "reader"

    def on_event(self, event: Event) -> Notice | None:
        try:
            return self._notice(event)
        except MediatorError:  # the set went away meanwhile: nothing to say
            return None

    def _notice(self, event: Event) -> Notice | None:
        service = self._service
        if isinstance(event, SetChanged):
            rs = service.sets.find(event.set_id)
            with self._lock:
                before = self._access.get(event.set_id)
                now = None if rs is None else self._level(rs)
                self._access[event.set_id] = now
            if rs is None or now is None or now == "owner" or before == now:
                return None
            owner = service.users().get(rs.owner, rs.owner[:12])
            if now == "editor":
                return Notice("Shared with you", f"{owner} made you an editor of {rs.name!r}", rs.id)
            if before is None:
                return Notice("Shared with you", f"{owner} shared {rs.name!r} ({rs.visibility.value})", rs.id)
            return None
        if isinstance(event, VersionCommitted):
            rs = service.sets.get(event.set_id)
            number = event.version
            with self._lock:
                self._access.setdefault(rs.id, self._level(rs))
            if service.key_id not in rs.followers:
                return None
            version = service.sets.version(rs.id, number)
            if version.author == service.key_id:
                return None
            summary = "first version"
            if number > 1:
                _, diff = service.sets.diff(rs.id, number - 1, number)
                summary = diff.summary(service.archives.hierarchies())
            return Notice(f"{rs.name}: version {number}", summary, rs.id)
        if isinstance(event, DriftRecorded):
            rs = service.sets.find(event.set_id)
            me = service.key_id
            if rs is None or rs.head != event.version or (me not in rs.followers and rs.owner != me):
                return None
            drift = service.tracking.status(rs.id).drift
            if drift is None or drift.version != event.version:
                return None
            state = f" ({drift.state})" if drift.state else ""
            return Notice(f"{rs.name}: the archive changed", f"{drift.summary}{state}", rs.id, action="drift")
        if isinstance(event, DownloadFinished):
            job = service.downloads.get(event.job)
            summary = job.report.summary() if job.report else "done"
            return Notice(f"Downloaded {job.set_name}", summary, job.set_id)
        if isinstance(event, DownloadFailed):
            job = service.downloads.get(event.job)
            return Notice(
                f"Download of {job.set_name} failed", job.error or "see the downloads panel", job.set_id, True
            )
        return None
