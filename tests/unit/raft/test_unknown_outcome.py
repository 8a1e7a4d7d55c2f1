"""Unknown outcomes are found out, not reported as failures; "nothing was written" only when true.

A change that went out to the cluster and got no answer in time may have been applied (issue 21:
a commit answered 503 was on every node). The state answers a repeated envelope with its first
result, so the service sends the same signed command again once the cluster answers and reports
what happened; only when that is impossible does it say "unknown" (``OutcomeUnknown``, exit 10).
A change that never went out (no leader reachable) is ``ClusterUnavailable``: nothing was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.core.errors import (
    EXIT_CLUSTER_UNAVAILABLE,
    EXIT_OUTCOME_UNKNOWN,
    ClusterUnavailable,
    OutcomeUnknown,
)
from mediator_desktop.core.manifest import ManifestBuilder
from mediator_desktop.core.service import Service
from mediator_desktop.raft.store import RaftStore
from tests.helpers.actors import Actor
from tests.unit.raft.test_cluster import Cluster
from tests.unit.raft.test_forward_loss import connection_to
from tests.unit.raft.test_upload_order import on_thread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3)
    yield c
    c.close()


class LoseAnswers:
    """The leader's transport hook: loses its answers to forwarded commands (the first ``n``, or all)."""

    def __init__(self, n: int | None = None) -> None:
        self.n = n
        self.lost = 0

    def __call__(self, node: Any, message: Any) -> bool:
        answer = isinstance(message, dict) and message.get("type") == "apply_command_response"
        if answer and (self.n is None or self.lost < self.n):
            self.lost += 1
            return True
        return False


def service_on_follower(cluster: Cluster, timeout: float) -> tuple[RaftStore, RaftStore, Service]:
    leader, follower = cluster.steady()
    service = Service(follower, Actor("alice").identity, timeout=timeout)
    on_thread(cluster, service.register)
    return leader, follower, service


def test_a_change_whose_answer_was_lost_is_reported_as_applied(cluster: Cluster) -> None:
    """The forward reached the leader and was applied; its answer was lost. The service's first
    wait runs out (shorter than the store's own resend), it sends the same envelope again, and the
    state answers with the first result: the set exists, once, and the caller gets its id."""
    leader, follower, service = service_on_follower(cluster, timeout=0.5)
    lose = LoseAnswers(n=1)
    leader.transport.drop = lose
    try:
        set_id = on_thread(cluster, lambda: service.sets.create("made while an answer was lost"))
    finally:
        leader.transport.drop = None
        service.close()
    assert lose.lost == 1, "the fault never fired: the test proves nothing"
    cluster.tick_until(lambda: all(set_id in n.state.sets for n in cluster.nodes.values()))
    names = [rs.name for rs in follower.state.sets.values()]
    assert names == ["made while an answer was lost"]  # applied once


def test_a_change_that_never_gets_an_answer_is_unknown_not_failed(cluster: Cluster) -> None:
    leader, follower, service = service_on_follower(cluster, timeout=0.4)
    leader.transport.drop = LoseAnswers()
    try:
        with pytest.raises(OutcomeUnknown, match=r"^unknown: the change may have been applied") as caught:
            on_thread(cluster, lambda: service.sets.create("never answered"))
    finally:
        leader.transport.drop = None
        service.close()
    assert caught.value.exit_code == EXIT_OUTCOME_UNKNOWN
    assert "nothing was written" not in str(caught.value)
    # And it was in fact applied: what "unknown" warned of.
    cluster.tick_until(lambda: any(rs.name == "never answered" for rs in follower.state.sets.values()))


def test_a_change_that_never_went_out_says_nothing_was_written_and_counts_one_change(
    cluster: Cluster,
) -> None:
    """No leader reachable (the follower's connection to it is keying): nothing went out. An upload
    of a manifest (chunks and their commit) is one change to the user, not one per command."""
    leader, follower, service = service_on_follower(cluster, timeout=0.3)
    conn = connection_to(follower, leader.self_address)
    key, conn.sendRandKey = conn.sendRandKey, None
    builder = ManifestBuilder()
    builder.add("s3", ("bucket", "object"), size=1, checksum="md5:" + "0" * 32)
    manifest = builder.build()
    try:
        with pytest.raises(ClusterUnavailable, match=r"nothing was written") as caught:
            on_thread(cluster, lambda: service.sets.upload_manifest(manifest))
    finally:
        conn.sendRandKey = key
        service.close()
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.exit_code == EXIT_CLUSTER_UNAVAILABLE
    assert "change(s)" not in str(caught.value), str(caught.value)
    assert all(manifest.id not in n.state.manifests for n in cluster.nodes.values())
