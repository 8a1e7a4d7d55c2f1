"""A TCP forwarder with a gate: the bytes a server sends back wait until the test opens it.

It stands between a client and a real server to stop the client mid-way through a network step
(a join code being redeemed, say) at a point the test chooses, with no change to either side.
``reached`` is set once a client has sent its first bytes; until ``release()``, the server's
answers are held (the client's requests go through).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpGate:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self.reached = threading.Event()
        self._open = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, name="tcp-gate", daemon=True)

    def start(self) -> TcpGate:
        self._accepting.start()
        return self

    def release(self) -> None:
        """Let the server's answers through, now and from now on."""
        self._open.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self._open.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> TcpGate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, sink, gated in ((client, server, False), (server, client, True)):
                thread = threading.Thread(target=self._pump, args=(source, sink, gated), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if gated:
                    self._open.wait()
                else:
                    self.reached.set()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
