"""How the app tells the user that something went wrong, in one of two ways.

- Expected failures (``MediatorError``: a conflict, a refused permission, an archive that does not
  answer) and short notes go through the ``MessageBridge``: ``messages.error(text)`` /
  ``messages.info(text)`` from any widget or thread, or ``messages.failed`` as a worker's failure
  callback. The window shows them (errors in its banner, notes in the status bar); what comes
  before the window is up is kept and shown then.
- Everything else is a bug. ``CrashReporter`` is the one hook for it: the exception is logged
  with its traceback and a dialog says what happened and where the log is. Exceptions from any
  thread are handed to the GUI thread. A node that cannot start gets the same dialog.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from mediator_desktop.core.errors import MediatorError

log = logging.getLogger("mediator_desktop.ui")


class Level(enum.Enum):
    ERROR = "error"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Message:
    """Something to tell the user: what went wrong and what to do, or a short note."""

    level: Level
    text: str


class MessageBridge(QObject):
    """Messages for the user from any widget or thread, shown by the window once it is up.

    Until ``flush`` is called (the window does, when it can show them), messages are kept in
    order; after that each is shown as it comes. Signals: shown(Message), always on the GUI
    thread (the thread the bridge was made on).
    """

    shown = Signal(object)
    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: list[Message] | None = []
        # Queued to this object's thread when posted from another one; direct on the GUI thread.
        self._posted.connect(self._deliver)

    def error(self, text: str) -> None:
        """Tell the user what went wrong and what to do. Any thread."""
        self._posted.emit(Message(Level.ERROR, text))

    def info(self, text: str) -> None:
        """A short note (a commit went through, a file was saved). Any thread."""
        self._posted.emit(Message(Level.INFO, text))

    def failed(
        self, error: BaseException, *, shown_in: Callable[[str], None] | None = None, prefix: str = ""
    ) -> None:
        """The failure callback of a worker (``Runner.run(..., failed=messages.failed)``).

        An expected failure (``MediatorError``) is shown: in ``shown_in`` (a dialog's own line)
        when given, else as an error message. Anything else is a bug and is raised again, for the
        uncaught-exception hook (``CrashReporter``).
        """
        if not isinstance(error, MediatorError):
            raise error
        text = f"{prefix}{error}"
        if shown_in is None:
            self.error(text)
        else:
            log.info("shown in a dialog: %s", text)
            shown_in(text)

    def handler(
        self, *, shown_in: Callable[[str], None] | None = None, prefix: str = ""
    ) -> Callable[[BaseException], None]:
        """``failed`` with its options bound, as a worker's failure callback."""
        return lambda error: self.failed(error, shown_in=shown_in, prefix=prefix)

    def flush(self) -> None:
        """The window can show messages now: the kept ones first, then each as it comes."""
        cached, self._cache = self._cache or [], None
        for message in cached:
            self.shown.emit(message)

    @property
    def waiting(self) -> tuple[Message, ...]:
        """Messages kept until ``flush``."""
        return tuple(self._cache or ())

    def _deliver(self, message: Message) -> None:
        log.info("%s shown: %s", message.level.value, message.text)
        if self._cache is not None:
            self._cache.append(message)
        else:
            self.shown.emit(message)


class CrashReporter(QObject):
    """Installs ``sys.excepthook`` and ``threading.excepthook``. Signals: crashed(str).

    Its dialogs open over ``window`` once set (else over the parent, if that is a widget).
    """

    crashed = Signal(str)

    def __init__(self, log_file: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_file = log_file
        self.window: QWidget | None = None
        self.dialog: QMessageBox | None = None
        self.crashed.connect(self._show)  # queued when emitted from another thread
        self._previous = (sys.excepthook, threading.excepthook)

    def install(self) -> CrashReporter:
        sys.excepthook = self.on_exception
        threading.excepthook = lambda args: self.on_exception(
            args.exc_type, args.exc_value, args.exc_traceback
        )
        return self

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
        self.dialog = self._dialog(
            "MEDIator Desktop: something went wrong",
            f"{summary}\n\nYour data is safe: committed versions are in the cluster, and downloads resume "
            f"where they stopped. The details are in the log:\n{self.log_file}\n\n"
            "Please send that file with a note of what you were doing.",
        )
        self.dialog.open()  # not modal for the rest of the app's work

    def startup_failed(self, error: BaseException, close_after: float | None = None) -> None:
        """The node or the window could not start: log it, say it on stderr and in a dialog with
        the log path, and return when the user closed the dialog (or after ``close_after``
        seconds); the app then exits."""
        if isinstance(error, MediatorError):
            log.error("MEDIator Desktop could not start: %s", error)
            hint = "The log has more about it:"
        else:
            log.error(
                "MEDIator Desktop could not start:\n%s",
                "".join(traceback.format_exception(type(error), error, error.__traceback__)),
            )
            hint = "This is a bug. Please send the log with a note of what you did:"
        print(f"mediator-desktop: {error}", file=sys.stderr)
        self.dialog = dialog = self._dialog(
            "MEDIator Desktop could not start", f"{error}\n\n{hint}\n{self.log_file}"
        )
        if close_after is not None:
            QTimer.singleShot(int(close_after * 1000), dialog, dialog.reject)
        dialog.exec()

    def _dialog(self, title: str, text: str) -> QMessageBox:
        parent = self.window if self.window is not None else self.parent()
        return QMessageBox(
            QMessageBox.Icon.Critical,
            title,
            text,
            QMessageBox.StandardButton.Close,
            parent if isinstance(parent, QWidget) else None,
        )
