"""One app per data folder: a second ``mediator-desktop`` (a second click on the launcher, or a
manifest file double-clicked in the file manager) hands its files to the app already running on
the same data and raises its window, instead of starting a second node on that data.

The running app listens on a local socket (``QLocalServer``: a Unix socket in the temporary
folder, readable by this user only) named after the user and the data folder. A second start
connects, sends one JSON line ``{"files": [absolute paths]}`` and waits for ``ok``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

#: A request is a few paths; anything longer is no client of ours.
MAX_REQUEST = 1_000_000
CONNECT_MS = 1000
#: The running app answers from its event loop, which waits while its node is still starting.
REPLY_MS = 30_000


def server_name(data_dir: Path) -> str:
    """The socket's name for the app on ``data_dir`` (short: Unix socket paths are limited)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return f"mediator-desktop-{user}-{digest}"


def hand_off(data_dir: Path, files: Sequence[Path] = ()) -> bool | None:
    """Give ``files`` to the app running on ``data_dir`` and have it raise its window.

    Returns True once it took the request, None when no app listens there (start one), False
    when one does but did not answer. Blocks for at most ``REPLY_MS``; needs no event loop.
    """
    socket = QLocalSocket()
    socket.connectToServer(server_name(data_dir))
    if not socket.waitForConnected(CONNECT_MS):
        return None
    request = {"files": [str(path.absolute()) for path in files]}
    socket.write(json.dumps(request).encode() + b"\n")
    socket.flush()
    reply = b""
    while b"\n" not in reply and socket.waitForReadyRead(REPLY_MS):
        reply += bytes(socket.readAll().data())
    socket.disconnectFromServer()
    if reply.strip() != b"ok":
        log.warning("the running app did not take the request (it answered %r)", reply[:100])
        return False
    return True


class InstanceServer(QObject):
    """The running app's end. Signals: activated(list[Path]) when a second start asked to be
    this app, with the files it was given (maybe none): raise the window and open them."""

    activated = Signal(list)

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data_dir = data_dir
        self.name = server_name(data_dir)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def claim(self, files: Sequence[Path] = ()) -> bool:
        """Become the app on this data folder, or hand ``files`` to the one that already is.

        Returns True when this process is now the one (it listens; requests wait until its loop
        runs), False when a running app took the files. Call it before starting the node.
        """
        if hand_off(self.data_dir, files):
            return False
        if self._server.listen(self.name):
            return True
        # Its socket is there, yet no app answered: one that started a moment ago, or one that died
        # (its socket file stays, and no one listens on it: that one is replaced).
        handed = hand_off(self.data_dir, files)
        if handed:
            return False
        if handed is None:
            QLocalServer.removeServer(self.name)
            if self._server.listen(self.name):
                return True
        log.warning(
            "cannot take the local socket %s (%s): a later start of the app will not find this one",
            self.name,
            self._server.errorString(),
        )
        return True

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._forget(s))

    def _forget(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        data = self._buffers.get(socket, b"") + bytes(socket.readAll().data())
        if b"\n" not in data:
            if len(data) > MAX_REQUEST:
                socket.abort()
            else:
                self._buffers[socket] = data
            return
        self._buffers[socket] = b""
        try:
            request = json.loads(data.split(b"\n", 1)[0])
            files = [Path(name) for name in request["files"] if isinstance(name, str)]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed request on %s", self.name)
            socket.write(b"error\n")
            socket.disconnectFromServer()
            return
        socket.write(b"ok\n")
        socket.flush()
        socket.disconnectFromServer()
        log.info("another start of the app handed over %d file(s)", len(files))
        self.activated.emit(files)
