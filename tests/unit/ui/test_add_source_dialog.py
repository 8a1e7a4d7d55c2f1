"""Adding and removing archives from the window, against a real node (offscreen): the form is built
from the kinds' options, "Test connection" and "Add" run on workers, the archive panel follows the
service's ``SourcesChanged`` without a restart, and removing asks first."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QLineEdit, QSpinBox
from pytestqt.qtbot import QtBot

from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.ui.add_source_dialog import AddSourceDialog, FolderEditor
from mediator_desktop.ui.errors import Level, Message
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.dicom import make_series

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(local_window: MainWindow) -> MainWindow:
    return local_window


@pytest.fixture
def shown(window: MainWindow) -> list[Message]:
    """The messages the window shows from now on."""
    seen: list[Message] = []
    window.messages.shown.connect(seen.append)
    return seen


def listed(window: MainWindow) -> list[str]:
    """The archives the panel lists, in order."""
    model = window.archives.model
    return [model.entry(model.index(row, 0)).source_id for row in range(model.rowCount())]


def folder_of(dialog: AddSourceDialog) -> FolderEditor:
    editor = dialog.editors["folder"]
    assert isinstance(editor, FolderEditor)
    return editor


def test_the_form_follows_the_kind(qtbot: QtBot, window: MainWindow) -> None:
    dialog = window.show_add_source()
    assert dialog.isVisible() and dialog.kinds
    for kind in dialog.kinds.values():
        dialog.choose_kind(kind.name)
        assert dialog.description.text() == kind.description
        assert list(dialog.editors) == [o.name for o in kind.options]
        for option in kind.options:
            editor = dialog.editors[option.name]
            expected = {"bool": QCheckBox, "int": QSpinBox, "folder": FolderEditor}.get(
                option.kind, QLineEdit
            )
            assert isinstance(editor, expected), (kind.name, option.name)
            if option.default is not None and isinstance(editor, QLineEdit):
                assert editor.text() == str(option.default)
            if option.default is not None and isinstance(editor, QSpinBox):
                assert editor.value() == option.default
        label = dialog.form.labelForField(dialog.editors[kind.options[0].name]) if kind.options else None
        if kind.options and kind.options[0].required:
            assert label is not None and label.text().endswith(" *")  # type: ignore[attr-defined]
        assert dialog.secret_line.isVisibleTo(dialog) == (kind.secret is not None)
        if kind.secret is not None:
            assert dialog.secret_line.echoMode() is QLineEdit.EchoMode.Password
        # The id follows the kind until the user types one; a taken one is numbered.
        assert dialog.source_id() == kind.name
    dialog.id_line.setText("mine")
    dialog.choose_kind("local")
    assert dialog.source_id() == "mine"
    dialog.reject()


def test_add_an_archive_test_it_then_remove_it(
    qtbot: QtBot, window: MainWindow, local_node: Node, tmp_path: Path, shown: list[Message]
) -> None:
    scans = tmp_path / "scans"
    make_series(scans, "Q1", "9.1", "9.1.1", 2, pixels=8)
    assert listed(window) == ["lab", "clinical"]  # the clinical tables are on every node, listed last
    window.add_source_action.trigger()  # File > Add archive…
    dialog = window.add_source_dialog
    assert dialog.isVisible()
    dialog.choose_kind("local")
    assert dialog.source_id() == "local" and not dialog.secret_line.isVisibleTo(dialog)
    folder_of(dialog).line.setText(str(scans))
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("✔"), timeout=10000)
    assert "2 files" in dialog.outcome.text(), dialog.outcome.text()

    with qtbot.waitSignal(dialog.accepted, timeout=10000):
        dialog.ok_button.click()
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: listed(window) == ["lab", "local", "clinical"], timeout=10000)
    assert window.archives.current_source() == "local"  # the one added is chosen
    assert Message(Level.INFO, f"Added the archive Local folder {scans}") in shown
    saved = Settings.load(local_node.settings_path).sources
    assert saved[-1] == {"kind": "local", "id": "local", "options": {"folder": str(scans)}}

    # The second of a kind gets a numbered id.
    again = window.show_add_source()
    again.choose_kind("local")
    assert again.source_id() == "local-2"
    again.reject()

    # Remove it from the panel's context menu; the question names it and what becomes of sets.
    browser = window.archives
    browser.tree.setCurrentIndex(browser.model.source_index("local"))
    assert browser.remove_source_action.isEnabled()
    browser.remove_source_action.trigger()
    question = browser.remove_dialog
    assert question is not None and question.isVisible()
    assert f"Local folder {scans} (local)" in question.text()
    assert "keep their pointers" in question.informativeText()
    remove = browser.remove_button()
    assert remove is not None
    remove.click()
    qtbot.waitUntil(lambda: listed(window) == ["lab", "clinical"], timeout=10000)
    assert [s["id"] for s in Settings.load(local_node.settings_path).sources] == ["lab"]
    assert sorted(local_node.service.archives.ids()) == ["clinical", "lab"]
    # The clinical tables are no archive of the settings: they cannot be removed.
    browser.tree.setCurrentIndex(browser.model.source_index("clinical"))
    assert not browser.remove_source_action.isEnabled() and not browser.rescan_action.isEnabled()


def test_a_refused_archive_keeps_the_dialog_open_with_what_was_typed(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    dialog = window.show_add_source()
    dialog.choose_kind("local")
    # No folder: the test says what is missing.
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("✘"), timeout=10000)
    assert "folder" in dialog.outcome.text()
    # A folder that is not there: the test says so.
    folder_of(dialog).line.setText(str(tmp_path / "nowhere"))
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("✘"), timeout=10000)
    # A bad id: refused by the service; nothing is lost and nothing is added.
    dialog.id_line.setText("no spaces please")
    folder_of(dialog).line.setText(str(tmp_path))
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Not added: "), timeout=10000)
    assert "archive id" in dialog.outcome.text()
    assert dialog.isVisible() and dialog.ok_button.isEnabled()
    assert dialog.source_id() == "no spaces please"
    assert folder_of(dialog).line.text() == str(tmp_path)
    assert listed(window) == ["lab", "clinical"]
    dialog.reject()


def test_the_panel_plus_button_opens_the_dialog(qtbot: QtBot, window: MainWindow) -> None:
    window.archives.add_source_button.click()
    assert isinstance(window.add_source_dialog, AddSourceDialog)
    assert window.add_source_dialog.isVisible()
    window.add_source_dialog.reject()
