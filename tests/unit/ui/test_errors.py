"""The message bridge (what widgets and workers tell the user) and the crash hook's dialog for a
node that cannot start."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QThread, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from mediator_desktop.core.errors import ConflictError, NotFound
from mediator_desktop.core.locks import FileLock
from mediator_desktop.ui.errors import Level, Message, MessageBridge

pytestmark = pytest.mark.timeout(60)


def record(bridge: MessageBridge) -> list[Message]:
    shown: list[Message] = []
    bridge.shown.connect(shown.append)
    return shown


def test_messages_wait_until_the_window_is_up_then_come_as_they_are_told(qtbot: QtBot) -> None:
    bridge = MessageBridge()
    shown = record(bridge)
    bridge.error("the archive did not answer")
    bridge.info("committed version 2")
    assert shown == [] and [m.level for m in bridge.waiting] == [Level.ERROR, Level.INFO]
    bridge.flush()
    assert shown == [
        Message(Level.ERROR, "the archive did not answer"),
        Message(Level.INFO, "committed version 2"),
    ]
    assert bridge.waiting == ()
    bridge.error("and now at once")
    assert shown[-1] == Message(Level.ERROR, "and now at once")


def test_messages_from_a_worker_thread_arrive_on_the_gui_thread(qtbot: QtBot) -> None:
    bridge = MessageBridge()
    bridge.flush()
    threads: list[QThread] = []
    bridge.shown.connect(lambda _: threads.append(QThread.currentThread()))
    with qtbot.waitSignal(bridge.shown, timeout=5000) as blocker:
        worker = threading.Thread(target=bridge.error, args=("told on a worker",))
        worker.start()
        worker.join()
    assert blocker.args == [Message(Level.ERROR, "told on a worker")]
    assert threads == [QApplication.instance().thread()]  # type: ignore[union-attr]


def test_an_expected_failure_is_shown_and_a_bug_is_raised_again(qtbot: QtBot) -> None:
    bridge = MessageBridge()
    bridge.flush()
    shown = record(bridge)
    bridge.failed(NotFound("replica set x does not exist"), prefix="Not opened: ")
    assert shown == [Message(Level.ERROR, "Not opened: replica set x does not exist")]
    # A dialog shows it on its own line instead of the window's banner.
    line: list[str] = []
    bridge.handler(shown_in=line.append, prefix="Could not compare: ")(ConflictError("stale"))
    assert line == ["Could not compare: stale"] and len(shown) == 1
    with pytest.raises(ZeroDivisionError):
        bridge.failed(ZeroDivisionError("a bug"))
    with pytest.raises(KeyError):
        bridge.handler(shown_in=line.append)(KeyError("a bug too"))
    assert len(shown) == 1 and len(line) == 1


def close_the_dialog_when_it_shows(seen: list[str]) -> QTimer:
    """Reads and closes the modal dialog the app shows (it blocks in its own event loop)."""
    timer = QTimer()

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, QMessageBox) and dialog.isVisible():
            seen.append(f"{dialog.windowTitle()}\n{dialog.text()}")
            timer.stop()
            dialog.reject()

    timer.timeout.connect(look)
    timer.start(20)
    return timer


def test_a_node_that_cannot_start_shows_the_crash_dialog_with_the_log_path(
    qtbot: QtBot, mediator_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mediator_desktop.ui.app import run

    data = mediator_home / "data"
    data.mkdir(parents=True)
    log_path = tmp_path / "logs" / "app.log"
    seen: list[str] = []
    lock = FileLock(data / "node.lock")  # another node runs on this data folder
    try:
        timer = close_the_dialog_when_it_shows(seen)
        assert run(log_path, quit_after=20) == 1
        timer.stop()
    finally:
        lock.release()
    assert len(seen) == 1
    assert seen[0].startswith("MEDIator Desktop could not start\na node already runs on")
    assert str(log_path) in seen[0]
    assert "a node already runs" in capsys.readouterr().err


def test_a_settings_file_that_does_not_read_shows_the_dialog_too(
    qtbot: QtBot, mediator_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mediator_desktop.ui.app import log_file, run

    config = mediator_home / "config"
    config.mkdir(parents=True)
    (config / "settings.json").write_text(json.dumps({"download_layout": "{collection}/{nope"}))
    path = log_file()  # the default data folder's: the settings cannot say another
    assert path == mediator_home / "data" / "logs" / "app.log"
    seen: list[str] = []
    timer = close_the_dialog_when_it_shows(seen)
    assert run(path, quit_after=20) == 1
    timer.stop()
    assert len(seen) == 1 and "layout" in seen[0] and str(path) in seen[0]
    assert "could not start" in caplog.text
