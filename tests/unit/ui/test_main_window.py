"""The main window driven as a user would (offscreen): browse the archive, drag items into a set,
remove, undo and redo, commit, download with the downloads panel; a real node and moto's S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QProgressBar
from pytestqt.qtbot import QtBot

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.errors import ConflictError
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.node import Node
from mediator_desktop.ui.archive import ArchiveModel, pointers_from_mime
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.idc_world import IdcWorld
from tests.helpers.windows import shown_window

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(qtbot: QtBot, node: Node) -> Iterator[MainWindow]:
    yield from shown_window(qtbot, node)


def child(model: ArchiveModel, parent: QModelIndex, key: str, qtbot: QtBot) -> QModelIndex:
    """The child of ``parent`` with ``key``, once its page has loaded."""
    if model.canFetchMore(parent):
        model.fetchMore(parent)

    def find() -> QModelIndex | None:
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            if model.entry(index).path[-1:] == (key,):
                return index
        return None

    qtbot.waitUntil(lambda: find() is not None, timeout=10000)
    found = find()
    assert found is not None
    return found


def keys(model: ArchiveModel, parent: QModelIndex) -> list[str]:
    return [model.entry(model.index(r, 0, parent)).path[-1] for r in range(model.rowCount(parent))]


def make_set(window: MainWindow, qtbot: QtBot, name: str) -> str:
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        window.create_set(name)
    qtbot.waitUntil(lambda: window.set_view.set_id is not None, timeout=5000)
    assert window.set_view.set_id is not None
    return window.set_view.set_id


def drop(window: MainWindow, qtbot: QtBot, indexes: list[QModelIndex]) -> None:
    """A drag from the archive browser, delivered through the set view's drop handler."""
    mime = window.archives.model.mimeData(indexes)
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        assert window.set_view.model.dropMimeData(mime, Qt.DropAction.CopyAction, -1, -1, QModelIndex())


def open_committed_set(window: MainWindow, qtbot: QtBot, node: Node, name: str, pointer: Pointer) -> str:
    """A set with one version, made elsewhere, then chosen in the sidebar as a user would."""
    service = node.service
    set_id = service.sets.create(name)
    selection = Selection.of(pointer)
    service.sets.commit(set_id, selection, service.archives.resolve(selection), name)
    qtbot.waitUntil(lambda: len(window.set_items("mine")) == 1, timeout=5000)
    window.sidebar.setCurrentItem(window.set_items("mine")[0])
    assert window.set_view.set_id == set_id
    return set_id


def tree_keys(window: MainWindow, parent: QModelIndex = QModelIndex()) -> list[str]:  # noqa: B008
    model = window.set_view.model
    if model.canFetchMore(parent):
        model.fetchMore(parent)
    return [model.data(model.index(r, 0, parent)) for r in range(model.rowCount(parent))]


def test_the_archive_browser_loads_lazily_and_filters(window: MainWindow, qtbot: QtBot) -> None:
    model = window.archives.model
    root = model.index(0, 0)
    assert model.data(root) == "NCI Imaging Data Commons"
    qtbot.waitUntil(lambda: model.rowCount(root) == 3, timeout=10000)  # opened by itself
    assert keys(model, root) == ["lung_a", "lung_b", "other_c"]
    assert model.data(model.index(0, 1, root)) == "3"  # series below lung_a
    lung_a = child(model, root, "lung_a", qtbot)
    patient = child(model, lung_a, "pa1", qtbot)
    assert model.pointer(patient) == Pointer.of("idc", "lung_a", "pa1")
    # The modality filter reloads the tree; only MR below it now.
    modality = window.archives.filter_boxes["Modality"]
    qtbot.waitUntil(lambda: modality.count() == 3, timeout=10000)  # Any, CT, MR
    modality.setCurrentIndex(modality.findData("MR"))
    qtbot.waitUntil(lambda: keys(model, model.index(0, 0)) == ["lung_a"], timeout=10000)
    lung_a = child(model, model.index(0, 0), "lung_a", qtbot)
    assert model.pointer(lung_a) == Pointer.of("idc", "lung_a", Modality="MR")
    modality.setCurrentIndex(0)
    window.archives.search.setText("B")
    qtbot.waitUntil(lambda: keys(model, model.index(0, 0)) == ["lung_b"], timeout=10000)
    # Several nodes dragged at once travel as pointers.
    mime = model.mimeData([model.index(0, 0, model.index(0, 0))])
    assert pointers_from_mime(mime) == [Pointer.of("idc", "lung_b")]
    assert window.archives.tree.dragDropMode() == QAbstractItemView.DragDropMode.DragOnly


