"""Blocking calls on workers: the result or the failure comes back on the GUI thread; a failure
nobody handles goes to the uncaught-exception hook."""

from __future__ import annotations

import sys
import threading
from types import TracebackType

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from mediator_desktop.core.errors import NotFound
from mediator_desktop.ui.workers import Runner

pytestmark = pytest.mark.timeout(30)


def test_results_and_failures_come_back_on_the_gui_thread(qtbot: QtBot) -> None:
    runner = Runner(workers=2)
    try:
        seen: list[tuple[str, object, QThread]] = []
        workers: list[str] = []

        def work(x: int) -> int:
            workers.append(threading.current_thread().name)
            return x * 2

        def fail() -> None:
            raise NotFound("no such set")

        runner.run(work, 21, done=lambda r: seen.append(("done", r, QThread.currentThread())))
        runner.run(fail, failed=lambda e: seen.append(("failed", e, QThread.currentThread())))
        qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
        gui = QApplication.instance()
        assert gui is not None and all(thread is gui.thread() for *_, thread in seen)
        outcomes = {kind: value for kind, value, _ in seen}
        assert outcomes["done"] == 42
        assert isinstance(outcomes["failed"], NotFound)
        assert workers and workers[0].startswith("ui-jobs")
    finally:
        runner.close()


def test_a_failure_without_a_handler_reaches_the_exception_hook(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    caught: list[BaseException | None] = []

    def hook(kind: type[BaseException], error: BaseException | None, tb: TracebackType | None) -> None:
        caught.append(error)

    monkeypatch.setattr(sys, "excepthook", hook)
    runner = Runner()
    try:

        def bug() -> None:
            raise ZeroDivisionError("a bug in a worker")

        runner.run(bug)
        qtbot.waitUntil(lambda: bool(caught), timeout=5000)
        assert isinstance(caught[0], ZeroDivisionError)
    finally:
        runner.close()
