"""One node's membership, alone: start, status, join codes, and the refusals of leave and remove."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.cluster import JoinCode
from mediator_desktop.core.errors import ClusterUnavailable, NotFound, PairingError, ValidationError
from mediator_desktop.core.events import ClusterLeft, Event, EventBus
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings, SettingsFile
from mediator_desktop.raft.membership import Membership, SwitchingStore, cluster_secret, set_cluster_secret


class Lone:
    """A membership on a fresh data folder, discovery off, with a service over its store."""

    def __init__(self, root: Path) -> None:
        self.settings = SettingsFile(
            Settings(data_dir=root / "data", display_name="alice", discovery=False), root / "settings.json"
        )
        self.events = EventBus()
        self.started = 0
        self.membership = Membership(self.settings, self.events, "unit-node", on_started=self._on_started)
        self.service = Service(
            self.membership.store,
            Identity.generate("alice"),
            cluster=self.membership,
            settings=self.settings,
        )

    def _on_started(self) -> None:  # as the node does: the user is registered on every start
        self.started += 1
        self.service.register()


@pytest.fixture
def lone(tmp_path: Path) -> Iterator[Lone]:
    node = Lone(tmp_path)
    try:
        node.membership.start(ready_timeout=10)
        yield node
    finally:
        node.service.close()
        node.membership.stop()


def test_start_makes_a_one_node_cluster_on_loopback(lone: Lone) -> None:
    address = lone.membership.address()
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1" and 0 < int(port) < 65536
    assert lone.settings.current.raft_address == address
    assert Settings.load(lone.settings.path).raft_address == address  # saved for the next start
    assert lone.started == 1
    assert lone.service.users() == {lone.service.key_id: "alice"}


def test_status_has_one_member_that_is_self(lone: Lone) -> None:
    status = lone.service.cluster.status()
    (member,) = status.members
    address = lone.membership.address()
    assert (member.address, member.is_self, member.connected, member.is_leader) == (address, True, True, True)
    assert status.self_address == address and status.leader == address and status.has_quorum


def test_peers_are_empty_without_discovery(lone: Lone) -> None:
    assert lone.service.cluster.peers() == []


def test_create_join_code_returns_a_parseable_code(lone: Lone) -> None:
    before = time.time()
    text = lone.service.cluster.create_join_code(ttl=120)
    code = JoinCode.parse(text)
    assert code.host == "127.0.0.1"
    assert 0 < code.port < 65536 and str(code.port) != lone.membership.address().rpartition(":")[2]
    assert before + 120 <= code.expires <= before + 120 + 120
    assert not code.expired()
    assert JoinCode.parse(text.lower().replace("-", " ")) == code  # as typed back
    other = JoinCode.parse(lone.service.cluster.create_join_code())
    assert other.token != code.token  # single use: every code has its own token


def test_leave_alone_is_refused_and_keeps_the_sets(lone: Lone) -> None:
    set_id = lone.service.sets.create("Mine alone")
    secret = cluster_secret(lone.settings.current.data_dir)
    left: list[Event] = []
    lone.events.subscribe(left.append, ClusterLeft)
    with pytest.raises(ValidationError, match="nothing to leave"):
        lone.service.cluster.leave(ready_timeout=10)
    assert lone.service.sets.get(set_id).name == "Mine alone"
    assert cluster_secret(lone.settings.current.data_dir) == secret
    assert left == [] and lone.started == 1
    lone.service.sets.set_visibility(set_id, Visibility.CLUSTER)  # the store still takes changes
    assert lone.service.sets.get(set_id).visibility is Visibility.CLUSTER


def test_remove_member_of_an_unknown_address_is_not_found(lone: Lone) -> None:
    with pytest.raises(NotFound, match=r"10\.9\.9\.9:4000"):
        lone.service.cluster.remove_member("10.9.9.9:4000")
    assert len(lone.service.cluster.status().members) == 1


def test_join_with_sets_of_its_own_is_refused(lone: Lone, tmp_path: Path) -> None:
    lone.service.sets.create("Would be lost")
    code = JoinCode.new("127.0.0.1", 9, ttl=60).text()  # never redeemed: refused before
    with pytest.raises(PairingError, match="replica sets of its own"):
        lone.service.cluster.join(code, ready_timeout=5)
    with pytest.raises(ValidationError):
        lone.service.cluster.join("not a code")
    assert len(lone.service.sets.list()) == 1
    assert lone.service.cluster.status().has_quorum


def test_after_stop_the_store_and_cluster_are_unavailable(lone: Lone) -> None:
    set_id = lone.service.sets.create("Before the stop")
    lone.membership.stop()
    with pytest.raises(ClusterUnavailable):
        _ = lone.membership.store.state
    with pytest.raises(ClusterUnavailable):
        lone.service.sets.get(set_id)
    with pytest.raises(ClusterUnavailable):
        lone.service.sets.create("After the stop")
    with pytest.raises(ClusterUnavailable):
        lone.service.cluster.status()
    with pytest.raises(ClusterUnavailable):
        lone.service.cluster.create_join_code()
    with pytest.raises(ClusterUnavailable):
        lone.membership.store.current()


def test_a_restart_keeps_the_address_and_the_sets(tmp_path: Path) -> None:
    node = Lone(tmp_path)
    try:
        node.membership.start(ready_timeout=10)
        address = node.membership.address()
        set_id = node.service.sets.create("Survives a restart")
        node.membership.stop()
        node.membership.start(ready_timeout=10)
        assert node.membership.address() == address
        assert node.service.sets.get(set_id).name == "Survives a restart"
        assert node.started == 2
    finally:
        node.service.close()
        node.membership.stop()


def test_switching_store_without_a_store_is_unavailable() -> None:
    store = SwitchingStore(EventBus())
    for read in (lambda: store.state, store.status, store.current):
        with pytest.raises(ClusterUnavailable):
            read()
    with pytest.raises(ClusterUnavailable):
        store.submit(b"command", 1.0)
    with pytest.raises(ClusterUnavailable):
        store.submit_many([b"command"], 1.0)
    store.close()  # closing nothing is fine


def test_cluster_secret_is_made_once_and_can_be_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = cluster_secret(data)
    assert len(first) >= 32 and cluster_secret(data) == first
    set_cluster_secret(data, "the-cluster's-secret")
    assert cluster_secret(data) == "the-cluster's-secret"
