"""Discovery and pairing on loopback: real nodes, real zeroconf, real Raft membership changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import pytest
from zeroconf import ServiceInfo, Zeroconf

from mediator_desktop.core.cluster import PROTOCOL, JoinCode, Peer
from mediator_desktop.core.errors import PairingError, PermissionDenied, ValidationError
from mediator_desktop.core.events import Event, MemberJoined, MemberLeft, PeerSeen
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.store import ClusterStatus
from mediator_desktop.node import Node
from mediator_desktop.raft.discovery import SERVICE, Discovery
from mediator_desktop.raft.membership import Membership
from mediator_desktop.raft.pairing import redeem
from tests.helpers.service import make_node


def status(node: Node) -> ClusterStatus:
    return node.service.cluster.status()


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    """Wait on an event bus condition: polled only because Raft replication has no callback here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_two_newcomers_join_a_one_node_cluster_and_share_sets(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    set_id = first.service.sets.create("before anyone joined", visibility=Visibility.CLUSTER)
    joined: list[str] = []
    first.events.subscribe(lambda e: joined.append(e.address), MemberJoined)
    second = nodes.enter_context(make_node(tmp_path, "second"))
    third = nodes.enter_context(make_node(tmp_path, "third"))
    started = time.monotonic()
    second.service.cluster.join(first.service.cluster.create_join_code())
    assert wait_for(lambda: set_id in second.store.state.sets), "the set never reached the newcomer"
    join_to_visible = time.monotonic() - started
    third.service.cluster.join(first.service.cluster.create_join_code())
    assert wait_for(lambda: set_id in third.store.state.sets)
    assert joined == [second.settings.raft_address, third.settings.raft_address]
    later = third.service.sets.create("made by the third", visibility=Visibility.CLUSTER)
    assert wait_for(lambda: later in first.store.state.sets and later in second.store.state.sets)
    now = status(first)
    assert len(now.members) == 3 and now.has_quorum
    assert join_to_visible <= 5.0, f"join to visible took {join_to_visible:.1f} s"
    print(f"join_to_visible_s={join_to_visible:.2f}")


def test_wrong_used_expired_and_foreign_codes_are_refused(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    other = nodes.enter_context(make_node(tmp_path, "other"))
    pairing = cast(Membership, first.service.cluster)._pairing
    assert pairing is not None
    code = JoinCode.parse(first.service.cluster.create_join_code())
    forged = JoinCode(code.host, code.port, code.expires, bytes(6))
    with pytest.raises(PairingError, match="wrong, expired or used"):
        redeem(forged, other.settings.raft_address, name="other", version="0.1.0")
    with pytest.raises(PairingError, match="expired at"):
        redeem(
            JoinCode(code.host, code.port, int(time.time()) - 60, code.token),
            "127.0.0.1:1",
            name="x",
            version="0",
        )
    with pytest.raises(PairingError, match=rf"protocol {PROTOCOL} .* you have protocol 99"):
        redeem(code, other.settings.raft_address, name="other", version="9.0", protocol=99)
    stale = JoinCode.parse(first.service.cluster.create_join_code())
    pairing._codes[stale.token] = int(time.time()) - 1  # expired on the member's side
    with pytest.raises(PairingError, match="wrong, expired or used"):
        redeem(stale, other.settings.raft_address, name="other", version="0.1.0")
    other.service.cluster.join(code.text())  # the real code still works once...
    assert wait_for(lambda: len(status(first).members) == 2)
    late = nodes.enter_context(make_node(tmp_path, "late"))
    with pytest.raises(PairingError, match="wrong, expired or used"):  # ...and only once
        late.service.cluster.join(code.text())
    assert len(status(first).members) == 2


def test_a_newcomer_that_never_starts_leaves_the_cluster_as_it_was(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    code = JoinCode.parse(first.service.cluster.create_join_code())
    session = redeem(code, "127.0.0.1:9", name="ghost", version="0.1.0")
    assert session.grant.members == sorted([first.settings.raft_address, "127.0.0.1:9"])
    session.close()  # the newcomer gives up before its Raft runs
    set_id = first.service.sets.create("still writable")  # no member was added: quorum is intact
    assert set_id in first.store.state.sets and len(status(first).members) == 1


def test_repeated_wrong_codes_are_rate_limited(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    code = JoinCode.parse(first.service.cluster.create_join_code())
    for _ in range(5):
        with pytest.raises(PairingError, match="wrong"):
            redeem(
                JoinCode(code.host, code.port, code.expires, b"guess!"), "127.0.0.1:9", name="x", version="0"
            )
    with pytest.raises(PairingError, match="too many wrong join codes"):
        redeem(code, "127.0.0.1:9", name="x", version="0")  # even the right one, for a minute


def test_a_node_with_sets_of_its_own_is_not_silently_emptied(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    busy = nodes.enter_context(make_node(tmp_path, "busy"))
    busy.service.sets.create("mine")
    with pytest.raises(PairingError, match="holds 1 replica sets of its own"):
        busy.service.cluster.join(first.service.cluster.create_join_code())
    assert [s.name for s in busy.service.sets.list()] == ["mine"]


def test_leave_and_remove_with_a_quorum_check(tmp_path: Path, nodes: ExitStack) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    second = make_node(tmp_path, "second").start()
    third = nodes.enter_context(make_node(tmp_path, "third"))
    try:
        second.service.cluster.join(first.service.cluster.create_join_code())
        third.service.cluster.join(first.service.cluster.create_join_code())
        assert wait_for(lambda: all(m.connected for m in status(first).members))
        third.service.cluster.leave()
        assert wait_for(lambda: len(status(first).members) == 2)
        assert status(third).members[0].is_self and len(status(third).members) == 1
        dead = second.settings.raft_address
    finally:
        second.stop()
    assert wait_for(lambda: not next(m for m in status(first).members if m.address == dead).connected)
    with pytest.raises(PermissionDenied, match=r"would leave .* too few"):
        # two members, one dead: removing the live one would leave none to agree
        first.service.cluster.remove_member(first.settings.raft_address)
    events: list[Event] = []
    first.events.subscribe(events.append)
    first.service.cluster.remove_member(dead)  # one of two left alive is enough once the dead one is out
    assert [m.address for m in status(first).members] == [first.settings.raft_address]
    assert any(isinstance(e, MemberLeft) for e in events)


def test_discovery_lists_peers_and_ignores_malformed_adverts(tmp_path: Path, nodes: ExitStack) -> None:
    seen = threading.Event()
    first = nodes.enter_context(make_node(tmp_path, "first", discovery=True))
    first.events.subscribe(lambda e: seen.set() if e.name == "second" else None, PeerSeen)
    started = time.monotonic()
    second = nodes.enter_context(make_node(tmp_path, "second", discovery=True))
    assert seen.wait(20), "the first node never saw the second"
    time_to_peer = time.monotonic() - started

    def ours() -> list[Peer]:  # other machines on the network (or other test runs) may advertise too
        return [
            p
            for p in first.service.cluster.peers()
            if p.raft_address == second.settings.raft_address or p.name == "junk"
        ]

    (peer,) = ours()
    assert (
        peer.name == "second"
        and peer.status == "other cluster"
        and peer.raft_address == second.settings.raft_address
    )
    zc = Zeroconf(interfaces=["127.0.0.1"])
    try:  # a stranger with junk properties: ignored, and the browser keeps working
        junk = ServiceInfo(
            SERVICE,
            f"junk.{SERVICE}",
            addresses=[bytes([127, 0, 0, 1])],
            port=1,
            properties={b"cluster": b"\xff"},
        )
        zc.register_service(junk, cooperating_responders=True)
        second.service.cluster.join(first.service.cluster.create_join_code())
        assert wait_for(lambda: [p.status for p in ours()] == ["member"], 20)
        assert [p.name for p in ours()] == ["second"]  # the junk advert is not listed
    finally:
        zc.close()
    print(f"time_to_see_peer_s={time_to_peer:.2f}")


def test_discovery_stands_alone(tmp_path: Path) -> None:
    """Two bare advertisers, no node: the lookup runs off zeroconf's thread and parses strictly."""
    a_seen = threading.Event()
    a = Discovery(
        node_id="a", name="A", raft_address="127.0.0.1:1111", cluster_id="c1", version="0", members=set
    )
    b = Discovery(
        node_id="b",
        name="B",
        raft_address="127.0.0.1:2222",
        cluster_id="c1",
        version="0",
        members=lambda: {"127.0.0.1:2222"},
    )
    a.events.subscribe(lambda e: a_seen.set() if e.node_id == "b" else None, PeerSeen)
    try:
        a.start()
        b.start()
        assert a_seen.wait(20)
        assert [(p.node_id, p.status) for p in a.peers() if p.node_id in ("a", "b")] == [("b", "not member")]
        assert wait_for(
            lambda: (
                [(p.node_id, p.status) for p in b.peers() if p.node_id in ("a", "b")] == [("a", "not member")]
            ),
            20,
        )
    finally:
        a.close()
        b.close()


def test_the_node_that_invited_can_leave_and_the_other_goes_on(tmp_path: Path, nodes: ExitStack) -> None:
    """The inviter has no configured peers, only Raft members: it used to drop its store without
    telling the cluster, and the other member, one of two reachable, could never write again."""
    first = nodes.enter_context(make_node(tmp_path, "first"))
    second = nodes.enter_context(make_node(tmp_path, "second"))
    second.service.cluster.join(first.service.cluster.create_join_code())
    assert wait_for(lambda: all(m.connected for m in status(second).members))
    first.service.cluster.leave()
    assert wait_for(lambda: len(status(second).members) == 1)
    second.service.sets.create("after the inviter left")  # a quorum of one: writes go on
    assert len(status(first).members) == 1


def test_a_node_alone_has_nothing_to_leave(tmp_path: Path, nodes: ExitStack) -> None:
    alone = nodes.enter_context(make_node(tmp_path, "alone"))
    set_id = alone.service.sets.create("mine")
    with pytest.raises(ValidationError, match="nothing to leave"):
        alone.service.cluster.leave()
    assert set_id in alone.store.state.sets
