"""A replica set in the middle of the window: its leaves as a tree (source > levels, with counts and
sizes), edited by dropping archive entries on it and pressing Delete, with undo and redo until the
edits are committed as a version.

Every edit is resolved against the archives on a worker, so the tree always shows what the
selection would download; a million leaves load without blocking (``core.tree``). A clinical
cohort joined to archives (``core.integrator``) is listed as the cohort it means, with what the
join left out ("1 of 2 patients of clinical/trial have data in lab; none for P9").

A published version (``service.publishing``) shows its DOI under the title: "publishing…" while the
node's queue mints it, "DOI 10.…" then, or why it failed with a Retry button; the Cite menu copies
its citation, its BibTeX or a data availability statement.

Entries read as people name them (the labels the archives gave, ``core.labels``; fetched on a
worker for what was not browsed), with the UID one column away; a chosen series shows a preview,
and the set's composition is drawn as small charts (series per modality and per archive, size per
collection).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QMimeData, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.draft import Draft, Edit
from mediator_desktop.core.errors import ClusterUnavailable, ConflictError, MediatorError
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.labels import LABELS, MODALITY
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.previews import PreviewCache
from mediator_desktop.core.publishing import Citation
from mediator_desktop.core.replica import PublishedRecord
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Archives, Service
from mediator_desktop.core.tree import ManifestTree, TreeNode, TreeSummary
from mediator_desktop.ui.archive import POINTER_MIME, pointers_from_mime, size_columns
from mediator_desktop.ui.charts import BarChart, ChartRow
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.preview import PreviewWidget
from mediator_desktop.ui.rules import edit_text, is_join, pointer_text, table_labels
from mediator_desktop.ui.tree_model import AnyIndex, TreeItem, TreeModel
from mediator_desktop.ui.workers import Runner

PAGE = 500
#: What the set view says (and a download is refused with) when the version selects no leaf.
EMPTY_VERSION = "This version selects no data: nothing to download. Add series from an archive."
EMPTY_CHANGES = "The pending changes select no data: a version of them would download nothing."
#: Children of one entry whose labels are asked of its archive at most (one browse).
LABEL_PAGE = 5000


@dataclass(frozen=True, slots=True)
class Composition:
    """What a set holds, for its charts: series per modality and per archive, bytes per collection."""

    modalities: tuple[tuple[str, int], ...]
    archives: tuple[tuple[str, int], ...]
    collections: tuple[tuple[str, int], ...]


def composition(manifest: Manifest, archives: Archives) -> Composition:
    """Count a manifest's leaves by modality (asked of sources that say, ``modalities``; else from
    the labels browsed; else ``?``), by archive and bytes by first level. Called on a worker."""
    paths: dict[str, list[tuple[str, ...]]] = {}
    sizes: Counter[str] = Counter()
    for leaf in manifest:
        paths.setdefault(leaf.source_id, []).append(leaf.path)
        sizes[f"{leaf.path[0]}" if len(archives.ids()) < 2 else f"{leaf.source_id}/{leaf.path[0]}"] += (
            leaf.fingerprint.size or 0
        )
    modalities: Counter[str] = Counter()
    for source_id, leaves in paths.items():
        try:
            counter = getattr(archives.get(source_id), "modalities", None)
        except MediatorError:
            counter = None
        if callable(counter):
            modalities.update(counter(leaves))
            continue
        for path in leaves:
            modalities[LABELS.details(source_id, path).get(MODALITY) or "?"] += 1
    titles = {sid: archives.title(sid) if sid in archives.ids() else sid for sid in paths}
    return Composition(
        tuple(modalities.items()),
        tuple((titles[sid], len(leaves)) for sid, leaves in paths.items()),
        tuple(sizes.items()),
    )


class _Entry(TreeItem):
    """A source, or a collection, patient, study or series of it, in the set's tree."""

    __slots__ = ("done", "next_line", "value")

    def __init__(self, parent: _Entry | None, value: TreeNode | None) -> None:
        super().__init__(parent)
        self.value = value
        self.next_line = 0
        self.done = value is not None and value.is_leaf


