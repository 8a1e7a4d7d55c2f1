"""The first start's one question: the name the lab sees (on sets, versions, the peers panel)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from mediator_desktop.core.service import Service
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner


class WelcomeDialog(QDialog):
    """Asks for the user's display name, prefilled with the default one. Open it with ``open()``
    (window-modal): the app works meanwhile. OK applies it on a worker (the cluster registers
    the new name); a refused name is said in the dialog, which stays open."""

    def __init__(self, service: Service, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to MEDIator")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.service = service
        self.messages = messages
        self.runner = Runner(self, workers=1, name="welcome")
        self.finished.connect(lambda _: self.runner.close(wait=False))
        question = QLabel("<b>How should your lab see you?</b>", self)
        note = QLabel(
            "Your name appears on the sets you make and the versions you commit, and in your "
            "colleagues' peers list. You can change it later in Settings.",
            self,
        )
        note.setWordWrap(True)
        self.name = QLineEdit(service.display_name, self)
        self.name.setAccessibleName("Display name")
        self.name.selectAll()
        self.problem = QLabel("", self)
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        self.ok_button = ok
        buttons.accepted.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addWidget(question)
        layout.addWidget(note)
        layout.addWidget(self.name)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def apply(self) -> None:
        name = self.name.text().strip()
        if not name:
            self.problem.setText("Type a name: it is how the others tell your sets from theirs.")
            return
        self.ok_button.setEnabled(False)
        self.problem.setText("Saving…")

        def done(_: object) -> None:
            self.messages.info(f"Welcome, {name}")
            self.accept()

        def failed(error: BaseException) -> None:
            self.ok_button.setEnabled(True)
            self.messages.failed(error, shown_in=self.problem.setText, prefix="Not changed: ")

        self.runner.run(lambda: self.service.settings.change(display_name=name), done=done, failed=failed)
