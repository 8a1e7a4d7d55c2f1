"""Composition root: builds a running node from Settings. Only wiring.

A node is: the user's identity, the cluster membership with its replicated store (a one-node
cluster by default, so the app works alone; peers join later without migration), the archives
(sources), the transfer engine, and the ``Service`` over them. Frontends (Qt app, local API, CLI)
only ever talk to ``node.service``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mediator_desktop.core.errors import NodeRunning
from mediator_desktop.core.events import EventBus
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.keystore import source_secret
from mediator_desktop.core.locks import FileLock
from mediator_desktop.core.paths import private_dir
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings, SettingsFile
from mediator_desktop.core.store import Store
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.core.tree import TreeCache
from mediator_desktop.raft.membership import Membership, cluster_secret, not_running, set_cluster_secret
from mediator_desktop.sources import registry
from mediator_desktop.sources.clinical import PandasTables
from mediator_desktop.sources.doi import create_minter
from mediator_desktop.sources.transport import CurlTransport

if TYPE_CHECKING:
    from mediator_desktop.api.server import LocalApi

__all__ = ["Node", "cluster_secret", "set_cluster_secret"]  # the CLI sets a lab server's secret

log = logging.getLogger(__name__)


def _check_interval() -> float | None:
    """``MEDIATOR_CHECK_SECONDS``: seconds between scheduled update checks instead of the setting's
    minutes (for tests and benchmarks that cannot wait a minute)."""
    value = os.environ.get("MEDIATOR_CHECK_SECONDS")
    return float(value) if value else None


def _seconds(name: str, default: float) -> float:
    """A number of seconds from the environment (tests and benchmarks cannot wait), else ``default``."""
    value = os.environ.get(name)
    return float(value) if value else default


class Node:
    """One running MEDIator node (desktop app or headless). Use as a context manager.

    Args:
        settings: the settings to start with (default: the settings file's).
        settings_path: the settings file (default: the one under the config folder).
        api: also serve the local HTTP API (``mediator_desktop.api``) for the SDK, the CLI and
            other programs of this user; where it listens goes into ``local-api.json``.
    """

    def __init__(
        self, settings: Settings | None = None, *, settings_path: Path | None = None, api: bool = False
    ) -> None:
        self._settings = SettingsFile(settings, settings_path)
        # A restart field: the node keeps the data folder it started with.
        self._data_dir = self._settings.current.data_dir
        self._want_api = api
        self.api: LocalApi | None = None
        self.events = EventBus()
        self._lock: FileLock | None = None
        self._service: Service | None = None
        self._membership: Membership | None = None
        self._transport: CurlTransport | None = None
        self._downloader: Downloader | None = None

    @property
    def settings(self) -> Settings:
        return self._settings.current

    @property
    def settings_path(self) -> Path:
        return self._settings.path

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def service(self) -> Service:
        """The one door to this node (``core.service``)."""
        if self._service is None:
            raise not_running()
        return self._service

    @property
    def store(self) -> Store:
        """The replicated store, the same object across joins and leaves (for tests and tools)."""
        if self._membership is None:
            raise not_running()
        return self._membership.store

    def start(self, ready_timeout: float = 20.0) -> Node:
        private_dir(self.data_dir)
        try:
            self._lock = FileLock(self.data_dir / "node.lock")
        except BlockingIOError:
            raise NodeRunning(
                f"a node already runs on {self.data_dir}; use it (the CLI and SDK find it by themselves) "
                "or stop it first"
            ) from None
        try:
            self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, ready_timeout: float) -> None:
        data_dir = self.data_dir
        identity = Identity.load_or_create(data_dir, self.settings.display_name)
        # The archives (IDC, by default, works offline from the index the app ships); their
        # secrets come from the keyring, never from the settings.
        sources = registry.build(
            list(self.settings.sources), data_dir, lambda source_id: source_secret(data_dir, source_id)
        )
        tables = PandasTables()
        tables.warm()  # pandas loads in the background: the first table added is not slowed by it
        # Every download of this node shares one transport (one connection pool per archive).
        self._transport = CurlTransport()
        self._downloader = Downloader(sources, self._transport, processes=min(2, os.cpu_count() or 1))
        self._membership = membership = Membership(
            self._settings, self.events, identity.key_id[:16], on_started=lambda: self.service.register()
        )
        self._service = Service(
            membership.store,
            identity,
            sources=sources,
            downloader=self._downloader,
            cluster=membership,
            settings=self._settings,
            tree_cache=TreeCache(data_dir / "cache" / "trees"),
            source_builder=lambda config, secret, folder: registry.build_one(config, folder, secret),
            source_kinds=registry.describe,
            check_interval=_check_interval(),
            table_engine=tables,
            minters=create_minter,
            mint_backoff=_seconds("MEDIATOR_MINT_RETRY_SECONDS", 30.0),
        )
        membership.start(ready_timeout)
        self._service.tracking.start()
        self._service.publishing.start()
        peers = self.settings.peers
        log.info(
            "node %s started (%s); data in %s",
            self.settings.raft_address,
            "one-node cluster" if not peers else f"{len(peers) + 1} members",
            data_dir,
        )
        if self._want_api:
            from mediator_desktop.api.server import LocalApi

            self.api = LocalApi(self.service).start()

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self._service is not None:
            self._service.close()
        if self._transport is not None:
            self._transport.close()
        if self._downloader is not None:
            self._downloader.close()
        running = self._membership is not None
        if self._membership is not None:
            self._membership.stop()
        self._service = self._membership = self._transport = self._downloader = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if running:
            log.info("node stopped")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
