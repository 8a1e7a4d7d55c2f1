"""The first start's question, "How should your lab see you?": prefilled, applied live on a worker,
a name another member has is refused in the dialog; asked only on a first, unscripted start."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.ui import app
from mediator_desktop.ui.errors import Level, Message, MessageBridge
from mediator_desktop.ui.welcome_dialog import WelcomeDialog
from tests.helpers.service import World, world
from tests.unit.ui.app_process import kill, log_of, start_app, stop, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path / "world") as w:
        yield w


@pytest.fixture
def messages() -> MessageBridge:
    bridge = MessageBridge()
    bridge.flush()
    return bridge


def test_ok_applies_the_name_at_once(qtbot: QtBot, lab: World, messages: MessageBridge) -> None:
    ann: Service = lab.service("ann")
    shown: list[Message] = []
    messages.shown.connect(shown.append)
    dialog = WelcomeDialog(ann, messages)
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.name.text() == "ann"
    dialog.name.setText("  Ann Lee (ws-3) ")
    with qtbot.waitSignal(dialog.accepted, timeout=10000):
        dialog.ok_button.click()
    assert ann.display_name == "Ann Lee (ws-3)"
    assert ann.users()[ann.key_id] == "Ann Lee (ws-3)"
    assert ann.settings.get().display_name == "Ann Lee (ws-3)"
    assert Settings.load(ann.settings.path).display_name == "Ann Lee (ws-3)"
    assert shown == [Message(Level.INFO, "Welcome, Ann Lee (ws-3)")]


def test_a_name_another_member_has_is_refused_in_the_dialog(
    qtbot: QtBot, lab: World, messages: MessageBridge
) -> None:
    lab.service("ann")
    bob = lab.service("bob")
    dialog = WelcomeDialog(bob, messages)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.name.setText("ANN")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: dialog.problem.text().startswith("Not changed: "), timeout=10000)
    assert "another member" in dialog.problem.text()
    assert dialog.isVisible() and dialog.ok_button.isEnabled() and dialog.name.text() == "ANN"
    assert bob.display_name == "bob"
    dialog.name.setText("")
    dialog.ok_button.click()
    assert dialog.problem.text().startswith("Type a name")
    assert dialog.isVisible()


def test_only_a_first_unscripted_start_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app.NO_WELCOME_ENV, raising=False)
    assert app.wants_welcome(first_start=True, quit_after=None)
    assert not app.wants_welcome(first_start=False, quit_after=None)
    assert not app.wants_welcome(first_start=True, quit_after=3.0)  # smoke tests
    monkeypatch.setenv(app.NO_WELCOME_ENV, "1")  # screenshots
    assert not app.wants_welcome(first_start=True, quit_after=None)


@pytest.mark.skipif(sys.platform == "win32", reason="stopped with SIGTERM")
def test_the_app_asks_on_its_first_start_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for first in (True, False):
        process = start_app(home, welcome=True)
        try:
            wait_for(
                lambda: "started; data in" in log_of(home).rpartition("node stopped")[2],
                process,
                "the window",
            )
            assert stop(process, signal.SIGTERM) and process.returncode == 0
        finally:
            kill(process)
        runs = log_of(home).split("node stopped")
        assert ("first start: asking for the name the lab sees" in runs[-2]) is first