class SetTreeModel(TreeModel):
    """A ``ManifestTree`` as a lazy Qt tree; accepts dropped pointers. Signals:
    pointers_dropped(list[Pointer]); labels_wanted(str, tuple): children of an entry were listed
    whose labels were never browsed (the view asks the archive, then calls ``labels_changed``)."""

    pointers_dropped = Signal(list)
    labels_wanted = Signal(str, tuple)
    COLUMNS = ("Name", "Series", "Size", "UID")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tree: ManifestTree | None = None
        self._root: _Entry = _Entry(None, None)
        self._root.done = True

    def set_tree(self, tree: ManifestTree | None) -> None:
        self.beginResetModel()
        self.tree = tree
        self._root = _Entry(None, None)
        self._root.children = [_Entry(self._root, n) for n in tree.sources()] if tree is not None else []
        self._root.done = True
        self.endResetModel()

    def set_summary(self, summary: TreeSummary) -> None:
        """Show the top of a tree (sources and their first level) until the whole tree is loaded."""
        self.beginResetModel()
        self.tree = None
        self._root = _Entry(None, None)
        self._root.done = True
        for source in summary.sources():
            entry = _Entry(self._root, source)
            entry.done = True
            entry.children = [_Entry(entry, child) for child in summary.children(source.source_id)]
            for child in entry.children:
                child.done = True  # deeper levels come with the whole tree
            self._root.children.append(entry)
        self.endResetModel()

    def entry(self, index: AnyIndex) -> _Entry:
        entry = self.item(index)
        assert isinstance(entry, _Entry)
        return entry

    def pointer(self, index: AnyIndex) -> Pointer | None:
        value = self.entry(index).value
        return None if value is None else Pointer(value.source_id, value.path)

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        entry = self.entry(parent)
        return bool(entry.children) or not entry.done

    def canFetchMore(self, parent: AnyIndex) -> bool:
        return not self.entry(parent).done

    def fetchMore(self, parent: AnyIndex) -> None:
        entry = self.entry(parent)
        if entry.done or entry.value is None or self.tree is None:
            return
        batch: list[TreeNode] = []
        for child in self.tree.children(entry.value.source_id, entry.value.path, entry.next_line):
            batch.append(child)
            if len(batch) == PAGE:
                break
        if len(batch) < PAGE:
            entry.done = True
        if batch:
            entry.next_line = self.tree.after(batch[-1])
            first = len(entry.children)
            self.beginInsertRows(self._index_of(entry), first, first + len(batch) - 1)
            entry.children.extend(_Entry(entry, child) for child in batch)
            self.endInsertRows()
            self.resort()
            if not all(LABELS.knows(c.source_id, c.path) for c in batch):
                self.labels_wanted.emit(entry.value.source_id, entry.value.path)

    def labels_changed(self) -> None:
        """Labels arrived: draw the names again."""
        self.resort()
        if self._root.children:
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(self.COLUMNS) - 1))
            self.layoutChanged.emit()

    def sort_key(self, item: Any, column: int) -> Any:
        value = item.value if isinstance(item, _Entry) else None
        if value is None:
            return None
        if column == 0:
            return (LABELS.label(value.source_id, value.path) or value.key).casefold()
        return (value.leaves, value.size, value.key)[column - 1] if column < 4 else None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        value = self.entry(index).value if index.isValid() else None
        if value is None:
            return None
        column = index.column()
        label = LABELS.label(value.source_id, value.path) if value.path else None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return label or value.key
            if column == 3:
                return value.key if label and label != value.key else None
            return f"{value.leaves:,}" if column == 1 else human_bytes(value.size)
        if role == Qt.ItemDataRole.ToolTipRole and column in (0, 3):
            uid = f"\nUID: {value.key}" if label and label != value.key else ""
            return f"{Pointer(value.source_id, value.path)}{uid}\nDelete removes it from the set."
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDropEnabled

    def mimeTypes(self) -> list[str]:
        return [POINTER_MIME]

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex
    ) -> bool:
        return data.hasFormat(POINTER_MIME)

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex
    ) -> bool:
        pointers = pointers_from_mime(data)
        if not pointers:
            return False
        self.pointers_dropped.emit(
            pointers
        )  # no rows are inserted here: the edit is resolved, then the tree reloads
        return True


