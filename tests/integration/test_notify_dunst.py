"""Desktop notifications end to end with a real notification server: Debian's dunst on a private
D-Bus session bus under Xvfb. A core event (a colleague shares a set) becomes a notification dunst
shows, with its title, text and actions; invoking its default action (``dunstctl action``, as a
click does) opens the set in the window."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.notify import DesktopNotifier
from tests.helpers.notification_server import PrivateBus
from tests.helpers.proc import stop_process
from tests.unit.ui.conftest import node as node  # the window's node on the IDC world
from tests.unit.ui.conftest import tray as tray
from tests.unit.ui.trays import RecordingTray

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform != "linux", reason="freedesktop notifications"),
]


def free_display() -> int:
    return next(n for n in range(200, 300) if not Path(f"/tmp/.X11-unix/X{n}").exists())


@pytest.fixture
def dunst_bus() -> Iterator[tuple[PrivateBus, dict[str, str]]]:
    """A private session bus with dunst on it, drawing on an Xvfb display."""
    assert shutil.which("dunst") and shutil.which("Xvfb"), "make test installs dunst and xvfb"
    bus = PrivateBus().start()
    display = free_display()
    xvfb = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-displayfd", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    dunst = None
    try:
        assert xvfb.stdout is not None
        assert xvfb.stdout.readline().strip() == str(display)
        env = {**os.environ, "DISPLAY": f":{display}", "DBUS_SESSION_BUS_ADDRESS": bus.address}
        dunst = subprocess.Popen(["dunst"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield bus, env
    finally:
        stop_process(dunst)
        stop_process(xvfb)
        bus.stop()


def dunstctl(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["dunstctl", *args], env=env, capture_output=True, text=True, check=True).stdout


def test_dunst_shows_a_share_and_its_click_opens_the_set(
    qtbot: QtBot,
    node: Node,
    tray: RecordingTray,
    dunst_bus: tuple[PrivateBus, dict[str, str]],
) -> None:
    bus, env = dunst_bus
    notifier = DesktopNotifier(bus.address)
    # dunst takes its bus name once it runs: ask again until it answers.
    with qtbot.waitSignal(notifier.ready, timeout=10000) as ready:
        pass
    while ready.args != [True]:
        notifier.close()
        notifier = DesktopNotifier(bus.address)
        with qtbot.waitSignal(notifier.ready, timeout=10000) as ready:
            pass
    assert notifier.actions
    window = MainWindow(node.service, tray, notifier=notifier)
    notifier.setParent(window)
    qtbot.addWidget(window)
    try:
        assert window.tray is not None
        bob = Service(
            node.store,
            Identity.generate("bob"),
            sources={s.source_id: s for s in node.service.archives.all()},
        )
        bob.register()
        set_id = bob.sets.create("RIDER CT")
        with qtbot.waitSignal(notifier.shown, timeout=10000):
            bob.sets.grant_editor(set_id, node.service.key_id)
        assert dunstctl(env, "count", "displayed").strip() == "1"
        assert tray.messages == []
        with qtbot.waitSignal(window.tray.opened, timeout=10000) as opened:
            dunstctl(env, "action", "0")  # what a click on it does
        assert opened.args[1] == "default"
        assert window.set_view.set_id == set_id
        # What dunst showed: its history has the notification, with the app's name.
        dunstctl(env, "close-all")
        qtbot.waitUntil(lambda: dunstctl(env, "count", "history").strip() != "0", timeout=10000)
        shown = json.loads(dunstctl(env, "history"))["data"][0][0]
        assert shown["summary"]["data"] == "Shared with you"
        assert shown["body"]["data"] == "bob made you an editor of 'RIDER CT'"
        assert shown["appname"]["data"] == "MEDIator Desktop"
    finally:
        window.quit()
