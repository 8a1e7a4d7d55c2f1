"""Notifications through the desktop's notification service (freedesktop Notifications over
D-Bus) with actions, on a private session bus with a notification server of the test's own: an
event in the core becomes a notification with its title, text and actions, and invoking an action
opens the set (chosen in the sidebar); without a service, the tray's balloon says it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.notices import Notice
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.notify import DesktopNotifier
from mediator_desktop.ui.tray import actions_for
from tests.helpers.notification_server import NotificationServer, PrivateBus
from tests.unit.ui.trays import RecordingTray

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon"),
]


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    started = PrivateBus().start()
    yield started
    started.stop()


@pytest.fixture
def server(bus: PrivateBus) -> Iterator[NotificationServer]:
    started = NotificationServer(bus.address).start()
    yield started
    started.stop()


def notifying_window(qtbot: QtBot, node: Node, tray: RecordingTray, address: str) -> MainWindow:
    notifier = DesktopNotifier(address)
    with qtbot.waitSignal(notifier.ready, timeout=10000):
        pass
    window = MainWindow(node.service, tray, notifier=notifier)
    notifier.setParent(window)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def bob_of(node: Node) -> Service:
    bob = Service(
        node.store, Identity.generate("bob"), sources={s.source_id: s for s in node.service.archives.all()}
    )
    bob.register()
    return bob


def test_a_share_notifies_the_desktop_with_actions_and_open_shows_the_set(
    qtbot: QtBot, node: Node, tray: RecordingTray, server: NotificationServer, bus: PrivateBus
) -> None:
    window = notifying_window(qtbot, node, tray, bus.address)
    try:
        assert window.tray is not None and window.tray.notifier is not None
        assert window.tray.notifier.available and window.tray.notifier.actions
        bob = bob_of(node)
        set_id = bob.sets.create("RIDER CT")
        with qtbot.waitSignal(window.tray.notified, timeout=10000):
            bob.sets.grant_editor(set_id, node.service.key_id)
        qtbot.waitUntil(lambda: bool(server.received), timeout=10000)  # the loop runs meanwhile
        note = server.received[0]
        assert note["title"] == "Shared with you"
        assert note["body"] == "bob made you an editor of 'RIDER CT'"
        assert note["app"] == "MEDIator Desktop"
        assert note["actions"] == [["default", "Open"], ["open", "Open"]]
        assert tray.messages == []  # no balloon besides
        window.hide()
        with qtbot.waitSignal(window.tray.opened, timeout=10000) as opened:
            server.invoke(int(str(note["id"])), "open")
        assert opened.args[1] == "open"
        assert window.isVisible() and window.set_view.set_id == set_id
        current = window.sidebar.currentItem()
        assert current is not None and current.text(0).startswith("RIDER CT")
    finally:
        window.quit()


def test_an_archive_update_offers_update_set_and_download_changes() -> None:
    drift = Notice("RIDER CT: the archive changed", "+3 series", "set-1", action="drift")
    assert [(a.key, a.label) for a in actions_for(drift)] == [
        ("default", "Open"),
        ("open", "Open"),
        ("update", "Update set"),
        ("download", "Download changes"),
    ]
    assert actions_for(Notice("MEDIator keeps running", "")) == []


def test_without_a_notification_service_the_tray_balloon_says_it(
    qtbot: QtBot, node: Node, tray: RecordingTray, bus: PrivateBus
) -> None:
    notifier = DesktopNotifier(bus.address)
    with qtbot.waitSignal(notifier.ready, timeout=10000) as ready:
        pass
    assert ready.args == [False]
    window = MainWindow(node.service, tray, notifier=notifier)
    notifier.setParent(window)
    qtbot.addWidget(window)
    try:
        assert window.tray is not None
        bob = bob_of(node)
        set_id = bob.sets.create("Bob's lungs")
        with qtbot.waitSignal(window.tray.notified, timeout=10000):
            bob.sets.grant_editor(set_id, node.service.key_id)
        assert tray.messages == [("Shared with you", 'bob made you an editor of "Bob\'s lungs"', False)]
        tray.message_clicked.emit()
        assert window.set_view.set_id == set_id
    finally:
        window.quit()
