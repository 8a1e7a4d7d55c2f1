"""Clinical tables in the window (offscreen, real widgets, a real one-node store with a local DICOM
folder archive of patients P1 and P2): add a CSV through the preview dialog, filter its patients by
clicking values, typing conditions and ranges, join them to the archive, drag the cohort onto a set
and commit it; a bad file is refused in the dialog; a join pointer reads as its cohort."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QListWidget
from pytestqt.qtbot import QtBot

from mediator_desktop.core.clinical import join_pointer, parse_conditions
from mediator_desktop.core.draft import Edit
from mediator_desktop.core.events import StateReloaded
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection, SelectionDiff
from mediator_desktop.node import Node
from mediator_desktop.ui.archive import pointers_from_mime
from mediator_desktop.ui.clinical_dialog import AddTableDialog
from mediator_desktop.ui.clinical_panel import ClinicalPanel, TargetCount
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.rules import edit_text, pointer_text, selection_diff_text
from tests.unit.ui.test_main_window import drop_files_on

pytestmark = pytest.mark.timeout(120)

TRIAL = """PatientID,stage,age,smoking,diagnosed
P1,II,64,current,2021-03-02
P2,IIA,58,,2020-11-20
P9,II,71,former,2019-06-30
P10,III,49,current,2022-01-15
"""


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    path = tmp_path / "trial.csv"
    path.write_text(TRIAL, encoding="utf-8")
    return path


def add_table(window: MainWindow, qtbot: QtBot, path: Path) -> AddTableDialog:
    """The table added through its dialog (preview, then Add) as a user would."""
    dialog = window.show_add_table(path)
    qtbot.waitUntil(lambda: dialog.add_button.isEnabled(), timeout=10000)
    with qtbot.waitSignal(dialog.added, timeout=10000):
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    return dialog


def loaded(panel: ClinicalPanel, qtbot: QtBot, table: str) -> None:
    qtbot.waitUntil(lambda: panel.table == table and panel.column_list.topLevelItemCount() > 0, timeout=10000)
    qtbot.waitUntil(lambda: panel.matching is not None, timeout=10000)


def click(qtbot: QtBot, widget: QListWidget, text: str) -> None:
    """A click on the text of the row that starts with ``text``."""
    (item,) = [widget.item(i) for i in range(widget.count()) if widget.item(i).text().startswith(text)]
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=widget.visualItemRect(item).center())


def values(panel: ClinicalPanel, qtbot: QtBot, column: str, count: int) -> list[str]:
    panel.choose_column(column)
    qtbot.waitUntil(lambda: panel.value_list.count() == count, timeout=10000)
    return [panel.value_list.item(i).text() for i in range(count)]


def test_add_a_table_filter_it_join_it_and_drag_the_cohort_into_a_set(
    qtbot: QtBot, local_window: MainWindow, local_node: Node, trial: Path, lab_folder: Path
) -> None:
    window, service = local_window, local_node.service
    # The preview: the first rows, the patients' column guessed, the name from the file.
    dialog = window.show_add_table(trial)
    qtbot.waitUntil(lambda: dialog.add_button.isEnabled(), timeout=10000)
    assert dialog.key_column() == "PatientID" and dialog.table_name() == "trial"
    assert (dialog.head.rowCount(), dialog.head.columnCount()) == (4, 5)
    assert dialog.head.item(1, 0).text() == "P2" and dialog.head.horizontalHeaderItem(2).text() == "age"
    assert "4 rows, 5 columns" in dialog.summary.text()
    assert dialog.problems.text() == ""
    with qtbot.waitSignal(dialog.added, timeout=10000) as added:
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert (added.args[0].name, added.args[0].number) == ("trial", 1)
    assert not dialog.isVisible()
    assert [t.name for t in service.clinical.tables()] == ["trial"]
    # The panel shows it: columns with their kinds, all patients counted.
    panel = window.clinical
    assert window.clinical_dock.isVisible()
    loaded(panel, qtbot, "trial")
    kinds = {
        panel.column_list.topLevelItem(i).text(0): panel.column_list.topLevelItem(i).text(1)
        for i in range(panel.column_list.topLevelItemCount())
    }
    assert kinds == {
        "PatientID": "text, patient ID",
        "stage": "text, 3 values",
        "age": "number, 49 to 71",
        "smoking": "text, 2 values",
        "diagnosed": "date, 2019-06-30 to 2022-01-15",
    }
    assert panel.count_label.text() == "4 of 4 patients match"
    # A click on a value keeps its patients; the count follows on a worker.
    assert values(panel, qtbot, "stage", 3) == ["II  (2)", "IIA  (1)", "III  (1)"]
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        click(qtbot, panel.value_list, "II  (2)")
    assert counted.args == [2]
    assert panel.condition_texts() == ["stage=II"]
    assert panel.count_label.text() == "2 of 4 patients match"
    assert not panel.add_button.isEnabled()  # no archive to join to yet
    # Join to the lab archive: one of the two patients has data there.
    with qtbot.waitSignal(panel.joined, timeout=10000) as joined:
        panel.target_item("lab").setCheckState(Qt.CheckState.Checked)
    assert joined.args[0] == [TargetCount(Pointer("lab"), 2, 1, ("P9",))]
    lab_row = f"Local folder {lab_folder} (lab)\n      1 of 2 patients has data"
    assert panel.target_item("lab").text() == lab_row
    assert "No data for 1 patient: P9" in panel.target_item("lab").toolTip()
    # The cohort drags as one pointer onto the open set.
    cohort = join_pointer("trial", {"stage": "II"}, [Pointer("lab")])
    assert panel.drag_source.text() == "⠿ 2 patients → drag onto a set"
    mime = panel.drag_source.mime_data()
    assert mime is not None and pointers_from_mime(mime) == [cohort]
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        window.create_set("Stage II")
    qtbot.waitUntil(lambda: window.set_view.set_id is not None, timeout=5000)
    set_id = window.set_view.set_id
    assert set_id is not None
    view = window.set_view
    with qtbot.waitSignal(view.resolved, timeout=10000):
        assert view.model.dropMimeData(mime, Qt.DropAction.CopyAction, -1, -1, QModelIndex())
    assert view.pending.item(0).text() == "add Cohort of trial.csv: stage=II → lab"
    assert view.joins.isVisible()
    assert view.joins.text() == (
        "Cohort of trial.csv: stage=II → lab<br><span style='color:#b35900'>"
        "⚠ 1 of 2 patients of clinical/trial have data in lab; none for P9</span>"
    )
    with qtbot.waitSignal(view.committed, timeout=10000):
        qtbot.mouseClick(view.commit_button, Qt.MouseButton.LeftButton)
    version = service.sets.version(set_id, 1)
    assert version.selection == Selection.of(cohort)
    leaves = [(leaf.source_id, leaf.path) for leaf in service.sets.manifest(version.manifest_id)]
    assert ("lab", ("P1", "1.2.1", "1.2.1.1")) in leaves
    assert not any(source == "lab" and path[0] == "P2" for source, path in leaves)
    qtbot.waitUntil(lambda: view.draft is not None and view.draft.base_version == 1, timeout=5000)
    assert "none for P9" in view.joins.text()  # the version keeps saying what the join left out
    # "Add to open set" does what a drop does.
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        window.create_set("Stage II again")
    qtbot.waitUntil(lambda: window.set_view.set_id not in (None, set_id), timeout=5000)
    with qtbot.waitSignal(view.resolved, timeout=10000):
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert view.draft is not None and view.draft.selection == Selection.of(cohort)


def test_typed_conditions_ranges_and_removing_them(
    qtbot: QtBot, local_window: MainWindow, trial: Path
) -> None:
    window = local_window
    add_table(window, qtbot, trial)
    panel = window.clinical
    loaded(panel, qtbot, "trial")
    # A typed condition; a bad one is explained, not taken.
    panel.condition_line.setText("smoking=current,former")
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        qtbot.keyClick(panel.condition_line, Qt.Key.Key_Return)
    assert counted.args == [3] and panel.condition_line.text() == ""
    panel.condition_line.setText("age 60")
    qtbot.keyClick(panel.condition_line, Qt.Key.Key_Return)
    assert panel.condition_error.isVisible() and "'age 60' is no condition" in panel.condition_error.text()
    assert panel.condition_line.text() == "age 60"  # left to be fixed
    assert panel.condition_texts() == ["smoking=current,former"]
    panel.condition_line.setText("weight>80")
    assert not panel.add_condition(panel.condition_line.text())
    assert "no column 'weight'" in panel.condition_error.text()
    # A number column takes a range: from and to, then only from.
    assert values(panel, qtbot, "age", 4)[0].endswith("(1)")
    assert panel.range_row.isVisible() and panel.range_from.placeholderText() == "49"
    panel.range_from.setText("50")
    panel.range_to.setText("70")
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        qtbot.mouseClick(panel.range_button, Qt.MouseButton.LeftButton)
    assert counted.args == [1]  # P1: 64, smokes
    assert panel.condition_texts() == ["smoking=current,former", "age=50..70"]
    panel.range_to.clear()
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        qtbot.keyClick(panel.range_from, Qt.Key.Key_Return)
    assert counted.args == [2] and panel.condition_texts()[-1] == "age>=50"
    # Blank cells and "has a value".
    assert values(panel, qtbot, "smoking", 4) == [
        "Has a value (3)",
        "current  (2)",
        "former  (1)",
        "Blank (1)",
    ]
    assert panel.value_item("current").checkState() == Qt.CheckState.Checked
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        click(qtbot, panel.value_list, "Has a value")
    assert panel.value_item("current").checkState() == Qt.CheckState.Unchecked
    assert panel.condition_texts() == ["smoking=*", "age>=50"] and counted.args == [2]
    # Delete removes the chosen condition; Clear removes them all.
    panel.condition_list.setCurrentRow(1)
    panel.condition_list.setFocus()
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        qtbot.keyClick(panel.condition_list, Qt.Key.Key_Delete)
    assert panel.condition_texts() == ["smoking=*"] and counted.args == [3]
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert counted.args == [4] and panel.conditions == {}
    assert panel.value_item("*").checkState() == Qt.CheckState.Unchecked
    # Values clicked in any order make one condition in the pointer's order.
    values(panel, qtbot, "stage", 3)
    click(qtbot, panel.value_list, "III")
    with qtbot.waitSignal(panel.counted, timeout=10000) as counted:
        click(qtbot, panel.value_list, "II  (2)")
    assert panel.condition_texts() == ["stage=II,III"] and counted.args == [3]
    # A scope typed under "Join to" narrows an archive; a bad one is explained.
    panel.scope_line.setText("nowhere/x")
    qtbot.keyClick(panel.scope_line, Qt.Key.Key_Return)
    assert panel.scope_error.isVisible() and "nowhere" in panel.scope_error.text()
    panel.scope_line.setText("lab/P1")
    with qtbot.waitSignal(panel.joined, timeout=10000) as joined:
        qtbot.keyClick(panel.scope_line, Qt.Key.Key_Return)
    (count,) = joined.args[0]
    assert count.target == Pointer("lab", ("P1",)) and count.error  # a patient is no scope to join in
    assert panel.scope_error.isHidden()
    # The whole replica replaced (a snapshot, a cluster joined): the table is read again.
    window.bridge.relay(StateReloaded())
    loaded(panel, qtbot, "trial")
    assert panel.conditions == {} and panel.column_list.topLevelItemCount() == 5
    # The archive browser lists the tables but filters on no column of theirs (the panel does).
    window.archives.sources_changed(("clinical",))
    assert sorted(window.archives.filter_boxes) == ["BodyPartExamined", "Modality"]  # the lab's


def test_a_bad_file_is_refused_in_the_dialog_and_nothing_is_added(
    qtbot: QtBot, local_window: MainWindow, local_node: Node, tmp_path: Path
) -> None:
    window, service = local_window, local_node.service
    # No table at all: the reason shows in red, Add stays off.
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    dialog = window.show_add_table(empty)
    qtbot.waitUntil(lambda: dialog.outcome.text() != "", timeout=10000)
    assert "cannot be added" in dialog.summary.text() and not dialog.add_button.isEnabled()
    dialog.reject()
    # A key column with a repeat and a blank: listed as problems, refused on Add.
    repeats = tmp_path / "repeats.csv"
    repeats.write_text("PatientID,stage\nP1,II\nP1,III\n,IV\n", encoding="utf-8")
    dialog = window.show_add_table(repeats)
    qtbot.waitUntil(lambda: dialog.add_button.isEnabled(), timeout=10000)
    assert dialog.problems.text() != ""
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Not added: "), timeout=10000)
    assert dialog.isVisible() and dialog.add_button.isEnabled()
    assert service.clinical.tables() == []
    dialog.reject()


def test_a_dropped_table_opens_the_preview_not_an_import(
    qtbot: QtBot, local_window: MainWindow, trial: Path
) -> None:
    window = local_window
    drop_files_on(window, [trial])
    qtbot.waitUntil(lambda: getattr(window, "add_table_dialog", None) is not None, timeout=10000)
    dialog = window.add_table_dialog
    qtbot.waitUntil(lambda: dialog.key_column() == "PatientID", timeout=10000)
    assert dialog.isVisible() and window.service.sets.list() == []
    dialog.reject()


def test_a_join_pointer_reads_as_its_cohort() -> None:
    filters = parse_conditions(["stage=II,IIA,IIB", "smoking=current"])
    targets = [Pointer.parse("tcia/NSCLC%20Radiogenomics?Modality=CT"), Pointer("s3", ("genomics",))]
    pointer = join_pointer("trial", filters, targets)
    files = {"trial": "trial.csv"}.get
    text = (  # conditions and targets in the pointer's (sorted) order
        "Cohort of trial.csv: smoking=current, stage=II,IIA,IIB → s3/genomics, "
        "tcia/NSCLC Radiogenomics?Modality=CT"
    )
    assert pointer_text(pointer, lambda name: files(name) or name) == text
    assert pointer_text(pointer).startswith("Cohort of trial: ")
    assert pointer_text(Pointer("lab", ("P 1",))) == "lab/P 1"
    assert edit_text(Edit(add=(pointer,))) == f"add {pointer_text(pointer)}"
    diff = SelectionDiff.between(Selection(), Selection.of(pointer))
    assert selection_diff_text(diff) == f"+{pointer_text(pointer)}"
