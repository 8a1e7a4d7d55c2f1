"""The main window as the UI tests show it."""

from __future__ import annotations

from collections.abc import Iterator

from pytestqt.qtbot import QtBot

from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.tray import TrayWrapper


def shown_window(qtbot: QtBot, node: Node, tray: TrayWrapper | None = None) -> Iterator[MainWindow]:
    """The main window over ``node``, shown, closed after the test; with ``tray``, in the tray
    (closing then hides it, so it quits)."""
    window = MainWindow(node.service) if tray is None else MainWindow(node.service, tray)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    if tray is None:
        window.close()
    else:
        window.quit()
