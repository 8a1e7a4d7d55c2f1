"""Composition root: builds a running node from Settings.

A node is: the user's identity, the replicated store (a one-node cluster by default, so the app
works alone; peers join later without migration), the archives (sources), the transfer engine,
and the service facade over them. Frontends (Qt app, CLI, SDK) only ever
talk to what this module hands them.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import replace
from pathlib import Path

from mediator_desktop.core.events import EventBus
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.keystore import read_secret, write_secret
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.core.source import DataSource
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.raft.store import RaftStore
from mediator_desktop.sources import registry
from mediator_desktop.sources.transport import CurlTransport

log = logging.getLogger(__name__)

SECRET_FILE = "cluster.secret"
#: Election timeouts: a lone node has no one to compete with and can elect itself at once.
LONE_TIMEOUTS = (0.1, 0.25)
CLUSTER_TIMEOUTS = (0.8, 2.0)


def _free_loopback_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def cluster_secret(data_dir: Path) -> str:
    """The cluster secret of this node, made on first start (keyring, else a 0600 file)."""
    account = f"cluster-secret:{data_dir.resolve()}"
    secret = read_secret(account, data_dir / SECRET_FILE)
    if secret is None:
        secret = secrets.token_urlsafe(32)
        write_secret(account, data_dir / SECRET_FILE, secret)
    return secret


def source_secret(data_dir: Path, source_id: str) -> str | None:
    """The password or token stored for a source of this node, if any."""
    return read_secret(
        f"source:{source_id}:{data_dir.resolve()}", data_dir / "secrets" / f"{source_id}.secret"
    )


def store_source_secret(data_dir: Path, source_id: str, value: str) -> None:
    write_secret(
        f"source:{source_id}:{data_dir.resolve()}", data_dir / "secrets" / f"{source_id}.secret", value
    )


class Node:
    """One running MEDIator node (desktop app or headless). Use as a context manager."""

    def __init__(self, settings: Settings | None = None, *, settings_path: Path | None = None) -> None:
        self.settings = settings or Settings.load(settings_path)
        self._settings_path = settings_path
        self.events = EventBus()
        #: The archives this node can browse (IDC, by default, works offline from the index the
        #: app ships). Secrets of sources come from the keyring, never from the settings.
        self.sources: dict[str, DataSource] = registry.build(
            list(self.settings.sources),
            self.data_dir,
            lambda source_id: source_secret(self.data_dir, source_id),
        )
        #: Every download of this node shares one transport (one connection pool per archive).
        self.transport = CurlTransport()
        self.downloader = Downloader(self.sources, self.transport, processes=min(2, os.cpu_count() or 1))
        self.identity: Identity | None = None
        self.store: RaftStore | None = None
        self._service: Service | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def service(self) -> Service:
        if self._service is None:
            raise RuntimeError("the node is not started")
        return self._service

    def start(self, ready_timeout: float = 20.0) -> Node:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.settings.raft_address:
            self.settings = replace(self.settings, raft_address=_free_loopback_address())
            self.settings.save(self._settings_path)
        self.identity = Identity.load_or_create(self.data_dir, self.settings.display_name)
        peers = list(self.settings.peers)
        self.store = RaftStore(
            self.settings.raft_address,
            peers,
            self.data_dir,
            cluster_secret(self.data_dir),
            events=self.events,
            election_timeout=CLUSTER_TIMEOUTS if peers else LONE_TIMEOUTS,
        )
        try:
            self.store.wait_ready(ready_timeout)
            self._service = Service(self.store, self.identity, downloader=self.downloader)
            self._service.register()
        except BaseException:
            self.store.close()
            raise
        log.info(
            "node %s started (%s); data in %s",
            self.settings.raft_address,
            "one-node cluster" if not peers else f"{len(peers) + 1} members",
            self.data_dir,
        )
        return self

    def stop(self) -> None:
        self.transport.close()
        self.downloader.close()
        if self.store is not None:
            self.store.close()
            self.store = None
            self._service = None
            log.info("node stopped")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
