"""Publishing a version of a set with a DOI (``service.publishing``): the DataCite metadata, pre-filled
from the set (its name, you as the creator, the publisher of the settings, this year, the source
collections' DOIs), checked as the user types (``DoiMetadata.problems``) with each problem under its
field, then published on a worker. The version is frozen at once; its DOI follows from the node's
mint queue, and the set view shows "publishing…", then "DOI 10.…" (``Published`` events).
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.publishing import Creator, DoiMetadata, Related
from mediator_desktop.core.replica import PublishedRecord
from mediator_desktop.core.service import Service
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner

#: Common licences of imaging data, as SPDX ids (the field takes any other id too).
LICENCES = (
    "CC-BY-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-SA-4.0",
    "CC0-1.0",
    "ODC-By-1.0",
    "PDDL-1.0",
)
#: The DOI services a version can be published with: (settings value, what the form says).
SERVICES = (
    ("datacite", "DataCite (your repository)"),
    ("zenodo", "Zenodo"),
    ("", "none: publish without a DOI"),
)
PROBLEM = "#b00020"
_BAD = f"border: 1px solid {PROBLEM};"
_URL = re.compile(r"^https?://\S+\.\S+$")


def split_name(name: str) -> tuple[str, str]:
    """``(given, family)`` of a person's ``Family, Given``; an organisation's name has neither."""
    family, comma, given = name.partition(",")
    return (given.strip(), family.strip()) if comma else ("", "")


class PublishDialog(QDialog):
    """The form that publishes one version of a set (window-modal).

    Signals: prefilled(DoiMetadata) when the suggestion filled the form; published(PublishedRecord)
    when the version is published (the dialog then closes; its DOI is minted afterwards).
    """

    prefilled = Signal(object)
    published = Signal(object)

    def __init__(
        self,
        service: Service,
        set_id: str,
        version: int,
        messages: MessageBridge,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.set_id = set_id
        self.version = version
        self.messages = messages
        self.runner = Runner(self, workers=1, name="publish")
        self.finished.connect(lambda _: self.runner.close(wait=False))
        self.suggested: DoiMetadata | None = None
        self.busy = True  # filling in, or publishing
        self._filling = False
        #: Problems show once the form is filled in (or the suggestion failed): not over an empty form.
        self._ready = False
        name = service.sets.get(set_id).name
        self.setWindowTitle(f"Publish {name}, version {version}")
        self.setAccessibleName("Publish with a DOI")
        self.heading = QLabel(
            f"Publish <b>{html.escape(name)}</b>, version {version}, with a DOI. A published version is "
            "frozen for good: cite it in a paper, and others can always download exactly these files.",
            self,
        )
        self.heading.setWordWrap(True)
        self.problem_labels: dict[str, QLabel] = {}
        self.field_widgets: dict[str, QWidget] = {}

        self.title_edit = QLineEdit(self)
        self.creators = QTableWidget(0, 3, self)
        self.creators.setHorizontalHeaderLabels(["Name (Family, Given)", "ORCID iD", "Affiliation"])
        header = self.creators.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.creators.setColumnWidth(1, 170)
        self.creators.verticalHeader().setVisible(False)
        self.creators.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.creators.setFixedHeight(110)
        self.add_creator_button = QPushButton("Add creator", self)
        self.remove_creator_button = QPushButton("Remove", self)
        self.add_creator_button.clicked.connect(lambda: self.add_creator(Creator("")))
        self.remove_creator_button.clicked.connect(self.remove_creator)
        self.publisher_edit = QLineEdit(self)
        self.year_box = QSpinBox(self)
        self.year_box.setRange(0, 9999)
        self.year_box.setMaximumWidth(90)
        self.description_edit = QPlainTextEdit(self)
        self.description_edit.setFixedHeight(64)
        self.keywords_edit = QLineEdit(self)
        self.keywords_edit.setPlaceholderText("lung cancer, CT, radiogenomics")
        self.licence_box = QComboBox(self)
        self.licence_box.setEditable(True)
        self.licence_box.addItems(["", *LICENCES])
        self.licence_box.setToolTip("An SPDX licence id; the source collections' licences bind the data too")
        self.funding_edit = QLineEdit(self)
        self.funding_edit.setPlaceholderText("National Cancer Institute; Wellcome Trust")
        self.related = QListWidget(self)
        self.related.setFixedHeight(90)
        self.related.setToolTip("DOIs the data references: the source collections' (double-click edits)")
        self.add_related_button = QPushButton("Add DOI", self)
        self.remove_related_button = QPushButton("Remove", self)
        self.add_related_button.clicked.connect(self.add_related_row)
        self.remove_related_button.clicked.connect(self.remove_related)
        self.service_box = QComboBox(self)
        for value, text in SERVICES:
            self.service_box.addItem(text, value)
        chosen = service.settings.get().doi_service
        self.service_box.setCurrentIndex(max(0, self.service_box.findData(chosen)))
        self.landing_edit = QLineEdit(self)
        self.landing_edit.setPlaceholderText("https://your-lab.example/data/this-set")
        self.landing_edit.setToolTip("The page the DOI resolves to: your lab's page of the data")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        creators = QWidget(self)
        column = QVBoxLayout(creators)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.creators)
        column.addLayout(_buttons(self.add_creator_button, self.remove_creator_button))
        related = QWidget(self)
        column = QVBoxLayout(related)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.related)
        column.addLayout(_buttons(self.add_related_button, self.remove_related_button))
        rows: tuple[tuple[str, str, QWidget], ...] = (
            ("title", "Title", self.title_edit),
            ("creators", "Creators", creators),
            ("publisher", "Publisher", self.publisher_edit),
            ("year", "Year", self.year_box),
            ("description", "Description", self.description_edit),
            ("subjects", "Keywords", self.keywords_edit),
            ("license", "Licence", self.licence_box),
            ("funding", "Funding", self.funding_edit),
            ("related", "Related identifiers", related),
            ("service", "DOI service", self.service_box),
            ("landing_url", "Landing page", self.landing_edit),
        )
        self.row_labels: dict[str, QLabel] = {}
        for key, text, widget in rows:
            self.field_widgets[key] = widget
            label = QLabel(text, self)
            self.row_labels[key] = label
            form.addRow(label, self._with_problem(key, widget))
        self.field_widgets["creators"] = self.creators
        self.field_widgets["related"] = self.related
        self.status = QLabel("Filling in from the set…", self)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.publish_button = QPushButton("Publish", self)
        self.publish_button.setDefault(True)
        self.buttons.addButton(self.publish_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.publish_button.clicked.connect(self.publish)
        self.buttons.rejected.connect(self.reject)
        body = QWidget(self)
        column = QVBoxLayout(body)
        column.addLayout(form)
        column.addStretch(1)  # spare height below the form, not between its rows
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(760, 720)

        for line in (self.title_edit, self.publisher_edit, self.keywords_edit, self.funding_edit):
            line.textChanged.connect(self.validate)
        self.landing_edit.textChanged.connect(self.validate)
        self.year_box.valueChanged.connect(self.validate)
        self.description_edit.textChanged.connect(self.validate)
        self.licence_box.currentTextChanged.connect(self.validate)
        self.creators.itemChanged.connect(self.validate)
        self.related.itemChanged.connect(self.validate)
        self.service_box.currentIndexChanged.connect(self._service_changed)
        self._service_changed()

    def _with_problem(self, key: str, widget: QWidget) -> QWidget:
        """``widget`` with a red line under it for its problem (hidden while there is none)."""
        box = QWidget(self)
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(widget)
        problem = QLabel("", box)
        problem.setWordWrap(True)
        problem.setStyleSheet(f"color: {PROBLEM};")
        problem.setAccessibleName(f"Problem: {key}")
        problem.hide()
        column.addWidget(problem)
        self.problem_labels[key] = problem
        return box

    # -- filling in ------------------------------------------------------------------------------
    def start(self) -> None:
        """Ask the service for the set's suggestion, on a worker; the form fills when it comes."""
        self._set_busy(True, "Filling in from the set…")
        self.runner.run(
            self.service.publishing.suggest,
            self.set_id,
            self.version,
            done=self.fill,
            failed=self.messages.handler(shown_in=self._show_failure, prefix="Could not fill in the form: "),
        )

    def fill(self, metadata: DoiMetadata) -> None:
        """Show ``metadata`` in the form (the suggestion, or an earlier try's)."""
        self.suggested = metadata
        self._ready = True
        self._filling = True
        try:
            self.title_edit.setText(metadata.title)
            self.creators.setRowCount(0)
            for creator in metadata.creators:
                self.add_creator(creator)
            self.publisher_edit.setText(metadata.publisher)
            self.year_box.setValue(metadata.year)
            self.description_edit.setPlainText(metadata.description)
            self.keywords_edit.setText(", ".join(metadata.subjects))
            self.licence_box.setCurrentText(metadata.license)
            self.funding_edit.setText("; ".join(metadata.funding))
            self.related.clear()
            # Several series of one collection may name its DOI each: list it once.
            for identifier in dict.fromkeys(r.identifier for r in metadata.related):
                self._related_item(identifier)
        finally:
            self._filling = False
        sources = self.related.count()
        self._set_busy(
            False,
            f"{metadata.size}. " if metadata.size else "",
        )
        if sources:
            self.status.setText(
                self.status.text()
                + f"The {'DOI' if sources == 1 else f'{sources} DOIs'} of the source collections "
                "are listed as related identifiers."
            )
        self.validate()
        self.prefilled.emit(metadata)

    def add_creator(self, creator: Creator) -> None:
        row = self.creators.rowCount()
        self.creators.insertRow(row)
        for column, text in enumerate((creator.name, creator.orcid, creator.affiliation)):
            self.creators.setItem(row, column, QTableWidgetItem(text))
        if not self._filling:
            self.creators.setCurrentCell(row, 0)
            self.validate()

    def remove_creator(self) -> None:
        row = self.creators.currentRow()
        if row >= 0:
            self.creators.removeRow(row)
            self.validate()

    def _related_item(self, identifier: str) -> QListWidgetItem:
        item = QListWidgetItem(identifier, self.related)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        return item

    def add_related_row(self) -> None:
        item = self._related_item("10.")
        self.related.setCurrentItem(item)
        self.related.editItem(item)
        self.validate()

    def remove_related(self) -> None:
        row = self.related.currentRow()
        if row >= 0:
            self.related.takeItem(row)
            self.validate()

    def _service_changed(self) -> None:
        # Zenodo makes its own landing page; without a DOI there is none.
        datacite = self.service_name() == "datacite"
        self.row_labels["landing_url"].setVisible(datacite)
        box = self.landing_edit.parentWidget()
        if box is not None:
            box.setVisible(datacite)
        self.publish_button.setText("Publish" if self.service_name() else "Publish without a DOI")
        self.validate()

    # -- the form's values -----------------------------------------------------------------------
    def service_name(self) -> str:
        return str(self.service_box.currentData() or "")

    def landing_url(self) -> str:
        return self.landing_edit.text().strip() if self.service_name() == "datacite" else ""

    def creator_rows(self) -> list[Creator]:
        out = []
        for row in range(self.creators.rowCount()):
            name, orcid, affiliation = (self._cell(row, c) for c in range(3))
            given, family = split_name(name)
            out.append(Creator(name, given, family, orcid, affiliation))
        return out

    def _cell(self, row: int, column: int) -> str:
        item = self.creators.item(row, column)
        return "" if item is None else item.text().strip()

    def metadata(self) -> DoiMetadata:
        """What the form says, as DOI metadata (not checked)."""
        base = self.suggested
        related = [self.related.item(i).text().strip() for i in range(self.related.count())]
        return DoiMetadata(
            title=self.title_edit.text().strip(),
            creators=tuple(self.creator_rows()),
            publisher=self.publisher_edit.text().strip(),
            year=self.year_box.value(),
            description=self.description_edit.toPlainText().strip(),
            subjects=tuple(s.strip() for s in self.keywords_edit.text().split(",") if s.strip()),
            license=self.licence_box.currentText().strip(),
            funding=tuple(f.strip() for f in self.funding_edit.text().split(";") if f.strip()),
            related=tuple(Related(r) for r in related if r),
            version=base.version if base is not None else str(self.version),
            size=base.size if base is not None else "",
        )

    def problems(self) -> dict[str, str]:
        """What keeps the form from publishing, by field (``creators.0.orcid``, ``landing_url``...)."""
        out = self.metadata().problems()
        if self.service_name() == "datacite":
            url = self.landing_url()
            if not url:
                out["landing_url"] = (
                    "DataCite needs the page the DOI resolves to: your lab's page of the data"
                )
            elif not _URL.match(url):
                out["landing_url"] = f"{url!r} is no web address (https://…)"
        return out

    def validate(self) -> dict[str, str]:
        """Show each problem under its field, with a red border; Publish only when there is none."""
        if self._filling or not self._ready:
            self.publish_button.setEnabled(False)
            return {"form": "not filled in yet"}
        problems = self.problems()
        # Related identifiers are numbered among the non-empty rows: map them back to rows.
        rows = [i for i in range(self.related.count()) if self.related.item(i).text().strip()]
        shown: dict[str, list[str]] = {key: [] for key in self.problem_labels}
        for name, text in problems.items():
            key, _, rest = name.partition(".")
            if key == "creators" and rest:
                number, _, part = rest.partition(".")
                what = {"name": "name", "orcid": "ORCID iD"}.get(part, part)
                text = f"Creator {int(number) + 1}, {what}: {text}"
            elif key == "related" and rest:
                text = f"Row {rows[int(rest)] + 1}: {text}" if int(rest) < len(rows) else text
            shown.setdefault(key if key in self.problem_labels else "title", []).append(text)
        for key, label in self.problem_labels.items():
            label.setText("\n".join(shown.get(key, [])))
            label.setVisible(bool(shown.get(key)))
            widget = self.field_widgets[key]
            widget.setStyleSheet(_red(widget) if shown.get(key) else "")
        self._mark_cells(problems, rows)
        self.publish_button.setEnabled(not problems and not self.busy)
        return problems

    def _mark_cells(self, problems: dict[str, str], related_rows: list[int]) -> None:
        self.creators.blockSignals(True)
        try:
            for row in range(self.creators.rowCount()):
                for column, part in enumerate(("name", "orcid", "affiliation")):
                    item = self.creators.item(row, column)
                    if item is None:
                        item = QTableWidgetItem("")
                        self.creators.setItem(row, column, item)
                    bad = f"creators.{row}.{part}" in problems
                    item.setBackground(QColor("#fde7ea") if bad else QBrush())
                    item.setToolTip(problems.get(f"creators.{row}.{part}", ""))
        finally:
            self.creators.blockSignals(False)
        self.related.blockSignals(True)
        try:
            bad_rows = {
                related_rows[int(n.split(".")[1])]
                for n in problems
                if n.startswith("related.") and int(n.split(".")[1]) < len(related_rows)
            }
            for row in range(self.related.count()):
                entry = self.related.item(row)
                entry.setBackground(QColor("#fde7ea") if row in bad_rows else QBrush())
        finally:
            self.related.blockSignals(False)

    # -- publishing ------------------------------------------------------------------------------
    def publish(self) -> None:
        """Publish the version with the form's metadata, on a worker; the dialog closes when it is
        published (its DOI follows from the queue)."""
        if self.validate() or self.busy:
            return
        metadata, url, chosen = self.metadata(), self.landing_url(), self.service_name()
        self._set_busy(True, "Publishing…")

        def done(record: PublishedRecord) -> None:
            self.busy = False
            self.published.emit(record)
            self.accept()

        self.runner.run(
            self.service.publishing.publish,
            self.set_id,
            self.version,
            metadata,
            landing_url=url or None,
            service=chosen,
            done=done,
            failed=self.messages.handler(shown_in=self._show_failure, prefix="Not published: "),
        )

    def _set_busy(self, busy: bool, text: str) -> None:
        self.busy = busy
        self.status.setText(text)
        self.status.setStyleSheet("")
        self.publish_button.setEnabled(not busy and self._ready and not self.problems())

    def _show_failure(self, text: str) -> None:
        self.busy = False
        self._ready = True  # the user fills in what the suggestion could not
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {PROBLEM};")
        self.validate()


def _buttons(*buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    return row


def _red(widget: QWidget) -> str:
    """A red border for ``widget`` alone (not its children)."""
    name = type(widget).__name__
    return f"{name} {{ {_BAD} }}"
