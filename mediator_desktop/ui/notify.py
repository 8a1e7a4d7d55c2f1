"""Desktop notifications through the desktop's own notification service: the freedesktop
``org.freedesktop.Notifications`` interface on the D-Bus session bus (GNOME, KDE, XFCE, dunst,
notification-daemon…), with actions ("Open", "Update set", "Download changes").

Qt's ``QSystemTrayIcon.showMessage`` sends notifications without actions on desktops with a
StatusNotifierItem tray, so clicking one only closes it; here the app talks to the service itself
and hears ``ActionInvoked``. Where no such service answers (Windows, macOS, a bare X session)
``available`` becomes False and the tray's balloon is used instead.

D-Bus goes through ``jeepney`` (pure Python): PySide's QtDBus cannot send the ``uint32`` the
``Notify`` call takes, and its blocking calls hold the GIL. Calls run on one worker thread;
jeepney's receiver thread hands the service's signals to a queued Qt signal, so every signal of
``DesktopNotifier`` arrives on the GUI thread.
"""

from __future__ import annotations

import logging
import queue
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
#: The action a click on the notification's body invokes (the freedesktop spec's name for it).
DEFAULT = "default"
APP_NAME = "MEDIator Desktop"
#: The ``desktop-entry`` hint: the service shows the app's name and icon from its .desktop file.
DESKTOP_ENTRY = "mediator-desktop"
#: How long a call may take before the service counts as absent (seconds).
CALL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Action:
    """One button of a notification: its key (``ActionInvoked`` tells it back) and its label."""

    key: str
    label: str


class _Relay(queue.Queue[Any]):
    """What jeepney's router puts here (on its receiver thread) becomes a queued Qt signal."""

    def __init__(self, emit: Callable[[object], None]) -> None:
        super().__init__()
        self._emit = emit

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._emit(item)

    def put_nowait(self, item: Any) -> None:
        self._emit(item)


class DesktopNotifier(QObject):
    """Sends notifications to the session's notification service and relays their actions.

    Signals: action_invoked(object, str): the user chose an action (``DEFAULT`` for a click on the
    body) of the notification sent with this tag; ready(bool): the service answered whether it is
    there (True) or not (False); shown(object, int): the service showed the notification of a tag
    under this id.

    Args:
        bus: the D-Bus address (default: the session bus of ``DBUS_SESSION_BUS_ADDRESS``).
    """

    action_invoked = Signal(object, str)
    ready = Signal(bool)
    shown = Signal(object, int)
    _received = Signal(object)
    _answered = Signal(object, object)

    def __init__(self, bus: str = "SESSION", parent: QObject | None = None) -> None:
        super().__init__(parent)
        #: None while the service has not answered yet; then whether notifications go to it.
        self.available: bool | None = None
        #: Whether the service shows actions (some, like GNOME's on a lock screen, do not).
        self.actions = False
        self.capabilities: list[str] = []
        #: Tags of the notifications shown, by the id the service gave them.
        self._tags: dict[int, object] = {}
        self._router: Any = None
        self._closed = False
        self._received.connect(self._on_message)
        self._answered.connect(lambda done, value: done(value))
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="notify")
        if sys.platform != "linux":
            self.available = False
            return
        self._submit(lambda: self._open(bus), self._opened)

    def _submit(self, work: Callable[[], object], done: Callable[[object], None]) -> None:
        """Run ``work`` on the worker; ``done`` gets its result, or the error, on the GUI thread."""

        def finished(future: Future[object]) -> None:
            error = future.exception()
            if not self._closed:
                self._answered.emit(done, error if error is not None else future.result())

        if not self._closed:
            self._executor.submit(work).add_done_callback(finished)

    def _open(self, bus: str) -> list[str]:
        """Called on the worker: connect, listen to the service's signals, ask what it can do."""
        from jeepney import DBusAddress, MatchRule, new_method_call  # type: ignore[import-untyped]
        from jeepney.bus_messages import message_bus  # type: ignore[import-untyped]
        from jeepney.io.threading import DBusRouter, open_dbus_connection  # type: ignore[import-untyped]

        connection = open_dbus_connection(bus=bus)
        self._router = DBusRouter(connection)
        rule = MatchRule(type="signal", interface=INTERFACE, path=PATH)
        self._router.filter(rule, queue=_Relay(self._received.emit))  # for the router's lifetime
        self._router.send_and_get_reply(message_bus.AddMatch(rule), timeout=CALL_TIMEOUT)
        address = DBusAddress(PATH, bus_name=SERVICE, interface=INTERFACE)
        reply = self._router.send_and_get_reply(
            new_method_call(address, "GetCapabilities"), timeout=CALL_TIMEOUT
        )
        _raise_error(reply)
        if self._closed:  # the app quit while the service was asked
            self._disconnect()
        return [str(c) for c in reply.body[0]]

    def _opened(self, result: object) -> None:
        if isinstance(result, BaseException):
            log.info("no desktop notification service (%s): notifications go to the tray", result)
            self.available = False
        else:
            assert isinstance(result, list)
            self.capabilities = result
            self.actions = "actions" in result
            self.available = True
            log.info("desktop notifications: capabilities %s", ", ".join(result))
        self.ready.emit(self.available)

    def notify(
        self,
        title: str,
        text: str,
        actions: Sequence[Action] = (),
        *,
        tag: object = None,
        error: bool = False,
    ) -> None:
        """Show a notification; ``action_invoked(tag, key)`` follows when the user chooses one of
        ``actions`` (a ``DEFAULT`` action is what a click on it does). An error stays until seen."""
        flat: list[str] = []
        for action in actions if self.actions else ():
            flat += [action.key, action.label]
        hints = {
            "desktop-entry": ("s", DESKTOP_ENTRY),
            "category": ("s", "transfer.error" if error else "im.received"),
            "urgency": ("y", 2 if error else 1),
        }
        body = (APP_NAME, 0, "", title, text, flat, hints, 0 if error else -1)

        def send() -> int:
            from jeepney import DBusAddress, new_method_call

            address = DBusAddress(PATH, bus_name=SERVICE, interface=INTERFACE)
            message = new_method_call(address, "Notify", "susssasa{sv}i", body)
            reply = self._router.send_and_get_reply(message, timeout=CALL_TIMEOUT)
            _raise_error(reply)
            return int(reply.body[0])

        def sent(result: object) -> None:
            if isinstance(result, BaseException):
                log.warning("the notification service did not show %r: %s", title, result)
                return
            assert isinstance(result, int)
            self._tags[result] = tag
            self.shown.emit(tag, result)

        if self.available:
            self._submit(send, sent)

    def _on_message(self, message: Any) -> None:
        """A signal of the service (on the GUI thread)."""
        member = message.header.fields.get(_member_field())
        if member == "ActionInvoked":
            number, key = message.body
            if number in self._tags:  # not another app's notification
                self.action_invoked.emit(self._tags[number], str(key))
        elif member == "NotificationClosed":
            self._tags.pop(message.body[0], None)

    def close(self) -> None:
        """Stop listening and close the connection (the app quits)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._disconnect()

    def _disconnect(self) -> None:
        router, self._router = self._router, None
        if router is not None:
            router.close()  # joins jeepney's receiver thread: no signal is dispatched after this
            router.conn.close()


def _member_field() -> object:
    from jeepney import HeaderFields

    return HeaderFields.member


def _raise_error(reply: Any) -> None:
    from jeepney import MessageType

    if reply.header.message_type == MessageType.error:
        from jeepney import DBusErrorResponse

        raise DBusErrorResponse(reply)
