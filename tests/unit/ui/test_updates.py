"""Archive updates in the app (issue 17), offscreen, over a real node whose archive is a local
folder of DICOM files that the tests change on disk: Check for updates (set menu and tray), the
sets list's badge, the tray's notice and its update view, Update set, Copy with update, Download
changes, Decline, and a check that fails.

Scheduled checks are off here (``update_check_minutes=0``): what is found, is found by the check the
test asks for, not by the node's own schedule reacting to the folder's watch first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QTreeWidgetItemIterator
from pytestqt.qtbot import QtBot

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.update_view import UpdateDialog
from tests.helpers.dicom import make_series
from tests.helpers.tcia_emulator import TciaEmulator, synthetic_catalogue
from tests.helpers.windows import shown_window
from tests.unit.ui.trays import RecordingTray

pytestmark = pytest.mark.timeout(90)

P1 = Pointer.of("lab", "P1")
P2 = Pointer.of("lab", "P2")


@pytest.fixture
def node(local_node: Node) -> Node:
    """The node over the local folder ``lab`` (conftest), scheduled checks off."""
    return local_node


@pytest.fixture
def window(qtbot: QtBot, node: Node, tray: RecordingTray) -> Iterator[MainWindow]:
    yield from shown_window(qtbot, node, tray)


def lab_set(window: MainWindow, qtbot: QtBot, name: str, *pointers: Pointer, group: str = "mine") -> str:
    """A set with a first version, made by the node's user, chosen in the sets list."""
    set_id = window.service.sets.create(name, add=pointers)
    qtbot.waitUntil(lambda: item_of(window, set_id, group) is not None, timeout=10000)
    window.sidebar.setCurrentItem(item_of(window, set_id, group))
    assert window.chosen_set() == set_id
    return set_id


def item_of(window: MainWindow, set_id: str, group: str = "mine") -> QTreeWidgetItem | None:
    return next((i for i in window.set_items(group) if i.data(0, Qt.ItemDataRole.UserRole) == set_id), None)


def text_of(window: MainWindow, set_id: str, group: str = "mine") -> str:
    item = item_of(window, set_id, group)
    return "" if item is None else item.text(0)


def change_the_archive(folder: Path, node: Node) -> None:
    """On disk: a new series for P1, and P2's series sent again with more images; then indexed."""
    make_series(folder, "P1", "1.2.1", "1.2.1.9", 4, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 5, modality="MR", body_part="HEAD", pixels=8)
    node.service.archives.rescan("lab")


def checked(window: MainWindow, qtbot: QtBot, set_ids: list[str] | None) -> list[object]:
    with qtbot.waitSignal(window.updates_checked, timeout=30000) as done:
        window.check_updates(set_ids)
    outcomes = done.args[0]
    assert isinstance(outcomes, list)
    return outcomes


def loaded(window: MainWindow, qtbot: QtBot) -> UpdateDialog:
    """The update view the window opened, once it shows the update."""
    qtbot.waitUntil(lambda: window.update_dialog is not None and window.update_dialog.info is not None)
    assert window.update_dialog is not None
    return window.update_dialog


def plain(rich: str) -> str:
    """A rich-text label's text as the user reads it."""
    document = QTextDocument()
    document.setHtml(rich)
    return document.toPlainText()


def leaf_rows(tree: QTreeWidget) -> list[tuple[str, str]]:
    """(name, change) of every leaf row of a diff tree."""
    rows = []
    it = QTreeWidgetItemIterator(tree, QTreeWidgetItemIterator.IteratorFlag.NoChildren)
    while (item := it.value()) is not None:
        rows.append((item.text(0), item.text(1)))
        it += 1
    return sorted(rows)


