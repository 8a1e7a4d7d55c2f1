"""The cluster's TCP transport: pysyncobj's, with two changes made through its transport class.

* **Lean messages.** pysyncobj pickles every message with protocol 2 and zlib-compresses it before
  the encryptor seals it. zlib costs about 50-100 µs even for a 700-byte message (it sets up a
  fresh 256 KB deflate state per call), more than anything else a small message costs, and gains
  nothing on signatures and zstd manifest chunks; protocol 2 sends ``bytes`` through a latin-1
  text detour that inflates binary data by half. Our connections pickle with the highest protocol
  and do not compress. The AEAD (``raft.cipher``) still seals every message. Wire protocol 3.
* **Steady next index** (see ``SteadyTransport``).
* **No silent loss of forwards**: a command forwarded to the leader over a connection that cannot
  carry it is answered at once as "no leader", and sent again (``SteadyTransport.send``).

Both rely on pysyncobj 0.3's ``TcpConnection`` internals (its name-mangled buffers); the version
range in ``pyproject.toml`` is pinned to match, and ``tests/unit/raft`` exercises both paths.
"""

from __future__ import annotations

import logging
import pickle
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON
from pysyncobj.monotonic import monotonic
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection
from pysyncobj.transport import TCPTransport

from mediator_desktop.core.cluster import PROTOCOL
from mediator_desktop.raft.cipher import InvalidToken

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("i")
#: When each reason for dropping a connection was last logged.
_LAST_SAID: dict[str, float] = {}


class _Refused(Exception):
    """A message that must not be taken, for the reason given."""


class LeanConnection(TcpConnection):  # type: ignore[misc]
    """A pysyncobj connection that pickles with the highest protocol and does not compress.

    A connection becomes one by a change of class right after pysyncobj makes it (it keeps no
    state of its own), before it sends or reads anything.
    """

    # pysyncobj's attributes that this class reads and writes (declared for the type checker).
    recvLastTimestamp: int
    _TcpConnection__readBuffer: bytes
    _TcpConnection__writeBuffer: bytes
    _TcpConnection__socket: socket.socket | None

    def send(self, message: Any) -> None:
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        data = self.encryptor.encrypt_at_time(
            pickle.dumps(message, pickle.HIGHEST_PROTOCOL), int(monotonic())
        )
        self._TcpConnection__writeBuffer += _LENGTH.pack(len(data)) + data
        self._TcpConnection__trySendBuffer()

    def _TcpConnection__processParseMessage(self) -> Any:
        buffer: bytes = self._TcpConnection__readBuffer
        if len(buffer) < 4:
            return None
        length = _LENGTH.unpack_from(buffer)[0]
        if len(buffer) - 4 < length:
            return None
        data = buffer[4 : 4 + length]
        try:
            stamp: int = self.encryptor.extract_timestamp(data)
            if stamp < self.recvLastTimestamp:
                raise _Refused("a message older than the one before it (replayed?)")
            self.recvLastTimestamp = stamp
            plain = self.encryptor.decrypt(data)
        except (InvalidToken, _Refused) as exc:
            reason = (
                str(exc) if isinstance(exc, _Refused) else "a message not sealed with this cluster's secret"
            )
            return self._drop(reason)
        try:
            message = pickle.loads(plain)
        except Exception:  # noqa: BLE001 (any unpickling error: the sender speaks something else)
            return self._drop(
                f"a message sealed with this cluster's secret that this node cannot read: a node of "
                f"another MEDIator wire protocol (this one speaks protocol {PROTOCOL}); run the same "
                "MEDIator version on every node of the cluster"
            )
        if self.recvRandKey:
            if not (isinstance(message, tuple) and len(message) == 2 and message[0] == self.recvRandKey):
                return self._drop("a message for another connection (replayed?)")
            message = message[1]
        self._TcpConnection__readBuffer = buffer[4 + length :]
        return message

    def _drop(self, reason: str) -> None:
        """Drop the connection, as pysyncobj does with anything wrong, and say why (at most once a
        minute per reason: the peer reconnects every second or so)."""
        now = time.monotonic()
        if now - _LAST_SAID.get(reason, -60.0) >= 60.0:
            _LAST_SAID[reason] = now
            log.warning("dropped a cluster connection from %s: %s", self._peer(), reason)
        self.disconnect()

    def _peer(self) -> str:
        sock = self._TcpConnection__socket
        try:
            address = sock.getpeername() if sock is not None else None
        except OSError:
            address = None
        return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "a peer"


