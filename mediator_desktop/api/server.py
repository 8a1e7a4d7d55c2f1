"""Runs the local API of a node on a thread, on 127.0.0.1, and publishes where in ``local-api.json``."""

from __future__ import annotations

import logging
import os
import socket
import threading

import uvicorn

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
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            build_app(service, self.token),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="local-api", daemon=True)

    def _serve(self) -> None:
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
