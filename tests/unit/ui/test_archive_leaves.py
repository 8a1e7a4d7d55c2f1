"""The archive tree over an S3 archive (moto's S3 server, the real ``S3Source``), whose objects sit
at varying depths: an object right in the bucket and several folders down is a leaf wherever it
sits (no expander, nothing to load), a folder opens. Offscreen, real widgets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from mediator_desktop.core.events import EventBus
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Archives
from mediator_desktop.sources.s3 import S3Source
from mediator_desktop.ui.archive import ArchiveBrowser, ArchiveModel, pointers_from_mime
from mediator_desktop.ui.errors import MessageBridge
from tests.helpers.s3 import MotoServer

pytestmark = pytest.mark.timeout(60)

#: Keys of the bucket: objects at the top, one folder down and two folders down.
OBJECTS = {
    "readme.txt": b"x" * 12,
    "scans/a.dcm": b"a" * 100,
    "scans/b.dcm": b"b" * 200,
    "scans/more/c.dcm": b"c",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    s3 = server.client()
    s3.create_bucket(Bucket="lab-bucket")
    for key, body in OBJECTS.items():
        s3.put_object(Bucket="lab-bucket", Key=key, Body=body)
    yield server
    server.stop()


@pytest.fixture
def browser(qtbot: QtBot, moto: MotoServer) -> Iterator[ArchiveBrowser]:
    source = S3Source("s3", ["lab-bucket"], endpoint_url=moto.url, secret="test:test")
    widget = ArchiveBrowser(Archives({"s3": source}, EventBus()), MessageBridge())
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.runner.close()


def children(model: ArchiveModel, qtbot: QtBot, parent: QModelIndex, count: int) -> dict[str, QModelIndex]:
    """The children of ``parent`` by key, once ``count`` of them are loaded."""
    if model.canFetchMore(parent):
        model.fetchMore(parent)
    qtbot.waitUntil(lambda: model.rowCount(parent) == count, timeout=10000)
    rows = (model.index(r, 0, parent) for r in range(model.rowCount(parent)))
    return {model.entry(i).path[-1]: i for i in rows}


def test_objects_are_leaves_at_any_depth_and_folders_open(qtbot: QtBot, browser: ArchiveBrowser) -> None:
    model = browser.model
    (bucket,) = children(model, qtbot, model.source_index("s3"), 1).values()
    top = children(model, qtbot, bucket, 2)
    # An object right in the bucket (30 levels above the last one) is a leaf.
    readme, scans = top["readme.txt"], top["scans"]
    assert model.is_leaf(readme) and not model.hasChildren(readme) and not model.canFetchMore(readme)
    assert not model.is_leaf(scans) and model.hasChildren(scans) and model.canFetchMore(scans)
    model.fetchMore(readme)  # asks nothing of the archive
    assert model.rowCount(readme) == 0 and not model.entry(readme).loading
    inside = children(model, qtbot, scans, 3)
    assert [k for k, i in inside.items() if model.is_leaf(i)] == ["a.dcm", "b.dcm"]
    assert model.hasChildren(inside["more"])
    deepest = children(model, qtbot, inside["more"], 1)["c.dcm"]
    assert model.is_leaf(deepest) and not model.hasChildren(deepest)
    # Named as the archive names it, sized, and dragged as a pointer of its own depth.
    assert model.data(readme, Qt.ItemDataRole.ToolTipRole).startswith("object: s3/lab-bucket/readme.txt")
    assert model.data(model.index(readme.row(), 2, bucket)) == human_bytes(12)
    assert pointers_from_mime(model.mimeData([readme])) == [Pointer.of("s3", "lab-bucket", "readme.txt")]
