"""Screenshots of the main screens for the README, taken from the real app under Xvfb.

    python packaging/screenshots.py [--out docs/screenshots]

Starts Xvfb when there is no display (Debian: xvfb), a node in a temporary MEDIATOR_HOME on the
real IDC index (offline), makes two demo sets, and saves the main window, the diff view, the
settings dialog and the join-code dialog as PNG files; then the readable trees: the sample set the
welcome offers (its composition charts, studies and series as people name them) beside a folder
of the scanner's files with a series' preview (pydicom's own CT test image).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def start_xvfb() -> subprocess.Popen[str] | None:
    if os.environ.get("DISPLAY"):
        return None
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert xvfb.stdout is not None
    os.environ["DISPLAY"] = f":{xvfb.stdout.readline().strip()}"
    return xvfb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    xvfb = start_xvfb()
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    os.environ["MEDIATOR_DISCOVERY"] = "off"
    os.environ["MEDIATOR_NO_WELCOME"] = "1"  # no first-start question over the window
    os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["MEDIATOR_HOME"] = home
            return shoot(args.out)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def shoot(out: Path) -> int:
    from PySide6.QtCore import QDeadlineTimer, QEventLoop
    from PySide6.QtWidgets import QApplication, QWidget

    from mediator_desktop.core.pointer import Pointer
    from mediator_desktop.core.replica import Visibility
    from mediator_desktop.core.selection import Selection
    from mediator_desktop.node import Node
    from mediator_desktop.ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    out.mkdir(parents=True, exist_ok=True)

    def wait(condition: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = QDeadlineTimer(int(seconds * 1000))
        while not condition():
            if deadline.hasExpired():
                raise TimeoutError("the window did not get there in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)

    def save(widget: QWidget, name: str) -> None:
        app.processEvents()
        widget.grab().save(str(out / f"{name}.png"))
        print(f"wrote {out / name}.png")

    with Node() as node:
        service = node.service
        rider = service.sets.create("RIDER CT", "CT series of two IDC collections", Visibility.CLUSTER)
        first = Selection.of(
            Pointer.of("idc", "rider_pilot", Modality="CT"),
            Pointer.of("idc", "pseudo_phi_dicom_data", Modality="CT"),
        )
        service.sets.commit(rider, first, service.archives.resolve(first), "two collections")
        second = first.remove(Pointer.of("idc", "rider_pilot", "1.3.6.1.4.1.9328.50.1.0109"))
        service.sets.commit(rider, second, service.archives.resolve(second), "without one patient")
        lung = service.sets.create("Lung phantoms", "Phantom scans for calibration")
        phantoms = Selection.of(Pointer.of("idc", "lung_phantom"))
        service.sets.commit(lung, phantoms, service.archives.resolve(phantoms), "first cut")
        window = MainWindow(service)
        window.resize(1500, 900)
        window.show()
        window.sidebar.setCurrentItem(window.set_items("mine")[1])
        model = window.archives.model
        wait(lambda: model.rowCount(model.index(0, 0)) > 100)
        wait(lambda: window.set_view.model.rowCount() > 0)
        window.set_view.tree.expandToDepth(1)
        save(window, "main-window")
        dialog = window.show_diff()
        assert dialog is not None
        wait(lambda: dialog.tree.topLevelItemCount() > 0)
        save(dialog, "diff")
        dialog.close()
        settings = window.show_settings()
        save(settings, "settings")
        settings.close()
        window.peers.create_button.click()
        wait(lambda: window.peers.code_dialog is not None and window.peers.code_dialog.isVisible())
        assert window.peers.code_dialog is not None
        save(window.peers.code_dialog, "join-code")
        window.peers.code_dialog.close()
        readable_trees(service, window, wait, save)
        window.quit()
    return 0


def readable_trees(service: Any, window: Any, wait: Callable[..., None], save: Callable[..., None]) -> None:
    """The sample set open with its charts and a series chosen; a scanner folder's CT previewed."""
    import shutil

    from pydicom.data import get_testdata_file

    from mediator_desktop.ui.welcome_dialog import SAMPLE, SAMPLE_NAME

    folder = Path(os.environ["MEDIATOR_HOME"]) / "scanner"
    (folder / "ct").mkdir(parents=True)
    shutil.copy(str(get_testdata_file("CT_small.dcm")), folder / "ct" / "1.dcm")
    service.archives.add("local", {"folder": str(folder)}, source_id="scanner")
    sample = service.sets.create(SAMPLE_NAME, add=[SAMPLE], message="sample set")
    view = window.set_view
    view.composed = None
    window.open_set(sample)
    wait(lambda: view.set_id == sample and view.composed is not None)

    def first_child(tree: Any, model: Any, parent: Any) -> Any:
        tree.expand(parent)
        if model.canFetchMore(parent):
            model.fetchMore(parent)
        wait(lambda: model.rowCount(parent) > 0)
        return model.index(0, 0, parent)

    index = view.model.index(0, 0)
    for _ in range(4):  # collection > patient > study > series, each named as people read it
        index = first_child(view.tree, view.model, index)
    view.tree.setCurrentIndex(index)
    archives = window.archives.model
    where = archives.source_index("scanner")
    for _ in range(3):  # patient > study > series of the scanner's folder
        where = first_child(window.archives.tree, archives, where)
    window.archives.tree.setCurrentIndex(where)
    wait(lambda: window.archives.preview.reason == "")
    save(window, "readable-trees")


if __name__ == "__main__":
    sys.exit(main())