def test_drag_into_a_set_remove_undo_redo_and_commit(window: MainWindow, qtbot: QtBot, node: Node) -> None:
    set_id = make_set(window, qtbot, "From the browser")
    assert [i.data(0, Qt.ItemDataRole.UserRole) for i in window.set_items("mine")] == [set_id]
    model = window.archives.model
    root = model.index(0, 0)
    lung_a, lung_b = child(model, root, "lung_a", qtbot), child(model, root, "lung_b", qtbot)
    drop(window, qtbot, [lung_a, lung_b])
    assert tree_keys(window) == ["idc"]
    source = window.set_view.model.index(0, 0)
    assert tree_keys(window, source) == ["lung_a", "lung_b"]
    assert window.set_view.model.data(window.set_view.model.index(0, 1)) == "5"
    assert window.set_view.pending.count() == 1 and window.set_view.commit_button.isEnabled()
    # Delete on a patient: it becomes an exclusion under the collection.
    collection = window.set_view.model.index(0, 0, source)
    assert tree_keys(window, collection) == ["pa1", "pa2"]
    patient = window.set_view.model.index(0, 0, collection)
    assert window.set_view.model.data(patient) == "pa1"
    window.set_view.tree.selectionModel().select(
        patient, window.set_view.tree.selectionModel().SelectionFlag.Select
    )
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.set_view.remove_action.trigger()
    assert window.set_view.model.data(window.set_view.model.index(0, 1)) == "3"
    assert window.set_view.draft is not None
    assert window.set_view.draft.selection == Selection.of(
        Pointer.of("idc", "lung_a"), Pointer.of("idc", "lung_b")
    ).remove(Pointer.of("idc", "lung_a", "pa1"))
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.set_view.undo_button.click()
    assert window.set_view.model.data(window.set_view.model.index(0, 1)) == "5"
    assert window.set_view.redo_button.isEnabled()
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.set_view.redo_action.trigger()
    assert window.set_view.pending.count() == 2
    window.set_view.message.setText("lungs without pa1")
    with qtbot.waitSignal(window.set_view.committed, timeout=10000) as committed:
        window.set_view.commit_button.click()
    assert committed.args == [1]
    qtbot.waitUntil(lambda: window.details.history.count() == 1, timeout=5000)
    assert "lungs without pa1" in window.details.history.item(0).text()
    version = node.service.sets.version(set_id, 1)
    assert len(node.service.sets.manifest(version.manifest_id)) == 3
    assert window.set_view.pending.count() == 0 and not window.set_view.commit_button.isEnabled()


def test_a_commit_that_lost_the_race_keeps_the_edits_on_the_new_head(
    window: MainWindow, qtbot: QtBot, node: Node
) -> None:
    set_id = make_set(window, qtbot, "Contested")
    model = window.archives.model
    drop(window, qtbot, [child(model, model.index(0, 0), "lung_b", qtbot)])
    # Someone else commits first.
    service = node.service
    other = Selection.of(Pointer.of("idc", "other_c"))
    service.sets.commit(set_id, other, service.archives.resolve(other), "theirs", expected_head=None)
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.set_view.commit("mine")
    assert window.banner.isVisible() and "meanwhile" in window.banner.label.text()
    draft = window.set_view.draft
    assert (
        draft is not None
        and draft.base_version == 1
        and draft.selection == other.add(Pointer.of("idc", "lung_b"))
    )
    with qtbot.waitSignal(window.set_view.committed, timeout=10000) as committed:
        window.set_view.commit("mine, on theirs")
    assert committed.args == [2]
    with pytest.raises(ConflictError):
        service.sets.commit(set_id, other, service.archives.resolve(other), "stale", expected_head=1)


def test_bad_drops_and_edits_without_a_set_say_what_to_do(window: MainWindow, qtbot: QtBot) -> None:
    from PySide6.QtCore import QMimeData

    text = QMimeData()
    text.setText("idc/lung_a")
    assert not window.set_view.model.dropMimeData(text, Qt.DropAction.CopyAction, -1, -1, QModelIndex())
    window.set_view.add([Pointer.of("idc", "lung_a")])
    assert window.banner.isVisible() and "Choose or create a set" in window.banner.label.text()
    make_set(window, qtbot, "Strict")
    window.set_view.add([Pointer.of("tcia", "LIDC")])
    assert "no source 'tcia'" in window.banner.label.text()
    assert window.set_view.pending.count() == 0


