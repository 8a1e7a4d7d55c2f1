"""The replicated store on pysyncobj: one Raft log of signed commands, applied by ``StoreState``.

Wire protocol: the one replicated method is ``apply_commands`` (pysyncobj numbers methods by
sorted name, so it must never be renamed; a new protocol adds ``apply_commands`` with ``ver=2``).
It takes a batch of envelopes: while a batch is on its way, new commands from any thread gather
into the next one (group commit), so many clients share each round trip. The call goes into the
log pickled with the highest protocol (``RaftStore._replicate``). The dump format is
``StoreState.to_dump()``. Traffic is always encrypted with the cluster secret: without
it, pysyncobj speaks plain pickle, and anyone reaching the port could run code. The cipher is
XChaCha20-Poly1305 (``raft.cipher``), not pysyncobj's Fernet, and messages are neither
zlib-compressed nor pickled with protocol 2 (``raft.transport``): wire protocol 3.

Every node stores every replica set. ``private`` is access control, not secrecy from the
administrators of the machines in the cluster.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.journal import FileJournal
from pysyncobj.pipe_notifier import PipeNotifier
from pysyncobj.syncobj import _COMMAND_TYPE

from mediator_desktop.core.commands import MAX_COMMAND_BYTES, SEALED_HERE, parse
from mediator_desktop.core.errors import ClusterUnavailable, OutcomeUnknown, ValidationError
from mediator_desktop.core.events import (
    Event,
    EventBus,
    LeaderChanged,
    MemberConnected,
    MemberDisconnected,
    MemberJoined,
    MemberLeft,
    StateReloaded,
)
from mediator_desktop.core.state import Result, StoreState
from mediator_desktop.core.store import ClusterStatus, Member
from mediator_desktop.raft.cipher import ClusterCipher
from mediator_desktop.raft.journal import SafeJournal
from mediator_desktop.raft.transport import SteadyTransport

log = logging.getLogger(__name__)

#: Batches of commands on their way at once; what arrives meanwhile waits for the next batch.
MAX_INFLIGHT = 2
#: Bytes of envelopes in one batch (a single larger envelope still goes alone): each replicated
#: command stays well under 64 KB.
MAX_BATCH_BYTES = 56_000

#: Election timeouts of a cluster node (seconds, drawn at random between the two). A leader that
#: stops answering (killed, paused, cut off) is noticed after the lower to the upper bound, and a
#: split vote costs one more draw: with (0.8, 2.0), a paused leader left the cluster without a
#: write for 3-4 s (issue 21). pysyncobj's own defaults are (0.4, 1.4); the leader's heartbeat
#: goes out every 0.1 s, five times within the lower bound.
ELECTION_TIMEOUT = (0.5, 1.2)
#: The longest pause between two tries of a command that was surely not applied ("no leader"):
#: a try costs a local check, and a long pause would outlast the election it waits for.
MAX_RETRY_DELAY = 0.1
#: How long a caller that stopped waiting still gives commands handed to the raft thread to be
#: answered "could not go out" (seconds), before it calls their outcome unknown.
ANSWER_GRACE = 0.2

#: Outcomes after which the same command may be sent again: it was not applied, or a retry of the
#: identical envelope returns the first answer (the state remembers results per author and seq).
_RETRYABLE = {
    FAIL_REASON.QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.DISCARDED,
    FAIL_REASON.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED,
    FAIL_REASON.UNKNOWN_OUTCOME,
}
#: Of those, the outcomes after which the command may have been applied all the same.
_MAYBE_APPLIED = {FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME}


class _ClusterSyncObj(SyncObj):  # type: ignore[misc]
    """pysyncobj's node, with the cluster's AEAD (``raft.cipher``) on every connection instead of
    Fernet. pysyncobj's connections take the encryptor from this property."""

    def __init__(self, *args: Any, cipher: ClusterCipher, **kwargs: Any) -> None:
        self._cipher = cipher  # before the transport starts: it asks for the encryptor at once
        super().__init__(*args, **kwargs)
        # pysyncobj's tick thread stops as soon as the thread that made the node has ended: a node
        # made on a worker thread (a join run by the app's thread pool) went deaf once that thread
        # was done, and its peers lost it. The tick thread follows the program's main thread
        # instead, which is what pysyncobj means by it (stop when the program ends).
        if self._SyncObj__mainThread is not None:  # type: ignore[has-type]
            self._SyncObj__mainThread = threading.main_thread()
        journal = self._SyncObj__raftLog
        if type(journal) is FileJournal:
            journal.__class__ = SafeJournal  # trimmed by a rename, not rewritten in place

    @property
    def encryptor(self) -> ClusterCipher:
        return self._cipher

    def _getEncryptor(self) -> ClusterCipher:
        return self._cipher

    def _SyncObj__loadDumpFile(self, clearJournal: bool) -> None:
        """Load the full dump at start-up without losing the journal entries that follow it.

        The dump is written in a forked child and renamed into place; the journal is trimmed to
        match only on a later tick. A node killed in between starts with a journal that begins
        before the dump, and pysyncobj then cleared the whole journal, entries after the dump
        (committed and acknowledged) included. Trimming the journal to the dump first keeps them.
        """
        if clearJournal:  # a dump sent by the leader replaces everything
            super()._SyncObj__loadDumpFile(clearJournal)
            return
        serializer = self._SyncObj__serializer
        read = serializer.deserialize

        def deserialize() -> Any:
            data = read()
            self._align_journal(data[2], data[1])
            return data

        serializer.deserialize = deserialize
        try:
            super()._SyncObj__loadDumpFile(clearJournal)
        finally:
            del serializer.deserialize

    def _align_journal(self, first: tuple[Any, ...], last: tuple[Any, ...]) -> None:
        """Drop the journal entries before ``first``, the dump's first entry, when ``first`` and
        ``last`` (its last) stand in the journal as written."""
        journal = self._SyncObj__raftLog
        if len(journal) < 2:
            return
        offset = first[1] - journal[0][1]
        if 0 < offset < len(journal) - 1 and journal[offset] == first and journal[offset + 1] == last:
            log.info("journal starts %d entries before the full dump; trimming it to the dump", offset)
            journal.deleteEntriesTo(offset)


