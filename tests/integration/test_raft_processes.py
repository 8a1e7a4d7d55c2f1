"""Three store nodes as real processes on loopback: fail-over, restarts and lost quorum."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from mediator_desktop.core.errors import ClusterUnavailable
from tests.helpers.actors import Actor
from tests.helpers.processes import NodeError, ProcessCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: The timeout of the write made without quorum, and how long after it its error may come.
WRITE_TIMEOUT = 3.0
ANSWER_BOUND = 0.5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    c = ProcessCluster(tmp_path / "cluster")
    try:
        yield c.start()
    finally:
        c.close()


def submit_anywhere(cluster: ProcessCluster, command: bytes, first: int, deadline: float) -> object:
    """Send ``command`` to live nodes, starting with ``first``, until one confirms it.

    A retry sends the identical envelope, which the store answers with its first result.
    """
    i = first
    while True:
        node = cluster.nodes[i % len(cluster.nodes)]
        try:
            return node.submit(command, timeout=3.0)
        except (NodeError, ClusterUnavailable):
            if time.monotonic() > deadline:
                raise
            i += 1


def prepare(cluster: ProcessCluster, actors: list[Actor]) -> list[str]:
    cluster.leader()
    set_ids = []
    deadline = time.monotonic() + 30
    for n, actor in enumerate(actors):
        submit_anywhere(cluster, actor.register(), n, deadline)
        for command in actor.manifest_commands():
            submit_anywhere(cluster, command, n, deadline)
        set_id, create = actor.create(f"set of {actor.name}", visibility="cluster")
        submit_anywhere(cluster, create, n, deadline)
        set_ids.append(set_id)
    return set_ids


def test_sigkill_of_the_leader_loses_no_acknowledged_commit(cluster: ProcessCluster) -> None:
    actors = [Actor(f"client{i}") for i in range(4)]
    set_ids = prepare(cluster, actors)
    per_client = 500
    acked: list[list[int]] = [[] for _ in actors]
    errors: list[BaseException] = []
    total = threading.Semaphore(0)

    def client(i: int) -> None:
        try:
            head = None
            deadline = time.monotonic() + 150
            for n in range(per_client):
                answer = submit_anywhere(
                    cluster, actors[i].commit(set_ids[i], head, message=f"c{i}-{n}"), i, deadline
                )
                assert isinstance(answer, dict)
                head = answer["version"]
                acked[i].append(head)
                total.release()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            total.release()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(actors))]
    for t in threads:
        t.start()
    for _ in range(600):  # kill the leader once 600 of the 2,000 commits are confirmed
        assert total.acquire(timeout=120)
    leader = cluster.leader()
    leader.kill()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    assert sum(map(len, acked)) == 2000
    survivors = [n for n in cluster.nodes if n.running]
    snaps = cluster.wait_converged()
    for i, set_id in enumerate(set_ids):
        versions = snaps[0]["versions"][set_id]
        assert [v[0] for v in versions] == acked[i] == list(range(1, per_client + 1))
        assert [v[2] for v in versions] == [f"c{i}-{n}" for n in range(per_client)]
    # The killed node comes back and catches up with everything.
    leader.start()
    cluster.leader(among=[*survivors, leader])
    again = cluster.wait_converged()
    assert again[0] == again[-1] and again[0]["versions"] == snaps[0]["versions"]


def test_stopping_and_restarting_all_nodes_keeps_the_state(cluster: ProcessCluster) -> None:
    actors = [Actor("alice"), Actor("bob")]
    set_ids = prepare(cluster, actors)
    deadline = time.monotonic() + 60
    for n in range(20):
        submit_anywhere(cluster, actors[0].commit(set_ids[0], n or None, message=f"m{n}"), n, deadline)
    before = cluster.wait_converged()[0]
    cluster.close()
    cluster.start()
    cluster.leader()
    after = cluster.wait_converged()
    assert all(snap == before for snap in after)


def test_without_quorum_writes_fail_in_bounded_time_and_nothing_is_lost(cluster: ProcessCluster) -> None:
    actors = [Actor("alice")]
    (set_id,) = prepare(cluster, actors)
    deadline = time.monotonic() + 60
    for n in range(10):
        submit_anywhere(cluster, actors[0].commit(set_id, n or None), n, deadline)
    cluster.wait_converged()
    survivor = cluster.nodes[0]
    for node in cluster.nodes[1:]:
        node.stop()
    # The goal (issue 21): a write without quorum fails within its own timeout plus a bound, not
    # after a hidden wait. Timed from the request's send on a control connection opened (and
    # authenticated) before, to the node's answer: the node's submit and one loopback round trip,
    # not the test's connection set-up. ANSWER_BOUND is for the error's own making (a status look)
    # and a wake-up on a loaded machine; a second try or the default 10 s instead of the timeout
    # would miss it.
    with Client(("127.0.0.1", survivor.control_port), authkey=survivor.authkey) as conn:
        command = actors[0].commit(set_id, 10)
        started = time.monotonic()
        conn.send(("submit", command, WRITE_TIMEOUT))
        answered = conn.poll(WRITE_TIMEOUT + 30)
        took = time.monotonic() - started
        assert answered, f"the node did not answer a write without quorum in {took:.1f} s"
        reply = conn.recv()
    assert reply[0] == "raised" and reply[1] in ("ClusterUnavailable", "OutcomeUnknown"), reply
    assert "no quorum" in reply[2], reply
    print(f"timing: a {WRITE_TIMEOUT} s write without quorum failed after {took:.3f} s")
    assert took <= WRITE_TIMEOUT + ANSWER_BOUND, f"a {WRITE_TIMEOUT} s write failed after {took:.2f} s"
    for node in cluster.nodes[1:]:
        node.start()
    cluster.leader()
    snaps = cluster.wait_converged()
    assert [v[0] for v in snaps[0]["versions"][set_id]][:10] == list(range(1, 11))


def test_a_member_process_with_the_wrong_secret_never_joins(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path / "four", n=4)
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not the cluster secret")
    intruder = cluster.nodes[3]
    intruder.secret_file = wrong
    try:
        cluster.start()
        legit = cluster.nodes[:3]
        cluster.leader(among=legit)
        actors = [Actor("alice")]
        deadline = time.monotonic() + 30
        submit_anywhere(cluster, actors[0].register(), 0, deadline)
        assert all(actors[0].key_id in n.snapshot()["users"] for n in legit)
        # It is configured as a member, yet learns nothing and follows no leader.
        assert intruder.snapshot()["users"] == []
        assert intruder.status()["leader"] is None
    finally:
        cluster.close()