def test_the_downloads_panel_shows_progress_failures_and_retries(
    window: MainWindow, qtbot: QtBot, node: Node, world: IdcWorld, tmp_path: Path
) -> None:
    open_committed_set(window, qtbot, node, "To disk", Pointer.of("idc", "lung_b"))
    # One object stays corrupt on every try: its series fails, the other arrives.
    key = next(k for k in world.object_keys("2.2"))
    world.proxy.fault(key, *["corrupt"] * 20)
    panel = window.downloads
    window.start_download(tmp_path / "out")
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)
    qtbot.waitUntil(lambda: panel.table.item(0, 4).text().startswith("failed"), timeout=30000)
    assert "1 fetched" in panel.table.item(0, 4).text() and "1 failed" in panel.table.item(0, 4).text()
    job = node.service.downloads.list()[0]
    assert job.report is not None and f"1 fetched ({human_bytes(job.report.bytes)})" in job.report.summary()
    bar = panel.table.cellWidget(0, 2)  # the bytes placed, as the summary says (not those that arrived)
    assert isinstance(bar, QProgressBar) and bar.format().endswith(f" · {human_bytes(job.report.bytes)}")
    panel.table.selectRow(0)
    assert panel.failures.count() == 1 and "2.2" in panel.failures.item(0).text()
    assert panel.retry_button.isEnabled()
    world.proxy.clear_faults()
    panel.retry_button.click()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=5000)
    qtbot.waitUntil(lambda: panel.table.item(1, 4).text().startswith("done"), timeout=30000)
    assert "1 fetched" in panel.table.item(1, 4).text()
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2 + 4


def test_pause_resume_and_cancel_from_the_panel(
    window: MainWindow, qtbot: QtBot, node: Node, world: IdcWorld, tmp_path: Path
) -> None:
    from mediator_desktop.ui.errors import Message

    open_committed_set(window, qtbot, node, "Held", Pointer.of("idc", "lung_a"))
    panel = window.downloads
    shown: list[Message] = []
    window.messages.shown.connect(shown.append)
    folder = tmp_path / "held"
    world.proxy.gate.clear()  # object GETs wait at the proxy: no file arrives until the job is cancelled
    try:
        window.start_download(folder)
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=5000)
        qtbot.waitUntil(lambda: bool(world.proxy.gets(".dcm")), timeout=30000)  # a transfer is held
        panel.table.selectRow(0)
        assert panel.pause_button.isEnabled() and not panel.resume_button.isEnabled()
        panel.pause_button.click()
        qtbot.waitUntil(lambda: panel.table.item(0, 4).text() == "paused", timeout=5000)
        assert panel.resume_button.isEnabled()
        panel.resume_button.click()
        qtbot.waitUntil(lambda: panel.table.item(0, 4).text() == "running", timeout=5000)
        panel.cancel_button.click()

        def seen_cancelled() -> None:  # while its transfers are still held: a cancel does not wait
            state = panel.table.item(0, 4).text()
            assert state.startswith("cancelled"), f"{state!r} after Cancel, the archive holding its transfers"

        qtbot.waitUntil(seen_cancelled, timeout=30000)
    finally:
        world.proxy.gate.set()
    state = panel.table.item(0, 4).text()
    assert state.startswith("cancelled: 0 fetched") and "cancelled with 3 not started" in state, state
    assert not panel.cancel_button.isEnabled() and not panel.pause_button.isEnabled()
    bar = panel.table.cellWidget(0, 2)
    assert isinstance(bar, QProgressBar) and bar.value() < bar.maximum(), bar.format()
    badges = window.set_items("mine")[0].text(0)
    assert "downloaded" not in badges and "downloading" not in badges, badges
    assert "Download finished" not in [m.text for m in shown]
    assert not [p for p in folder.rglob("*") if p.is_file() and ".mediator" not in p.parts]


