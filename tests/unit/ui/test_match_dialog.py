"""Matching data in other archives (offscreen, real widgets, a real service over a one-node store):
a lab's own scans of four patients (three of them TCGA-LUAD cases) looked up in IDC's real index,
in a second local folder, in the ``lab`` folder that holds none of them and in a TCIA archive (the
emulator) that fails; the dialog shows per category what each archive holds and counts the
patients as kinds are checked; "Add to set" puts the cohort's rule into the open set's pending
edits, where it reads as the patients it keeps, and a commit resolves it in all three archives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import duckdb
import idc_index_data
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QComboBox
from pytestqt.qtbot import QtBot

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.integrator import cohort
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.sources.clinical import PandasTables
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.local import LocalFolderSource
from mediator_desktop.sources.tcia import TciaSource
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.match_dialog import MatchDialog, origin_text
from mediator_desktop.ui.rules import edit_text, pointer_text
from tests.helpers.dicom import make_series
from tests.helpers.service import SOURCE, World, make_node
from tests.helpers.tcia_emulator import TciaEmulator, synthetic_catalogue
from tests.helpers.windows import shown_window

pytestmark = pytest.mark.timeout(120)

#: IDC holds CT and slides of the first, CT only of the second, slides only of the third.
BOTH, CT_ONLY, SLIDES_ONLY, OURS = "TCGA-38-4625", "TCGA-17-Z011", "TCGA-05-4244", "LAB-0001"
PATIENTS = (OURS, SLIDES_ONLY, CT_ONLY, BOTH)  # as the match sorts them


@pytest.fixture
def tcia() -> Iterator[TciaEmulator]:
    """A TCIA archive that answers its collections with a maintenance page (a few times)."""
    with TciaEmulator(synthetic_catalogue(20, 1)) as emulator:
        emulator.faults.add("getCollectionValues", *["html"] * 5)
        yield emulator


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """The lab's scans of the four patients (the origin), and an annex with two of them."""
    scans, annex = tmp_path / "scans", tmp_path / "annex"
    make_series(scans, BOTH, "3.1", "3.1.1", 2, modality="CT", pixels=8)
    make_series(scans, CT_ONLY, "3.2", "3.2.1", 1, modality="CT", pixels=8)
    make_series(scans, SLIDES_ONLY, "3.3", "3.3.1", 1, modality="MR", pixels=8)
    make_series(scans, OURS, "3.4", "3.4.1", 1, modality="CT", pixels=8)
    make_series(annex, BOTH, "4.1", "4.1.1", 1, modality="PT", pixels=8)
    make_series(annex, OURS, "4.4", "4.4.1", 2, modality="PT", pixels=8)
    return scans, annex


@pytest.fixture
def service(tmp_path: Path, folders: tuple[Path, Path], tcia: TciaEmulator) -> Iterator[Service]:
    """A service over the scans, the annex, ``lab`` (none of the patients), IDC's real index and
    the failing TCIA."""
    with ExitStack() as stack:
        world = World(tmp_path, stack)
        scans = LocalFolderSource("scans", folders[0], tmp_path / "index" / "scans.sqlite")
        annex = LocalFolderSource("annex", folders[1], tmp_path / "index" / "annex.sqlite")
        for source in (scans, annex):
            stack.callback(source.close)
            source.reindex()
        archive = TciaSource(base_url=tcia.v4, backoff=0.01, timeout=(2.0, 2.0))
        sources = {SOURCE: world.source, "scans": scans, "annex": annex, "idc": IdcSource(), "tcia": archive}
        service = Service(
            world.store,
            Identity.generate("ann"),
            sources=sources,  # type: ignore[arg-type]
            settings=world.settings_file("ann"),
            table_engine=PandasTables(),
        )
        stack.callback(service.close)
        service.register()
        yield service


@pytest.fixture
def node(tmp_path: Path, folders: tuple[Path, Path]) -> Iterator[Node]:
    """A whole node (the window needs one) with the scans, the annex and IDC's real index."""
    lab = tmp_path / "lab"
    make_series(lab, "P1", "1.2.1", "1.2.1.1", 1, modality="CT", pixels=8)
    configs = (
        {"kind": "local", "id": "scans", "options": {"folder": str(folders[0])}},
        {"kind": "local", "id": "annex", "options": {"folder": str(folders[1])}},
        {"kind": "local", "id": "lab", "options": {"folder": str(lab)}},
        {"kind": "idc", "id": "idc", "options": {"index": str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)}},
    )
    with make_node(tmp_path, "ann", sources=configs, update_check_minutes=0) as started:
        yield started


