"""Publishing a set version with a DOI from the window (offscreen, real widgets, a real node with
IDC's real index and the DataCite emulator): the form is pre-filled from the set with the source
collections' DOIs, a bad ORCID iD is shown under its field and keeps Publish off, publishing ends
with the DOI in the set view and its version history, Cite copies the citation, and a DOI that
failed (wrong credentials) is minted by Retry once they are fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from mediator_desktop.core.pointer import Pointer
from mediator_desktop.node import Node
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.publish_dialog import PublishDialog
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.helpers.service import make_node
from tests.helpers.windows import shown_window

pytestmark = pytest.mark.timeout(120)

PASSWORD = "secret"
VALID_ORCID = "0000-0002-1825-0097"


@pytest.fixture
def datacite() -> Iterator[DataCiteEmulator]:
    with DataCiteEmulator(password=PASSWORD) as emulator:
        yield emulator


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, datacite: DataCiteEmulator) -> Iterator[Node]:
    """A node of ``ann`` with IDC's real index, set up to mint DOIs with the DataCite emulator."""
    monkeypatch.setenv("MEDIATOR_MINT_RETRY_SECONDS", "0.2")
    with make_node(tmp_path, "ann", update_check_minutes=0, publisher="Lab of Imaging") as started:
        service = started.service
        service.archives.add("idc", {}, source_id="idc")
        service.settings.change(
            doi_service="datacite",
            doi_url=datacite.url,
            doi_repository="MEDIATOR.TEST",
            doi_prefix="10.80000",
        )
        service.publishing.set_secret("datacite", PASSWORD)
        yield started


@pytest.fixture
def set_id(node: Node) -> str:
    """A set of two IDC collections, committed as version 1."""
    made = node.service.sets.create_from(
        "RIDER lung", add=[Pointer.of("idc", "rider_pilot"), Pointer.of("idc", "rider_lung_ct")]
    )
    return made.set_id


@pytest.fixture
def window(qtbot: QtBot, node: Node, set_id: str) -> Iterator[MainWindow]:
    for shown in shown_window(qtbot, node):
        shown.refresh()
        shown.open_set(set_id)
        yield shown


def prefilled(qtbot: QtBot, dialog: PublishDialog) -> None:
    with qtbot.waitSignal(dialog.prefilled, timeout=30000):
        dialog.start()


def test_the_form_is_prefilled_and_a_bad_orcid_keeps_publish_off(
    qtbot: QtBot, node: Node, set_id: str
) -> None:
    service = node.service
    dialog = PublishDialog(service, set_id, 1, MessageBridge())
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.publish_button.isEnabled()  # until the form is filled in
    prefilled(qtbot, dialog)
    suggested = service.publishing.suggest(set_id, 1)
    assert dialog.title_edit.text() == "RIDER lung"
    assert [c.name for c in dialog.creator_rows()] == ["ann"]
    assert dialog.publisher_edit.text() == "Lab of Imaging"
    assert dialog.year_box.value() == suggested.year
    related = [dialog.related.item(i).text() for i in range(dialog.related.count())]
    # Each collection's DOIs once (the index names one DOI per collection and licence).
    assert related == list(dict.fromkeys(r.identifier for r in suggested.related)) and len(related) >= 2
    assert all(r.startswith("10.7937/") for r in related)
    assert "DOIs of the source collections" in dialog.status.text()
    # DataCite resolves to a landing page the user gives: required, said under its field.
    assert dialog.service_name() == "datacite" and dialog.landing_edit.isVisibleTo(dialog)
    assert not dialog.publish_button.isEnabled()
    assert dialog.problem_labels["landing_url"].isVisibleTo(dialog)
    assert "landing" not in dialog.problem_labels["title"].text()
    qtbot.keyClicks(dialog.landing_edit, "https://lab.example/rider")
    assert dialog.validate() == {} and dialog.publish_button.isEnabled()
    assert not dialog.problem_labels["landing_url"].isVisibleTo(dialog)
    # A wrong check digit: the problem under the creators, the cell marked, Publish off.
    dialog.creators.item(0, 1).setText("0000-0002-1825-0098")
    label = dialog.problem_labels["creators"]
    assert label.isVisibleTo(dialog) and label.text().startswith("Creator 1, ORCID iD: ")
    assert "check digit" in label.text()
    assert "border" in dialog.creators.styleSheet()
    assert dialog.creators.item(0, 1).toolTip() != ""
    assert not dialog.publish_button.isEnabled()
    dialog.creators.item(0, 1).setText(VALID_ORCID)
    assert not label.isVisibleTo(dialog) and dialog.creators.styleSheet() == ""
    assert dialog.publish_button.isEnabled()
    # An empty title, a creator without a name, a DOI that is none: each under its own field.
    dialog.title_edit.clear()
    dialog.add_creator_button.click()
    dialog.related.item(1).setText("not-a-doi")
    problems = dialog.validate()
    assert set(problems) == {"title", "creators.1.name", "related.1"}
    assert dialog.problem_labels["title"].text() == "a title is required"
    assert dialog.problem_labels["creators"].text().startswith("Creator 2, name: ")
    assert dialog.problem_labels["related"].text().startswith("Row 2: 'not-a-doi' is no DOI")
    # Zenodo makes its own landing page; without a DOI none is asked for either.
    dialog.service_box.setCurrentIndex(dialog.service_box.findData(""))
    assert not dialog.landing_edit.isVisibleTo(dialog)
    assert dialog.publish_button.text() == "Publish without a DOI"


