"""Update tracking in a real three-node cluster of node processes on loopback, over a real PACS
(Orthanc): the leader checks on schedule, a follower on another node gets the notice, and when
the leader is killed another member finds the next change (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.raft.membership import free_loopback_address
from tests.helpers.cluster_node import RemoteNode, eventually
from tests.helpers.dicom import make_series
from tests.helpers.orthanc import PASSWORD, USER, Orthanc

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not Orthanc.available(), reason="Orthanc is not installed (make test installs it)"),
    pytest.mark.timeout(240),
]


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        server.upload(make_series(tmp_path / "dicom", "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8))
        yield server
    finally:
        server.stop()


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RemoteNode]]:
    monkeypatch.setenv("MEDIATOR_CHECK_SECONDS", "2")  # a scheduled check every 2 s, not every hour
    started: list[RemoteNode] = []
    try:
        for i in range(3):
            home = tmp_path / f"member{i}"
            home.mkdir()
            started.append(
                RemoteNode([], home, free_loopback_address(), tmp_path / f"m{i}.sock", REPO, discovery=False)
            )
        for node in started[1:]:
            node.call("join", started[0].call("join_code"))
        yield started
    finally:
        for node in started:
            node.stop()


def leader(nodes: list[RemoteNode]) -> RemoteNode | None:
    for node in nodes:
        if node.proc.poll() is None:
            status = node.call("status")
            if status["leader"] == status["self_address"]:
                return node
    return None


def test_the_leader_checks_a_follower_hears_and_a_killed_leader_is_taken_over(
    nodes: list[RemoteNode], pacs: Orthanc, tmp_path: Path
) -> None:
    for node in nodes:
        node.call("add_source", "dicomweb", "pacs", {"base_url": pacs.dicomweb, "username": USER}, PASSWORD)
    keys = {node.call("key_id"): node for node in nodes}
    checker = eventually(lambda: leader(nodes))
    owner, follower = [n for n in nodes if n is not checker][:2]
    set_id = owner.call("create_tracked", "PACS cohort", "pacs", "P1")
    follower.call("follow", set_id)
    follower.call("watch_notices")
    pacs.upload(make_series(tmp_path / "dicom", "P1", "1.2.1", "1.2.1.2", 3, modality="CT", pixels=8))
    notices = eventually(lambda: follower.call("notices"))
    assert notices, "no notice of the update reached the follower's node"
    _, title, text = notices[0]
    assert title == "PACS cohort: the archive changed" and text.startswith("+1 series")
    first = follower.call("drift", set_id)
    assert first["added"] == 1 and keys[first["by"]] is checker  # one member checks: the leader

    # The member that checks dies; the next change is found by whoever leads now.
    checker.proc.kill()
    checker.proc.wait(20)
    pacs.upload(make_series(tmp_path / "dicom", "P1", "1.2.1", "1.2.1.3", 1, modality="CT", pixels=8))
    second = eventually(lambda: (d := owner.call("drift", set_id)) is not None and d["added"] == 2 and d, 60)
    assert second, "no member took the checks over from the killed leader"
    assert keys[second["by"]] in (owner, follower)
    assert len(eventually(lambda: len(follower.call("notices")) >= 2 and follower.call("notices"))) == 2
