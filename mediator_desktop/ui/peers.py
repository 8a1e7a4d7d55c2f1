"""The peers panel: cluster members with health and leader, machines seen on the network, the
people the cluster knows; join codes; and sharing by dropping a set on a person or a machine."""

from __future__ import annotations

import time

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.errors import ClusterUnavailable
from mediator_desktop.core.events import ClusterEvent, Event, StateReloaded, UserRegistered
from mediator_desktop.core.service import Service
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.workers import Runner

#: A replica set dragged from the sidebar: its id, as UTF-8.
SET_MIME = "application/x-mediator-set"
#: Events after which the panel reads members, machines and people again.
PEER_EVENTS: tuple[type[Event], ...] = (ClusterEvent, UserRegistered, StateReloaded)


def set_mime(set_id: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(SET_MIME, set_id.encode())
    return mime


class DropList(QListWidget):
    """A list whose rows accept a dragged set. Signals: set_dropped(set_id, row data)."""

    set_dropped = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(SET_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        item = self.itemAt(event.position().toPoint())
        if event.mimeData().hasFormat(SET_MIME) and item is not None and item.data(Qt.ItemDataRole.UserRole):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        item = self.itemAt(event.position().toPoint())
        if self.drop_set(event.mimeData(), item):
            event.acceptProposedAction()

    def drop_set(self, mime: QMimeData, item: QListWidgetItem | None) -> bool:
        """The drop itself (tests call it with a made-up drag)."""
        target = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        if not mime.hasFormat(SET_MIME) or not target:
            return False
        self.set_dropped.emit(bytes(mime.data(SET_MIME).data()).decode(), target)
        return True


class JoinCodeDialog(QDialog):
    """Shows a fresh join code to type (or paste) on the other machine."""

    def __init__(self, code: str, ttl: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Join code")
        self.code = QLineEdit(code, self)
        self.code.setReadOnly(True)
        self.code.setAccessibleName("Join code")
        until = time.strftime("%H:%M", time.localtime(time.time() + ttl))
        copy = QPushButton("Copy", self)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(code))
        row = QHBoxLayout()
        row.addWidget(self.code, 1)
        row.addWidget(copy)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "On the other machine choose <b>Join a cluster</b> and type this code. "
                f"It works once, until {until}.",
                self,
            )
        )
        layout.addLayout(row)


class JoinDialog(QDialog):
    """Type a join code; joining runs on a worker and the dialog says how it went."""

    joined = Signal()

    def __init__(
        self, service: Service, runner: Runner, messages: MessageBridge, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.runner = runner
        self.messages = messages
        self.setWindowTitle("Join a cluster")
        self.code = QLineEdit(self)
        self.code.setPlaceholderText("3Q0RB-7ZK4D-…")
        self.code.setAccessibleName("Join code")
        self.join_button = QPushButton("Join", self)
        self.join_button.setDefault(True)
        self.outcome = QLabel("Ask a member of the cluster for a join code (Peers > Create join code).", self)
        self.outcome.setWordWrap(True)
        self.join_button.clicked.connect(self.join)
        self.code.returnPressed.connect(self.join)
        row = QHBoxLayout()
        row.addWidget(self.code, 1)
        row.addWidget(self.join_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.outcome)

    def join(self) -> None:
        code = self.code.text().strip()
        if not code:
            return
        self.join_button.setEnabled(False)
        self.outcome.setText("Joining…")

        def done(_: object) -> None:
            self.join_button.setEnabled(True)
            self.outcome.setText("Joined: this machine now shares the cluster's replica sets.")
            self.joined.emit()

        def failed(error: BaseException) -> None:
            self.join_button.setEnabled(True)
            self.messages.failed(error, shown_in=self.outcome.setText)

        self.runner.run(self.service.cluster.join, code, done=done, failed=failed)


class PeersPanel(QWidget):
    """Signals: share_requested(set_id, key_id) for a set dropped on a person;
    cluster_share_requested(set_id) for a set dropped on a machine (made visible to the cluster)."""

    share_requested = Signal(str, str)
    cluster_share_requested = Signal(str)

    def __init__(self, service: Service, messages: MessageBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.messages = messages
        self.runner = Runner(self, workers=1, name="peers")
        self.members = DropList(self)
        self.members.setAccessibleName("Cluster members")
        self.members.setToolTip("Drop a set here to share it with the whole cluster")
        self.network = QListWidget(self)
        self.network.setAccessibleName("Machines seen on the network")
        self.people = DropList(self)
        self.people.setAccessibleName("People")
        self.people.setToolTip("Drop a set on a person to let them edit it")
        self.create_button = QPushButton("Create join code…", self)
        self.join_button = QPushButton("Join a cluster…", self)
        self.create_button.clicked.connect(self.create_code)
        self.join_button.clicked.connect(self.ask_join)
        self.members.set_dropped.connect(lambda set_id, _: self.cluster_share_requested.emit(set_id))
        self.people.set_dropped.connect(lambda set_id, key: self.share_requested.emit(set_id, str(key)))
        buttons = QHBoxLayout()
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.join_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, widget in (
            ("Members", self.members),
            ("On this network", self.network),
            ("People", self.people),
        ):
            layout.addWidget(QLabel(title, self))
            layout.addWidget(widget)
        layout.addLayout(buttons)
        self.code_dialog: JoinCodeDialog | None = None
        self.join_dialog: JoinDialog | None = None
        self.refresh()

    def on_event(self, event: Event) -> None:
        """Called on the GUI thread for every core event."""
        if isinstance(event, PEER_EVENTS):
            self.refresh()

    def refresh(self) -> None:
        self.members.clear()
        try:
            status = self.service.cluster.status()
            peers = self.service.cluster.peers()
            users = self.service.users()
        except ClusterUnavailable:  # joining or leaving: the events that end it refresh again
            return
        for member in status.members:
            marks = [m for m, on in (("this machine", member.is_self), ("leader", member.is_leader)) if on]
            health = "up" if member.connected or member.is_self else "unreachable"
            item = QListWidgetItem(f"{member.address} · {health}{' · ' + ', '.join(marks) if marks else ''}")
            item.setData(Qt.ItemDataRole.UserRole, member.address)
            self.members.addItem(item)
        self.network.clear()
        for peer in peers:
            self.network.addItem(f"{peer.name} · {peer.raft_address} · {peer.status} · v{peer.version}")
        self.people.clear()
        me = self.service.key_id
        for key_id, name in sorted(users.items(), key=lambda kv: kv[1].lower()):
            item = QListWidgetItem(f"{name}{' (you)' if key_id == me else ''} · {key_id[:12]}")
            item.setData(Qt.ItemDataRole.UserRole, None if key_id == me else key_id)
            self.people.addItem(item)

    def create_code(self) -> None:
        ttl = 600.0

        def show(code: str) -> None:
            self.code_dialog = JoinCodeDialog(code, ttl, self)
            self.code_dialog.show()

        self.runner.run(self.service.cluster.create_join_code, ttl, done=show, failed=self.messages.failed)

    def ask_join(self) -> JoinDialog:
        self.join_dialog = JoinDialog(self.service, self.runner, self.messages, self)
        self.join_dialog.joined.connect(self.refresh)
        self.join_dialog.show()
        return self.join_dialog
