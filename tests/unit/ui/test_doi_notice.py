"""The "DOI minted" notice in the window (offscreen, a real node minting with the DataCite
emulator): the tray shows it with its text, and a click on it opens the set, chosen in the sidebar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.notices import Notice
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.unit.core.test_notices_doi import LANDING, PASSWORD, doi_node, metadata
from tests.unit.ui.trays import RecordingTray

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def datacite() -> Iterator[DataCiteEmulator]:
    with DataCiteEmulator(password=PASSWORD) as emulator:
        yield emulator


@pytest.fixture
def node(tmp_path: Path, datacite: DataCiteEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    yield from doi_node(tmp_path / "nodes", datacite, monkeypatch)


def test_a_minted_doi_notifies_and_a_click_opens_the_set(qtbot: QtBot, node: Node) -> None:
    service = node.service
    set_id = service.sets.create_from("RIDER CT", add=[Pointer.of("lab", "P1")]).set_id
    other = service.sets.create_from("Other", add=[Pointer.of("lab", "P1")]).set_id
    tray = RecordingTray()
    window = MainWindow(service, tray)
    qtbot.addWidget(window)
    try:
        controller = window.tray
        assert controller is not None
        window.show()
        with qtbot.waitSignal(window.set_view.resolved, timeout=30000):
            window.open_set(other)
        minted: list[Notice] = []

        def is_minted(notice: object) -> bool:
            if isinstance(notice, Notice) and notice.title.endswith("DOI minted"):
                minted.append(notice)
            return bool(minted)

        with qtbot.waitSignal(controller.notified, timeout=60000, check_params_cb=is_minted):
            service.publishing.publish(set_id, 1, metadata(), landing_url=LANDING)
        doi = service.publishing.get(set_id, 1).doi
        assert doi is not None
        text = f"version 1 is citable as https://doi.org/{doi}"
        assert minted == [Notice("RIDER CT: DOI minted", text, set_id)]
        assert tray.messages[-1] == ("RIDER CT: DOI minted", text, False)
        window.hide()
        # The user clicks the balloon; the set's tree is loaded before the window quits.
        with qtbot.waitSignals([controller.opened, window.set_view.resolved], timeout=30000):
            tray.message_clicked.emit()
        assert window.isVisible() and window.set_view.set_id == set_id
        current = window.sidebar.currentItem()
        assert current is not None and current.text(0).startswith("RIDER CT")
    finally:
        window.quit()