def test_check_for_updates_from_the_set_menu_finds_a_change_made_on_disk(
    window: MainWindow, qtbot: QtBot, node: Node, lab_folder: Path
) -> None:
    set_id = lab_set(window, qtbot, "Lab cohort", P1, P2)
    assert window.check_action in window.sidebar.actions()  # the sets list's context menu
    assert window.check_action in window.menuBar().actions()[1].menu().actions()  # Set menu
    assert not window.show_update_action.isEnabled()
    with qtbot.waitSignal(window.updates_checked, timeout=30000) as done:
        window.check_action.trigger()
    [outcome] = done.args[0]
    assert outcome.error == "" and outcome.drift is None
    assert window.check_text == "Lab cohort v1: up to date"
    assert "up to date" in window.details.updates.text()
    change_the_archive(lab_folder, node)
    with qtbot.waitSignal(window.updates_checked, timeout=30000) as done:
        window.check_action.trigger()
    [outcome] = done.args[0]
    assert outcome.new and outcome.drift is not None
    assert (outcome.drift.added, outcome.drift.revised, outcome.drift.removed) == (1, 1, 0)
    assert window.check_text.startswith("Lab cohort v1: update found: +1 series")
    # The set is marked in the sets list, with what changed in its tooltip and the details panel.
    item = item_of(window, set_id)
    assert item is not None and item.text(0) == "Lab cohort  ·  v1  ·  update"
    assert item.font(0).bold()
    assert "Archive update since v1: +1 series" in item.toolTip(0) and "1 revised" in item.toolTip(0)
    assert "Archive update since v1:" in window.details.updates.text()
    assert window.details.update_button.isVisible() and window.show_update_action.isEnabled()


def test_the_notice_opens_the_update_view_and_update_set_makes_version_2(
    window: MainWindow, qtbot: QtBot, node: Node, tray: RecordingTray, lab_folder: Path
) -> None:
    assert window.tray is not None
    set_id = lab_set(window, qtbot, "Lab cohort", P1, P2)
    assert not window.tray.updates_action.isVisible()
    change_the_archive(lab_folder, node)
    with qtbot.waitSignal(window.tray.notified, timeout=30000) as noticed:
        window.check_updates([set_id])
    notice = noticed.args[0]
    assert (notice.action, notice.set_id) == ("drift", set_id)
    assert tray.messages[-1][0] == "Lab cohort: the archive changed"
    assert tray.messages[-1][1].startswith("+1 series") and "1 revised" in tray.messages[-1][1]
    qtbot.waitUntil(lambda: window.tray is not None and window.tray.updates_action.isVisible())
    assert window.tray.updates_action.text() == "1 set has updates"
    # Clicking the balloon brings the window back with the update view of the set.
    window.hide()
    tray.message_clicked.emit()
    dialog = loaded(window, qtbot)
    assert window.isVisible() and dialog.isVisible() and dialog.set_id == set_id
    assert window.set_view.set_id == set_id
    info = dialog.info
    assert info is not None
    assert (info.result.added, info.result.changed, info.result.removed) == (1, 1, 0)
    assert leaf_rows(dialog.tree) == [("1.2.1.9", "added"), ("1.2.2.1", "revised")]
    assert dialog.summary.text().startswith("<big><b>+1 series")
    assert (
        "Pinned: version 1" in dialog.facts.text() and "1 added, 1 revised, 0 removed" in dialog.facts.text()
    )
    assert dialog.update_button.isEnabled() and not dialog.copy_button.isVisible()
    with qtbot.waitSignal(dialog.updated, timeout=30000) as updated:
        dialog.update_button.click()
    assert updated.args[0].version == 2 and updated.args[0].set_id == set_id
    version = node.service.sets.version(set_id)
    assert version.number == 2 and version.message.startswith("archive update accepted: +1 series")
    assert "is now at version 2" in dialog.outcome.text()
    assert not dialog.update_button.isEnabled() and not dialog.decline_button.isEnabled()
    qtbot.waitUntil(lambda: text_of(window, set_id) == "Lab cohort  ·  v2", timeout=10000)
    qtbot.waitUntil(lambda: window.tray is not None and not window.tray.updates_action.isVisible())
    dialog.close()


