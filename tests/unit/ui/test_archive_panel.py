"""The archive panel over a local folder archive (offscreen, a real node): an index under way shows
on the archive's row and in the status bar, its end reloads the tree, "Rescan" applies only to
archives that index a folder and finds new files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from mediator_desktop.core.events import SourceIndexing, SourcesChanged
from mediator_desktop.ui.archive import ArchiveModel
from mediator_desktop.ui.errors import Message
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.dicom import make_series
from tests.helpers.idc import series_row, small_index

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(local_window: MainWindow) -> MainWindow:
    return local_window


def patients(model: ArchiveModel, qtbot: QtBot, count: int) -> list[str]:
    """The patients of the archive ``lab`` once ``count`` of them are loaded."""
    lab = model.source_index("lab")

    def keys() -> list[str]:
        if model.canFetchMore(lab):
            model.fetchMore(lab)
        return [model.entry(model.index(r, 0, lab)).path[-1] for r in range(model.rowCount(lab))]

    qtbot.waitUntil(lambda: len(keys()) == count, timeout=10000)
    return keys()


def test_an_index_under_way_shows_on_the_row_and_in_the_status_bar(qtbot: QtBot, window: MainWindow) -> None:
    model = window.archives.model
    assert patients(model, qtbot, 2) == ["P1", "P2"]
    lab = model.source_index("lab")
    title = model.data(lab)
    # A source with its tree loaded keeps its title; one showing nothing yet says it is indexing.
    running = SourceIndexing("lab", 200, 1129)
    window.bridge.relay(running)
    assert window.statusBar().currentMessage() == "lab: indexing 1,129 files... (200 done)"
    assert model.data(lab) == title
    model.reload_source("lab")  # as before its first page arrives
    assert model.rowCount(lab) == 0
    assert model.data(lab) == f"{title} (indexing 1,129 files…)"
    assert "lab: indexing 1,129 files" in model.data(lab, Qt.ItemDataRole.ToolTipRole)
    # Finished: the summary in the status bar, the title back, the tree read again.
    done = SourceIndexing("lab", 1129, 1129, finished=True, summary="indexed 1,129 files")
    window.bridge.relay(done)
    assert window.statusBar().currentMessage() == "lab: indexed 1,129 files"
    assert model.data(lab) == title
    assert patients(model, qtbot, 2) == ["P1", "P2"]


def test_rescan_finds_new_files_and_applies_only_to_folder_archives(
    qtbot: QtBot, window: MainWindow, lab_folder: Path
) -> None:
    browser, model = window.archives, window.archives.model
    shown: list[Message] = []
    window.messages.shown.connect(shown.append)
    assert patients(model, qtbot, 2) == ["P1", "P2"]
    browser.tree.setCurrentIndex(model.source_index("lab"))
    assert browser.rescan_action.isEnabled() and browser.remove_source_action.isEnabled()
    assert browser.rescan_action in browser.tree.actions()
    make_series(lab_folder, "P3", "1.2.3", "1.2.3.1", 1, pixels=8)
    browser.tree.expand(model.source_index("lab"))
    browser.rescan_action.trigger()
    qtbot.waitUntil(
        lambda: any(m.text.startswith("Local folder") and "indexed" in m.text for m in shown), timeout=10000
    )
    assert patients(model, qtbot, 3) == ["P1", "P2", "P3"]


def test_rescan_is_off_for_an_archive_read_live(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    browser = window.archives
    service = window.service
    # An IDC index (offline here): read as it is, nothing to rescan.
    index = small_index(tmp_path / "idc.parquet", [series_row(("c1", "p1", "s1", "1.1"), "u-1", [b"x"])])
    service.archives.add("idc", {"index": str(index), "endpoint_url": "http://127.0.0.1:9"})
    qtbot.waitUntil(lambda: browser.model.source_index("idc").isValid(), timeout=10000)
    assert browser.current_source() == "idc"
    assert not browser.rescan_action.isEnabled()
    assert browser.remove_source_action.isEnabled()
    browser.tree.setCurrentIndex(browser.model.source_index("lab"))
    assert browser.rescan_action.isEnabled()


def test_a_removed_archive_leaves_the_tree_without_a_restart(qtbot: QtBot, window: MainWindow) -> None:
    model = window.archives.model
    assert patients(model, qtbot, 2) == ["P1", "P2"]
    with qtbot.waitSignal(
        window.bridge.event_received, check_params_cb=lambda e: isinstance(e, SourcesChanged)
    ):
        window.service.archives.remove("lab")
    # The clinical tables stay: they are on every node.
    assert [model.entry(model.index(r, 0)).source_id for r in range(model.rowCount())] == ["clinical"]
    assert not window.archives.rescan_action.isEnabled()
    assert not window.archives.remove_source_action.isEnabled()
