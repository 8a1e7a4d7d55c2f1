"""The seam between core and Qt: core events become queued Qt signals on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from PySide6.QtCore import QObject, Signal

from mediator_desktop.core.events import Event, EventBus

E = TypeVar("E", bound=Event)


class EventBridge(QObject):
    """Relays the typed events of a node (``core.events``) to the GUI thread.

    Signals: event_received(Event), always emitted on the thread the bridge lives on, so any slot
    may touch widgets. Choose events by type: ``bridge.subscribe(slot, SetEvent, StateReloaded)``.
    """

    event_received = Signal(object)
    _arrived = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The bus calls on the raft (or a download) thread; _arrived is queued to this object's.
        self._arrived.connect(self._deliver)
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self._arrived.emit)
        self.destroyed.connect(self.detach)

    def detach(self) -> None:
        """Stop relaying (the window closes; the node may stop)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def subscribe(self, slot: Callable[[E], None], *kinds: type[E]) -> None:
        """Call ``slot`` on the GUI thread with every event of the given types (all when none)."""
        chosen: tuple[type[Event], ...] = kinds or (Event,)

        def relay(event: object) -> None:
            if isinstance(event, chosen):
                slot(event)  # type: ignore[arg-type]  # an instance of one of slot's types

        self.event_received.connect(relay)

    def relay(self, event: Event) -> None:
        """Re-emit an event by hand (tests, replays)."""
        self.event_received.emit(event)

    def _deliver(self, event: Event) -> None:
        if self._unsubscribe is not None:  # queued before ``detach``: nobody listens any more
            self.event_received.emit(event)


class JobBridge(QObject):
    """Relays a job's outcome from a worker thread to the GUI thread. Signals: finished, failed."""

    finished = Signal(object)
    failed = Signal(object)

    def watch(self, future: Future[object]) -> None:
        future.add_done_callback(self._done)  # runs on the worker; emit is queued to the GUI thread

    def _done(self, future: Future[object]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.failed.emit(error)
        else:
            self.finished.emit(future.result())
