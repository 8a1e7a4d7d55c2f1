"""A history-based safety check of the store: clients, a nemesis, and a checker of what every node holds.

Three node processes (``tests.helpers.processes``). Clients commit versions to shared sets, two
clients per set (so stale heads are refused as conflicts), and record every operation: when it was
invoked and completed, its outcome (``ok`` with the version, ``refused`` with the state's error,
or ``unknown`` when no node answered in time) and its result. Meanwhile a nemesis SIGKILLs the
leader (and restarts it), SIGSTOPs a node for a while (then SIGCONTs it), and restarts a node.
Afterwards every node is checked:

- no acknowledged write lost: each ``ok`` version is on every node, with that operation's message;
- no version created by a refused operation;
- the versions of each set are numbered 1..n without a gap, and identical on every node;
- no two acknowledged commits with the same (set, version).

``run`` returns the figures: operations per outcome and the longest time without a successful
write (``longest_gap_s``). The test runs it for about half a minute; ``bench/safety.py`` longer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import ClusterUnavailable, MediatorError
from tests.helpers.actors import Actor
from tests.helpers.processes import NodeError, NodeProcess, ProcessCluster

#: How long one attempt on one node may take, and one operation over all nodes.
ATTEMPT_S = 2.0
OPERATION_S = 6.0


@dataclass
class Op:
    client: int
    set_id: str
    message: str
    expected_head: int | None
    invoked: float
    completed: float = 0.0
    outcome: str = "unknown"  # ok | refused | unknown
    version: int | None = None
    error: str = ""


@dataclass
class Report:
    ops: list[Op]
    nemesis: list[tuple[float, str]]
    violations: list[str]
    figures: dict[str, Any] = field(default_factory=dict)


def _alive(node: NodeProcess, paused: set[str]) -> bool:
    return node.running and node.address not in paused


#: The faults the nemesis knows, by name (``run``'s ``faults``).
FAULTS = ("kill_leader", "pause_one", "pause_leader", "restart_one")
#: The default rotation: kill the leader, pause a node, restart a node.
DEFAULT_FAULTS = ("kill_leader", "pause_one", "restart_one")
#: Issue 21's scenario (with ``interval=8``, ``pause_s=5``): the leader SIGKILLed every 8 s and,
#: once, SIGSTOPped for 5 s (then resumed and killed again).
ISSUE_21_FAULTS = ("kill_leader", "pause_leader", "kill_leader", "kill_leader", "kill_leader")


class Nemesis:
    """Injects ``faults`` (names from ``FAULTS``) in turn, one every ``interval`` seconds."""

    def __init__(
        self,
        cluster: ProcessCluster,
        interval: float,
        pause_s: float,
        seed: int,
        faults: tuple[str, ...] = DEFAULT_FAULTS,
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown or not faults:
            raise ValueError(f"unknown faults {sorted(unknown)}; the nemesis knows {FAULTS}")
        self.cluster = cluster
        self.interval = interval
        self.pause_s = pause_s
        self.faults = faults
        self.paused: set[str] = set()
        self.log: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self._random = random.Random(seed)
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Nemesis:
        self._thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self._thread.join(120)

    def _say(self, what: str) -> None:
        self.log.append((time.monotonic(), what))

    def leader(self, timeout: float = 20.0) -> NodeProcess | None:
        """The leader the live, unpaused nodes agree on (None if they agree on none in time)."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = [n for n in self.cluster.nodes if _alive(n, self.paused)]
            try:
                leaders = {n.request("status", timeout=2.0)["leader"] for n in nodes}
            except NodeError:
                leaders = {None}
            if len(leaders) == 1 and None not in leaders:
                (address,) = leaders
                return next(n for n in self.cluster.nodes if n.address == address)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def _run(self) -> None:
        faults: list[Callable[[], None]] = [getattr(self, name) for name in self.faults]
        i = 0
        try:
            while not self.stop.wait(self.interval):
                faults[i % len(faults)]()
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def kill_leader(self) -> None:
        leader = self.leader()
        if leader is None:
            self._say("kill: no leader to kill")
            return
        self._say(f"SIGKILL leader {leader.address}")
        leader.kill()
        self.leader(timeout=30.0)  # the others elect a new one (or not: then the restart helps)
        leader.start()
        self._say(f"restarted {leader.address}")

    def pause_one(self) -> None:
        self._pause(self._random.choice([n for n in self.cluster.nodes if n.running]))

    def pause_leader(self) -> None:
        leader = self.leader()
        if leader is None:
            self._say("pause: no leader to pause")
            return
        self._pause(leader)

    def _pause(self, node: NodeProcess) -> None:
        assert node.proc is not None
        self._say(f"SIGSTOP {node.address}")
        self.paused.add(node.address)
        os.kill(node.proc.pid, signal.SIGSTOP)
        self.stop.wait(self.pause_s)  # the fault's length, not a wait for a condition
        os.kill(node.proc.pid, signal.SIGCONT)
        self.paused.discard(node.address)
        self._say(f"SIGCONT {node.address}")

    def restart_one(self) -> None:
        node = self._random.choice([n for n in self.cluster.nodes if n.running])
        self._say(f"restart {node.address}")
        node.stop()
        node.start()
        self._say(f"restarted {node.address}")

    def heal(self) -> None:
        """Every node running and unpaused."""
        for node in self.cluster.nodes:
            if node.running and node.proc is not None:
                os.kill(node.proc.pid, signal.SIGCONT)
            elif not node.running:
                node.start()
        self.paused.clear()


