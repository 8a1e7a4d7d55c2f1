"""The ``mediator-desktop`` entry point: a QApplication with the main window over a running node.

This is the only module of the UI that knows about ``Node``: it builds one and hands its service
to the window.
"""

from __future__ import annotations

import argparse
import functools
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mediator_desktop import __version__
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.settings import Settings, default_data_dir
from mediator_desktop.node import Node
from mediator_desktop.ui.autostart import MINIMISED_ENV

if TYPE_CHECKING:
    from PySide6.QtCore import QObject

    from mediator_desktop.ui.main_window import MainWindow

log = logging.getLogger(__name__)

#: Set to 1 to skip the first start's "how should your lab see you?" (screenshots, scripted runs).
NO_WELCOME_ENV = "MEDIATOR_NO_WELCOME"


def _choose_platform() -> None:
    """Run offscreen, with a warning, where no display exists (a server, a CI box, ssh without X)."""
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform != "linux":
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log.warning(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): running without a window. "
            "Use 'mediator' for the terminal, or start the app from a desktop session."
        )
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def data_folder() -> Path:
    """The data folder of the settings (the default one when the settings file cannot be read;
    the start-up then fails and says why)."""
    try:
        return Settings.load().data_dir
    except MediatorError:
        return default_data_dir()


def log_file() -> Path:
    """Where the app logs: under the data folder."""
    return data_folder() / "logs" / "app.log"


def wants_welcome(first_start: bool, quit_after: float | None) -> bool:
    """Whether to ask for a display name: on a first start, unless the run is scripted."""
    return first_start and quit_after is None and os.environ.get(NO_WELCOME_ENV) != "1"


