"""Every event a node emits, as frozen dataclasses, and the bus that fans them out (Qt-free).

Events carry increasing sequence numbers (``seq``, given by the bus), so a listener can tell it
missed some. Listeners choose events by type, a group (``SetEvent``, ``DownloadEvent``,
``ClusterEvent``) or one kind. They are called on the thread that emits (the raft thread for store
changes): they must return quickly and never touch widgets; the Qt bridge re-emits them as queued
signals.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar, cast

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``seq`` is set by the bus that emits it."""

    seq: int = 0


# -- the replica sets (emitted on every node as a command is applied) ------------------------------
@dataclass(frozen=True, slots=True)
class SetEvent(Event):
    """Something about one replica set changed."""

    set_id: str


@dataclass(frozen=True, slots=True)
class SetChanged(SetEvent):
    """A set was created or its name, visibility, editors or followers changed."""


@dataclass(frozen=True, slots=True)
class SetDeleted(SetEvent):
    pass


@dataclass(frozen=True, slots=True)
class VersionCommitted(SetEvent):
    version: int


@dataclass(frozen=True, slots=True)
class Published(SetEvent):
    version: int


@dataclass(frozen=True, slots=True)
class DriftRecorded(SetEvent):
    version: int


@dataclass(frozen=True, slots=True)
class CheckRecorded(SetEvent):
    """An update check of a set failed, worked again after failing, or an update was declined."""

    version: int


@dataclass(frozen=True, slots=True)
class StateReloaded(Event):
    """The whole replica was replaced (from a leader's snapshot): read everything again."""


@dataclass(frozen=True, slots=True)
class ManifestCommitted(Event):
    manifest_id: str


@dataclass(frozen=True, slots=True)
class TableAdded(Event):
    """A clinical table got a new version (``number`` 1: a new table)."""

    name: str
    number: int


@dataclass(frozen=True, slots=True)
class UserRegistered(Event):
    """A user joined the cluster, or changed their display name."""

    key_id: str


# -- downloads (emitted on the node that runs them) ---------------------------------------------
@dataclass(frozen=True, slots=True)
class DownloadEvent(Event):
    """Something about one download job changed; read the job for its state."""

    job: str
    set_id: str


@dataclass(frozen=True, slots=True)
class DownloadStarted(DownloadEvent):
    pass


@dataclass(frozen=True, slots=True)
class DownloadProgressed(DownloadEvent):
    pass


@dataclass(frozen=True, slots=True)
class DownloadFinished(DownloadEvent):
    """Every leaf arrived."""


@dataclass(frozen=True, slots=True)
class DownloadFailed(DownloadEvent):
    """The job stopped, or ended with leaves that did not arrive."""

    message: str = ""


@dataclass(frozen=True, slots=True)
class DownloadCancelled(DownloadEvent):
    pass


# -- the cluster ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClusterEvent(Event):
    """Members, the leader, the machines seen, or this node's cluster changed."""


@dataclass(frozen=True, slots=True)
class MemberJoined(ClusterEvent):
    address: str


@dataclass(frozen=True, slots=True)
class MemberLeft(ClusterEvent):
    address: str
    #: For this node leaving: whether the cluster confirmed the removal (None: another member).
    confirmed: bool | None = None


@dataclass(frozen=True, slots=True)
class MemberConnected(ClusterEvent):
    address: str


@dataclass(frozen=True, slots=True)
class MemberDisconnected(ClusterEvent):
    address: str


@dataclass(frozen=True, slots=True)
class LeaderChanged(ClusterEvent):
    leader: str | None


@dataclass(frozen=True, slots=True)
class PeerSeen(ClusterEvent):
    node_id: str
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class PeerLost(ClusterEvent):
    node_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ClusterJoined(ClusterEvent):
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterLeft(ClusterEvent):
    pass


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SettingsChanged(Event):
    """Settings were saved; ``restart`` names the changed fields that apply after a restart."""

    changed: tuple[str, ...]
    restart: tuple[str, ...] = ()


# -- archives ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SourceEvent(Event):
    source_id: str


@dataclass(frozen=True, slots=True)
class SourcesChanged(Event):
    """Archives were added or removed (``service.archives.ids()`` lists them now)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceIndexing(SourceEvent):
    """A source indexing what it holds (a local folder): ``done`` of ``total`` files so far;
    ``finished`` once with the summary (or the error)."""

    done: int
    total: int | None
    finished: bool = False
    summary: str = ""
    error: str | None = None
    changed: bool = False  # finished, and files were added, changed or removed

    def line(self) -> str:
        if self.error:
            return f"{self.source_id}: indexing failed: {self.error}"
        if self.finished:
            return f"{self.source_id}: {self.summary}"
        total = f"{self.total:,}" if self.total is not None else "the"
        return f"{self.source_id}: indexing {total} files... ({self.done:,} done)"


E = TypeVar("E", bound=Event)
Listener = Callable[[E], None]


class EventBus:
    """Fan-out of events to listeners; thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[tuple[tuple[type[Event], ...], Callable[[Event], None]]] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[E], None], *kinds: type[E]) -> Callable[[], None]:
        """Call ``listener`` with every event of the given types (all events when none is given);
        returns the function that removes it."""
        chosen: tuple[type[Event], ...] = kinds or (Event,)
        # Called only with events of the types it chose.
        entry = (chosen, cast(Callable[[Event], None], listener))
        with self._lock:
            self._listeners = [*self._listeners, entry]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not entry]

        return unsubscribe

    def emit(self, event: E) -> E:
        """Number ``event`` and hand it to every listener that chose its type; returns it numbered."""
        with self._lock:
            event = replace(event, seq=next(self._seq))
            listeners = self._listeners
        for kinds, listener in listeners:
            if not isinstance(event, kinds):
                continue
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, type(event).__name__)
        return event
