"""Add an archive without editing settings: choose a kind, fill the form its options make, test the
connection, add it. The archive is live at once (the archive panel follows ``SourcesChanged``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.service import Archives
from mediator_desktop.core.source import SourceKind, SourceOption
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner

#: The spin boxes' range for ``int`` options.
INT_RANGE = (0, 1_000_000_000)


class FolderEditor(QWidget):
    """A folder path with a "Browse…" button."""

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QLineEdit(value, self)
        self.browse = QPushButton("Browse…", self)
        self.browse.clicked.connect(self._choose)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line, 1)
        layout.addWidget(self.browse)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", self.line.text())
        if folder:
            self.line.setText(folder)


def _editor(option: SourceOption, parent: QWidget) -> QWidget:
    default = option.default
    if option.kind == "bool":
        box = QCheckBox(parent)
        box.setChecked(bool(default))
        return box
    if option.kind == "int":
        spin = QSpinBox(parent)
        low, high = INT_RANGE
        if default is None:
            # No default: the lowest value reads "default" and leaves the option out.
            spin.setRange(low - 1, high)
            spin.setSpecialValueText("default")
            spin.setValue(low - 1)
        else:
            spin.setRange(low, high)
            spin.setValue(int(default))
        return spin
    text = "" if default is None else str(default)
    if option.kind == "folder":
        return FolderEditor(text, parent)
    line = QLineEdit(text, parent)
    if option.kind == "url":
        line.setPlaceholderText("https://…")
    return line


def _value(option: SourceOption, editor: QWidget) -> Any:
    """What ``editor`` holds for ``option``; None leaves the option out."""
    if isinstance(editor, QCheckBox):
        checked = editor.isChecked()
        return checked if checked or option.default is not None else None
    if isinstance(editor, QSpinBox):
        return None if editor.value() < INT_RANGE[0] else editor.value()
    line = editor.line if isinstance(editor, FolderEditor) else editor
    assert isinstance(line, QLineEdit)
    return line.text().strip() or None


class AddSourceDialog(QDialog):
    """Adds an archive through ``archives.add``, on a worker; the dialog closes once it is added
    and stays open, with everything typed, when it is refused. Signals: added(str) with the id."""

    added = Signal(str)

    def __init__(self, archives: Archives, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add an archive")
        self.archives = archives
        self.messages = messages
        self.runner = Runner(self, workers=2, name="add-archive")
        # A test of a slow archive may still run: the dialog does not wait for it to close.
        self.finished.connect(lambda _: self.runner.close(wait=False))
        self.kinds = {k.name: k for k in archives.kinds()}
        self.editors: dict[str, QWidget] = {}
        self._auto_id = ""
        self._job = 0
        self.kind_box = QComboBox(self)
        self.kind_box.setAccessibleName("Kind of archive")
        for kind in self.kinds.values():
            self.kind_box.addItem(kind.title, kind.name)
            row = self.kind_box.count() - 1
            self.kind_box.setItemData(row, kind.description, Qt.ItemDataRole.ToolTipRole)
        self.description = QLabel("", self)
        self.description.setWordWrap(True)
        self.id_line = QLineEdit(self)
        self.id_line.setAccessibleName("Archive id")
        self.id_line.setToolTip(
            "A short name for the archive; pointers of sets start with it (ID/collection/...). "
            "Other members name the same archive the same way."
        )
        self.secret_line = QLineEdit(self)
        self.secret_line.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_help = QLabel("", self)
        self.secret_help.setWordWrap(True)
        self.form_host = QWidget(self)
        self.form = QFormLayout(self.form_host)
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setToolTip("Check the archive answers with these options, before adding it")
        self.test_button.clicked.connect(self.test)
        self.outcome = QLabel("", self)
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome.setAccessibleName("Outcome")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        ok.setText("Add")
        self.ok_button = ok
        buttons.accepted.connect(self.add)
        buttons.rejected.connect(self.reject)
        top = QFormLayout()
        top.addRow("Kind", self.kind_box)
        top.addRow("", self.description)
        self._layout = layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.form_host)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        layout.addLayout(test_row)
        layout.addWidget(self.outcome)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.kind_box.currentIndexChanged.connect(lambda _: self._build_form())
        if not self.kinds:
            self.outcome.setText("No kind of archive is installed here.")
            self.ok_button.setEnabled(False)
            self.test_button.setEnabled(False)
        self._build_form()

    # -- the form --------------------------------------------------------------------------------
    @property
    def kind(self) -> SourceKind | None:
        name = self.kind_box.currentData()
        return self.kinds.get(name) if isinstance(name, str) else None

    def choose_kind(self, name: str) -> None:
        """Show the form of kind ``name`` (as choosing it in the list does)."""
        index = self.kind_box.findData(name)
        if index < 0:
            raise KeyError(name)
        self.kind_box.setCurrentIndex(index)

    def _free_id(self, name: str) -> str:
        taken = set(self.archives.ids())
        source_id, n = name, 2
        while source_id in taken:
            source_id, n = f"{name}-{n}", n + 1
        return source_id

    def _build_form(self) -> None:
        # The options' rows are made anew in a new form; the id and secret editors move over.
        for widget in (self.id_line, self.secret_line, self.secret_help):
            widget.setParent(self)
            widget.hide()
        old = self.form_host
        self.form_host = QWidget(self)
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self._layout.replaceWidget(old, self.form_host)
        self.form_host.show()
        old.hide()
        old.deleteLater()
        self.editors = {}
        self.outcome.setText("")
        kind = self.kind
        if kind is None:
            self.description.setText("")
            return
        self.description.setText(kind.description)
        for option in kind.options:
            editor = _editor(option, self.form_host)
            editor.setAccessibleName(option.title)
            tip = option.help + (" (required)" if option.required else "")
            editor.setToolTip(tip.strip())
            self.editors[option.name] = editor
            label = QLabel(f"{option.title}{' *' if option.required else ''}", self.form_host)
            label.setToolTip(tip.strip())
            self.form.addRow(label, editor)
            if option.help:
                self.form.addRow("", _help(option.help, self.form_host))
        if self.id_line.text() in ("", self._auto_id):
            self.id_line.setText(self._free_id(kind.name))
        self._auto_id = self._free_id(kind.name)
        self.form.addRow("Id *", self.id_line)
        self.id_line.show()
        self.secret_line.clear()
        if kind.secret is not None:
            title = kind.secret[:1].upper() + kind.secret[1:]
            self.secret_line.setAccessibleName(title)
            self.secret_line.setPlaceholderText("kept in the OS keyring, never in the settings")
            self.secret_help.setText(kind.secret_help)
            self.form.addRow(title, self.secret_line)
            self.secret_line.show()
            if kind.secret_help:
                self.form.addRow("", self.secret_help)
                self.secret_help.show()
        if any(o.required for o in kind.options):
            self.form.addRow("", _help("* required", self.form_host))

    def options(self) -> dict[str, Any]:
        """The options the form holds (empty ones left out)."""
        kind = self.kind
        if kind is None:
            return {}
        values = {o.name: _value(o, self.editors[o.name]) for o in kind.options}
        return {name: value for name, value in values.items() if value is not None}

    def source_id(self) -> str:
        return self.id_line.text().strip()

    def secret(self) -> str | None:
        kind = self.kind
        if kind is None or kind.secret is None:
            return None
        return self.secret_line.text() or None

    # -- test and add ----------------------------------------------------------------------------
    def test(self) -> None:
        """Check the archive the form describes (on a worker); the outcome shows under the form."""
        kind = self.kind
        if kind is None:
            return
        self._job += 1
        job = self._job
        self.test_button.setEnabled(False)
        self.outcome.setText("Testing…")

        def done(summary: str) -> None:
            if job == self._job:
                self.test_button.setEnabled(True)
                self.outcome.setText(f"✔ {summary}")

        def failed(error: BaseException) -> None:
            if job == self._job:
                self.test_button.setEnabled(True)
                self.messages.failed(error, shown_in=self.outcome.setText, prefix="✘ ")

        self.runner.run(
            self.archives.test,
            self.source_id() or None,
            kind=kind.name,
            options=self.options(),
            secret=self.secret(),
            done=done,
            failed=failed,
        )

    def add(self) -> None:
        """Add the archive (on a worker); close once it is added, else say why and stay open."""
        kind = self.kind
        if kind is None:
            return
        self._job += 1
        job = self._job
        self.ok_button.setEnabled(False)
        self.outcome.setText("Adding…")

        def done(source_id: str) -> None:
            self.added.emit(source_id)
            self.messages.info(f"Added the archive {self.archives.title(source_id)}")
            self.accept()

        def failed(error: BaseException) -> None:
            self.ok_button.setEnabled(True)
            if job == self._job:
                self.messages.failed(error, shown_in=self.outcome.setText, prefix="Not added: ")

        self.runner.run(
            self.archives.add,
            kind.name,
            self.options(),
            source_id=self.source_id() or None,
            secret=self.secret(),
            done=done,
            failed=failed,
        )


def _help(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label
