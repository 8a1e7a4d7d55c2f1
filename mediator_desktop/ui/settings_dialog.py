"""Settings: folders, download layout, name, cluster, archives and their credentials, update checks.

The form is built from ``core.settings.Settings`` (each field's title and description); what the
user types is checked by the same rules as the settings file. Passwords and tokens of archives, and
the DOI service's (DataCite's repository password, a Zenodo token), go to the OS keyring, never into
the settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
from mediator_desktop.core.service import SettingsChange, SettingsPart
from mediator_desktop.core.settings import Settings
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner


class SourcesEditor(QWidget):
    """The configured archives: kind, id, options (JSON); a button stores a source's secret."""

    def __init__(
        self,
        sources: tuple[dict[str, Any], ...],
        settings: SettingsPart,
        messages: MessageBridge,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.messages = messages
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
        """Keep an archive's secret in the OS keyring (at once: Cancel does not take it back)."""
        try:
            self.settings.set_source_secret(source_id, secret)
        except (MediatorError, OSError) as exc:
            self.messages.error(f"The password or token of {source_id} was not stored: {exc}")
            return
        self.messages.info(f"The password or token of {source_id} is stored, outside the settings")


class SettingsDialog(QDialog):
    """Edits the node's settings. Save checks the form at once, then saves on a worker (a new
    display name is registered with the cluster); ``change`` then tells what changed and what
    waits for a restart.

    Args:
        doi_secret: stores the DOI service's password or token (``service.publishing.set_secret``);
            None: the form offers no such button.
    """

    def __init__(
        self,
        settings: SettingsPart,
        messages: MessageBridge,
        parent: QWidget | None = None,
        *,
        doi_secret: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.part = settings
        self.settings = settings.get()
        self.change: SettingsChange | None = None
        self.runner = Runner(self, workers=1, name="settings")
        self.finished.connect(lambda _: self.runner.close())  # no worker outlives the dialog
        self.editors: dict[str, QWidget] = {}
        self._messages = messages
        form = QFormLayout()
        for f in settings.fields():
            editor = self._editor(f.name, getattr(self.settings, f.name))
            editor.setToolTip(f.description + ("" if f.live else " (applies after a restart)"))
            editor.setAccessibleName(f.title)
            self.editors[f.name] = editor
            form.addRow(f.title, editor)
        self._doi_secret = doi_secret
        self.doi_secret_button: QPushButton | None = None
        if doi_secret is not None and "doi_service" in self.editors:
            self.doi_secret_button = QPushButton("Password or token…", self)
            self.doi_secret_button.setToolTip(
                "The DataCite repository's password or your Zenodo token, kept in the OS keyring, "
                "never in the settings"
            )
            self.doi_secret_button.clicked.connect(self.ask_doi_secret)
            row = QHBoxLayout()
            row.addWidget(self.doi_secret_button)
            row.addStretch(1)
            form.addRow("DOI service credentials", row)
        self.problem = QLabel("", self)
        self.problem.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        assert save_button is not None
        self.save_button = save_button
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def doi_service(self) -> str:
        """The DOI service the form names (it may not be saved yet)."""
        editor = self.editors.get("doi_service")
        return editor.text().strip().lower() if isinstance(editor, QLineEdit) else ""

    def ask_doi_secret(self) -> None:
        service = self.doi_service()
        if service not in ("datacite", "zenodo"):
            self.problem.setText(
                "Name the DOI service first (datacite or zenodo), then give its password or token."
            )
            return
        what = "DataCite repository password" if service == "datacite" else "Zenodo access token"
        secret, ok = QInputDialog.getText(
            self, "DOI service credentials", f"{what}:", QLineEdit.EchoMode.Password
        )
        if ok and secret:
            self.store_doi_secret(service, secret)

    def store_doi_secret(self, service: str, secret: str) -> None:
        """Keep the DOI service's secret in the OS keyring (at once: Cancel does not take it back)."""
        if self._doi_secret is None:
            return
        try:
            self._doi_secret(service, secret)
        except (MediatorError, OSError) as exc:
            self.problem.setText(f"The {service} password or token was not stored: {exc}")
            return
        self.problem.setText("")
        self._messages.info(f"The {service} password or token is stored in the keyring, outside the settings")

    def _editor(self, name: str, value: Any) -> QWidget:
        if name == "sources":
            return SourcesEditor(value, self.part, self._messages, self)
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

    def changes(self) -> dict[str, Any]:
        """The fields the form changed, with their new values (not checked yet)."""
        values: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if isinstance(editor, SourcesEditor):
                values[name] = editor.value()
            elif isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                values[name] = editor.value()
            elif isinstance(editor, _PathEditor):
                values[name] = Path(editor.line.text().strip()).expanduser()
            elif isinstance(editor, QLineEdit):
                text = editor.text().strip()
                values[name] = (
                    tuple(p.strip() for p in text.split(",") if p.strip()) if name == "peers" else text
                )
        return {name: value for name, value in values.items() if value != getattr(self.settings, name)}

    def value(self) -> Settings:
        """The settings as the form says; ``ValidationError`` says what is wrong."""
        return self.part.validate(**self.changes())

    def save(self) -> None:
        try:
            changes = self.changes()
            self.part.validate(**changes)
        except MediatorError as exc:
            self.problem.setText(f"Not saved: {exc}")
            return
        self.save_button.setEnabled(False)
        self.problem.setText("Saving…")

        def done(change: SettingsChange) -> None:
            self.change = change
            self.accept()

        def failed(error: BaseException) -> None:
            self.save_button.setEnabled(True)
            if isinstance(error, OSError):
                self.problem.setText(f"Not saved: {error}")
                return
            self._messages.failed(error, shown_in=self.problem.setText, prefix="Not saved: ")

        self.runner.run(lambda: self.part.change(**changes), done=done, failed=failed)


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
