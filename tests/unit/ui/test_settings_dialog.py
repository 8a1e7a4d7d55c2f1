"""The settings dialog over the service's settings part (no node): the form is built from the
fields, only what the form changed is saved, a bad value is refused at once and nothing is saved,
and the dialog tells which changes wait for a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QLineEdit, QSpinBox
from pytestqt.qtbot import QtBot

from mediator_desktop.core.events import Event, EventBus, SettingsChanged
from mediator_desktop.core.keystore import source_secret
from mediator_desktop.core.service import SettingsPart
from mediator_desktop.core.settings import Settings, SettingsFile
from mediator_desktop.ui.errors import Level, Message, MessageBridge
from mediator_desktop.ui.settings_dialog import SettingsDialog, SourcesEditor

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def part(tmp_path: Path, bus: EventBus) -> SettingsPart:
    settings = Settings(data_dir=tmp_path / "data", download_dir=tmp_path / "downloads", display_name="ann")
    return SettingsPart(SettingsFile(settings, tmp_path / "settings.json"), bus, lambda _: None)


@pytest.fixture
def messages() -> MessageBridge:
    bridge = MessageBridge()
    bridge.flush()
    return bridge


def test_the_form_has_every_field_and_says_which_wait_for_a_restart(
    qtbot: QtBot, part: SettingsPart, messages: MessageBridge
) -> None:
    dialog = SettingsDialog(part, messages)
    qtbot.addWidget(dialog)
    assert list(dialog.editors) == [f.name for f in part.fields()]
    assert dialog.editors["data_dir"].toolTip().endswith("(applies after a restart)")
    assert not dialog.editors["download_layout"].toolTip().endswith("(applies after a restart)")
    assert dialog.changes() == {}


def test_a_bad_value_is_refused_at_once_and_nothing_is_saved(
    qtbot: QtBot, part: SettingsPart, messages: MessageBridge, tmp_path: Path
) -> None:
    dialog = SettingsDialog(part, messages)
    qtbot.addWidget(dialog)
    layout = dialog.editors["download_layout"]
    assert isinstance(layout, QLineEdit)
    layout.setText("{collection}/{nope")
    dialog.save()
    assert dialog.problem.text().startswith("Not saved: layout")
    assert dialog.change is None and not (tmp_path / "settings.json").exists()
    assert dialog.save_button.isEnabled()


def test_only_what_changed_is_saved_and_the_restart_fields_are_named(
    qtbot: QtBot, part: SettingsPart, messages: MessageBridge, tmp_path: Path, bus: EventBus
) -> None:
    events: list[Event] = []
    bus.subscribe(events.append)
    dialog = SettingsDialog(part, messages)
    qtbot.addWidget(dialog)
    interval = dialog.editors["update_check_minutes"]
    peers = dialog.editors["peers"]
    discovery = dialog.editors["discovery"]
    assert (
        isinstance(interval, QSpinBox) and isinstance(peers, QLineEdit) and isinstance(discovery, QCheckBox)
    )
    interval.setValue(45)
    peers.setText(" 10.0.0.2:7000 , 10.0.0.3:7000,")
    assert dialog.changes() == {"update_check_minutes": 45, "peers": ("10.0.0.2:7000", "10.0.0.3:7000")}
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.save()
    assert dialog.change is not None
    assert dialog.change.changed == ("peers", "update_check_minutes")
    assert dialog.change.restart == ("peers",)
    saved = Settings.load(tmp_path / "settings.json")
    assert (saved.update_check_minutes, saved.peers) == (45, ("10.0.0.2:7000", "10.0.0.3:7000"))
    assert events == [SettingsChanged(("peers", "update_check_minutes"), ("peers",), seq=1)]


def test_an_archive_secret_goes_to_the_keystore_and_the_user_is_told(
    qtbot: QtBot, part: SettingsPart, messages: MessageBridge, tmp_path: Path
) -> None:
    shown: list[Message] = []
    messages.shown.connect(shown.append)
    dialog = SettingsDialog(part, messages)
    qtbot.addWidget(dialog)
    sources = dialog.editors["sources"]
    assert isinstance(sources, SourcesEditor)
    sources.store_secret("idc", "s3cr3t")
    assert source_secret(tmp_path / "data", "idc") == "s3cr3t"
    assert shown == [Message(Level.INFO, "The password or token of idc is stored, outside the settings")]
    sources.store_secret("idc", "")  # refused by the service: said, not stored
    assert shown[-1].level is Level.ERROR and "not stored" in shown[-1].text
    assert source_secret(tmp_path / "data", "idc") == "s3cr3t"
