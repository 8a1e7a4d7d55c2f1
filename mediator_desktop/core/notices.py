"""What deserves a desktop notification, decided from core events (no Qt here).

- a set becomes visible or editable to you (shared with you);
- a set you follow gets a new version by someone else (with the diff's one-line summary);
- a download ends or fails.

``Notices.on_event`` may decode manifests (for a summary): call it off the GUI thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.events import Event
from mediator_desktop.core.replica import ReplicaSet
from mediator_desktop.core.service import Service


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    text: str
    set_id: str | None = None  # clicking the notification opens this set
    error: bool = False


class Notices:
    """Remembers what the user could see, to tell what is new."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._lock = threading.Lock()
        self._access: dict[str, str | None] = {rs.id: self._level(rs) for rs in service.list_sets()}

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
        kind, details = event.kind, event.details
        set_id = details.get("set_id")
        service = self._service
        if kind == "set_changed" and isinstance(set_id, str):
            rs = service.store.state.sets.get(set_id)
            with self._lock:
                before = self._access.get(set_id)
                now = None if rs is None or not rs.can_read(service.key_id) else self._level(rs)
                self._access[set_id] = now
            if rs is None or now is None or now == "owner" or before == now:
                return None
            owner = service.users().get(rs.owner, rs.owner[:12])
            if now == "editor":
                return Notice("Shared with you", f"{owner} made you an editor of {rs.name!r}", set_id)
            if before is None:
                return Notice(
                    "Shared with you", f"{owner} shared {rs.name!r} ({rs.visibility.value})", set_id
                )
            return None
        if kind == "version_committed" and isinstance(set_id, str):
            rs = service.get_set(set_id)
            number = details.get("version")
            with self._lock:
                self._access.setdefault(set_id, self._level(rs))
            if service.key_id not in rs.followers or not isinstance(number, int):
                return None
            version = service.version(set_id, number)
            if version.author == service.key_id:
                return None
            summary = "first version"
            if number > 1:
                _, diff = service.diff(set_id, number - 1, number)
                summary = diff.summary({sid: s.hierarchy for sid, s in service.sources.items()})
            return Notice(f"{rs.name}: version {number}", summary, set_id)
        if kind in ("download_finished", "download_failed"):
            job_id = details.get("job")
            if not isinstance(job_id, str):
                return None
            job = service.downloads.get(job_id)
            if kind == "download_finished":
                summary = job.report.summary() if job.report else "done"
                return Notice(f"Downloaded {job.set_name}", summary, job.set_id)
            return Notice(
                f"Download of {job.set_name} failed", job.error or "see the downloads panel", job.set_id, True
            )
        return None
