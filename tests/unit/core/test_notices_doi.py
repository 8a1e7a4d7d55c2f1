"""Notices about the DOIs of your published versions, from a real node minting with the DataCite
emulator: "DOI minted" once it is findable, "minting failed: reason" when the queue stops trying,
nothing for the queue's own retries nor for versions others published."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.events import Event, Published
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.notices import Notice, Notices
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.publishing import Creator, DoiMetadata
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.helpers.dicom import make_series
from tests.helpers.service import make_node

pytestmark = pytest.mark.timeout(120)

PASSWORD = "secret"
LANDING = "https://lab.example/lung"


def metadata() -> DoiMetadata:
    return DoiMetadata(
        title="Lung CT, as used in our paper",
        creators=(Creator("Doe, Jane", "Jane", "Doe", "0000-0002-1825-0097", "Lab of Imaging"),),
        publisher="Lab of Imaging",
        year=2026,
    )


@pytest.fixture
def datacite() -> Iterator[DataCiteEmulator]:
    with DataCiteEmulator(password=PASSWORD) as emulator:
        yield emulator


def doi_node(root: Path, datacite: DataCiteEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    """A node of ``ann`` with a local folder as the archive ``lab``, minting with the emulator."""
    monkeypatch.setenv("MEDIATOR_MINT_RETRY_SECONDS", "0.2")
    folder = root / "lab"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    source = {"kind": "local", "id": "lab", "options": {"folder": str(folder)}}
    with make_node(root, "ann", update_check_minutes=0, sources=(source,)) as node:
        node.service.settings.change(
            doi_service="datacite",
            doi_url=datacite.url,
            doi_repository="MEDIATOR.TEST",
            doi_prefix="10.80000",
        )
        node.service.publishing.set_secret("datacite", PASSWORD)
        yield node


@pytest.fixture
def node(tmp_path: Path, datacite: DataCiteEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    yield from doi_node(tmp_path, datacite, monkeypatch)


class Inbox:
    """The notices the user's app would show, from every ``Published`` event of the node."""

    def __init__(self, service: Service) -> None:
        self.notices = Notices(service)
        self.events: list[Published] = []
        self._arrived = threading.Condition()
        self.stop = service.events.subscribe(self._receive, Published)

    def _receive(self, event: Event) -> None:
        assert isinstance(event, Published)
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def drain(self) -> list[Notice]:
        with self._arrived:
            events, self.events = self.events, []
        return [n for n in map(self.notices.on_event, events) if n is not None]


def wait_state(service: Service, set_id: str, state: str, timeout: float = 60.0) -> None:
    """Wait until version 1's DOI reaches ``state`` (the queue records it, emitting ``Published``)."""
    done = threading.Event()

    def check(_: Event) -> None:
        if service.publishing.get(set_id, 1).doi_state == state:
            done.set()

    stop = service.events.subscribe(check, Published)
    try:
        check(Published(set_id, 1))
        assert done.wait(timeout), f"the DOI never became {state}: {service.publishing.get(set_id, 1)}"
    finally:
        stop()


def test_a_minted_doi_is_news(node: Node, datacite: DataCiteEmulator) -> None:
    service = node.service
    set_id = service.sets.create_from("Lung", add=[Pointer.of("lab", "P1")]).set_id
    inbox = Inbox(service)
    try:
        datacite.faults.add("create", "503")  # the queue retries once by itself: nothing to say
        service.publishing.publish(set_id, 1, metadata(), landing_url=LANDING)
        wait_state(service, set_id, "findable")
        record = service.publishing.get(set_id, 1)
        assert record.attempts >= 1 and record.doi is not None and record.doi.startswith("10.80000/")
        assert inbox.drain() == [
            Notice("Lung: DOI minted", f"version 1 is citable as https://doi.org/{record.doi}", set_id)
        ]
        assert inbox.notices.on_event(Published(set_id, 1)) is None  # said once
    finally:
        inbox.stop()


def test_a_failed_mint_says_why_and_a_retry_that_mints_says_so(
    node: Node, datacite: DataCiteEmulator
) -> None:
    service = node.service
    set_id = service.sets.create_from("Lung", add=[Pointer.of("lab", "P1")]).set_id
    service.publishing.set_secret("datacite", "wrong-password")
    inbox = Inbox(service)
    try:
        service.publishing.publish(set_id, 1, metadata(), landing_url=LANDING)
        wait_state(service, set_id, "failed")
        record = service.publishing.get(set_id, 1)
        assert record.error
        (failed,) = inbox.drain()
        assert failed == Notice(
            "Lung: no DOI yet",
            f"version 1: minting failed: {record.error}; Retry is in the set's view",
            set_id,
            error=True,
        )
        service.publishing.set_secret("datacite", PASSWORD)
        service.publishing.retry(set_id, 1)
        wait_state(service, set_id, "findable")
        doi = service.publishing.get(set_id, 1).doi
        assert inbox.drain() == [
            Notice("Lung: DOI minted", f"version 1 is citable as https://doi.org/{doi}", set_id)
        ]
    finally:
        inbox.stop()


def test_dois_known_at_start_and_others_publications_are_not_news(node: Node) -> None:
    service = node.service
    set_id = service.sets.create_from(
        "Lung", add=[Pointer.of("lab", "P1")], visibility=Visibility.CLUSTER
    ).set_id
    service.publishing.publish(set_id, 1, metadata(), landing_url=LANDING)
    wait_state(service, set_id, "findable")
    assert Notices(service).on_event(Published(set_id, 1)) is None  # minted before the app started
    bob = Service(node.store, Identity.generate("bob"))
    bob.register()
    assert Notices(bob).on_event(Published(set_id, 1)) is None  # ann's version, not bob's
