"""The system tray: an icon with a menu (open, check for updates, "N sets have updates", pause all
downloads, quit) and notifications when a set is shared with you, a followed set gets a new
version, the archives behind a set you follow or own changed, or a download ends. Clicking a
notification opens its set, or for an archive update its update view. At start, one notification
says which sets have updates you have not declined (found while the app was not running).

Notifications go to the desktop's notification service (``ui/notify.py``: freedesktop
Notifications over D-Bus) with actions: "Open", and for an archive update "Update set" and
"Download changes"; where no service answers, to the tray's balloon (a click opens the set).

The tray itself sits behind ``TrayWrapper`` (Qt's ``QSystemTrayIcon`` in the app), so the logic
is testable offscreen, where no tray exists. The menu lists the sets with updates and the
running downloads with their progress.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QApplication, QMenu, QStyle, QSystemTrayIcon

from mediator_desktop.core.downloads import DownloadJob
from mediator_desktop.core.errors import ClusterUnavailable
from mediator_desktop.core.events import (
    CheckRecorded,
    DownloadEvent,
    DownloadFailed,
    DownloadFinished,
    DriftRecorded,
    Event,
    Published,
    SetChanged,
    StateReloaded,
    VersionCommitted,
)
from mediator_desktop.core.notices import Notice, Notices
from mediator_desktop.core.replica import ReplicaSet
from mediator_desktop.core.state import DriftRecord
from mediator_desktop.ui.notify import DEFAULT, Action, DesktopNotifier
from mediator_desktop.ui.update_view import UpdateDialog
from mediator_desktop.ui.workers import Runner

if TYPE_CHECKING:
    from mediator_desktop.ui.main_window import MainWindow

log = logging.getLogger(__name__)

#: Events that may deserve a notification (``core.notices`` decides).
NOTICE_EVENTS: tuple[type[Event], ...] = (
    SetChanged,
    VersionCommitted,
    DriftRecorded,
    DownloadFinished,
    DownloadFailed,
    Published,  # a DOI minted for a version of yours, or minting failed
)
#: Events that may change which sets have updates (the menu's "N sets have updates").
UPDATE_EVENTS: tuple[type[Event], ...] = (
    DriftRecorded,
    CheckRecorded,
    VersionCommitted,
    SetChanged,
    StateReloaded,
)
#: How long after the start the notice about waiting updates comes (the tray icon is placed first).
ANNOUNCE_AFTER_MS = 1500
#: ``Notice.action`` of the start's notice about several sets: clicking it lists them.
UPDATES_ACTION = "updates"
#: Keys of a notification's actions (besides ``DEFAULT``, a click on its body).
OPEN, UPDATE, DOWNLOAD = "open", "update", "download"
#: Running downloads the tray menu lists (the rest: "and N more").
MENU_DOWNLOADS = 5


def actions_for(notice: Notice) -> list[Action]:
    """The buttons of a notice's notification: an archive update can be taken from there."""
    if notice.set_id is None and notice.action != UPDATES_ACTION:
        return []
    actions = [Action(DEFAULT, "Open"), Action(OPEN, "Open")]
    if notice.action == "drift":
        actions += [Action(UPDATE, "Update set"), Action(DOWNLOAD, "Download changes")]
    return actions


def updates_notice(updates: list[tuple[ReplicaSet, DriftRecord]]) -> Notice | None:
    """The start's notice: the sets you follow or own with updates you have not declined."""
    if not updates:
        return None
    if len(updates) == 1:
        rs, drift = updates[0]
        state = f" ({drift.state})" if drift.state else ""
        return Notice(f"{rs.name}: the archive changed", f"{drift.summary}{state}", rs.id, action="drift")
    shown = "; ".join(f"{rs.name}: {drift.summary}" for rs, drift in updates[:3])
    more = f"; and {len(updates) - 3} more" if len(updates) > 3 else ""
    return Notice(
        f"{len(updates)} followed sets have archive updates", f"{shown}{more}", action=UPDATES_ACTION
    )


