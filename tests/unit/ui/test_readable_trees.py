"""Readable trees, previews, composition charts and the sample set, offscreen with real widgets: a
local folder of pydicom's real CT and JPEG 2000 files, IDC's installed index for the sample set."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from mediator_desktop.core.events import EventBus
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.previews import PreviewCache
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Archives
from mediator_desktop.sources.local import LocalFolderSource
from mediator_desktop.ui.archive import ArchiveBrowser, ArchiveModel
from mediator_desktop.ui.charts import BarChart, top
from mediator_desktop.ui.diff_view import DiffCharts, DiffResult
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.set_view import composition
from mediator_desktop.ui.welcome_dialog import SAMPLE, SAMPLE_NAME, WelcomeDialog
from tests.helpers.service import World, world

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def folder(tmp_path: Path) -> LocalFolderSource:
    root = tmp_path / "dicom"
    for name, sub in (("CT_small.dcm", "ct"), ("JPEG2000.dcm", "j2k")):
        (root / sub).mkdir(parents=True)
        shutil.copy(str(get_testdata_file(name)), root / sub / "1.dcm")
    source = LocalFolderSource("lab", root, tmp_path / "index.sqlite")
    source.rescan()
    return source


@pytest.fixture
def browser(qtbot: QtBot, folder: LocalFolderSource, tmp_path: Path) -> Iterator[ArchiveBrowser]:
    archives = Archives({"lab": folder}, EventBus())
    widget = ArchiveBrowser(archives, MessageBridge(), previews=PreviewCache(tmp_path / "previews"))
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.runner.close()
    widget.preview.runner.close()


def load(model: ArchiveModel, qtbot: QtBot, parent: QModelIndex) -> list[QModelIndex]:
    if model.canFetchMore(parent):
        model.fetchMore(parent)
    qtbot.waitUntil(lambda: model.rowCount(parent) > 0, timeout=10000)
    return [model.index(r, 0, parent) for r in range(model.rowCount(parent))]


def leaves(browser: ArchiveBrowser, qtbot: QtBot) -> dict[str, QModelIndex]:
    """Series rows by their folder (``ct``, ``j2k``)."""
    model, out = browser.model, {}
    for patient in load(model, qtbot, model.index(0, 0)):
        for study in load(model, qtbot, patient):
            for series in load(model, qtbot, study):
                entry = model.entry(series)
                files = browser.archives.get("lab").files_of(entry.path)  # type: ignore[attr-defined]
                out[files[0].parent.name] = series
    return out


def test_series_read_as_labels_with_the_uid_a_column_away(qtbot: QtBot, browser: ArchiveBrowser) -> None:
    series = leaves(browser, qtbot)["ct"]
    model = browser.model
    uid = model.entry(series).path[-1]
    assert model.data(series) == "CT"  # the modality; the folder's files say no number nor description
    assert model.data(series.siblingAtColumn(3)) == uid
    assert f"UID: {uid}" in model.data(series, 3)  # the tooltip (ToolTipRole is 3)
    browser.tree.setCurrentIndex(series)
    assert browser.copy_uids() == [uid]
    assert QApplication.clipboard().text() == uid
    headers = [
        model.headerData(c, __import__("PySide6.QtCore").QtCore.Qt.Orientation.Horizontal) for c in range(4)
    ]
    assert headers == ["Name", "Series", "Size", "UID"]
    assert browser.tree.isSortingEnabled()


def test_choosing_a_ct_series_shows_its_preview(qtbot: QtBot, browser: ArchiveBrowser) -> None:
    series = leaves(browser, qtbot)["ct"]
    with qtbot.waitSignal(browser.preview.shown, timeout=10000) as shown:
        browser.tree.setCurrentIndex(series)
    assert shown.args == ["image"]
    pixmap = browser.preview.picture.pixmap()
    assert not pixmap.isNull() and pixmap.width() > 32
    assert browser.preview.reason == ""
    entry = browser.model.entry(series)
    assert browser.preview.cache is not None and browser.preview.cache.get("lab", entry.path) is not None


def test_an_undecodable_series_shows_the_reason_quietly(qtbot: QtBot, browser: ArchiveBrowser) -> None:
    series = leaves(browser, qtbot)["j2k"]
    with qtbot.waitSignal(browser.preview.shown, timeout=10000) as shown:
        browser.tree.setCurrentIndex(series)
    assert "cannot decode JPEG 2000" in shown.args[0]
    assert browser.preview.reason.startswith("No preview: cannot decode JPEG 2000")
    assert QApplication.activeModalWidget() is None  # no dialog


def test_a_removed_series_shows_the_reason(qtbot: QtBot, browser: ArchiveBrowser) -> None:
    series = leaves(browser, qtbot)["ct"]
    shutil.rmtree(browser.archives.get("lab").root / "ct")  # type: ignore[attr-defined]
    with qtbot.waitSignal(browser.preview.shown, timeout=10000) as shown:
        browser.tree.setCurrentIndex(series)
    assert "removed from the folder" in shown.args[0]
    assert "No preview" in browser.preview.reason


def test_composition_charts_count_modalities_archives_and_sizes(
    qtbot: QtBot, folder: LocalFolderSource, browser: ArchiveBrowser
) -> None:
    leaves(browser, qtbot)  # browsing teaches the labels (and modalities) of the series
    archives = browser.archives
    made = composition(folder.resolve(Selection.of(Pointer("lab", ()))), archives)
    assert dict(made.archives) == {folder.title: 2}
    assert sum(n for _, n in made.modalities) == 2 and dict(made.modalities).get("CT") == 1
    chart = BarChart("Series per modality")
    qtbot.addWidget(chart)
    chart.set_values(made.modalities)
    chart.resize(300, chart.sizeHint().height())
    chart.show()
    assert chart.grab().width() == 300
    assert "CT: 1" in chart.toolTip()
    assert top([(str(i), i) for i in range(10)], 4)[-1] == ("7 others", 21)


def test_a_diff_charts_added_removed_and_changed(qtbot: QtBot) -> None:
    charts = DiffCharts()
    qtbot.addWidget(charts)
    result = DiffResult(
        "+3 series",
        "no changes",
        [],
        False,
        3,
        1,
        0,
        {"added": (("idc/a", 2), ("idc/b", 1)), "removed": (("idc/a", 1),), "changed": ()},
    )
    charts.show_result(result)
    added, removed, changed = charts.charts
    assert added.values == [("idc/a", 2), ("idc/b", 1)] and added.title == "Added: 3 series"
    assert removed.title == "Removed: 1 series" and changed.values == []


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path / "world") as w:
        yield w


def test_the_welcome_builds_a_sample_set_from_idc_in_one_click(qtbot: QtBot, lab: World) -> None:
    from mediator_desktop.sources.idc import IdcSource

    ann = lab.service("ann", archives={"idc": IdcSource()})
    dialog = WelcomeDialog(ann, MessageBridge())
    qtbot.addWidget(dialog)
    dialog.open()
    assert any("replica set" in label.text() for label in dialog.findChildren(QLabel))
    assert dialog.sample_button.isEnabled()
    with qtbot.waitSignal(dialog.sample_created, timeout=40000) as made:
        dialog.sample_button.click()
    set_id = made.args[0]
    rs = ann.sets.get(set_id)
    assert rs.name == SAMPLE_NAME and rs.head == 1
    manifest = ann.sets.manifest(ann.sets.version(set_id, 1).manifest_id)
    assert len(manifest) == 60 and all(leaf.path[0] == SAMPLE.path[0] for leaf in manifest)
