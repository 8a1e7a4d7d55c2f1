"""Loopback ports for servers that tests start, and the life of an emulator's HTTP server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def dispatching_handler(
    handle: Callable[[BaseHTTPRequestHandler, str], None],
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE"),
) -> type[BaseHTTPRequestHandler]:
    """A quiet HTTP/1.1 request handler class that hands each request of ``methods`` to
    ``handle(request, method)`` (an emulator's own dispatch)."""

    def method(name: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def do(request: BaseHTTPRequestHandler) -> None:
            handle(request, name)

        return do

    def log_message(request: BaseHTTPRequestHandler, *args: object) -> None:
        pass

    namespace: dict[str, Any] = {f"do_{m}": method(m) for m in methods}
    namespace.update(protocol_version="HTTP/1.1", log_message=log_message)
    return type("Handler", (BaseHTTPRequestHandler,), namespace)


def send_body(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str | None = None) -> None:
    """Answer ``request`` with ``status`` and ``body`` (its length, and ``kind`` as Content-Type)."""
    request.send_response(status)
    if kind is not None:
        request.send_header("Content-Type", kind)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


class LoopbackServer:
    """An emulator's HTTP server on a loopback port, served on a daemon thread; a context manager.

    Subclasses build their ``ThreadingHTTPServer`` and hand it to ``_serve``. ``start`` may be
    called before ``with`` (``with Emulator(...).start() as e``): a running server is not started twice.
    """

    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, server: ThreadingHTTPServer) -> None:
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self, banner: str) -> None:
        """Standalone use (``python -m tests.helpers.X``): serve, say ``banner``, stop on Ctrl-C."""
        self.start()
        print(f"{banner}; Ctrl-C stops it", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stop()


class Faults:
    """Faults an emulator answers with, queued per endpoint (or ``*`` for any); each is used once,
    in order. What a fault is (``503``, ``delay:2``, ``drop``...) is the emulator's business."""

    def __init__(self) -> None:
        self._queue: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, endpoint: str, *kinds: str) -> None:
        with self._lock:
            self._queue.setdefault(endpoint, []).extend(kinds)

    def next(self, endpoint: str) -> str | None:
        with self._lock:
            for name in (endpoint, "*"):
                queue = self._queue.get(name)
                if queue:
                    return queue.pop(0)
            return None


class Reply(Exception):
    """An answer an emulator's handler decides deep inside: its status and JSON body."""

    def __init__(self, status: int, body: Mapping[str, Any] | None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
