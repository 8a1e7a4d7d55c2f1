"""Three hosts in network namespaces: discovery across hosts, pairing, replication, a partition.

Skipped with the reason where namespaces cannot be made (not root); CI runs as root, so there it
runs. Figures for the closing note are printed (``pytest -s``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.cluster import JoinCode
from mediator_desktop.core.errors import MediatorError
from tests.helpers import netns
from tests.helpers.cluster_node import RemoteNode, eventually

REPO = Path(__file__).resolve().parents[2]
RAFT_PORT = 47000

pytestmark = pytest.mark.timeout(240)

#: Issue 21: the longest time without a successful write while a majority is up (leader lost).
GOAL_WRITE_WINDOW_S = 3.0
#: Issue 6: from entering a join code to a replicated set being visible on the newcomer.
GOAL_JOIN_TO_VISIBLE_S = 5.0


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[netns.Hosts, list[RemoteNode]]]:
    reason = netns.available()
    if reason is not None:
        pytest.skip(reason)
    nodes: list[RemoteNode] = []
    with netns.Hosts(3) as h:
        h.started = time.monotonic()  # type: ignore[attr-defined]
        try:
            for i in range(3):
                home = tmp_path / f"host{i}"
                home.mkdir()
                nodes.append(
                    RemoteNode(h.run_prefix(i), home, f"{h.ip(i)}:{RAFT_PORT}", tmp_path / f"h{i}.sock", REPO)
                )
            yield h, nodes
        finally:
            for node in nodes:
                node.stop()


def leader_of(nodes: list[RemoteNode]) -> str | None:
    leaders = {n.call("status")["leader"] for n in nodes}
    return leaders.pop() if len(leaders) == 1 else None


def test_three_hosts_discover_pair_replicate_and_survive_a_partition(
    hosts: tuple[netns.Hosts, list[RemoteNode]],
) -> None:
    h, (a, b, c) = hosts
    figures: dict[str, float] = {}
    started = time.monotonic()
    seen = eventually(lambda: {p["raft_address"] for p in a.call("peers")} >= {b.address, c.address}, 30)
    assert seen, f"host 0 saw only {a.call('peers')}"
    figures["time_to_see_peers_s"] = time.monotonic() - started
    # from launching the three processes (Python start, node start, mDNS probing) to both seen
    figures["start_to_seeing_peers_s"] = time.monotonic() - h.started  # type: ignore[attr-defined]
    assert {p["status"] for p in a.call("peers")} == {"other cluster"}  # seen, not trusted

    set_id = a.call("create_set", "made on host 0 before anyone joined")
    code = JoinCode.parse(a.call("join_code"))
    forged = JoinCode(code.host, code.port, code.expires, b"forged").text()
    with pytest.raises(MediatorError, match="wrong, expired or used"):
        c.call("join", forged)
    expired = JoinCode(code.host, code.port, int(time.time()) - 120, code.token).text()
    with pytest.raises(MediatorError, match="expired at"):
        c.call("join", expired)

    for newcomer in (b, c):
        # The goal (issue 6): from entering a join code to a replicated set visible on the newcomer.
        code_text = a.call("join_code")
        began = time.monotonic()
        newcomer.call("join", code_text)
        assert eventually(lambda n=newcomer: set_id in n.call("versions")), (
            "the set never reached the newcomer"
        )
        joined = figures[f"join_to_visible_s_{newcomer.address}"] = time.monotonic() - began
        assert joined <= GOAL_JOIN_TO_VISIBLE_S, (
            f"the set reached {newcomer.address} {joined:.2f} s after the join"
        )
    assert eventually(lambda: {p["status"] for p in a.call("peers")} == {"member"}, 30)
    assert eventually(lambda: leader_of([a, b, c]))

    # partition: cut the leader's host off
    leader = leader_of([a, b, c])
    by_address = {n.address: (i, n) for i, n in enumerate((a, b, c))}
    cut_index, cut = by_address[leader]  # type: ignore[index]
    majority = [n for n in (a, b, c) if n is not cut]
    own = {n.address: n.call("create_set", f"owned by {n.address}") for n in (a, b, c)}
    acknowledged = {set_id: 1, **{s: 1 for s in own.values()}}
    assert eventually(lambda: all(set(acknowledged) <= set(n.call("versions")) for n in (a, b, c)))
    for n in majority:  # a write gives up after 1 s and is tried again, so the window is seen closely
        n.call("timeout", 1.0)
    # The goal (issue 21): no window over 3 s without a successful write while a majority is up,
    # timed from the moment the link starts to go down (before the cut, so the window measured
    # holds the real one) to the first acknowledged write on the majority's side.
    cut_at = time.monotonic()
    h.cut(cut_index)
    errors: list[str] = []
    writer = majority[0]
    while True:  # the majority elects a new leader and takes writes again
        try:
            acknowledged[own[writer.address]] = writer.call("commit", own[writer.address], "after the cut")
            break
        except MediatorError as exc:
            errors.append(str(exc))
            # only a guard that ends the loop: the goal is asserted below, with the figure it missed by
            assert time.monotonic() - cut_at < 20, f"the majority never took writes again: {errors[-3:]}"
    figures["majority_writes_again_s"] = time.monotonic() - cut_at
    assert figures["majority_writes_again_s"] <= GOAL_WRITE_WINDOW_S, (
        f"failover took too long: {figures}, {errors[-3:]}"
    )
    more = majority[1].call("create_set", "made on the majority side")
    acknowledged[more] = 1
    cut.call("timeout", 2.0)
    # The cut-off node may have sent it on (to itself as a stale leader, or to a peer it can no
    # longer reach): refused, or said to be of unknown outcome, never acknowledged.
    with pytest.raises(MediatorError, match=r"ClusterUnavailable|OutcomeUnknown"):
        cut.call("commit", own[cut.address], "on the minority side")

    h.mend(cut_index)
    everyone = (a, b, c)
    assert eventually(
        lambda: all(
            all(n.call("versions").get(s, 0) >= v for s, v in acknowledged.items()) for n in everyone
        ),
        30,
    ), "the hosts did not converge after the link came back"
    versions = [n.call("versions") for n in everyone]
    assert versions[0] == versions[1] == versions[2]
    print("netns figures:", {k: round(v, 2) for k, v in figures.items()})