def test_the_diff_view_colours_changes_and_can_show_the_rest(
    window: MainWindow, qtbot: QtBot, node: Node
) -> None:
    from mediator_desktop.ui.diff_view import COLOURS

    service = node.service
    set_id = service.sets.create("Evolving")
    first = Selection.of(Pointer.of("idc", "lung_a"))
    second = first.remove(Pointer.of("idc", "lung_a", "pa2")).add(Pointer.of("idc", "other_c"))
    service.sets.commit(set_id, first, service.archives.resolve(first), "v1")
    service.sets.commit(set_id, second, service.archives.resolve(second), "v2")
    qtbot.waitUntil(lambda: len(window.set_items("mine")) == 1, timeout=5000)
    window.sidebar.setCurrentItem(window.set_items("mine")[0])
    dialog = window.show_diff()
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.tree.topLevelItemCount() == 1, timeout=10000)
    assert dialog.summary.text().startswith("<b>+1 series")
    assert "other_c" in dialog.summary.text()  # the selection change, spelled out
    idc = dialog.tree.topLevelItem(0)
    assert idc is not None and idc.text(0) == "idc" and idc.text(1) == "+1  −1"
    collections = {idc.child(i).text(0): idc.child(i) for i in range(idc.childCount())}
    assert sorted(collections) == ["lung_a", "other_c"]
    removed = collections["lung_a"].child(0).child(0).child(0)
    assert removed.text(1) == "removed" and removed.foreground(0).color() == COLOURS["removed"]
    dialog.only_changes.setChecked(False)  # the unchanged series come too
    qtbot.waitUntil(
        lambda: dialog.tree.topLevelItem(0).childCount() == 2 and _leaves(dialog.tree) == 4, timeout=10000
    )
    dialog.close()


def _leaves(tree: object) -> int:
    from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItemIterator

    assert isinstance(tree, QTreeWidget)
    it = QTreeWidgetItemIterator(tree, QTreeWidgetItemIterator.IteratorFlag.NoChildren)
    count = 0
    while it.value() is not None:
        count += 1
        it += 1
    return count


def test_peers_panel_shares_by_drop_and_makes_and_takes_join_codes(
    window: MainWindow, qtbot: QtBot, node: Node
) -> None:
    from mediator_desktop.core.cluster import JoinCode
    from mediator_desktop.core.identity import Identity
    from mediator_desktop.core.replica import Visibility
    from mediator_desktop.core.service import Service

    peers = window.peers
    assert peers.members.count() == 1 and "this machine, leader" in peers.members.item(0).text()
    bob = Service(node.store, Identity.generate("bob"))
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        bob.register()
    qtbot.waitUntil(lambda: peers.people.count() == 2, timeout=5000)
    set_id = node.service.sets.create("To share")
    qtbot.waitUntil(lambda: len(window.set_items("mine")) == 1, timeout=5000)
    # A set dragged from the sidebar carries its id; dropped on bob, he becomes an editor.
    mime = window.sidebar.mimeData(window.set_items("mine"))
    bob_row = next(
        peers.people.item(i) for i in range(peers.people.count()) if "bob" in peers.people.item(i).text()
    )
    me_row = next(
        peers.people.item(i) for i in range(peers.people.count()) if "(you)" in peers.people.item(i).text()
    )
    assert not peers.people.drop_set(mime, me_row)  # not on yourself
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        assert peers.people.drop_set(mime, bob_row)
    qtbot.waitUntil(lambda: bob.key_id in node.service.sets.get(set_id).editors, timeout=5000)
    # Dropped on a machine of the cluster: every member may read it.
    with qtbot.waitSignal(window.bridge.event_received, timeout=5000):
        assert peers.members.drop_set(mime, peers.members.item(0))
    qtbot.waitUntil(lambda: node.service.sets.get(set_id).visibility is Visibility.CLUSTER, timeout=5000)
    # Join codes: one made here parses; a wrong one typed in the join dialog says what is wrong.
    peers.create_button.click()
    qtbot.waitUntil(lambda: peers.code_dialog is not None and peers.code_dialog.isVisible(), timeout=5000)
    assert peers.code_dialog is not None
    JoinCode.parse(peers.code_dialog.code.text())
    dialog = peers.ask_join()
    dialog.code.setText("00000-00000-00000-00000-00000-0000")
    dialog.join_button.click()
    qtbot.waitUntil(
        lambda: dialog.join_button.isEnabled() and "Joining" not in dialog.outcome.text(), timeout=10000
    )
    assert "code" in dialog.outcome.text().lower()
    dialog.close()
    peers.code_dialog.close()


