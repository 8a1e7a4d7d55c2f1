"""Runs the local API of a node on a thread, on 127.0.0.1, and publishes where in ``local-api.json``."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

import uvicorn
from starlette import types as asgi

from mediator_desktop._version import __version__
from mediator_desktop.api.app import build_app
from mediator_desktop.core.endpoint import Endpoint
from mediator_desktop.core.service import Service

log = logging.getLogger(__name__)


class LocalApi:
    """The API server of a node's service; ``port`` 0 takes any free port."""

    def __init__(self, service: Service, port: int = 0) -> None:
        self._data_dir = service.settings.data_dir
        self.token = Endpoint.token_for(self._data_dir)
        # IPPROTO_TCP spelt out: asyncio sets TCP_NODELAY only on sockets of that protocol, and
        # without it every answer (headers, then body: two writes) waits 40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = build_app(service, self.token)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            proxy_headers=False,  # no proxy in front of a loopback API: one layer less per request
            http="auto",  # httptools (a dependency) parses requests in C: h11 when it cannot load
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="local-api", daemon=True)

    def _serve(self) -> None:
        warm_up(self.app, self.token)  # the socket listens already: early clients wait in its backlog
        self._server.run(sockets=[self._socket])

    def start(self) -> LocalApi:
        # Listening before the server loop runs: early clients wait in the backlog, never refused.
        self._socket.listen(128)
        self._thread.start()
        Endpoint(self.url, self.token, os.getpid(), __version__).write(self._data_dir)
        log.info("local API on %s (token in %s)", self.url, self._data_dir / "local-api.json")
        return self

    def stop(self) -> None:
        Endpoint.clear(self._data_dir, os.getpid())
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10.0)
        self._socket.close()
        self.app.state.set_answers.close()


def warm_up(app: asgi.ASGIApp, token: str) -> None:
    """Build what FastAPI builds on first use before a client waits for it: the routes of each
    router (their validators and serialisers: about 0.3 s, seconds on a busy machine), a worker
    thread, the imports of the first request. Two reads that change nothing: a set that does not
    exist (the sets router, with the token) and a path that none has (every router)."""

    async def read(path: str) -> None:
        scope: asgi.Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }

        async def receive() -> asgi.Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: asgi.Message) -> None:
            pass

        await app(scope, receive, send)

    async def reads() -> None:
        await read("/v1/sets/" + "0" * 32)
        await read("/v1/warm-up")

    try:
        asyncio.run(reads())
    except Exception:  # only slower first answers: serve anyway
        log.warning("warming the local API up failed; its first answers come later", exc_info=True)
