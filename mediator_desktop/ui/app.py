"""The ``mediator-desktop`` entry point: a QApplication with the main window over a running node.

This is the only module of the UI that knows about ``Node``: it builds one and hands its service
to the window.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mediator_desktop import __version__
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.settings import Settings, default_data_dir
from mediator_desktop.node import Node

log = logging.getLogger(__name__)


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

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("MEDIator Desktop")
    app.setApplicationVersion(__version__)
    # What widgets tell the user before the window is up waits here until it is.
    messages = MessageBridge(app)
    crashes = CrashReporter(log_path, app).install()
    node: Node | None = None
    try:
        try:
            node = Node(api=True)  # the SDK and the CLI of this user reach the app's node through its API
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
        return app.exec()
    finally:
        crashes.uninstall()
        if node is not None:
            node.stop()


if __name__ == "__main__":
    sys.exit(main())