class Client:
    def __init__(
        self, n: int, actor: Actor, set_id: str, cluster: ProcessCluster, nemesis: Nemesis, ops: list[Op]
    ) -> None:
        self.n = n
        self.actor = actor
        self.set_id = set_id
        self.cluster = cluster
        self.nemesis = nemesis
        self.ops = ops
        self.head: int | None = None

    def run(self, stop: threading.Event) -> None:
        count = 0
        while not stop.is_set():
            self.one(f"c{self.n}-{count}")
            count += 1

    def one(self, message: str) -> None:
        op = Op(self.n, self.set_id, message, self.head, time.monotonic())
        self.ops.append(op)  # list.append is atomic
        command = self.actor.commit(self.set_id, self.head, message=message)
        deadline = op.invoked + OPERATION_S
        nodes = self.cluster.nodes
        i = self.n
        while time.monotonic() < deadline:
            node = nodes[i % len(nodes)]
            i += 1
            if not _alive(node, self.nemesis.paused):
                continue
            try:
                result = node.request("submit", command, ATTEMPT_S, timeout=ATTEMPT_S + 1.0)
            except (NodeError, ClusterUnavailable) as exc:
                op.error = str(exc)[:200]
                continue
            except MediatorError as exc:
                op.error = str(exc)[:200]
                continue
            op.completed = time.monotonic()
            if result[0] == "ok":
                op.outcome, op.version = "ok", int(result[1]["version"])
                self.head = op.version
            else:
                op.outcome, op.error = "refused", f"{result[1]}: {result[2]}"
                head = result[3].get("current_head") if isinstance(result[3], dict) else None
                if isinstance(head, int):
                    self.head = head
            return
        op.completed = time.monotonic()  # unknown: it may or may not be applied


