"""A version that selects no data says so in the set view, and its download is refused with that
message instead of starting (offscreen, a real node over a local DICOM folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.pointer import Pointer
from mediator_desktop.ui.errors import Level, Message
from mediator_desktop.ui.main_window import MainWindow
from mediator_desktop.ui.set_view import EMPTY_CHANGES, EMPTY_VERSION

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(local_window: MainWindow) -> MainWindow:
    return local_window


def open_set(window: MainWindow, qtbot: QtBot, name: str, *pointers: Pointer) -> str:
    sets = window.service.sets
    set_id = sets.create(name)
    sets.update(set_id, add=pointers, message="v1")
    with qtbot.waitSignal(window.set_view.resolved, timeout=10000):
        window.open_set(set_id)
    return set_id


def test_a_version_that_selects_nothing_says_so_and_is_not_downloaded(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    shown: list[Message] = []
    window.messages.shown.connect(shown.append)
    view = window.set_view
    open_set(window, qtbot, "Nothing", Pointer.of("lab", "P1", Modality="XX"))  # no XX series there
    assert view.warning.isVisible() and view.warning.text() == EMPTY_VERSION
    assert view.selects_nothing()
    window.start_download(tmp_path / "out")
    assert shown[-1] == Message(Level.ERROR, EMPTY_VERSION)
    assert window.banner.label.text() == EMPTY_VERSION
    assert window.service.downloads.list() == []
    assert not (tmp_path / "out").exists()
    # Pending changes that select data take the warning away; undone, it is back.
    with qtbot.waitSignal(view.resolved, timeout=10000):
        view.add([Pointer.of("lab", "P2")])
    assert not view.warning.isVisible()
    with qtbot.waitSignal(view.resolved, timeout=10000):
        view.undo()
    assert view.warning.text() == EMPTY_VERSION


def test_a_version_with_data_has_no_warning_and_pending_changes_to_nothing_get_theirs(
    qtbot: QtBot, window: MainWindow
) -> None:
    view = window.set_view
    open_set(window, qtbot, "Some", Pointer.of("lab", "P1"))
    assert not view.warning.isVisible() and not view.selects_nothing()
    view.tree.selectAll()
    with qtbot.waitSignal(view.resolved, timeout=10000):
        view.remove_selected()
    assert view.warning.isVisible() and view.warning.text() == EMPTY_CHANGES
    assert not view.selects_nothing()  # the version itself still selects P1