@pytest.fixture
def window(qtbot: QtBot, node: Node) -> Iterator[MainWindow]:
    archives = node.service.archives

    def indexed() -> bool:  # the folders are indexed on workers
        return [archives.browse(s).total for s in ("scans", "annex", "lab")] == [4, 2, 1]

    qtbot.waitUntil(indexed, timeout=20000)
    yield from shown_window(qtbot, node)


def idc_kinds(patients: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """Per modality, how many of ``patients`` IDC's index holds it for, its series and bytes."""
    index = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    names = ", ".join(f"'{p}'" for p in patients)
    rows = duckdb.sql(
        f"""select Modality, count(distinct PatientID), count(*), sum(series_size_MB)
        from '{index}' where PatientID in ({names}) group by Modality"""
    ).fetchall()
    return {m: (p, n, round(mb * 1e6)) for m, p, n, mb in rows}


def texts(dialog: MatchDialog) -> list[str]:
    """The tree's rows, indented by depth."""
    out: list[str] = []

    def walk(item: object, depth: int) -> None:
        from PySide6.QtWidgets import QTreeWidgetItem

        assert isinstance(item, QTreeWidgetItem)
        out.append("  " * depth + item.text(0))
        for i in range(item.childCount()):
            walk(item.child(i), depth + 1)

    for i in range(dialog.tree.topLevelItemCount()):
        walk(dialog.tree.topLevelItem(i), 0)
    return out


def test_the_dialog_shows_what_each_archive_holds_by_kind_and_counts_as_kinds_are_checked(
    qtbot: QtBot, service: Service
) -> None:
    dialog = MatchDialog(service, [Pointer.of("scans")], MessageBridge())
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.matched, timeout=30000) as matched:
        dialog.start()
        assert dialog.busy.isVisible() and dialog.close_button.text() == "Cancel"
    matching = matched.args[0]
    assert matching.patients == PATIENTS
    assert not dialog.busy.isVisible() and dialog.close_button.text() == "Close"
    assert dialog.status.text() == (
        "4 patients, looked up in 4 other archives. Check the data to add with them:"
    )
    # Per category, each archive with how many of the patients have such data, and per kind
    # the patients, series and bytes, as IDC's index says.
    idc = idc_kinds((BOTH, CT_ONLY, SLIDES_ONLY))
    annex_size = sum(k.size or 0 for k in matching.archive("annex").kinds)

    def kind(label: str) -> str:
        p, n, size = idc[label]
        return f"{label} — {p} patient{'s' if p > 1 else ''}, {n} series, {human_bytes(size)}"

    idc_name = "NCI Imaging Data Commons (idc)"
    lab_title = service.archives.title(SOURCE)
    assert texts(dialog) == [
        "Radiology",
        f"  {idc_name} — 2 of 4 patients",
        f"    {kind('CT')}",
        "Pathology",
        f"  {idc_name} — 2 of 4 patients",
        f"    {kind('SM')}",
        "Other data",
        f"  {service.archives.title('annex')} (annex) — 2 of 4 patients",
        f"    series — 2 patients, 2 series, {human_bytes(annex_size)}",
        f"  {idc_name} — 2 of 4 patients",
        f"    {kind('ANN')}",
        f"    {kind('SEG')}",
        f"{lab_title} (lab) — none of the 4 patients",
        f"The Cancer Imaging Archive (tcia) — could not be searched: {matching.archive('tcia').error}",
    ]
    error = matching.archive("tcia").error or ""
    assert error.startswith("TCIA answered the collections with something that is not JSON")
    (tcia_row,) = dialog.archive_items("tcia")
    assert tcia_row.foreground(0).color().name() == "#b00020"
    (lab_row,) = dialog.archive_items("lab")
    assert not lab_row.flags() & Qt.ItemFlag.ItemIsUserCheckable
    # Nothing checked: nothing to add yet.
    assert dialog.count_label.text() == "4 patients: check the data to add with them"
    assert not dialog.new_set_button.isEnabled() and not dialog.add_button.isEnabled()
    # Checking kinds counts the patients that have them, live; the missing ones a hover away.
    dialog.check("idc", "CT")
    assert dialog.chosen() == {"idc": ["CT"]}
    assert dialog.count_label.text() == "2 of 4 patients match"
    assert f"2 patients: {OURS}, {SLIDES_ONLY}" in dialog.count_label.toolTip()
    dialog.check("annex", "series")
    assert dialog.chosen() == {"idc": ["CT"], "annex": None}  # all the annex holds
    assert dialog.count_label.text() == "1 of 4 patients matches"
    assert dialog.cohort() == [
        cohort(Pointer.of("scans"), [Pointer.of("idc", Modality="CT"), Pointer.of("annex")], every=True)
    ]
    # Only patients with data everywhere, or all of them with whatever the archives hold.
    dialog.every_box.setChecked(False)
    assert dialog.count_label.text() == "All 4 patients; 3 of them have checked data elsewhere"
    assert SLIDES_ONLY in dialog.count_label.toolTip()
    assert dialog.cohort() == [
        cohort(Pointer.of("scans"), [Pointer.of("idc", Modality="CT"), Pointer.of("annex")], every=False)
    ]
    dialog.every_box.setChecked(True)
    # A whole archive row checks all its kinds of that category.
    pathology = dialog.category_item("pathology")
    assert pathology is not None and pathology.text(0) == "Pathology"
    (idc_slides,) = [i for i in dialog.archive_items("idc") if i.parent() is pathology]
    idc_slides.setCheckState(0, Qt.CheckState.Checked)
    assert dialog.chosen() == {"idc": ["CT", "SM"], "annex": None}
    assert dialog.count_label.text() == "1 of 4 patients matches"
    # No set is open: a new one is offered; its name says what it holds.
    assert dialog.new_set_button.isEnabled() and not dialog.add_button.isEnabled()
    assert dialog.suggested_name() == "scans with CT, SM, annex"
    with qtbot.waitSignal(dialog.new_set_requested, timeout=5000) as asked:
        dialog.new_set("Radiogenomic")
    rule = cohort(
        Pointer.of("scans"), [Pointer.of("annex"), Pointer.of("idc", Modality=["CT", "SM"])], every=True
    )
    assert asked.args == ["Radiogenomic", [rule]]
    assert not dialog.isVisible() and dialog.idle