class SteadyTransport(TCPTransport):  # type: ignore[misc]
    """pysyncobj's TCP transport with lean connections, no message before a connection's key
    exchange is done (``send``), and a leader's view of a follower's next index kept monotonic.

    pysyncobj 0.3.17 advances a follower's next index as soon as it sends entries, but a late
    success reply for an earlier message moves it back again. The leader then resends entries
    the follower already holds, and the follower truncates its log before appending them again
    ("truncating already-applied log entries"), for a moment dropping entries it had
    acknowledged: with bad timing, a committed entry could be lost in a fail-over. A success
    reply may only move the index forward; failure replies (``reset``) still move it back.
    """

    def _onNewIncomingConnection(self, conn: TcpConnection) -> None:
        conn.__class__ = LeanConnection
        super()._onNewIncomingConnection(conn)

    #: Tests only: called on the raft thread with each outgoing ``(node, message)``; when it returns
    #: True the message is dropped as a lossy network would drop it. Tests stand for a forward lost
    #: on its way to the leader with it; the app never sets it.
    drop: Callable[[Any, Any], bool] | None = None

    def send(self, node: Any, message: Any) -> bool:
        """Send only on connections whose key exchange is done. pysyncobj asks for votes and
        forwards commands over any open connection; before the peer's key has arrived, such a
        message would go out without it, and the peer drops the connection (pysyncobj's own
        connections fail an assertion there). Raft sends again once the peer is connected.

        A command forwarded to the leader is different: pysyncobj sends it once, ignores that it
        could not go out, and waits for an answer that never comes (until the leader changes, or
        the store's flight expires: seconds without a write). A forward that cannot go out is
        answered at once as "no leader" (``FAIL_REASON.MISSING_LEADER``), so the store sends it
        again as soon as the connection is back.
        """
        drop = self.drop
        if drop is not None and drop(node, message):
            return True  # as if it went out: the sender learns of the loss only by its silence
        conn = self._connections.get(node)
        if (
            conn is None
            or conn.state != CONNECTION_STATE.CONNECTED
            or (conn.encryptor is not None and conn.sendRandKey is None)
        ):
            self._not_sent(node, message)
            return False
        return bool(super().send(node, message))

    def _not_sent(self, node: Any, message: Any) -> None:
        """Answer a forwarded command that did not go out (it is surely not in any log)."""
        if not (
            isinstance(message, dict) and message.get("type") == "apply_command" and "request_id" in message
        ):
            return
        deliver = self._onMessageReceivedCallback
        if deliver is not None:
            deliver(
                node,
                {
                    "type": "apply_command_response",
                    "request_id": message["request_id"],
                    "error": FAIL_REASON.MISSING_LEADER,
                },
            )

    def addNode(self, node: Any) -> None:
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None:
            conn.__class__ = LeanConnection

    def setOnMessageReceivedCallback(self, callback: Callable[[Any, Any], None] | None) -> None:
        if callback is None:
            super().setOnMessageReceivedCallback(None)
            return

        def steady(node: Any, message: Any) -> None:
            if (
                isinstance(message, dict)
                and message.get("type") == "next_node_idx"
                and message.get("success")
                and not message.get("reset")
            ):
                next_index = self._syncObj._SyncObj__raftNextIndex
                before = next_index.get(node)
                callback(node, message)
                if before is not None and next_index.get(node, 0) < before:
                    next_index[node] = before
                return
            callback(node, message)

        super().setOnMessageReceivedCallback(steady)