def raft_conf(
    secret: str,
    raft_dir: Path,
    election_timeout: tuple[float, float] = ELECTION_TIMEOUT,
    *,
    auto_tick: bool = True,
) -> SyncObjConf:
    """The pysyncobj settings of a store node (benchmarks give a bare counter the same)."""
    low, high = election_timeout
    return SyncObjConf(
        password=secret,
        journalFile=str(raft_dir / "journal.bin"),
        fullDumpFile=str(raft_dir / "dump.bin"),
        appendEntriesUseBatch=False,  # each command goes out at once: low latency for one client
        dynamicMembershipChange=True,
        commandsWaitLeader=False,  # no leader: fail fast and let submit_many retry until its deadline
        raftMinTimeout=low,
        raftMaxTimeout=high,
        appendEntriesPeriod=min(0.1, low / 4),
        leaderFallbackTimeout=max(3 * high, 3.0),
        connectionRetryTime=min(1.0, low),
        autoTick=auto_tick,
        logCompactionMinEntries=20_000,
        logCompactionMinTime=60,
    )


class _Replicated(SyncObjConsumer):  # type: ignore[misc]
    """The state as pysyncobj sees it: one replicated method and a dump of our own format."""

    def __init__(self, state: StoreState, on_reload: Callable[[], None]) -> None:
        super().__init__()
        self.state = state
        self._on_reload = on_reload

    def _serialize(self) -> dict[str, Any]:
        return self.state.to_dump()

    def _deserialize(self, data: dict[str, Any]) -> None:
        fresh = StoreState.from_dump(data)
        fresh.listener = self.state.listener
        self.state = fresh
        self._on_reload()

    @replicated  # type: ignore[untyped-decorator]
    def apply_commands(self, commands: list[bytes]) -> list[Result]:
        """Called on the raft thread of every node, in log order."""
        if not isinstance(commands, list):
            return []
        return [self.state.apply(command, SEALED_HERE.take) for command in commands]


