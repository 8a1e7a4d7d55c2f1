"""Nodes for the window's tests: on the small IDC world, or on a local DICOM folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import MainWindow
from tests.helpers.dicom import make_series
from tests.helpers.idc_world import IdcWorld
from tests.helpers.windows import shown_window
from tests.unit.ui.trays import RecordingTray


@pytest.fixture
def node(world: IdcWorld, mediator_home: Path) -> Iterator[Node]:
    world.install(mediator_home)
    with Node() as started:
        yield started


@pytest.fixture
def lab_folder(tmp_path: Path) -> Path:
    """A folder of DICOM files: two patients, one series each."""
    folder = tmp_path / "lab-folder"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", body_part="HEAD", pixels=8)
    return folder


@pytest.fixture
def local_node(mediator_home: Path, lab_folder: Path) -> Iterator[Node]:
    """A node whose one archive is ``lab_folder`` as the local source ``lab`` (no network), with
    no scheduled update checks (a test checks when it means to)."""
    Settings(
        data_dir=mediator_home / "data",
        download_dir=mediator_home / "downloads",
        display_name="ann",
        sources=({"kind": "local", "id": "lab", "options": {"folder": str(lab_folder)}},),
        discovery=False,
        update_check_minutes=0,
    ).save(mediator_home / "config" / "settings.json")
    with Node() as started:
        yield started


@pytest.fixture
def local_window(qtbot: QtBot, local_node: Node) -> Iterator[MainWindow]:
    """The main window over ``local_node``."""
    yield from shown_window(qtbot, local_node)


@pytest.fixture
def tray() -> RecordingTray:
    return RecordingTray()
