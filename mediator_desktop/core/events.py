"""Store and cluster events for any frontend, Qt-free.

Events carry increasing ids, so a listener can tell it missed some. Listeners are called on the
thread that emits (the raft thread for store changes): they must return quickly and never touch
widgets; the Qt bridge re-emits them as queued signals.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Kinds of events: set_changed, set_deleted, version_committed, manifest_committed, published,
#: drift_recorded, user_registered, member_joined, member_left, member_connected,
#: member_disconnected, leader_changed, peer_seen, peer_lost, cluster_joined, cluster_left.


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of events to listeners; thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def emit(self, kind: str, **details: Any) -> Event:
        with self._lock:
            event = Event(next(self._ids), kind, details)
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, kind)
        return event
