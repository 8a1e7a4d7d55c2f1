"""Two versions of a set, or two sets, or a set's version and what its archives hold now, as one
tree: added in green, removed in red, changed in amber, with the one-line summary on top. Computed
on a worker; big diffs are shown in part.

``DiffTree`` draws any ``DiffResult``; ``DiffDialog`` compares versions, the update view
(``ui/update_view.py``) shows the update checker's diff with it. ``DiffCharts`` draws what was
added, removed and changed per collection, at a glance; entries read by their labels where the
archives gave them (``core.labels``), the UID in their tooltip."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.labels import LABELS
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Hierarchy
from mediator_desktop.core.selection import SelectionDiff
from mediator_desktop.core.service import Service
from mediator_desktop.ui.charts import BarChart, ChartRow
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.rules import TableLabel, selection_diff_text, table_labels
from mediator_desktop.ui.workers import Runner

#: Leaves shown at most (the counts on top always cover all).
MAX_SHOWN = 20_000
#: Diffs of at most this many leaves open down to the leaves; bigger ones show their first levels.
EXPAND_ALL = 200
COLOURS = {"added": QColor(30, 140, 60), "removed": QColor(190, 40, 40), "changed": QColor(200, 130, 0)}
MARKS = {"added": "+", "removed": "−", "changed": "~", "same": " "}


@dataclass(frozen=True, slots=True)
class DiffResult:
    """A diff ready to draw.

    Attributes:
        rows: (kind, leaf), sorted by key; kind: added, removed, changed, same. At most
            ``MAX_SHOWN``; the counts cover all.
        added, removed, changed: leaves of each kind, all of them.
    """

    summary: str
    selection_summary: str
    rows: list[tuple[str, Leaf]]
    truncated: bool
    added: int = 0
    removed: int = 0
    changed: int = 0
    #: Leaves of each kind (added, removed, changed) per collection (``source/first level``), all.
    by_collection: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)


def _per_collection(leaves: Iterable[Leaf]) -> tuple[tuple[str, int], ...]:
    counts = Counter(f"{leaf.source_id}/{leaf.path[0]}" if leaf.path else leaf.source_id for leaf in leaves)
    return tuple(counts.items())


def diff_result(
    selection: SelectionDiff,
    manifest: ManifestDiff,
    hierarchies: Mapping[str, Hierarchy],
    unchanged: Iterable[Leaf] = (),
    table_label: TableLabel = None,
) -> DiffResult:
    """What ``DiffTree`` draws, from a selection diff and a manifest diff (of two versions, or of a
    version and the archives now). Called on a worker: it decodes the leaves. ``table_label``
    names clinical tables in the selection's line (``ui.rules``)."""
    added, removed, changed = manifest.added, manifest.removed, manifest.changed
    rows: list[tuple[str, Leaf]] = [("added", leaf) for leaf in added]
    rows += [("removed", leaf) for leaf in removed]
    rows += [("changed", after) for _, after in changed]
    rows += [("same", leaf) for leaf in unchanged]
    rows.sort(key=lambda row: row[1].key)
    return DiffResult(
        manifest.summary(hierarchies),
        selection_diff_text(selection, table_label),
        rows[:MAX_SHOWN],
        len(rows) > MAX_SHOWN,
        len(added),
        len(removed),
        len(changed),
        {
            "added": _per_collection(added),
            "removed": _per_collection(removed),
            "changed": _per_collection(after for _, after in changed),
        },
    )


def compute_diff(
    service: Service, set_id: str, old: int, new: int | None, other: str | None, with_unchanged: bool
) -> DiffResult:
    """Called on a worker."""
    selection, manifest = service.sets.diff(set_id, old, new, other)
    unchanged = _unchanged(service, set_id, new, other, manifest) if with_unchanged else []
    return diff_result(selection, manifest, service.archives.hierarchies(), unchanged, table_labels(service))


def _unchanged(
    service: Service, set_id: str, new: int | None, other: str | None, diff: ManifestDiff
) -> list[Leaf]:
    target = service.sets.manifest(service.sets.version(other or set_id, new).manifest_id)
    touched = {leaf.key for leaf in diff.added} | {after.key for _, after in diff.changed}
    out = []
    for leaf in target:
        if leaf.key not in touched:
            out.append(leaf)
            if len(out) > MAX_SHOWN:
                break
    return out


def escaped(text: str) -> str:
    """``text`` for a rich-text label: markup characters escaped, quotes left readable."""
    return html.escape(text, quote=False)


def summary_html(result: DiffResult) -> str:
    """The summary line over a diff (with the selection's changes, if any)."""
    note = f" (showing the first {MAX_SHOWN:,})" if result.truncated else ""
    selection = result.selection_summary
    shown = "" if selection == "no changes" else f"<br>Selection: {escaped(selection)}"
    return f"<b>{escaped(result.summary)}</b>{note}{shown}"


