"""What the app's tree models share: items that know their parent and children, and the plumbing
Qt asks of every ``QAbstractItemModel`` (index, parent, counts, headers)."""

from __future__ import annotations

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
