"""The archive browser: every configured source as a lazy tree, loaded a page at a time on workers.

Any entry (a collection, a patient, a series...) can be dragged into a replica set: it travels as
pointers (``POINTER_MIME``), at its own granularity and with the filters in force. Entries read as
imaging people name them (``core.labels``: "2004-03-12 CT CHEST", "CT 3: lung, 245 images"), with
the UID one column away and copyable; the chosen series shows a preview (``ui.preview``).
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
    QApplication,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.errors import MediatorError, NotFound
from mediator_desktop.core.events import Event, SourceIndexing, SourcesChanged
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.labels import LABELS, readable
from mediator_desktop.core.pointer import Filters, Pointer, make_filters
from mediator_desktop.core.previews import PreviewCache
from mediator_desktop.core.service import Archives
from mediator_desktop.core.source import BrowseItem, BrowsePage, DataSource, ScanReport
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.preview import PreviewWidget
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


def holds_tables(source: DataSource) -> bool:
    """Whether ``source`` is the node's clinical tables (it joins cohorts to other archives): the
    clinical panel filters and joins them, the archive browser only lists them."""
    return callable(getattr(source, "cohorts", None))


#: Metadata filter boxes in one row of the archive browser.
FILTERS_PER_ROW = 3


class _Entry(TreeItem):
    """An archive (without an item) or one of its levels' children."""

    __slots__ = ("error", "item", "label", "loading", "path", "source_id", "total")

    def __init__(
        self, parent: _Entry | None, source_id: str, path: tuple[str, ...], item: BrowseItem | None
    ) -> None:
        super().__init__(parent)
        self.source_id = source_id
        self.path = path
        self.item = item
        #: What people read (``core.labels.readable``), made once.
        self.label = "" if item is None else readable(item)
        self.total: int | None = None
        self.loading = False
        self.error: str | None = None


