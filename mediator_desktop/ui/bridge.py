"""The seam between core and Qt: core events become queued Qt signals on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import QObject, Signal

from mediator_desktop.core.events import Event, EventBus


class EventBridge(QObject):
    """Relays core events to the GUI thread. Signals: event_received(Event)."""

    event_received = Signal(object)

    def __init__(self, bus: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # emit() is called on the raft thread; Qt queues the delivery to this object's thread.
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self.event_received.emit)
        self.destroyed.connect(self.detach)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def relay(self, event: Event) -> None:
        """Re-emit an event by hand (tests, replays)."""
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
