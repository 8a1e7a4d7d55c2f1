"""The main window. The full browser, set editor and panels come with the desktop-app issue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QMainWindow, QVBoxLayout, QWidget

from mediator_desktop import __version__
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.events import Event
from mediator_desktop.core.source import BrowsePage
from mediator_desktop.node import Node
from mediator_desktop.ui.bridge import EventBridge, JobBridge

#: Events after which the list of sets is read again (reads are local and cheap).
_SET_EVENTS = {"set_changed", "set_deleted", "version_committed", "state_reloaded", "published"}


class MainWindow(QMainWindow):
    """Top-level window over one running node."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.setWindowTitle("MEDIator Desktop")
        self.resize(1000, 640)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        self.title_label = QLabel(f"<h2>MEDIator Desktop {__version__}</h2>", central)
        self.status_label = QLabel(central)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sources_label = QLabel("Archives: opening…", central)
        self.sets_list = QListWidget(central)
        self.sets_list.setAccessibleName("Replica sets")
        layout.addWidget(self.title_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.sources_label)
        layout.addWidget(QLabel("Replica sets you can see:", central))
        layout.addWidget(self.sets_list, 1)
        self.setCentralWidget(central)
        self.bridge = EventBridge(node.events, self)
        self.bridge.event_received.connect(self.on_event)
        self.refresh()
        # Opening the IDC index takes about a second: never on the GUI thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ui-jobs")
        self.sources_job = JobBridge(self)
        self.sources_job.finished.connect(self.on_sources_loaded)
        self.sources_job.failed.connect(self.on_sources_failed)
        # The first configured archive (IDC by default) is opened to show it is there.
        self.first_source = next(iter(node.sources.values()), None)
        if self.first_source is None:
            self.sources_label.setText("Archives: none configured (see Settings)")
        else:
            self.sources_job.watch(self._executor.submit(self.first_source.browse, limit=10_000))

    def on_sources_loaded(self, page: BrowsePage) -> None:
        assert self.first_source is not None
        level = self.first_source.hierarchy.levels[0]
        leaves = sum(item.leaves or 0 for item in page.items)
        counted = f", {leaves:,} {self.first_source.hierarchy.leaf_level}" if leaves else ""
        self.sources_label.setText(f"Archives: {self.first_source.title}, {page.total} {level}s{counted}")

    def on_sources_failed(self, error: BaseException) -> None:
        if not isinstance(error, MediatorError):
            raise error
        title = self.first_source.title if self.first_source else "the archive"
        self.sources_label.setText(f"Archives: {title} is not available: {error}")

    def closeEvent(self, event: QCloseEvent) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().closeEvent(event)

    def on_event(self, event: Event) -> None:
        if event.kind in _SET_EVENTS:
            self.refresh()
        elif event.kind == "leader_changed":
            self.statusBar().showMessage(f"Cluster leader: {event.details.get('leader') or 'none'}")

    def refresh(self) -> None:
        service = self.node.service
        members = len(self.node.settings.peers) + 1
        self.status_label.setText(
            f"{'One-node cluster' if members == 1 else f'{members}-member cluster'} at "
            f"{self.node.settings.raft_address}. You are {service.identity.display_name} "
            f"({service.key_id[:12]}). Data folder: {self.node.data_dir}"
        )
        self.sets_list.clear()
        sets = service.list_sets()
        for rs in sets:
            head = f"version {rs.head}" if rs.head else "no version yet"
            item = QListWidgetItem(f"{rs.name} — {rs.visibility.value}, {head}")
            item.setData(Qt.ItemDataRole.UserRole, rs.id)
            self.sets_list.addItem(item)
        if not sets:
            self.sets_list.addItem(QListWidgetItem("No replica sets yet."))
        self.statusBar().showMessage(f"{len(sets)} replica set(s)")
