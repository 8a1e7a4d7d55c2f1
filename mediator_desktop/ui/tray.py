"""The system tray: an icon with a menu (open, pause all downloads, quit) and notifications when a
set is shared with you, a followed set gets a new version, or a download ends. Clicking a
notification opens its set.

The tray itself sits behind ``TrayWrapper`` (Qt's ``QSystemTrayIcon`` in the app), so the logic
is testable offscreen, where no tray exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QApplication, QMenu, QStyle, QSystemTrayIcon

from mediator_desktop.core.events import DownloadFailed, DownloadFinished, Event, SetChanged, VersionCommitted
from mediator_desktop.core.notices import Notice, Notices
from mediator_desktop.ui.workers import Runner

if TYPE_CHECKING:
    from mediator_desktop.ui.main_window import MainWindow

#: Events that may deserve a notification (``core.notices`` decides).
NOTICE_EVENTS: tuple[type[Event], ...] = (SetChanged, VersionCommitted, DownloadFinished, DownloadFailed)


class TrayWrapper(QObject):
    """What the controller needs of a tray. Signals: message_clicked(), activated()."""

    message_clicked = Signal()
    activated = Signal()

    def available(self) -> bool:
        raise NotImplementedError

    def set_menu(self, menu: QMenu) -> None:
        raise NotImplementedError

    def show_message(self, title: str, text: str, error: bool = False) -> None:
        raise NotImplementedError


class QtTray(TrayWrapper):
    """The real tray icon."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        style = QApplication.style()
        icon = style.standardIcon(QStyle.StandardPixmap.SP_DriveNetIcon) if style else QIcon()
        self.icon = QSystemTrayIcon(icon, self)
        self.icon.setToolTip("MEDIator Desktop")
        self.icon.messageClicked.connect(self.message_clicked)
        self.icon.activated.connect(lambda _reason: self.activated.emit())

    def available(self) -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def set_menu(self, menu: QMenu) -> None:
        self.icon.setContextMenu(menu)
        if self.available():
            self.icon.show()

    def show_message(self, title: str, text: str, error: bool = False) -> None:
        kind = QSystemTrayIcon.MessageIcon.Warning if error else QSystemTrayIcon.MessageIcon.Information
        self.icon.showMessage(title, text, kind, 10_000)


class TrayController(QObject):
    """Ties the tray to the window and the service's events. Signals: notified(Notice)."""

    notified = Signal(object)

    def __init__(self, window: MainWindow, tray: TrayWrapper) -> None:
        super().__init__(window)
        self.window = window
        self.tray = tray
        self.service = window.service
        self.notices = Notices(window.service)
        self.runner = Runner(self, workers=1, name="tray")
        self.last: Notice | None = None
        #: The "keeps running in the tray" hint is shown once per data folder, ever.
        self.hint_file = window.service.settings.data_dir / "ui-tray-hint-shown"
        self.menu = QMenu(window)
        self.open_action = QAction("Open MEDIator", self.menu)
        self.pause_action = QAction("Pause all downloads", self.menu)
        self.quit_action = QAction("Quit", self.menu)
        self.open_action.triggered.connect(self.show_window)
        self.pause_action.triggered.connect(self.pause_all)
        self.quit_action.triggered.connect(window.quit)
        for action in (self.open_action, self.pause_action, self.quit_action):
            self.menu.addAction(action)
        tray.set_menu(self.menu)
        tray.message_clicked.connect(self.open_last)
        tray.activated.connect(self.show_window)
        window.bridge.subscribe(self.on_event, *NOTICE_EVENTS)

    @property
    def available(self) -> bool:
        return self.tray.available()

    def on_event(self, event: Event) -> None:
        """Called on the GUI thread: whether it deserves a notice is worked out on a worker."""
        self.runner.run(self.notices.on_event, event, done=self._show)

    def _show(self, notice: Notice | None) -> None:
        if notice is None:
            return
        self.last = notice
        self.tray.show_message(notice.title, notice.text, notice.error)
        self.notified.emit(notice)

    def open_last(self) -> None:
        """The user clicked the latest notification: show its set."""
        self.show_window()
        if self.last is not None and self.last.set_id is not None:
            self.window.open_set(self.last.set_id)

    def show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def pause_all(self) -> None:
        downloads = self.service.downloads
        for job in downloads.list():
            if not job.finished:
                downloads.control(job.id, "pause")

    def window_closed(self) -> bool:
        """The window's close button: True when the app stays in the tray (and says so once)."""
        if not self.available:
            return False
        if not self.hint_file.exists():
            self.hint_file.touch()
            self.tray.show_message(
                "MEDIator keeps running",
                "Downloads and sharing go on. Quit from this icon's menu or File > Quit.",
            )
        return True

    def close(self) -> None:
        self.runner.close()
