"""A tiny freedesktop notification server (``org.freedesktop.Notifications``) on a given D-Bus bus,
for tests: it records every ``Notify`` call and emits ``ActionInvoked`` when told to.

It runs in its own process (``python -m tests.helpers.notification_server ADDRESS``): Qt's D-Bus
calls may hold the GIL, so a server in the test's own process could not answer them. The process
prints one JSON line per notification on stdout (``{"id", "app", "title", "body", "actions"}``) and
reads commands on stdin: ``invoke ID KEY`` emits ``ActionInvoked(ID, KEY)``, ``close ID`` emits
``NotificationClosed(ID, 2)``.

``PrivateBus`` is a session bus of the test's own (``dbus-daemon --session``).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
ROOT = Path(__file__).resolve().parents[2]


class PrivateBus:
    """A D-Bus session bus of the test's own; ``address`` for ``DBUS_SESSION_BUS_ADDRESS``."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self) -> PrivateBus:
        self.process = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon printed no address")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class NotificationServer:
    """The server process, seen from the test: ``received`` holds the notifications so far."""

    def __init__(self, address: str, capabilities: tuple[str, ...] = ("actions", "body")) -> None:
        self.address = address
        self.capabilities = capabilities
        self.process: subprocess.Popen[str] | None = None
        self.received: list[dict[str, object]] = []
        self._lines: queue.Queue[dict[str, object]] = queue.Queue()

    def start(self) -> NotificationServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.notification_server", self.address, *self.capabilities],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the notification server did not start: {ready!r}")
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            note = json.loads(line)
            self.received.append(note)
            self._lines.put(note)

    def next(self, timeout: float = 10) -> dict[str, object]:
        """The next notification received (waits for it)."""
        return self._lines.get(timeout=timeout)

    def invoke(self, notification_id: int, key: str) -> None:
        """The user clicked an action of a notification (``default``: its body)."""
        self._send(f"invoke {notification_id} {key}")

    def _send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def serve(address: str, capabilities: list[str], out: Callable[[str], None]) -> None:
    """Called in the server process: answer on the bus until stdin closes."""
    from jeepney import DBusAddress, HeaderFields, MessageType, new_method_return, new_signal
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    bus = open_dbus_connection(bus=address)
    lock = threading.Lock()
    bus.send_and_get_reply(message_bus.RequestName(NAME))
    emitter = DBusAddress(PATH, interface=NAME)
    counter = iter(range(1, 1_000_000))

    def commands() -> None:
        for line in sys.stdin:
            word, *args = line.split()
            with lock:
                if word == "invoke":
                    bus.send(new_signal(emitter, "ActionInvoked", "us", (int(args[0]), args[1])))
                elif word == "close":
                    bus.send(new_signal(emitter, "NotificationClosed", "uu", (int(args[0]), 2)))
        bus.close()

    threading.Thread(target=commands, daemon=True).start()
    out("ready")
    while True:
        try:
            msg = bus.receive()
        except (OSError, ValueError):
            return
        header = msg.header
        if header.message_type != MessageType.method_call:
            continue
        member = header.fields.get(HeaderFields.member)
        with lock:
            if member == "Notify":
                app, replaces, _icon, title, body, actions, _hints, _timeout = msg.body
                number = replaces or next(counter)
                bus.send(new_method_return(msg, "u", (number,)))
                pairs = [[actions[i], actions[i + 1]] for i in range(0, len(actions) - 1, 2)]
                out(json.dumps({"id": number, "app": app, "title": title, "body": body, "actions": pairs}))
            elif member == "GetCapabilities":
                bus.send(new_method_return(msg, "as", (capabilities,)))
            elif member == "GetServerInformation":
                bus.send(new_method_return(msg, "ssss", ("test-notifications", "mediator", "1", "1.2")))
            elif member == "CloseNotification":
                bus.send(new_method_return(msg, "", ()))


def _print(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:], _print)
