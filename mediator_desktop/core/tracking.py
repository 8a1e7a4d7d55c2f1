"""Update tracking: followed sets are checked against their archives, and what changed is recorded.

A **check** of a set resolves its head version's selection as the archives hold it now, as
cheaply as each archive allows (``core.source.Tracking``: TCIA's "updated since" queries, IDC's
newer index; other sources are resolved again), and compares the result with what was last known:
the drift record, or the pinned manifest when there is none. Only a change writes a drift record
(the whole manifest of "now" goes into the store, so every member can diff it and accepting it
commits it as is); checks that found nothing new, or failed, are reported many sets per command.

Scheduled checks run on one member: the Raft leader. Another member takes over a set the leader
has not checked for two intervals (the leader lacks its archive, or died mid-round); a new leader
simply finds the sets it has not checked yet still due. A check never holds a lock a commit needs;
it runs on the tracker's own thread or the caller's (never the GUI's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from mediator_desktop.core.diff import ManifestDiff, SourceDiff, human_bytes, plural
from mediator_desktop.core.errors import MediatorError, NotFound, PermissionDenied
from mediator_desktop.core.events import EventBus, SourceIndexing
from mediator_desktop.core.manifest import TAB, US, Fingerprint, Leaf, Manifest, escape_component
from mediator_desktop.core.replica import ReplicaSet, Version, Visibility
from mediator_desktop.core.selection import SelectionDiff
from mediator_desktop.core.source import Tracked
from mediator_desktop.core.state import MAX_CHECKS_PER_COMMAND, CheckRecord, DriftRecord

if TYPE_CHECKING:
    from mediator_desktop.core.service import Archives, Outcome, Sets, _Signer

log = logging.getLogger(__name__)

#: How often the scheduler looks for due sets at most (seconds); sooner for short intervals.
TICK_S = 30.0


class _NotHere(Exception):  # never leaves the tracker: not an error of the API
    """The set names an archive this node does not have: not the archive's failure, so it is not
    recorded for everyone (a member that has the archive checks the set)."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check of one set found.

    Attributes:
        drift: the set's update now (None: its version is what the archives hold).
        new: this check found the update (a drift record was written).
        error: why the check failed ("" when it worked); then nothing was recorded but the failure.
        recorded: whether the outcome goes to the store (not when this node lacks an archive).
    """

    set_id: str
    name: str
    version: int | None
    drift: DriftRecord | None = None
    new: bool = False
    error: str = ""
    recorded: bool = True

    def line(self) -> str:
        """One line for a terminal or a status bar."""
        where = f"{self.name} v{self.version}" if self.version is not None else self.name
        if self.error:
            return f"{where}: check failed: {self.error}"
        if self.version is None:
            return f"{where}: no version yet, nothing to check"
        if self.drift is None:
            return f"{where}: up to date"
        state = f" ({self.drift.state})" if self.drift.state else ""
        return f"{where}: {'update found' if self.new else 'update waiting'}: {self.drift.summary}{state}"


@dataclass(frozen=True, slots=True)
class TrackStatus:
    """What the app shows about a set's updates."""

    set_id: str
    drift: DriftRecord | None  # an update of the head version you have not declined
    last_check: CheckRecord | None
    declined: bool = False  # there is an update, and you declined it (``found``)
    found: DriftRecord | None = None  # the update, declined or not

    @property
    def line(self) -> str:
        check = self.last_check
        failed = f"last check failed: {check.error}" if check is not None and check.error else ""
        if self.found is not None:
            update = f"{'declined ' if self.declined else ''}archive update: {self.found.summary}"
            return f"{update} ({failed})" if failed else update
        if failed:
            return failed
        if check is None:
            return "not checked yet"
        return f"checked {time.strftime('%Y-%m-%d %H:%M', time.localtime(check.time))}: up to date"