def test_download_changes_fetches_only_the_changed_series_into_the_old_folder(
    window: MainWindow, qtbot: QtBot, node: Node, lab_folder: Path, tmp_path: Path
) -> None:
    # P1 holds two series: one stays as it is, one will go away.
    make_series(lab_folder, "P1", "1.2.1", "1.2.1.5", 2, modality="CT", pixels=8)
    node.service.archives.rescan("lab")
    set_id = lab_set(window, qtbot, "Lab cohort", P1, P2)
    folder = tmp_path / "my-download"
    window.start_download(folder)
    [first] = node.service.downloads.list()
    qtbot.waitUntil(lambda: first.finished, timeout=30000)
    assert first.report is not None and len(first.report.fetched) == 3
    before = {p.relative_to(folder) for p in folder.rglob("*.dcm")}
    assert len(before) == 7
    change_the_archive(lab_folder, node)
    shutil.rmtree(lab_folder / "P1" / "1.2.1.5")
    node.service.archives.rescan("lab")
    [outcome] = checked(window, qtbot, [set_id])
    assert outcome.drift is not None and (
        outcome.drift.added,
        outcome.drift.revised,
        outcome.drift.removed,
    ) == (1, 1, 1)
    dialog = window.show_update(set_id)
    assert dialog is not None
    dialog = loaded(window, qtbot)
    assert dialog.folder.text() == f"Downloads into {folder}, where this set was downloaded before."
    assert str(folder) in dialog.download_button.toolTip()
    dialog.prune.setChecked(True)  # "also delete files of removed series"
    with qtbot.waitSignal(dialog.download_ended, timeout=30000) as ended:
        dialog.download_button.click()  # updates the set first, then downloads
    job = ended.args[0]
    assert node.service.sets.get(set_id).head == 2 and job.version == 2 and job.destination == folder
    report = job.report
    assert job.state == "done" and report is not None
    manifest = node.service.sets.manifest(node.service.sets.version(set_id).manifest_id)
    changed = {leaf.key for leaf in manifest if leaf.path[-1] in ("1.2.1.9", "1.2.2.1")}
    assert set(report.fetched) == changed and report.unchanged == 1
    assert len(report.pruned) == 1 and report.pruned[0].endswith("1.2.1.5")
    assert dialog.outcome.text().splitlines() == [
        "'Lab cohort' is now at version 2 (3 series).",
        f"Download done: {report.summary()}",
    ]
    assert report.summary().startswith("2 fetched")
    after = {p.relative_to(folder) for p in folder.rglob("*.dcm")}
    assert len(after) == 2 + 4 + 5
    assert not any("1.2.1.5" in str(p) for p in after)
    assert {p for p in before if "1.2.1.1" in str(p)} <= after  # the unchanged series stays
    dialog.close()


def test_decline_hides_the_badge_and_the_trays_entry(
    window: MainWindow, qtbot: QtBot, node: Node, lab_folder: Path
) -> None:
    assert window.tray is not None
    set_id = lab_set(window, qtbot, "Lab cohort", P1, P2)
    change_the_archive(lab_folder, node)
    checked(window, qtbot, [set_id])
    assert text_of(window, set_id).endswith("·  update")
    qtbot.waitUntil(lambda: window.tray is not None and window.tray.updates_action.isVisible())
    window.show_update_action.trigger()  # the chosen set's update view
    dialog = loaded(window, qtbot)
    with qtbot.waitSignal(dialog.declined, timeout=30000):
        dialog.decline_button.click()
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: text_of(window, set_id) == "Lab cohort  ·  v1", timeout=10000)
    item = item_of(window, set_id)
    assert item is not None and "Archive update declined" in item.toolTip(0)
    assert not item.font(0).bold()
    qtbot.waitUntil(lambda: window.tray is not None and not window.tray.updates_action.isVisible())
    assert node.service.tracking.status(set_id).declined
    assert node.service.sets.get(set_id).head == 1
    # It can still be looked at from the details panel.
    assert window.details.update_button.isVisible()
    assert plain(window.details.updates.text()) == "Archive update declined: the set keeps its version."


def test_a_failing_check_shows_its_error_on_the_set(window: MainWindow, qtbot: QtBot, node: Node) -> None:
    # An archive that answers garbage: NBIA's maintenance page instead of JSON, on every retry.
    with TciaEmulator(synthetic_catalogue(6, 1, studies_per_patient=1, series_per_study=3)) as tcia:
        node.service.archives.add("tcia", {"base_url": tcia.v4})
        qtbot.waitUntil(lambda: "tcia" in node.service.archives.ids(), timeout=10000)
        set_id = lab_set(window, qtbot, "TCIA cohort", Pointer.of("tcia", "SYNTHETIC-1"))
        tcia.faults.add("getUpdatedSeries", *["html"] * 8)
        [outcome] = checked(window, qtbot, [set_id])
        assert "not JSON" in outcome.error
        assert window.check_text == f"TCIA cohort v1: check failed: {outcome.error}"
        qtbot.waitUntil(lambda: text_of(window, set_id).endswith("·  check failed"), timeout=10000)
        item = item_of(window, set_id)
        assert item is not None and f"Last check failed: {outcome.error}" in item.toolTip(0)
        assert f"Last check failed: {outcome.error}" in plain(window.details.updates.text())
        assert node.store.state.drift == {}
        # The archive answers again: the next check clears the failure.
        while tcia.faults.next("getUpdatedSeries"):
            pass
        [outcome] = checked(window, qtbot, [set_id])
        assert outcome.error == "" and outcome.drift is None
        qtbot.waitUntil(lambda: text_of(window, set_id) == "TCIA cohort  ·  v1", timeout=10000)
        assert "up to date" in window.details.updates.text()


