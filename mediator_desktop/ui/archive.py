"""The archive browser: every configured source as a lazy tree, loaded a page at a time on workers.

Any entry (a collection, a patient, a series...) can be dragged into a replica set: it travels as
pointers (``POINTER_MIME``), at its own granularity and with the filters in force.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from PySide6.QtCore import (
    QMimeData,
    QModelIndex,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.service import Archives
from mediator_desktop.core.source import BrowseItem, BrowsePage
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.tree_model import AnyIndex, TreeItem, TreeModel
from mediator_desktop.ui.workers import Runner

#: Pointers dragged between views: a JSON list of ``Pointer.to_json()``.
POINTER_MIME = "application/x-mediator-pointers"
PAGE = 200


def pointers_to_mime(pointers: list[Pointer]) -> QMimeData:
    mime = QMimeData()
    mime.setData(POINTER_MIME, json.dumps([p.to_json() for p in pointers]).encode())
    mime.setText("\n".join(str(p) for p in pointers))
    return mime


def pointers_from_mime(mime: QMimeData) -> list[Pointer]:
    """The pointers a drag carries; an empty list for anything else (text, files)."""
    if not mime.hasFormat(POINTER_MIME):
        return []
    try:
        data = json.loads(bytes(mime.data(POINTER_MIME).data()).decode())
        return [Pointer.from_json(p) for p in data]
    except (ValueError, MediatorError):
        return []


class _Entry(TreeItem):
    """An archive (without an item) or one of its levels' children."""

    __slots__ = ("error", "item", "loading", "path", "source_id", "total")

    def __init__(
        self, parent: _Entry | None, source_id: str, path: tuple[str, ...], item: BrowseItem | None
    ) -> None:
        super().__init__(parent)
        self.source_id = source_id
        self.path = path
        self.item = item
        self.total: int | None = None
        self.loading = False
        self.error: str | None = None


