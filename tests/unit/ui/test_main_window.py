from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow


def test_main_window_shows_the_node(qtbot: QtBot, mediator_home: Path) -> None:
    with Node() as node:
        window = MainWindow(node)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        assert window.windowTitle() == "MEDIator Desktop"
        assert str(mediator_home / "data") in window.status_label.text()
        assert (mediator_home / "data").is_dir()
