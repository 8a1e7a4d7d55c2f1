"""Settings: folders, download layout, name, cluster, archives and their credentials, update checks.

The form is built from ``core.settings.Settings`` (each field's title and description); what the
user types is checked by the same rules as the settings file. Passwords and tokens of archives go
to the OS keyring, never into the settings.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.errors import MediatorError, ValidationError
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node, store_source_secret

#: Changes that take effect only when the app starts again.
RESTART = {"data_dir", "raft_address", "peers", "sources", "discovery", "display_name"}


class SourcesEditor(QWidget):
    """The configured archives: kind, id, options (JSON); a button stores a source's secret."""

    def __init__(
        self, sources: tuple[dict[str, Any], ...], node: Node, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.node = node
        self.table = QTableWidget(0, 3, self)
        self.table.setHorizontalHeaderLabels(["Kind", "Id", "Options (JSON)"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAccessibleName("Archives")
        for source in sources:
            self.add_row(source)
        add = QPushButton("Add", self)
        remove = QPushButton("Remove", self)
        self.secret_button = QPushButton("Password or token…", self)
        self.secret_button.setToolTip(
            "Stored in the OS keyring for the selected archive, never in the settings"
        )
        add.clicked.connect(lambda: self.add_row({"kind": "tcia", "id": "tcia", "options": {}}))
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        self.secret_button.clicked.connect(self.ask_secret)
        buttons = QHBoxLayout()
        for button in (add, remove, self.secret_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def add_row(self, source: dict[str, Any]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(str(source.get("kind", ""))))
        self.table.setItem(row, 1, QTableWidgetItem(str(source.get("id") or source.get("kind", ""))))
        self.table.setItem(row, 2, QTableWidgetItem(json.dumps(source.get("options") or {})))

    def value(self) -> tuple[dict[str, Any], ...]:
        out = []
        for row in range(self.table.rowCount()):
            kind, source_id, options = (self._text(row, c) for c in range(3))
            try:
                parsed = json.loads(options or "{}")
            except ValueError as exc:
                raise ValidationError(
                    f"the options of archive {source_id or kind!r} are not JSON: {exc}"
                ) from None
            if not isinstance(parsed, dict):
                raise ValidationError(f"the options of archive {source_id or kind!r} must be a JSON object")
            entry: dict[str, Any] = {"kind": kind, "id": source_id or kind}
            if parsed:
                entry["options"] = parsed
            out.append(entry)
        return tuple(out)

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return "" if item is None else item.text().strip()

    def ask_secret(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        source_id = self._text(row, 1)
        secret, ok = QInputDialog.getText(
            self, "Archive credentials", f"Password or token for {source_id}:", QLineEdit.EchoMode.Password
        )
        if ok and secret:
            self.store_secret(source_id, secret)

    def store_secret(self, source_id: str, secret: str) -> None:
        store_source_secret(self.node.data_dir, source_id, secret)


class SettingsDialog(QDialog):
    """Edits the node's settings file. ``saved`` is the new settings once Save succeeded."""

    def __init__(self, node: Node, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.node = node
        self.path = path
        self.settings = node.settings
        self.saved: Settings | None = None
        self.editors: dict[str, QWidget] = {}
        form = QFormLayout()
        for f in fields(Settings):
            editor = self._editor(f.name, getattr(self.settings, f.name))
            editor.setToolTip(f.metadata["description"])
            editor.setAccessibleName(f.metadata["title"])
            self.editors[f.name] = editor
            form.addRow(f.metadata["title"], editor)
        self.problem = QLabel("", self)
        self.problem.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def _editor(self, name: str, value: Any) -> QWidget:
        if name == "sources":
            return SourcesEditor(value, self.node, self)
        if isinstance(value, bool):
            box = QCheckBox(self)
            box.setChecked(value)
            return box
        if isinstance(value, int):
            spin = QSpinBox(self)
            spin.setRange(1, 7 * 24 * 60)
            spin.setValue(value)
            return spin
        if isinstance(value, Path):
            return _PathEditor(value, self)
        line = QLineEdit(", ".join(value) if isinstance(value, tuple) else str(value), self)
        if name == "peers":
            line.setPlaceholderText("host:port, host:port")
        return line

    def value(self) -> Settings:
        """The settings as the form says; ``ValidationError`` says what is wrong."""
        changes: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if isinstance(editor, SourcesEditor):
                changes[name] = editor.value()
            elif isinstance(editor, QCheckBox):
                changes[name] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                changes[name] = editor.value()
            elif isinstance(editor, _PathEditor):
                changes[name] = Path(editor.line.text().strip()).expanduser()
            elif isinstance(editor, QLineEdit):
                text = editor.text().strip()
                changes[name] = (
                    tuple(p.strip() for p in text.split(",") if p.strip()) if name == "peers" else text
                )
        return replace(self.settings, **changes)

    def save(self) -> None:
        try:
            settings = self.value()
            settings.save(self.path)
        except (MediatorError, OSError) as exc:
            self.problem.setText(f"Not saved: {exc}")
            return
        restart = sorted(n for n in RESTART if getattr(settings, n) != getattr(self.settings, n))
        # What needs no restart applies now: folders for downloads, the layout, the update interval.
        self.node.settings = replace(
            self.node.settings,
            download_dir=settings.download_dir,
            download_layout=settings.download_layout,
            update_check_minutes=settings.update_check_minutes,
        )
        self.saved = settings
        self.restart_needed = restart
        self.accept()


class _PathEditor(QWidget):
    def __init__(self, value: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QLineEdit(str(value), self)
        choose = QPushButton("Choose…", self)
        choose.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line, 1)
        layout.addWidget(choose)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", self.line.text())
        if folder:
            self.line.setText(folder)
