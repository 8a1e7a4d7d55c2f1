"""The tray logic offscreen, through a recording stand-in for the system tray (Qt's real one needs
a tray host: see test_tray_xvfb.py): notifications for sharing, followed sets and downloads, a click
that opens the set, the menu, and a window that closes into the tray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.idc_world import IdcWorld
from tests.helpers.windows import shown_window
from tests.unit.ui.trays import RecordingTray

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(qtbot: QtBot, node: Node, tray: RecordingTray) -> Iterator[MainWindow]:
    yield from shown_window(qtbot, node, tray)


def test_sharing_and_a_followed_set_notify_and_a_click_opens_the_set(
    window: MainWindow, qtbot: QtBot, node: Node, tray: RecordingTray
) -> None:
    assert window.tray is not None
    bob = Service(
        node.store, Identity.generate("bob"), sources={s.source_id: s for s in node.service.archives.all()}
    )
    bob.register()
    set_id = bob.sets.create("Bob's lungs")
    with qtbot.waitSignal(window.tray.notified, timeout=10000) as shared:
        bob.sets.grant_editor(set_id, node.service.key_id)
    assert shared.args[0].text == 'bob made you an editor of "Bob\'s lungs"'
    bob.sets.set_visibility(set_id, Visibility.CLUSTER)
    node.service.sets.follow(set_id)
    first = Selection.of(Pointer.of("idc", "lung_a"))
    with qtbot.waitSignal(window.tray.notified, timeout=10000) as followed:
        bob.sets.commit(set_id, first, bob.archives.resolve(first), "v1")
    assert followed.args[0].title == "Bob's lungs: version 1"
    second = first.add(Pointer.of("idc", "lung_b"))
    with qtbot.waitSignal(window.tray.notified, timeout=10000) as followed:
        bob.sets.commit(set_id, second, bob.archives.resolve(second), "v2")
    assert followed.args[0].text.startswith("+2 series")
    # My own commits say nothing.
    mine = node.service.sets.create("mine")
    node.service.sets.commit(mine, first, node.service.archives.resolve(first), "quiet")
    assert [m[0] for m in tray.messages] == [
        "Shared with you",
        "Bob's lungs: version 1",
        "Bob's lungs: version 2",
    ]
    # Clicking the notification brings the window back with that set open.
    window.hide()
    tray.message_clicked.emit()
    assert window.isVisible() and window.set_view.set_id == set_id


def test_downloads_notify_and_the_menu_pauses_them_all(
    window: MainWindow, qtbot: QtBot, node: Node, tray: RecordingTray, world: IdcWorld, tmp_path: Path
) -> None:
    assert window.tray is not None and tray.menu is not None
    # "N sets have updates" shows only when there are some (see test_updates.py).
    assert [a.text() for a in tray.menu.actions() if a.isVisible()] == [
        "Open MEDIator",
        "Check for updates",
        "Pause all downloads",
        "Quit",
    ]
    service = node.service
    set_id = service.sets.create("Tray download")
    selection = Selection.of(Pointer.of("idc", "lung_b"))
    service.sets.commit(set_id, selection, service.archives.resolve(selection), "v1")
    world.proxy.gate.clear()
    try:
        job = service.downloads.start(DownloadRequest(set_id, tmp_path / "out"))
        window.tray.pause_action.trigger()
        assert job.control.paused
        job.control.resume()
    finally:
        world.proxy.gate.set()
    with qtbot.waitSignal(window.tray.notified, timeout=30000) as done:
        pass
    assert done.args[0].title == "Downloaded Tray download" and "2 fetched" in done.args[0].text


def test_closing_the_window_keeps_the_app_in_the_tray_with_a_hint_once(
    window: MainWindow, tray: RecordingTray, node: Node
) -> None:
    window.close()
    assert not window.isVisible()
    assert tray.messages[-1][0] == "MEDIator keeps running"
    window.show()
    window.close()
    assert [m[0] for m in tray.messages].count("MEDIator keeps running") == 1
    assert (node.data_dir / "ui-tray-hint-shown").exists()
