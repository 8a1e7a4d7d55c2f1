"""The main window as the UI tests show it."""

from __future__ import annotations

from collections.abc import Iterator

from pytestqt.qtbot import QtBot

from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow


def shown_window(qtbot: QtBot, node: Node) -> Iterator[MainWindow]:
    """The main window over ``node``, shown, closed after the test."""
    window = MainWindow(node.service)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()