class _Ticket:
    """One command waiting for its batch to be applied.

    ``pending`` is a plain lock, held until the outcome is in: releasing it costs the raft thread
    less than setting an ``Event`` (no condition, no waiter list), once per command.
    """

    __slots__ = ("command", "error", "pending", "result")

    def __init__(self, command: bytes) -> None:
        self.command = command
        self.pending = threading.Lock()
        self.pending.acquire()
        self.result: Result | None = None
        self.error: int | None = None

    def finish(self, error: int, result: Result | None) -> None:
        if self.error is not None:
            return  # pysyncobj calls each callback once; an Event was idempotent, so stay so
        self.error, self.result = error, result
        self.pending.release()

    def wait(self, timeout: float) -> bool:
        return self.pending.acquire(timeout=max(0.0, timeout))


class _Flight:
    """One call of ``apply_commands`` on its way through the log, answered exactly once: by
    pysyncobj, or by ``RaftStore._expire`` when pysyncobj has lost it."""

    __slots__ = ("answer", "batched", "done", "sent_at")

    def __init__(self, answer: Callable[[list[Result] | None, int], None], *, batched: bool) -> None:
        self.answer = answer
        self.batched = batched  # counts towards MAX_INFLIGHT
        self.done = False
        self.sent_at = time.monotonic()


