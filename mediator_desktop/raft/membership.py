"""This node's place in a cluster: its Raft store, pairing and discovery; join, leave and remove.

``Membership`` implements ``core.cluster.Cluster`` (the service's ``cluster`` part). Its ``store``
is one ``core.store.Store`` that stays the same object while the Raft store behind it is replaced
by a join or a leave, so the service never needs to be told; calls made during the switch get
``ClusterUnavailable``.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mediator_desktop._version import __version__
from mediator_desktop.core.cluster import JoinCode, Peer, cluster_id_of
from mediator_desktop.core.errors import (
    ClusterUnavailable,
    MediatorError,
    NotFound,
    PairingError,
    PermissionDenied,
    ValidationError,
)
from mediator_desktop.core.events import ClusterJoined, ClusterLeft, EventBus
from mediator_desktop.core.keystore import read_secret, write_secret
from mediator_desktop.core.settings import SettingsFile
from mediator_desktop.core.state import StoreState
from mediator_desktop.core.store import ClusterStatus
from mediator_desktop.raft.discovery import Discovery
from mediator_desktop.raft.pairing import PairingServer, redeem
from mediator_desktop.raft.store import ELECTION_TIMEOUT, RaftStore

log = logging.getLogger(__name__)

SECRET_FILE = "cluster.secret"
#: Election timeouts: a lone node has no one to compete with and can elect itself at once.
LONE_TIMEOUTS = (0.1, 0.25)
CLUSTER_TIMEOUTS = ELECTION_TIMEOUT


def free_loopback_address() -> str:
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


def not_running() -> ClusterUnavailable:
    return ClusterUnavailable(
        "this node is not running, or is joining or leaving a cluster; try again in a moment"
    )


class SwitchingStore:
    """The node's ``Store``: the Raft store of the moment, the same object across joins and leaves.

    While a membership change is under way (``pause``), writes from any thread but the one making
    the change are refused with ``ClusterUnavailable``: a set acknowledged meanwhile would live only
    in the Raft folder the change is about to replace. ``pause`` first waits for writes already on
    their way, so none is acknowledged after the change has looked at the store.
    """

    def __init__(self, events: EventBus) -> None:
        self.events = events
        self._current: RaftStore | None = None
        self._gate = threading.Condition()
        self._writers = 0
        self._paused: tuple[str, int] | None = None  # (why, the thread making the change)

    def current(self) -> RaftStore:
        store = self._current
        if store is None:
            raise not_running()
        return store

    def switch(self, store: RaftStore | None) -> None:
        self._current = store

    def pause(self, why: str, timeout: float = 30.0) -> None:
        """Refuse writes from other threads (``why`` says to whom), once those under way are done.

        Raises:
            ClusterUnavailable: writes were still under way after ``timeout`` seconds (the pause is
                lifted again).
        """
        with self._gate:
            if self._paused is not None:
                raise ClusterUnavailable(self._paused[0])
            self._paused = (why, threading.get_ident())
            if not self._gate.wait_for(lambda: self._writers == 0, timeout):
                self._paused = None
                raise ClusterUnavailable(
                    f"{self._writers} change(s) of this node are still waiting for the cluster; "
                    "try again once they are done"
                )

    def resume(self) -> None:
        """Let writes through again (a no-op when not paused)."""
        with self._gate:
            self._paused = None

    @contextmanager
    def _writing(self) -> Iterator[RaftStore]:
        with self._gate:
            paused = self._paused
            if paused is not None and paused[1] != threading.get_ident():
                raise ClusterUnavailable(paused[0])
            store = self.current()
            self._writers += 1
        try:
            yield store
        finally:
            with self._gate:
                self._writers -= 1
                self._gate.notify_all()

    @property
    def state(self) -> StoreState:
        return self.current().state

    def submit(self, command: bytes, timeout: float | None = None) -> Any:
        with self._writing() as store:
            return store.submit(command, timeout)

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Any]:
        with self._writing() as store:
            return store.submit_many(commands, timeout)

    def status(self) -> ClusterStatus:
        return self.current().status()

    def close(self) -> None:
        store, self._current = self._current, None
        if store is not None:
            store.close()


JOINING = "this node is joining another cluster; try again in a moment"
LEAVING = "this node is leaving its cluster; try again in a moment"


def _refuse_own_sets(store: RaftStore) -> None:
    own = len(store.state.sets)
    if own:
        raise PairingError(
            f"this node holds {own} replica sets of its own and joining replaces its store; "
            "join from a fresh data folder (MEDIATOR_HOME) or leave those sets first"
        )


class Membership:
    """Raft, pairing and discovery of one node. Join and leave are serialised.

    Args:
        settings: the node's settings file (its cluster address and peers are changed here).
        events: the node's event bus.
        node_id: how discovery names this node (with the port appended).
        on_started: called each time a Raft store is ready (first start, after a join or a
            leave), before anyone else may use it: the service registers its user there.
    """

    def __init__(
        self, settings: SettingsFile, events: EventBus, node_id: str, on_started: Callable[[], None]
    ) -> None:
        self._settings = settings
        self._node_id = node_id
        # A restart field: the node keeps the data folder it started with.
        self._data_dir = settings.current.data_dir
        self._events = events
        self._on_started = on_started
        self.store = SwitchingStore(events)
        self._raft: RaftStore | None = None
        self._pairing: PairingServer | None = None
        self._discovery: Discovery | None = None
        self._changing = threading.Lock()  # one join, leave or removal at a time

    # -- the Cluster part --------------------------------------------------------------------
    def address(self) -> str:
        return self._settings.current.raft_address

    def status(self) -> ClusterStatus:
        return self.store.status()

    def peers(self) -> list[Peer]:
        discovery = self._discovery
        return discovery.peers() if discovery is not None else []

    def create_join_code(self, ttl: float = 600.0) -> str:
        pairing = self._pairing
        if pairing is None:
            raise not_running()
        return pairing.create_code(ttl).text()

    def join(self, code: str, *, ready_timeout: float = 30.0) -> None:
        """Join the cluster of the member that made ``code``.

        This node's own store is replaced by the cluster's, so a node that holds replica sets of
        its own is refused (start from a fresh data folder, or share those sets first).
        """
        parsed = JoinCode.parse(code)
        with self._changing:
            # Writes wait for no one during the switch: a set acknowledged between the check for
            # sets of its own and the removal of the Raft folder would be lost without a word.
            self.store.pause(JOINING)
            try:
                self._join(parsed, ready_timeout)
            finally:
                self.store.resume()

    def _join(self, parsed: JoinCode, ready_timeout: float) -> None:
        store = self.store.current()
        settings = self._settings.current
        members = self._member_addresses()
        if len(members) > 1:
            raise PairingError(
                f"this node is already a member of a cluster of {len(members)}; leave it first "
                "(mediator leave) to join another"
            )
        _refuse_own_sets(store)
        if settings.raft_address.startswith("127.") and not parsed.host.startswith("127."):
            raise PairingError(
                f"this node listens on {settings.raft_address}, which {parsed.host} cannot reach; "
                "set its cluster address to this machine's network address first"
            )
        session = redeem(parsed, settings.raft_address, name=settings.display_name, version=__version__)
        try:  # again, now that the network step is behind: nothing may have landed meanwhile
            _refuse_own_sets(store)
        except PairingError:
            session.close()
            raise
        old_secret, old_peers = cluster_secret(self._data_dir), settings.peers
        self._stop_cluster()
        added = threading.Event()

        def confirm() -> None:
            session.started()
            added.set()

        try:
            self._adopt(
                session.grant.secret,
                tuple(m for m in session.grant.members if m != settings.raft_address),
            )
            # Raft runs with the secret before the member adds us: the change needs us to answer.
            self._start_store(ready_timeout, before_ready=confirm)
        except BaseException as exc:
            session.close()
            if added.is_set():  # the cluster counts us in now: going back alone would cost it its quorum
                log.warning("joined, but catching up failed (%s); trying once more", exc)
                self._start_cluster(ready_timeout)
                self._events.emit(ClusterJoined(self._settings.current.peers))
                return
            log.warning("joining failed (%s); going on alone", exc)
            self._stop_cluster()
            self._adopt(old_secret, old_peers)
            self._start_cluster(ready_timeout)
            if isinstance(exc, MediatorError):
                raise PairingError(f"joining failed: {exc}; this node goes on as before") from None
            raise
        self._start_services()
        peers = self._settings.current.peers
        log.info("joined a cluster of %d members: this node and %s", len(peers) + 1, ", ".join(peers))
        self._events.emit(ClusterJoined(peers))

    def leave(self, *, ready_timeout: float = 30.0) -> None:
        """Leave the cluster and go on alone, with a new secret and an empty store.

        Raises:
            ValidationError: this node has no other members: leaving would only empty its store.
        """
        with self._changing:
            self.store.pause(LEAVING)
            try:
                self._leave(ready_timeout)
            finally:
                self.store.resume()
        log.info("left the cluster: this node goes on alone (a one-node cluster, a new secret)")
        self._events.emit(ClusterLeft())

    def _leave(self, ready_timeout: float) -> None:
        store = self.store.current()
        # The members Raft knows, not the peers this node started with: the node that issued
        # the join codes has none of those.
        if all(m.is_self for m in store.status().members):
            raise ValidationError(
                "this node is not in a cluster with other machines: there is nothing to leave, and "
                "leaving would only delete its replica sets"
            )
        store.leave()
        self._stop_cluster()
        self._adopt(secrets.token_urlsafe(32), ())
        self._start_cluster(ready_timeout)

    def remove_member(self, address: str) -> None:
        """Remove a (dead) member, unless the rest could then not make progress."""
        with self._changing:
            store = self.store.current()
            members = {m.address: m for m in store.status().members}
            if address not in members:
                raise NotFound(f"{address} is not a member of this cluster")
            rest = [m for a, m in members.items() if a != address]
            alive = sum(1 for m in rest if m.connected)
            if alive < len(rest) // 2 + 1:
                raise PermissionDenied(
                    f"removing {address} would leave {alive} of {len(rest)} members reachable, too few to "
                    "agree on anything; bring members back first"
                )
            store.remove_member(address)
            log.info("removed member %s from the cluster", address)
            peers = self._settings.current.peers
            if address in peers:
                self._settings.change(peers=tuple(p for p in peers if p != address))

    # -- starting and stopping ---------------------------------------------------------------
    def start(self, ready_timeout: float) -> None:
        """Start Raft (a one-node cluster on a free loopback port the first time), pairing and
        discovery."""
        if not self._settings.current.raft_address:
            self._settings.change(raft_address=free_loopback_address())
        self._start_cluster(ready_timeout)

    def stop(self) -> None:
        """Stop discovery, pairing and Raft."""
        self._stop_cluster()

    def _member_addresses(self) -> list[str]:
        store = self._raft
        if store is None:
            return []
        return [m.address for m in store.status().members]

    def _add_member(self, address: str) -> None:
        """Called on a pairing thread. Refused while this node joins or leaves a cluster itself: the
        newcomer holds the secret of the cluster this node is leaving."""
        if not self._changing.acquire(blocking=False):
            raise ClusterUnavailable("this member is changing its own membership; ask for a new code later")
        try:
            store = self._raft
            if store is None:
                raise not_running()
            if address in self._member_addresses():
                return
            store.set_election_timeout(CLUSTER_TIMEOUTS)
            store.add_member(address, timeout=20.0)
        finally:
            self._changing.release()

    def _adopt(self, secret: str, peers: tuple[str, ...]) -> None:
        """Take a cluster's secret and members; the node's own log gives way to the cluster's."""
        set_cluster_secret(self._data_dir, secret)
        self._settings.change(peers=peers)
        shutil.rmtree(self._data_dir / "raft", ignore_errors=True)

    def _start_cluster(self, ready_timeout: float) -> None:
        self._start_store(ready_timeout)
        self._start_services()

    def _start_store(self, ready_timeout: float, before_ready: Callable[[], None] | None = None) -> None:
        settings = self._settings.current
        peers = list(settings.peers)
        raft = RaftStore(
            settings.raft_address,
            peers,
            self._data_dir,
            cluster_secret(self._data_dir),
            events=self._events,
            election_timeout=CLUSTER_TIMEOUTS if peers else LONE_TIMEOUTS,
        )
        self._raft = raft
        try:
            if before_ready is not None:
                before_ready()
            raft.wait_ready(ready_timeout)
            self.store.switch(raft)
            self._on_started()
        except BaseException:
            self.store.switch(None)
            self._raft = None
            raft.close()
            raise

    def _start_services(self) -> None:
        """Pairing and discovery, with the secret now in force."""
        settings = self._settings.current
        secret = cluster_secret(self._data_dir)
        host = settings.raft_address.rpartition(":")[0]
        self._pairing = PairingServer(
            host, secret, version=__version__, add_member=self._add_member, members=self._member_addresses
        )
        if settings.discovery:
            self._discovery = Discovery(
                node_id=self._node_id + settings.raft_address.rpartition(":")[2],
                name=settings.display_name,
                raft_address=settings.raft_address,
                cluster_id=cluster_id_of(secret),
                version=__version__,
                members=lambda: set(self._member_addresses()),
                pairing_port=self._pairing.port,
                events=self._events,
            ).start()

    def _stop_cluster(self) -> None:
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        if self._pairing is not None:
            self._pairing.close()
            self._pairing = None
        self.store.switch(None)
        if self._raft is not None:
            self._raft.close()
            self._raft = None