class SetView(QWidget):
    """One set: its tree, the pending edits, undo / redo / commit.

    What goes wrong is told through ``messages``. Signals: committed(int) with the new version.
    """

    committed = Signal(int)
    #: The set's tree is drawn: its top from the cached summary, or the whole tree.
    painted_first = Signal()
    #: The whole tree of the version (or of the pending edits) is loaded.
    resolved = Signal()
    #: "Publish…" was pressed for the version shown.
    publish_requested = Signal()
    #: A citation went to the clipboard: its kind (citation, bibtex, availability) and its text.
    citation_copied = Signal(str, str)

    def __init__(self, service: Service, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.messages = messages
        self.runner = Runner(self, workers=2, name="set-view")
        self.table_label = table_labels(service)
        self.draft: Draft | None = None
        #: What the joins of the last resolved selection left out, per archive.
        self._notes: tuple[Selection, list[str]] | None = None
        self._resolved: tuple[Selection, Manifest] | None = None
        self._job = 0
        #: Leaves of the version shown (None: not known yet, or no version).
        self._version_leaves: int | None = None
        #: The composition last drawn (None: none yet).
        self.composed: Composition | None = None
        self.title = QLabel("Choose a set on the left, or make a new one.", self)
        self.title.setWordWrap(True)
        self.state = QLabel("", self)
        self._make_publication()
        # Said, not just implied by an empty tree: a version that selects nothing downloads nothing.
        self.warning = QLabel("", self)
        self.warning.setWordWrap(True)
        self.warning.setObjectName("emptyWarning")
        self.warning.setStyleSheet("QLabel#emptyWarning { color: #b35900; font-weight: bold; }")
        self.warning.setAccessibleName("Warning")
        self.warning.hide()
        # The clinical cohorts of the selection, and what their joins left out.
        self.joins = QLabel("", self)
        self.joins.setWordWrap(True)
        self.joins.setTextFormat(Qt.TextFormat.RichText)
        self.joins.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.joins.setAccessibleName("Clinical joins")
        self.joins.hide()
        self.model = SetTreeModel(self)
        self.model.pointers_dropped.connect(self.add)
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setAcceptDrops(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setDropIndicatorShown(True)
        self.tree.setAccessibleName("Replica set contents")
        size_columns(self.tree)
        self.model.labels_wanted.connect(self._fetch_labels)
        self.previews = PreviewCache(service.settings.data_dir / "previews")
        self.preview = PreviewWidget(service.archives, self.previews, self)
        self.tree.selectionModel().currentChanged.connect(lambda index, _: self._preview(index))
        self.copy_uid_action = QAction("Copy UID", self)
        self.copy_uid_action.triggered.connect(self.copy_uids)
        self.tree.addAction(self.copy_uid_action)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.charts = ChartRow(
            [
                BarChart("Series per modality"),
                BarChart("Series per archive"),
                BarChart("Size per collection", lambda v: human_bytes(int(v))),
            ],
            self,
        )
        self.charts.hide()
        self.pending = QListWidget(self)
        self.pending.setAccessibleName("Pending changes")
        self.pending.setMaximumHeight(80)
        self.pending.setWordWrap(True)  # a cohort's conditions and archives make long lines
        self.undo_button = QPushButton("Undo", self)
        self.redo_button = QPushButton("Redo", self)
        self.message = QLineEdit(self)
        self.message.setPlaceholderText("What changed (the version's message)")
        self.message.setAccessibleName("Version message")
        self.commit_button = QPushButton("Commit", self)
        self.discard_button = QPushButton("Discard", self)
        for button, tip in (
            (self.undo_button, "Undo the last change (Ctrl+Z)"),
            (self.redo_button, "Redo (Ctrl+Shift+Z)"),
            (self.commit_button, "Make the pending changes a new version (Ctrl+Return)"),
            (self.discard_button, "Drop every pending change"),
        ):
            button.setToolTip(tip)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.discard_button.clicked.connect(self.discard)
        self.commit_button.clicked.connect(lambda: self.commit(self.message.text()))
        self.message.returnPressed.connect(lambda: self.commit(self.message.text()))
        self.remove_action = self._action(
            "Remove from set", QKeySequence.StandardKey.Delete, self.remove_selected
        )
        self.undo_action = self._action("Undo", QKeySequence.StandardKey.Undo, self.undo)
        self.redo_action = self._action("Redo", QKeySequence.StandardKey.Redo, self.redo)
        buttons = QHBoxLayout()
        for button in (self.undo_button, self.redo_button, self.discard_button):
            buttons.addWidget(button)
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.commit_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.publication_row)
        layout.addWidget(self.state)
        layout.addWidget(self.warning)
        layout.addWidget(self.joins)
        # The charts and the chosen series' preview share a row: the tree keeps the whole width.
        glance = QHBoxLayout()
        glance.addWidget(self.charts, 1, Qt.AlignmentFlag.AlignTop)
        glance.addWidget(self.preview)
        layout.addLayout(glance)
        layout.addWidget(self.tree, 1)
        layout.addWidget(QLabel("Pending changes (drop archive items above; Delete removes):", self))
        layout.addWidget(self.pending)
        layout.addLayout(buttons)
        self._update_controls()

    def _make_publication(self) -> None:
        """The version's publication: its status and DOI, Cite ▾, Retry, Publish…."""
        #: The shown version's publication (None: not published, or no version shown).
        self.publication: PublishedRecord | None = None
        self.publication_label = QLabel("", self)
        self.publication_label.setAccessibleName("Publication")
        self.publication_label.setTextFormat(Qt.TextFormat.RichText)
        self.publication_label.setOpenExternalLinks(True)
        self.publication_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.publication_label.setWordWrap(True)
        self.cite_menu = QMenu(self)
        self.copy_citation_action = self.cite_menu.addAction("Copy citation")
        self.copy_bibtex_action = self.cite_menu.addAction("Copy BibTeX")
        self.copy_availability_action = self.cite_menu.addAction("Copy data availability statement")
        self.copy_citation_action.triggered.connect(lambda: self.copy_citation("citation"))
        self.copy_bibtex_action.triggered.connect(lambda: self.copy_citation("bibtex"))
        self.copy_availability_action.triggered.connect(lambda: self.copy_citation("availability"))
        self.cite_button = QToolButton(self)
        self.cite_button.setText("Cite")
        self.cite_button.setToolTip("Copy how a paper cites this version")
        self.cite_button.setMenu(self.cite_menu)
        self.cite_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setToolTip("Ask the DOI service again (after fixing the credentials in Settings)")
        self.retry_button.clicked.connect(self.retry_publication)
        self.publish_button = QPushButton("Publish…", self)
        self.publish_button.setToolTip("Freeze this version for good and give it a DOI, to cite in a paper")
        self.publish_button.clicked.connect(self.publish_requested.emit)
        self.publication_row = QHBoxLayout()
        self.publication_row.addWidget(self.publication_label, 1)
        for widget in (self.retry_button, self.cite_button, self.publish_button):
            self.publication_row.addWidget(widget)
            widget.hide()

    def _action(self, text: str, keys: QKeySequence.StandardKey, slot: Any) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    # -- opening ---------------------------------------------------------------------------------
    @property
    def set_id(self) -> str | None:
        return None if self.draft is None else self.draft.set_id

    def open_set(self, set_id: str) -> None:
        """Show a set at its head version; pending edits of the set shown before are dropped."""
        sets = self.service.sets
        rs = sets.get(set_id)
        base = sets.version(set_id, rs.head).selection if rs.head else Selection()
        self.draft = Draft(set_id, base, rs.head)
        self._resolved = None
        if self._notes is not None and self._notes[0] != base:
            self._notes = None
        self._show_title(rs.name)
        self._refresh_pending()
        self._load_version()

    def retitle(self) -> None:
        """Show the open set's name again (it may have been renamed); the edits stay."""
        if self.draft is None:
            return
        try:
            rs = self.service.sets.find(self.draft.set_id)
        except ClusterUnavailable:
            return
        if rs is not None:
            self._show_title(rs.name)

    def _show_title(self, name: str) -> None:
        assert self.draft is not None
        head = self.draft.base_version
        self.title.setText(f"<b>{name}</b> — {'version ' + str(head) if head else 'no version yet'}")
        self.show_publication()

    # -- publication -----------------------------------------------------------------------------
    @property
    def shown_version(self) -> int | None:
        """The version shown (the open set's head), or None."""
        return None if self.draft is None else self.draft.base_version

    def show_publication(self) -> None:
        """Show whether the version shown is published, and its DOI's state (a local read)."""
        draft, record = self.draft, None
        if draft is not None and draft.base_version is not None:
            try:
                if draft.base_version in self.service.sets.get(draft.set_id).published:
                    record = self.service.publishing.get(draft.set_id, draft.base_version)
            except MediatorError:  # gone, or the cluster is joining: the next event shows it
                record = None
        self.publication = record
        self.publish_button.setVisible(
            draft is not None and draft.base_version is not None and record is None
        )
        self.cite_button.setVisible(record is not None)
        self.retry_button.setVisible(record is not None and record.doi_state == "failed")
        if record is None:
            self.publication_label.setText("")
            self.publication_label.hide()
            return
        self.publication_label.show()
        status = record.status()
        if record.doi_state == "findable" and record.doi:
            doi = html.escape(record.doi)
            text = f"Published · DOI <a href='https://doi.org/{doi}'>{doi}</a>"
        elif record.doi_state == "failed":
            reason = html.escape(status.removesuffix("; retry"))
            text = f"Published · <span style='color:#b00020'>DOI {reason}</span>"
        elif record.doi_state == "queued":
            text = f"Published · <span style='color:#555'>DOI {html.escape(status)}</span>"
        else:
            text = f"Published · {html.escape(status)}"
        self.publication_label.setText(text)
        self.publication_label.setToolTip(record.error or status)

    def copy_citation(self, kind: str = "citation") -> None:
        """Put the shown version's citation on the clipboard (read on a worker: the source
        collections' DOIs come from the archives). ``kind``: citation, bibtex or availability."""
        draft = self.draft
        if draft is None or draft.base_version is None or self.publication is None:
            self.messages.error("Publish this version first, then cite it.")
            return
        set_id, version = draft.set_id, draft.base_version

        def copied(citation: Citation) -> None:
            text = {"citation": citation.text, "bibtex": citation.bibtex}.get(kind, citation.availability)
            clipboard = QApplication.clipboard()
            clipboard.setText(text)
            names = {"citation": "citation", "bibtex": "BibTeX"}
            self.messages.info(
                f"Copied the {names.get(kind, 'data availability statement')} of version {version}"
            )
            self.citation_copied.emit(kind, text)

        self.runner.run(
            self.service.publishing.citation, set_id, version, done=copied, failed=self.messages.failed
        )

    def retry_publication(self) -> None:
        """Ask the DOI service again for the shown version (its queue tries at once)."""
        draft = self.draft
        if draft is None or draft.base_version is None:
            return
        self.retry_button.setEnabled(False)

        def done(_: object) -> None:
            self.retry_button.setEnabled(True)
            self.show_publication()

        def failed(error: BaseException) -> None:
            self.retry_button.setEnabled(True)
            self.messages.failed(error, prefix="Could not retry: ")

        self.runner.run(
            self.service.publishing.retry, draft.set_id, draft.base_version, done=done, failed=failed
        )

    def _load_version(self) -> None:
        assert self.draft is not None
        self._job += 1
        job, draft = self._job, self.draft
        self.model.set_tree(None)
        self._version_leaves = None
        self._warn("")
        if draft.base_version is None:
            self.state.setText("Empty: drag collections, patients, studies or series here from the archives.")
            return
        self.state.setText("Loading…")
        manifest_id = self.service.sets.version(draft.set_id, draft.base_version).manifest_id
        summary = self.service.sets.tree(manifest_id)
        if summary is not None:
            self.model.set_summary(summary)
            self._expand_first()
            total = sum(n.leaves for n in summary.sources())
            size = sum(n.size for n in summary.sources())
            self._version_leaves = total
            self._warn(EMPTY_VERSION if total == 0 else "")
            self.state.setText(f"{total:,} series, {human_bytes(size)} (loading the details…)")
            self.painted_first.emit()

        def load() -> tuple[Manifest, ManifestTree]:
            manifest = self.service.sets.manifest(manifest_id)
            return manifest, ManifestTree(manifest)

        def loaded(result: tuple[Manifest, ManifestTree]) -> None:
            self._show(job, result[1], version=True)
            self._count(job, result[0])

        self.runner.run(load, done=loaded, failed=self._failed)

    def _show(self, job: int, tree: ManifestTree, *, version: bool = False) -> None:
        """Show a loaded tree: the version's (``version``), or what the draft resolves to."""
        if job != self._job:
            return
        self.model.set_tree(tree)
        self._expand_first()
        changed = self.draft is not None and self.draft.changed
        if version:
            self._version_leaves = len(tree)
        if len(tree) == 0:
            self._warn(EMPTY_CHANGES if changed else EMPTY_VERSION)
        else:
            self._warn("")
        pending = " (with pending changes)" if changed else ""
        self.state.setText(f"{len(tree):,} series, {human_bytes(tree.total_size)}{pending}")
        self.painted_first.emit()
        self.resolved.emit()

    def _count(self, job: int, manifest: Manifest) -> None:
        """Count the set's composition on a worker, then draw it."""
        if job == self._job:
            self.runner.run(
                composition, manifest, self.service.archives, done=lambda c: self._compose(job, c)
            )

    def _compose(self, job: int, made: Composition) -> None:
        """Draw the set's composition (a newer load's wins)."""
        if job != self._job:
            return
        modality, archive, collection = self.charts.charts
        modality.set_values(made.modalities)
        archive.set_values(made.archives)
        collection.set_values(made.collections)
        self.charts.setVisible(bool(made.archives))
        self.composed = made

    def _fetch_labels(self, source_id: str, path: tuple[str, ...]) -> None:
        """Ask the archive for the labels of an entry's children (one browse, on a worker)."""

        def fetch() -> None:
            page = self.service.archives.browse(source_id, path, limit=LABEL_PAGE)
            LABELS.remember(source_id, path, page.items)

        self.runner.run(fetch, done=lambda _: self.model.labels_changed(), failed=lambda _: None)

    def _preview(self, index: QModelIndex) -> None:
        entry = self.model.entry(index) if index.isValid() else None
        value = entry.value if entry is not None else None
        if value is None or not value.is_leaf:
            self.preview.clear()
            return
        self.preview.show_leaf(value.source_id, value.path, LABELS.label(value.source_id, value.path) or "")

    def copy_uids(self) -> list[str]:
        """Put the keys (UIDs) of the selected entries on the clipboard, one a line."""
        rows = [i for i in self.tree.selectionModel().selectedIndexes() if i.column() == 0]
        if not rows and self.tree.currentIndex().isValid():
            rows = [self.tree.currentIndex().siblingAtColumn(0)]
        keys = [p.path[-1] for p in (self.model.pointer(i) for i in rows) if p is not None and p.path]
        if keys:
            QApplication.clipboard().setText("\n".join(keys))
        return keys

    def _warn(self, text: str) -> None:
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    def selects_nothing(self) -> bool:
        """Whether the version shown (the open set's head) selects no leaf: downloading it would
        fetch nothing. False when no set is open or it has no version yet."""
        draft = self.draft
        if draft is None or draft.base_version is None:
            return False
        if self._version_leaves is None:  # the tree is still loading: its cached summary says
            manifest_id = self.service.sets.version(draft.set_id, draft.base_version).manifest_id
            self._version_leaves = self.service.sets.totals(manifest_id)[0]
        return self._version_leaves == 0

    def _expand_first(self) -> None:
        if self.model.rowCount() == 1:
            self.tree.expand(self.model.index(0, 0))

    def _failed(self, error: BaseException) -> None:
        self.messages.failed(error)  # a bug is raised again here
        self.state.setText(f"Could not load: {error}")

    # -- editing ---------------------------------------------------------------------------------
    def add(self, pointers: list[Pointer]) -> None:
        self._edit(Edit(add=tuple(pointers)))

    def remove_selected(self) -> None:
        indexes = [i for i in self.tree.selectionModel().selectedIndexes() if i.column() == 0]
        pointers = [p for p in (self.model.pointer(i) for i in indexes) if p is not None]
        if pointers:
            self._edit(Edit(remove=tuple(pointers)))

    def _edit(self, edit: Edit) -> None:
        if self.draft is None:
            self.messages.error("Choose or create a set first, then drop archive items on it.")
            return
        try:
            for pointer in (*edit.add, *edit.remove):
                self.service.archives.check_pointer(pointer)
        except MediatorError as exc:
            self.messages.error(str(exc))
            return
        if self.draft.apply(edit):
            self._changed()

    def undo(self) -> None:
        if self.draft is not None and self.draft.undo() is not None:
            self._changed()

    def redo(self) -> None:
        if self.draft is not None and self.draft.redo() is not None:
            self._changed()

    def discard(self) -> None:
        if self.draft is not None:
            self.open_set(self.draft.set_id)

    def _changed(self) -> None:
        self._refresh_pending()
        self._resolve()

    def _refresh_pending(self) -> None:
        self.pending.clear()
        if self.draft is not None:
            for edit in self.draft.edits:
                text = edit_text(edit, self.table_label)
                self.pending.addItem(text)
                self.pending.item(self.pending.count() - 1).setToolTip(text)  # long cohorts
        self._update_controls()
        self._show_joins()

    def _show_joins(self) -> None:
        """List the selection's clinical cohorts, with what their joins left out when known."""
        selection = self.draft.selection if self.draft is not None else Selection()
        cohorts = [pointer_text(p, self.table_label) for p in selection.includes if is_join(p)]
        notes = self._notes[1] if self._notes is not None and self._notes[0] == selection else []
        lines = [html.escape(c, quote=False) for c in cohorts]
        lines += [f"<span style='color:#b35900'>⚠ {html.escape(n, quote=False)}</span>" for n in notes]
        self.joins.setText("<br>".join(lines))
        self.joins.setVisible(bool(cohorts or notes))

    def _update_controls(self) -> None:
        draft = self.draft
        self.undo_button.setEnabled(bool(draft and draft.can_undo))
        self.redo_button.setEnabled(bool(draft and draft.can_redo))
        self.discard_button.setEnabled(bool(draft and draft.edits))
        self.commit_button.setEnabled(bool(draft and draft.changed))

    def _resolve(self) -> None:
        assert self.draft is not None
        self._job += 1
        job, selection = self._job, self.draft.selection
        self.state.setText("Resolving against the archives…")

        def resolve() -> tuple[Manifest, ManifestTree, list[str]]:
            manifest, expanded = self.service.archives.resolve_joined(selection)
            return manifest, ManifestTree(manifest), expanded.notes(manifest)

        def done(result: tuple[Manifest, ManifestTree, list[str]]) -> None:
            if job != self._job:
                return
            self._resolved = (selection, result[0])
            self._notes = (selection, result[2])
            self._show_joins()
            self._show(job, result[1])
            self._count(job, result[0])

        self.runner.run(resolve, done=done, failed=self._failed)

    # -- committing ------------------------------------------------------------------------------
    def commit(self, message: str) -> None:
        """Make the pending edits a version (on a worker); ``committed`` tells the new number."""
        draft = self.draft
        if draft is None or not draft.changed:
            return
        selection, base = draft.selection, draft.base_version
        resolved = self._resolved
        manifest = resolved[1] if resolved is not None and resolved[0] == selection else None
        self.commit_button.setEnabled(False)
        self.state.setText("Committing…")

        def commit() -> int:
            chosen = manifest if manifest is not None else self.service.archives.resolve(selection)
            return self.service.sets.commit(draft.set_id, selection, chosen, message, expected_head=base)

        def failed(error: BaseException) -> None:
            self._update_controls()
            if isinstance(error, ConflictError) and self.draft is draft:
                head = self.service.sets.get(draft.set_id).head
                draft.rebase(
                    self.service.sets.version(draft.set_id, head).selection if head else Selection(), head
                )
                self._changed()
                self.messages.error(
                    f"Someone committed version {head} meanwhile. Your changes now build on it; "
                    "check them and commit again."
                )
                return
            self._failed(error)

        def done(number: int) -> None:
            self.message.clear()
            if self.draft is draft:
                self.open_set(draft.set_id)
            self.committed.emit(number)

        self.runner.run(commit, done=done, failed=failed)
