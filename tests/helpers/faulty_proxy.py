"""A reverse proxy in front of a real server (moto's S3): it counts requests and injects faults.

The answers are the upstream server's own; a fault changes one answer the way a real network or a
failing archive would: bytes flipped, a connection cut mid-body, a ``Range`` header ignored, a 503.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: Headers passed back from upstream.
_KEEP = ("Content-Type", "ETag", "Content-Range", "Accept-Ranges", "Last-Modified", "x-amz-request-id")


class FaultyProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        #: (method, path, Range header or "") of every request, in order.
        self.requests: list[tuple[str, str, str]] = []
        #: Faults queued per object key suffix (``uuid/inst-0.dcm``); each is used once.
        self._faults: defaultdict[str, list[str]] = defaultdict(list)
        #: Drop every Range header (a server without range support).
        self.ignore_range = False
        #: While this event is clear, object GETs wait (listings pass): a download held mid-way.
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_HEAD(self) -> None:
                proxy._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fault(self, key: str, *kinds: str) -> None:
        """Queue faults for the next GETs of ``key``: corrupt, cut, ignore_range, 503."""
        with self._lock:
            self._faults[key].extend(kinds)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def gets(self, suffix: str = "") -> list[tuple[str, str, str]]:
        with self._lock:
            return [r for r in self.requests if r[0] == "GET" and r[1].split("?")[0].endswith(suffix)]

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_fault(self, path: str) -> str | None:
        with self._lock:
            for key, queue in self._faults.items():
                if queue and path.split("?")[0].endswith(key):
                    return queue.pop(0)
        return None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        range_header = request.headers.get("Range", "")
        with self._lock:
            self.requests.append((request.command, request.path, range_header))
        fault = self._next_fault(request.path) if request.command == "GET" else None
        if "list-type" not in request.path and not self.gate.wait(60):
            raise RuntimeError("the proxy's gate stayed closed for 60 s")
        if fault == "503":
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            request.send_response(503)
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        if self.ignore_range or fault == "ignore_range":
            headers.pop("Range", None)
        upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            upstream.request(request.command, request.path, headers=headers)
            answer = upstream.getresponse()
            body = answer.read()
            status, kept = answer.status, [(k, answer.getheader(k)) for k in _KEEP if answer.getheader(k)]
            length = answer.getheader("Content-Length")
        finally:
            upstream.close()
        if fault == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        request.send_response(status)
        for key, value in kept:
            request.send_header(key, str(value))
        request.send_header(
            "Content-Length", str(len(body)) if request.command == "GET" else str(length or 0)
        )
        request.end_headers()
        if request.command == "HEAD":
            return
        if fault == "cut":
            request.wfile.write(body[: len(body) // 2])
            request.wfile.flush()
            request.connection.shutdown(socket.SHUT_RDWR)
            request.close_connection = True
            return
        request.wfile.write(body)
