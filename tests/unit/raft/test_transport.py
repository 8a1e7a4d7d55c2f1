"""The cluster's lean connections on a real socket pair: messages arrive whole, sealed and without
the latin-1 detour of pickle protocol 2, and anything changed on the way drops the connection."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection

from mediator_desktop.core.cluster import PROTOCOL
from mediator_desktop.raft import transport
from mediator_desktop.raft.cipher import ClusterCipher
from mediator_desktop.raft.store import RaftStore
from mediator_desktop.raft.transport import LeanConnection
from tests.helpers.net import free_ports

pytestmark = pytest.mark.timeout(30)


class Pair:
    def __init__(self) -> None:
        self.poller = createPoller("auto")
        a, b = socket.socketpair()
        for s in (a, b):
            s.setblocking(False)
        self.sockets = (a, b)
        self.received: list[Any] = []
        self.sent_bytes = 0
        self.sender = self._connection(a, ClusterCipher("the-secret"))
        self.receiver = self._connection(b, ClusterCipher("the-secret"))
        self.receiver.setOnMessageReceivedCallback(self.received.append)

    def _connection(self, sock: socket.socket, cipher: ClusterCipher) -> TcpConnection:
        conn = TcpConnection(self.poller, socket=sock, timeout=10.0)
        conn.__class__ = LeanConnection
        conn.encryptor = cipher
        return conn

    def pump(self, until: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "nothing arrived"
            self.poller.poll(0.05)

    def close(self) -> None:
        for conn in (self.sender, self.receiver):
            conn.disconnect()


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    monkeypatch.setattr(transport, "_LAST_SAID", {})  # each test hears every reason afresh
    p = Pair()
    yield p
    p.close()


def test_messages_arrive_whole_and_in_order(pair: Pair) -> None:
    chunk = os.urandom(48_000)  # a manifest chunk: incompressible, half of it above 0x7f
    messages = [{"type": "append_entries", "entries": [(chunk, 7, 2)]}, ("key", 42), b"", "ünïcode"]
    for message in messages:
        pair.sender.send(message)
    pair.pump(lambda: len(pair.received) == len(messages))
    assert pair.received == messages


def test_binary_is_not_inflated_on_the_wire() -> None:
    """Protocol 2 sent bytes as latin-1 text: about 1.5 times their size for random data."""
    a, b = socket.socketpair()
    try:
        conn = TcpConnection(createPoller("auto"), socket=a, timeout=10.0)
        conn.__class__ = LeanConnection
        conn.encryptor = ClusterCipher("the-secret")
        conn.send(os.urandom(48_000))
        b.settimeout(5)
        length = struct.unpack("i", b.recv(4, socket.MSG_WAITALL))[0]
        assert 48_000 < length < 48_200
        conn.disconnect()
    finally:
        a.close()
        b.close()


def test_another_secret_drops_the_connection_and_says_so(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = pair.sockets
    token = ClusterCipher("another-secret").encrypt_at_time(b"\x80\x05N.", 1)
    a.send(struct.pack("i", len(token)) + token)
    pair.pump(lambda: pair.receiver.state == CONNECTION_STATE.DISCONNECTED)
    assert pair.received == []
    assert "not sealed with this cluster's secret" in caplog.text


def test_a_node_of_the_previous_wire_protocol_is_named_as_such(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """pysyncobj's own connection (zlib, pickle protocol 2), as MEDIator's protocol 2 spoke it."""
    pair.sender.__class__ = TcpConnection
    pair.sender.send({"type": "append_entries", "entries": []})
    pair.pump(lambda: pair.receiver.state == CONNECTION_STATE.DISCONNECTED)
    assert pair.received == []
    assert f"another MEDIator wire protocol (this one speaks protocol {PROTOCOL})" in caplog.text


def test_a_timestamp_going_backwards_drops_the_connection(pair: Pair) -> None:
    cipher = ClusterCipher("the-secret")
    a, _ = pair.sockets
    for stamp in (100, 99):
        token = cipher.encrypt_at_time(b"\x80\x05K\x01.", stamp)  # pickle of 1
        a.send(struct.pack("i", len(token)) + token)
    pair.pump(lambda: pair.receiver.state == CONNECTION_STATE.DISCONNECTED)
    assert pair.received == [1]


def test_only_the_key_exchange_goes_out_until_the_peer_answers_it(tmp_path: Path) -> None:
    """A candidate asks every member for its vote, whether their connections are ready or not.
    Until a peer has sent its key for a new connection, a message would go out without that key
    and the peer would drop the connection ("a message for another connection"): a third member
    still starting up would keep being disconnected by every election."""
    # pysyncobj connects from the greater address to the smaller: the silent member's is smallest.
    lowest, *ports = sorted(free_ports(3))
    with socket.create_server(("127.0.0.1", lowest)) as silent:  # takes connections, never answers
        silent.setblocking(False)
        addresses = [f"127.0.0.1:{p}" for p in ports]
        third = f"127.0.0.1:{lowest}"
        with contextlib.ExitStack() as stack:
            stores = []
            for i, address in enumerate(addresses):
                peers = [a for a in addresses if a != address] + [third]
                store = RaftStore(
                    address,
                    peers,
                    tmp_path / str(i),
                    "the-secret",
                    election_timeout=(0.05, 0.1),
                    auto_tick=False,
                )
                stack.callback(store.close)
                stores.append(store)
            accepted: list[socket.socket] = []
            deadline = time.monotonic() + 10
            while len(accepted) < 2 or any(s.status().leader is None for s in stores):
                assert time.monotonic() < deadline, "no leader elected"
                for store in stores:
                    store.tick(0.005)
                with contextlib.suppress(BlockingIOError):
                    accepted.append(stack.enter_context(silent.accept()[0]))
            assert stores[0].status().term >= 1  # an election asked the silent member too
            for conn in accepted:
                conn.settimeout(0.2)
                received = b""
                with contextlib.suppress(TimeoutError):
                    while chunk := conn.recv(65536):
                        received += chunk
                length = struct.unpack_from("i", received)[0]
                assert len(received) == 4 + length  # the key, and nothing after it
                assert len(ClusterCipher("the-secret").decrypt(received[4:])) > 32
