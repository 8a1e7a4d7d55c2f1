"""Update tracking through the service: checks find what an archive added, revised and removed,
record it once, and users accept, copy or decline it (issue 17). The archive is a real local
folder of DICOM files that the tests change on disk."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from mediator_desktop.core.errors import NotFound, PermissionDenied
from mediator_desktop.core.events import CheckRecorded, DriftRecorded, SourceIndexing
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from tests.helpers.dicom import make_series
from tests.helpers.service import P1, P2, SOURCE, World, recording

pytestmark = pytest.mark.timeout(60)


def _set(service: Service, *pointers: object, visibility: Visibility = Visibility.PRIVATE) -> str:
    return service.sets.create("Lab cohort", visibility=visibility, add=pointers)  # type: ignore[arg-type]


def test_an_unchanged_set_is_up_to_date_and_writes_no_drift(lab: World, alice: Service) -> None:
    set_id = _set(alice, P1, P2)
    with recording(alice, DriftRecorded) as seen:
        [outcome] = alice.tracking.check([set_id])
    assert outcome.error == "" and outcome.drift is None and not outcome.new
    assert outcome.line() == "Lab cohort v1: up to date"
    assert seen == []
    record = lab.store.state.checks[set_id]
    assert record.version == 1 and record.error == "" and record.ok_time > 0
    assert alice.tracking.status(set_id).line.endswith("up to date")


def test_added_revised_and_removed_series_are_found_once_and_accepted(lab: World, alice: Service) -> None:
    set_id = _set(alice, P1, P2)
    folder = lab.root / "lab"
    make_series(folder, "P1", "1.2.1", "1.2.1.9", 4, modality="CT", pixels=8)  # added
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 5, modality="MR", body_part="HEAD", pixels=8)  # revised
    lab.source.rescan()
    with recording(alice, DriftRecorded) as seen:
        [outcome] = alice.tracking.check([set_id])
    assert outcome.new and outcome.drift is not None and len(seen) == 1
    drift = outcome.drift
    assert (drift.added, drift.revised, drift.removed) == (1, 1, 0)
    assert drift.summary.startswith("+1 series") and "1 revised" in drift.summary
    assert "update found" in outcome.line()
    # A second check finds the same: no new record, only "last checked".
    before = lab.store.state.checks[set_id].time
    with recording(alice, DriftRecorded) as seen:
        [again] = alice.tracking.check([set_id])
    assert not again.new and again.drift == drift and seen == []
    assert lab.store.state.checks[set_id].time >= before
    # Now a series goes away: a new record, against the pinned version.
    shutil.rmtree(folder / "P1" / "1.2.1.1")
    lab.source.rescan()
    [third] = alice.tracking.check([set_id])
    assert third.new and third.drift is not None
    assert (third.drift.added, third.drift.revised, third.drift.removed) == (1, 1, 1)
    _, diff = alice.tracking.diff(set_id)
    assert {leaf.path[-1] for leaf in diff.added} == {"1.2.1.9"}
    assert {leaf.path[-1] for leaf in diff.removed} == {"1.2.1.1"}
    assert [new.fingerprint.count for _, new in diff.changed] == [5]
    # Accepting commits exactly what the check found, as the next version.
    # The record holds only the changes (the write grows with them, not with the set).
    assert len(alice.sets.manifest(third.drift.manifest_id)) == 2
    assert len(alice.sets.manifest(third.drift.removed_id)) == 1
    now = alice.tracking.now(set_id)
    assert sorted(leaf.path[-1] for leaf in now) == ["1.2.1.9", "1.2.2.1"]
    accepted = alice.tracking.accept(set_id)
    assert accepted.version == 2 and accepted.leaves == 2
    head = alice.sets.version(set_id)
    assert head.manifest_id == now.id and "archive update accepted" in head.message
    assert alice.tracking.drift(set_id) is None
    [fourth] = alice.tracking.check([set_id])
    assert fourth.drift is None and fourth.error == ""
    with pytest.raises(NotFound, match="no archive update"):
        alice.tracking.accept(set_id)


def test_readers_copy_an_update_and_decline_it_for_themselves(lab: World, alice: Service) -> None:
    bob = lab.service("bob")
    set_id = _set(alice, P1, visibility=Visibility.PUBLIC)
    bob.sets.follow(set_id)
    make_series((lab.root / "lab"), "P1", "1.2.1", "1.2.1.7", 2, modality="CT", pixels=8)
    lab.source.rescan()
    bob.tracking.check([set_id])  # a reader's node may check for everyone
    assert [rs.id for rs, _ in bob.tracking.updates()] == [set_id]
    assert [rs.id for rs, _ in alice.tracking.updates()] == [set_id]  # the owner hears it too
    with pytest.raises(PermissionDenied, match="--fork"):
        bob.tracking.accept(set_id)
    copy = bob.tracking.accept(set_id, fork=True)
    assert copy.set_id != set_id and copy.version == 2 and copy.leaves == 2
    assert bob.sets.get(copy.set_id).owner == bob.key_id
    assert alice.sets.get(set_id).head == 1  # the original keeps its version
    with recording(alice, CheckRecorded) as seen:
        bob.tracking.dismiss(set_id)
    assert bob.tracking.updates() == [] and bob.tracking.status(set_id).declined
    assert [rs.id for rs, _ in alice.tracking.updates()] == [set_id]  # declined for bob only
    assert len(seen) == 1


def test_an_archive_this_node_lacks_fails_here_and_is_not_recorded_for_all(
    lab: World, alice: Service
) -> None:
    set_id = _set(alice, P1, visibility=Visibility.CLUSTER)
    make_series(lab.root / "lab", "P1", "1.2.1", "1.2.1.8", 2, modality="CT", pixels=8)
    lab.source.rescan()
    no_archive = lab.service("carol", sources=False)
    with recording(alice, CheckRecorded) as seen:
        [outcome] = no_archive.tracking.check([set_id])
    assert f"archive {SOURCE!r} is not configured on this node" in outcome.error
    assert "check failed" in outcome.line()
    # Not the archive's fault: the owner's node, which has it, is not told "check failed".
    assert lab.store.state.drift == {} and set_id not in lab.store.state.checks and seen == []
    assert alice.tracking.status(set_id).line == "not checked yet"
    [found] = alice.tracking.check([set_id])
    assert found.new
    assert alice.tracking.status(set_id).line.startswith("archive update: +1 series")


def test_the_schedule_checks_followed_sets_on_the_leader(lab: World, alice: Service) -> None:
    # Alice's private set, followed by her, is checked by the member that checks for everyone.
    set_id = _set(alice, P1)
    unfollowed = alice.sets.create("Not followed", add=[P2])
    alice.sets.follow(set_id)
    service = lab.service("dora", check_interval=0.5)
    make_series((lab.root / "lab"), "P1", "1.2.1", "1.2.1.6", 2, modality="CT", pixels=8)
    lab.source.rescan()
    found = threading.Event()
    service.events.subscribe(lambda e: found.set(), DriftRecorded)
    service.tracking.start()
    assert found.wait(20)
    assert alice.tracking.drift(set_id) is not None
    assert [rs.id for rs, _ in alice.tracking.updates()] == [set_id]
    assert unfollowed not in lab.store.state.checks  # only followed sets are checked on schedule


def test_no_checks_when_the_interval_is_zero(lab: World) -> None:
    service = lab.service("erin", update_check_minutes=0)
    set_id = _set(service, P1)
    service.sets.follow(set_id)
    assert service.tracking.run_due() == []
    assert set_id not in lab.store.state.checks


def test_a_watched_folder_that_changes_is_checked_within_seconds(lab: World, tmp_path: Path) -> None:
    """The folder watch (watchdog) re-indexes a local archive; the sets pointing into it are
    checked on this node at once, whatever the schedule's interval."""
    folder = tmp_path / "watched"
    make_series(folder, "W1", "1.3.1", "1.3.1.1", 2, modality="CT", pixels=8)
    service = lab.node_service("fay", check_interval=3600)
    indexed = threading.Event()
    service.events.subscribe(lambda e: e.finished and indexed.set(), SourceIndexing)
    service.archives.add("local", {"folder": str(folder)}, source_id="watched")
    assert indexed.wait(20)
    set_id = service.sets.create("Watched", add=[Pointer.of("watched", "W1")])
    found = threading.Event()
    service.events.subscribe(lambda e: found.set(), DriftRecorded)
    service.tracking.start()
    make_series(folder, "W1", "1.3.1", "1.3.1.2", 1, modality="CT", pixels=8)
    assert found.wait(20), "the new file was not noticed"
    drift = service.tracking.drift(set_id)
    assert drift is not None and drift.added == 1
