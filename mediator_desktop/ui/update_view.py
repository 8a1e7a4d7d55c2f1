"""The update view: what a set's archives hold now against the version the set pins, as an update
check found it (``service.tracking``), and what to do about it:

- **Update set**: the archive's data becomes the set's next version (owner and editors);
- **Copy with update**: a reader of a public set makes a set of their own with it;
- **Download changes**: only the added and revised leaves, into the folder the set was downloaded
  to (the set is updated first), optionally deleting the files of removed leaves;
- **Decline**: the set keeps its version and this update stays silent for you.

``UpdatesDialog`` lists the sets with updates (the tray's "N sets have updates"). Everything that
reads manifests or writes to the cluster runs on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mediator_desktop.core.diff import plural
from mediator_desktop.core.downloads import DownloadJob, DownloadRequest
from mediator_desktop.core.errors import NotFound
from mediator_desktop.core.events import DownloadCancelled, DownloadFailed, DownloadFinished, Event
from mediator_desktop.core.replica import ReplicaSet, Version, Visibility
from mediator_desktop.core.service import Outcome, Service
from mediator_desktop.core.state import CheckRecord, DriftRecord
from mediator_desktop.ui.bridge import EventBridge
from mediator_desktop.ui.diff_view import DiffResult, DiffTree, diff_result, escaped
from mediator_desktop.ui.errors import MessageBridge
from mediator_desktop.ui.rules import table_labels
from mediator_desktop.ui.workers import Runner

#: An archive's changed leaf is a revision (a new version of the series), not an edit of the set.
WORDS = {"changed": "revised"}
#: What the buttons do, in one sentence each, under the diff.
HELP = (
    "<b>Update set</b> makes what the archive holds now the set's next version. "
    "<b>Download changes</b> fetches only the added and revised {nouns} into your download folder. "
    "<b>Decline</b> keeps version {version} and hides this update for you."
)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class UpdateInfo:
    """What the update view shows: the diff, the update's record, the pinned version."""

    result: DiffResult
    drift: DriftRecord
    pinned: Version
    last_check: CheckRecord | None


def compute_update(service: Service, set_id: str) -> UpdateInfo:
    """Called on a worker: decodes the pinned manifest and the archive's one.

    Raises ``NotFound`` when the set has no update (any more: accepted or checked again meanwhile).
    """
    tracking = service.tracking
    selection, manifest = tracking.diff(set_id)  # NotFound when there is no update
    drift = tracking.drift(set_id)
    if drift is None:
        raise NotFound("this update was accepted meanwhile: the set's version holds it now")
    pinned = service.sets.version(set_id, drift.version)
    result = diff_result(
        selection, manifest, service.archives.hierarchies(), table_label=table_labels(service)
    )
    return UpdateInfo(result, drift, pinned, tracking.status(set_id).last_check)


