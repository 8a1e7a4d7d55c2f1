"""Composition root: builds a running node from Settings.

A node is: the user's identity, the replicated store (a one-node cluster by default, so the app
works alone; peers join later without migration), the archives (sources), the transfer engine,
and the service facade over them. Frontends (Qt app, CLI, SDK) only ever
talk to what this module hands them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mediator_desktop import __version__
from mediator_desktop.core.cluster import JoinCode, Peer, cluster_id_of
from mediator_desktop.core.errors import (
    ClusterUnavailable,
    MediatorError,
    NodeRunning,
    NotFound,
    PairingError,
    PermissionDenied,
    ValidationError,
)
from mediator_desktop.core.events import Event, EventBus
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.keystore import read_secret, write_secret
from mediator_desktop.core.locks import FileLock
from mediator_desktop.core.paths import private_dir
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.core.source import DataSource
from mediator_desktop.core.store import ClusterStatus
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.core.tree import TreeCache
from mediator_desktop.raft.discovery import Discovery
from mediator_desktop.raft.pairing import PairingServer, redeem
from mediator_desktop.raft.store import RaftStore
from mediator_desktop.sources import registry
from mediator_desktop.sources.transport import CurlTransport

if TYPE_CHECKING:
    from mediator_desktop.api.server import LocalApi

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


def set_cluster_secret(data_dir: Path, secret: str) -> None:
    """Replace the cluster secret of this node (every member of a cluster shares one)."""
    write_secret(f"cluster-secret:{data_dir.resolve()}", data_dir / SECRET_FILE, secret, replace=True)


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

    def __init__(
        self, settings: Settings | None = None, *, settings_path: Path | None = None, api: bool = False
    ) -> None:
        """Args:
        api: also serve the local HTTP API (``mediator_desktop.api``) for the SDK, the CLI and
            other programs of this user; where it listens goes into ``local-api.json``.
        """
        self.settings = settings or Settings.load(settings_path)
        self._want_api = api
        self.api: LocalApi | None = None
        self._lock: FileLock | None = None
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
        self.pairing: PairingServer | None = None
        self.discovery: Discovery | None = None
        self.store: RaftStore | None = None
        self._service: Service | None = None
        # Versions committed anywhere get their tree summary here, in the background, so the
        # app draws any set at once (``core.tree.TreeCache``).
        self._summaries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tree-summaries")
        self.events.subscribe(self._summarize_later)

    @property
    def settings_path(self) -> Path | None:
        """The settings file this node reads and writes (None: the default one)."""
        return self._settings_path

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def service(self) -> Service:
        if self._service is None:
            raise _not_running()
        return self._service

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
        if not self.settings.raft_address:
            self.settings = replace(self.settings, raft_address=_free_loopback_address())
            self.settings.save(self._settings_path)
        self.identity = Identity.load_or_create(self.data_dir, self.settings.display_name)
        peers = list(self.settings.peers)
        self._start_cluster(ready_timeout)
        log.info(
            "node %s started (%s); data in %s",
            self.settings.raft_address,
            "one-node cluster" if not peers else f"{len(peers) + 1} members",
            self.data_dir,
        )
        if self._want_api:
            from mediator_desktop.api.server import LocalApi

            self.api = LocalApi(self).start()

    def _start_store(self, ready_timeout: float, before_ready: Callable[[], None] | None = None) -> None:
        assert self.identity is not None
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
            if before_ready is not None:
                before_ready()
            self.store.wait_ready(ready_timeout)
            if self._service is None:
                self._service = Service(
                    self.store,
                    self.identity,
                    downloader=self.downloader,
                    cluster=self,
                    sources=self.sources,
                    tree_cache=TreeCache(self.data_dir / "cache" / "trees"),
                )
            else:  # after a join or a leave: the same facade, a new store
                self._service.store = self.store
            self._service.register()
        except BaseException:
            self.store.close()
            raise

    def _summarize_later(self, event: Event) -> None:
        """Called on the raft thread: hands the work to the background."""
        if event.kind == "version_committed" and self._service is not None:
            with contextlib.suppress(RuntimeError):  # the node is stopping
                self._summaries.submit(self._summarize, event.details["set_id"], event.details["version"])

    def _summarize(self, set_id: str, number: int) -> None:
        service = self._service
        if service is None or service.tree_cache is None:
            return
        try:
            manifest_id = service.store.state.versions[set_id][number - 1].manifest_id
            if service.tree_cache.get(manifest_id) is None:
                service.tree_cache.ensure(service.manifest(manifest_id))
        except (MediatorError, LookupError, OSError) as exc:
            log.debug("no tree summary for %s v%s: %s", set_id, number, exc)

    def _start_discovery(self, secret: str) -> None:
        assert self.identity is not None and self.pairing is not None
        self.discovery = Discovery(
            node_id=self.identity.key_id[:16] + self.settings.raft_address.rpartition(":")[2],
            name=self.settings.display_name,
            raft_address=self.settings.raft_address,
            cluster_id=cluster_id_of(secret),
            version=__version__,
            members=lambda: set(self._member_addresses()),
            pairing_port=self.pairing.port,
            events=self.events,
        ).start()

    # -- the cluster (the service facade reaches these as ``service.cluster``) -----------------
    def status(self) -> ClusterStatus:
        """Members and their health, from Raft (not from discovery)."""
        if self.store is None:
            raise _not_running()
        return self.store.status()

    def peers(self) -> list[Peer]:
        """Machines seen on the network, marked member / not member / other cluster."""
        return self.discovery.peers() if self.discovery is not None else []

    def create_join_code(self, ttl: float = 600.0) -> str:
        """A single-use code (valid ``ttl`` seconds) that lets one machine join this cluster."""
        if self.pairing is None:
            raise _not_running()
        return self.pairing.create_code(ttl).text()

    def _member_addresses(self) -> list[str]:
        if self.store is None:
            return []
        return [m.address for m in self.store.status().members]

    def _add_member(self, address: str) -> None:
        """Called on a pairing thread."""
        assert self.store is not None
        if address in self._member_addresses():
            return
        self.store.set_election_timeout(CLUSTER_TIMEOUTS)
        self.store.add_member(address, timeout=20.0)

    def join(self, code: str, *, ready_timeout: float = 30.0) -> None:
        """Join the cluster of the member that made ``code``.

        This node's own store is replaced by the cluster's, so a node that holds replica sets of
        its own is refused (start from a fresh data folder, or share those sets first).
        """
        if self.store is None or self.identity is None:
            raise RuntimeError("start the node before joining")
        parsed = JoinCode.parse(code)
        members = self._member_addresses()
        if len(members) > 1:
            raise PairingError(
                f"this node is already a member of a cluster of {len(members)}; leave it first "
                "(mediator leave) to join another"
            )
        own = [s for s in self.store.state.sets.values()]
        if own:
            raise PairingError(
                f"this node holds {len(own)} replica sets of its own and joining replaces its store; "
                "join from a fresh data folder (MEDIATOR_HOME) or leave those sets first"
            )
        if self.settings.raft_address.startswith("127.") and not parsed.host.startswith("127."):
            raise PairingError(
                f"this node listens on {self.settings.raft_address}, which {parsed.host} cannot reach; "
                "set its cluster address to this machine's network address first"
            )
        session = redeem(
            parsed, self.settings.raft_address, name=self.settings.display_name, version=__version__
        )
        old_secret, old_peers = cluster_secret(self.data_dir), self.settings.peers
        self._stop_cluster()
        added = threading.Event()

        def confirm() -> None:
            session.started()
            added.set()

        try:
            self._adopt(
                session.grant.secret,
                tuple(m for m in session.grant.members if m != self.settings.raft_address),
            )
            # Raft runs with the secret before the member adds us: the change needs us to answer.
            self._start_store(ready_timeout, before_ready=confirm)
        except BaseException as exc:
            session.close()
            if added.is_set():  # the cluster counts us in now: going back alone would cost it its quorum
                log.warning("joined, but catching up failed (%s); trying once more", exc)
                self._start_cluster(ready_timeout)
                self.events.emit("cluster_joined", members=list(self.settings.peers))
                return
            log.warning("joining failed (%s); going on alone", exc)
            if self.store is not None:
                self.store.close()
                self.store = None
            self._adopt(old_secret, old_peers)
            self._start_cluster(ready_timeout)
            if isinstance(exc, MediatorError):
                raise PairingError(f"joining failed: {exc}; this node goes on as before") from None
            raise
        self._start_services()
        self.events.emit("cluster_joined", members=list(self.settings.peers))

    def _adopt(self, secret: str, peers: tuple[str, ...]) -> None:
        """Take a cluster's secret and members; the node's own log gives way to the cluster's."""
        set_cluster_secret(self.data_dir, secret)
        self.settings = replace(self.settings, peers=peers)
        self.settings.save(self._settings_path)
        shutil.rmtree(self.data_dir / "raft", ignore_errors=True)

    def leave(self, *, ready_timeout: float = 30.0) -> None:
        """Leave the cluster and go on alone, with a new secret and an empty store.

        Raises:
            ValidationError: this node has no other members: leaving would only empty its store.
        """
        if self.store is None:
            raise _not_running()
        # The members Raft knows, not the peers this node started with: the node that issued the
        # join codes has none of those.
        if all(m.is_self for m in self.store.status().members):
            raise ValidationError(
                "this node is not in a cluster with other machines: there is nothing to leave, and "
                "leaving would only delete its replica sets"
            )
        self.store.leave()

        self._stop_cluster()
        self._adopt(secrets.token_urlsafe(32), ())
        self._start_cluster(ready_timeout)
        self.events.emit("cluster_left")

    def remove_member(self, address: str) -> None:
        """Remove a (dead) member, unless the rest could then not make progress."""
        status = self.status()
        members = {m.address: m for m in status.members}
        if address not in members:
            raise NotFound(f"{address} is not a member of this cluster")
        rest = [m for a, m in members.items() if a != address]
        alive = sum(1 for m in rest if m.connected)
        if alive < len(rest) // 2 + 1:
            raise PermissionDenied(
                f"removing {address} would leave {alive} of {len(rest)} members reachable, too few to agree "
                "on anything; bring members back first"
            )
        assert self.store is not None
        self.store.remove_member(address)
        if address in self.settings.peers:
            self.settings = replace(
                self.settings, peers=tuple(p for p in self.settings.peers if p != address)
            )
            self.settings.save(self._settings_path)

    def _stop_cluster(self) -> None:
        """Stop discovery, pairing and Raft (before a join or a leave)."""
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        if self.pairing is not None:
            self.pairing.close()
            self.pairing = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _start_cluster(self, ready_timeout: float) -> None:
        self._start_store(ready_timeout)
        self._start_services()

    def _start_services(self) -> None:
        """Pairing and discovery, with the secret now in force."""
        secret = cluster_secret(self.data_dir)
        host = self.settings.raft_address.rpartition(":")[0]
        self.pairing = PairingServer(
            host, secret, version=__version__, add_member=self._add_member, members=self._member_addresses
        )
        if self.settings.discovery:
            self._start_discovery(secret)

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self._service is not None:
            self._service.downloads.close()
        self._summaries.shutdown(wait=True, cancel_futures=True)
        self.transport.close()
        self.downloader.close()
        running = self.store is not None
        self._stop_cluster()
        self._service = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if running:
            log.info("node stopped")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _not_running() -> ClusterUnavailable:
    return ClusterUnavailable(
        "this node is not running, or is joining or leaving a cluster; try again in a moment"
    )