def test_an_uncaught_error_on_any_thread_is_logged_and_shown_with_the_log_path(
    window: MainWindow, qtbot: QtBot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from mediator_desktop.ui.errors import CrashReporter

    reporter = CrashReporter(tmp_path / "app.log", window).install()
    try:

        def boom() -> None:
            raise ZeroDivisionError("a bug in a worker")

        with qtbot.waitSignal(reporter.crashed, timeout=5000):
            thread = threading.Thread(target=boom)
            thread.start()
            thread.join()
    finally:
        reporter.uninstall()
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
    assert reporter.dialog is not None
    assert "ZeroDivisionError: a bug in a worker" in reporter.dialog.text()
    assert str(tmp_path / "app.log") in reporter.dialog.text()
    assert "a bug in a worker" in caplog.text and "Traceback" in caplog.text
    reporter.dialog.close()


def test_settings_are_checked_saved_and_credentials_go_to_the_keystore(
    window: MainWindow, qtbot: QtBot, node: Node, mediator_home: Path
) -> None:
    from PySide6.QtWidgets import QCheckBox, QLineEdit, QSpinBox

    from mediator_desktop.core.keystore import source_secret
    from mediator_desktop.core.settings import Settings
    from mediator_desktop.ui.settings_dialog import SourcesEditor

    dialog = window.show_settings()
    layout = dialog.editors["download_layout"]
    assert isinstance(layout, QLineEdit)
    layout.setText("{collection}/{nope")
    dialog.save()
    assert dialog.isVisible() and dialog.problem.text().startswith("Not saved: layout")
    layout.setText("{collection}/{series}")
    interval = dialog.editors["update_check_minutes"]
    assert isinstance(interval, QSpinBox)
    interval.setValue(30)
    name = dialog.editors["display_name"]
    assert isinstance(name, QLineEdit)
    name.setText("Dr. Who")
    discovery = dialog.editors["discovery"]
    assert isinstance(discovery, QCheckBox)
    discovery.setChecked(not discovery.isChecked())
    sources = dialog.editors["sources"]
    assert isinstance(sources, SourcesEditor)
    sources.store_secret("idc", "s3cr3t")
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.save()
    saved = Settings.load()
    assert (saved.download_layout, saved.update_check_minutes, saved.display_name) == (
        "{collection}/{series}",
        30,
        "Dr. Who",
    )
    assert "s3cr3t" not in (mediator_home / "config" / "settings.json").read_text()
    assert source_secret(node.data_dir, "idc") == "s3cr3t"
    assert node.settings.download_layout == "{collection}/{series}"  # applies at once
    # So does the display name (the user is registered again); discovery waits for a restart.
    assert node.service.display_name == "Dr. Who"
    assert "Dr. Who" in node.service.users().values()
    assert window.banner.isVisible() and "discovery" in window.banner.label.text()
    assert "display name" not in window.banner.label.text()
    qtbot.waitUntil(lambda: "you are Dr. Who" in window.cluster_text, timeout=5000)


def drag_enter(window: MainWindow, mime: QMimeData) -> bool:
    """A drag entering the window: whether the window would take the drop."""
    from PySide6.QtGui import QDragEnterEvent

    enter = QDragEnterEvent(
        window.rect().center(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    return enter.isAccepted()


def drop_files_on(window: MainWindow, paths: list[Path]) -> None:
    """A drag of files from a file manager, delivered through the window's drop handlers."""
    from PySide6.QtCore import QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    assert drag_enter(window, mime)
    drop = QDropEvent(
        QPointF(window.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)


def test_dropped_manifest_files_become_sets_and_exports_round_trip(
    window: MainWindow, qtbot: QtBot, node: Node, world: IdcWorld, tmp_path: Path
) -> None:
    unknown = "0f0f0f0f-1111-4000-8000-000000000000"
    s5cmd = tmp_path / "cohort.s5cmd"
    s5cmd.write_text(
        "".join(f"cp s3://idc-open-data/{world.uuids[s]}/* .\n" for s in ("2.1", "2.2"))
        + f"cp s3://x/{unknown}/* .\n"
    )
    with qtbot.waitSignal(window.imported, timeout=10000) as imported:
        drop_files_on(window, [s5cmd])
    result = imported.args[0]
    assert (result.pointers, result.missing) == (2, (unknown,))
    assert window.banner.isVisible() and "1 not in the archives" in window.banner.label.text()
    assert window.set_view.set_id == result.set_id
    assert node.service.sets.get(result.set_id).name == "cohort"
    manifest = node.service.sets.manifest(node.service.sets.version(result.set_id, 1).manifest_id)
    assert sorted(leaf.path[-1] for leaf in manifest) == ["2.1", "2.2"]
    # A TCIA manifest names series by their UIDs.
    tcia = tmp_path / "lung.tcia"
    tcia.write_text("manifestVersion=3.0\nListOfSeriesToDownload=\n1.1\n1.3\n")
    with qtbot.waitSignal(window.imported, timeout=10000) as imported:
        drop_files_on(window, [tcia])
    assert imported.args[0].missing == () and imported.args[0].pointers == 2
    # Export the open set, drop the file: the same selection comes back as a new set.
    exported = tmp_path / "lung.json"
    window.export_set(imported.args[0].set_id, exported)
    with qtbot.waitSignal(window.imported, timeout=10000) as again:
        drop_files_on(window, [exported])
    first = node.service.sets.version(imported.args[0].set_id, 1).selection
    assert node.service.sets.version(again.args[0].set_id, 1).selection == first
    # Nothing known, and not a manifest at all: a banner says what to do; no set is made.
    before = len(node.service.sets.list())
    (tmp_path / "none.s5cmd").write_text(f"cp s3://x/{unknown}/* .\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    drop_files_on(window, [tmp_path / "none.s5cmd"])
    qtbot.waitUntil(lambda: "none of the 1 items" in window.banner.label.text(), timeout=10000)
    drop_files_on(window, [tmp_path / "notes.txt"])
    qtbot.waitUntil(lambda: "none of the manifests" in window.banner.label.text(), timeout=10000)
    assert len(node.service.sets.list()) == before


def test_a_set_dragged_out_of_the_window_is_its_export_file(
    window: MainWindow, qtbot: QtBot, node: Node, world: IdcWorld, tmp_path: Path
) -> None:
    from mediator_desktop.core.imports import read_manifest_file
    from mediator_desktop.ui.peers import SET_MIME

    set_id = open_committed_set(window, qtbot, node, "Lung CT", Pointer.of("idc", "lung_a"))
    mime = window.sidebar.mimeData(window.set_items("mine"))
    assert bytes(mime.data(SET_MIME).data()).decode() == set_id  # still drops on a peer
    (url,) = mime.urls()
    dragged = Path(url.toLocalFile())
    assert dragged.name == "Lung_CT_v1.json" and dragged.is_file()
    imported = read_manifest_file(dragged)  # what a file manager copies, another node imports
    assert imported.name == "Lung CT" and imported.selection == node.service.sets.version(set_id).selection
    # Dropped back on our own window it is no file to import (no set is made of it again).
    assert not drag_enter(window, mime)
    # An exported RO-Crate folder dropped on the window becomes a set.
    crate = node.service.sets.export_file(set_id, None, "rocrate", tmp_path)
    with qtbot.waitSignal(window.imported, timeout=10000) as imported_crate:
        drop_files_on(window, [crate])
    made = imported_crate.args[0]
    assert node.service.sets.version(made.set_id).selection == node.service.sets.version(set_id).selection


def test_without_a_mouse_add_share_and_see_the_badges(
    local_window: MainWindow, qtbot: QtBot, local_node: Node, lab_folder: Path, tmp_path: Path
) -> None:
    from PySide6.QtCore import QItemSelectionModel

    from mediator_desktop.core.identity import Identity
    from mediator_desktop.core.replica import Visibility
    from mediator_desktop.core.service import Service
    from tests.helpers.dicom import make_series

    window, node = local_window, local_node
    set_id = make_set(window, qtbot, "Keyboard")
    model = window.archives.model
    patient = child(model, model.source_index("lab"), "P2", qtbot)
    window.archives.tree.selectionModel().select(
        patient, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.archives.add_action.trigger()  # Insert in the archive tree
    assert window.set_view.model.data(window.set_view.model.index(0, 1)) == "1"
    with qtbot.waitSignal(window.set_view.committed, timeout=10000):
        window.set_view.commit("by keyboard")
    # Share: visibility and an editor, from a dialog.
    bob = Service(node.store, Identity.generate("bob"))
    bob.register()
    dialog = window.show_share()
    assert dialog is not None
    dialog.visibility.setCurrentIndex(dialog.visibility.findData(Visibility.CLUSTER))
    qtbot.waitUntil(lambda: dialog.editors.count() == 1, timeout=5000)
    dialog.editors.item(0).setCheckState(Qt.CheckState.Checked)
    with qtbot.waitSignal(dialog.applied, timeout=10000):
        dialog.apply_button.click()
    rs = node.service.sets.get(set_id)
    assert rs.visibility is Visibility.CLUSTER and rs.editors == {bob.key_id}
    dialog.close()
    # Badges: a download of the head version, then an archive update found by a check.
    job = node.service.downloads.start(DownloadRequest(set_id, tmp_path / "kbd"))
    qtbot.waitUntil(
        lambda: job.finished and "downloaded" in window.set_items("mine")[0].text(0), timeout=30000
    )
    make_series(lab_folder, "P2", "1.2.2", "1.2.2.4", 2, modality="MR", body_part="HEAD", pixels=8)
    node.service.archives.rescan("lab")
    [outcome] = node.service.tracking.check([set_id])
    assert outcome.drift is not None and outcome.drift.added == 1
    qtbot.waitUntil(lambda: "update" in window.set_items("mine")[0].text(0), timeout=5000)
    assert "Archive update since v1: +1 series" in window.set_items("mine")[0].toolTip(0)
    assert node.service.tracking.status(set_id).drift is not None


def test_rename_a_set_from_the_sets_list_and_the_sidebar_follows(
    window: MainWindow, qtbot: QtBot, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QInputDialog

    from mediator_desktop.core.events import SetChanged
    from mediator_desktop.core.identity import Identity
    from mediator_desktop.core.replica import Visibility
    from mediator_desktop.core.service import Service

    set_id = make_set(window, qtbot, "Draft name")
    window.sidebar.setCurrentItem(window.set_items("mine")[0])
    assert window.rename_action in window.sidebar.actions()  # the sets list's context menu
    asked: list[str] = []

    def answer(parent: object, title: str, label: str, **kwargs: object) -> tuple[str, bool]:
        asked.append(str(kwargs.get("text")))
        return "  Lung CT, final ", True

    monkeypatch.setattr(QInputDialog, "getText", answer)  # the user types a new name
    changed: list[SetChanged] = []
    window.bridge.subscribe(changed.append, SetChanged)
    window.rename_action.trigger()
    assert asked == ["Draft name"]  # the dialog starts from the current name
    # The sidebar follows the set's change event.
    qtbot.waitUntil(
        lambda: window.set_items("mine")[0].text(0).startswith("Lung CT, final  ·"), timeout=10000
    )
    assert [e.set_id for e in changed] == [set_id]
    assert node.service.sets.get(set_id).name == "Lung CT, final"
    assert "Lung CT, final" in window.set_view.title.text()
    assert "Lung CT, final" in window.details.summary.text()
    # Someone else's set: the cluster refuses, and the banner says why.
    bob = Service(node.store, Identity.generate("bob"))
    bob.register()
    theirs = bob.sets.create("Bob's lungs", visibility=Visibility.CLUSTER)
    qtbot.waitUntil(lambda: len(window.set_items("cluster")) == 1, timeout=5000)
    window.rename_set(theirs, "mine now")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=5000)
    assert 'not an editor of "Bob\'s lungs"' in window.banner.label.text()
    assert node.service.sets.get(theirs).name == "Bob's lungs"


def test_the_status_bar_counts_the_members_the_cluster_has(
    window: MainWindow, qtbot: QtBot, node: Node, tmp_path: Path
) -> None:
    from mediator_desktop.core.settings import Settings
    from tests.helpers.net import free_ports

    address = node.service.cluster.address()
    assert window.cluster_text.startswith(f"One-node cluster at {address}")
    (port,) = free_ports(1)
    other = Node(
        Settings(
            data_dir=tmp_path / "b" / "data",
            download_dir=tmp_path / "b" / "downloads",
            display_name="bee",
            raft_address=f"127.0.0.1:{port}",
            sources=(),
        ),
        settings_path=tmp_path / "b" / "settings.json",
    )
    with other:
        other.service.cluster.join(node.service.cluster.create_join_code())
        # This node issued the code: its settings name no peers, the cluster has two members.
        qtbot.waitUntil(
            lambda: window.cluster_text.startswith(f"2-member cluster at {address}"), timeout=15000
        )
        assert node.settings.peers == ()
        qtbot.waitUntil(lambda: window.peers.members.count() == 2, timeout=5000)