def test_the_tray_checks_every_set_and_a_start_announces_the_waiting_updates(
    window: MainWindow, qtbot: QtBot, node: Node, lab_folder: Path
) -> None:
    assert window.tray is not None
    first = lab_set(window, qtbot, "Lab P1", P1)
    second = lab_set(window, qtbot, "Lab P2", P2)
    change_the_archive(lab_folder, node)
    with qtbot.waitSignal(window.updates_checked, timeout=30000) as done:
        window.tray.check_action.trigger()  # every set you follow or own
    assert len(done.args[0]) == 2
    assert window.check_text == "2 sets checked: 2 updates found"
    qtbot.waitUntil(
        lambda: window.tray is not None and window.tray.updates_action.text() == "2 sets have updates"
    )
    # The app starts again (a member that was offline meanwhile sees the same): one notice.
    later = RecordingTray()
    again = MainWindow(node.service, later)
    qtbot.addWidget(again)
    again.show()
    try:
        qtbot.waitUntil(lambda: bool(later.messages), timeout=10000)
        assert len(later.messages) == 1
        title, text, error = later.messages[0]
        assert title == "2 followed sets have archive updates" and not error
        assert "Lab P1: +1 series" in text and "Lab P2: 1 revised" in text
        assert text_of(again, first).endswith("·  update") and text_of(again, second).endswith("·  update")
        # Its click lists both sets; choosing one opens its update view.
        later.message_clicked.emit()
        listed = again.updates_dialog
        assert listed is not None and listed.isVisible()
        assert sorted(listed.set_ids()) == sorted([first, second])
        listed.list.setCurrentRow(listed.set_ids().index(second))
        listed.show_chosen()
        dialog = loaded(again, qtbot)
        assert dialog.set_id == second
        assert leaf_rows(dialog.tree) == [("1.2.2.1", "revised")]
        dialog.close()
    finally:
        again.quit()


def test_a_reader_of_a_public_set_copies_it_with_the_update(
    window: MainWindow, qtbot: QtBot, node: Node, lab_folder: Path
) -> None:
    bob = Service(
        node.store, Identity.generate("bob"), sources={s.source_id: s for s in node.service.archives.all()}
    )
    bob.register()
    set_id = bob.sets.create("Bob's cohort", visibility=Visibility.PUBLIC, add=[P1])
    node.service.sets.follow(set_id)
    qtbot.waitUntil(lambda: item_of(window, set_id, "following") is not None, timeout=10000)
    change_the_archive(lab_folder, node)
    [outcome] = checked(window, qtbot, [set_id])
    assert outcome.new
    assert text_of(window, set_id, "following").endswith("·  update")
    dialog = window.show_update(set_id)
    assert dialog is not None
    dialog = loaded(window, qtbot)
    assert not dialog.update_button.isEnabled()
    assert "Only the owner (bob) and editors" in dialog.update_button.toolTip()
    assert dialog.copy_button.isVisible() and dialog.copy_button.isEnabled()
    with qtbot.waitSignal(dialog.updated, timeout=30000) as updated:
        dialog.copy_button.click()
    copy = updated.args[0]
    rs = node.service.sets.get(copy.set_id)
    assert (rs.name, rs.owner, rs.head) == ("Bob's cohort (updated)", node.service.key_id, 2)
    assert rs.forked_from == (set_id, 1)
    assert bob.sets.get(set_id).head == 1  # bob's set keeps its version
    assert 'Your copy "Bob\'s cohort (updated)" is now at version 2' in dialog.outcome.text()
    qtbot.waitUntil(lambda: window.set_view.set_id == copy.set_id, timeout=10000)
    dialog.close()
