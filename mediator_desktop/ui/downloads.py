"""The downloads panel: one row per job (progress, rate, ETA, state), with pause, resume, cancel
and "retry failed". Rows follow the node's download events; nothing polls."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.downloads import DownloadJob, DownloadRequest, Downloads
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.events import DownloadEvent
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.ui.errors import MessageBridge

_COLUMNS = ("Set", "Folder", "Progress", "Rate", "State")


class DownloadsPanel(QWidget):
    """Every download job of the node since it started, newest last; what goes wrong is told
    through ``messages``."""

    def __init__(self, downloads: Downloads, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.downloads = downloads
        self.messages = messages
        self.table = QTableWidget(0, len(_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("Downloads")
        self.table.horizontalHeader().setStretchLastSection(True)
        self.failures = QListWidget(self)
        self.failures.setAccessibleName("Failed items of the selected download")
        self.failures.setMaximumHeight(90)
        self.pause_button = QPushButton("Pause", self)
        self.resume_button = QPushButton("Resume", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.retry_button = QPushButton("Retry failed", self)
        self.retry_button.setToolTip("Fetch again only what failed; finished items are kept")
        for button, slot in (
            (self.pause_button, lambda: self._control("pause")),
            (self.resume_button, lambda: self._control("resume")),
            (self.cancel_button, lambda: self._control("cancel")),
            (self.retry_button, self.retry_failed),
        ):
            button.clicked.connect(slot)
        buttons = QHBoxLayout()
        for button in (self.pause_button, self.resume_button, self.cancel_button, self.retry_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.failures)
        self._rows: dict[str, int] = {}
        self.table.itemSelectionChanged.connect(self._selection_changed)
        for job in downloads.list():
            self._show(job)
        self._selection_changed()

    def on_event(self, event: DownloadEvent) -> None:
        """Called on the GUI thread for every download event: the job's row shows its state."""
        try:
            self._show(self.downloads.get(event.job))
        except MediatorError:
            return
        if event.job == self.selected_id():
            self._selection_changed()

    def _show(self, job: DownloadJob) -> None:
        row = self._rows.get(job.id)
        if row is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._rows[job.id] = row
            name = QTableWidgetItem(f"{job.set_name} v{job.version}")
            name.setData(Qt.ItemDataRole.UserRole, job.id)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, QTableWidgetItem(str(job.destination)))
            bar = QProgressBar(self.table)
            bar.setRange(0, 1000)
            self.table.setCellWidget(row, 2, bar)
            self.table.setItem(row, 3, QTableWidgetItem(""))
            self.table.setItem(row, 4, QTableWidgetItem(""))
        progress = job.progress
        widget = self.table.cellWidget(row, 2)
        assert isinstance(widget, QProgressBar)
        bar = widget
        if progress is not None:
            done = progress.bytes_done / progress.bytes_total if progress.bytes_total else 0.0
            if job.state == "done":
                done = 1.0
            bar.setValue(int(done * 1000))
            # While it runs: bytes arriving (a TCIA series arrives zipped, a failed try counts until
            # it is retried). Once done: the bytes placed, as the summary beside it says.
            shown = progress.bytes_done if job.report is None else job.report.bytes
            bar.setFormat(f"{progress.items_done}/{progress.items_total} · {human_bytes(shown)}")
            eta = "" if progress.eta is None or job.finished else f", {progress.eta:.0f} s left"
            self._cell(row, 3).setText(f"{human_bytes(int(progress.rate))}/s{eta}")
        state = job.state if job.report is None else f"{job.state}: {job.report.summary()}"
        if job.error and job.report is None:
            state = f"failed: {job.error}"
        if job.reproduction is not None:  # a published version: is it still what was published?
            state = f"{state} · {job.reproduction.summary()}"
        self._cell(row, 4).setText(state)
        self._cell(row, 4).setToolTip(state)

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        item = self.table.item(row, column)
        assert item is not None
        return item

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        value = self._cell(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        return value if isinstance(value, str) else None

    def _selected(self) -> DownloadJob | None:
        job_id = self.selected_id()
        return None if job_id is None else self.downloads.get(job_id)

    def _selection_changed(self) -> None:
        job = self._selected()
        running = job is not None and not job.finished
        self.pause_button.setEnabled(running and job is not None and job.state == "running")
        self.resume_button.setEnabled(running and job is not None and job.state == "paused")
        self.cancel_button.setEnabled(running)
        failed = [] if job is None or job.report is None else list(job.report.failed)
        self.retry_button.setEnabled(bool(failed) and job is not None and job.finished)
        self.failures.clear()
        if job is not None and job.report is not None:
            # An archive that could not be reached is one line, not one per leaf.
            for source_id, reason in job.report.unreachable.items():
                count = sum(1 for f in failed if f.source_id == source_id and f.reason == reason)
                self.failures.addItem(f"{count} items of {source_id}: {reason}")
            failed = list(job.report.other_failures())
        for failure in failed:
            self.failures.addItem(f"{'/'.join(failure.path)}: {failure.reason}")
        if job is not None and job.reproduction is not None:
            self.failures.addItem(f"Published version: {job.reproduction.summary()}")
            for change in job.reproduction.changes:
                self.failures.addItem(change.line())

    def _control(self, action: str) -> None:
        job_id = self.selected_id()
        if job_id is not None:
            try:
                self.downloads.control(job_id, action)
            except MediatorError as exc:
                self.messages.error(str(exc))

    def retry_failed(self) -> None:
        job = self._selected()
        if job is None or job.report is None or not job.report.failed:
            return
        request = DownloadRequest(
            job.set_id,
            job.destination,
            version=job.version,
            layout=job.layout,
            only=frozenset(job.report.retry_keys()),
        )
        try:
            self.downloads.start(request)
        except MediatorError as exc:
            self.messages.error(str(exc))
