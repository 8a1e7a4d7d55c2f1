"""Share a set without the mouse: who sees it (visibility) and who may edit it (editors)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.service import Service
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner


class ShareDialog(QDialog):
    """Signals: applied() once every change went through."""

    applied = Signal()

    def __init__(
        self, service: Service, set_id: str, messages: MessageBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.sets = service.sets
        self.set_id = set_id
        self.messages = messages
        self.runner = Runner(self, workers=1, name="share")
        self.finished.connect(lambda _: self.runner.close())  # no worker outlives the dialog
        rs = self.sets.get(set_id)
        self.setWindowTitle(f"Share {rs.name}")
        self.visibility = QComboBox(self)
        self.visibility.setAccessibleName("Visibility")
        for value, text in (
            (Visibility.PRIVATE, "Private: you and the editors"),
            (Visibility.CLUSTER, "Cluster: every member may read it"),
            (Visibility.PUBLIC, "Public: anyone may read and fork it"),
        ):
            self.visibility.addItem(text, value)
        self.visibility.setCurrentIndex(self.visibility.findData(rs.visibility))
        self.editors = QListWidget(self)
        self.editors.setAccessibleName("Editors")
        for key_id, name in sorted(service.users().items(), key=lambda kv: kv[1].lower()):
            if key_id == rs.owner:
                continue
            item = QListWidgetItem(f"{name} · {key_id[:12]}")
            item.setData(Qt.ItemDataRole.UserRole, key_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if key_id in rs.editors else Qt.CheckState.Unchecked)
            self.editors.addItem(item)
        self.outcome = QLabel("Editors may commit versions; only you delete, publish and share.", self)
        self.outcome.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Apply | QDialogButtonBox.StandardButton.Close
        )
        apply_button = buttons.button(QDialogButtonBox.StandardButton.Apply)
        assert apply_button is not None
        self.apply_button = apply_button
        self.apply_button.clicked.connect(self.apply)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Who sees it", self.visibility)
        form.addRow("Who may edit it", self.editors)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.outcome)
        layout.addWidget(buttons)

    def apply(self) -> None:
        rs = self.sets.get(self.set_id)
        visibility = Visibility(self.visibility.currentData())  # Qt hands the enum back as its value
        wanted = {
            item.data(Qt.ItemDataRole.UserRole)
            for item in (self.editors.item(i) for i in range(self.editors.count()))
            if item is not None and item.checkState() == Qt.CheckState.Checked
        }
        grant, revoke = wanted - rs.editors, rs.editors - wanted

        def change() -> None:
            if visibility is not rs.visibility:
                self.sets.set_visibility(self.set_id, visibility)
            for key_id in sorted(grant):
                self.sets.grant_editor(self.set_id, key_id)
            for key_id in sorted(revoke):
                self.sets.revoke_editor(self.set_id, key_id)

        def failed(error: BaseException) -> None:
            self.apply_button.setEnabled(True)
            self.messages.failed(error, shown_in=self.outcome.setText)

        def done(_: object) -> None:
            self.apply_button.setEnabled(True)
            self.outcome.setText("Shared.")
            self.applied.emit()

        self.apply_button.setEnabled(False)
        self.runner.run(change, done=done, failed=failed)
