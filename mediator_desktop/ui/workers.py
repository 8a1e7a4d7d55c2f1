"""Runs blocking calls (archives, the store, manifests) on worker threads; results come back as
queued signals on the GUI thread, so slots run there and may touch widgets."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject

from mediator_desktop.ui.bridge import JobBridge


class Runner(QObject):
    """A small pool of worker threads owned by a widget. ``close`` waits for running calls."""

    def __init__(self, parent: QObject | None = None, workers: int = 4, name: str = "ui-jobs") -> None:
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._bridges: set[JobBridge] = set()
        self._closed = False

    def run(
        self,
        call: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Call ``call(*args, **kwargs)`` on a worker; then ``done(result)`` or ``failed(error)``
        on the GUI thread. Errors without a ``failed`` go to the uncaught-exception hook. After
        ``close`` (the widget is going away) calls are dropped: a result that arrives while a
        window closes may still ask for a follow-up, which nobody would see."""
        if self._closed:
            return
        bridge = JobBridge(self)
        self._bridges.add(bridge)

        def finished(result: object) -> None:
            self._bridges.discard(bridge)
            bridge.deleteLater()
            if done is not None:
                done(result)

        def errored(error: object) -> None:
            self._bridges.discard(bridge)
            bridge.deleteLater()
            assert isinstance(error, BaseException)
            if failed is None:
                raise error
            failed(error)

        bridge.finished.connect(finished)
        bridge.failed.connect(errored)
        bridge.watch(self._executor.submit(call, *args, **kwargs))

    def close(self, *, wait: bool = True) -> None:
        """Cancel the calls not started yet; wait for the running ones unless ``wait`` is False
        (a dialog closing during a network check: its result then arrives at the hidden dialog)."""
        self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)
