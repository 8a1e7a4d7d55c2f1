"""A small world for tests of the service's parts: a real one-node Raft store, a local archive of
generated DICOM files, and services of several users over them (each with its own settings file).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from mediator_desktop.core.events import Event
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings, SettingsFile
from mediator_desktop.core.source import DataSource
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.core.tree import TreeCache
from mediator_desktop.node import Node
from mediator_desktop.raft.membership import LONE_TIMEOUTS, free_loopback_address
from mediator_desktop.raft.store import RaftStore
from mediator_desktop.sources.local import LocalFolderSource
from tests.helpers.dicom import make_series
from tests.helpers.net import free_ports
from tests.helpers.transfer import downloader

SOURCE = "lab"
P1 = Pointer.of(SOURCE, "P1")
P2 = Pointer.of(SOURCE, "P2")
P1_SERIES = ("P1", "1.2.1", "1.2.1.1")
P2_SERIES = ("P2", "1.2.2", "1.2.2.1")


class World:
    """A one-node Raft store, a local DICOM folder as the archive ``lab``, and users' services."""

    def __init__(self, root: Path, stack: ExitStack, *, downloads: bool = False) -> None:
        self.root = root
        self._stack = stack
        folder = root / "lab"
        make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
        make_series(folder, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", body_part="HEAD", pixels=8)
        self.source = LocalFolderSource(SOURCE, folder, root / "index" / "lab.sqlite")
        stack.callback(self.source.close)
        self.source.reindex()
        self.store = RaftStore(
            free_loopback_address(),
            [],
            root / "raft-node",
            "unit-test-secret",
            election_timeout=LONE_TIMEOUTS,
        )
        stack.callback(self.store.close)
        self.store.wait_ready(10)
        self.downloader: Downloader | None = None
        if downloads:
            self.downloader = stack.enter_context(downloader(self.source))

    def settings_file(self, name: str, **settings: Any) -> SettingsFile:
        home = self.root / name
        values: dict[str, Any] = {
            "data_dir": home / "data",
            "download_dir": home / "downloads",
            "display_name": name,
            "discovery": False,
            **settings,
        }
        return SettingsFile(Settings(**values), home / "settings.json")

    def service(
        self,
        name: str,
        *,
        sources: bool = True,
        downloads: bool = True,
        tree_cache: TreeCache | None = None,
        check_interval: float | None = None,
        archives: Mapping[str, DataSource] | None = None,
        **settings: Any,
    ) -> Service:
        """A registered user ``name`` with a service of their own over the store (and, beside the
        local folder, the ``archives`` given by id)."""
        service = Service(
            self.store,
            Identity.generate(name),
            sources={SOURCE: self.source, **(archives or {})} if sources else None,
            downloader=self.downloader if downloads else None,
            settings=self.settings_file(name, **settings),
            tree_cache=tree_cache,
            check_interval=check_interval,
        )
        self._stack.callback(service.close)
        service.register()
        return service

    def node_service(self, name: str, *, check_interval: float | None = None) -> Service:
        """A user's service as a node builds it: no archive yet, archives added live from the
        registry (closed with the world)."""
        from mediator_desktop.sources import registry

        service = Service(
            self.store,
            Identity.generate(name),
            sources={},
            settings=self.settings_file(name, sources=()),
            source_builder=lambda config, secret, folder: registry.build_one(config, folder, secret),
            source_kinds=registry.describe,
            check_interval=check_interval,
        )
        self._stack.callback(service.close)
        service.register()
        return service


def home_node(home: Path, name: str = "Ann", **settings: Any) -> Node:
    """A whole node (not started) laid out as ``MEDIATOR_HOME=home`` lays it out, its local API on
    and its settings saved where the SDK and the ``mediator`` command look: what they find."""
    (port,) = free_ports(1)
    values: dict[str, Any] = {
        "data_dir": home / "data",
        "download_dir": home / "downloads",
        "display_name": name,
        "raft_address": f"127.0.0.1:{port}",
        "discovery": False,
        "sources": (),
        "update_check_minutes": 0,
        **settings,
    }
    path = Settings(**values).save(home / "config" / "settings.json")
    return Node(Settings(**values), settings_path=path, api=True)


def make_node(root: Path, name: str, *, discovery: bool = False, api: bool = False, **settings: Any) -> Node:
    """A whole node (not started) of user ``name`` under ``root / name``, on a free loopback port,
    with no archive and the given settings."""
    (port,) = free_ports(1)
    values: dict[str, Any] = {
        "data_dir": root / name / "data",
        "download_dir": root / name / "downloads",
        "display_name": name,
        "raft_address": f"127.0.0.1:{port}",
        "discovery": discovery,
        "sources": (),
        **settings,
    }
    return Node(Settings(**values), settings_path=root / name / "settings.json", api=api)


@contextmanager
def world(root: Path, *, downloads: bool = False) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(root, stack, downloads=downloads)


@contextmanager
def recording(service: Service, *kinds: type[Event]) -> Iterator[list[Event]]:
    """Events of ``kinds`` the service's bus emits while the block runs."""
    seen: list[Event] = []
    stop = service.events.subscribe(seen.append, *kinds)
    try:
        yield seen
    finally:
        stop()