def test_cancel_closes_while_the_archives_are_searched(qtbot: QtBot, service: Service) -> None:
    dialog = MatchDialog(service, [Pointer.of("scans", Modality="MR")], MessageBridge())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start()
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    dialog.shutdown()  # waits for the search; its answer arrives at a closed dialog: dropped
    QApplication.processEvents()
    assert dialog.matching is None and dialog.tree.topLevelItemCount() == 0 and dialog.idle


def test_a_selection_without_patients_says_so(qtbot: QtBot, service: Service) -> None:
    dialog = MatchDialog(service, [Pointer.of("scans", Modality="US")], MessageBridge())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start()
    qtbot.waitUntil(lambda: "no patients to match" in dialog.status.text(), timeout=10000)
    assert not dialog.busy.isVisible() and not dialog.new_set_button.isEnabled()


def test_the_archive_menu_finds_matching_data_and_add_to_set_keeps_the_cohort_joined(
    qtbot: QtBot, window: MainWindow
) -> None:
    service = window.service
    browser, model = window.archives, window.archives.model
    # A filtered level: the scans' CT patients (the filter box, as a user picks it).
    box: QComboBox = browser.filter_boxes["Modality"]
    qtbot.waitUntil(lambda: box.findData("CT") >= 0, timeout=10000)
    box.setCurrentIndex(box.findData("CT"))
    scans = model.source_index("scans")
    assert not browser.match_action.isEnabled()
    browser.tree.setCurrentIndex(scans)
    browser.tree.selectionModel().select(scans, browser.tree.selectionModel().SelectionFlag.ClearAndSelect)
    assert browser.match_action.isEnabled() and browser.match_action in browser.tree.actions()
    # A set is open: the cohort goes into its pending edits.
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        window.create_set("Radiogenomic")
    qtbot.waitUntil(lambda: window.set_view.set_id is not None, timeout=5000)
    set_id = window.set_view.set_id
    assert set_id is not None
    browser.match_action.trigger()
    dialog = window.match_dialog
    assert dialog.origin == [Pointer.of("scans", Modality="CT")]
    assert origin_text(dialog.origin) == "scans (CT)"
    qtbot.waitUntil(lambda: dialog.matching is not None, timeout=30000)
    assert dialog.matching is not None and dialog.matching.patients == (OURS, CT_ONLY, BOTH)
    dialog.check("idc", "CT")
    dialog.check("annex", "series")
    assert dialog.count_label.text() == "1 of 3 patients matches"
    assert dialog.add_button.text() == "Add to “Radiogenomic”" and dialog.add_button.isEnabled()
    view = window.set_view
    with qtbot.waitSignal(view.resolved, timeout=30000):
        qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    rule = cohort(
        Pointer.of("scans", Modality="CT"),
        [Pointer.of("idc", Modality="CT"), Pointer.of("annex")],
        every=True,
    )
    assert view.draft is not None and view.draft.selection.includes == [rule]
    described = "Patients of scans (CT) with data in every one of: annex, idc (CT)"
    assert pointer_text(rule) == described
    assert view.pending.item(0).text() == f"add {described}"
    assert described in view.joins.text()
    assert "1 of 3 patients of scans have data in every archive joined (annex, idc)" in view.joins.text()
    # A commit resolves it: the patient every archive holds, here and there.
    with qtbot.waitSignal(view.committed, timeout=30000):
        qtbot.mouseClick(view.commit_button, Qt.MouseButton.LeftButton)
    version = service.sets.version(set_id, 1)
    leaves = list(service.sets.manifest(version.manifest_id))
    by_source: dict[str, set[str]] = {}
    for leaf in leaves:
        by_source.setdefault(leaf.source_id, set()).add(
            leaf.path[0] if leaf.source_id != "idc" else leaf.path[1]
        )
    assert by_source == {"scans": {BOTH}, "annex": {BOTH}, "idc": {BOTH}}
    idc_ct = idc_kinds((BOTH,))["CT"][1]
    assert sum(1 for leaf in leaves if leaf.source_id == "idc") == idc_ct
    assert version.selection.includes == [rule]