def prepare(cluster: ProcessCluster, clients: int) -> tuple[list[Actor], list[str]]:
    """Users, an (empty) manifest, and one set per two clients, its second client an editor."""
    actors = [Actor(f"client{i}") for i in range(clients)]
    deadline = time.monotonic() + 60
    leader = cluster.leader()

    def submit(command: bytes) -> Any:
        while True:
            try:
                return leader.submit(command, timeout=5.0)
            except (NodeError, ClusterUnavailable):
                if time.monotonic() > deadline:
                    raise

    for actor in actors:
        submit(actor.register())
    for command in actors[0].manifest_commands():
        submit(command)
    set_ids = []
    for owner in range(0, clients, 2):
        set_id, create = actors[owner].create(f"set {owner // 2}", visibility="cluster")
        submit(create)
        if owner + 1 < clients:
            submit(actors[owner].cmd("grant_editor", set_id=set_id, key_id=actors[owner + 1].key_id))
        set_ids.append(set_id)
    return actors, [set_ids[i // 2] for i in range(clients)]


def settle(cluster: ProcessCluster, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Each node's snapshot once all have applied the same log and agree on the versions."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            statuses = [n.request("status", timeout=5.0) for n in cluster.nodes]
            snaps = [n.snapshot() for n in cluster.nodes]
        except NodeError:
            statuses, snaps = [], []
        if (
            statuses
            and len({(s["commit_index"], s["last_applied"]) for s in statuses}) == 1
            and all(s["versions"] == snaps[0]["versions"] for s in snaps)
        ):
            return snaps
        if time.monotonic() > deadline:
            raise NodeError(f"the nodes did not agree within {timeout} s: {statuses}")
        time.sleep(0.1)


def check(ops: list[Op], snaps: list[dict[str, Any]], set_ids: list[str]) -> list[str]:
    """The safety properties over the history and every node's versions; returns the violations."""
    violations: list[str] = []
    acked: dict[tuple[str, int], Op] = {}
    for op in ops:
        if op.outcome == "ok":
            assert op.version is not None
            twin = acked.get((op.set_id, op.version))
            if twin is not None:
                violations.append(
                    f"two acknowledged commits of version {op.version}: {twin.message}, {op.message}"
                )
            acked[(op.set_id, op.version)] = op
    refused = {op.message for op in ops if op.outcome == "refused"}
    for node, snap in enumerate(snaps):
        for set_id in sorted(set(set_ids)):
            versions = snap["versions"].get(set_id, [])
            numbers = [v[0] for v in versions]
            if numbers != list(range(1, len(numbers) + 1)):
                violations.append(f"node {node}: set {set_id[:8]} versions are not contiguous: {numbers}")
            if versions != snaps[0]["versions"].get(set_id, []):
                violations.append(f"node {node}: set {set_id[:8]} differs from node 0")
            by_number = {v[0]: v[2] for v in versions}
            for (acked_set, number), op in acked.items():
                if acked_set == set_id and by_number.get(number) != op.message:
                    violations.append(
                        f"node {node}: acknowledged {op.message} (version {number}) lost: "
                        f"the node has {by_number.get(number)!r}"
                    )
            for v in versions:
                if v[2] in refused:
                    violations.append(f"node {node}: version {v[0]} made by the refused {v[2]}")
    return violations


def longest_gap(ops: list[Op], start: float, end: float) -> float:
    """The longest time within [start, end] without a successful write completing."""
    return gap_window(ops, start, end)[1] - gap_window(ops, start, end)[0]


def gap_window(ops: list[Op], start: float, end: float) -> tuple[float, float]:
    """Where the longest time without a successful write lies: its first and last moment."""
    times = sorted(op.completed for op in ops if op.outcome == "ok")
    edges = [start, *times, end]
    return max(itertools.pairwise(edges), key=lambda pair: pair[1] - pair[0])


def run(
    root: Path,
    seconds: float,
    *,
    clients: int = 4,
    interval: float = 4.0,
    pause_s: float = 3.0,
    seed: int = 21,
    faults: tuple[str, ...] = DEFAULT_FAULTS,
) -> Report:
    """Run the clients and the nemesis for ``seconds``, heal, settle and check every node.

    ``faults`` are the nemesis' faults in turn (names from ``FAULTS``), one every ``interval``
    seconds; ``ISSUE_21_FAULTS`` with ``interval=8, pause_s=5`` is issue 21's scenario.
    """
    cluster = ProcessCluster(root)
    nemesis = Nemesis(cluster, interval, pause_s, seed, faults)
    ops: list[Op] = []
    stop = threading.Event()
    try:
        cluster.start()
        actors, set_ids = prepare(cluster, clients)
        workers = [
            threading.Thread(
                target=Client(i, actors[i], set_ids[i], cluster, nemesis, ops).run, args=(stop,), daemon=True
            )
            for i in range(clients)
        ]
        start = time.monotonic()
        for worker in workers:
            worker.start()
        nemesis.start()
        stop.wait(seconds)  # the run's length
        nemesis.join()
        stop.set()
        for worker in workers:
            worker.join(OPERATION_S + 10)
        end = time.monotonic()
        nemesis.heal()
        snaps = settle(cluster)
        violations = check(ops, snaps, set_ids)
        if nemesis.error is not None:
            violations.append(f"the nemesis failed: {nemesis.error!r}")
        outcomes = Counter(op.outcome for op in ops)
        applied_unknown = sum(
            1
            for op in ops
            if op.outcome == "unknown"
            and any(v[2] == op.message for v in snaps[0]["versions"].get(op.set_id, []))
        )
        figures: dict[str, Any] = {
            "seconds": round(end - start, 1),
            "ops": len(ops),
            "ok": outcomes["ok"],
            "refused": outcomes["refused"],
            "unknown": outcomes["unknown"],
            "unknown_applied": applied_unknown,
            "longest_gap_s": round(longest_gap(ops, start, end), 2),
            "longest_gap_at_s": round(gap_window(ops, start, end)[0] - start, 1),
            "faults": len([w for _, w in nemesis.log if not w.startswith(("restarted", "SIGCONT"))]),
            "violations": len(violations),
        }
        return Report(ops, [(t - start, w) for t, w in nemesis.log], violations, figures)
    finally:
        stop.set()
        nemesis.stop.set()
        for node in cluster.nodes:  # a stopped process ignores SIGTERM until it runs again
            if node.running and node.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.proc.pid, signal.SIGCONT)
        cluster.close()
