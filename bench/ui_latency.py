"""Is the GUI thread ever blocked? Event-loop lateness of a 10 ms timer while the real main window
downloads a 10,000-leaf set (nginx as S3 on loopback) and opens a 1,000,000-leaf set.

    python bench/ui_latency.py [--leaves 1000000] [--series 10000] [--only previews]

Previews: a local folder of 200 CT series (pydicom's real CT slice, 4 instances each, plus one
enormous 400-frame series and an undecodable JPEG 2000 one) previewed by the real preview widget:
``p99_lateness_previews_ms`` while all of them decode on its workers, and ``preview_first_ms``,
from choosing a series whose thumbnail is cached on disk to its picture shown (median of 20).

The 1,000,000-leaf set is opened cold (the node's manifest cache emptied, as after a restart).
Last line: one JSON object with p99_lateness_ms, max_lateness_ms, set_open_first_paint_s,
set_open_full_s, download_s, the number of timer samples and goals_missed (the goals below that
this run missed, by figure name; the exit status is 1 when one was missed).

Goals: p99_lateness_ms <= 50, set_open_first_paint_s <= 1, preview_first_ms <= 50,
p99_lateness_previews_ms <= 50.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["MEDIATOR_DISCOVERY"] = "off"
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from transfer import Nginx, World

from tests.helpers.idc import small_index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--only", choices=("previews",), default=None, help="run only this part")
    args = parser.parse_args()
    if args.only == "previews":
        with tempfile.TemporaryDirectory() as tmp:
            figures = run_previews(Path(tmp))
            figures["goals_missed"] = missed(figures)
            print(json.dumps(figures))
            sys.exit(1 if figures["goals_missed"] else 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user when started by root
        world = World(root / "world")
        blob = os.urandom(2048)
        for i in range(args.series):
            world.add_series("bench", f"{i:08x}-0000-4000-8000-{i:012x}", [blob])
        world.finish()
        with Nginx(world.www, root / "nginx") as nginx:
            figures = run(root, world, nginx.url, args.leaves)
            figures.update(run_previews(root / "previews"))
            figures["goals_missed"] = missed(figures)
            print(json.dumps(figures))
    sys.exit(1 if figures["goals_missed"] else 0)  # make bench fails on a missed goal


#: Figure -> the most it may be.
GOALS = {
    "p99_lateness_ms": 50.0,
    "set_open_first_paint_s": 1.0,
    "preview_first_ms": 50.0,
    "p99_lateness_previews_ms": 50.0,
}


def missed(figures: dict[str, object]) -> list[str]:
    """The goals a run missed, as ``"p99_lateness_ms 63.0 > 50.0"``."""
    out = []
    for name, most in GOALS.items():
        if name not in figures:
            continue  # a part that did not run
        value = figures[name]
        assert isinstance(value, (int, float))
        if value > most:
            out.append(f"{name} {value} > {most}")
    return out


def run(root: Path, world: World, endpoint: str, leaves: int) -> dict[str, object]:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from mediator_desktop.core.downloads import DownloadRequest
    from mediator_desktop.core.manifest import ManifestBuilder
    from mediator_desktop.core.pointer import Pointer
    from mediator_desktop.core.selection import Selection
    from mediator_desktop.core.settings import Settings
    from mediator_desktop.node import Node
    from mediator_desktop.ui.main_window import MainWindow

    home = root / "home"
    os.environ["MEDIATOR_HOME"] = str(home)
    index = small_index(root / "index.parquet", world.rows)
    Settings(
        data_dir=home / "data",
        download_dir=home / "downloads",
        sources=({"kind": "idc", "id": "idc", "options": {"index": str(index), "endpoint_url": endpoint}},),
        discovery=False,
    ).save()
    app = QApplication(sys.argv[:1])
    with Node() as node:
        service = node.service
        small = service.sets.create("10k download")
        selection = Selection.of(Pointer.of("idc", "bench"))
        service.sets.commit(small, selection, service.archives.resolve(selection), "10k")
        big = service.sets.create("1M leaves")
        builder = ManifestBuilder()
        for i in range(leaves):
            builder.add(
                "idc",
                (f"coll{i % 40:02d}", f"P{i // 16:07d}", f"1.2.{i // 4}", f"1.2.3.{i}"),
                size=500_000 + i % 1000,
                count=100,
                version=f"{i:032x}",
            )
        t = time.perf_counter()
        service.sets.commit(big, Selection.of(Pointer.of("idc", "coll00")), builder.build(), "1M")
        commit_s = time.perf_counter() - t
        service.sets.forget_manifests()  # cold, as after a restart

        window = MainWindow(service)
        window.resize(1400, 900)
        window.show()

        heartbeat = QTimer()  # wakes the waits below at least every 50 ms
        heartbeat.start(50)

        def spin(condition: object, seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while not condition():  # type: ignore[operator]
                if time.monotonic() > deadline:
                    raise TimeoutError("the window did not get there in time")
                # sleeps until an event comes (the 10 ms timer makes sure one does): no busy loop
                app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

        model = window.archives.model
        spin(lambda: model.rowCount(model.index(0, 0)) > 0, 60)
        late: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        expected = [10.0]

        def tick() -> None:
            now = clock.nsecsElapsed() / 1e6
            late.append(max(0.0, now - expected[0]))
            expected[0] = now + 10.0

        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(10)
        timer.timeout.connect(tick)
        timer.start()
        expected[0] = clock.nsecsElapsed() / 1e6 + 10.0
        # Open the big set and start downloading the small one at the same time.
        first_paint: list[float] = []
        full: list[float] = []
        window.set_view.painted_first.connect(lambda: first_paint.append(time.perf_counter() - started))
        window.set_view.resolved.connect(lambda: full.append(time.perf_counter() - started))
        started = time.perf_counter()
        window.open_set(big)
        app.processEvents()  # the first paint
        painted = time.perf_counter() - started if first_paint else None
        job = service.downloads.start(DownloadRequest(small, root / "download"))
        download_started = time.perf_counter()
        spin(lambda: bool(full) and job.finished, 600)
        download_s = time.perf_counter() - download_started
        timer.stop()
        window.quit()
        assert job.state == "done", job.error
    ordered = sorted(late)
    return {
        "p99_lateness_ms": round(ordered[int(len(ordered) * 0.99) - 1], 1),
        "max_lateness_ms": round(ordered[-1], 1),
        "median_lateness_ms": round(statistics.median(ordered), 2),
        "set_open_first_paint_s": round(painted if painted is not None else full[0], 3),
        "set_open_full_s": round(full[0], 3),
        "download_s": round(download_s, 2),
        "download_leaves": len(world.rows),
        "set_leaves": leaves,
        "commit_1m_s": round(commit_s, 1),
        "samples": len(late),
    }


def previews_folder(root: Path, series: int) -> Path:
    """``series`` CT series of 4 instances each (pydicom's real CT slice, new UIDs), one 400-frame
    series of 512 x 512 frames and one JPEG 2000 series (undecodable here)."""
    import shutil

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ct = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    for s in range(series):
        uid = generate_uid()
        for i in range(4):
            ct.SeriesInstanceUID = uid
            ct.SOPInstanceUID = generate_uid()
            ct.file_meta.MediaStorageSOPInstanceUID = ct.SOPInstanceUID
            out = root / f"s{s:03d}" / f"{i}.dcm"
            out.parent.mkdir(parents=True, exist_ok=True)
            ct.save_as(out)
    big = ct.copy()
    big.SeriesInstanceUID = generate_uid()
    big.SOPInstanceUID = generate_uid()
    big.file_meta.MediaStorageSOPInstanceUID = big.SOPInstanceUID
    big.NumberOfFrames = 400
    big.Rows = big.Columns = 512
    big.PixelData = np.random.default_rng(1).integers(0, 2000, (400, 512, 512), dtype=np.uint16).tobytes()
    (root / "big").mkdir()
    big.save_as(root / "big" / "0.dcm")
    (root / "j2k").mkdir()
    shutil.copy(str(get_testdata_file("JPEG2000.dcm")), root / "j2k" / "0.dcm")
    return root


def run_previews(root: Path, series: int = 200) -> dict[str, object]:
    """The preview widget's figures (see the module's docstring)."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtGui import QPixmap
    from PySide6.QtWidgets import QApplication

    from mediator_desktop.core.events import EventBus
    from mediator_desktop.core.previews import PreviewCache
    from mediator_desktop.core.service import Archives
    from mediator_desktop.sources.local import LocalFolderSource
    from mediator_desktop.ui.preview import PreviewWidget

    app = QApplication.instance() or QApplication(sys.argv[:1])
    folder = previews_folder(root / "dicom", series)
    source = LocalFolderSource("lab", folder, root / "index.sqlite")
    source.rescan()
    paths = [
        (p.key, s.key, x.key)
        for p in source.browse().items
        for s in source.browse((p.key,)).items
        for x in source.browse((p.key, s.key), limit=10_000).items
    ]
    archives = Archives({"lab": source}, EventBus())
    cache = PreviewCache(root / "previews")
    widget = PreviewWidget(archives, cache)
    widget.show()

    def spin(condition: object, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise TimeoutError("the previews did not get there in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

    late: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    expected = [clock.nsecsElapsed() / 1e6 + 10.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        late.append(max(0.0, now - expected[0]))
        expected[0] = now + 10.0

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    outcomes: list[str] = []
    shown: list[QPixmap] = []

    def arrived(result: object) -> None:
        if isinstance(result, str):
            outcomes.append(result)
        else:
            shown.append(QPixmap.fromImage(result))  # type: ignore[arg-type]  # as the widget shows it
            outcomes.append("image")

    started = time.perf_counter()
    for sid, path in (("lab", p) for p in paths):
        widget.runner.run(widget.make, sid, path, done=arrived, failed=lambda e: outcomes.append(str(e)))
    spin(lambda: len(outcomes) == len(paths), 300)
    decode_s = time.perf_counter() - started
    timer.stop()
    ordered = sorted(late) or [0.0]
    # A cached thumbnail: a new widget (nothing in memory), the disk cache warm.
    fresh = PreviewWidget(archives, cache)
    fresh.show()
    firsts = []
    for path in paths[:20]:
        got: list[str] = []
        fresh.shown.connect(got.append)
        t = time.perf_counter()
        fresh.show_leaf("lab", path)
        spin(lambda got=got: bool(got), 10)  # type: ignore[misc]
        firsts.append((time.perf_counter() - t) * 1000)
        fresh.shown.disconnect()
        assert got == ["image"], got
    widget.runner.close()
    fresh.runner.close()
    return {
        "preview_first_ms": round(statistics.median(firsts), 1),
        "preview_first_max_ms": round(max(firsts), 1),
        "p99_lateness_previews_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 1),
        "max_lateness_previews_ms": round(ordered[-1], 1),
        "previews": len(paths),
        "previews_shown": outcomes.count("image"),
        "previews_refused": sorted({o for o in outcomes if o != "image"}),
        "previews_decode_s": round(decode_s, 2),
        "preview_cache_bytes": cache.size,
    }


if __name__ == "__main__":
    main()