class ArchiveModel(TreeModel):
    """Sources > levels, fetched lazily (``canFetchMore``/``fetchMore``) a page at a time.

    An archive that cannot answer is told through ``messages``. Signals: loaded() after each page.
    """

    loaded = Signal()
    COLUMNS = ("Name", "Series", "Size")

    def __init__(
        self, archives: Archives, runner: Runner, messages: MessageBridge, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._archives = archives
        self._runner = runner
        self._messages = messages
        self._filters: dict[str, list[str]] = {}
        self._search = ""
        self._generation = 0
        self._root: _Entry = _Entry(None, "", (), None)
        self._reset_children()

    def _reset_children(self) -> None:
        self._root.children = [_Entry(self._root, sid, (), None) for sid in self._archives.ids()]
        self._root.total = len(self._root.children)

    # -- what the browser shows ------------------------------------------------------------------
    def set_filters(self, filters: dict[str, list[str]]) -> None:
        """Metadata filters (``{"Modality": ["CT"]}``) for every level; reloads the tree."""
        self._filters = {k: v for k, v in filters.items() if v}
        self._reload()

    def set_search(self, text: str) -> None:
        """Show only first-level entries (collections...) whose key or label contains ``text``."""
        self._search = text.strip()
        self._reload()

    @property
    def filters(self) -> dict[str, list[str]]:
        return dict(self._filters)

    def _reload(self) -> None:
        self.beginResetModel()
        self._generation += 1
        self._reset_children()
        self.endResetModel()

    def entry(self, index: AnyIndex) -> _Entry:
        entry = self.item(index)
        assert isinstance(entry, _Entry)
        return entry

    def pointer(self, index: AnyIndex) -> Pointer:
        entry = self.entry(index)
        return Pointer(entry.source_id, entry.path, make_filters(self._filters))

    # -- Qt model --------------------------------------------------------------------------------
    def _levels(self, entry: _Entry) -> tuple[str, ...]:
        return self._archives.get(entry.source_id).hierarchy.levels

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        entry = self.entry(parent)
        if entry is self._root:
            return bool(entry.children)
        if len(entry.path) >= len(self._levels(entry)):
            return False
        return entry.total is None or entry.total > 0

    def canFetchMore(self, parent: AnyIndex) -> bool:
        entry = self.entry(parent)
        if entry is self._root or entry.loading or len(entry.path) >= len(self._levels(entry)):
            return False
        return entry.total is None or len(entry.children) < entry.total

    def fetchMore(self, parent: AnyIndex) -> None:
        if not self.canFetchMore(parent):
            return
        entry = self.entry(parent)
        entry.loading = True
        generation = self._generation
        filters = make_filters(self._filters)
        if self._search and not entry.path:
            call: Any = self._archives.search
            args: tuple[Any, ...] = (entry.source_id, self._search)
            kwargs: dict[str, Any] = {"filters": filters, "limit": 5000}
        else:
            call = self._archives.browse
            args = (entry.source_id, entry.path)
            kwargs = {"filters": filters, "offset": len(entry.children), "limit": PAGE}

        def done(result: BrowsePage | list[BrowseItem]) -> None:
            if generation != self._generation:
                return  # the tree was reloaded meanwhile
            items = result if isinstance(result, list) else list(result.items)
            total = len(items) if isinstance(result, list) else result.total
            entry.loading = False
            entry.total = total if items or isinstance(result, list) else len(entry.children)
            if items:
                first = len(entry.children)
                self.beginInsertRows(self._index_of(entry), first, first + len(items) - 1)
                entry.children.extend(_Entry(entry, entry.source_id, (*entry.path, i.key), i) for i in items)
                self.endInsertRows()
            self.loaded.emit()

        def failed(error: BaseException) -> None:
            entry.loading = False
            if generation != self._generation:
                return
            self._messages.failed(error, prefix=f"{self._archives.title(entry.source_id)}: ")
            entry.error = str(error)
            entry.total = len(entry.children)

        self._runner.run(call, *args, done=done, failed=failed, **kwargs)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entry(index)
        column = index.column()
        item = entry.item
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                if item is None:
                    return self._archives.title(entry.source_id)
                return item.label or item.key
            if item is None:
                return None
            if column == 1:
                return None if item.leaves is None else f"{item.leaves:,}"
            return None if item.size is None else human_bytes(item.size)
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            levels = self._levels(entry)
            what = levels[len(entry.path) - 1] if entry.path else "archive"
            tip = f"{what}: {self.pointer(index)!s}"
            return (
                tip + (f"\n{entry.error}" if entry.error else "") + "\nDrag it into a replica set to add it."
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column > 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:
        return [POINTER_MIME, "text/plain"]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:  # type: ignore[override]
        rows = {(i.internalId(), i.row()): i for i in indexes if i.column() == 0}
        return pointers_to_mime([self.pointer(i) for i in rows.values()])

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction


def _spaced(name: str) -> str:
    """``BodyPartExamined`` -> ``body part examined``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


class ArchiveBrowser(QWidget):
    """The model in a tree view, with a search box and a filter per metadata field. Signals:
    add_requested(list[Pointer]): the keyboard's way to drag the selected entries into the set."""

    add_requested = Signal(list)

    def __init__(self, archives: Archives, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("archiveBrowser")
        self.messages = messages
        self.runner = Runner(self, name="archive")
        self.model = ArchiveModel(archives, self.runner, messages, self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search collections…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the archives")
        # One box per metadata the archives filter on (Modality, BodyPartExamined...).
        self.filter_boxes: dict[str, QComboBox] = {}
        for source in archives.all():
            for name in source.filterable:
                if name not in self.filter_boxes:
                    box = QComboBox(self)
                    label = _spaced(name)
                    box.setToolTip(f"Show only series with this {label}")
                    box.setAccessibleName(f"{label} filter")
                    box.addItem(f"Any {label}", None)
                    box.currentIndexChanged.connect(self._filters_changed)
                    self.filter_boxes[name] = box
                    self.runner.run(
                        archives.filter_values,
                        source.source_id,
                        name,
                        done=functools.partial(self._fill, box),
                        failed=messages.handler(prefix="a metadata filter is not available: "),
                    )
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setAccessibleName("Archives")
        self.tree.setColumnWidth(0, 230)
        self.tree.setColumnWidth(1, 70)
        self.add_action = QAction("Add to the open set", self)
        self.add_action.setShortcuts([QKeySequence("Insert"), QKeySequence("Ctrl+Return")])
        self.add_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.add_action.setToolTip("Add the selected archive items to the open set (Insert)")
        self.add_action.triggered.connect(self._add_selected)
        self.tree.addAction(self.add_action)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        # The first archive opens by itself (its collections load on a worker).
        self.model.modelReset.connect(self._expand_first)
        self._expand_first()
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        for box in self.filter_boxes.values():
            top.addWidget(box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(lambda: self.model.set_search(self.search.text()))
        self.search.textChanged.connect(lambda _: self._debounce.start())

    def _expand_first(self) -> None:
        if self.model.rowCount() > 0:
            self.tree.expand(self.model.index(0, 0))

    def _fill(self, box: QComboBox, values: list[str]) -> None:
        for value in values:
            box.addItem(value, value)

    def _filters_changed(self, _: int) -> None:
        chosen = {name: box.currentData() for name, box in self.filter_boxes.items()}
        self.model.set_filters({name: [value] for name, value in chosen.items() if value})

    def _add_selected(self) -> None:
        pointers = self.selected_pointers()
        if pointers:
            self.add_requested.emit(pointers)

    def selected_pointers(self) -> list[Pointer]:
        rows = [i for i in self.tree.selectionModel().selectedIndexes() if i.column() == 0]
        return [self.model.pointer(i) for i in rows]
