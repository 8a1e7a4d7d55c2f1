from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow


@pytest.fixture
def node() -> Iterator[Node]:
    with Node() as started:
        yield started


def test_main_window_shows_the_node_and_follows_its_sets(
    qtbot: QtBot, node: Node, mediator_home: Path
) -> None:
    window = MainWindow(node)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == "MEDIator Desktop"
    assert str(mediator_home / "data") in window.status_label.text()
    assert "One-node cluster" in window.status_label.text()
    assert window.sets_list.item(0).text() == "No replica sets yet."
    # A change made elsewhere (here: this test's thread) reaches the list through the event bridge.
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        node.service.create_set("LIDC subset")
    qtbot.waitUntil(lambda: window.sets_list.item(0).text().startswith("LIDC subset"), timeout=5000)
    # The IDC index opens in a worker and the label follows.
    qtbot.waitUntil(lambda: "179 collections" in window.sources_label.text(), timeout=20000)
    window.close()
