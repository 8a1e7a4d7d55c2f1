"""Dynamic membership on running (auto-ticking) nodes: add a member, let it catch up, remove it."""

from __future__ import annotations

import threading
from pathlib import Path

from mediator_desktop.core.events import Event, MemberJoined, VersionCommitted
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.raft.store import RaftStore
from tests.helpers.net import free_ports

SECRET = "membership-secret"


def test_add_and_remove_a_member_at_run_time(tmp_path: Path) -> None:
    a, b, c = (f"127.0.0.1:{p}" for p in free_ports(3))
    first = RaftStore(a, [b], tmp_path / "a", SECRET, election_timeout=(0.2, 0.5))
    second = RaftStore(b, [a], tmp_path / "b", SECRET, election_timeout=(0.2, 0.5))
    third: RaftStore | None = None
    try:
        first.wait_ready()
        second.wait_ready()
        alice = Identity.generate("alice")
        service = Service(first, alice)
        service.register()
        set_id = service.sets.create("grows with the cluster")
        service.sets.commit(set_id, Selection())
        joined = threading.Event()
        first.events.subscribe(lambda e: joined.set(), MemberJoined)
        leader = first if first.status().leader == a else second
        leader.add_member(c)
        assert joined.wait(5), "the first node never announced the third member"
        third = RaftStore(c, [a, b], tmp_path / "c", SECRET, election_timeout=(0.2, 0.5))
        third.wait_ready()
        caught_up = threading.Event()

        def watch(event: Event) -> None:
            if third is not None and set_id in third.state.sets:
                caught_up.set()

        third.events.subscribe(watch)
        if set_id not in third.state.sets:
            assert caught_up.wait(10)
        assert third.state.sets[set_id].head == 1
        assert len(third.status().members) == 3
        # The newcomer takes part: a commit through it reaches the others.
        arrived = threading.Event()
        first.events.subscribe(lambda e: arrived.set() if e.version == 2 else None, VersionCommitted)
        Service(third, alice).sets.commit(set_id, Selection(), message="via the newcomer")
        assert arrived.wait(10), "the commit through the newcomer never reached the first node"
        assert [v.message for v in service.sets.history(set_id)][-1] == "via the newcomer"
        leader.remove_member(c)
        assert [m.address for m in leader.status().members] == sorted([a, b])
    finally:
        for node in (first, second, third):
            if node is not None:
                node.close()
