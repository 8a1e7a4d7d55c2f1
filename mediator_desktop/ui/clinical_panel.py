"""The clinical panel: choose patients by what a clinical table says about them ("stage II, over
60"), see how many there are and how many of them each archive holds, and drag them, as one rule,
onto a replica set.

A table's columns are listed with their kind; a column's values come with their counts (check
them to keep those patients; numbers and dates take a from/to range too). The conditions in force
are listed as text (``stage=II,IIA,IIB``, ``age>=60``) and can be removed or typed. The matching
patients are counted on a worker as the conditions change (debounced). "Join to" lists the
archives (an archive-tree item dropped on it, or a typed pointer, narrows one to a collection or a
bucket) with, per archive, how many of the patients it holds (``core.integrator``, on a worker).
The cohort drags as one pointer (``core.clinical.join_pointer``) that a set keeps: the set is
resolved against the archives each time it changes or is checked for updates.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QMimeData, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDrag,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.clinical import (
    BLANK,
    Column,
    Test,
    join_pointer,
    parse_conditions,
    parse_test,
)
from mediator_desktop.core.errors import MediatorError, ValidationError
from mediator_desktop.core.events import (
    ClusterJoined,
    ClusterLeft,
    Event,
    SourcesChanged,
    StateReloaded,
    TableAdded,
)
from mediator_desktop.core.pointer import Filters, Pointer, make_filters
from mediator_desktop.core.replica import TableVersion
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.ui.archive import (
    POINTER_MIME,
    holds_tables,
    pointers_from_mime,
    pointers_to_mime,
)
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.rules import condition_text
from mediator_desktop.ui.workers import Runner

#: Milliseconds the panel waits after a change before counting (and joining) again.
DEBOUNCE_MS = 250
#: A column's values listed at most (the most frequent first).
VALUES_SHOWN = 500
#: The expressions of "has a value" and of blank cells (``core.clinical``).
ANY_VALUE, NO_VALUE = "*", "!"
RED = QColor(176, 0, 32)
#: The second line of a join target that is not checked.
NOT_JOINED = "not joined"
ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True, slots=True)
class TargetCount:
    """What one join target holds of the cohort: ``found`` of ``patients``, or why it cannot say.

    Attributes:
        missing: the patients it has no data for, sorted.
    """

    target: Pointer
    patients: int = 0
    found: int = 0
    missing: tuple[str, ...] = ()
    error: str = ""

    def line(self) -> str:
        if self.error:
            return self.error
        verb = "has" if self.found == 1 else "have"
        return f"{self.found:,} of {spaced_count(self.patients)} {verb} data"


def count_targets(
    service: Service, table: str, filters: Filters, targets: list[Pointer]
) -> list[TargetCount]:
    """For each target, how many of the cohort's patients it holds. Called on a worker: joining
    browses archives that cannot look patients up by ID."""
    counts = []
    for target in targets:
        try:
            expanded = service.archives.expand(Selection.of(join_pointer(table, filters, [target])))
        except MediatorError as exc:  # this archive cannot join (no patient level, unreachable)
            counts.append(TargetCount(target, error=str(exc)))
            continue
        for join in expanded.joins:
            missing = tuple(p for p in join.patients if p not in join.paths)
            counts.append(TargetCount(target, len(join.patients), len(join.paths), missing))
            break
        else:
            counts.append(TargetCount(target))
    return counts


def spaced_count(n: int, noun: str = "patient") -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class TargetList(QListWidget):
    """The archives (and narrower scopes) to join to; archive-tree items dropped on it become
    scopes. Signals: pointers_dropped(list[Pointer])."""

    pointers_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(POINTER_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(POINTER_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        pointers = pointers_from_mime(event.mimeData())
        if pointers:
            event.acceptProposedAction()
            self.pointers_dropped.emit(pointers)


class ConditionList(QListWidget):
    """The conditions in force. Signals: delete_pressed(): Delete or Backspace, to remove one."""

    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Delete) or event.key() == Qt.Key.Key_Backspace:
            self.delete_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class CohortDrag(QLabel):
    """ "⠿ 40 patients → drag onto a set": starts a drag of the cohort's pointer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pointer: Pointer | None = None
        self._pressed: QPoint | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMargin(6)
        self.setWordWrap(True)
        self.setAccessibleName("Drag the cohort onto a set")
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def mime_data(self) -> QMimeData | None:
        """What a drag carries: the cohort's one pointer (None: nothing to drag yet)."""
        return None if self.pointer is None else pointers_to_mime([self.pointer])

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._pressed = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        start = self._pressed
        mime = self.mime_data()
        moved = start is not None and (event.position().toPoint() - start).manhattanLength()
        if mime is None or not moved or moved < QApplication.startDragDistance():
            return
        self._pressed = None
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.DropAction.CopyAction)