@dataclass(frozen=True, slots=True)
class LeafChange:
    """One leaf of a version whose archive data changed since the version was made.

    Attributes:
        change: ``revised`` (the archive holds other data under its name now) or ``removed``.
        pinned: the fingerprint the version recorded; ``now``: the archive's now (None: removed).
        fetched: after a download of the version, whether the pinned data arrived and matched its
            fingerprint (True), could not be fetched (False, ``reason`` says why); None: not tried.
    """

    source_id: str
    path: tuple[str, ...]
    change: str
    pinned: Fingerprint
    now: Fingerprint | None = None
    fetched: bool | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return "/".join((self.source_id, *self.path))

    def line(self) -> str:
        what = f"{self.name}: {self.change} in its archive since"
        if self.fetched is None:
            return f"{what}; the pinned data was not fetched in this run"
        if self.fetched:
            return f"{what}; the pinned data is still fetchable: fetched and verified"
        return f"{what}; the pinned data is no longer fetchable: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "path": list(self.path),
            "change": self.change,
            "pinned": asdict(self.pinned),
            "now": None if self.now is None else asdict(self.now),
            "fetched": self.fetched,
            "reason": self.reason,
            "line": self.line(),
        }


@dataclass(frozen=True, slots=True)
class Reproduction:
    """A version against its archives now: is its data what it was, and can it still be fetched?

    Made for every download of a published version (``Tracker.reproduction``, then
    ``with_download``), so a reader of a paper learns whether the files they got are the ones the
    authors used. ``added`` counts data the selection selects now that the version did not hold
    (never downloaded: the version is what it was).
    """

    set_id: str
    version: int
    leaves: int
    changes: tuple[LeafChange, ...] = ()
    added: int = 0
    states: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""  # the comparison failed (an archive down); the download itself still verified

    @property
    def identical(self) -> bool:
        """Every leaf is in its archive as the version recorded it."""
        return not self.error and not self.changes

    def with_download(self, failed: Mapping[str, str], complete: bool) -> Reproduction:
        """Each changed leaf marked by a download of the version into a folder: the leaves in
        ``failed`` (key -> reason) could not be fetched as pinned; when the run was ``complete``
        (not cancelled) every other leaf is in the folder, verified against its pinned fingerprint
        when it arrived (in this run or an earlier one)."""
        marked = []
        for change in self.changes:
            key = Leaf(change.source_id, change.path, change.pinned).key
            if key in failed:
                marked.append(replace(change, fetched=False, reason=failed[key]))
            elif complete:
                marked.append(replace(change, fetched=True))
            else:
                marked.append(change)
        return replace(self, changes=tuple(marked))

    def summary(self) -> str:
        if self.error:
            return f"v{self.version} could not be compared with its archives: {self.error}"
        if not self.changes:
            extra = f" ({self.added} newer {plural('leaf', self.added)} not part of it)" if self.added else ""
            return (
                f"all {self.leaves} {plural('leaf', self.leaves)} of v{self.version} are as published{extra}"
            )
        kept = sum(1 for c in self.changes if c.fetched)
        lost = sum(1 for c in self.changes if c.fetched is False)
        count = len(self.changes)
        parts = [f"{count} {plural('leaf', count)} of v{self.version} changed in their archives"]
        if kept:
            parts.append(f"{kept} still fetchable as published (fetched and verified)")
        if lost:
            parts.append(f"{lost} no longer fetchable")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "version": self.version,
            "leaves": self.leaves,
            "identical": self.identical,
            "summary": self.summary(),
            "changes": [change.to_json() for change in self.changes],
            "added": self.added,
            "states": list(self.states),
            "notes": list(self.notes),
            "error": self.error,
        }


def drift_summary(per_source: Sequence[SourceDiff]) -> str:
    """``+12 series (2.1 GB), 3 revised, 1 removed`` (from ``ManifestDiff.by_source``), per
    archive when there are several."""
    parts: list[str] = []
    for source in per_source:
        words = []
        if source.added.leaves:
            size = f" ({human_bytes(source.added.bytes)})" if source.added.bytes else ""
            words.append(f"+{source.added.leaves:,} {plural(source.leaf_noun, source.added.leaves)}{size}")
        if source.changed.leaves:
            words.append(f"{source.changed.leaves:,} revised")
        if source.removed.leaves:
            words.append(f"{source.removed.leaves:,} removed")
        text = ", ".join(words)
        parts.append(text if len(per_source) == 1 else f"{source.source_id}: {text}")
    return "; ".join(parts) or "no changes"


