"""A recording stand-in for the system tray (Qt's real one needs a tray host), for offscreen tests."""

from __future__ import annotations

from PySide6.QtWidgets import QMenu

from mediator_desktop.ui.tray import TrayWrapper


class RecordingTray(TrayWrapper):
    """Stands in for QSystemTrayIcon: remembers what it was asked to show."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, str, bool]] = []
        self.menu: QMenu | None = None

    def available(self) -> bool:
        return True

    def set_menu(self, menu: QMenu) -> None:
        self.menu = menu

    def show_message(self, title: str, text: str, error: bool = False) -> None:
        self.messages.append((title, text, error))