class ClinicalPanel(QWidget):
    """Tables, filters, counts and joins of the clinical tables in the store (``service.clinical``).

    Everything that reads a table or an archive runs on workers; the window relays the node's
    events through ``on_event``. Signals: add_requested(list[Pointer]): "Add to open set";
    add_table_requested(): "Add table…"; counted(int): the matching patients were counted;
    joined(list[TargetCount]): the join targets were counted.
    """

    add_requested = Signal(list)
    add_table_requested = Signal()
    counted = Signal(int)
    joined = Signal(list)

    def __init__(self, service: Service, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("clinicalPanel")
        self.setMinimumWidth(360)  # the conditions and the joins' counts stay readable
        self.service = service
        self.messages = messages
        self.runner = Runner(self, workers=2, name="clinical")
        # Joins browse archives: they queue on their own worker, behind no count.
        self.join_runner = Runner(self, workers=1, name="clinical-join")
        self.table: str | None = None
        self.columns_info: dict[str, Column] = {}
        #: The conditions in force: column -> expressions (``core.clinical``), in the order made.
        self.conditions: dict[str, tuple[str, ...]] = {}
        #: Patients in the table, and of them those the conditions keep (None: not counted yet).
        self.total: int | None = None
        self.matching: int | None = None
        self._jobs = {"tables": 0, "columns": 0, "values": 0, "count": 0, "join": 0}
        self._toggled: QListWidgetItem | None = None

        # -- the table
        self.table_box = QComboBox(self)
        self.table_box.setAccessibleName("Clinical table")
        self.table_box.setToolTip("The clinical table whose patients you choose")
        self.table_box.currentIndexChanged.connect(self._table_chosen)
        self.add_table_button = QToolButton(self)
        self.add_table_button.setText("Add table…")
        self.add_table_button.setToolTip("Add a CSV, TSV or Excel table of patients to the cluster")
        self.add_table_button.clicked.connect(self.add_table_requested)
        self.table_info = QLabel("", self)
        self.table_info.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Table", self))
        top.addWidget(self.table_box, 1)
        top.addWidget(self.add_table_button)

        # -- columns and values
        self.column_list = QTreeWidget(self)
        self.column_list.setHeaderLabels(["Column", "Kind"])
        self.column_list.setRootIsDecorated(False)
        self.column_list.setAccessibleName("Columns")
        self.column_list.setColumnWidth(0, 170)
        self.column_list.currentItemChanged.connect(lambda *_: self._column_chosen())
        self.value_title = QLabel("Choose a column to see its values.", self)
        self.value_title.setWordWrap(True)
        self.value_list = QListWidget(self)
        self.value_list.setAccessibleName("Values")
        self.value_list.setToolTip("Check values to keep the patients that have them")
        self.value_list.itemChanged.connect(self._value_changed)
        self.value_list.itemClicked.connect(self._value_clicked)
        self.range_from = QLineEdit(self)
        self.range_from.setAccessibleName("From")
        self.range_to = QLineEdit(self)
        self.range_to.setAccessibleName("To")
        self.range_button = QPushButton("Apply", self)
        self.range_button.setToolTip("Keep the patients whose value lies in this range (both ends included)")
        self.range_button.clicked.connect(self.apply_range)
        for line in (self.range_from, self.range_to):
            line.returnPressed.connect(self.apply_range)
        self.range_row = QWidget(self)
        range_layout = QHBoxLayout(self.range_row)
        range_layout.setContentsMargins(0, 0, 0, 0)
        range_layout.addWidget(QLabel("From", self.range_row))
        range_layout.addWidget(self.range_from, 1)
        range_layout.addWidget(QLabel("to", self.range_row))
        range_layout.addWidget(self.range_to, 1)
        range_layout.addWidget(self.range_button)
        self.range_row.hide()
        values = QWidget(self)
        values_layout = QVBoxLayout(values)
        values_layout.setContentsMargins(0, 0, 0, 0)
        values_layout.addWidget(self.value_title)
        values_layout.addWidget(self.value_list, 1)
        values_layout.addWidget(self.range_row)

        # -- the conditions and the count
        self.condition_list = ConditionList(self)
        self.condition_list.delete_pressed.connect(self.remove_current)
        self.condition_list.setAccessibleName("Conditions")
        self.condition_list.setToolTip(
            "Patients must meet every condition. Delete or double-click removes one."
        )
        self.condition_list.itemDoubleClicked.connect(self._remove_item)
        self.condition_list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.condition_line = QLineEdit(self)
        self.condition_line.setAccessibleName("Type a condition")
        self.condition_line.setPlaceholderText("Type a condition: age>=60, stage=II,IIA, smoking=*")
        self.condition_line.setToolTip(
            "column=value[,value…] (one of), column>=n, column<=n, column=low..high, "
            "column=* (has a value), column=! (blank)"
        )
        self.condition_line.returnPressed.connect(lambda: self.add_condition(self.condition_line.text()))
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the chosen condition (Delete)")
        self.remove_button.clicked.connect(self.remove_current)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.setToolTip("Remove every condition: all patients of the table")
        self.clear_button.clicked.connect(self.clear_conditions)
        self.condition_error = QLabel("", self)
        self.condition_error.setWordWrap(True)
        self.condition_error.setStyleSheet("color: #b00020;")
        self.condition_error.hide()
        self.count_label = QLabel("", self)
        self.count_label.setAccessibleName("Matching patients")
        self.count_label.setStyleSheet("font-weight: bold;")
        self.count_label.setWordWrap(True)
        conditions = QGroupBox("Conditions (all must hold)", self)
        cond_layout = QVBoxLayout(conditions)
        cond_layout.addWidget(self.condition_list, 1)
        cond_buttons = QHBoxLayout()
        cond_buttons.addWidget(self.condition_line, 1)
        cond_buttons.addWidget(self.remove_button)
        cond_buttons.addWidget(self.clear_button)
        cond_layout.addLayout(cond_buttons)
        cond_layout.addWidget(self.condition_error)
        cond_layout.addWidget(self.count_label)

        # -- join targets
        self.target_list = TargetList(self)
        self.target_list.setAccessibleName("Join to")
        self.target_list.setToolTip(
            "Check the archives that hold these patients' images or files. Drop a collection or a "
            "bucket here from the archives panel to join to it alone."
        )
        self.target_list.itemChanged.connect(lambda _: self._schedule())
        self.target_list.pointers_dropped.connect(self.add_scopes)
        self.scope_line = QLineEdit(self)
        self.scope_line.setAccessibleName("Narrow an archive")
        self.scope_line.setPlaceholderText("Or type a scope: tcia/NSCLC Radiogenomics?Modality=CT")
        self.scope_line.returnPressed.connect(self._scope_typed)
        self.scope_button = QPushButton("Add", self)
        self.scope_button.setToolTip("Join to this collection or bucket of an archive")
        self.scope_button.clicked.connect(self._scope_typed)
        self.scope_error = QLabel("", self)
        self.scope_error.setWordWrap(True)
        self.scope_error.setStyleSheet("color: #b00020;")
        self.scope_error.hide()
        targets = QGroupBox("Join to", self)
        targets_layout = QVBoxLayout(targets)
        targets_layout.addWidget(self.target_list, 1)
        scope_row = QHBoxLayout()
        scope_row.addWidget(self.scope_line, 1)
        scope_row.addWidget(self.scope_button)
        targets_layout.addLayout(scope_row)
        targets_layout.addWidget(self.scope_error)

        # -- the cohort
        self.drag_source = CohortDrag(self)
        self.add_button = QPushButton("Add to open set", self)
        self.add_button.setToolTip("Add these patients, in the checked archives, to the set that is open")
        self.add_button.clicked.connect(self.add_to_set)
        bottom = QHBoxLayout()
        bottom.addWidget(self.drag_source, 1)
        bottom.addWidget(self.add_button)

        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.column_list)
        splitter.addWidget(values)
        splitter.addWidget(conditions)
        splitter.addWidget(targets)
        splitter.setSizes([140, 170, 170, 150])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table_info)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh_counts)
        self.fill_targets()
        self.reload_tables()
        self._update_buttons()

    def shutdown(self) -> None:
        """The window closes: no more counting; wait for the workers' running calls."""
        self._timer.stop()
        self.runner.close()
        self.join_runner.close()

    # -- the tables ------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Called on the GUI thread with the node's events: new tables, archives added or removed,
        a cluster joined or left (its tables replace these)."""
        if isinstance(event, TableAdded):
            self.reload_tables(choose=event.name if self.table is None else None)
            if event.name == self.table:
                self._load_columns()
        elif isinstance(event, SourcesChanged):
            self.fill_targets()
        elif isinstance(event, (StateReloaded, ClusterJoined, ClusterLeft)):
            # The table shown may be another one now, or gone: read it again from the start.
            shown, self.table, self.columns_info = self.table, None, {}
            self._table_chosen(-1)
            self.reload_tables(choose=shown)

    def reload_tables(self, choose: str | None = None) -> None:
        """List the store's tables (on a worker); keep the chosen one, or choose ``choose``."""
        self._jobs["tables"] += 1
        job = self._jobs["tables"]

        def done(tables: list[TableVersion]) -> None:
            if job != self._jobs["tables"]:
                return
            wanted = choose or self.table
            self.table_box.blockSignals(True)
            self.table_box.clear()
            for version in sorted(tables, key=lambda t: t.name.casefold()):
                self.table_box.addItem(
                    f"{version.name}  ({version.filename}, v{version.number})", version.name
                )
                row = self.table_box.count() - 1
                self.table_box.setItemData(
                    row,
                    f"{version.rows:,} rows from {version.filename}; patients in {version.key_column}",
                    Qt.ItemDataRole.ToolTipRole,
                )
            index = self.table_box.findData(wanted) if wanted is not None else -1
            self.table_box.setCurrentIndex(index if index >= 0 else (0 if tables else -1))
            self.table_box.blockSignals(False)
            if not tables:
                self.table_info.setText(
                    "No clinical table yet. Add one (CSV, TSV or Excel, one row per patient) with "
                    "“Add table…”, File > Add clinical table…, or drop the file on the window."
                )
            self._table_chosen()

        self.runner.run(
            self.service.clinical.tables, done=done, failed=self.messages.handler(prefix="Clinical tables: ")
        )

    def choose_table(self, name: str) -> None:
        """Show table ``name`` (as choosing it in the box does); it is listed once loaded."""
        index = self.table_box.findData(name)
        if index >= 0:
            self.table_box.setCurrentIndex(index)
        else:
            self.reload_tables(choose=name)

    def _table_chosen(self, index: int = 0) -> None:
        name = self.table_box.currentData() if index >= 0 else None
        name = name if isinstance(name, str) else None
        if name == self.table and self.columns_info:
            return
        self.table = name
        self.conditions = {}
        self.columns_info = {}
        self.total = self.matching = None
        self.column_list.clear()
        self.value_list.clear()
        self.range_row.hide()
        self._show_conditions()
        if name is not None:
            self._load_columns()
        self._update_buttons()

    def _load_columns(self) -> None:
        name = self.table
        if name is None:
            return
        self._jobs["columns"] += 1
        job = self._jobs["columns"]
        clinical = self.service.clinical

        def read() -> tuple[TableVersion, list[Column], int]:
            return clinical.get(name), clinical.columns(name), len(clinical.select(name, ()))

        def done(result: tuple[TableVersion, list[Column], int]) -> None:
            if job != self._jobs["columns"] or name != self.table:
                return
            version, columns, total = result
            self.total = total
            self.table_info.setText(
                f"{version.filename}, version {version.number}: {spaced_count(total)} "
                f"({version.rows:,} rows), patient IDs in <b>{version.key_column}</b>"
            )
            chosen = self.current_column()
            self.columns_info = {c.name: c for c in columns}
            self.column_list.blockSignals(True)
            self.column_list.clear()
            for column in columns:
                item = QTreeWidgetItem([column.name, kind_text(column)])
                item.setData(0, ROLE, column.name)
                tip = f"{column.name}: {_column_tip(column)}"
                if column.name == version.key_column:
                    tip += "\nThe patient ID column"
                    item.setText(1, f"{column.kind}, patient ID")
                item.setToolTip(0, tip)
                item.setToolTip(1, tip)
                self.column_list.addTopLevelItem(item)
                if column.name == chosen:
                    self.column_list.setCurrentItem(item)
            self.column_list.blockSignals(False)
            self._schedule()
            self._column_chosen()

        self.runner.run(read, done=done, failed=self.messages.handler(prefix=f"Table {name}: "))

    # -- a column's values -----------------------------------------------------------------------
    def current_column(self) -> str | None:
        item = self.column_list.currentItem()
        value = None if item is None else item.data(0, ROLE)
        return value if isinstance(value, str) else None

    def choose_column(self, name: str) -> None:
        """Show the values of column ``name`` (as clicking it does)."""
        for i in range(self.column_list.topLevelItemCount()):
            item = self.column_list.topLevelItem(i)
            if item is not None and item.data(0, ROLE) == name:
                self.column_list.setCurrentItem(item)
                return
        raise KeyError(name)

    def _column_chosen(self) -> None:
        column, table = self.current_column(), self.table
        self.value_list.clear()
        info = self.columns_info.get(column) if column is not None else None
        if column is None or table is None or info is None:
            self.value_title.setText("Choose a column to see its values.")
            self.range_row.hide()
            return
        ranged = info.kind in ("number", "date")
        self.range_row.setVisible(ranged)
        if ranged:
            low, high = _range_of(self.conditions.get(column, ()))
            self.range_from.setText(low)
            self.range_to.setText(high)
            example = "2020-01-31" if info.kind == "date" else "60"
            self.range_from.setPlaceholderText(str(info.low) if info.low is not None else example)
            self.range_to.setPlaceholderText(str(info.high) if info.high is not None else example)
        self.value_title.setText(f"Values of <b>{column}</b> ({info.kind}) — loading…")
        self._jobs["values"] += 1
        job = self._jobs["values"]

        def done(values: list[tuple[str, int]]) -> None:
            if job != self._jobs["values"] or column != self.current_column():
                return
            self._fill_values(info, values)

        self.runner.run(
            self.service.clinical.values,
            table,
            column,
            limit=VALUES_SHOWN,
            done=done,
            failed=self.messages.handler(prefix=f"Values of {column}: "),
        )

    def _fill_values(self, info: Column, values: list[tuple[str, int]]) -> None:
        chosen = set(self.conditions.get(info.name, ()))
        shown = len(values)
        more = f"; the {shown:,} most frequent shown" if info.distinct > shown else ""
        self.value_title.setText(
            f"Values of <b>{info.name}</b> ({info.kind}, {info.distinct:,} distinct{more}): "
            "check those to keep"
        )
        self.value_list.blockSignals(True)
        self.value_list.clear()
        if info.blanks:  # "has a value" against the blanks, at the top
            filled = sum(n for value, n in values if value != BLANK)
            item = QListWidgetItem(f"Has a value ({filled:,})", self.value_list)
            self._checkable(item, ANY_VALUE, ANY_VALUE in chosen)
            _italic(item)
        for value, count in values:
            expression = NO_VALUE if value == BLANK else str(Test("equal", value))
            item = QListWidgetItem(f"{value}  ({count:,})", self.value_list)
            self._checkable(item, expression, expression in chosen)
            if value == BLANK:
                item.setText(f"Blank ({count:,})")
                _italic(item)
        self.value_list.blockSignals(False)

    @staticmethod
    def _checkable(item: QListWidgetItem, value: str, checked: bool) -> None:
        item.setData(ROLE, value)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def value_item(self, value: str) -> QListWidgetItem:
        """The values list's row of ``value`` (its expression: ``*`` has a value, ``!`` blank)."""
        expression = value if value in (ANY_VALUE, NO_VALUE) else str(Test("equal", value))
        for i in range(self.value_list.count()):
            item = self.value_list.item(i)
            if item is not None and item.data(ROLE) == expression:
                return item
        raise KeyError(value)

    def _value_clicked(self, item: QListWidgetItem) -> None:
        # A click on the box toggled it already (itemChanged came first); one on the text toggles it.
        if self._toggled is item:
            self._toggled = None
            return
        checked = item.checkState() == Qt.CheckState.Checked
        item.setCheckState(Qt.CheckState.Unchecked if checked else Qt.CheckState.Checked)
        self._toggled = None

    def _value_changed(self, item: QListWidgetItem) -> None:
        self._toggled = item
        column = self.current_column()
        if column is None:
            return
        value = item.data(ROLE)
        checked = item.checkState() == Qt.CheckState.Checked
        if checked:  # "has a value" stands alone: it does not mix with values
            self.value_list.blockSignals(True)
            for i in range(self.value_list.count()):
                other = self.value_list.item(i)
                if other is None or other is item:
                    continue
                if value == ANY_VALUE or other.data(ROLE) == ANY_VALUE:
                    other.setCheckState(Qt.CheckState.Unchecked)
            self.value_list.blockSignals(False)
        kept = []
        for i in range(self.value_list.count()):
            row = self.value_list.item(i)
            if row is not None and row.checkState() == Qt.CheckState.Checked:
                kept.append(str(row.data(ROLE)))
        self.set_condition(column, tuple(kept))

    def apply_range(self) -> None:
        """The from/to fields as the chosen column's condition (both empty: none)."""
        column = self.current_column()
        if column is None:
            return
        low, high = self.range_from.text().strip(), self.range_to.text().strip()
        if low and high:
            expressions: tuple[str, ...] = (f"{low}..{high}",)
        elif low:
            expressions = (f">={low}",)
        elif high:
            expressions = (f"<={high}",)
        else:
            expressions = ()
        if expressions and not self._check(condition_text(column, expressions)):
            return
        self.set_condition(column, expressions)
        self._refill_checks()

    # -- the conditions --------------------------------------------------------------------------
    def set_condition(self, column: str, expressions: tuple[str, ...]) -> None:
        """Keep the patients whose ``column`` matches one of ``expressions`` (none: no condition)."""
        if expressions:  # in their canonical order, as the pointer keeps them
            self.conditions[column] = dict(make_filters({column: expressions}))[column]
        else:
            self.conditions.pop(column, None)
        self._show_conditions()
        self._schedule()

    def filters(self) -> Filters:
        """The conditions as a pointer's filters (``core.clinical``)."""
        return make_filters(self.conditions)

    def condition_texts(self) -> list[str]:
        return [condition_text(c, e) for c, e in self.conditions.items()]

    def _check(self, text: str) -> bool:
        """Whether ``text`` reads as a condition; if not, say why under the list."""
        try:
            parse_conditions([text])
        except ValidationError as exc:
            self.condition_error.setText(str(exc))
            self.condition_error.show()
            return False
        self.condition_error.hide()
        return True

    def add_condition(self, text: str) -> bool:
        """A typed condition (``age>=60``); it replaces the column's condition, if any."""
        text = text.strip()
        if not text or not self._check(text):
            return False
        for column, expressions in parse_conditions([text]):
            if self.columns_info and column not in self.columns_info:
                self.condition_error.setText(
                    f"{self.table} has no column {column!r}; its columns: {', '.join(self.columns_info)}"
                )
                self.condition_error.show()
                return False
            self.conditions[column] = expressions
        self.condition_line.clear()
        self._show_conditions()
        self._refill_checks()
        self._schedule()
        return True

    def remove_condition(self, column: str) -> None:
        self.set_condition(column, ())
        self._refill_checks()

    def remove_current(self) -> None:
        item = self.condition_list.currentItem()
        if item is not None:
            self._remove_item(item)

    def _remove_item(self, item: QListWidgetItem) -> None:
        column = item.data(ROLE)
        if isinstance(column, str):
            self.remove_condition(column)

    def clear_conditions(self) -> None:
        self.conditions = {}
        self._show_conditions()
        self._refill_checks()
        self._schedule()

    def _show_conditions(self) -> None:
        self.condition_list.clear()
        for column, expressions in self.conditions.items():
            item = QListWidgetItem(condition_text(column, expressions), self.condition_list)
            item.setData(ROLE, column)
            item.setToolTip("Double-click or Delete removes it")
        if not self.conditions:
            placeholder = QListWidgetItem("No condition: every patient of the table", self.condition_list)
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
        self._update_buttons()

    def _refill_checks(self) -> None:
        """The values list and the range fields follow the conditions (one was removed, typed)."""
        column = self.current_column()
        if column is None:
            return
        chosen = set(self.conditions.get(column, ()))
        self.value_list.blockSignals(True)
        for i in range(self.value_list.count()):
            item = self.value_list.item(i)
            if item is not None:
                on = item.data(ROLE) in chosen
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.value_list.blockSignals(False)
        low, high = _range_of(self.conditions.get(column, ()))
        self.range_from.setText(low)
        self.range_to.setText(high)

    # -- join targets ----------------------------------------------------------------------------
    def fill_targets(self) -> None:
        """The configured archives that can hold the patients (not the tables' own archive);
        scopes stay while their archive is configured, and so do the checks."""
        checked = set(self.checked_targets())
        scopes = [self.target_pointer(i) for i in range(self.target_list.count())]
        ids = []
        for source_id in self.service.archives.ids():
            try:
                if holds_tables(self.service.archives.get(source_id)):  # nothing to join to
                    continue
            except MediatorError:  # removed meanwhile
                continue
            ids.append(source_id)
        self.target_list.blockSignals(True)
        self.target_list.clear()
        for source_id in ids:
            self._target_item(Pointer(source_id), Pointer(source_id) in checked)
        for scope in scopes:
            if scope is not None and scope.depth + len(scope.filters) > 0 and scope.source_id in ids:
                self._target_item(scope, scope in checked)
        self.target_list.blockSignals(False)
        self._schedule()

    def _target_item(self, target: Pointer, checked: bool) -> QListWidgetItem:
        item = QListWidgetItem(self._target_label(target, NOT_JOINED), self.target_list)
        item.setData(ROLE, str(target))
        item.setFlags(
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable
        )
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        item.setToolTip(f"{target}\nCheck it to join the patients to it")
        return item

    def _target_label(self, target: Pointer, result: str) -> str:
        title = self.service.archives.title(target.source_id)
        if target.depth or target.filters:
            name = f"{title}: {'/'.join(target.path) or 'all'}"
            if target.filters:
                name += " (" + ", ".join(f"{k}={','.join(v)}" for k, v in target.filters) + ")"
        else:
            name = title if title == target.source_id else f"{title} ({target.source_id})"
        return f"{name}\n      {result}"  # the count on a line of its own: rows keep their height

    def target_pointer(self, row: int) -> Pointer | None:
        item = self.target_list.item(row)
        text = None if item is None else item.data(ROLE)
        return Pointer.parse(text) if isinstance(text, str) else None

    def target_item(self, target: Pointer | str) -> QListWidgetItem:
        """The row of a join target (an archive id, or a pointer)."""
        wanted = Pointer(target) if isinstance(target, str) else target
        for row in range(self.target_list.count()):
            if self.target_pointer(row) == wanted:
                item = self.target_list.item(row)
                assert item is not None
                return item
        raise KeyError(str(wanted))

    def checked_targets(self) -> list[Pointer]:
        out = []
        for row in range(self.target_list.count()):
            item = self.target_list.item(row)
            pointer = self.target_pointer(row)
            if item is not None and pointer is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(pointer)
        return out

    def add_scopes(self, pointers: list[Pointer]) -> None:
        """Join to ``pointers`` (collections, buckets…): each is listed and checked."""
        for pointer in pointers:
            try:
                self.service.archives.check_pointer(pointer)
            except MediatorError as exc:
                self.scope_error.setText(str(exc))
                self.scope_error.show()
                continue
            self.scope_error.hide()
            try:
                item = self.target_item(pointer)
            except KeyError:
                item = self._target_item(pointer, True)
            item.setCheckState(Qt.CheckState.Checked)
        self._schedule()

    def _scope_typed(self) -> None:
        text = self.scope_line.text().strip()
        if not text:
            return
        try:
            pointer = Pointer.parse(text)
        except ValidationError as exc:
            self.scope_error.setText(str(exc))
            self.scope_error.show()
            return
        self.add_scopes([pointer])
        if self.scope_error.isHidden():
            self.scope_line.clear()

    # -- counting --------------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Count (and join) again once the user paused."""
        self._update_buttons()
        if self.table is not None:
            self._timer.start()

    def refresh_counts(self) -> None:
        """Count the matching patients, then what each checked archive holds of them (workers)."""
        self._timer.stop()
        table, filters = self.table, self.filters()
        if table is None:
            return
        self._jobs["count"] += 1
        job = self._jobs["count"]
        self.count_label.setText("Counting…")

        def done(keys: list[str]) -> None:
            if job != self._jobs["count"]:
                return
            self.matching = len(keys)
            of = f" of {self.total:,}" if self.total is not None else ""
            noun = "patient matches" if self.matching == 1 else "patients match"
            self.count_label.setText(f"{self.matching:,}{of} {noun}")
            self._update_buttons()
            self.counted.emit(self.matching)

        def failed(error: BaseException) -> None:
            if job == self._jobs["count"]:
                self.matching = None
                self.messages.failed(error, shown_in=self.count_label.setText, prefix="Not counted: ")

        self.runner.run(self.service.clinical.select, table, filters, done=done, failed=failed)
        self._join(table, filters)

    def _join(self, table: str, filters: Filters) -> None:
        targets = self.checked_targets()
        self._jobs["join"] += 1
        job = self._jobs["join"]
        for row in range(self.target_list.count()):
            pointer, item = self.target_pointer(row), self.target_list.item(row)
            if pointer is None or item is None:
                continue
            self.target_list.blockSignals(True)
            item.setText(self._target_label(pointer, "joining…" if pointer in targets else NOT_JOINED))
            item.setForeground(self.target_list.palette().text())
            self.target_list.blockSignals(False)
        if not targets:
            return

        def done(counts: list[TargetCount]) -> None:
            if job != self._jobs["join"]:
                return
            self.target_list.blockSignals(True)
            for count in counts:
                try:
                    item = self.target_item(count.target)
                except KeyError:  # removed meanwhile
                    continue
                item.setText(self._target_label(count.target, count.line()))
                tip = str(count.target)
                if count.error:
                    item.setForeground(RED)
                    tip += f"\n{count.error}"
                elif count.missing:
                    shown = ", ".join(count.missing[:10]) + (" …" if len(count.missing) > 10 else "")
                    tip += f"\nNo data for {spaced_count(len(count.missing))}: {shown}"
                item.setToolTip(tip)
            self.target_list.blockSignals(False)
            self.joined.emit(counts)

        self.join_runner.run(
            count_targets,
            self.service,
            table,
            filters,
            targets,
            done=done,
            failed=self.messages.handler(prefix="Join: "),
        )

    # -- the cohort ------------------------------------------------------------------------------
    def pointer(self) -> Pointer | None:
        """The cohort as one pointer (None without a table or a checked archive)."""
        targets = self.checked_targets()
        if self.table is None or not targets:
            return None
        return join_pointer(self.table, self.filters(), targets)

    def add_to_set(self) -> None:
        pointer = self.pointer()
        if pointer is not None:
            self.add_requested.emit([pointer])

    def _update_buttons(self) -> None:
        pointer = self.pointer() if self.table is not None else None
        self.drag_source.pointer = pointer
        self.add_button.setEnabled(pointer is not None)
        self.drag_source.setEnabled(pointer is not None)
        self.remove_button.setEnabled(self.condition_list.currentItem() is not None and bool(self.conditions))
        self.clear_button.setEnabled(bool(self.conditions))
        if self.table is None:
            self.drag_source.setText("Add or choose a table to pick patients.")
        elif pointer is None:
            self.drag_source.setText("Check an archive under “Join to”, then drag the patients onto a set.")
        else:
            n = "" if self.matching is None else f"{spaced_count(self.matching)} "
            self.drag_source.setText(f"⠿ {n}→ drag onto a set")
            self.drag_source.setToolTip(
                "Drag onto the open set's tree: the set keeps this rule and joins it to the checked "
                "archives each time it is resolved"
            )


def kind_text(column: Column) -> str:
    """A column's kind with what it spans: ``number, 44 to 83``, ``text, 9 values``."""
    if column.kind != "text" and column.low is not None and column.high is not None:
        return f"{column.kind}, {column.low} to {column.high}"
    return f"{column.kind}, {column.distinct:,} value{'' if column.distinct == 1 else 's'}"


def _column_tip(column: Column) -> str:
    parts = [f"{column.kind}", f"{column.distinct:,} distinct values"]
    if column.blanks:
        parts.append(f"{column.blanks:,} blank")
    if column.kind != "text" and column.low is not None and column.high is not None:
        parts.append(f"from {column.low} to {column.high}")
    return ", ".join(parts)


def _range_of(expressions: tuple[str, ...]) -> tuple[str, str]:
    """The from/to fields of a range condition (``60..70``, ``>=60``, ``<=70``), else empty."""
    if len(expressions) != 1:
        return "", ""
    try:
        test = parse_test(expressions[0])
    except ValidationError:
        return "", ""
    if test.kind != "range" or test.low_strict or test.high_strict:
        return "", ""
    return test.low or "", test.high or ""


def _italic(item: QListWidgetItem) -> None:
    font = item.font()
    font.setItalic(True)
    item.setFont(font)
