"""The main window: sets on the left, the open set in the middle, its details on the right, the
archives and the downloads in docks. Everything slow runs on workers; core events arrive through
the event bridge as queued signals; messages for the user come through the message bridge.

Archive updates (``service.tracking``): *Set > Check for updates* checks the chosen set on a
worker; the sets list marks sets with an update ("· update") or a failed check; *Show archive
update…* (and the details panel's button) opens the update view (``ui/update_view.py``).

Clinical tables (``service.clinical``): *File > Add clinical table…*, the clinical panel's "Add
table…" and a dropped CSV, TSV or Excel file that is no manifest open the table preview
(``ui/clinical_dialog.py``); the clinical panel (a tab beside the archives) filters a table's
patients and joins them to archives, and its cohort drags onto the open set.

Radiogenomic cohorts (``service.archives.match``): *File > Find matching data in other archives…*
and the archive tree's context menu look the selected patients (or the clinical panel's cohort, when
that panel is in front) up in the other archives (``ui/match_dialog.py``); its "Add to set" puts
the cohort's rules into the open set's pending edits, "New set from these…" into a new set's.

Publishing (``service.publishing``): *Set > Publish with a DOI…* (and the set view's "Publish…")
opens the publish form (``ui/publish_dialog.py``) for the open set's shown version; the set view and
the version history then show its DOI as the node's queue mints it (``Published`` events)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop import __version__
from mediator_desktop.core.clinical import SOURCE_ID as TABLES
from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.errors import ClusterUnavailable, MediatorError, ValidationError
from mediator_desktop.core.events import (
    ClusterEvent,
    ClusterJoined,
    ClusterLeft,
    DownloadEvent,
    DownloadFailed,
    DownloadFinished,
    DownloadProgressed,
    Event,
    SetEvent,
    SettingsChanged,
    SourceIndexing,
    SourcesChanged,
    StateReloaded,
    TableAdded,
)
from mediator_desktop.core.imports import read_manifest_file
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import PublishedRecord, TableVersion, Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import ImportResult, Outcome, Service
from mediator_desktop.core.tracking import CheckOutcome
from mediator_desktop.ui import autostart
from mediator_desktop.ui.add_source_dialog import AddSourceDialog
from mediator_desktop.ui.archive import ArchiveBrowser
from mediator_desktop.ui.bridge import EventBridge
from mediator_desktop.ui.clinical_dialog import TABLE_FILTER, TABLE_SUFFIXES, AddTableDialog
from mediator_desktop.ui.clinical_panel import ClinicalPanel
from mediator_desktop.ui.diff_view import DiffDialog, escaped
from mediator_desktop.ui.downloads import DownloadsPanel
from mediator_desktop.ui.errors import Level, Message, MessageBridge
from mediator_desktop.ui.match_dialog import MatchDialog
from mediator_desktop.ui.notify import DesktopNotifier
from mediator_desktop.ui.peers import SET_MIME, PeersPanel, set_mime
from mediator_desktop.ui.publish_dialog import PublishDialog
from mediator_desktop.ui.set_view import EMPTY_VERSION, SetView
from mediator_desktop.ui.settings_dialog import SettingsDialog
from mediator_desktop.ui.share_dialog import ShareDialog
from mediator_desktop.ui.tray import TrayController, TrayWrapper
from mediator_desktop.ui.update_view import UpdateDialog, UpdatesDialog
from mediator_desktop.ui.workers import Runner

#: The sidebar's groups, as ``Sets.list`` scopes.
GROUPS = (
    ("mine", "My sets"),
    ("shared", "Shared with me"),
    ("cluster", "Cluster"),
    ("public", "Public"),
    ("published", "Published"),
    ("following", "Following"),
)


#: The sets list's marks after a set's name and version.
UPDATE_BADGE = "  ·  update"
FAILED_BADGE = "  ·  check failed"


def check_line(outcomes: list[CheckOutcome]) -> str:
    """The status bar's line after a check: the set's own line, or counts over many sets."""
    if not outcomes:
        return "No sets to check: follow a set, or download it, to hear about its archive updates."
    if len(outcomes) == 1:
        return outcomes[0].line()
    found = sum(1 for o in outcomes if o.new)
    waiting = sum(1 for o in outcomes if o.drift is not None and not o.new and not o.error)
    failed = [o for o in outcomes if o.error]
    parts = [f"{found} update{'' if found == 1 else 's'} found"]
    if waiting:
        parts.append(f"{waiting} waiting")
    if failed:
        parts.append(f"{len(failed)} failed ({failed[0].name}: {failed[0].error})")
    return f"{len(outcomes)} sets checked: " + ", ".join(parts)


log = logging.getLogger(__name__)


def _local_files(mime: QMimeData) -> list[Path]:
    """The files (and exported RO-Crate or bag folders) a drop brings; none for a set dragged from
    our own sidebar, which carries its export file for other applications only."""
    if not mime.hasUrls() or mime.hasFormat(SET_MIME):
        return []
    urls = mime.urls()
    if not all(url.isLocalFile() for url in urls):
        return []
    paths = [Path(url.toLocalFile()) for url in urls]
    return [p for p in paths if p.is_file() or (p.is_dir() and _exported_folder(p))]


def _exported_folder(path: Path) -> bool:
    return (path / "ro-crate-metadata.json").is_file() or (path / "bagit.txt").is_file()


class Banner(QWidget):
    """A non-modal message across the top of the window: what went wrong and what to do."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss", self)
        close.setToolTip("Hide this message (Esc)")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.setAutoFillBackground(True)
        self.setStyleSheet(
            "Banner { background: palette(highlight); } QLabel { color: palette(highlighted-text); }"
        )
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class SidebarTree(QTreeWidget):
    """The sets, grouped; a set can be dragged onto a person or a machine in the peers panel, or
    out of the window as a file (its set export, ``NAME_vN.json``: a file manager copies it, a mail
    attaches it, ``mediator sets import`` or a drop on another MEDIator window makes the set again)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setAccessibleName("Replica sets")
        # "RIDER CT … · v3": a long name keeps its start and its version; the tooltip has it all.
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        #: Writes a set's export for a drag and returns the file (set by the window).
        self.export_file: Callable[[str], Path] | None = None

    def mimeTypes(self) -> list[str]:
        return [SET_MIME, "text/uri-list"]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:
        ids = [i.data(0, Qt.ItemDataRole.UserRole) for i in items]
        set_id = next((i for i in ids if isinstance(i, str)), "")
        mime = set_mime(set_id)
        if set_id and self.export_file is not None:
            try:
                mime.setUrls([QUrl.fromLocalFile(str(self.export_file(set_id)))])
            except (MediatorError, OSError) as exc:  # no version yet: it still drops on a peer
                log.info("no export file to drag for %s: %s", set_id, exc)
        return mime


class SetDetails(QWidget):
    """Description, owner, editors, visibility, provenance, archive updates and version history of
    a set. Signals: update_requested(str): "Show update…" was pressed for the set."""

    update_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.set_id: str | None = None
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop)
        # The archive updates of the set: up to date, an update (with its button), a failed check.
        self.updates = QLabel("", self)
        self.updates.setWordWrap(True)
        self.updates.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.updates.setAccessibleName("Archive updates")
        self.update_button = QPushButton("Show update…", self)
        self.update_button.setToolTip(
            "What the archive holds now against this version: update the set, download the changes, "
            "or decline"
        )
        self.update_button.clicked.connect(
            lambda: self.update_requested.emit(self.set_id) if self.set_id else None
        )
        self.update_button.hide()
        self.history = QListWidget(self)
        self.history.setAccessibleName("Version history")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.updates)
        layout.addWidget(self.update_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(QLabel("Versions:", self))
        layout.addWidget(self.history, 1)

    def show_set(self, service: Service, set_id: str | None) -> None:
        self.history.clear()
        self.set_id = set_id
        self.updates.setText("")
        self.update_button.hide()
        if set_id is None:
            self.summary.setText("")
            return
        try:
            rs = service.sets.get(set_id)
        except MediatorError:
            self.summary.setText("This set is gone, or no longer shared with you.")
            return
        self._show_updates(service, set_id, rs.head)
        users = service.users()
        lines = [f"<b>{rs.name}</b>"]
        if rs.description:
            lines.append(rs.description)
        lines.append(f"Owner: {users.get(rs.owner, rs.owner[:12])}")
        lines.append(f"Visibility: {rs.visibility.value}")
        if rs.editors:
            lines.append("Editors: " + ", ".join(users.get(k, k[:12]) for k in sorted(rs.editors)))
        if rs.forked_from is not None:
            lines.append(f"Forked from {rs.forked_from[0][:12]}…, version {rs.forked_from[1]}")
        if rs.published:
            lines.append("Published versions: " + ", ".join(map(str, sorted(rs.published))))
        self.summary.setText("<br>".join(lines))
        published = {}
        for number in rs.published:
            try:
                published[number] = service.publishing.get(set_id, number)
            except MediatorError:
                continue
        for version in reversed(service.sets.history(set_id)):
            when = datetime.fromtimestamp(version.time).strftime("%Y-%m-%d %H:%M")
            who = users.get(version.author, version.author[:12])
            line = f"v{version.number} · {when} · {who}: {version.message or '(no message)'}"
            record = published.get(version.number)
            if record is not None:
                line += f"  ·  {record.status().removesuffix('; retry')}"
            self.history.addItem(line)
            if record is not None:
                self.history.item(self.history.count() - 1).setToolTip(record.error or record.status())

    def _show_updates(self, service: Service, set_id: str, head: int | None) -> None:
        if head is None:
            return
        status = service.tracking.status(set_id)
        check = status.last_check
        lines = []
        if check is not None and check.error:
            failed = f"Last check failed: {check.error}"
            lines.append(f"<span style='color:#b00020'><b>{escaped(failed)}</b></span>")
        if status.drift is not None:
            state = f" ({escaped(status.drift.state)})" if status.drift.state else ""
            lines.append(f"<b>Archive update since v{head}:</b> {escaped(status.drift.summary)}{state}")
        elif status.declined:
            lines.append("Archive update declined: the set keeps its version.")
        elif check is None:
            lines.append(f"Archive updates: v{head} not checked yet (Set > Check for updates)")
        elif not lines:
            lines.append(f"Archive updates: {escaped(status.line)}")  # checked …: up to date
        if check is not None and check.error and check.ok_time:
            lines.append(f"Last good check: {datetime.fromtimestamp(check.ok_time):%Y-%m-%d %H:%M}")
        self.updates.setText("<br>".join(lines))
        # A declined update can still be looked at (and accepted) from here.
        self.update_button.setVisible(status.drift is not None or status.declined)


class MainWindow(QMainWindow):
    """Top-level window over the service of one running node. Signals: imported(ImportResult),
    updates_checked(list[CheckOutcome]) when a check for updates asked here ended.

    Args:
        service: the node's one door (``core.service``).
        tray: the system tray (the app's ``QtTray``), or None for none.
        messages: where widgets tell the user things (one is made when None); the window shows
            what was told before it was up, then each message as it comes.
        notifier: the desktop's notification service (with a tray; None: the tray's balloons).
    """

    imported = Signal(object)
    updates_checked = Signal(list)

    def __init__(
        self,
        service: Service,
        tray: TrayWrapper | None = None,
        messages: MessageBridge | None = None,
        notifier: DesktopNotifier | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.messages = messages if messages is not None else MessageBridge(self)
        self._quitting = False
        self._closed = False
        self.setWindowTitle("MEDIator Desktop")
        self.resize(1280, 800)
        self.runner = Runner(self, workers=2, name="window")
        # Checks ask archives (the network): they queue on their own worker, not before a rename.
        self.check_runner = Runner(self, workers=1, name="update-checks")
        self.tray: TrayController | None = None
        self.update_dialog: UpdateDialog | None = None
        self.updates_dialog: UpdatesDialog | None = None
        #: The status bar's line about the last check for updates (it shows for a while).
        self.check_text = ""
        self.banner = Banner(self)
        self.sidebar = SidebarTree(self)
        self.sidebar.export_file = self.drag_export
        self._drag_folder: tempfile.TemporaryDirectory[str] | None = None
        self.set_view = SetView(service, self.messages, self)
        #: Whether each sidebar group is expanded, as the user left it (kept across refreshes).
        self._expanded: dict[str, bool] = {}
        self.sidebar.itemExpanded.connect(lambda item: self._group_toggled(item, True))
        self.sidebar.itemCollapsed.connect(lambda item: self._group_toggled(item, False))
        # A newer version of the open set than the one shown (a colleague committed it).
        self.stale = QLabel("", self.set_view)
        self.stale.setObjectName("staleVersion")
        self.stale.setAccessibleName("Newer version")
        self.stale.setWordWrap(True)
        self.stale.setTextFormat(Qt.TextFormat.RichText)
        self.stale.setStyleSheet(
            "QLabel#staleVersion { background: palette(highlight); "
            "color: palette(highlighted-text); padding: 4px; }"
        )
        self.stale.linkActivated.connect(lambda _: self.show_head())
        self.stale.hide()
        view_layout = self.set_view.layout()
        if isinstance(view_layout, QVBoxLayout):  # under the set's title
            view_layout.insertWidget(view_layout.indexOf(self.set_view.title) + 1, self.stale)
        self.details = SetDetails(self)
        splitter = QSplitter(self)
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.set_view)
        splitter.addWidget(self.details)
        # Set names with their marks ("· v3  ·  update") stay readable beside the docks.
        self.sidebar.setMinimumWidth(260)
        self.details.setMinimumWidth(200)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([360, 600, 280])
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.archives = ArchiveBrowser(service.archives, self.messages, self, previews=self.set_view.previews)
        self.downloads = DownloadsPanel(service.downloads, self.messages, self)
        self.archives_dock = self._dock("Archives", self.archives, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.clinical = ClinicalPanel(service, self.messages, self)
        self.clinical_dock = self._dock("Clinical", self.clinical, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.archives_dock, self.clinical_dock)
        self.archives_dock.raise_()
        self.downloads_dock = self._dock("Downloads", self.downloads, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.peers = PeersPanel(service, self.messages, self)
        self.peers_dock = self._dock("Peers", self.peers, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.archives_dock, self.peers_dock], [340, 220], Qt.Orientation.Horizontal)
        self.resizeDocks([self.downloads_dock], [170], Qt.Orientation.Vertical)
        self.peers.share_requested.connect(self.share_with)
        self.peers.cluster_share_requested.connect(self.share_with_cluster)
        self.archives.model.loaded.connect(self._archives_loaded)
        self.archives.add_requested.connect(self.set_view.add)
        self.archives.add_source_requested.connect(self.show_add_source)
        self.archives.match_requested.connect(self.show_match)
        self.clinical.add_requested.connect(self.set_view.add)
        self.clinical.add_table_requested.connect(self.ask_add_table)
        self.set_view.committed.connect(lambda n: self.messages.info(f"Committed version {n}"))
        self.set_view.publish_requested.connect(self.show_publish)
        self.sidebar.currentItemChanged.connect(self._set_chosen)
        self.details.update_requested.connect(self.show_update)
        self._make_actions()
        self.bridge = EventBridge(service.events, self)
        self.bridge.event_received.connect(self.on_event)
        self.refresh()
        self._show_cluster()
        if tray is not None:
            self.tray = TrayController(self, tray, notifier)
        self.setAcceptDrops(True)  # manifest files dropped anywhere on the window become sets
        self.messages.shown.connect(self._show_message)
        self.messages.flush()  # what was told before the window was up

    def _show_message(self, message: Message) -> None:
        if message.level is Level.ERROR:
            self.banner.show_message(message.text)
        else:
            self.statusBar().showMessage(message.text, 5000)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _make_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self.new_set_action = self._action(menu, "&New set…", QKeySequence.StandardKey.New, self.ask_new_set)
        self.import_action = self._action(
            menu,
            "&Import manifest…",
            QKeySequence("Ctrl+I"),
            self.ask_import,
            "A new set from a .tcia, .s5cmd, GDC or set file",
        )
        self.add_table_action = self._action(
            menu,
            "Add clinical &table…",
            QKeySequence("Ctrl+T"),
            self.ask_add_table,
            "A CSV, TSV or Excel table of patients, to choose patients by and join to archives",
        )
        self.match_action = self._action(
            menu,
            "Find &matching data in other archives…",
            QKeySequence("Ctrl+M"),
            self.match_selected,
            "The selected patients (archive items, or the clinical panel's cohort) in the other "
            "archives: what each holds for them, to add to a set",
        )
        # The clinical panel's cohort: its count and its drag handle offer the same search.
        for widget in (self.clinical.count_label, self.clinical.drag_source):
            widget.addAction(self.match_action)
            widget.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        file_menu = menu
        # What applies to the chosen set.
        menu = self.menuBar().addMenu("&Set")
        self.rename_action = self._action(
            menu,
            "&Rename set…",
            QKeySequence("F2"),
            self.ask_rename,
            "Give the chosen set a new name",
        )
        self.download_action = self._action(
            menu,
            "&Download set…",
            QKeySequence("Ctrl+D"),
            self.ask_download,
            "Download the open set into a folder",
        )
        self.verify_download_action = self._action(
            menu,
            "&Verify downloaded files…",
            QKeySequence(),
            self.ask_verify_download,
            "Re-hash every file of the open set in a download folder against its checksum and fetch "
            "again what differs",
        )
        self.export_action = self._action(
            menu,
            "&Export set…",
            QKeySequence("Ctrl+E"),
            self.ask_export,
            "Save the open set as a file others can import",
        )
        self.share_action = self._action(
            menu,
            "S&hare…",
            QKeySequence("Ctrl+Shift+S"),
            self.show_share,
            "Who sees the open set, who may edit it",
        )
        self.compare_action = self._action(
            menu,
            "&Compare versions…",
            QKeySequence("Ctrl+Shift+D"),
            self.show_diff,
            "Compare two versions of the open set",
        )
        self.publish_action = self._action(
            menu,
            "&Publish with a DOI…",
            QKeySequence("Ctrl+Shift+P"),
            self.show_publish,
            "Freeze the open set's version for good and give it a DOI, to cite in a paper",
        )
        menu.addSeparator()
        self.check_action = self._action(
            menu,
            "Check for &updates",
            QKeySequence("Ctrl+U"),
            self.check_chosen,
            "Ask the archives whether the data behind the chosen set changed since its version",
        )
        self.show_update_action = self._action(
            menu,
            "Show archive updat&e…",
            QKeySequence("Ctrl+Shift+U"),
            self.show_update,
            "What the archive holds now against the set's version: update, download the changes, or decline",
        )
        menu = file_menu
        menu.addSeparator()
        self.add_source_action = self._action(
            menu,
            "Add &archive…",
            QKeySequence(),
            self.show_add_source,
            "Browse another archive: a local folder, a DICOMweb server, TCIA…",
        )
        self.settings_action = self._action(
            menu,
            "&Settings…",
            QKeySequence.StandardKey.Preferences,
            self.show_settings,
            "Folders, archives, cluster",
        )
        self.settings_action.setShortcuts(
            [QKeySequence(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")]
        )
        menu.addSeparator()
        self._action(menu, "&Quit", QKeySequence.StandardKey.Quit, self.quit)
        edit = self.menuBar().addMenu("&Edit")
        for action in (self.set_view.undo_action, self.set_view.redo_action, self.set_view.remove_action):
            edit.addAction(action)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.archives_dock.toggleViewAction())
        view.addAction(self.clinical_dock.toggleViewAction())
        view.addAction(self.downloads_dock.toggleViewAction())
        view.addAction(self.peers_dock.toggleViewAction())
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main toolbar")
        for action in (
            self.new_set_action,
            self.download_action,
            self.share_action,
            self.compare_action,
            self.check_action,
        ):
            toolbar.addAction(action)
        # The sets list's context menu: what applies to the set under the mouse (it is chosen).
        self.sidebar.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for action in (
            self.rename_action,
            self.share_action,
            self.export_action,
            self.compare_action,
            self.publish_action,
            self.check_action,
            self.show_update_action,
        ):
            self.sidebar.addAction(action)
        self._update_actions()

    def _action(
        self,
        menu: object,
        text: str,
        keys: QKeySequence | QKeySequence.StandardKey,
        slot: object,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        action.setToolTip(tip or text.replace("&", "").rstrip("…"))
        action.triggered.connect(slot)
        menu.addAction(action)  # type: ignore[attr-defined]
        return action

    # -- sets ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the sets again (a local read) and rebuild the sidebar, keeping the choice."""
        sets = self.service.sets
        chosen = self.set_view.set_id
        try:
            groups = [
                (scope, title, [(rs, *self._badges(rs.id, rs.head)) for rs in sets.list(scope)])
                for scope, title in GROUPS
            ]
        except ClusterUnavailable:  # joining or leaving: the events that end it refresh again
            return
        self.sidebar.blockSignals(True)
        self.sidebar.clear()
        again: QTreeWidgetItem | None = None
        for scope, title, rows in groups:
            group = QTreeWidgetItem(self.sidebar, [f"{title} ({len(rows)})"])
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            for rs, badges, notes in rows:
                head = f"v{rs.head}" if rs.head else "empty"
                item = QTreeWidgetItem(group, [f"{rs.name}  ·  {head}{badges}"])
                item.setData(0, Qt.ItemDataRole.UserRole, rs.id)
                item.setToolTip(0, "\n".join([rs.name, f"{rs.visibility.value} set, {head}", *notes]))
                if UPDATE_BADGE in badges:  # an update waits for you: it stands out
                    font = QFont(item.font(0))
                    font.setBold(True)
                    item.setFont(0, font)
                if rs.id == chosen and again is None:
                    again = item
            group.setData(0, Qt.ItemDataRole.UserRole + 1, scope)
            default = scope in ("mine", "shared", "cluster")
            group.setExpanded(bool(rows) and self._expanded.get(scope, default))
        if again is not None:
            self.sidebar.setCurrentItem(again)
        self.sidebar.blockSignals(False)
        self.set_view.retitle()
        self.details.show_set(self.service, chosen)
        self._update_actions()
        self._check_stale()

    def _group_toggled(self, item: QTreeWidgetItem, expanded: bool) -> None:
        scope = item.data(0, Qt.ItemDataRole.UserRole + 1)
        if isinstance(scope, str) and not self.sidebar.signalsBlocked():
            self._expanded[scope] = expanded

    def select_in_sidebar(self, set_id: str) -> None:
        """Choose a set's entry in the sidebar (its group opens), without opening it again."""
        for index in range(self.sidebar.topLevelItemCount()):
            group = self.sidebar.topLevelItem(index)
            if group is None:
                continue
            for row in range(group.childCount()):
                item = group.child(row)
                if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == set_id:
                    self.sidebar.blockSignals(True)
                    group.setExpanded(True)
                    self.sidebar.setCurrentItem(item)
                    self.sidebar.blockSignals(False)
                    self.sidebar.scrollToItem(item)
                    scope = group.data(0, Qt.ItemDataRole.UserRole + 1)
                    if isinstance(scope, str):
                        self._expanded[scope] = True
                    self._update_actions()
                    return

    # -- a newer version of the open set ---------------------------------------------------------
    def _check_stale(self) -> None:
        """The open set got a newer version than the one shown (a colleague's commit): follow it
        when nothing is pending here, else say so ("version 4 by Bob is available — show it")."""
        view = self.set_view
        draft, set_id = view.draft, view.set_id
        rs = None if set_id is None else self.service.sets.find(set_id)
        if draft is None or rs is None or rs.head is None or rs.head == draft.base_version:
            self.stale.hide()
            return
        try:
            author = self.service.sets.version(rs.id, rs.head).author
        except MediatorError:  # joining or leaving a cluster: the events that end it come here again
            return
        if not draft.changed:
            log.info("following %s to version %s", rs.name, rs.head)
            self.open_set(rs.id)
            return
        if author == self.service.key_id:  # my own commit of these edits: the view reopens itself
            return
        who = self.service.users().get(author, author[:12])
        self.stale.setText(
            f"Version {rs.head} by {escaped(who)} is available — <a href='show'>show it</a> "
            "(your pending changes are kept on top of it)"
        )
        self.stale.setToolTip(f"You see version {draft.base_version} of {rs.name}")
        self.stale.show()

    def show_head(self) -> None:
        """Show the open set's newest version; pending changes are replayed on top of it."""
        view, draft = self.set_view, self.set_view.draft
        if draft is None:
            return
        if not draft.changed:
            self.open_set(draft.set_id)
            return
        sets = self.service.sets
        head = sets.get(draft.set_id).head
        draft.rebase(sets.version(draft.set_id, head).selection if head else Selection(), head)
        view.retitle()
        view._changed()  # the tree: the new version with the pending changes
        self.details.show_set(self.service, draft.set_id)
        self.stale.hide()

    def _badges(self, set_id: str, head: int | None) -> tuple[str, list[str]]:
        """Marks for archive updates and for downloads of the head version, with the longer notes."""
        badges, notes = "", []
        status = self.service.tracking.status(set_id)
        drift, check = status.drift, status.last_check
        if drift is not None:
            badges += UPDATE_BADGE
            state = f" ({drift.state})" if drift.state else ""
            notes.append(f"Archive update since v{head}: {drift.summary}{state}")
            notes.append("Right-click > Show archive update… to update the set or download the changes")
        elif status.declined:
            notes.append("Archive update declined: the set keeps its version")
        if check is not None and check.error:
            badges += FAILED_BADGE
            notes.append(f"Last check failed: {check.error}")
        elif check is not None and drift is None and not status.declined:
            notes.append(status.line[:1].upper() + status.line[1:])  # checked …: up to date
        jobs = [j for j in self.service.downloads.list() if j.set_id == set_id and j.version == head]
        if any(not j.finished for j in jobs):
            badges += "  ·  downloading"
        elif any(j.state == "done" for j in jobs):
            badges += "  ·  downloaded"
            notes += [f"Downloaded into {j.destination}" for j in jobs if j.state == "done"]
        return badges, notes

    def set_items(self, scope: str) -> list[QTreeWidgetItem]:
        """The sidebar's items of one group (for tests and keyboard navigation)."""
        index = [s for s, _ in GROUPS].index(scope)
        group = self.sidebar.topLevelItem(index)
        assert group is not None
        return [item for item in (group.child(i) for i in range(group.childCount())) if item is not None]

    def _set_chosen(self, item: QTreeWidgetItem | None, _: QTreeWidgetItem | None = None) -> None:
        set_id = None if item is None else item.data(0, Qt.ItemDataRole.UserRole)
        if not isinstance(set_id, str):
            self._update_actions()
            return
        self.open_set(set_id)
        self._update_actions()

    def _update_actions(self) -> None:
        """Enable "Show archive update" for a chosen set that has one (declined ones too)."""
        set_id = self.chosen_set()
        has = False
        if set_id is not None:
            try:
                has = self.service.tracking.drift(set_id) is not None
            except MediatorError:
                has = False
        self.show_update_action.setEnabled(has)
        self.check_action.setEnabled(set_id is not None)
        self.publish_action.setEnabled(self.set_view.shown_version is not None)

    def chosen_set(self) -> str | None:
        """The set chosen in the sidebar, else the open one."""
        item = self.sidebar.currentItem()
        set_id = None if item is None else item.data(0, Qt.ItemDataRole.UserRole)
        return set_id if isinstance(set_id, str) else self.set_view.set_id

    def open_set(self, set_id: str) -> None:
        """Show a set at its head (chosen in the sidebar too)."""
        try:
            self.set_view.open_set(set_id)
        except MediatorError as exc:
            self.messages.error(str(exc))
            return
        self.stale.hide()
        self.details.show_set(self.service, set_id)
        self.select_in_sidebar(set_id)

    def ask_new_set(self) -> None:
        name, ok = QInputDialog.getText(self, "New replica set", "Name:")
        if ok and name.strip():
            self.create_set(name.strip())

    def create_set(self, name: str, add: Sequence[Pointer] = ()) -> None:
        """Make a set (on a worker) and open it, ready for drops; ``add`` goes into its pending
        edits."""

        def created(set_id: str) -> None:
            self.refresh()
            self.open_set(set_id)
            if add and self.set_view.set_id == set_id:
                self.set_view.add(list(add))
                self.messages.info(f"Created {name!r}: commit to keep what was added")
                return
            self.messages.info(f"Created {name!r}: drag archive items onto it")

        self.runner.run(self.service.sets.create, name, done=created, failed=self.messages.failed)

    def ask_rename(self) -> None:
        set_id = self.chosen_set()
        rs = None if set_id is None else self.service.sets.find(set_id)
        if set_id is None or rs is None:
            self.messages.error("Choose a set first, then rename it.")
            return
        name, ok = QInputDialog.getText(self, "Rename the set", "New name:", text=rs.name)
        if ok and name.strip() and name.strip() != rs.name:
            self.rename_set(set_id, name.strip())

    def rename_set(self, set_id: str, name: str) -> None:
        """Give a set a new name (on a worker); the sidebar follows the set's change event."""
        self.runner.run(
            self.service.sets.rename,
            set_id,
            name,
            done=lambda _: self.messages.info(f"Renamed to {name!r}"),
            failed=self.messages.failed,
        )

    def share_with(self, set_id: str, key_id: str) -> None:
        """A set dropped on a person: they may now commit versions of it."""
        name = self.service.users().get(key_id, key_id[:12])
        self.runner.run(
            self.service.sets.grant_editor,
            set_id,
            key_id,
            done=lambda _: self.messages.info(f"{name} may now edit the set"),
            failed=self.messages.failed,
        )

    def share_with_cluster(self, set_id: str) -> None:
        """A set dropped on a machine: everyone in the cluster may read it."""
        self.runner.run(
            self.service.sets.set_visibility,
            set_id,
            Visibility.CLUSTER,
            done=lambda _: self.messages.info("Shared with the cluster"),
            failed=self.messages.failed,
        )

    # -- archive updates -------------------------------------------------------------------------
    def check_chosen(self) -> None:
        """Check for updates: the chosen set."""
        set_id = self.chosen_set()
        if set_id is None:
            self.messages.error("Choose a set first, then check it for archive updates.")
            return
        self.check_updates([set_id])

    def check_updates(self, set_ids: list[str] | None = None) -> None:
        """Ask the archives whether the data behind sets changed (default: every set you follow or
        own), on a worker; the status bar, the sets list and ``updates_checked`` tell the outcome."""
        if set_ids is not None and len(set_ids) == 1:
            rs = self.service.sets.find(set_ids[0])
            what = repr(rs.name) if rs is not None else "the set"
        else:
            what = "the sets you follow or own" if set_ids is None else f"{len(set_ids)} sets"
        self.statusBar().showMessage(f"Checking {what} for archive updates…")
        self.check_runner.run(
            self.service.tracking.check,
            set_ids,
            done=self._checked,
            failed=self.messages.handler(prefix="Could not check for updates: "),
        )

    def _checked(self, outcomes: list[CheckOutcome]) -> None:
        if self._closed:
            return
        self.check_text = check_line(outcomes)
        self.statusBar().showMessage(self.check_text, 30000)
        self.refresh()  # a check that found nothing new writes no event for the sidebar
        self.updates_checked.emit(outcomes)

    def show_update(self, set_id: str | None = None) -> UpdateDialog | None:
        """Open the update view of a set (default: the chosen one): its version against what the
        archives hold now, with Update set, Download changes and Decline (non-modal)."""
        set_id = set_id or self.chosen_set()
        if set_id is None:
            self.messages.error("Choose a set first, then look at its archive update.")
            return None
        current = self.update_dialog
        if (
            current is not None
            and current.set_id == set_id
            and current.isVisible()
            and current.target is None
        ):
            current.raise_()
            current.activateWindow()
            return current
        try:
            dialog = UpdateDialog(self.service, set_id, self.messages, self.bridge, self)
        except MediatorError as exc:
            self.messages.error(str(exc))
            return None
        dialog.updated.connect(self._update_accepted)
        dialog.declined.connect(self.refresh)
        dialog.download_started.connect(lambda _: self.downloads_dock.show())
        if current is not None:
            current.close()  # what it still does (a download starting) goes on
        self.update_dialog = dialog
        dialog.show()
        dialog.load()
        return dialog

    def show_updates(self) -> UpdatesDialog:
        """The sets with archive updates, one of which opens its update view (the tray's entry)."""
        if self.updates_dialog is None:
            self.updates_dialog = UpdatesDialog(self.service, self)
            self.updates_dialog.chosen.connect(self.show_update)
        self.updates_dialog.fill()
        self.updates_dialog.show()
        self.updates_dialog.raise_()
        return self.updates_dialog

    def _update_accepted(self, outcome: Outcome) -> None:
        self.refresh()
        rs = self.service.sets.find(outcome.set_id)
        if rs is not None:
            self.messages.info(f"{rs.name!r} is now at version {outcome.version}")
        self.open_set(outcome.set_id)

    def show_diff(self) -> DiffDialog | None:
        """Open the comparison of the open set's last two versions (non-modal)."""
        set_id = self.set_view.set_id
        if set_id is None:
            self.messages.error("Open a set first, then compare its versions.")
            return None
        self.diff_dialog = DiffDialog(self.service, set_id, self.messages, self)
        self.diff_dialog.show()
        self.diff_dialog.compare()
        return self.diff_dialog

    def show_publish(self) -> PublishDialog | None:
        """The publish form of the open set's shown version (window-modal), pre-filled on its
        worker; the set view then shows the DOI as it is minted."""
        set_id, version = self.set_view.set_id, self.set_view.shown_version
        if set_id is None or version is None:
            self.messages.error("Open a set with a version first (commit its changes), then publish it.")
            return None
        try:
            if version in self.service.sets.get(set_id).published:
                self.messages.error(
                    f"Version {version} is published already: commit a new version to publish again."
                )
                return None
            dialog = PublishDialog(self.service, set_id, version, self.messages, self)
        except MediatorError as exc:
            self.messages.error(str(exc))
            return None
        dialog.published.connect(self._published)
        self.publish_dialog = dialog
        dialog.open()
        dialog.start()
        return dialog

    def _published(self, record: PublishedRecord) -> None:
        self.refresh()
        doi = " Its DOI follows when the service answers." if record.service else ""
        self.messages.info(f"Published version {record.version}.{doi}")

    def show_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(
            self.service.settings, self.messages, self, doi_secret=self.service.publishing.set_secret
        )
        dialog.accepted.connect(lambda: self._settings_saved(dialog))
        dialog.open()
        self.settings_dialog = dialog
        return dialog

    def show_add_source(self) -> AddSourceDialog:
        """Open the "Add archive" dialog (window-modal); the archive panel follows what it adds."""
        dialog = AddSourceDialog(self.service.archives, self.messages, self)
        dialog.open()
        self.add_source_dialog = dialog
        return dialog

    def _settings_saved(self, dialog: SettingsDialog) -> None:
        change = dialog.change
        if change is not None and change.restart:
            titles = {f.name: f.title for f in self.service.settings.fields()}
            changed = ", ".join(titles[name].lower() for name in change.restart)
            self.messages.error(f"Settings saved. Restart MEDIator for the new {changed} to take effect.")
        else:
            self.messages.info("Settings saved")

    def show_share(self) -> ShareDialog | None:
        set_id = self.set_view.set_id
        if set_id is None:
            self.messages.error("Open a set first, then share it.")
            return None
        try:
            dialog = ShareDialog(self.service, set_id, self.messages, self)
        except MediatorError as exc:
            self.messages.error(str(exc))
            return None
        dialog.applied.connect(self.refresh)
        dialog.open()
        self.share_dialog = dialog
        return dialog

    def quit(self) -> None:
        """Quit the app (the window's close button only hides it while a tray icon shows)."""
        self._quitting = True
        self.close()
        app = QApplication.instance()
        if app is not None and not QApplication.quitOnLastWindowClosed():
            app.quit()

    # -- manifest files --------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = _local_files(event.mimeData())
        if files:
            event.acceptProposedAction()
            self.drop_files(files)

    def drop_files(self, files: list[Path]) -> None:
        """Import each dropped manifest file as a new set (on a worker); a CSV, TSV or Excel file
        that is no manifest opens the clinical table preview instead."""
        for path in files:
            if path.suffix.lower() in TABLE_SUFFIXES:
                self._table_or_manifest(path)
            else:
                self.import_file(path)

    def _table_or_manifest(self, path: Path) -> None:
        """Read the file on a worker: a manifest (a GDC TSV…) is imported, anything else is
        offered as a clinical table."""

        def manifest() -> bool:
            try:
                read_manifest_file(path)
            except ValidationError:
                return False
            return True

        def decided(is_manifest: bool) -> None:
            if self._closed:
                return
            if is_manifest:
                self.import_file(path)
            else:
                self.show_add_table(path)

        if path.suffix.lower() == ".xlsx":
            self.show_add_table(path)
            return
        self.runner.run(manifest, done=decided, failed=self.messages.failed)

    def ask_import(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self,
            "Import a manifest",
            str(Path.home()),
            "Manifests (*.tcia *.s5cmd *.txt *.tsv *.json);;All files (*)",
        )
        if name:
            self.import_file(Path(name))

    def import_file(self, path: Path) -> None:
        def imported(result: ImportResult) -> None:
            self.refresh()
            self.open_set(result.set_id)
            if result.missing:
                shown = ", ".join(result.missing[:3]) + (" …" if len(result.missing) > 3 else "")
                self.messages.error(
                    f"Imported {path.name}: {result.pointers:,} items found, "
                    f"{len(result.missing):,} not in the archives configured here ({shown})."
                )
            else:
                self.messages.info(f"Imported {path.name}: {result.pointers:,} items")
            self.imported.emit(result)

        self.statusBar().showMessage(f"Importing {path.name}…")
        self.runner.run(self.service.sets.import_file, path, done=imported, failed=self.messages.failed)

    # -- clinical tables -------------------------------------------------------------------------
    def ask_add_table(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Add a clinical table", str(Path.home()), TABLE_FILTER)
        if name:
            self.show_add_table(Path(name))

    def show_add_table(self, path: Path) -> AddTableDialog:
        """Preview ``path`` as a clinical table, and add it (window-modal); the clinical panel
        then shows it."""
        dialog = AddTableDialog(self.service.clinical, path, self.messages, self)
        dialog.added.connect(self._table_added)
        dialog.open()
        self.add_table_dialog = dialog
        return dialog

    def _table_added(self, version: TableVersion) -> None:
        self.clinical_dock.show()
        self.clinical_dock.raise_()
        self.clinical.choose_table(version.name)

    # -- matching data in other archives ---------------------------------------------------------
    def match_selected(self) -> MatchDialog | None:
        """Find matching data for the clinical panel's cohort when that panel is in front, else
        for the items selected in the archive tree."""
        clinical = self.clinical
        if clinical.isVisible() and clinical.table is not None:
            return self.show_match([Pointer(TABLES, (clinical.table,), clinical.filters())])
        pointers = self.archives.selected_pointers()
        if not pointers:
            self.messages.error(
                "Select collections, patients or studies in the archives (or a cohort in the "
                "clinical panel) first, then find their data in the other archives."
            )
            return None
        return self.show_match(pointers)

    def show_match(self, origin: list[Pointer], patients: Sequence[str] = ()) -> MatchDialog:
        """What the other archives hold for the patients of ``origin`` (non-modal; the search
        runs on the dialog's worker)."""
        for old in self.findChildren(MatchDialog):
            if old.idle:  # closed, its search over: it goes
                old.deleteLater()
        dialog = MatchDialog(
            self.service, origin, self.messages, self, patients=patients, open_set=self._open_set_name
        )
        dialog.add_requested.connect(self._add_matched)
        dialog.new_set_requested.connect(lambda name, pointers: self.create_set(name, pointers))
        self.match_dialog = dialog
        dialog.show()
        dialog.start()
        return dialog

    def _open_set_name(self) -> str | None:
        set_id = self.set_view.set_id
        rs = None if set_id is None else self.service.sets.find(set_id)
        return None if rs is None else rs.name

    def _add_matched(self, pointers: list[Pointer]) -> None:
        self.set_view.add(pointers)
        name = self._open_set_name()
        if name is not None:
            self.messages.info(f"Added the cohort to {name!r}: commit to keep it")

    def ask_export(self) -> None:
        set_id = self.set_view.set_id
        if set_id is None:
            self.messages.error("Open a set first, then export it.")
            return
        name, _ = QFileDialog.getSaveFileName(
            self, "Export the set", str(Path.home() / "set.json"), "Set (*.json)"
        )
        if name:
            self.export_set(set_id, Path(name))

    def drag_export(self, set_id: str) -> Path:
        """The set's export (head version), written for a drag out of the window: a file in a
        folder of this window's own, removed when the app ends."""
        if self._drag_folder is None:
            self._drag_folder = tempfile.TemporaryDirectory(prefix="mediator-drag-")
        folder = Path(self._drag_folder.name) / set_id  # one folder a set: names never collide
        folder.mkdir(exist_ok=True)
        return self.service.sets.export_file(set_id, None, "mediator", folder)

    def export_set(self, set_id: str, path: Path) -> None:
        try:
            document = self.service.sets.export(set_id)
            path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        except (MediatorError, OSError) as exc:
            self.messages.error(f"Not exported: {exc}")
            return
        self.messages.info(f"Exported to {path}")

    # -- downloads -------------------------------------------------------------------------------
    def ask_download(self) -> None:
        if self.set_view.set_id is None:
            self.messages.error("Open a set first, then download it.")
            return
        if self._refuse_empty():
            return
        start = str(self.service.settings.get().download_dir)
        folder = QFileDialog.getExistingDirectory(self, "Download into", start)
        if folder:
            self.start_download(Path(folder))

    def ask_verify_download(self) -> None:
        """Verify a folder the open set was downloaded into: every file re-hashed, damage re-fetched."""
        if self.set_view.set_id is None:
            self.messages.error("Open a set first, then verify a folder it was downloaded into.")
            return
        start = str(self.service.settings.get().download_dir)
        folder = QFileDialog.getExistingDirectory(self, "Verify the download in", start)
        if folder:
            self.start_download(Path(folder), verify=True)

    def start_download(self, folder: Path, *, verify: bool = False) -> None:
        """Download the open set's head into ``folder``, with the layout of the settings; with
        ``verify``, every file already there is re-hashed first and what differs fetched again."""
        set_id = self.set_view.set_id
        if set_id is None or self._refuse_empty():
            return
        try:
            self.service.downloads.start(DownloadRequest(set_id, folder, verify=verify))
        except MediatorError as exc:
            self.messages.error(str(exc))
            return
        self.downloads_dock.show()

    def _refuse_empty(self) -> bool:
        """Say so, and True, when the open set's version selects nothing to download."""
        try:
            empty = self.set_view.selects_nothing()
        except MediatorError as exc:
            self.messages.error(str(exc))
            return True
        if empty:
            self.messages.error(EMPTY_VERSION)
        return empty

    # -- events ----------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Called on the GUI thread for every event of the node."""
        if self._closed:  # queued before the window closed
            return
        self.peers.on_event(event)
        if isinstance(event, (SetEvent, StateReloaded, ClusterJoined, ClusterLeft)):
            # A join or a leave replaces the whole replica. SetEvent covers the archive updates'
            # events too: DriftRecorded, CheckRecorded, VersionCommitted (the badges).
            self.refresh()
        if isinstance(event, DownloadEvent):
            self.downloads.on_event(event)
            if not isinstance(event, DownloadProgressed):
                self.refresh()  # the sidebar's download marks
            if isinstance(event, DownloadFinished):
                self.messages.info("Download finished")
            elif isinstance(event, DownloadFailed):
                self.messages.info("Download failed")
        if isinstance(event, (ClusterEvent, SettingsChanged)):
            self._show_cluster()
        if isinstance(event, SettingsChanged) and "start_at_login" in event.changed:
            self._apply_autostart()
        if isinstance(event, (SourcesChanged, SourceIndexing)):
            self.archives.on_event(event)
        if isinstance(event, (SourcesChanged, TableAdded, StateReloaded, ClusterJoined, ClusterLeft)):
            self.clinical.on_event(event)
        if isinstance(event, SourceIndexing):
            # While an index runs its progress stays; the summary then shows for a while.
            self.statusBar().showMessage(event.line(), 15000 if event.finished else 0)

    def _apply_autostart(self) -> None:
        """The "Start at login" setting: write or remove the desktop's autostart entry."""
        wanted = self.service.settings.get().start_at_login
        try:
            autostart.apply(wanted)
        except OSError as exc:
            self.messages.error(
                f"Could not change the start at login ({exc}): check {autostart.entry_path()}."
            )

    def _show_cluster(self) -> None:
        """Members as the cluster counts them (on the node that made the join codes, the
        settings name no peers), where this node listens, and who you are."""
        service = self.service
        try:
            status = service.cluster.status()
        except ClusterUnavailable:
            where = "Joining or leaving a cluster"
        else:
            members = len(status.members) or 1
            where = (
                f"{'One-node cluster' if members == 1 else f'{members}-member cluster'} at "
                f"{status.self_address}"
            )
        self.cluster_text = (
            f"{where} · you are {service.display_name} ({service.key_id[:12]}) · MEDIator {__version__}"
        )
        self.statusBar().showMessage(self.cluster_text)

    def _archives_loaded(self) -> None:
        model = self.archives.model
        roots = [model.entry(model.index(r, 0)) for r in range(model.rowCount())]
        parts = []
        for root in roots:
            if root.total is not None:
                leaves = sum(c.item.leaves or 0 for c in root.children if c.item is not None)
                size = sum(c.item.size or 0 for c in root.children if c.item is not None)
                title = self.service.archives.title(root.source_id)
                parts.append(f"{title}: {root.total} collections, {leaves:,} series, {human_bytes(size)}")
        if parts:
            self.archives_dock.setToolTip("\n".join(parts))

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._quitting and self.tray is not None and self.tray.window_closed():
            event.ignore()
            self.hide()
            return
        self._closed = True
        self.bridge.detach()  # the node may stop now: none of its events reach these widgets
        self.peers.runner.close()
        if self.tray is not None:
            self.tray.close()
        self.runner.close()
        self.check_runner.close()
        for dialog in self.findChildren(UpdateDialog):
            dialog.shutdown()
        for match in self.findChildren(MatchDialog):
            match.shutdown()
        for publish in self.findChildren(PublishDialog):
            publish.runner.close()
        self.set_view.runner.close()
        self.archives.runner.close()
        self.clinical.shutdown()
        super().closeEvent(event)
