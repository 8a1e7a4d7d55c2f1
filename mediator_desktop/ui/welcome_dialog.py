"""The first start: what a replica set is, the one question (the name the lab sees on sets,
versions, the peers panel), and a sample set from IDC in one click (IDC's installed index works
offline, so the sample resolves without a network)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner

#: The sample: a small public IDC collection (RIDER phantom PET/CT: 20 patients, 60 series, 0.7 GB,
#: CC BY 3.0), so a new user sees readable trees, previews and charts at once.
SAMPLE = Pointer("idc", ("rider_phantom_pet_ct",))
SAMPLE_NAME = "Sample: RIDER phantom PET/CT (IDC)"
EXPLANATION = (
    "A <b>replica set</b> is a named, versioned list of imaging data from public and local "
    "archives (IDC, TCIA, GDC, DICOMweb servers, folders): drag collections, patients, studies or "
    "series into it, commit a version, share it with your lab, download it anywhere and cite it. "
    "Followed sets tell you when an archive changes what they hold."
)


class WelcomeDialog(QDialog):
    """Explains replica sets and asks for the user's display name, prefilled with the default one.
    Open it with ``open()`` (window-modal): the app works meanwhile. OK applies it on a worker (the
    cluster registers the new name); a refused name is said in the dialog, which stays open.
    "Build a sample set" makes ``SAMPLE_NAME`` from IDC on a worker and opens it in the parent
    window (anything with ``open_set(set_id)``). Signals: sample_created(str) with the set's id."""

    sample_created = Signal(str)

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
        intro = QLabel(EXPLANATION, self)
        intro.setWordWrap(True)
        self.sample_button = QPushButton("Build a sample set from IDC", self)
        self.sample_button.setToolTip(
            f"Make “{SAMPLE_NAME}”: {SAMPLE.path[0]}, 60 series of a public IDC collection "
            "(resolved from IDC's index on this machine; nothing is downloaded yet)"
        )
        has_idc = SAMPLE.source_id in service.archives.ids()
        self.sample_button.setEnabled(has_idc)
        if not has_idc:
            self.sample_button.setToolTip("Add the IDC archive first (the + over the archives)")
        self.sample_button.clicked.connect(self.build_sample)
        self.sample_state = QLabel("", self)
        self.sample_state.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert ok is not None
        self.ok_button = ok
        buttons.accepted.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.sample_button)
        layout.addWidget(self.sample_state)
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

    def build_sample(self) -> None:
        """Make the sample set on a worker; open it in the window once it is there."""
        self.sample_button.setEnabled(False)
        self.sample_state.setText("Building the sample set from IDC's index…")

        def build() -> str:
            return self.service.sets.create(
                SAMPLE_NAME,
                "A small public collection to try MEDIator with (CC BY 3.0).",
                add=[SAMPLE],
                message="sample set",
            )

        def done(set_id: str) -> None:
            self.sample_state.setText(f"Made “{SAMPLE_NAME}”; it is open in the window.")
            self.messages.info(f"Made the sample set {SAMPLE_NAME}")
            opener = getattr(self.parent(), "open_set", None)
            if callable(opener):
                opener(set_id)
            self.sample_created.emit(set_id)

        def failed(error: BaseException) -> None:
            self.sample_button.setEnabled(True)
            self.messages.failed(error, shown_in=self.sample_state.setText, prefix="No sample set: ")

        self.runner.run(build, done=done, failed=failed)