class DiffTree(QTreeWidget):
    """A diff as a tree: archive > levels > leaf, each group with its counts (``+2  −1  ~1``).

    Args:
        words: how a leaf's change is named in its row (the update view says "revised").
    """

    def __init__(self, parent: QWidget | None = None, words: Mapping[str, str] | None = None) -> None:
        super().__init__(parent)
        self.words = {"added": "added", "removed": "removed", "changed": "changed", "same": ""}
        self.words.update(words or {})
        self.setHeaderLabels(["Name", "Change", "Size"])
        self.setAccessibleName("Differences")
        self.setColumnWidth(0, 360)

    def show_result(self, result: DiffResult) -> None:
        self.clear()
        groups: dict[tuple[str, ...], QTreeWidgetItem] = {}
        counts: dict[tuple[str, ...], dict[str, int]] = {}
        for kind, leaf in result.rows:
            parts = (leaf.source_id, *leaf.path)
            parent: QTreeWidgetItem | None = None
            for depth in range(1, len(parts)):
                key = parts[:depth]
                counts.setdefault(key, {}).setdefault(kind, 0)
                counts[key][kind] += 1
                if key not in groups:
                    name = parts[depth - 1]
                    item = QTreeWidgetItem([LABELS.label(parts[0], key[1:]) or name, "", ""])
                    item.setToolTip(0, name)
                    if parent is None:
                        self.addTopLevelItem(item)
                    else:
                        parent.addChild(item)
                    groups[key] = item
                parent = groups[key]
            leaf_item = QTreeWidgetItem(
                [
                    LABELS.label(leaf.source_id, leaf.path) or parts[-1],
                    self.words.get(kind, kind),
                    human_bytes(leaf.fingerprint.size or 0),
                ]
            )
            leaf_item.setToolTip(0, f"UID: {parts[-1]}")
            if kind in COLOURS:
                for column in range(3):
                    leaf_item.setForeground(column, QBrush(COLOURS[kind]))
            assert parent is not None
            parent.addChild(leaf_item)
        for key, item in groups.items():
            item.setText(
                1, "  ".join(f"{MARKS[k]}{n}" for k, n in sorted(counts[key].items()) if k != "same")
            )
        if len(result.rows) <= EXPAND_ALL:
            self.expandAll()
        else:
            self.expandToDepth(1)


class DiffCharts(ChartRow):
    """A diff at a glance: added, removed and changed series per collection, in their colours."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            [BarChart(f"{kind.capitalize()} series", colour=COLOURS[kind]) for kind in COLOURS], parent
        )

    def show_result(self, result: DiffResult) -> None:
        for kind, chart in zip(COLOURS, self.charts, strict=True):
            chart.set_values(result.by_collection.get(kind, ()))
            chart.title = f"{kind.capitalize()}: {getattr(result, kind):,} series"


class DiffDialog(QDialog):
    """Pick two versions (of one set, or of two sets) and see what changed. Non-modal."""

    def __init__(
        self, service: Service, set_id: str, messages: MessageBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.set_id = set_id
        self.messages = messages
        self.runner = Runner(self, workers=1, name="diff")
        self.finished.connect(lambda _: self.runner.close())  # no worker outlives the dialog
        self._job = 0
        rs = service.sets.get(set_id)
        self.setWindowTitle(f"Compare versions of {rs.name}")
        self.old = QComboBox(self)
        self.new = QComboBox(self)
        self.other = QComboBox(self)
        self.other.setToolTip("Compare with a version of another set")
        self.other.addItem("this set", None)
        for candidate in service.sets.list():
            if candidate.id != set_id and candidate.head:
                self.other.addItem(candidate.name, candidate.id)
        self.only_changes = QCheckBox("Only changes", self)
        self.only_changes.setChecked(True)
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.tree = DiffTree(self)
        self.charts = DiffCharts(self)
        compare = QPushButton("Compare", self)
        compare.setDefault(True)
        compare.clicked.connect(self.compare)
        pickers = QHBoxLayout()
        for label, widget in (("From version", self.old), ("to version", self.new), ("of", self.other)):
            pickers.addWidget(QLabel(label, self))
            pickers.addWidget(widget)
        pickers.addWidget(self.only_changes)
        pickers.addStretch(1)
        pickers.addWidget(compare)
        layout = QVBoxLayout(self)
        layout.addLayout(pickers)
        layout.addWidget(self.summary)
        layout.addWidget(self.charts)
        layout.addWidget(self.tree, 1)
        self.other.currentIndexChanged.connect(self._fill_new)
        self.only_changes.toggled.connect(lambda _: self.compare())
        versions = [v.number for v in service.sets.history(set_id)]
        for number in versions:
            self.old.addItem(f"v{number}", number)
        self.old.setCurrentIndex(max(0, len(versions) - 2))
        self._fill_new()
        self.resize(900, 600)

    def _fill_new(self) -> None:
        self.new.clear()
        target = self.other.currentData() or self.set_id
        numbers = [v.number for v in self.service.sets.history(target)]
        for number in numbers:
            self.new.addItem(f"v{number}", number)
        self.new.setCurrentIndex(len(numbers) - 1)

    def compare(self) -> None:
        old, new, other = self.old.currentData(), self.new.currentData(), self.other.currentData()
        if old is None or new is None:
            self.summary.setText("This set has no versions to compare yet.")
            return
        self._job += 1
        job = self._job
        self.summary.setText("Comparing…")
        self.runner.run(
            compute_diff,
            self.service,
            self.set_id,
            old,
            new,
            other,
            not self.only_changes.isChecked(),
            done=lambda result: self._show(job, result),
            failed=self.messages.handler(shown_in=self.summary.setText, prefix="Could not compare: "),
        )

    def _show(self, job: int, result: DiffResult) -> None:
        if job != self._job:
            return
        self.summary.setText(summary_html(result))
        self.charts.show_result(result)
        self.tree.show_result(result)
