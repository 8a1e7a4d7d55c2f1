"""Start at login (issue 23): the settings dialog's checkbox writes the desktop's autostart entry,
which starts the app minimised to the tray, and removes it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox
from pytestqt.qtbot import QtBot

from mediator_desktop.node import Node
from mediator_desktop.ui import autostart
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.windows import shown_window

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(qtbot: QtBot, node: Node) -> Iterator[MainWindow]:
    yield from shown_window(qtbot, node)


def test_the_settings_checkbox_writes_and_removes_the_autostart_entry(
    window: MainWindow, qtbot: QtBot, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entry = tmp_path / "config" / "autostart" / "mediator-desktop.desktop"
    assert autostart.entry_path() == entry and not node.service.settings.get().start_at_login
    for wanted in (True, False):
        dialog = window.show_settings()
        box = dialog.editors["start_at_login"]
        assert isinstance(box, QCheckBox) and box.isChecked() is not wanted
        box.setChecked(wanted)
        dialog.save()
        qtbot.waitUntil(lambda wanted=wanted: entry.is_file() is wanted, timeout=10000)
        assert node.service.settings.get().start_at_login is wanted
        if wanted:
            text = entry.read_text(encoding="utf-8")
            assert "[Desktop Entry]" in text and "Type=Application" in text
            assert f"Exec=env {autostart.MINIMISED_ENV}=1 " in text
        qtbot.waitUntil(lambda dialog=dialog: not dialog.isVisible(), timeout=10000)
