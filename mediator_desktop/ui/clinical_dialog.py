"""Add a clinical table (CSV, TSV or Excel) to the cluster: the file is read on a worker and
previewed (its first rows, the column that names the patients, what is wrong with it), then added
as a table (or a new version of one) in the replicated store, so every member can join it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.clinical import Clinical, Column, TablePreview
from mediator_desktop.core.replica import TableVersion
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner

#: Suffixes of the files read as clinical tables.
TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
#: The file dialog's filter for them.
TABLE_FILTER = "Clinical tables (*.csv *.tsv *.xlsx);;All files (*)"
RED = "color: #b00020;"


def column_summary(column: Column) -> str:
    """``number, 18 to 87, 2 blank`` (the kind, the range, the blanks)."""
    parts: list[str] = [column.kind]
    if column.kind != "text" and column.low is not None and column.high is not None:
        parts.append(f"{column.low} to {column.high}")
    parts.append(f"{column.distinct:,} distinct")
    if column.blanks:
        parts.append(f"{column.blanks:,} blank")
    return ", ".join(parts)


class AddTableDialog(QDialog):
    """Previews ``path`` and adds it as a clinical table through ``clinical.add``, on workers.

    The dialog closes once the table is added; when the file cannot be read or is refused, the
    reason shows in the dialog in red and nothing is added. Signals: previewed(TablePreview) each
    time a preview arrived; added(TableVersion) once the table is in the store.
    """

    previewed = Signal(object)
    added = Signal(object)

    def __init__(
        self, clinical: Clinical, path: Path, messages: MessageBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.clinical = clinical
        self.path = path
        self.messages = messages
        self.preview_result: TablePreview | None = None
        #: Tables in the store, by name, with their latest version number.
        self.existing: dict[str, int] = {}
        self._job = 0
        self.setWindowTitle(f"Add clinical table: {path.name}")
        self.runner = Runner(self, workers=1, name="add-table")
        self.finished.connect(lambda _: self.runner.close(wait=False))
        self.summary = QLabel(f"Reading <b>{path.name}</b>…", self)
        self.summary.setWordWrap(True)
        self.head = QTableWidget(self)
        self.head.setAccessibleName("First rows")
        self.head.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.head.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.head.verticalHeader().setVisible(False)
        self.head.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)  # compact rows
        self.key_box = QComboBox(self)
        self.key_box.setAccessibleName("Key column")
        self.key_box.setToolTip(
            "The column that names each row's patient: its values are the patient IDs the archives "
            "know (DICOM PatientID, GDC case submitter_id…)"
        )
        self.key_box.setMinimumContentsLength(14)
        self.key_box.currentIndexChanged.connect(self._key_chosen)
        self.problems = QLabel("", self)
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet(RED)
        self.problems.setAccessibleName("Problems")
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name_line = QLineEdit(path.stem, self)
        self.name_line.setAccessibleName("Table name")
        self.name_line.setToolTip("What sets and people call the table; a name in use gets a new version")
        self.name_line.textChanged.connect(lambda _: self._show_name_note())
        self.name_note = QLabel("", self)
        self.name_note.setWordWrap(True)
        self.outcome = QLabel("", self)
        self.outcome.setWordWrap(True)
        self.outcome.setStyleSheet(RED)
        self.outcome.setAccessibleName("Outcome")
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.add_button = QPushButton("Add", self)
        self.add_button.setDefault(True)
        self.add_button.setToolTip("Keep the table in the cluster: every member can then join it to archives")
        self.add_button.setEnabled(False)
        buttons.addButton(self.add_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.clicked.connect(self.add)
        buttons.rejected.connect(self.reject)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_box)
        key_row.addWidget(self.problems, 1)
        form = QFormLayout()
        form.addRow("Patient ID column", key_row)
        form.addRow("Table name", self.name_line)
        form.addRow("", self.name_note)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.head, 1)
        layout.addLayout(form)
        layout.addWidget(self.outcome)
        layout.addWidget(buttons)
        self.resize(820, 520)
        self.preview()

    # -- the preview -----------------------------------------------------------------------------
    def preview(self, key_column: str | None = None) -> None:
        """Read the file again (on a worker), with ``key_column`` as the patients' column (None:
        the one the reader guesses)."""
        self._job += 1
        job = self._job
        self.add_button.setEnabled(False)
        self.outcome.setText("")

        def read() -> tuple[TablePreview, dict[str, int]]:
            existing = {t.name: t.number for t in self.clinical.tables()}
            return self.clinical.preview(self.path, key_column), existing

        def done(result: tuple[TablePreview, dict[str, int]]) -> None:
            if job == self._job:
                self._show(*result, key_column)

        def failed(error: BaseException) -> None:
            if job == self._job:
                self.summary.setText(f"<b>{self.path.name}</b> cannot be added as a table.")
                self.messages.failed(error, shown_in=self.outcome.setText)

        self.runner.run(read, done=done, failed=failed)

    def _show(self, preview: TablePreview, existing: dict[str, int], key_column: str | None) -> None:
        self.preview_result = preview
        self.existing = existing
        columns = list(preview.columns)
        self.summary.setText(
            f"<b>{preview.filename}</b>: {preview.rows:,} rows, {len(columns):,} columns. "
            f"The first {len(preview.head):,} rows:"
        )
        self.head.clear()
        self.head.setColumnCount(len(columns))
        self.head.setRowCount(len(preview.head))
        for c, column in enumerate(columns):
            header = QTableWidgetItem(column.name)
            header.setToolTip(column_summary(column))
            self.head.setHorizontalHeaderItem(c, header)
        for r, row in enumerate(preview.head):
            for c, value in enumerate(row[: len(columns)]):
                self.head.setItem(r, c, QTableWidgetItem(value))
        self.head.resizeColumnsToContents()
        self.key_box.blockSignals(True)
        self.key_box.clear()
        for column in columns:
            self.key_box.addItem(column.name, column.name)
        key = key_column or preview.key_guess
        self.key_box.setCurrentIndex(self.key_box.findData(key) if key is not None else -1)
        self.key_box.blockSignals(False)
        self._mark_key()
        self.problems.setText("\n".join(f"• {p}" for p in preview.problems))
        self._show_name_note()
        self.add_button.setEnabled(self.key_box.currentIndex() >= 0)
        self.previewed.emit(preview)

    def _mark_key(self) -> None:
        """Bold the key column's header, so the patients' column stands out in the rows."""
        key = self.key_column()
        for c in range(self.head.columnCount()):
            header = self.head.horizontalHeaderItem(c)
            if header is not None:
                font = header.font()
                font.setBold(header.text() == key)
                header.setFont(font)

    def _key_chosen(self, _: int) -> None:
        key = self.key_column()
        if key is not None:
            self.preview(key)  # what is wrong depends on the key (blank, repeated IDs)

    def _show_name_note(self) -> None:
        name = self.table_name()
        number = self.existing.get(name)
        self.name_note.setText(
            f"A table called {name!r} exists (version {number}): a changed file becomes its version "
            f"{number + 1}; the same content adds nothing."
            if number is not None
            else ""
        )

    def key_column(self) -> str | None:
        data = self.key_box.currentData()
        return data if isinstance(data, str) else None

    def choose_key(self, name: str) -> None:
        """Take column ``name`` as the patients' column (as choosing it in the box does)."""
        index = self.key_box.findData(name)
        if index < 0:
            raise KeyError(name)
        self.key_box.setCurrentIndex(index)

    def table_name(self) -> str:
        return self.name_line.text().strip()

    # -- adding ----------------------------------------------------------------------------------
    def add(self) -> None:
        """Add the table (on a worker); close once it is in the store, else say why and stay."""
        key, name = self.key_column(), self.table_name()
        self._job += 1
        job = self._job
        self.add_button.setEnabled(False)
        self.outcome.setText("")
        self.summary.setText(f"Adding <b>{self.path.name}</b> as {name!r}…")

        def done(version: TableVersion) -> None:
            self.added.emit(version)
            self.messages.info(
                f"Added the clinical table {version.name!r} (version {version.number}): "
                f"{version.rows:,} rows, patients in {version.key_column}"
            )
            self.accept()

        def failed(error: BaseException) -> None:
            if job != self._job:
                return
            self.add_button.setEnabled(True)
            self.summary.setText(f"<b>{self.path.name}</b> was not added.")
            self.messages.failed(error, shown_in=self.outcome.setText, prefix="Not added: ")

        self.runner.run(
            self.clinical.add, self.path, name=name or None, key_column=key, done=done, failed=failed
        )
