"""What deserves a desktop notification, decided from core events (no Qt here).

- a set becomes visible or editable to you (shared with you);
- a set you follow gets a new version by someone else (with the diff's one-line summary);
- an update check found that the archives behind a set you follow or own changed;
- a download ends or fails;
- a version you published got its DOI ("DOI minted"), or minting it failed and needs you
  ("minting failed: reason"; the set's view offers Retry). Retries the queue makes on its own say
  nothing.

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
    Published,
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
        sets = service.sets.list()
        self._access: dict[str, str | None] = {rs.id: self._level(rs) for rs in sets}
        #: The DOI state (``PublishedRecord.doi_state``) of each version you published, as last seen.
        self._dois: dict[tuple[str, int], str] = {}
        for rs in sets:
            for number in rs.published:
                record = service.publishing.get(rs.id, number)
                if record.publisher_key == service.key_id:
                    self._dois[(rs.id, number)] = record.doi_state

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
        if isinstance(event, Published):
            return self._publication(event)
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

    def _publication(self, event: Published) -> Notice | None:
        """A version you published changed DOI state: to findable ("DOI minted"), or to failed
        (the queue stopped trying: wrong credentials, metadata the service refuses)."""
        service = self._service
        record = service.publishing.get(event.set_id, event.version)
        if record.publisher_key != service.key_id:
            return None
        key = (event.set_id, event.version)
        with self._lock:
            before = self._dois.get(key)
            self._dois[key] = record.doi_state
        if record.doi_state == before:
            return None
        rs = service.sets.get(event.set_id)
        if record.doi_state == "findable" and record.doi:
            return Notice(
                f"{rs.name}: DOI minted",
                f"version {record.version} is citable as https://doi.org/{record.doi}",
                rs.id,
            )
        if record.doi_state == "failed":
            reason = record.error or "the DOI service gave no reason"
            return Notice(
                f"{rs.name}: no DOI yet",
                f"version {record.version}: minting failed: {reason}; Retry is in the set's view",
                rs.id,
                error=True,
            )
        return None
