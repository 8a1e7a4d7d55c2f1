"""The one hook for what nothing else caught: it is logged with its traceback, and a dialog says
what happened and where the log is. Exceptions from any thread are handed to the GUI thread."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger("mediator_desktop.ui")


class CrashReporter(QObject):
    """Installs ``sys.excepthook`` and ``threading.excepthook``. Signals: crashed(str)."""

    crashed = Signal(str)

    def __init__(self, log_file: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_file = log_file
        self.dialog: QMessageBox | None = None
        self.crashed.connect(self._show)  # queued when emitted from another thread
        self._previous = (sys.excepthook, threading.excepthook)

    def install(self) -> CrashReporter:
        sys.excepthook = self.on_exception
        threading.excepthook = lambda args: self.on_exception(
            args.exc_type, args.exc_value, args.exc_traceback
        )
        return self

    def _on_thread_exception(self, args: threading.ExceptHookArgs) -> None:
        self.on_exception(args.exc_type, args.exc_value, args.exc_traceback)

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def on_exception(
        self, kind: type[BaseException], error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            return
        text = "".join(traceback.format_exception(kind, error, tb))
        log.error("uncaught exception:\n%s", text)
        self.crashed.emit(f"{kind.__name__}: {error}")

    def _show(self, summary: str) -> None:
        parent = self.parent()
        self.dialog = QMessageBox(
            QMessageBox.Icon.Critical,
            "MEDIator Desktop: something went wrong",
            f"{summary}\n\nYour data is safe: committed versions are in the cluster, and downloads resume "
            f"where they stopped. The details are in the log:\n{self.log_file}\n\n"
            "Please send that file with a note of what you were doing.",
            QMessageBox.StandardButton.Close,
            parent if isinstance(parent, QWidget) else None,
        )
        self.dialog.open()  # not modal for the rest of the app's work
