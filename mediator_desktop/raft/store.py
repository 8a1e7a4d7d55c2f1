"""The replicated store on pysyncobj: one Raft log of signed commands, applied by ``StoreState``.

Wire protocol: the one replicated method is ``apply_command`` (pysyncobj numbers methods by sorted
name, so it must never be renamed; a new protocol adds ``apply_command`` with ``ver=2``). The dump
format is ``StoreState.to_dump()``. Traffic is always encrypted with the cluster secret: without
it, pysyncobj speaks plain pickle, and anyone reaching the port could run code.

Every node stores every replica set. ``private`` is access control, not secrecy from the
administrators of the machines in the cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.pipe_notifier import PipeNotifier

from mediator_desktop.core.commands import MAX_COMMAND_BYTES, Envelope, parse
from mediator_desktop.core.errors import ClusterUnavailable, ValidationError
from mediator_desktop.core.events import EventBus
from mediator_desktop.core.identity import verify
from mediator_desktop.core.state import Result, StoreState
from mediator_desktop.core.store import ClusterStatus, Member

log = logging.getLogger(__name__)

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


class _VerifiedCache:
    """Digests of envelopes whose signatures this node checked before submitting them.

    Checking a signature is a pure function of the envelope's bytes (a key id names one public key
    for good), so the applying thread may skip checks done on the submitting thread.
    """

    def __init__(self, size: int = 65_536) -> None:
        self._digests: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, digest: str) -> None:
        with self._lock:
            self._digests[digest] = None
            if len(self._digests) > self._size:
                self._digests.popitem(last=False)

    def check(self, envelope: Envelope) -> bool:
        with self._lock:
            return self._digests.pop(envelope.digest, 0) is None


class _Replicated(SyncObjConsumer):  # type: ignore[misc]
    """The state as pysyncobj sees it: one replicated method and a dump of our own format."""

    def __init__(self, state: StoreState, verified: _VerifiedCache, on_reload: Callable[[], None]) -> None:
        super().__init__()
        self.state = state
        self._verified = verified
        self._on_reload = on_reload

    def _serialize(self) -> dict[str, Any]:
        return self.state.to_dump()

    def _deserialize(self, data: dict[str, Any]) -> None:
        fresh = StoreState.from_dump(data)
        fresh.listener = self.state.listener
        self.state = fresh
        self._on_reload()

    @replicated  # type: ignore[untyped-decorator]
    def apply_command(self, command: bytes) -> Result:
        """Called on the raft thread of every node, in log order."""
        return self.state.apply(command, self._verified.check)


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
        election_timeout: tuple[float, float] = (0.8, 2.0),
        auto_tick: bool = True,
        watch_interval: float = 0.5,
    ) -> None:
        if not secret:
            raise ValidationError("a cluster secret is required: without one, Raft traffic is plain pickle")
        self.events = events or EventBus()
        self.self_address = self_address
        raft_dir = data_dir / "raft"
        raft_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._verified = _VerifiedCache()
        state = StoreState()
        state.listener = self._relay
        self._replicated = _Replicated(state, self._verified, lambda: self._relay("state_reloaded", {}))
        low, high = election_timeout
        conf = SyncObjConf(
            password=secret,
            journalFile=str(raft_dir / "journal.bin"),
            fullDumpFile=str(raft_dir / "dump.bin"),
            appendEntriesUseBatch=False,
            dynamicMembershipChange=True,
            commandsWaitLeader=False,
            raftMinTimeout=low,
            raftMaxTimeout=high,
            appendEntriesPeriod=min(0.1, low / 4),
            leaderFallbackTimeout=max(3 * high, 3.0),
            connectionRetryTime=min(1.0, low),
            autoTick=auto_tick,
            logCompactionMinEntries=20_000,
            logCompactionMinTime=60,
        )
        self._sync = SyncObj(self_address, peers, conf, consumers=[self._replicated])
        # A lone node has no follower whose answer wakes its event loop after it appends a
        # command, so it would commit only at its next timer tick (50 ms). Wake it while
        # commands are in flight.
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._waker = PipeNotifier(self._sync._poller)
        self._sync.addOnTickCallback(self._nudge)
        self._closed = threading.Event()
        self._last_seen: tuple[str | None, frozenset[str]] = (None, frozenset())
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

    def _relay(self, kind: str, details: dict[str, Any]) -> None:
        """Called on the raft thread."""
        self.events.emit(kind, **details)

    # -- reads ---------------------------------------------------------------------------------
    @property
    def state(self) -> StoreState:
        return self._replicated.state

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
        if len(command) > MAX_COMMAND_BYTES:
            raise ValidationError(
                f"command of {len(command)} bytes refused: "
                f"at most {MAX_COMMAND_BYTES} fit in one replicated command"
            )
        envelope = parse(command)
        if envelope.op == "register_user":
            key = envelope.args.get("public_key")
            public_key = bytes.fromhex(key) if isinstance(key, str) and len(key) == 64 else None
        else:
            user = self.state.users.get(envelope.author)
            public_key = user.public_key if user else None
        if public_key is not None and verify(public_key, envelope.signature, envelope.signed):
            self._verified.add(envelope.digest)

    def submit_async(self, command: bytes, callback: Callable[[Result | None, int], None]) -> None:
        """Send one command without waiting; ``callback(result, pysyncobj error)`` runs on the raft thread."""
        self._precheck(command)
        self._replicated.apply_command(command, callback=callback)

    def tick(self, timeout: float = 0.0) -> None:
        """Run one step of the Raft loop by hand (only with ``auto_tick=False``, as tests do)."""
        self._sync.doTick(timeout)

    def submit(self, command: bytes, timeout: float | None = None) -> Result:
        return self.submit_many([command], timeout)[0]

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Result]:
        """Send commands pipelined and wait for all; retries those that may not have been applied."""
        for command in commands:
            self._precheck(command)
        deadline = time.monotonic() + (10.0 if timeout is None else timeout)
        results: list[Result | None] = [None] * len(commands)
        pending = list(range(len(commands)))
        delay = 0.02
        while pending:
            outcomes = self._send([commands[i] for i in pending], deadline)
            retry = []
            for i, (result, error) in zip(pending, outcomes, strict=True):
                if error == FAIL_REASON.SUCCESS:
                    results[i] = result
                elif error in _RETRYABLE or error is None:
                    retry.append(i)
                else:
                    raise ClusterUnavailable(f"the cluster refused the command (pysyncobj error {error})")
            pending = retry
            if pending:
                if time.monotonic() + delay >= deadline:
                    raise ClusterUnavailable(self._unavailable_message(len(pending)))
                time.sleep(delay)  # back off before a retry: an election is under way
                delay = min(delay * 2, 0.5)
        return [r for r in results if r is not None]

    def _send(self, commands: list[bytes], deadline: float) -> list[tuple[Any, int | None]]:
        done = threading.Semaphore(0)
        outcomes: list[tuple[Any, int | None]] = [(None, None)] * len(commands)

        def callback_for(i: int) -> Callable[[Any, int], None]:
            def callback(result: Any, error: int) -> None:
                outcomes[i] = (result, error)
                done.release()

            return callback

        with self._inflight_lock:
            self._inflight += 1
        try:
            for i, command in enumerate(commands):
                self._replicated.apply_command(command, callback=callback_for(i))
            for _ in commands:
                if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
        finally:
            with self._inflight_lock:
                self._inflight -= 1
        return outcomes

    def _unavailable_message(self, waiting: int) -> str:
        s = self.status()
        reachable = sum(m.connected for m in s.members)
        return (
            f"no quorum: {reachable} of {len(s.members)} cluster members are reachable and no leader "
            f"answered in time; {waiting} change(s) not confirmed (they may still be applied once enough "
            "members are back). Start the other members or check the network, then try again."
        )

    # -- membership ----------------------------------------------------------------------------
    def add_member(self, address: str, timeout: float = 10.0) -> None:
        self._membership(self._sync.addNodeToCluster, address, timeout)
        self.events.emit("member_joined", address=address)

    def remove_member(self, address: str, timeout: float = 10.0) -> None:
        self._membership(self._sync.removeNodeFromCluster, address, timeout)
        self.events.emit("member_left", address=address)

    def _membership(self, change: Callable[..., None], address: str, timeout: float) -> None:
        done = threading.Event()
        outcome: list[int] = []

        def callback(result: Any, error: int) -> None:
            outcome.append(error)
            done.set()

        change(address, callback=callback)
        if not done.wait(timeout):
            raise ClusterUnavailable(f"changing membership ({address}) got no answer in {timeout:.0f} s")
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise ClusterUnavailable(
                f"the cluster refused the membership change for {address} (error {outcome[0]})"
            )

    # -- lifecycle -----------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until this node knows a leader and has applied the log it was handed."""
        deadline = time.monotonic() + timeout
        while not self._closed.wait(0.02):
            s = self._sync.getStatus()
            if s["leader"] is not None and s["has_quorum"] and s["last_applied"] >= s["leader_commit_idx"]:
                return
            if time.monotonic() > deadline:
                raise ClusterUnavailable(self._unavailable_message(0))

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
                self.events.emit("leader_changed", leader=seen[0])
            for address in sorted(seen[1] - connected):
                self.events.emit("member_connected", address=address)
            for address in sorted(connected - seen[1]):
                self.events.emit("member_disconnected", address=address)
            self._last_seen = seen

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
