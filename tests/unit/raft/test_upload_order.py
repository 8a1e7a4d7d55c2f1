"""A multi-command upload whose batch k is lost at the transport while batch k+1 is applied.

The follower forwards each batch to the leader once. Here the forward of one manifest chunk is
dropped by the follower's own transport (its ``drop`` hook, a lossy network), so the next chunk
reaches the log first: the state refuses it as out of order, and the lost one is sent again only
when its flight expires. The store alone then answers the upload with a conflict (the control);
the service restarts it once from chunk 0 and the manifest arrives whole on every node.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.core.commands import parse
from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.raft.store import RaftStore
from tests.helpers.actors import Actor
from tests.unit.raft.test_cluster import Cluster

pytestmark = pytest.mark.timeout(60)

LOST_CHUNK = 2


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3)
    yield c
    c.close()


def big_manifest(leaves: int = 12_000) -> Manifest:
    """A manifest of several 48 KB chunks (random checksums barely compress)."""
    builder = ManifestBuilder()
    for i in range(leaves):
        builder.add("s3", ("bucket", f"object-{i:06d}"), size=i + 1, checksum=f"md5:{secrets.token_hex(16)}")
    return builder.build()


def envelopes_in(message: Any) -> list[Any]:
    """The envelopes of a forwarded ``apply_commands`` call (pysyncobj's type byte, then our pickle)."""
    if not isinstance(message, dict) or message.get("type") != "apply_command":
        return []
    try:
        _, (commands,) = pickle.loads(message["command"][1:])
        return [parse(c) for c in commands]
    except (pickle.UnpicklingError, ValueError, TypeError, ValidationError):
        return []


class LoseOnce:
    """The follower's transport hook: drops the first forward that carries chunk ``index``."""

    def __init__(self, op: str, index: int) -> None:
        self.op, self.index = op, index
        self.dropped: list[int] = []  # seq of the envelope whose forward was lost
        self.forwarded: list[tuple[str, int]] = []  # (op, index) of every forward, in order

    def __call__(self, node: Any, message: Any) -> bool:
        envelopes = envelopes_in(message)
        for e in envelopes:
            self.forwarded.append((e.op, int(e.args.get("index", -1))))
        hit = [e for e in envelopes if e.op == self.op and e.args.get("index") == self.index]
        if hit and not self.dropped:
            self.dropped.append(hit[0].seq)
            return True
        return False


def on_thread(cluster: Cluster, work: Callable[[], Any], timeout: float = 30) -> Any:
    """Run ``work`` on a thread (it waits for the cluster) while this thread ticks the cluster."""
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - raised again on the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    cluster.tick_until(lambda: not worker.is_alive(), timeout)
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def follower_of(cluster: Cluster) -> RaftStore:
    """A follower that stays one, with timeouts short enough for the lost forward to be sent again
    (after twice the upper bound) well within the upload's 20 s."""
    return cluster.steady((1.5, 2.5))[1]


def test_the_store_alone_answers_a_reordered_upload_with_a_conflict(cluster: Cluster) -> None:
    """The control: the fault really reorders the chunks (so the next test can fail)."""
    follower = follower_of(cluster)
    alice = Actor("alice")
    cluster.run(follower, [alice.register()])
    manifest = big_manifest()
    commands = alice.manifest_commands(manifest)
    assert len(commands) >= LOST_CHUNK + 3
    lose = LoseOnce("put_manifest_chunk", LOST_CHUNK)
    follower.transport.drop = lose
    results = on_thread(cluster, lambda: follower.submit_many(commands, 20))
    assert lose.dropped
    codes = [r[0] if r[0] == "ok" else r[1] for r in results]
    assert codes[LOST_CHUNK] == "ok"  # sent again after its flight expired, and applied
    assert codes[LOST_CHUNK + 1] == "conflict"  # applied before it, out of order
    assert codes[-1] == "conflict"  # commit_manifest: incomplete
    assert all(manifest.id not in n.state.manifests for n in cluster.nodes.values())


def test_the_service_restarts_a_reordered_manifest_upload_from_chunk_0(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    follower = follower_of(cluster)
    alice = Actor("alice")
    service = Service(follower, alice.identity, timeout=20)
    try:
        on_thread(cluster, service.register)
        manifest = big_manifest()
        lose = LoseOnce("put_manifest_chunk", LOST_CHUNK)
        follower.transport.drop = lose
        with caplog.at_level(logging.WARNING, "mediator_desktop.core.store"):
            assert on_thread(cluster, lambda: service.sets.upload_manifest(manifest)) == manifest.id
        assert lose.dropped, "the fault never fired: the test proves nothing"
        assert "out of order" in caplog.text
        # Chunk 0 went out twice: the upload started over, once.
        assert lose.forwarded.count(("put_manifest_chunk", 0)) == 2
        cluster.tick_until(lambda: all(manifest.id in n.state.manifests for n in cluster.nodes.values()))
        stored = [
            Manifest.from_chunks(n.state.manifests[manifest.id], manifest.id) for n in cluster.nodes.values()
        ]
        assert all(m.id == manifest.id and len(m) == len(manifest) for m in stored)
        # The version that names it commits as usual.
        set_id = on_thread(cluster, lambda: service.sets.create("after a reordered upload"))
        assert on_thread(cluster, lambda: service.sets.commit(set_id, Selection(), manifest)) >= 1
    finally:
        follower.transport.drop = None
        service.close()