def download_line(job: DownloadJob) -> str:
    """A running download in the menu: ``42% · 120/300 series`` (or paused, or starting)."""
    progress = job.progress
    if progress is None:
        return "starting"
    share = progress.bytes_done / progress.bytes_total if progress.bytes_total else 0.0
    paused = " · paused" if progress.paused or job.state == "paused" else ""
    return f"{share:.0%} · {progress.items_done:,}/{progress.items_total:,} files{paused}"


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
    """Ties the tray to the window and the service's events. Signals: notified(Notice);
    opened(Notice, str): a notification's action (its key) was carried out.

    Args:
        notifier: the desktop's notification service; None (or one that is not there): the tray's
            balloons.
    """

    notified = Signal(object)
    opened = Signal(object, str)

    def __init__(
        self, window: MainWindow, tray: TrayWrapper, notifier: DesktopNotifier | None = None
    ) -> None:
        super().__init__(window)
        self.window = window
        self.tray = tray
        self.notifier = notifier
        if notifier is not None:
            notifier.action_invoked.connect(self.open_notice)
        self.service = window.service
        self.notices = Notices(window.service)
        self.runner = Runner(self, workers=1, name="tray")
        self.last: Notice | None = None
        self._closed = False
        #: The "keeps running in the tray" hint is shown once per data folder, ever.
        self.hint_file = window.service.settings.data_dir / "ui-tray-hint-shown"
        self.menu = QMenu(window)
        self.open_action = QAction("Open MEDIator", self.menu)
        self.check_action = QAction("Check for updates", self.menu)
        self.check_action.setToolTip(
            "Ask the archives whether the data behind every set you follow or own changed"
        )
        self.updates_action = QAction("", self.menu)
        #: One entry a set with updates, then the running downloads (rebuilt as they change).
        self.updates_menu = QMenu("Sets with updates", self.menu)
        self.downloads_menu = QMenu("Downloads", self.menu)
        self.pause_action = QAction("Pause all downloads", self.menu)
        self.quit_action = QAction("Quit", self.menu)
        self.open_action.triggered.connect(self.show_window)
        self.check_action.triggered.connect(self.check_all)
        self.updates_action.triggered.connect(self.open_updates)
        self.pause_action.triggered.connect(self.pause_all)
        self.quit_action.triggered.connect(window.quit)
        for action in (
            self.open_action,
            self.check_action,
            self.updates_action,
            self.updates_menu.menuAction(),
            self.downloads_menu.menuAction(),
            self.pause_action,
            self.quit_action,
        ):
            self.menu.addAction(action)
        self.menu.setToolTipsVisible(True)
        #: Sets with updates you have not declined, as the menu counts them.
        self.updates: list[tuple[ReplicaSet, DriftRecord]] = []
        self.refresh_updates()
        tray.set_menu(self.menu)
        tray.message_clicked.connect(self.open_last)
        tray.activated.connect(self.show_window)
        window.bridge.subscribe(self.on_event, *NOTICE_EVENTS)
        window.bridge.subscribe(lambda _: self.refresh_updates(), *UPDATE_EVENTS)
        window.bridge.subscribe(lambda _: self.refresh_downloads(), DownloadEvent)
        self.refresh_downloads()
        # Updates found while the app was not running (or this member was offline): said once, when
        # the icon sits in the tray (a balloon shown before is placed at the screen's corner).
        QTimer.singleShot(ANNOUNCE_AFTER_MS, self, self.announce_updates)

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
        log.info("notice: %s: %s", notice.title, notice.text)
        notifier = self.notifier
        if notifier is not None and notifier.available:
            notifier.notify(notice.title, notice.text, actions_for(notice), tag=notice, error=notice.error)
        else:
            self.tray.show_message(notice.title, notice.text, notice.error)
        self.notified.emit(notice)

    def announce_updates(self) -> None:
        """One notice for the sets with updates you have not declined (the app started)."""
        if self._closed:
            return
        self.runner.run(
            self.service.tracking.updates, done=lambda updates: self._show(updates_notice(updates))
        )

    def open_last(self) -> None:
        """The user clicked the latest notification (a tray balloon): show its set, or its
        archive update."""
        if self.last is None:
            self.show_window()
            return
        self.open_notice(self.last, DEFAULT)

    def open_notice(self, notice: object, key: str) -> None:
        """Carry out a notification's action: open its set (chosen in the sidebar), or its archive
        update's view, which "Update set" and "Download changes" then press."""
        if not isinstance(notice, Notice):
            return
        self.show_window()
        if notice.action == UPDATES_ACTION:
            self.open_updates()
        elif notice.set_id is not None:
            self.window.open_set(notice.set_id)
            if notice.action == "drift" or key in (UPDATE, DOWNLOAD):
                dialog = self.window.show_update(notice.set_id)
                if dialog is not None and key in (UPDATE, DOWNLOAD):
                    self._press_when_loaded(dialog, key)
        self.opened.emit(notice, key)

    @staticmethod
    def _press_when_loaded(dialog: UpdateDialog, key: str) -> None:
        def press(_: object) -> None:
            dialog.loaded.disconnect(press)
            if key == UPDATE:
                dialog.accept_update()
            else:
                dialog.download_changes()

        dialog.loaded.connect(press)
        if dialog.info is not None:  # the view was open already, its update read
            press(None)

    def refresh_updates(self) -> None:
        """Count the sets with updates (local reads) for the menu: hidden when there are none."""
        try:
            self.updates = self.service.tracking.updates()
        except ClusterUnavailable:  # joining or leaving: the events that end it come here again
            return
        count = len(self.updates)
        self.updates_action.setText(f"{count} set{' has' if count == 1 else 's have'} updates")
        self.updates_action.setToolTip(
            "\n".join(f"{rs.name}: {drift.summary}" for rs, drift in self.updates[:10])
        )
        self.updates_action.setVisible(count > 0)
        self.updates_menu.clear()
        for rs, drift in self.updates[:10]:
            entry = self.updates_menu.addAction(f"{rs.name}: {drift.summary}")
            entry.triggered.connect(lambda _=False, set_id=rs.id: self._show_update(set_id))
        self.updates_menu.menuAction().setVisible(count > 1)

    def _show_update(self, set_id: str) -> None:
        self.show_window()
        self.window.show_update(set_id)

    def refresh_downloads(self) -> None:
        """The menu's running downloads with their progress (local reads)."""
        running = [job for job in self.service.downloads.list() if not job.finished]
        self.downloads_menu.clear()
        for job in running[:MENU_DOWNLOADS]:
            entry = self.downloads_menu.addAction(f"{job.set_name}: {download_line(job)}")
            entry.triggered.connect(self.show_downloads)
        if len(running) > MENU_DOWNLOADS:
            self.downloads_menu.addAction(f"and {len(running) - MENU_DOWNLOADS} more").setEnabled(False)
        self.downloads_menu.setTitle(f"Downloads ({len(running)} running)")
        self.downloads_menu.menuAction().setVisible(bool(running))

    def show_downloads(self) -> None:
        self.show_window()
        self.window.downloads_dock.show()
        self.window.downloads_dock.raise_()

    def open_updates(self) -> None:
        """The menu's "N sets have updates": one set's update view, or the list of them."""
        self.refresh_updates()
        self.show_window()
        if len(self.updates) == 1:
            self.window.show_update(self.updates[0][0].id)
        elif self.updates:
            self.window.show_updates()

    def check_all(self) -> None:
        """The menu's "Check for updates": every set you follow or own, on a worker."""
        self.window.check_updates(None)

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
        self._closed = True
        self.runner.close()
        if self.notifier is not None:
            self.notifier.close()