def test_publishing_ends_with_the_doi_in_the_set_view_and_cite_copies_it(
    qtbot: QtBot, window: MainWindow, set_id: str, datacite: DataCiteEmulator
) -> None:
    service, view = window.service, window.set_view
    assert view.publish_button.isVisibleTo(view) and not view.cite_button.isVisibleTo(view)
    assert window.publish_action.isEnabled()
    dialog = window.show_publish()
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.suggested is not None, timeout=30000)
    qtbot.keyClicks(dialog.landing_edit, "https://lab.example/rider")
    dialog.creators.item(0, 0).setText("Doe, Jane")
    dialog.creators.item(0, 1).setText(VALID_ORCID)
    with qtbot.waitSignal(dialog.published, timeout=30000):
        qtbot.mouseClick(dialog.publish_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    # The version is frozen at once; the DOI follows from the queue (Published events).
    qtbot.waitUntil(lambda: view.publication is not None, timeout=10000)
    qtbot.waitUntil(
        lambda: view.publication is not None and view.publication.doi_state == "findable", timeout=60000
    )
    record = service.publishing.get(set_id, 1)
    assert record.doi is not None and record.doi.startswith("10.80000/")
    assert view.publication_label.text().startswith("Published · DOI <a href='https://doi.org/10.80000/")
    assert record.doi in view.publication_label.text()
    assert view.cite_button.isVisibleTo(view) and not view.retry_button.isVisibleTo(view)
    assert not view.publish_button.isVisibleTo(view)
    history = window.details.history.item(0).text()
    assert history.startswith("v1 ") and history.endswith(f"·  DOI {record.doi}")
    (minted,) = datacite.records.values()
    assert minted.state == "findable"
    # The Cite menu: the citation, the BibTeX, the data availability statement.
    citation = service.publishing.citation(set_id, 1)
    with qtbot.waitSignal(view.citation_copied, timeout=30000):
        view.copy_citation_action.trigger()
    assert QApplication.clipboard().text() == citation.text
    assert citation.text.startswith("Doe, Jane (") and f"https://doi.org/{record.doi}" in citation.text
    with qtbot.waitSignal(view.citation_copied, timeout=30000):
        view.copy_bibtex_action.trigger()
    assert QApplication.clipboard().text() == citation.bibtex
    with qtbot.waitSignal(view.citation_copied, timeout=30000):
        view.copy_availability_action.trigger()
    assert "rider_pilot (https://doi.org/10.7937/" in QApplication.clipboard().text()
    # Published already: the form is not offered again for this version.
    assert window.show_publish() is None


def test_a_failed_doi_shows_why_and_retry_mints_it(
    qtbot: QtBot, window: MainWindow, set_id: str, datacite: DataCiteEmulator
) -> None:
    service, view = window.service, window.set_view
    service.publishing.set_secret("datacite", "wrong-password")
    dialog = window.show_publish()
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.suggested is not None, timeout=30000)
    dialog.landing_edit.setText("https://lab.example/rider")
    with qtbot.waitSignal(dialog.published, timeout=30000):
        dialog.publish()
    qtbot.waitUntil(
        lambda: view.publication is not None and view.publication.doi_state == "failed", timeout=30000
    )
    assert view.retry_button.isVisibleTo(view)
    text = view.publication_label.text()
    assert "DOI failed: " in text and not text.endswith("; retry</span>")
    assert not datacite.records
    # The password fixed (Settings > DOI service credentials), Retry mints it.
    service.publishing.set_secret("datacite", PASSWORD)
    qtbot.mouseClick(view.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: view.publication is not None and view.publication.doi_state == "findable", timeout=60000
    )
    assert not view.retry_button.isVisibleTo(view)
    assert len(datacite.records) == 1


def test_settings_store_the_doi_services_password_in_the_keyring_not_the_settings(
    qtbot: QtBot, node: Node
) -> None:
    from PySide6.QtWidgets import QLineEdit

    from mediator_desktop.core.keystore import source_secret
    from mediator_desktop.ui.settings_dialog import SettingsDialog

    service = node.service
    messages = MessageBridge()
    messages.flush()
    dialog = SettingsDialog(service.settings, messages, doi_secret=service.publishing.set_secret)
    qtbot.addWidget(dialog)
    assert {"doi_service", "doi_url", "doi_repository", "doi_prefix", "publisher"} <= set(dialog.editors)
    assert dialog.doi_secret_button is not None and dialog.doi_service() == "datacite"
    dialog.store_doi_secret("datacite", "new-password")
    data_dir = service.settings.get().data_dir
    assert source_secret(data_dir, "doi-datacite") == "new-password"
    assert "new-password" not in (data_dir.parent / "settings.json").read_text(encoding="utf-8")
    editor = dialog.editors["doi_service"]
    assert isinstance(editor, QLineEdit)
    editor.setText("")
    dialog.ask_doi_secret()  # no service named: said, nothing asked
    assert dialog.problem.text().startswith("Name the DOI service first")
