"""Long work, Qt-free: a control to pause, resume and cancel it, and progress with rate and ETA.

The engine's threads check the control cooperatively; the UI or CLI holds the same object. A
``child`` control follows its parent and can also be cancelled alone (one archive of a download).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class JobControl:
    """Pause, resume and cancel one job. Any thread may call any method."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._listeners: list[Callable[[], None]] = []

    def cancel(self) -> None:
        self._cancelled.set()
        self._running.set()  # wake whoever waits for a resume
        self._changed()

    def pause(self) -> None:
        if not self._cancelled.is_set():
            self._running.clear()
            self._changed()

    def resume(self) -> None:
        self._running.set()
        self._changed()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> bool:
        """Block while paused; True when the job may go on, False once cancelled."""
        self._running.wait()
        return not self._cancelled.is_set()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the caller's thread) after every pause, resume or cancel."""
        self._listeners.append(listener)

    def child(self) -> JobControl:
        """A control that follows this one (pause, resume, cancel) and can also be cancelled alone."""
        child = JobControl()
        lock = threading.Lock()

        def follow() -> None:
            with lock:  # reads and applies the parent's state in one step: the last caller wins
                if self.cancelled:
                    child.cancel()
                elif self.paused:
                    child.pause()
                else:
                    child.resume()

        self.on_change(follow)
        if self.cancelled or self.paused:
            follow()
        return child

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


@dataclass(frozen=True, slots=True)
class Progress:
    """One look at a running job. ``rate`` in bytes/s over the last seconds; ``eta`` in seconds."""

    bytes_done: int
    bytes_total: int
    items_done: int
    items_total: int
    failed: int
    rate: float
    eta: float | None
    paused: bool = False

    def line(self) -> str:
        """``12/40 series, 1.2 GB of 4.0 GB, 85 MB/s, 33 s left``"""
        parts = [f"{self.items_done}/{self.items_total} items"]
        if self.bytes_total:
            parts.append(f"{human_bytes(self.bytes_done)} of {human_bytes(self.bytes_total)}")
        parts.append(f"{human_bytes(int(self.rate))}/s")
        if self.paused:
            parts.append("paused")
        elif self.eta is not None:
            parts.append(f"{self.eta:.0f} s left")
        if self.failed:
            parts.append(f"{self.failed} failed")
        return ", ".join(parts)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class ProgressMeter:
    """Counts bytes and items from any thread; hands out ``Progress`` snapshots.

    Args:
        window: seconds over which the rate is measured.
    """

    def __init__(self, bytes_total: int, items_total: int, *, window: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.bytes_total = bytes_total
        self.items_total = items_total
        self._bytes = 0
        self._items = 0
        self._failed = 0
        self._window = window
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def item_done(self) -> None:
        with self._lock:
            self._items += 1

    def item_failed(self) -> None:
        with self._lock:
            self._failed += 1

    def snapshot(self, *, paused: bool = False) -> Progress:
        now = time.monotonic()
        with self._lock:
            done, items, failed = self._bytes, self._items, self._failed
            self._samples.append((now, done))
            while len(self._samples) > 2 and now - self._samples[1][0] > self._window:
                self._samples.popleft()
            first_t, first_b = self._samples[0]
        span = now - first_t
        rate = (done - first_b) / span if span > 0 else 0.0
        left = max(self.bytes_total - done, 0)
        eta = left / rate if rate > 0 and self.bytes_total else None
        return Progress(
            max(done, 0), self.bytes_total, items, self.items_total, failed, max(rate, 0.0), eta, paused
        )