class ArchiveModel(TreeModel):
    """Sources > levels, fetched lazily (``canFetchMore``/``fetchMore``) a page at a time.

    The archives are the service's current ones (``sources_changed`` reads them again); an archive
    that indexes a folder says so on its row while it does. An archive that cannot answer is told
    through ``messages``. Signals: loaded() after each page.
    """

    loaded = Signal()
    COLUMNS = ("Name", "Series", "Size", "UID")

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
        #: Bumped when one archive's tree is read again (``reload_source``): older pages are dropped.
        self._source_generation: dict[str, int] = {}
        #: The indexing under way, by archive.
        self._indexing: dict[str, SourceIndexing] = {}
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

    def sources_changed(self) -> None:
        """Archives were added or removed: list the current ones (trees are read again)."""
        ids = set(self._archives.ids())
        self._indexing = {sid: e for sid, e in self._indexing.items() if sid in ids}
        self._reload()

    def source_index(self, source_id: str) -> QModelIndex:
        """The row of an archive (invalid when it is not listed)."""
        for row, entry in enumerate(self._root.children):
            if entry.source_id == source_id:
                return self.index(row, 0)
        return QModelIndex()

    def reload_source(self, source_id: str) -> None:
        """Read one archive's tree again (it was re-indexed); the others stay as they are."""
        index = self.source_index(source_id)
        if not index.isValid():
            return
        entry = self.entry(index)
        self._source_generation[source_id] = self._source_generation.get(source_id, 0) + 1
        if entry.children:
            self.beginRemoveRows(index, 0, len(entry.children) - 1)
            entry.children = []
            self.endRemoveRows()
        entry.total, entry.loading, entry.error = None, False, None
        self.dataChanged.emit(index, index.siblingAtColumn(len(self.COLUMNS) - 1))

    def set_indexing(self, event: SourceIndexing) -> None:
        """Show how far an archive's index is; once it is done, read its tree again."""
        if event.finished:
            self._indexing.pop(event.source_id, None)
            self.reload_source(event.source_id)
            return
        self._indexing[event.source_id] = event
        index = self.source_index(event.source_id)
        if index.isValid():
            self.dataChanged.emit(index, index)

    def indexing(self, source_id: str) -> SourceIndexing | None:
        """The indexing under way of an archive, if any."""
        return self._indexing.get(source_id)

    def _stamp(self, source_id: str) -> tuple[int, int]:
        return self._generation, self._source_generation.get(source_id, 0)

    def entry(self, index: AnyIndex) -> _Entry:
        entry = self.item(index)
        assert isinstance(entry, _Entry)
        return entry

    def pointer(self, index: AnyIndex) -> Pointer:
        entry = self.entry(index)
        return Pointer(entry.source_id, entry.path, self._filters_of(entry.source_id))

    def _filters_of(self, source_id: str) -> Filters:
        """The filters in force that ``source_id`` knows (GDC's ``data_type`` means nothing to IDC)."""
        try:
            known = set(self._archives.get(source_id).filterable)
        except NotFound:
            return ()
        return make_filters({k: v for k, v in self._filters.items() if k in known})

    # -- Qt model --------------------------------------------------------------------------------
    def _levels(self, entry: _Entry) -> tuple[str, ...]:
        try:
            return self._archives.get(entry.source_id).hierarchy.levels
        except NotFound:  # removed; the tree follows once the event arrives
            return ()

    def is_leaf(self, index: AnyIndex) -> bool:
        """Whether the entry at ``index`` has no children to load: an item of its archive's leaf
        level at any depth (an S3 object right in a bucket, or five prefixes down), or one at
        the last level (an archive that was removed has none either)."""
        entry = self.entry(index)
        return entry is not self._root and self._is_leaf(entry)

    def _is_leaf(self, entry: _Entry) -> bool:
        levels = self._levels(entry)
        if len(entry.path) >= len(levels):
            return True
        return entry.item is not None and entry.item.level == levels[-1]

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        entry = self.entry(parent)
        if entry is self._root:
            return bool(entry.children)
        if self._is_leaf(entry):
            return False
        return entry.total is None or entry.total > 0

    def canFetchMore(self, parent: AnyIndex) -> bool:
        entry = self.entry(parent)
        if entry is self._root or entry.loading or self._is_leaf(entry):
            return False
        return entry.total is None or len(entry.children) < entry.total

    def fetchMore(self, parent: AnyIndex) -> None:
        if not self.canFetchMore(parent):
            return
        entry = self.entry(parent)
        entry.loading = True
        stamp = self._stamp(entry.source_id)
        filters = self._filters_of(entry.source_id)
        if self._search and not entry.path:
            call: Any = self._archives.search
            args: tuple[Any, ...] = (entry.source_id, self._search)
            kwargs: dict[str, Any] = {"filters": filters, "limit": 5000}
        else:
            call = self._archives.browse
            args = (entry.source_id, entry.path)
            kwargs = {"filters": filters, "offset": len(entry.children), "limit": PAGE}

        def done(result: BrowsePage | list[BrowseItem]) -> None:
            if stamp != self._stamp(entry.source_id):
                return  # the tree was reloaded meanwhile
            items = result if isinstance(result, list) else list(result.items)
            total = len(items) if isinstance(result, list) else result.total
            entry.loading = False
            entry.total = total if items or isinstance(result, list) else len(entry.children)
            if items:
                LABELS.remember(entry.source_id, entry.path, items)  # the set view names them too
                first = len(entry.children)
                self.beginInsertRows(self._index_of(entry), first, first + len(items) - 1)
                entry.children.extend(_Entry(entry, entry.source_id, (*entry.path, i.key), i) for i in items)
                self.endInsertRows()
                self.resort()
            self.loaded.emit()

        def failed(error: BaseException) -> None:
            entry.loading = False
            if stamp != self._stamp(entry.source_id):
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
                    title = self._archives.title(entry.source_id)
                    indexing = self._indexing.get(entry.source_id)
                    if indexing is not None and not entry.children:
                        total = f" {indexing.total:,} files" if indexing.total is not None else ""
                        return f"{title} (indexing{total}…)"
                    return title
                return entry.label
            if item is None:
                return None
            if column == 1:
                return None if item.leaves is None else f"{item.leaves:,}"
            if column == 3:
                return item.key if entry.label != item.key else None
            return None if item.size is None else human_bytes(item.size)
        if role == Qt.ItemDataRole.ToolTipRole and column in (0, 3):
            what = item.level if item is not None else "archive"
            tip = f"{what}: {self.pointer(index)!s}"
            if item is not None:
                tip += f"\nUID: {item.key}" if entry.label != item.key else ""
            indexing = self._indexing.get(entry.source_id) if item is None else None
            return (
                tip
                + (f"\n{entry.error}" if entry.error else "")
                + (f"\n{indexing.line()}" if indexing is not None else "")
                + "\nDrag it into a replica set to add it."
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def sort_key(self, item: Any, column: int) -> Any:
        entry = item
        if not isinstance(entry, _Entry) or entry.item is None:
            return None  # the archives keep their order
        value = entry.item
        if column == 0:
            return entry.label.casefold()
        if column == 1:
            return value.leaves
        if column == 2:
            return value.size
        return value.key

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
    """``BodyPartExamined`` -> ``body part examined``, ``data_category`` -> ``data category``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).replace("_", " ").lower()


class ArchiveBrowser(QWidget):
    """The model in a tree view, with a search box and a filter per metadata field; the tree's
    context menu rescans or removes an archive, the "+" button asks for a new one.

    It follows the archives' events through ``on_event`` (the window relays them). Signals:
    add_requested(list[Pointer]): the keyboard's way to drag the selected entries into the set;
    add_source_requested(): the "+" button; match_requested(list[Pointer]): "Find matching data
    in other archives…" for the selected entries (with the filters in force).
    """

    add_requested = Signal(list)
    add_source_requested = Signal()
    match_requested = Signal(list)

    def __init__(
        self,
        archives: Archives,
        messages: MessageBridge,
        parent: QWidget | None = None,
        previews: PreviewCache | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("archiveBrowser")
        self.archives = archives
        self.messages = messages
        self.remove_dialog: QMessageBox | None = None
        self.runner = Runner(self, name="archive")
        self.model = ArchiveModel(archives, self.runner, messages, self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search collections…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the archives")
        self.add_source_button = QToolButton(self)
        self.add_source_button.setText("+")
        self.add_source_button.setToolTip("Add an archive: a local folder, a DICOMweb server, TCIA…")
        self.add_source_button.setAccessibleName("Add archive")
        self.add_source_button.clicked.connect(self.add_source_requested)
        self._top = QHBoxLayout()
        self._top.addWidget(self.search, 1)
        self._top.addWidget(self.add_source_button)
        # One box per metadata the archives filter on (Modality, BodyPartExamined...).
        self._filter_grid = QGridLayout()
        self.filter_boxes: dict[str, QComboBox] = {}
        for source in archives.all():
            self._add_filters(source)
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setAccessibleName("Archives")
        size_columns(self.tree)
        self.model.loaded.connect(lambda: self.tree.resizeColumnToContents(3))
        self.preview = PreviewWidget(archives, previews, self)
        self.tree.selectionModel().currentChanged.connect(lambda index, _: self._preview(index))
        self.add_action = QAction("Add to the open set", self)
        self.add_action.setShortcuts([QKeySequence("Insert"), QKeySequence("Ctrl+Return")])
        self.add_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.add_action.setToolTip("Add the selected archive items to the open set (Insert)")
        self.add_action.triggered.connect(self._add_selected)
        self.tree.addAction(self.add_action)
        self.match_action = QAction("Find matching data in other archives…", self)
        self.match_action.setToolTip(
            "The same patients in the other archives: how many each holds, and what data (CT, "
            "RNA-Seq, slides…), to add to a set as one rule"
        )
        self.match_action.triggered.connect(self._match_selected)
        self.tree.addAction(self.match_action)
        self.copy_uid_action = QAction("Copy UID", self)
        self.copy_uid_action.setToolTip("Copy the UIDs (keys) of the selected entries")
        self.copy_uid_action.triggered.connect(self.copy_uids)
        self.tree.addAction(self.copy_uid_action)
        separator = QAction(self)
        separator.setSeparator(True)
        self.tree.addAction(separator)
        self.rescan_action = QAction("Rescan", self)
        self.rescan_action.setToolTip("Index the archive's folder again (new and changed files)")
        self.rescan_action.triggered.connect(lambda: self.rescan(self.current_source()))
        self.remove_source_action = QAction("Remove archive…", self)
        self.remove_source_action.setToolTip("Stop browsing this archive (sets keep their pointers)")
        self.remove_source_action.triggered.connect(lambda: self.ask_remove(self.current_source()))
        self.tree.addAction(self.rescan_action)
        self.tree.addAction(self.remove_source_action)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.tree.selectionModel().currentChanged.connect(lambda *_: self._update_actions())
        self.tree.selectionModel().selectionChanged.connect(
            lambda *_: self.match_action.setEnabled(self.tree.selectionModel().hasSelection())
        )
        self.model.modelReset.connect(self._update_actions)
        self._update_actions()
        # The first archive opens by itself (its collections load on a worker).
        self.model.modelReset.connect(self._expand_first)
        self._expand_first()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._top)
        layout.addLayout(self._filter_grid)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignHCenter)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(lambda: self.model.set_search(self.search.text()))
        self.search.textChanged.connect(lambda _: self._debounce.start())

    def _add_filters(self, source: DataSource) -> None:
        """Filter boxes for the metadata ``source`` filters on that no box offers yet (a table's
        columns are filtered in the clinical panel, not here)."""
        if holds_tables(source):
            return
        for name in source.filterable:
            if name in self.filter_boxes:
                continue
            box = QComboBox(self)
            label = _spaced(name)
            box.setToolTip(f"Show only series with this {label}")
            box.setAccessibleName(f"{label} filter")
            box.addItem(f"Any {label}", None)
            box.currentIndexChanged.connect(self._filters_changed)
            # Boxes shrink to a few characters and wrap in rows of three, so an archive with many
            # filters (GDC has six) never widens the window past the screen.
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
            n = len(self.filter_boxes)
            self.filter_boxes[name] = box
            self._filter_grid.addWidget(box, n // FILTERS_PER_ROW, n % FILTERS_PER_ROW)
            self.runner.run(
                self.archives.filter_values,
                source.source_id,
                name,
                done=functools.partial(self._fill, box),
                failed=self.messages.handler(prefix="a metadata filter is not available: "),
            )

    # -- the archives ----------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Called on the GUI thread with the node's events: follows the archives'."""
        if isinstance(event, SourcesChanged):
            self.sources_changed(event.added)
        elif isinstance(event, SourceIndexing):
            index = self.model.source_index(event.source_id)
            expanded = index.isValid() and self.tree.isExpanded(index)
            self.model.set_indexing(event)
            if event.finished and expanded:
                self.model.fetchMore(index)  # its tree was dropped: read it again at once

    def sources_changed(self, added: tuple[str, ...] = ()) -> None:
        """List the current archives; the last one added is chosen and opened."""
        self.model.sources_changed()
        for source_id in added:
            try:
                self._add_filters(self.archives.get(source_id))
            except NotFound:  # removed again meanwhile
                continue
        index = self.model.source_index(added[-1]) if added else QModelIndex()
        if index.isValid():
            self.tree.setCurrentIndex(index)
            self.tree.expand(index)
        self._update_actions()

    def current_source(self) -> str | None:
        """The archive of the chosen row, if any."""
        index = self.tree.currentIndex()
        if not index.isValid():
            return None
        return self.model.entry(index).source_id

    def _update_actions(self) -> None:
        source_id = self.current_source()
        try:
            indexes = source_id is not None and self.archives.indexes(source_id)
        except MediatorError:
            indexes = False
        self.rescan_action.setEnabled(indexes)
        # Only archives of the settings can go; the clinical tables are on every node.
        configured = {c["id"] for c in self.archives.configs()}
        self.remove_source_action.setEnabled(source_id is not None and source_id in configured)
        self.match_action.setEnabled(self.tree.selectionModel().hasSelection())

    def rescan(self, source_id: str | None) -> None:
        """Index a folder archive again (on a worker), then read its tree again."""
        if source_id is None:
            return
        title = self.archives.title(source_id)
        self.messages.info(f"{title}: rescanning…")

        def done(report: ScanReport) -> None:
            self.messages.info(f"{title}: {report.summary()}")
            index = self.model.source_index(source_id)
            expanded = index.isValid() and self.tree.isExpanded(index)
            self.model.reload_source(source_id)
            if expanded:
                self.model.fetchMore(index)

        self.runner.run(
            self.archives.rescan, source_id, done=done, failed=self.messages.handler(prefix=f"{title}: ")
        )

    def ask_remove(self, source_id: str | None) -> QMessageBox | None:
        """Ask before removing an archive (a window-modal question; the app goes on)."""
        if source_id is None:
            return None
        title = self.archives.title(source_id)
        named = title if title == source_id else f"{title} ({source_id})"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove archive",
            f"Remove the archive {named}?",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setInformativeText(
            f"Sets that point to it keep their pointers, but they cannot be resolved or downloaded "
            f"until an archive with the id {source_id!r} is added again. Nothing is deleted from "
            "the archive itself."
        )
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        remove.clicked.connect(lambda: self.remove_source(source_id))
        self.remove_dialog = box
        box.open()
        return box

    def remove_button(self) -> QPushButton | None:
        """The open question's "Remove" button (tests and accessibility)."""
        if self.remove_dialog is None:
            return None
        for button in self.remove_dialog.buttons():
            if self.remove_dialog.buttonRole(button) is QMessageBox.ButtonRole.DestructiveRole:
                return button if isinstance(button, QPushButton) else None
        return None

    def remove_source(self, source_id: str) -> None:
        """Remove an archive (on a worker); the tree follows the event."""
        title = self.archives.title(source_id)
        self.runner.run(
            self.archives.remove,
            source_id,
            done=lambda _: self.messages.info(f"Removed the archive {title}"),
            failed=self.messages.handler(prefix=f"{title} was not removed: "),
        )

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

    def _match_selected(self) -> None:
        pointers = self.selected_pointers()
        if pointers:
            self.match_requested.emit(pointers)

    def copy_uids(self) -> list[str]:
        """Put the keys (UIDs) of the selected entries on the clipboard, one a line."""
        rows = [i for i in self.tree.selectionModel().selectedIndexes() if i.column() == 0]
        if not rows and self.tree.currentIndex().isValid():
            rows = [self.tree.currentIndex().siblingAtColumn(0)]
        keys = [e.path[-1] for e in (self.model.entry(i) for i in rows) if e.path]
        if keys:
            QApplication.clipboard().setText("\n".join(keys))
        return keys

    def _preview(self, index: QModelIndex) -> None:
        """Show the chosen series' preview (other entries have none)."""
        if not index.isValid() or not self.model.is_leaf(index):
            self.preview.clear()
            return
        entry = self.model.entry(index)
        if entry.item is None:
            self.preview.clear()
            return
        self.preview.show_leaf(entry.source_id, entry.path, entry.label)

    def selected_pointers(self) -> list[Pointer]:
        rows = [i for i in self.tree.selectionModel().selectedIndexes() if i.column() == 0]
        return [self.model.pointer(i) for i in rows]


def size_columns(tree: QTreeView) -> None:
    """Name stretches; counts and sizes fit their contents (never cut off); the UID column is
    sized to what is loaded; every column sorts (click its header)."""
    header = tree.header()
    header.setStretchLastSection(False)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for column in (1, 2):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
    header.setMinimumSectionSize(40)
    tree.setColumnWidth(3, 120)
    header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # as the archive lists them until asked
    tree.setSortingEnabled(True)