class RaftStore:
    """A node of the replicated store. ``peers`` may be empty: a one-node cluster works alone."""

    def __init__(
        self,
        self_address: str,
        peers: list[str],
        data_dir: Path,
        secret: str,
        *,
        events: EventBus | None = None,
        election_timeout: tuple[float, float] = ELECTION_TIMEOUT,
        auto_tick: bool = True,
        watch_interval: float = 0.5,
    ) -> None:
        if not secret:
            raise ValidationError("a cluster secret is required: without one, Raft traffic is plain pickle")
        self.events = events or EventBus()
        self.self_address = self_address
        raft_dir = data_dir / "raft"
        raft_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state = StoreState()
        state.listener = self._relay
        self._replicated = _Replicated(state, lambda: self._relay(StateReloaded()))
        conf = raft_conf(secret, raft_dir, election_timeout, auto_tick=auto_tick)
        self._sync = _ClusterSyncObj(
            self_address,
            peers,
            conf,
            consumers=[self._replicated],
            transportClass=SteadyTransport,
            cipher=ClusterCipher(secret),
        )
        consumer = id(self._replicated)
        self._apply_id = self._sync._methodToID[
            (consumer, self._sync._getFuncName((consumer, "apply_commands")))
        ]
        # A lone node has no follower whose answer wakes its event loop after it appends a
        # command, so it would commit only at its next timer tick (50 ms). Wake it while
        # commands are in flight.
        self._queue: deque[_Ticket] = deque()
        self._inflight = 0
        self._flights: deque[_Flight] = deque()  # in the order they were sent
        self._handing_over = False
        self._batch_lock = threading.RLock()
        self._waker = PipeNotifier(self._sync._poller)
        self._sync.addOnTickCallback(self._nudge)
        self._closed = threading.Event()
        self._last_seen: tuple[str | None, frozenset[str]] = (None, frozenset())
        # Members as the watcher last saw them, and changes this node announced itself (so the
        # watcher does not announce them twice).
        self._members_seen = frozenset(peers)
        self._members_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        if auto_tick:
            self._watcher = threading.Thread(
                target=self._watch, args=(watch_interval,), name="raft-status", daemon=True
            )
            self._watcher.start()

    def _nudge(self) -> None:
        """Called on the raft thread at the end of each tick."""
        if self._inflight and not self._sync.otherNodes:
            self._waker.notify()
        if self._flights:
            self._expire()
        if self._handing_over:
            self._handing_over = False
            self._sync.transferLeadership()  # sends at once: on this thread, as all other traffic

    def _patience(self) -> float:
        """How long a call may stay unanswered before it counts as lost: longer than an election."""
        return max(1.0, 2 * float(self._sync.conf.raftMaxTimeout))

    def _expire(self) -> None:
        """Answer calls that pysyncobj lost with "unknown outcome", so that they are sent again.

        A follower forwards a command to the leader once; if that message is lost (the connection
        dropped, or was not yet keyed) and the leader stays the same, pysyncobj never answers.
        Without this, the waiting callers would time out, and two such losses would stop this
        node from sending anything. Resending is safe: the state answers a repeated envelope with
        its first result and applies it once.
        """
        horizon = time.monotonic() - self._patience()
        try:
            if self._flights[0].sent_at >= horizon:  # the oldest is in time: all are (every tick)
                return
        except IndexError:
            return
        with self._batch_lock:
            lost = [f for f in self._flights if f.sent_at < horizon]
        for flight in lost:
            log.warning(
                "a replicated call got no answer in %.1f s (lost on its way to the leader?); "
                "answering it as unknown, so that it is sent again",
                self._patience(),
            )
            self._land(flight, None, FAIL_REASON.UNKNOWN_OUTCOME)

    def _relay(self, event: Event) -> None:
        """Called on the raft thread."""
        self.events.emit(event)

    # -- reads ---------------------------------------------------------------------------------
    @property
    def state(self) -> StoreState:
        return self._replicated.state

    @property
    def transport(self) -> SteadyTransport:
        """This node's transport (tests set its ``drop`` hook to lose messages)."""
        transport: SteadyTransport = self._sync._SyncObj__transport
        return transport

    @property
    def syncobj(self) -> SyncObj:
        """The pysyncobj object (tests tick it by hand when ``auto_tick`` is off)."""
        return self._sync

    def status(self) -> ClusterStatus:
        s = self._sync.getStatus()
        leader = str(s["leader"]) if s["leader"] is not None else None
        members = [Member(self.self_address, True, True, leader == self.self_address)]
        for key, value in s.items():
            if key.startswith("partner_node_status_server_"):
                address = key.removeprefix("partner_node_status_server_")
                members.append(Member(address, False, value == 2, leader == address))
        return ClusterStatus(
            self.self_address,
            leader,
            bool(s["has_quorum"]),
            int(s["raft_term"]),
            int(s["commit_idx"]),
            int(s["last_applied"]),
            tuple(sorted(members, key=lambda m: m.address)),
        )

    # -- writes --------------------------------------------------------------------------------
    def _precheck(self, command: bytes) -> None:
        """Refuse what must never reach the log: oversized or unparsable commands."""
        if len(command) > MAX_COMMAND_BYTES:
            raise ValidationError(
                f"command of {len(command)} bytes refused: "
                f"at most {MAX_COMMAND_BYTES} fit in one replicated command"
            )
        if SEALED_HERE.get(command) is None:
            parse(command)

    def submit_async(self, command: bytes, callback: Callable[[Result | None, int], None]) -> None:
        """Send one command without waiting; ``callback(result, pysyncobj error)`` runs on the raft thread."""
        self._precheck(command)

        def unpack(results: list[Result] | None, error: int) -> None:
            callback(results[0] if results else None, error)

        self._send([command], _Flight(unpack, batched=False))

    def tick(self, timeout: float = 0.0) -> None:
        """Run one step of the Raft loop by hand (only with ``auto_tick=False``, as tests do)."""
        self._sync.doTick(timeout)

    def submit(self, command: bytes, timeout: float | None = None) -> Result:
        return self.submit_many([command], timeout)[0]

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Result]:
        """Send commands in order and wait for all; retries those that may not have been applied.

        A retry sends the identical envelope; the state answers it with its first result, so a
        command is never applied twice.

        Raises:
            OutcomeUnknown: no answer in time for a command that went out to the cluster (or was
                answered "leader changed" or "unknown"): it may have been applied, or may still be.
            ClusterUnavailable: no answer in time, and none of the commands went out (no leader was
                reachable): nothing was written.
        """
        for command in commands:
            self._precheck(command)
        deadline = time.monotonic() + (10.0 if timeout is None else timeout)
        results: list[Result | None] = [None] * len(commands)
        pending = list(range(len(commands)))
        maybe = False  # whether a try of a pending command may have reached the log
        delay = 0.01
        while pending:
            tickets = [_Ticket(commands[i]) for i in pending]
            with self._batch_lock:
                self._queue.extend(tickets)
            self._flush()
            retry = []
            for i, ticket in zip(pending, tickets, strict=True):
                if not ticket.wait(deadline - time.monotonic()):
                    raise self._gave_up(tickets, maybe)
                if ticket.error == FAIL_REASON.SUCCESS:
                    results[i] = ticket.result
                elif ticket.error in _RETRYABLE:
                    maybe = maybe or ticket.error in _MAYBE_APPLIED
                    retry.append(i)
                else:
                    raise ClusterUnavailable(
                        f"the cluster refused the command (pysyncobj error {ticket.error})"
                    )
            pending = retry
            if pending:
                if time.monotonic() + delay >= deadline:
                    raise self._unavailable(maybe)
                time.sleep(delay)  # back off before a retry: an election is under way
                delay = min(delay * 2, MAX_RETRY_DELAY)
        return [r for r in results if r is not None]

    def _gave_up(self, tickets: list[_Ticket], maybe: bool) -> ClusterUnavailable:
        """The error for a caller that stops waiting: tickets not sent yet are taken back (they
        will not go out after the caller was told), those on their way may still be applied."""
        with self._batch_lock:
            unsent = [t for t in tickets if t in self._queue]
            for ticket in unsent:
                self._queue.remove(ticket)
        sent = [t for t in tickets if t not in unsent]
        # A command handed to the raft thread may only be waiting for its turn there (a loaded
        # machine): a short grace tells "it could not go out" (answered at once: no leader) from
        # "no answer", so the caller hears "nothing was written" when that is so.
        end = time.monotonic() + ANSWER_GRACE
        for ticket in sent:
            if ticket.error is None:
                ticket.wait(end - time.monotonic())
        on_their_way = any(
            t.error is None or t.error == FAIL_REASON.SUCCESS or t.error in _MAYBE_APPLIED for t in sent
        )
        return self._unavailable(maybe or on_their_way)

    def _unavailable(self, maybe: bool) -> ClusterUnavailable:
        s = self.status()
        reachable = sum(m.connected for m in s.members)
        said = (
            f"no quorum: {reachable} of {len(s.members)} cluster members are reachable and no leader "
            "answered in time; "
        )
        if maybe:
            return OutcomeUnknown(
                said + "the change was not confirmed: it may have been applied, or may still be once "
                "enough members are back. Start the other members or check the network, then look "
                "before trying again."
            )
        return ClusterUnavailable(
            said + "nothing was written. Start the other members or check the network, then try again."
        )

    def _flush(self) -> None:
        """Send queued commands as batches, keeping at most ``MAX_INFLIGHT`` batches on their way.

        Called on submitting threads and on the raft thread (when a batch is done).
        """
        while True:
            # Handing the batch to pysyncobj under the lock keeps batches in queue order: a
            # manifest's chunks must reach the log in order. (An RLock: pysyncobj may call the
            # finisher at once, on this thread, when its queue is full.)
            with self._batch_lock:
                if self._inflight >= MAX_INFLIGHT or not self._queue:
                    return
                batch = [self._queue.popleft()]
                size = len(batch[0].command)
                while self._queue and size + len(self._queue[0].command) <= MAX_BATCH_BYTES:
                    size += len(self._queue[0].command)
                    batch.append(self._queue.popleft())
                self._inflight += 1
                self._send([t.command for t in batch], _Flight(self._finisher(batch), batched=True))

    def _send(self, commands: list[bytes], flight: _Flight) -> None:
        with self._batch_lock:
            self._flights.append(flight)
        self._replicate(commands, lambda results, error: self._land(flight, results, error))

    def _land(self, flight: _Flight, results: list[Result] | None, error: int) -> None:
        """Answer a call once (pysyncobj's late answer after an expiry is dropped)."""
        with self._batch_lock:
            if flight.done:
                return
            flight.done = True
            self._flights.remove(flight)
            if flight.batched:
                self._inflight -= 1
        flight.answer(results, error)

    def _replicate(self, commands: list[bytes], callback: Callable[[list[Result] | None, int], None]) -> None:
        """Append a call of ``apply_commands(commands)`` to the log, as ``@replicated`` would, but
        pickled with the highest protocol: pysyncobj's protocol 2 sends ``bytes`` through latin-1
        text, half as large again for signatures and manifest chunks, and slower. Every node
        reads either (``pickle.loads`` knows the protocol from the data)."""
        call = pickle.dumps((self._apply_id, (commands,)), pickle.HIGHEST_PROTOCOL)
        self._sync._applyCommand(call, callback, _COMMAND_TYPE.REGULAR)

    def _finisher(self, batch: list[_Ticket]) -> Callable[[list[Result] | None, int], None]:
        def finish(results: list[Result] | None, error: int) -> None:
            """Called on the raft thread (through ``_land``, which counted the batch as landed)."""
            ok = error == FAIL_REASON.SUCCESS and results is not None
            for i, ticket in enumerate(batch):
                ticket.finish(error, results[i] if ok and results is not None else None)
            self._flush()

        return finish

    # -- membership ----------------------------------------------------------------------------
    def set_election_timeout(self, timeout: tuple[float, float]) -> None:
        """Change the election timeouts at run time (a lone node that gained peers needs longer ones)."""
        conf = self._sync.conf
        conf.raftMinTimeout, conf.raftMaxTimeout = timeout
        conf.appendEntriesPeriod = min(0.1, timeout[0] / 4)
        conf.leaderFallbackTimeout = max(3 * timeout[1], 3.0)

    def add_member(self, address: str, timeout: float = 10.0) -> None:
        self._membership(self._sync.addNodeToCluster, address, timeout)
        self._note_members()

    def remove_member(self, address: str, timeout: float = 10.0) -> None:
        self._membership(self._sync.removeNodeFromCluster, address, timeout)
        self._note_members()

    def leave(self, timeout: float = 5.0) -> bool:
        """Ask the cluster to remove this node; True when the cluster confirmed it.

        The leader drops a removed node at once, so the answer often never comes back (pysyncobj
        then says "leader changed", or nothing): without it, the removal most likely went through;
        if this machine still shows as a member elsewhere, remove it there (``remove_member``).

        A leader hands its role to another member first: a leader that removes itself commits the
        change on its own and stops, and a member it never told keeps waiting for it (with two
        members, forever: one of two is no majority).
        """
        if self._sync._isLeader() and self._sync.otherNodes:
            self._hand_over(timeout)
        try:
            self._membership(
                self._sync.removeNodeFromCluster,
                self.self_address,
                timeout,
                accept=(FAIL_REASON.SUCCESS, FAIL_REASON.LEADER_CHANGED),
            )
            confirmed = True
        except ClusterUnavailable as exc:
            log.warning("leaving: %s; the cluster may still list this node", exc)
            confirmed = False
        self.events.emit(MemberLeft(self.self_address, confirmed))
        return confirmed

    def _hand_over(self, timeout: float) -> None:
        """Make another member the leader (best effort: on failure, leave as the leader)."""
        self._handing_over = True  # done by the raft thread's next tick (``_nudge``)
        self._waker.notify()
        deadline = time.monotonic() + timeout
        while not self._closed.wait(0.02) and time.monotonic() < deadline:
            leader = self._sync.getStatus()["leader"]
            if leader is not None and str(leader) != self.self_address:
                return
        log.warning("leaving: no other member took over as leader in %.0f s; leaving as the leader", timeout)

    def _membership(
        self,
        change: Callable[..., None],
        address: str,
        timeout: float,
        accept: tuple[int, ...] = (FAIL_REASON.SUCCESS,),
    ) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            done = threading.Event()
            outcome: list[int] = []

            def callback(
                result: Any, error: int, outcome: list[int] = outcome, done: threading.Event = done
            ) -> None:
                outcome.append(error)
                done.set()

            change(address, callback=callback)
            if not done.wait(max(0.0, deadline - time.monotonic())):
                raise ClusterUnavailable(f"changing membership ({address}) got no answer in {timeout:.0f} s")
            # Not sent, or sent to a node that no longer leads: surely not applied, so ask again.
            if outcome[0] not in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER) or outcome[0] in accept:
                break
            if time.monotonic() + delay >= deadline:
                break
            self._closed.wait(delay)
            delay = min(2 * delay, 0.5)
        if outcome[0] not in accept:
            raise ClusterUnavailable(
                f"the cluster refused the membership change for {address} (error {outcome[0]})"
            )

    # -- lifecycle -----------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until this node knows a leader and has applied the log it was handed."""
        deadline = time.monotonic() + timeout
        while not self._closed.wait(0.02):
            s = self._sync.getStatus()
            # Read while the raft thread runs: a new leader is known a tick before its commit index.
            commit = s["leader_commit_idx"]
            if (
                s["leader"] is not None
                and s["has_quorum"]
                and commit is not None
                and s["last_applied"] >= commit
            ):
                return
            if time.monotonic() > deadline:
                reachable = sum(m.connected for m in self.status().members)
                raise ClusterUnavailable(
                    f"no quorum: {reachable} of {len(self.status().members)} cluster members are "
                    f"reachable and no leader was agreed on in {timeout:.0f} s. Start the other members "
                    "or check the network, then try again."
                )

    def _watch(self, interval: float) -> None:
        """Turn Raft status changes into events (pysyncobj has no callbacks for them)."""
        while not self._closed.wait(interval):
            try:
                s = self.status()
            except ReferenceError:  # pysyncobj is being destroyed
                return
            seen = (s.leader, frozenset(m.address for m in s.members if m.connected and not m.is_self))
            leader, connected = self._last_seen
            if seen[0] != leader:
                self.events.emit(LeaderChanged(seen[0]))
            for address in sorted(seen[1] - connected):
                self.events.emit(MemberConnected(address))
            for address in sorted(connected - seen[1]):
                self.events.emit(MemberDisconnected(address))
            self._last_seen = seen
            self._note_members()

    def _note_members(self) -> None:
        """Announce members added or removed since the last look, once each: by this node (then
        pysyncobj has applied the change when its call returns) or by another one, which every
        node hears of through the watcher."""
        with self._members_lock:
            # Read under the lock: a status read before another thread's note would undo it.
            members = frozenset(m.address for m in self.status().members if not m.is_self)
            joined, left = members - self._members_seen, self._members_seen - members
            self._members_seen = members
        for address in sorted(joined):
            self.events.emit(MemberJoined(address))
        for address in sorted(left):
            self.events.emit(MemberLeft(address))

    def close(self) -> None:
        """Stop the node and wait for its threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._watcher is not None:
            self._watcher.join()
        if self._sync.tick_thread_alive():
            self._sync.destroy_synchronous()
        else:
            self._sync.destroy()

    def __enter__(self) -> RaftStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