def test_new_set_from_these_when_no_set_is_open(qtbot: QtBot, window: MainWindow) -> None:
    service = window.service
    assert window.set_view.set_id is None
    dialog = window.show_match([Pointer.of("scans", BOTH)])
    qtbot.waitUntil(lambda: dialog.matching is not None, timeout=30000)
    dialog.check("annex", "series")
    assert not dialog.add_button.isEnabled() and dialog.new_set_button.isEnabled()
    assert dialog.suggested_name() == f"{BOTH} with annex"
    view = window.set_view
    with qtbot.waitSignal(view.resolved, timeout=30000):
        dialog.new_set("One case, everywhere")
    set_id = view.set_id
    assert set_id is not None and service.sets.get(set_id).name == "One case, everywhere"
    rule = cohort(Pointer.of("scans", BOTH), [Pointer.of("annex")], every=True)
    assert view.draft is not None and view.draft.selection.includes == [rule]
    assert view.pending.item(0).text() == (f"add Patients of scans/{BOTH} with data in every one of: annex")


def test_archive_cohorts_read_as_the_patients_they_keep() -> None:
    origin = Pointer.of("idc", "tcga_luad", Modality="CT")
    gdc = Pointer.of("gdc", experimental_strategy="RNA-Seq")
    every = cohort(origin, [gdc, Pointer.of("pathology")], every=True)
    assert pointer_text(every) == (
        "Patients of idc/tcga_luad (CT) with data in every one of: gdc (RNA-Seq), pathology"
    )
    assert (
        pointer_text(cohort(origin, [gdc]))
        == "Patients of idc/tcga_luad (CT), with their data in: gdc (RNA-Seq)"
    )
    from mediator_desktop.core.draft import Edit

    assert edit_text(Edit(add=(every,))).startswith("add Patients of idc/tcga_luad (CT) with data")
    # A clinical cohort keeping only the patients of every archive says so too.
    from mediator_desktop.core.clinical import join_pointer

    table = join_pointer("trial", {"stage": "II"}, [Pointer("lab")])
    assert pointer_text(cohort(table, [Pointer("lab")], every=True), lambda n: f"{n}.csv") == (
        "Cohort of trial.csv: stage=II → every one of: lab"
    )


def test_the_clinical_panels_cohort_is_matched_when_that_panel_is_in_front(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    table = tmp_path / "trial.csv"
    table.write_text(f"PatientID,stage\n{BOTH},II\n{CT_ONLY},II\n{OURS},III\nX-9,II\n", encoding="utf-8")
    window.service.clinical.add(table)
    panel = window.clinical
    window.clinical_dock.show()
    window.clinical_dock.raise_()
    qtbot.waitUntil(lambda: panel.table == "trial" and panel.matching == 4, timeout=10000)
    assert panel.add_condition("stage=II")
    qtbot.waitUntil(lambda: panel.matching == 3, timeout=10000)
    # Its count and its drag handle offer the search too (their context menus).
    assert window.match_action in panel.count_label.actions()
    assert window.match_action in panel.drag_source.actions()
    dialog = window.match_selected()
    assert dialog is not None
    assert dialog.origin == [Pointer.of("clinical", "trial", stage="II")]
    assert dialog.heading.text() == "Patients of <b>table trial (stage=II)</b>"
    qtbot.waitUntil(lambda: dialog.matching is not None, timeout=30000)
    assert dialog.matching is not None and dialog.matching.patients == (CT_ONLY, BOTH, "X-9")
    dialog.check("idc", "CT")
    assert dialog.count_label.text() == "2 of 3 patients match"
    dialog.close()
