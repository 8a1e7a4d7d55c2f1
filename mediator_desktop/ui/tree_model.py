"""What the app's tree models share: items that know their parent and children, the plumbing Qt
asks of every ``QAbstractItemModel`` (index, parent, counts, headers), and sorting by a column
(the rows loaded so far, and each page as it arrives)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt

AnyIndex = QModelIndex | QPersistentModelIndex


class TreeItem:
    """One row of a tree model; the root is an item too (invisible, without a parent)."""

    __slots__ = ("children", "parent")

    def __init__(self, parent: TreeItem | None) -> None:
        self.parent = parent
        self.children: list[Any] = []


class TreeModel(QAbstractItemModel):
    """A tree of ``TreeItem`` under ``self._root``, with columns named by ``COLUMNS``."""

    COLUMNS: tuple[str, ...] = ()
    _root: TreeItem
    #: The column and order rows are sorted by (None: as the source lists them).
    _sorting: tuple[int, Qt.SortOrder] | None = None

    def sort_key(self, item: Any, column: int) -> Any:
        """What ``item`` is sorted by in ``column`` (comparable among siblings; None sorts last)."""
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort every loaded level by ``column``; pages loaded later are sorted as they come."""
        if not 0 <= column < len(self.COLUMNS):
            return
        self._sorting = (column, order)
        self.resort()

    def resort(self) -> None:
        """Sort the loaded rows again (after a page arrived), keeping selections and the current row."""
        if self._sorting is None:
            return
        column, order = self._sorting
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        held = [(self.item(i), i.column()) if i.isValid() else None for i in old]
        reverse = order == Qt.SortOrder.DescendingOrder
        for item in self._walk(self._root):
            if len(item.children) > 1:
                keyed = [(self.sort_key(child, column), child) for child in item.children]
                known = sorted(
                    (kv for kv in keyed if kv[0] is not None), key=lambda kv: kv[0], reverse=reverse
                )
                item.children = [c for _, c in known] + [c for k, c in keyed if k is None]
        new = [
            QModelIndex()
            if h is None or h[0].parent is None
            else self.createIndex(h[0].parent.children.index(h[0]), h[1], h[0])
            for h in held
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _walk(self, item: TreeItem) -> Iterator[TreeItem]:
        yield item
        for child in item.children:
            if child.children:
                yield from self._walk(child)

    def item(self, index: AnyIndex) -> TreeItem:
        if not index.isValid():
            return self._root
        item = index.internalPointer()
        assert isinstance(item, TreeItem)
        return item

    def _index_of(self, item: TreeItem) -> QModelIndex:
        if item is self._root or item.parent is None:
            return QModelIndex()
        return self.createIndex(item.parent.children.index(item), 0, item)

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        item = self.item(parent)
        if 0 <= row < len(item.children) and 0 <= column < len(self.COLUMNS):
            return self.createIndex(row, column, item.children[row])
        return QModelIndex()

    def parent(self, index: AnyIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        parent = self.item(index).parent
        return QModelIndex() if parent is None else self._index_of(parent)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.item(parent).children)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None
