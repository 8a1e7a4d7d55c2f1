"""Matching data in other archives: the patients of a selection (a collection, some patients, a
filtered cohort, a clinical table's patients) looked up in every other archive, with what each
holds for them, grouped by kind of data (radiology, pathology, genomics...), so a case's CT in
IDC, RNA-Seq in GDC and slides in two archives show side by side.

The search runs on a worker (``service.archives.match``). Checking kinds of data counts, live,
the patients that have them (``Matching.common``); "Add to set" puts the cohort's rules
(``Matching.cohort``: the selection with the chosen archives as ``@in`` targets) into the open
set's pending edits, where they stay joined: the set resolves them anew at every change and check.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection, Sequence

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDrag, QFont, QMouseEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.clinical import SOURCE_ID as TABLES
from mediator_desktop.core.diff import plural
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.integrator import ArchiveMatch, Matching, patient_depth
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.core.source import CATEGORIES, DataKind
from mediator_desktop.ui.archive import pointers_to_mime
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.rules import condition_text, scope_text
from mediator_desktop.ui.workers import Runner

#: How each category of data is headed.
HEADINGS = {
    "radiology": "Radiology",
    "pathology": "Pathology",
    "genomics": "Genomics",
    "clinical": "Clinical",
    "other": "Other data",
}
#: Patients named in a tooltip before "and N more".
NAMED = 40
RED = QColor(176, 0, 32)
#: What a row holds: ``kind|source_id|label``, ``archive|source_id|category`` or ``category||name``
#: (``SEP`` between the parts).
ROLE = Qt.ItemDataRole.UserRole
SEP = "\x1f"
#: Keys of an archive path longer than this are shortened in headings (DICOM UIDs).
LONG_KEY = 24


def short_key(key: str) -> str:
    """A long key (a DICOM UID) shortened for a heading: ``1.3.6.1.4.1.14…871262``."""
    return key if len(key) <= LONG_KEY else f"{key[:14]}…{key[-6:]}"


def origin_text(origin: Sequence[Pointer], patients: Collection[str] = ()) -> str:
    """What a match starts from, for people: ``idc/tcga_luad (CT)``, ``3 items of idc/tcga_luad
    (TCGA-05-4244, …)``, ``table trial (stage=II)``, ``4 named patients``."""
    if not origin:
        return f"{len(patients):,} named {plural('patient', len(patients))}"
    first = origin[0]
    if first.source_id == TABLES and len(origin) == 1:
        conditions = [
            condition_text(name, values) for name, values in first.filters if not name.startswith("@")
        ]
        table = f"table {first.path[0]}" if first.path else "every table"
        return f"{table} ({', '.join(conditions)})" if conditions else table
    if len(origin) == 1:
        return scope_text(Pointer(first.source_id, tuple(short_key(k) for k in first.path), first.filters))
    parents = {p.path[:-1] for p in origin}
    depths = {p.depth for p in origin}
    if len(parents) == 1 and len(depths) == 1 and origin[0].depth:
        parent = origin[0]
        above = scope_text(
            Pointer(parent.source_id, tuple(short_key(k) for k in parent.path[:-1]), parent.filters)
        )
        keys = ", ".join(short_key(p.path[-1]) for p in origin[:3]) + (", …" if len(origin) > 3 else "")
        return f"{len(origin):,} items of {above} ({keys})"
    return f"{len(origin):,} items of {origin[0].source_id}"


def missing_text(missing: Sequence[str], noun: str = "patient") -> str:
    """``No data for 3 patients: A, B, C`` (long lists end with ``and N more``)."""
    shown = ", ".join(missing[:NAMED])
    more = f" and {len(missing) - NAMED:,} more" if len(missing) > NAMED else ""
    return f"{len(missing):,} {plural(noun, len(missing))}: {shown}{more}"


class CohortDragLabel(QLabel):
    """ "⠿ drag onto a set": starts a drag of the cohort's rules, as archive items travel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pointers: list[Pointer] = []
        self._pressed: QPoint | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMargin(4)
        self.setAccessibleName("Drag the cohort onto a set")
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._pressed = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        start = self._pressed
        moved = start is not None and (event.position().toPoint() - start).manhattanLength()
        if not self.pointers or not moved or moved < QApplication.startDragDistance():
            return
        self._pressed = None
        drag = QDrag(self)
        drag.setMimeData(pointers_to_mime(self.pointers))
        drag.exec(Qt.DropAction.CopyAction)