class StopSignals:
    """Quits the Qt loop on SIGINT and SIGTERM, so the node stops cleanly (its local API endpoint
    file goes away) instead of dying (SIGTERM) or ignoring Ctrl-C (the loop runs in C++).

    Python runs signal handlers only when the interpreter gets control; Qt's loop gives it none.
    The C-level handler writes the signal's number to a socket (``signal.set_wakeup_fd``), whose
    ``QSocketNotifier`` wakes the loop; ``on_signal`` then runs on the GUI thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_signal: Callable[[int], None], parent: QObject | None = None) -> None:
        from PySide6.QtCore import QSocketNotifier

        self._on_signal = on_signal
        self._read, self._write = socket.socketpair()
        for end in (self._read, self._write):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        # A Python-level handler must be set for the C handler (which writes the byte) to run.
        self._previous = {sig: signal.signal(sig, self._noted) for sig in self.SIGNALS}
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, parent)
        self._notifier.activated.connect(self._woken)

    def _noted(self, signum: int, frame: object) -> None:
        """The Python-level handler: the byte on the socket already told the loop."""

    def _woken(self) -> None:
        try:
            data = self._read.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum in self.SIGNALS:
                log.info("%s received: stopping", signal.Signals(signum).name)
                self._on_signal(signum)

    def close(self) -> None:
        """Give the signals back (a second Ctrl-C while the node stops interrupts it)."""
        self._notifier.setEnabled(False)
        self._notifier.deleteLater()
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._read.close()
        self._write.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediator-desktop", description="MEDIator Desktop")
    parser.add_argument("--version", action="version", version=f"mediator-desktop {__version__}")
    parser.add_argument(
        "--quit-after",
        type=float,
        metavar="SECONDS",
        help="quit after this many seconds (smoke tests, screenshots)",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="manifest files to import as sets (.tcia, .s5cmd, GDC TSV, set exports), as a drop does; "
        "with the app already running they go to it",
    )
    args = parser.parse_args(argv)
    path = log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[
            logging.StreamHandler(),
            logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=3),
        ],
    )
    _choose_platform()
    return run(path, args.quit_after, [file.absolute() for file in args.files])


def run(log_path: Path, quit_after: float | None = None, files: Sequence[Path] = ()) -> int:
    """Start a node with its local API and show the window over it until the app quits, then
    import ``files`` as a drop does.

    With an app already running on the same data folder, hand it ``files`` and have it raise its
    window instead (exit status 0). A node (or window) that cannot start is reported in a dialog
    with the log path, and the exit status is 1.
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from mediator_desktop.ui.errors import CrashReporter, MessageBridge
    from mediator_desktop.ui.main_window import MainWindow
    from mediator_desktop.ui.notify import DesktopNotifier
    from mediator_desktop.ui.single_instance import InstanceServer
    from mediator_desktop.ui.tray import QtTray
    from mediator_desktop.ui.welcome_dialog import WelcomeDialog

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("MEDIator Desktop")
    app.setApplicationVersion(__version__)
    # The installed desktop entry and icon (packaging/linux): docks and Wayland match the window to them.
    app.setDesktopFileName("mediator-desktop")
    if not (icon := QIcon.fromTheme("mediator-desktop")).isNull():
        app.setWindowIcon(icon)
    instance = InstanceServer(data_folder(), app)
    if not instance.claim(files):
        log.info("MEDIator Desktop already runs on %s: handed it %d file(s)", instance.data_dir, len(files))
        return 0
    # What widgets tell the user before the window is up waits here until it is.
    messages = MessageBridge(app)
    crashes = CrashReporter(log_path, app).install()
    node: Node | None = None
    window: MainWindow | None = None
    notifier: DesktopNotifier | None = None
    api_threads: list[threading.Thread] = []

    def stop(_: int) -> None:
        if window is not None:
            window.quit()
        app.quit()  # with a tray icon, closing the window alone keeps the app running

    # Before the node starts: once its API endpoint file is there, a signal must stop it cleanly.
    stop_signals = StopSignals(stop, app)
    try:
        try:
            # The SDK and the CLI of this user reach the app's node through its local API, which
            # starts once the window shows (serve_api_soon): its HTTP stack takes seconds to import.
            node = Node()
            # The node writes its settings file when it starts: a missing one means a first start.
            first_start = not node.settings_path.exists()
            node.start()
            tray = QtTray(app)
            # With a tray icon, closing the window keeps the app running; quit from the icon's menu.
            QApplication.setQuitOnLastWindowClosed(not tray.available())
            notifier = DesktopNotifier(parent=app)  # the desktop's notifications, with actions
            window = MainWindow(node.service, tray, messages, notifier)
        except Exception as exc:  # noqa: BLE001  # the start-up's part of the crash hook
            crashes.startup_failed(exc, quit_after)
            return 1
        crashes.window = window
        if os.environ.get(MINIMISED_ENV) != "1" or not tray.available():
            window.show()  # started at login (the autostart entry): in the tray only
        instance.activated.connect(functools.partial(_activate, window))
        QTimer.singleShot(0, functools.partial(serve_api_soon, node, api_threads))
        if files:
            window.drop_files(list(files))
        log.info("MEDIator Desktop %s started; data in %s", __version__, node.data_dir)

        if quit_after is not None:
            QTimer.singleShot(int(quit_after * 1000), window.quit)
        if wants_welcome(first_start, quit_after):
            log.info("first start: asking for the name the lab sees (%s=1 skips it)", NO_WELCOME_ENV)
            welcome = WelcomeDialog(node.service, messages, window)
            QTimer.singleShot(0, window, welcome.open)  # once the loop runs; window-modal, not exec()
        return app.exec()
    finally:
        if notifier is not None:
            notifier.close()
        instance.close()
        stop_signals.close()
        crashes.uninstall()
        for thread in api_threads:
            thread.join(60.0)  # a local API still starting is stopped with its node, not after
        if node is not None:
            node.stop()


def serve_api_soon(node: Node, threads: list[threading.Thread]) -> None:
    """Start the node's local API (``node.api``, stopped with the node) on a thread, so the window
    does not wait for it; appends the thread to ``threads`` (join them before stopping the node)."""

    def serve() -> None:
        from mediator_desktop.api.server import LocalApi

        try:
            node.api = LocalApi(node.service).start()
        except (OSError, MediatorError) as exc:
            log.error("the local API did not start: the CLI and the SDK cannot reach this app (%s)", exc)

    thread = threading.Thread(target=serve, name="local-api-start", daemon=True)
    thread.start()
    threads.append(thread)


def _activate(window: MainWindow, files: list[Path]) -> None:
    """Another start of the app asked for this one: show the window on top and import its files."""
    if window.isMinimized() or not window.isVisible():
        window.showNormal()
    window.raise_()
    window.activateWindow()
    if files:
        window.drop_files(files)


if __name__ == "__main__":
    sys.exit(main())