def _key(line: str) -> str:
    return line.partition(TAB)[0]


def _ids(changes: Manifest, removed: Manifest) -> tuple[str, str]:
    """The ids a drift record holds for these changes."""
    return changes.id, removed.id if len(removed) else ""


def _part(manifest: Manifest, source_id: str) -> Manifest:
    """The leaves of one source (its lines are one run: the source id leads every line)."""
    prefix = escape_component(source_id) + US
    lines = manifest.lines()
    return Manifest._from_sorted_lines([line for line in lines if line.startswith(prefix)])


class Tracker:
    """``service.tracking``: check sets for archive updates, show, accept and decline them."""

    def __init__(
        self,
        signer: _Signer,
        sets: Sets,
        archives: Archives,
        events: EventBus,
        interval: Callable[[], float],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Args:
        interval: seconds between scheduled checks of a set, read at each tick (0: off).
        """
        self._signer = signer
        self._store = signer.store
        self._sets = sets
        self._archives = archives
        self._interval = interval
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checking = threading.Lock()  # one round at a time; on-demand checks run beside it
        self._local_sources: set[str] = set()  # local archives that re-indexed
        self._local_lock = threading.Lock()
        events.subscribe(self._on_indexing, SourceIndexing)

    @property
    def _me(self) -> str:
        return self._signer.identity.key_id

    # -- checks --------------------------------------------------------------------------------
    def check(self, set_ids: Iterable[str] | None = None, *, full: bool = False) -> list[CheckOutcome]:
        """Check sets now, on this node (default: every set you follow or own); blocks.

        ``full`` resolves every selection again instead of asking the archives what changed
        since the last check (TCIA cannot tell removed series otherwise): slower, more requests.

        Raises ``NotFound`` for a set you cannot see. An archive that fails makes that set's
        outcome an error (shown on the set), never an exception.
        """
        if set_ids is None:
            sets = [rs for rs in self._sets.list() if self._me in rs.followers or rs.owner == self._me]
        else:
            sets = [self._sets.get(set_id) for set_id in set_ids]
        return self._check_all(sets, full)

    def _check_all(self, sets: list[ReplicaSet], full: bool = False) -> list[CheckOutcome]:
        outcomes: list[CheckOutcome] = []
        quiet: list[list[Any]] = []
        for rs in sets:
            outcome = self._check_one(rs, full)
            outcomes.append(outcome)
            if outcome.version is not None and not outcome.new and outcome.recorded:
                quiet.append([rs.id, outcome.version, outcome.error])
            if len(quiet) >= MAX_CHECKS_PER_COMMAND:
                self._report(quiet)
                quiet = []
        if quiet:
            self._report(quiet)
        return outcomes

    def _report(self, checks: list[list[Any]]) -> None:
        try:
            self._signer.do("record_checks", checks=checks)
        except MediatorError as exc:  # no quorum now: the next round checks them again
            log.warning("could not record %d update checks: %s", len(checks), exc)

    def _check_one(self, rs: ReplicaSet, full: bool = False) -> CheckOutcome:
        if rs.head is None:
            return CheckOutcome(rs.id, rs.name, None)
        try:
            # From the state, not through ``Sets``: the member checking for the cluster checks
            # sets it may not read (private ones followed by their owner elsewhere).
            versions = self._store.state.versions.get(rs.id, [])
            if len(versions) < rs.head:
                raise NotFound(f"version {rs.head} of {rs.name!r} is not here yet")
            version = versions[rs.head - 1]
            pinned = self._sets.manifest(version.manifest_id)
            known = self._store.state.drift.get((rs.id, version.number))
            base = self._apply(pinned, known) if known is not None else pinned
            last = self._store.state.checks.get(rs.id)
            since = last.ok_time if last is not None and last.version == version.number else 0.0
            now, states, notes = self._resolve_now(version, base, None if full else since or version.time)
        except (MediatorError, _NotHere) as exc:
            log.info("update check of %s failed: %s", rs.name, exc)
            pending = self._pending(rs.id, rs.head)
            return CheckOutcome(
                rs.id, rs.name, rs.head, pending, error=str(exc), recorded=not isinstance(exc, _NotHere)
            )
        diff = ManifestDiff.between(pinned, now)
        changes = Manifest._from_sorted_lines(sorted([*diff.added_lines, *diff.changed_lines]))
        removed = Manifest._from_sorted_lines(diff.removed_lines)
        if (known is None and not diff) or (
            known is not None and (known.manifest_id, known.removed_id) == _ids(changes, removed)
        ):  # nothing new since the last check
            return CheckOutcome(rs.id, rs.name, version.number, self._pending(rs.id, version.number))
        per_source = diff.by_source(self._archives.hierarchies())
        summary = drift_summary(per_source) if diff else "back to the pinned data"
        try:
            changes_id = self._sets.upload_manifest(changes)
            removed_id = self._sets.upload_manifest(removed) if len(removed) else ""
            self._signer.do(
                "record_drift",
                set_id=rs.id,
                version=version.number,
                manifest_id=changes_id,
                removed_id=removed_id,
                summary=summary,
                state="; ".join(states),
                notes=list(notes)[:8],
                added=sum(s.added.leaves for s in per_source),
                revised=sum(s.changed.leaves for s in per_source),
                removed=sum(s.removed.leaves for s in per_source),
            )
        except MediatorError as exc:
            return CheckOutcome(rs.id, rs.name, version.number, error=f"could not record the update: {exc}")
        return CheckOutcome(rs.id, rs.name, version.number, self._pending(rs.id, version.number), new=True)

    def _apply(self, pinned: Manifest, drift: DriftRecord) -> Manifest:
        """What the archives held at the drift's check: the pinned manifest with its changes."""
        changes = self._sets.manifest(drift.manifest_id)
        removed = self._sets.manifest(drift.removed_id) if drift.removed_id else None
        gone = {_key(line) for line in changes.lines()}
        if removed is not None:
            gone.update(_key(line) for line in removed.lines())
        kept = [line for line in pinned.lines() if _key(line) not in gone] if gone else list(pinned.lines())
        return Manifest._from_sorted_lines(sorted([*kept, *changes.lines()]))

    def now(self, set_id: str) -> Manifest:
        """What the set's selection resolves to in the archives, as the last check found it."""
        drift = self._required(set_id)
        return self._apply(self._sets.manifest(self._sets.version(set_id).manifest_id), drift)

    def _resolve_now(
        self, version: Version, base: Manifest, since: float | None
    ) -> tuple[Manifest, list[str], list[str]]:
        """What the version's selection selects in its archives now, with each archive's state.

        One pass (``core.integrator.PinnedArchives``): the archives are those the expansion read,
        so a clinical table's rows come from the version its cohorts came from; a version that
        reaches the node meanwhile is the next check's, whole.
        """
        lines: list[str] = []
        states: list[str] = []
        notes: list[str] = []
        try:
            # A clinical rule's patients now, in the archives it joins to (``core.integrator``).
            expanded = self._archives.expand(version.selection)
        except NotFound as exc:
            raise _NotHere(f"{exc}; members that have it check the set for everyone") from None
        selection = expanded.selection
        joined = {join.target.source_id for join in expanded.joins}
        for source_id in selection.sources:
            try:
                source = expanded.source(source_id)
            except NotFound:
                raise _NotHere(
                    f"archive {source_id!r} is not configured on this node; add it here to check the "
                    "set here (members that have it check it for everyone)"
                ) from None
            part = selection.for_source(source_id)
            track = getattr(source, "track", None)
            if track is not None:
                # A joined archive's rules follow the table: "changed since" cannot tell a patient
                # who joined the cohort, so those are resolved in full.
                fresh = None if source_id in joined else since
                tracked: Tracked = track(part, _part(base, source_id), fresh)
            else:
                tracked = Tracked(source.resolve(part))
            lines.extend(tracked.manifest.lines())
            if tracked.state:
                states.append(tracked.state)
            notes.extend(tracked.notes)
        lines.sort()  # each archive's lines are sorted; the archives' runs may interleave
        now = Manifest._from_sorted_lines(lines)
        return now, states, [*notes, *expanded.notes(now)]

    def reproduction(self, set_id: str, number: int | None = None) -> Reproduction:
        """A version's selection resolved in its archives now and compared with what it pinned,
        leaf by leaf (in full: no "changed since" shortcut). An archive that fails makes the
        comparison's ``error``, never an exception; blocks.

        Raises ``NotFound`` for a set or version you cannot read.
        """
        version = self._sets.version(set_id, number)
        pinned = self._sets.manifest(version.manifest_id)
        try:
            now, states, notes = self._resolve_now(version, pinned, None)
        except (MediatorError, _NotHere) as exc:
            return Reproduction(set_id, version.number, len(pinned), error=str(exc))
        diff = ManifestDiff.between(pinned, now)
        changes = [
            LeafChange(old.source_id, old.path, "revised", old.fingerprint, new.fingerprint)
            for old, new in diff.changed
        ]
        changes.extend(
            LeafChange(old.source_id, old.path, "removed", old.fingerprint) for old in diff.removed
        )
        changes.sort(key=lambda c: (c.source_id, c.path))
        return Reproduction(
            set_id,
            version.number,
            len(pinned),
            tuple(changes),
            len(diff.added_lines),
            tuple(states),
            tuple(notes),
        )

    # -- reads ---------------------------------------------------------------------------------
    def _pending(self, set_id: str, number: int) -> DriftRecord | None:
        """The update of a version, unless it is none (the archive went back to the pinned data)."""
        record = self._store.state.drift.get((set_id, number))
        return None if record is None or record.empty else record

    def status(self, set_id: str) -> TrackStatus:
        rs = self._sets.get(set_id)
        drift = self._pending(set_id, rs.head) if rs.head is not None else None
        declined = drift is not None and self._me in drift.dismissed
        last = self._store.state.checks.get(set_id)
        if last is not None and last.version != rs.head:
            last = None
        return TrackStatus(set_id, None if declined else drift, last, declined, drift)

    def drift(self, set_id: str) -> DriftRecord | None:
        """The update of the set's head version found by the last check (declined ones too)."""
        rs = self._sets.get(set_id)
        return self._pending(set_id, rs.head) if rs.head is not None else None

    def updates(self) -> list[tuple[ReplicaSet, DriftRecord]]:
        """Sets you follow or own with an update you have not declined: the tray's "N sets have
        updates"."""
        out = []
        for rs in self._sets.list():
            if rs.head is None or (self._me not in rs.followers and rs.owner != self._me):
                continue
            drift = self._pending(rs.id, rs.head)
            if drift is not None and self._me not in drift.dismissed:
                out.append((rs, drift))
        return out

    def diff(self, set_id: str) -> tuple[SelectionDiff, ManifestDiff]:
        """The pinned version against what the archives hold now (the last check's finding)."""
        drift = self._required(set_id)
        pinned = self._sets.version(set_id)
        pinned_manifest = self._sets.manifest(pinned.manifest_id)
        return SelectionDiff.between(pinned.selection, pinned.selection), ManifestDiff.between(
            pinned_manifest, self._apply(pinned_manifest, drift)
        )

    def _required(self, set_id: str) -> DriftRecord:
        drift = self.drift(set_id)
        if drift is None:
            name = self._sets.get(set_id).name
            raise NotFound(
                f"{name!r} has no archive update to look at: its version is what the archives "
                f"held at the last check (check again: `mediator sets check {name!r}`)"
            )
        return drift

    # -- accept, decline ---------------------------------------------------------------------
    def accept(self, set_id: str, *, fork: bool = False, name: str = "") -> Outcome:
        """Commit the update as the set's next version (owner and editors), or with ``fork`` as
        the first version after the pinned one of a new set of yours."""
        from mediator_desktop.core.service import Outcome

        rs = self._sets.get(set_id)
        drift = self._required(set_id)
        pinned = self._sets.version(set_id)
        now = self._apply(self._sets.manifest(pinned.manifest_id), drift)
        state = f" ({drift.state})" if drift.state else ""
        message = f"archive update accepted: {drift.summary}{state}"
        if not fork and not rs.can_edit(self._me):
            if rs.visibility is Visibility.PUBLIC:
                hint = f"make a copy of yours with it: `mediator sets accept {rs.name!r} --fork`"
            else:
                hint = "ask its owner to accept it (a set that is not public cannot be copied)"
            raise PermissionDenied(f"only the owner and editors of {rs.name!r} may accept its update; {hint}")
        target = set_id
        if fork:
            target = self._sets.duplicate(set_id, pinned.number, name)
            head: int | None = 1
        else:
            head = pinned.number
        version = self._sets.commit(target, pinned.selection, now, message, expected_head=head)
        return Outcome(target, version, len(now), now.total_size)

    def dismiss(self, set_id: str) -> None:
        """Decline the set's update: it stays silent for you; the set keeps its version."""
        drift = self._required(set_id)
        self._signer.do("dismiss_drift", set_id=set_id, version=drift.version, manifest_id=drift.manifest_id)

    # -- the schedule --------------------------------------------------------------------------
    def start(self) -> None:
        """Check due sets in the background from now on (the node started)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="update-checks", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        """Look for due sets now (the interval changed)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            interval = self._interval()
            tick = TICK_S if interval <= 0 else min(TICK_S, max(0.2, interval / 4))
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_due()
            except Exception:  # a defect must not end the schedule
                log.exception("scheduled update checks failed")

    def run_due(self) -> list[CheckOutcome]:
        """One round: check the sets that are due here now (see the module's doc)."""
        with self._checking:
            local = self._local_sets()
            if self._interval() <= 0:
                return []  # checks are off: local changes wait for a check on demand
            due = self._due()
            state_sets = self._store.state.sets
            chosen = [state_sets[i] for i in sorted(local | {rs.id for rs in due}) if i in state_sets]
            return self._check_all(chosen) if chosen else []

    def _due(self) -> list[ReplicaSet]:
        interval = self._interval()
        if interval <= 0:
            return []
        try:
            status = self._store.status()
        except MediatorError:
            return []
        leader = status.leader is not None and status.leader == status.self_address
        now = self._clock()
        state = self._store.state
        due = []
        for rs in list(state.sets.values()):
            if rs.head is None or not rs.followers:
                continue
            versions = state.versions.get(rs.id, [])
            if len(versions) < rs.head:
                continue
            last = state.checks.get(rs.id)
            since = max(versions[rs.head - 1].time, last.time if last is not None else 0.0)
            waited = now - since
            # The leader checks what is due; another member only what the leader left for two
            # intervals (it lacks the archive, or is gone), and only with every archive at hand.
            if (leader and waited >= interval) or (
                waited >= 2 * interval and all(s in self._archives.ids() for s in _sources(versions, rs))
            ):
                due.append(rs)
        return due

    def _on_indexing(self, event: SourceIndexing) -> None:
        """A local archive re-indexed: check the sets that point into it, on this node, soon.
        (Called on the indexing thread, maybe before the store runs: the sets are found later.)"""
        if not event.finished or event.error or not event.changed:
            return
        with self._local_lock:
            self._local_sources.add(event.source_id)
        self._wake.set()

    def _local_sets(self) -> set[str]:
        """Sets of yours pointing into the local archives that re-indexed since the last round."""
        with self._local_lock:
            sources, self._local_sources = self._local_sources, set()
        if not sources:
            return set()
        state = self._store.state
        touched = set()
        for rs in list(state.sets.values()):
            # Your folder changed: your sets (on a share every member mounts, each member checks
            # its own users' sets; the store keeps one record of what they found).
            if rs.head is None or (self._me not in rs.followers and rs.owner != self._me):
                continue
            versions = state.versions.get(rs.id, [])
            if len(versions) >= rs.head and sources & set(versions[rs.head - 1].selection.sources):
                touched.add(rs.id)
        return touched


def _sources(versions: list[Version], rs: ReplicaSet) -> tuple[str, ...]:
    assert rs.head is not None
    return tuple(versions[rs.head - 1].selection.sources)
