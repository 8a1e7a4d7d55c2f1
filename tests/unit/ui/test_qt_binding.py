"""The Qt binding must not leak or drop references on the paths the app uses all the time (signals
from worker threads, model data): on Python 3.11, True, False and None are counted objects, and a
binding that drops references to them aborts the app after a while (PySide6 6.12.0 did)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(object)
    ticked = Signal()


def test_emitting_signals_keeps_the_reference_counts_of_singletons() -> None:
    emitter = _Emitter()
    seen: list[object] = []
    emitter.changed.connect(seen.append)
    emitter.ticked.connect(lambda: None)
    before = [sys.getrefcount(x) for x in (None, True, False)]
    for i in range(20_000):
        emitter.changed.emit(i % 2 == 0)
        emitter.ticked.emit()
    seen.clear()
    after = [sys.getrefcount(x) for x in (None, True, False)]
    # 40,000 emits: a binding that drops one reference per emit is off by that much; other
    # threads of the test process may move the counts by a little.
    assert all(abs(a - b) < 1000 for a, b in zip(after, before, strict=True)), (before, after)