class MatchDialog(QDialog):
    """What the other archives hold for the patients of ``origin`` (and ``patients`` named), to
    add to a set as rules that stay joined. Non-modal; the search runs on its own worker, and
    closing the dialog (Cancel) drops its result.

    Args:
        service: the node's one door.
        origin: pointers into one archive or clinical table (a collection, patients, a filter).
        messages: where unexpected failures go.
        patients: patients named besides (or instead of) ``origin``.
        open_set: the name of the set open in the window, None when none is (asked whenever the
            buttons are shown: the window may open another set meanwhile).

    Signals: matched(Matching): the search ended and shows; add_requested(list[Pointer]): "Add to
    set" (the window adds them to the open set's pending edits); new_set_requested(str,
    list[Pointer]): "New set from these…" with the name given.
    """

    matched = Signal(object)
    add_requested = Signal(list)
    new_set_requested = Signal(str, list)

    def __init__(
        self,
        service: Service,
        origin: Sequence[Pointer],
        messages: MessageBridge,
        parent: QWidget | None = None,
        *,
        patients: Sequence[str] = (),
        open_set: Callable[[], str | None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("matchDialog")
        self.setWindowTitle("Matching data in other archives")
        self.service = service
        self.origin = list(origin)
        self.patients = list(patients)
        self.messages = messages
        self.open_set = open_set
        self.matching: Matching | None = None
        self.runner = Runner(self, workers=1, name="match")
        self._job = 0
        self._running = False
        self._closed = False
        self._shut = False
        self.noun = self._patient_noun(self.origin[0].source_id) if self.origin else "patient"
        what = html.escape(origin_text(self.origin, self.patients), quote=False)
        self.heading = QLabel(f"Patients of <b>{what}</b>" if self.origin else f"<b>{what}</b>", self)
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.heading.setToolTip("\n".join(str(p) for p in self.origin[:NAMED]) or ", ".join(self.patients))
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Search")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)  # no end known: it moves while the archives answer
        self.busy.setTextVisible(False)
        self.busy.setAccessibleName("Searching")
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setAccessibleName("Matching data")
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)  # rows are checked
        self.tree.itemChanged.connect(self._item_changed)
        self.every_box = QCheckBox(self)
        self.every_box.setChecked(True)
        self.every_box.toggled.connect(lambda _: self._update_count())
        self.count_label = QLabel("", self)
        self.count_label.setAccessibleName("Matching patients")
        bold = QFont(self.count_label.font())
        bold.setBold(True)
        self.count_label.setFont(bold)  # not a style sheet: its tooltip would be bold too
        self.count_label.setWordWrap(True)
        self.drag_label = CohortDragLabel(self)
        self.drag_label.setText("⠿ drag onto a set")
        self.add_button = QPushButton("Add to set", self)
        self.add_button.clicked.connect(self.add_to_set)
        self.new_set_button = QPushButton("New set from these…", self)
        self.new_set_button.setToolTip("Make a new set holding these patients and the checked data")
        self.new_set_button.clicked.connect(self.ask_new_set)
        self.close_button = QPushButton("Cancel", self)
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.drag_label)
        buttons.addStretch(1)
        buttons.addWidget(self.new_set_button)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.status)
        layout.addWidget(self.busy)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.every_box)
        layout.addWidget(self.count_label)
        layout.addLayout(buttons)
        self._label_every()
        self._update_buttons()
        self.resize(760, 580)

    # -- searching -------------------------------------------------------------------------------
    def start(self) -> None:
        """Look the patients up in the other archives (on a worker); ``matched`` tells the end."""
        self._job += 1
        job = self._job
        self._running = True
        self.matching = None
        self.tree.clear()
        self.busy.show()
        self.close_button.setText("Cancel")
        self.close_button.setToolTip("Stop waiting and close (the archives' answers are dropped)")
        self.status.setStyleSheet("")
        self.status.setText("Looking for these patients in the other archives…")
        self._update_count()

        def arrived(matching: Matching) -> None:
            self._running = False
            if self._gone() or job != self._job:
                return
            self._show(matching)

        def refused(error: BaseException) -> None:
            self._running = False
            if self._gone() or job != self._job:
                return
            self.busy.hide()
            self.close_button.setText("Close")
            self.messages.failed(error, shown_in=self._failed, prefix="Not searched: ")

        self.runner.run(self.service.archives.match, self.origin, self.patients, done=arrived, failed=refused)

    def _failed(self, text: str) -> None:
        self.status.setStyleSheet("color: #b00020;")
        self.status.setText(text)
        self._update_count()

    def _gone(self) -> bool:
        """After a close the answer is dropped, and the worker that waited for it ends."""
        if self._closed and not self._shut:
            self.runner.close(wait=False)
        return self._closed

    @property
    def idle(self) -> bool:
        """Closed, with no search waiting for an answer: the window may delete it."""
        return self._closed and not self._running

    def shutdown(self) -> None:
        """The window closes: wait for a running search; start nothing after it."""
        self._shut = self._closed = True
        self.runner.close()

    def done(self, result: int) -> None:
        """Closed (Cancel, Close, Esc, the window's close button): a running search's answer is
        dropped."""
        self._job += 1
        if not self._closed:
            self._closed = True
            if not self._running and not self._shut:
                self.runner.close(wait=False)
        super().done(result)

    # -- showing ---------------------------------------------------------------------------------
    def _show(self, matching: Matching) -> None:
        self.matching = matching
        self.busy.hide()
        self.close_button.setText("Close")
        self.close_button.setToolTip("")
        total = len(matching.patients)
        searched = len(matching.archives)
        self.status.setText(
            f"{total:,} {plural(self.noun, total)}, looked up in {searched:,} other "
            f"{plural('archive', searched)}. Check the data to add with them:"
            if searched
            else f"{total:,} {plural(self.noun, total)}; there is no other archive to look in. "
            "Add one (File > Add archive…), then look again."
        )
        self.tree.blockSignals(True)
        self.tree.clear()
        for category in (*CATEGORIES, *sorted({k.category for m in matching.archives for k in m.kinds})):
            rows = [(m, [k for k in m.kinds if k.category == category]) for m in matching.archives]
            rows = [(m, kinds) for m, kinds in rows if kinds]
            if not rows or self.category_item(category) is not None:
                continue
            heading = QTreeWidgetItem(self.tree, [HEADINGS.get(category, category.capitalize())])
            heading.setData(0, ROLE, _key("category", "", category))
            heading.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = QFont(heading.font(0))
            font.setBold(True)
            heading.setFont(0, font)
            for match, kinds in rows:
                self._archive_rows(heading, match, kinds, category)
            heading.setExpanded(True)
        for match in matching.archives:
            if match.error is None and match.kinds:
                continue
            item = QTreeWidgetItem(self.tree, [self._unfound_text(match)])
            item.setData(0, ROLE, _key("archive", match.target.source_id, ""))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if match.error is not None:
                item.setForeground(0, QBrush(RED))
                item.setToolTip(0, f"{match.target}\n{match.error}")
            else:
                item.setForeground(
                    0, self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                )
                item.setToolTip(0, f"{match.target}\nNone of these {plural(self.noun, 2)} is there.")
        self.tree.blockSignals(False)
        # The keyboard starts on the first kind of data (Space checks it), not on a heading.
        first = next((i for i in self._items() if _role(i)[0] == "kind"), None)
        if first is not None:
            self.tree.setCurrentItem(first)
        self._update_count()
        self.matched.emit(matching)

    def _archive_rows(
        self, parent: QTreeWidgetItem, match: ArchiveMatch, kinds: list[DataKind], category: str
    ) -> None:
        assert self.matching is not None
        sid = match.target.source_id
        noun = self._patient_noun(sid)
        total = len(self.matching.patients)
        have = match.having([k.label for k in kinds])
        name = self._archive_name(match)
        item = QTreeWidgetItem(parent, [f"{name} — {len(have):,} of {total:,} {plural(noun, total)}"])
        item.setData(0, ROLE, _key("archive", sid, category))
        item.setFlags(
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate
        )
        lacking = [p for p in self.matching.patients if p not in have]
        tip = [str(match.target), f"{len(match.found):,} of {total:,} {plural(noun, total)} found here."]
        if lacking:
            tip.append(
                f"No {HEADINGS.get(category, category).lower()} here for {missing_text(lacking, noun)}"
            )
        item.setToolTip(0, "\n".join(tip))
        leaf = self._leaf_noun(sid)
        for kind in kinds:
            n = len(kind.patients)
            parts = [f"{n:,} {plural(noun, n)}", f"{kind.leaves:,} {plural(leaf, kind.leaves)}"]
            if kind.size is not None:
                parts.append(human_bytes(kind.size))
            row = QTreeWidgetItem(item, [f"{kind.label} — {', '.join(parts)}"])
            row.setData(0, ROLE, _key("kind", sid, kind.label))
            row.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            row.setCheckState(0, Qt.CheckState.Unchecked)
            where = "" if kind.filter is None else f"{kind.filter[0]}={kind.filter[1]} in "
            lacking = [p for p in self.matching.patients if p not in kind.patients]
            lines = [f"{where}{scope_text(match.target)}: check it to add it for the patients that have it"]
            if lacking:
                lines.append(f"Not there for {missing_text(lacking, noun)}")
            row.setToolTip(0, "\n".join(lines))
        item.setExpanded(True)

    def _archive_name(self, match: ArchiveMatch) -> str:
        sid = match.target.source_id
        if match.title == sid:
            name = sid
        else:  # "TCIA pathology (PathDB) · pathology" rather than two pairs of parentheses
            name = f"{match.title} · {sid}" if match.title.endswith(")") else f"{match.title} ({sid})"
        if match.target.depth or match.target.filters:
            name += f": {scope_text(match.target).partition('/')[2] or scope_text(match.target)}"
        return name

    def _unfound_text(self, match: ArchiveMatch) -> str:
        name = self._archive_name(match)
        if match.error is not None:
            return f"{name} — could not be searched: {match.error}"
        total = len(self.matching.patients) if self.matching is not None else 0
        noun = self._patient_noun(match.target.source_id)
        return f"{name} — none of the {total:,} {plural(noun, total)}"

    def _patient_noun(self, source_id: str) -> str:
        try:
            source = self.service.archives.get(source_id)
        except MediatorError:  # removed meanwhile
            return "patient"
        depth = patient_depth(source)
        return "patient" if depth is None else source.hierarchy.levels[depth - 1]

    def _leaf_noun(self, source_id: str) -> str:
        try:
            return self.service.archives.get(source_id).hierarchy.leaf_level
        except MediatorError:
            return "item"

    # -- the rows --------------------------------------------------------------------------------
    def _items(self) -> list[QTreeWidgetItem]:
        out: list[QTreeWidgetItem] = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop(0)
            if item is None:
                continue
            out.append(item)
            stack[0:0] = [item.child(i) for i in range(item.childCount())]
        return out

    def category_item(self, category: str) -> QTreeWidgetItem | None:
        """The heading of a category of data (None when no archive has such data)."""
        return next((i for i in self._items() if _role(i) == ("category", "", category)), None)

    def archive_items(self, source_id: str) -> list[QTreeWidgetItem]:
        """An archive's rows: one per category it has data of (or its one "not found" row)."""
        return [i for i in self._items() if _role(i)[:2] == ("archive", source_id)]

    def kind_item(self, source_id: str, label: str) -> QTreeWidgetItem:
        """The checkable row of one kind of data of an archive (``KeyError`` when none)."""
        for item in self._items():
            if _role(item) == ("kind", source_id, label):
                return item
        raise KeyError(f"{source_id} has no {label} row")

    def check(self, source_id: str, *labels: str, checked: bool = True) -> None:
        """Check (or uncheck) kinds of an archive, as clicks would."""
        state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        for label in labels:
            self.kind_item(source_id, label).setCheckState(0, state)

    def chosen(self) -> dict[str, list[str] | None]:
        """The checked kinds per archive; None for an archive with all its kinds checked (the
        whole archive joins: data of a new kind there is news too)."""
        if self.matching is None:
            return {}
        picked: dict[str, list[str]] = {}
        for item in self._items():
            role = _role(item)
            if role[0] == "kind" and item.checkState(0) == Qt.CheckState.Checked:
                picked.setdefault(role[1], []).append(role[2])
        out: dict[str, list[str] | None] = {}
        for sid, labels in picked.items():
            every = {k.label for k in self.matching.archive(sid).kinds}
            out[sid] = None if set(labels) == every else labels
        return out

    @property
    def every(self) -> bool:
        return self.every_box.isChecked()

    def cohort(self) -> list[Pointer]:
        """The rules that add this match to a set (empty when nothing is checked)."""
        chosen = self.chosen()
        if self.matching is None or not chosen:
            return []
        return self.matching.cohort(chosen, every=self.every)

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if _role(item)[0] == "kind":
            self._update_count()

    def _label_every(self) -> None:
        nouns = plural(self.noun, 2)
        self.every_box.setText(f"Only {nouns} that have the checked data in every checked archive")
        self.every_box.setToolTip(
            f"On: the set keeps only the {nouns} found with checked data in each checked archive, "
            f"here and there.\nOff: it keeps all the {nouns}, with what the checked archives hold "
            "for them."
        )

    def _update_count(self) -> None:
        matching = self.matching
        if matching is None:
            self.count_label.setText("")
            self.count_label.setToolTip("")
            self._update_buttons()
            return
        total, noun = len(matching.patients), self.noun
        chosen = self.chosen()
        if not chosen:
            self.count_label.setText(f"{total:,} {plural(noun, total)}: check the data to add with them")
            self.count_label.setToolTip("")
        elif self.every:
            common = matching.common(chosen)
            verb = "matches" if len(common) == 1 else "match"
            self.count_label.setText(f"{len(common):,} of {total:,} {plural(noun, total)} {verb}")
            kept = set(common)
            lacking = [p for p in matching.patients if p not in kept]
            self.count_label.setToolTip(
                f"Left out (no checked data in every checked archive): {missing_text(lacking, noun)}"
                if lacking
                else "Every one of them has the checked data in every checked archive."
            )
        else:
            having = set().union(*(matching.archive(s).having(labels) for s, labels in chosen.items()))
            n = len(having)
            self.count_label.setText(
                f"All {total:,} {plural(noun, total)}; {n:,} of them have checked data elsewhere"
            )
            lacking = [p for p in matching.patients if p not in having]
            self.count_label.setToolTip(
                f"Kept without other data: {missing_text(lacking, noun)}" if lacking else ""
            )
        self._update_buttons()

    def _update_buttons(self) -> None:
        pointers = self.cohort()
        name = self.open_set()
        self.add_button.setEnabled(bool(pointers) and name is not None)
        self.new_set_button.setEnabled(bool(pointers))
        self.drag_label.setEnabled(bool(pointers))
        self.drag_label.pointers = pointers
        self.drag_label.setToolTip(
            "Drag onto a set's tree: the set keeps these patients joined to the checked archives"
            if pointers
            else "Check the data to add first"
        )
        if name is None:
            self.add_button.setText("Add to set")
            self.add_button.setToolTip("No set is open: open one, or make a new set from these")
            self.new_set_button.setDefault(bool(pointers))
        else:
            self.add_button.setText(f"Add to “{_elided(name)}”")
            self.add_button.setToolTip(
                f"Add these patients and the checked data to the pending changes of {name!r} "
                "(commit there to keep them)"
            )
            self.add_button.setDefault(bool(pointers))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self._update_buttons()  # another set may be open now
        super().changeEvent(event)

    # -- adding ----------------------------------------------------------------------------------
    def add_to_set(self) -> None:
        """Hand the cohort's rules to the open set (the window adds them), then close."""
        pointers = self.cohort()
        if not pointers:
            return
        if self.open_set() is None:
            self._update_buttons()
            return
        self.add_requested.emit(pointers)
        self.close()

    def suggested_name(self) -> str:
        """A name for a new set: ``tcga_luad (CT) with RNA-Seq, slide``."""
        what = origin_text(self.origin, self.patients).rpartition("/")[2]
        labels = [label for labels in self.chosen().values() for label in (labels or [])]
        archives = [sid for sid, labels in self.chosen().items() if labels is None]
        extra = ", ".join(dict.fromkeys([*labels, *archives]))
        return f"{what} with {extra}" if extra else what

    def ask_new_set(self) -> None:
        name, ok = QInputDialog.getText(self, "New set from these", "Name:", text=self.suggested_name())
        if ok and name.strip():
            self.new_set(name.strip())

    def new_set(self, name: str) -> None:
        """Ask the window for a new set ``name`` holding the cohort's rules, then close."""
        pointers = self.cohort()
        if pointers:
            self.new_set_requested.emit(name, pointers)
            self.close()


def _key(what: str, source_id: str, name: str) -> str:
    return SEP.join((what, source_id, name))


def _role(item: QTreeWidgetItem) -> tuple[str, str, str]:
    """What a row holds: ``(what, source_id, name)`` (see ``ROLE``)."""
    data = item.data(0, ROLE)
    parts = data.split(SEP, 2) if isinstance(data, str) else []
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("", "", "")


def _elided(name: str, limit: int = 32) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
