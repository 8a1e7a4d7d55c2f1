"""Run under a real X server with a tray host: shows a notification through ``QtTray`` and clicks
Qt's balloon, printing one JSON line with what happened. Used by tests/integration/test_tray_xvfb.py."""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QDeadlineTimer, QEventLoop, QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from mediator_desktop.ui.tray import QtTray


def main() -> int:
    app = QApplication(sys.argv[:1])
    tray = QtTray(app)
    # The tray host may still be starting: give it up to 10 s to take the system tray selection.
    deadline = QDeadlineTimer(10_000)
    while not tray.available() and not deadline.hasExpired():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    result: dict[str, object] = {"available": tray.available(), "clicked": False, "balloon": False}
    if not tray.available():
        print(json.dumps(result), flush=True)
        return 1
    from PySide6.QtWidgets import QMenu

    tray.set_menu(QMenu())

    def clicked() -> None:
        result["clicked"] = True
        app.quit()

    tray.message_clicked.connect(clicked)

    def click_balloon() -> None:
        balloons = [
            w for w in app.topLevelWidgets() if w.metaObject().className() == "QBalloonTip" and w.isVisible()
        ]
        if not balloons:
            QTimer.singleShot(50, click_balloon)
            return
        result["balloon"] = True
        QTest.mouseClick(
            balloons[0], Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(10, 10)
        )

    tray.show_message("Shared with you", "bob shared 'Lung CT' (cluster)")
    QTimer.singleShot(0, click_balloon)
    QTimer.singleShot(20_000, app.quit)  # a bound on the whole probe
    app.exec()
    print(json.dumps(result), flush=True)
    return 0 if result["clicked"] else 1


if __name__ == "__main__":
    sys.exit(main())
