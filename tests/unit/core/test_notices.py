"""Desktop notices decided from core events, with two users changing sets on one real store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.events import (
    DownloadFailed,
    DownloadFinished,
    Event,
    SetChanged,
    StateReloaded,
    VersionCommitted,
)
from mediator_desktop.core.notices import Notice, Notices
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from tests.helpers.service import P1, P2, World


class Inbox:
    """The notices one user's app would show: every event of the node, through ``Notices``.

    Store events arrive before the change that caused them returns; download events arrive on the
    job's thread (``wait_for``).
    """

    def __init__(self, service: Service) -> None:
        self.notices = Notices(service)
        self.events: list[Event] = []
        self._arrived = threading.Condition()
        self.stop = service.events.subscribe(self._receive)

    def _receive(self, event: Event) -> None:
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def wait_for(self, kind: type[Event], timeout: float = 30.0) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: any(isinstance(e, kind) for e in self.events), timeout)

    def drain(self) -> list[Notice]:
        with self._arrived:
            events, self.events = self.events, []
        return [n for n in map(self.notices.on_event, events) if n is not None]


@pytest.fixture
def bob(lab: World) -> Service:
    return lab.service("Bob")


@pytest.fixture
def inbox(alice: Service) -> Iterator[Inbox]:
    box = Inbox(alice)
    yield box
    box.stop()


def test_a_set_made_cluster_visible_is_shared_with_you(inbox: Inbox, bob: Service) -> None:
    set_id = bob.sets.create("Lung", add=[P1])
    assert inbox.drain() == []  # private: alice cannot see it
    bob.sets.set_visibility(set_id, Visibility.CLUSTER)
    assert inbox.drain() == [Notice("Shared with you", "Bob shared 'Lung' (cluster)", set_id)]
    bob.sets.follow(set_id)  # still visible: nothing new to tell
    bob.sets.set_visibility(set_id, Visibility.PUBLIC)
    assert inbox.drain() == []


def test_a_set_created_visible_is_shared_with_you(inbox: Inbox, bob: Service) -> None:
    set_id = bob.sets.create("Open lung", visibility=Visibility.PUBLIC)
    assert inbox.drain() == [Notice("Shared with you", "Bob shared 'Open lung' (public)", set_id)]


def test_being_made_an_editor_is_shared_with_you(inbox: Inbox, alice: Service, bob: Service) -> None:
    private = bob.sets.create("Private lung")
    bob.sets.grant_editor(private, alice.key_id)
    assert inbox.drain() == [Notice("Shared with you", "Bob made you an editor of 'Private lung'", private)]
    visible = bob.sets.create("Visible lung", visibility=Visibility.CLUSTER)
    inbox.drain()
    bob.sets.grant_editor(visible, alice.key_id)  # from reader to editor
    assert inbox.drain() == [Notice("Shared with you", "Bob made you an editor of 'Visible lung'", visible)]
    bob.sets.follow(visible)  # alice's access stays the same
    assert inbox.drain() == []


def test_sets_known_at_start_are_not_news(lab: World, alice: Service, bob: Service) -> None:
    set_id = bob.sets.create("Old lung", visibility=Visibility.CLUSTER)
    inbox = Inbox(alice)
    try:
        bob.sets.follow(set_id)  # a change of a set alice could see all along
        assert inbox.drain() == []
    finally:
        inbox.stop()


def test_your_own_sets_are_not_news(inbox: Inbox, alice: Service) -> None:
    set_id = alice.sets.create("Mine", add=[P1], visibility=Visibility.CLUSTER)
    alice.sets.follow(set_id)
    alice.sets.update(set_id, add=[P2])
    assert inbox.drain() == []


def test_a_new_version_of_a_followed_set_by_someone_else(inbox: Inbox, alice: Service, bob: Service) -> None:
    set_id = bob.sets.create("Lung", add=[P1], visibility=Visibility.CLUSTER)
    alice.sets.follow(set_id)
    inbox.drain()
    bob.sets.update(set_id, add=[P2])
    (notice,) = inbox.drain()
    _, diff = alice.sets.diff(set_id, 1, 2)
    summary = diff.summary(alice.archives.hierarchies())
    assert notice == Notice("Lung: version 2", summary, set_id)
    assert notice.text.startswith("+1 series")


def test_the_first_version_of_a_followed_set(inbox: Inbox, alice: Service, bob: Service) -> None:
    set_id = bob.sets.create("Lung", visibility=Visibility.CLUSTER)
    alice.sets.follow(set_id)
    inbox.drain()
    bob.sets.update(set_id, add=[P1])
    assert inbox.drain() == [Notice("Lung: version 1", "first version", set_id)]


def test_no_version_notice_for_your_own_commit_or_an_unfollowed_set(
    inbox: Inbox, alice: Service, bob: Service
) -> None:
    followed = bob.sets.create("Followed", add=[P1], visibility=Visibility.CLUSTER)
    bob.sets.grant_editor(followed, alice.key_id)
    alice.sets.follow(followed)
    unfollowed = bob.sets.create("Not followed", add=[P1], visibility=Visibility.CLUSTER)
    inbox.drain()
    alice.sets.update(followed, add=[P2])  # alice's own commit
    bob.sets.update(unfollowed, add=[P2])
    assert inbox.drain() == []
    alice.sets.unfollow(followed)
    bob.sets.update(followed, remove=[P2])
    assert inbox.drain() == []


def test_events_of_a_set_that_went_away_say_nothing(inbox: Inbox, bob: Service) -> None:
    set_id = bob.sets.create("Short-lived", visibility=Visibility.CLUSTER)
    bob.sets.delete(set_id)
    notices = inbox.notices
    assert notices.on_event(VersionCommitted(set_id, 1)) is None
    assert notices.on_event(SetChanged(set_id)) is None
    assert notices.on_event(StateReloaded()) is None


def test_a_finished_download(inbox: Inbox, alice: Service, tmp_path: Path) -> None:
    set_id = alice.sets.create("Lung", add=[P1, P2])
    inbox.drain()
    job = alice.downloads.start(DownloadRequest(set_id, tmp_path / "dest"))
    inbox.wait_for(DownloadFinished)
    notices = inbox.drain()
    assert job.state == "done" and job.report is not None
    assert notices == [Notice("Downloaded Lung", job.report.summary(), set_id)]
    assert job.report.summary()


def test_a_failed_download(lab: World, tmp_path: Path) -> None:
    carol = lab.service("carol", downloads=False)  # every job fails: no transfer engine
    inbox = Inbox(carol)
    try:
        set_id = carol.sets.create("Lung", add=[P1])
        inbox.drain()
        job = carol.downloads.start(DownloadRequest(set_id, tmp_path / "dest"))
        inbox.wait_for(DownloadFailed)
        assert job.state == "failed" and job.error
        assert inbox.drain() == [Notice("Download of Lung failed", job.error, set_id, error=True)]
    finally:
        inbox.stop()


def test_a_download_event_of_another_node_says_nothing(inbox: Inbox) -> None:
    assert inbox.notices.on_event(DownloadFinished("1-elsewhere", "0" * 32)) is None
