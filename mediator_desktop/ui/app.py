"""The ``mediator-desktop`` entry point: a QApplication with the main window over a running node.

This is the only module of the UI that knows about ``Node``: it builds one and hands its service
to the window.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mediator_desktop import __version__
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.settings import Settings, default_data_dir
from mediator_desktop.node import Node

if TYPE_CHECKING:
    from PySide6.QtCore import QObject

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


def log_file() -> Path:
    """Where the app logs: under the data folder of the settings (the default one when the
    settings file cannot be read; the start-up then fails and says why)."""
    try:
        data_dir = Settings.load().data_dir
    except MediatorError:
        data_dir = default_data_dir()
    return data_dir / "logs" / "app.log"


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
    return run(path, args.quit_after)


def run(log_path: Path, quit_after: float | None = None) -> int:
    """Start a node with its local API and show the window over it until the app quits.

    A node (or window) that cannot start is reported in a dialog with the log path, and the exit
    status is 1.
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mediator_desktop.ui.errors import CrashReporter, MessageBridge
    from mediator_desktop.ui.main_window import MainWindow
    from mediator_desktop.ui.tray import QtTray
    from mediator_desktop.ui.welcome_dialog import WelcomeDialog

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("MEDIator Desktop")
    app.setApplicationVersion(__version__)
    # What widgets tell the user before the window is up waits here until it is.
    messages = MessageBridge(app)
    crashes = CrashReporter(log_path, app).install()
    node: Node | None = None
    window: MainWindow | None = None

    def stop(_: int) -> None:
        if window is not None:
            window.quit()
        app.quit()  # with a tray icon, closing the window alone keeps the app running

    # Before the node starts: once its API endpoint file is there, a signal must stop it cleanly.
    stop_signals = StopSignals(stop, app)
    try:
        try:
            node = Node(api=True)  # the SDK and the CLI of this user reach the app's node through its API
            # The node writes its settings file when it starts: a missing one means a first start.
            first_start = not node.settings_path.exists()
            node.start()
            tray = QtTray(app)
            # With a tray icon, closing the window keeps the app running; quit from the icon's menu.
            QApplication.setQuitOnLastWindowClosed(not tray.available())
            window = MainWindow(node.service, tray, messages)
        except Exception as exc:  # noqa: BLE001  # the start-up's part of the crash hook
            crashes.startup_failed(exc, quit_after)
            return 1
        crashes.window = window
        window.show()
        log.info("MEDIator Desktop %s started; data in %s", __version__, node.data_dir)

        if quit_after is not None:
            QTimer.singleShot(int(quit_after * 1000), window.quit)
        if wants_welcome(first_start, quit_after):
            log.info("first start: asking for the name the lab sees (%s=1 skips it)", NO_WELCOME_ENV)
            welcome = WelcomeDialog(node.service, messages, window)
            QTimer.singleShot(0, window, welcome.open)  # once the loop runs; window-modal, not exec()
        return app.exec()
    finally:
        stop_signals.close()
        crashes.uninstall()
        if node is not None:
            node.stop()


if __name__ == "__main__":
    sys.exit(main())
