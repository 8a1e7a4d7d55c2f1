"""The ``mediator-desktop`` entry point: a QApplication with the main window over a running node."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence

from mediator_desktop import __version__
from mediator_desktop.core.errors import NodeRunning
from mediator_desktop.core.settings import Settings
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
    log_file = Settings.load().data_dir / "logs" / "app.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[
            logging.StreamHandler(),
            logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3),
        ],
    )
    _choose_platform()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from mediator_desktop.ui.errors import CrashReporter
    from mediator_desktop.ui.main_window import MainWindow
    from mediator_desktop.ui.tray import QtTray

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MEDIator Desktop")
    app.setApplicationVersion(__version__)
    node = Node(api=True)  # the SDK and the CLI of this user reach the app's node through its local API
    try:
        node.start()
    except NodeRunning as exc:
        print(f"mediator-desktop: {exc}", file=sys.stderr)
        return 1
    try:
        tray = QtTray(app)
        # With a tray icon, closing the window keeps the app running; quit from the icon's menu.
        QApplication.setQuitOnLastWindowClosed(not tray.available())
        window = MainWindow(node, tray)
        crashes = CrashReporter(log_file, window).install()
        window.show()
        log.info("MEDIator Desktop %s started; data in %s", __version__, node.data_dir)
        if args.quit_after is not None:
            QTimer.singleShot(int(args.quit_after * 1000), window.quit)
        code = app.exec()
        crashes.uninstall()
        return code
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
