"""A write that races a join: refused while the join is between its steps, never acknowledged and lost.

``join`` checks that the node holds no sets, redeems the code over the network, then replaces its
Raft folder. The test holds the member's answers at a TCP gate, so the joining node waits in the
network step for as long as the test likes, and writes meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar, cast

import pytest

from mediator_desktop.core.cluster import JoinCode
from mediator_desktop.core.errors import ClusterUnavailable, PairingError
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.store import unwrap
from mediator_desktop.node import Node
from mediator_desktop.raft.membership import Membership
from tests.helpers.actors import Actor
from tests.helpers.service import make_node
from tests.helpers.tcp_gate import TcpGate

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")


@pytest.fixture
def nodes() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Polled: replication to another node has no callback to wait on here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def join_held(first: Node, joiner: Node, meanwhile: Callable[[], T]) -> tuple[BaseException | None, T]:
    """``joiner`` joins ``first`` through a TCP gate that holds the member's answers; while they are
    held (the joining node is inside its network step: its check for sets behind it, the removal
    of its Raft folder ahead), ``meanwhile`` runs on another thread. Returns the join's error and
    what ``meanwhile`` returned.

    The join runs on the test's thread (a join made on a worker thread that then ends has its own
    test: tests/integration/test_join_thread.py).
    """
    code = JoinCode.parse(first.service.cluster.create_join_code())
    outcome: list[T] = []
    with TcpGate((code.host, code.port)) as gate:

        def race() -> None:
            try:
                if gate.reached.wait(30):
                    outcome.append(meanwhile())
            finally:
                gate.release()

        racer = threading.Thread(target=race, name="racing-write")
        racer.start()
        error: BaseException | None = None
        try:
            joiner.service.cluster.join(JoinCode(code.host, gate.port, code.expires, code.token).text())
        except PairingError as exc:
            error = exc
        finally:
            gate.release()
            racer.join(30)
    assert outcome, "the join never reached the member, or the racing write raised (see above)"
    return error, outcome[0]


def test_a_write_during_a_join_is_refused_and_nothing_acknowledged_is_lost(
    tmp_path: Path, nodes: ExitStack
) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    there = first.service.sets.create("of the cluster", visibility=Visibility.CLUSTER)
    joiner = nodes.enter_context(make_node(tmp_path, "joiner"))

    def write() -> tuple[str | None, str, list[str]]:
        """A set created during the join: acknowledged (its id) or refused (why); and what a read
        shows meanwhile."""
        seen = [rs.id for rs in joiner.service.sets.list()]
        try:
            return joiner.service.sets.create("made during the join", visibility=Visibility.CLUSTER), "", seen
        except ClusterUnavailable as exc:
            return None, str(exc), seen

    error, (acknowledged, refusal, seen) = join_held(first, joiner, write)
    assert seen == []  # reads go on during the join
    if acknowledged is not None:
        # The other safe outcome: the join sees the set and refuses; the set stays. Not this build's.
        assert isinstance(error, PairingError) and "replica sets of its own" in str(error)
        assert joiner.service.sets.get(acknowledged).name == "made during the join"
        pytest.fail("the write was acknowledged during the join: the store should refuse writes then")
    assert "joining another cluster" in refusal
    assert error is None, error
    assert wait_for(lambda: there in joiner.store.state.sets)
    assert set(joiner.store.state.sets) == set(first.store.state.sets) == {there}
    # Once joined, writes go through again and reach the member.
    later = joiner.service.sets.create("after the join", visibility=Visibility.CLUSTER)
    assert wait_for(lambda: later in first.store.state.sets)


def test_a_set_that_lands_during_the_network_step_makes_the_join_refuse(
    tmp_path: Path, nodes: ExitStack
) -> None:
    """A write that does not come through the node's own store (here straight into its Raft store,
    as a replicated write would) is caught by the check after the network step."""
    first = nodes.enter_context(make_node(tmp_path, "first"))
    joiner = nodes.enter_context(make_node(tmp_path, "joiner"))
    raft = cast(Membership, joiner.service.cluster)._raft
    assert raft is not None
    mallory = Actor("mallory")
    set_id, create = mallory.create("landed meanwhile")

    def land() -> str:
        unwrap(raft.submit(mallory.register()))
        return str(unwrap(raft.submit(create))["set_id"])

    error, landed = join_held(first, joiner, land)
    assert landed == set_id
    assert isinstance(error, PairingError) and "1 replica sets of its own" in str(error)
    assert set_id in joiner.store.state.sets  # kept: the node goes on alone, as before
    assert len(joiner.service.cluster.status().members) == 1
    assert joiner.settings.raft_address not in {m.address for m in first.service.cluster.status().members}