class UpdateDialog(QDialog):
    """A set's version against what its archives hold now, with Update set, Copy with update,
    Download changes and Decline. Non-modal.

    Signals: loaded(UpdateInfo); updated(Outcome) once the update is a version (of this set, or
    of a copy); declined(); download_started(DownloadJob); download_ended(DownloadJob).

    Args:
        bridge: the window's event bridge, to tell how the download of the changes ended.
    """

    loaded = Signal(object)
    updated = Signal(object)
    declined = Signal()
    download_started = Signal(object)
    download_ended = Signal(object)

    def __init__(
        self,
        service: Service,
        set_id: str,
        messages: MessageBridge,
        bridge: EventBridge | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.set_id = set_id
        self.messages = messages
        # Not closed with the dialog: "Download changes" goes on after a close (the window closes it).
        self.runner = Runner(self, workers=1, name="update-view")
        self.info: UpdateInfo | None = None
        #: The set the update went into (this one, or the copy), once accepted.
        self.target: Outcome | None = None
        self.job: DownloadJob | None = None
        self.accepted_text = ""  # what accepting did, kept above the download's outcome
        self._shut = False
        self._told: set[str] = set()  # jobs whose end is shown
        rs = service.sets.get(set_id)
        self.rs = rs
        me = service.key_id
        self.can_edit = rs.can_edit(me)
        self.can_copy = not self.can_edit and rs.visibility is Visibility.PUBLIC
        hierarchies = service.archives.hierarchies()
        sources = service.sets.version(set_id).selection.sources if rs.head else ()
        nouns = {hierarchies[s].leaf_level for s in sources if s in hierarchies}
        self.leaf_nouns = plural(nouns.pop(), 2) if len(nouns) == 1 else "items"
        self.setWindowTitle(f"Archive update of {rs.name}")
        self.heading = QLabel(self)
        self.heading.setWordWrap(True)
        self.heading.setText(
            f"<b>{escaped(rs.name)}</b>: the archive changed since version {rs.head} "
            "(what the set points to now)."
        )
        self.summary = QLabel("Reading the update…", self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAccessibleName("Update summary")
        self.facts = QLabel("", self)
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tree = DiffTree(self, WORDS)
        self.tree.setAccessibleName("What changed in the archive")
        self.help = QLabel(HELP.format(nouns=self.leaf_nouns, version=rs.head), self)
        self.help.setWordWrap(True)
        self.prune = QCheckBox(f"Also delete files of removed {self.leaf_nouns}", self)
        self.prune.setToolTip(
            "When downloading the changes, delete from the folder the files of what the archive "
            "no longer holds (only files MEDIator downloaded; nothing else is touched)"
        )
        self.folder = QLabel("", self)
        self.folder.setWordWrap(True)
        self.update_button = QPushButton("Update set", self)
        self.copy_button = QPushButton("Copy with update", self)
        self.download_button = QPushButton("Download changes…", self)
        self.decline_button = QPushButton("Decline", self)
        close = QPushButton("Close", self)
        self.update_button.setDefault(True)
        self.update_button.clicked.connect(self.accept_update)
        self.copy_button.clicked.connect(self.copy_update)
        self.download_button.clicked.connect(lambda: self.download_changes())
        self.decline_button.clicked.connect(self.decline)
        close.clicked.connect(self.close)
        self.outcome = QLabel("", self)
        self.outcome.setTextFormat(Qt.TextFormat.PlainText)
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome.setAccessibleName("What happened")
        buttons = QHBoxLayout()
        for button in (self.update_button, self.copy_button, self.download_button, self.decline_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.summary)
        layout.addWidget(self.facts)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.help)
        layout.addWidget(self.prune)
        layout.addWidget(self.folder)
        layout.addLayout(buttons)
        layout.addWidget(self.outcome)
        self._explain_buttons()
        self._set_busy(True)
        if bridge is not None:
            # A bound slot of this dialog: the connection ends when the dialog goes.
            bridge.event_received.connect(self._on_event)
        self.resize(900, 620)

    # -- reading ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """The window closes: wait for a running call; start nothing after it."""
        self._shut = True
        self.runner.close()

    def load(self) -> None:
        """Read the update (on a worker); ``loaded`` tells when it shows."""
        self.summary.setText("Reading the update…")
        self.runner.run(
            compute_update,
            self.service,
            self.set_id,
            done=self._show,
            failed=self.messages.handler(shown_in=self._gone),
        )

    def _show(self, info: UpdateInfo) -> None:
        self.info = info
        drift, result = info.drift, info.result
        state = f" <span>(archive state: {escaped(drift.state)})</span>" if drift.state else ""
        self.summary.setText(f"<big><b>{escaped(drift.summary)}</b></big>{state}")
        users = self.service.users()
        pinned, check = info.pinned, info.last_check
        counts = [f"{result.added:,} added", f"{result.changed:,} revised", f"{result.removed:,} removed"]
        found = f"found {_when(drift.checked)} by the node of {escaped(users.get(drift.by, drift.by[:12]))}"
        if check is not None and not check.error and check.time - drift.checked >= 60:
            found += f", checked again {_when(check.time)}"
        lines = [
            f"Pinned: version {pinned.number}, {_when(pinned.time)} by "
            f"{escaped(users.get(pinned.author, pinned.author[:12]))}",
            f"Archive now: {found}; " + ", ".join(counts),
        ]
        if check is not None and check.error:
            lines.append(f"<span style='color:#b00020'>Last check failed: {escaped(check.error)}</span>")
        lines += [f"Note: {escaped(note)}" for note in drift.notes]
        if result.truncated:
            lines.append(f"Showing the first {len(result.rows):,} changes.")
        self.facts.setText("<br>".join(lines))
        self.tree.show_result(result)
        self._set_busy(False)
        self.loaded.emit(info)

    def _gone(self, text: str) -> None:
        """The update cannot be read: accepted or declined elsewhere, or the set went away."""
        self.summary.setText(text)
        self.tree.clear()
        for button in (self.update_button, self.copy_button, self.download_button, self.decline_button):
            button.setEnabled(False)

    # -- the buttons -----------------------------------------------------------------------------
    def _explain_buttons(self) -> None:
        rs = self.rs
        owner = self.service.users().get(rs.owner, rs.owner[:12])
        if self.can_edit:
            self.update_button.setToolTip(
                f"Make what the archive holds now version {(rs.head or 0) + 1} of {rs.name!r}"
            )
        elif self.can_copy:
            self.update_button.setToolTip(
                f"Only the owner ({owner}) and editors of {rs.name!r} can update it. "
                "Copy with update makes a set of yours with the new data."
            )
        else:
            self.update_button.setToolTip(
                f"Only the owner ({owner}) and editors of {rs.name!r} can update it; ask {owner} to."
            )
        self.copy_button.setVisible(self.can_copy)
        self.copy_button.setToolTip(
            f"Make a set of yours: version {rs.head} of {rs.name!r}, then the archive's data as version 2"
        )
        self.decline_button.setToolTip(
            f"Keep version {rs.head}: this update no longer shows for you (a newer one will)"
        )
        known = self.last_download()
        verb = "Update the set" if self.can_edit else "Make the copy"
        where = f"into {known[0]}" if known is not None else "into a folder you choose"
        if self.can_edit or self.can_copy:
            self.download_button.setToolTip(
                f"{verb} if not done yet, then fetch only the added and revised {self.leaf_nouns} {where}"
            )
        else:
            self.download_button.setToolTip(
                f"Only the owner ({owner}) and editors of {rs.name!r} can update it, and it is not "
                "public, so no copy can be made either"
            )
        if known is not None:
            self.folder.setText(f"Downloads into {known[0]}, where this set was downloaded before.")
        else:
            self.folder.setText(
                "You will be asked for a folder: this set was not downloaded since MEDIator started. "
                "Choose the folder that holds its earlier download to fetch only the changes."
            )

    def _set_busy(self, busy: bool) -> None:
        """While reading or writing, no button starts a second thing."""
        accepted = self.target is not None
        self.update_button.setEnabled(not busy and not accepted and self.can_edit)
        self.copy_button.setEnabled(not busy and not accepted and self.can_copy)
        self.decline_button.setEnabled(not busy and not accepted)
        self.download_button.setEnabled(not busy and (accepted or self.can_edit or self.can_copy))

    def last_download(self) -> tuple[Path, str] | None:
        """The folder (and its layout) this set was last downloaded to since the node started."""
        jobs = [job for job in self.service.downloads.list() if job.set_id == self.set_id]
        chosen = [job for job in jobs if job.state == "done"] or jobs
        return (chosen[-1].destination, chosen[-1].layout) if chosen else None

    def accept_update(self) -> None:
        """Update set: the archive's data becomes the next version (on a worker)."""
        self._accept(fork=False, then=None)

    def copy_update(self) -> None:
        """Copy with update: a set of yours, the pinned version then the archive's data."""
        self._accept(fork=True, then=None)

    def _accept(self, *, fork: bool, then: tuple[Path, str | None, bool] | None) -> None:
        self._set_busy(True)
        self.outcome.setText("Making a copy with the update…" if fork else "Updating the set…")
        name = f"{self.rs.name} (updated)" if fork else ""

        def failed(error: BaseException) -> None:
            self._set_busy(False)
            self.messages.failed(error, shown_in=self.outcome.setText, prefix="Not updated: ")

        self.runner.run(
            self.service.tracking.accept,
            self.set_id,
            fork=fork,
            name=name,
            done=lambda outcome: self._accepted(outcome, fork, then),
            failed=failed,
        )

    def _accepted(self, outcome: Outcome, fork: bool, then: tuple[Path, str | None, bool] | None) -> None:
        self.target = outcome
        self._set_busy(False)
        name = self.service.sets.get(outcome.set_id).name
        where = f"Your copy {name!r}" if fork else repr(self.rs.name)
        self.accepted_text = (
            f"{where} is now at version {outcome.version} ({outcome.leaves:,} {self.leaf_nouns})."
        )
        self.heading.setText(
            f"<b>{escaped(name)}</b>: version {outcome.version} holds this archive update "
            f"(version {self.rs.head} is kept in its history)."
        )
        self.help.setText(
            f"<b>Download changes</b> fetches only the added and revised {self.leaf_nouns} of version "
            f"{outcome.version} into your download folder."
        )
        self.outcome.setText(
            f"{self.accepted_text}\n"
            + ("Downloading the changes…" if then else "Download changes fetches only what changed.")
        )
        self.updated.emit(outcome)
        if then is not None and not self._shut:
            self._start_download(*then)

    def decline(self) -> None:
        """Decline: the set keeps its version; this update stays silent for you."""
        self._set_busy(True)

        def done(_: object) -> None:
            self.outcome.setText(f"Declined: {self.rs.name!r} stays at version {self.rs.head}.")
            self.declined.emit()
            self.close()

        def failed(error: BaseException) -> None:
            self._set_busy(False)
            self.messages.failed(error, shown_in=self.outcome.setText, prefix="Not declined: ")

        self.runner.run(self.service.tracking.dismiss, self.set_id, done=done, failed=failed)

    def download_changes(self, folder: Path | None = None) -> None:
        """Download changes: the updated version into ``folder`` (default: where the set was
        downloaded before, else a folder the user picks); updates the set (or copies it) first."""
        known = self.last_download()
        layout: str | None = None
        if folder is None and known is not None:
            folder, layout = known
        elif folder is not None and known is not None and folder == known[0]:
            layout = known[1]  # the same layout, or every file would be fetched again elsewhere
        if folder is None:
            start = str(self.service.settings.get().download_dir)
            chosen = QFileDialog.getExistingDirectory(self, "Download the changes into", start)
            if not chosen:
                return
            folder = Path(chosen)
        then = (folder, layout, self.prune.isChecked())
        if self.target is None:
            self._accept(fork=not self.can_edit, then=then)
        else:
            self._start_download(*then)

    def _start_download(self, folder: Path, layout: str | None, prune: bool) -> None:
        assert self.target is not None
        request = DownloadRequest(self.target.set_id, folder, layout=layout, prune=prune)
        self.download_button.setEnabled(False)

        def started(job: DownloadJob) -> None:
            self.job = job
            before = f"{self.accepted_text}\n" if self.accepted_text else ""
            self.outcome.setText(f"{before}Downloading the changes into {folder}…")
            self.download_started.emit(job)
            if job.finished:  # before the bridge was listening
                self._ended(job)

        def failed(error: BaseException) -> None:
            self.download_button.setEnabled(True)
            self.messages.failed(error, shown_in=self.outcome.setText, prefix="Not downloaded: ")

        self.runner.run(self.service.downloads.start, request, done=started, failed=failed)

    def _on_event(self, event: Event) -> None:
        if (
            isinstance(event, (DownloadFinished, DownloadFailed, DownloadCancelled))
            and self.job is not None
            and event.job == self.job.id
        ):
            self._ended(self.job)

    def _ended(self, job: DownloadJob) -> None:
        if job.id in self._told:
            return
        self._told.add(job.id)
        ended = job.report.summary() if job.report is not None else job.error or "see the downloads panel"
        before = f"{self.accepted_text}\n" if self.accepted_text else ""
        self.outcome.setText(f"{before}Download {job.state}: {ended}")
        self.download_button.setEnabled(True)
        self.download_ended.emit(job)


class UpdatesDialog(QDialog):
    """The sets you follow or own whose archives changed, with what changed; choosing one opens its
    update view. Signals: chosen(str) with the set's id."""

    chosen = Signal(str)

    def __init__(self, service: Service, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.setWindowTitle("Sets with archive updates")
        self.list = QListWidget(self)
        self.list.setAccessibleName("Sets with archive updates")
        self.list.itemActivated.connect(self._activated)
        show = QPushButton("Show update…", self)
        show.setDefault(True)
        show.clicked.connect(self.show_chosen)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(show)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The archives behind these sets changed since their versions:", self))
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.fill()
        self.resize(560, 300)

    def fill(self) -> None:
        """Read the updates again (local reads)."""
        self.list.clear()
        for rs, drift in self.service.tracking.updates():
            self.list.addItem(self._item(rs, drift))
        if self.list.count():
            self.list.setCurrentRow(0)

    @staticmethod
    def _item(rs: ReplicaSet, drift: DriftRecord) -> QListWidgetItem:
        item = QListWidgetItem(f"{rs.name} (version {rs.head}): {drift.summary}")
        item.setData(Qt.ItemDataRole.UserRole, rs.id)
        item.setToolTip(f"archive state: {drift.state}" if drift.state else drift.summary)
        return item

    def set_ids(self) -> list[str]:
        return [str(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())]

    def show_chosen(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._activated(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))
