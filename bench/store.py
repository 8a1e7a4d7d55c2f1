"""Store benchmark: our store against the two pysyncobj baselines, and the store at 3 to 6 nodes.

All processes run on this machine (127.0.0.1); the last line is one JSON object of the figures,
with ``goals_missed`` (the goals below that were missed or not measured) and ``errors`` (parts
that failed: an error, never a null figure); a table of the goals goes to stderr, and the exit
status is 1 when a goal was missed.

Part ``compare``: three clusters of three node processes alive together (``bench/_node.py``):
- ``stock``: stock pysyncobj with ``password=`` (Fernet with PBKDF2, zlib, pickle protocol 2), what a
  user would otherwise pick;
- ``floor``: pysyncobj on our transport (``SteadyTransport``, ``ClusterCipher``, highest-protocol
  pickle), no signing and no store: the floor of our design;
- ``store``: our store, signed version commits through the service.
Both counters replicate an incompressible payload as long as the store's command
(``command_bytes_sync``, ``command_bytes_concurrent``), all with ``raft_conf``'s settings. Each kind
runs one warm-up, then ``--rounds`` rounds in rotating order (each round: every kind with 1
synchronous client, then every kind with 8). Figures: ``{kind}_sync_ops`` and
``{kind}_concurrent_ops`` (medians of the rounds, ``_min``/``_max`` the spread), the medians of each round's
``_p50_ms``/``_p99_ms``, ``{kind}_concurrent_cpu_ms_per_op`` (CPU of all three nodes per operation,
three nodes share the machine's cores, so this bounds the throughput), and for the store where its
CPU goes: ``cpu_ms_per_op_leader``, ``cpu_ms_per_op_each_follower`` and the part spent applying
commands, ``apply_cpu_ms_per_op_leader``/``apply_cpu_ms_per_op_each_follower`` (a follower parses
and verifies each; the leader, which signed them, does not). ``ratio_store_vs_{stock|floor}_{sync|
concurrent}`` = the store's median / the baseline's median (``_rounds``: the ratio of each round).
``store_pipelined_ops``: one client thread keeping 8 signed commits on their way at once.
``{kind}_sync_client_cpu_ms``: CPU of the synchronous client's thread per commit (for the store:
the service, signing and submitting; the counters only submit); ``{kind}_concurrent_gc_ms_per_op``:
time all three nodes spent in Python's garbage collector per operation (wall clock). ``bench/_node.py``
also answers ``profile_start``/``profile_stop`` (cProfile on the CPU clock of the raft thread and
of ``sync`` clients) and ``sync_presigned`` (the store's sync commits without service or signing);
with ``MEDIATOR_BENCH_PROFILE=DIR``, one more synchronous run of ``floor`` and ``store`` is
profiled after the rounds (not part of the figures), its top entries written to ``DIR``.

Part ``manifest``: ``manifest_100k_commit_s``, ``manifest_1m_commit_s``: a manifest of that many
leaves, until all three nodes hold it (``--quick``: 100,000 leaves only).

Part ``nodes`` (``--nodes 3,5,6``): per cluster size, a fresh cluster of store nodes that also
serve their local API (``mediator_desktop.api.server.LocalApi``, uvicorn), sizes in alternating
order over ``--rounds`` rounds; all nodes share this machine's cores, so sizes are compared as
ratios to the smallest (``sync_ratio_{n}_vs_3``, ``concurrent_ratio_{n}_vs_3``):
- ``sync_ops_{n}`` (one client) and ``concurrent_ops_{n}`` (8 clients), on the leader;
- ``read_p50_ms_{n}``/``read_p99_ms_{n}``/``reads_per_s_{n}``: 1,000 readers (``--quick``: 200),
  spread round robin over all nodes' local APIs, each reading a set (``GET /v1/sets/{id}``) then
  pausing 0.5-1.5 s (about 1,000 reads/s offered in all), while one writer commits on the leader,
  50 commits a second (``read_writes_per_s_{n}``: the rate it kept). Each reader waits for its
  answer before its pause (a user who reads, thinks, reads again), so a
  slow node is offered fewer reads: ``reads_per_s_{n}`` below the offered rate says so. The
  readers are pycurl multi loops in separate processes on the same cores (at most 500 each: two
  for 1,000 readers, one per core; each loop waits in epoll through pycurl's socket API, not in a
  select() over every connection, with the garbage collector off while it reads). Each latency
  runs from the request handed to libcurl to its answer seen whole. ``read_lag_p99_ms_{n}``: how
  late the readers' loops started reads against their due time (the client's own scheduling);
  ``client_read_p50_ms``/``client_read_p99_ms``/``client_read_lag_p99_ms`` are the same readers
  against trivial HTTP servers (asyncio, answering at once): what the client and the machine add
  by themselves, and ``client_cpu_ms_per_read`` the readers' CPU per read. A read latency close to
  the client's is client-bound, not the node's. (Until issue 22's work on reads: 250 readers per
  process in select() loops, four processes on two cores; the client alone had a p99 of 45-52 ms
  where the readers of today have 5-6 ms, same run on a busy machine.)
- ``failover_s_{n}`` (median) and ``failover_max_s_{n}``: the leader's process is killed with
  SIGKILL; until a commit submitted on a survivor (retrying as the service does) succeeds.

Goals (issue 22), checked by this script: ``ratio_store_vs_stock_sync`` >= 0.8,
``ratio_store_vs_floor_sync`` >= 0.6, ``ratio_store_vs_stock_concurrent`` >= 0.9,
``manifest_1m_commit_s`` <= 60 (not with ``--quick``), and with several sizes the largest (6) against
the smallest (3): ``sync_ratio_6_vs_3`` and ``concurrent_ratio_6_vs_3`` >= 0.6, at every size
``failover_max_s_{n}`` <= 3 and ``read_p99_ms_{n}`` <= 5. The final line's ``goals_missed`` names
the figures that missed.

Usage: ``python bench/store.py [--quick] [--nodes 3,5,6] [--rounds N] [--skip compare,manifest,nodes]``
(``--quick``: small counts, for a smoke run).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import operator
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, arguments, finish, run_parts

HERE = Path(__file__).resolve().parent
PARTS = ("compare", "manifest", "nodes")
KINDS = ("stock", "floor", "store")
#: Concurrent clients of the ``concurrent`` figures.
CLIENTS = 8
#: Each reader's pause between two reads (seconds, drawn at random).
THINK = (0.5, 1.5)
#: Version commits a second of the writer that runs while readers read: a busy cluster's steady
#: stream of changes (a writer committing flat out took most of two cores by itself, so the
#: reads measured how a saturated machine schedules, not what a read costs).
WRITES_PER_S = 50.0
#: Readers per reader process: two processes for 1,000 readers, one per core of a two-core machine
#: (with 250 each, four processes waited for the cores in turn: the client alone had a p99 of 45 ms
#: where two had 5 ms, same run; each read costs the client about 0.15 ms of CPU).
READERS_PER_PROCESS = 500


@dataclass(frozen=True)
class Counts:
    sync: int  # synchronous commits per kind, over all rounds
    each: int  # commits per concurrent client per round
    readers: int
    read_s: float
    big: int  # leaves of the big manifest
    nodes_sync: int  # per size and round
    nodes_each: int

    @classmethod
    def of(cls, quick: bool) -> Counts:
        if quick:
            return cls(300, 60, 200, 3.0, 100_000, 200, 40)
        return cls(3000, 300, 1000, 10.0, 1_000_000, 1000, 200)


# -- goals, as data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    figure: str
    part: str
    sign: str  # ">=" or "<="
    bound: float

    def met(self, out: dict[str, Any]) -> bool:
        value = out.get(self.figure)
        compare = operator.ge if self.sign == ">=" else operator.le
        return isinstance(value, int | float) and compare(value, self.bound)


def goals_for(sizes: list[int], quick: bool) -> list[Goal]:
    goals = [
        Goal("ratio_store_vs_stock_sync", "compare", ">=", 0.8),
        Goal("ratio_store_vs_floor_sync", "compare", ">=", 0.6),
        Goal("ratio_store_vs_stock_concurrent", "compare", ">=", 0.9),
    ]
    if not quick:
        goals.append(Goal("manifest_1m_commit_s", "manifest", "<=", 60))
    base, top = min(sizes), max(sizes)
    if top != base:
        goals.append(Goal(f"sync_ratio_{top}_vs_{base}", "nodes", ">=", 0.6))
        goals.append(Goal(f"concurrent_ratio_{top}_vs_{base}", "nodes", ">=", 0.6))
    for n in sizes:
        goals.append(Goal(f"failover_max_s_{n}", "nodes", "<=", 3))
        goals.append(Goal(f"read_p99_ms_{n}", "nodes", "<=", 5))
    return goals


def as_goals(goals: list[Goal]) -> Goals:
    return {g.figure: (g.part, g.met) for g in goals}


def table(goals: list[Goal], out: dict[str, Any], skip: set[str]) -> None:
    """The goals, their figures and whether each was met, readable, on stderr."""
    rows = [("figure", "measured", "goal", "")]
    for g in goals:
        if g.part in skip:
            verdict, value = "skipped", "-"
        else:
            value = str(out.get(g.figure, "not measured"))
            verdict = "met" if g.met(out) else "MISSED"
        rows.append((g.figure, value, f"{g.sign} {g.bound:g}", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        log("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


# -- processes -------------------------------------------------------------------------------------
def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def started(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> None:
    """Wait for ``proc``'s ``READY`` line."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    if line != "READY":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not start (exit status {proc.returncode})")


def python(*args: str, stdin: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "MEDIATOR_BENCH_SECRET": "bench-cluster-secret"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "_node.py"), *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


class Node:
    """A node process (``bench/_node.py``); ``started`` waits until it listens."""

    def __init__(self, kind: str, address: str, peers: list[str], data: Path) -> None:
        self.kind = kind
        self.address = address
        self.port = free_ports(1)[0]
        self.authkey = secrets.token_bytes(16)
        self.proc = python(kind, address, ",".join(peers), str(data), str(self.port), self.authkey.hex())

    def call(self, *request: Any, timeout: float = 600) -> Any:
        with Client(("127.0.0.1", self.port), authkey=self.authkey) as conn:
            conn.send(request)
            if not conn.poll(timeout):
                raise TimeoutError(f"{request[0]} took more than {timeout} s on {self.kind} {self.address}")
            answer = conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextmanager
def cluster(kind: str, root: Path, n: int = 3) -> Iterator[list[Node]]:
    """``n`` node processes of ``kind`` (started together), stopped and waited for on the way out."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    tag = f"{kind}-{n}-{secrets.token_hex(3)}"
    with ExitStack() as stack:
        nodes = []
        for i, a in enumerate(addresses):
            nodes.append(Node(kind, a, [b for b in addresses if b != a], root / f"{tag}-{i}"))
            stack.callback(nodes[-1].stop)
        for node in nodes:
            started(node.proc, f"{kind} node {node.address}")
        yield nodes


def leader_of(nodes: list[Node], timeout: float = 30) -> Node:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = {n.call("status")["leader"] for n in nodes}
        if len(leaders) == 1 and None not in leaders:
            return next(n for n in nodes if n.address in leaders)
        time.sleep(0.05)
    raise RuntimeError(f"no leader among {len(nodes)} {nodes[0].kind} nodes after {timeout} s")


def spread(values: list[float], name: str, out: dict[str, Any], digits: int = 1) -> float:
    """The median of ``values`` as ``name``, with ``name_min``/``name_max``; returns the median."""
    median = statistics.median(values)
    out[name] = round(median, digits)
    out[f"{name}_min"], out[f"{name}_max"] = round(min(values), digits), round(max(values), digits)
    return median


def quantiles_ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return round(statistics.median(ordered) * 1000, 3), round(p99 * 1000, 3)


# -- part compare ----------------------------------------------------------------------------------
def compare(work: Path, rounds: int, c: Counts, out: dict[str, Any]) -> None:
    with cluster("stock", work) as stock, cluster("floor", work) as floor, cluster("store", work) as store:
        clusters = {"stock": stock, "floor": floor, "store": store}
        leaders = {kind: leader_of(nodes) for kind, nodes in clusters.items()}
        size_sync = leaders["store"].call("command_bytes", "sync")
        size_conc = leaders["store"].call("command_bytes", "empty")
        out["command_bytes_sync"], out["command_bytes_concurrent"] = size_sync, size_conc

        def sync(kind: str, n: int) -> dict[str, Any]:
            if kind == "store":
                return dict(leaders[kind].call("sync", n))
            return dict(leaders[kind].call("counter_sync", n, size_sync))

        def concurrent(kind: str, n_each: int) -> dict[str, Any]:
            """8 clients; with the CPU each node spent (and, for the store, spent applying)."""
            nodes = clusters[kind]
            if kind == "store":  # its clients' users and sets, made outside the measured window
                leaders[kind].call("prepare_concurrent", CLIENTS)
            cpu = {n.address: n.cpu_seconds() for n in nodes}
            applying = {n.address: n.call("apply_cpu_s") if kind == "store" else 0.0 for n in nodes}
            collecting = {n.address: n.call("gc_s") for n in nodes}
            if kind == "store":
                result = dict(leaders[kind].call("concurrent", CLIENTS, n_each))
            else:
                result = dict(leaders[kind].call("counter_concurrent", CLIENTS, n_each, size_conc))
            result["cpu"] = {n.address: n.cpu_seconds() - cpu[n.address] for n in nodes}
            if kind == "store":
                result["apply"] = {n.address: n.call("apply_cpu_s") - applying[n.address] for n in nodes}
            result["gc"] = {n.address: n.call("gc_s") - collecting[n.address] for n in nodes}
            return result

        for kind in KINDS:  # one warm-up for everyone
            sync(kind, 100)
            concurrent(kind, 10)
        per_round = max(1, c.sync // rounds)
        sync_ops: dict[str, list[float]] = {k: [] for k in KINDS}
        sync_lat: dict[str, list[float]] = {k: [] for k in KINDS}
        sync_client: dict[str, list[float]] = {k: [] for k in KINDS}
        conc: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        for r in range(rounds):
            order = KINDS[r % 3 :] + KINDS[: r % 3]
            for kind in order:
                result = sync(kind, per_round)
                sync_ops[kind].append(result["ops"])
                sync_lat[kind] += [result["p50_ms"], result["p99_ms"]]
                sync_client[kind].append(result["client_cpu_ms"])
            for kind in order:
                conc[kind].append(concurrent(kind, c.each))
            log(
                f"round {r + 1}/{rounds}:",
                {k: round(sync_ops[k][-1]) for k in KINDS},
                {k: round(conc[k][-1]["ops"]) for k in KINDS},
            )
        ops = CLIENTS * c.each
        medians: dict[str, tuple[float, float]] = {}
        for kind in KINDS:
            s = spread(sync_ops[kind], f"{kind}_sync_ops", out)
            cc = spread([x["ops"] for x in conc[kind]], f"{kind}_concurrent_ops", out)
            medians[kind] = (s, cc)
            out[f"{kind}_concurrent_p50_ms"] = statistics.median(x["p50_ms"] for x in conc[kind])
            out[f"{kind}_concurrent_p99_ms"] = statistics.median(x["p99_ms"] for x in conc[kind])
            out[f"{kind}_concurrent_cpu_ms_per_op"] = round(
                statistics.median(sum(x["cpu"].values()) for x in conc[kind]) / ops * 1000, 3
            )
            out[f"{kind}_sync_p50_ms"] = statistics.median(sync_lat[kind][0::2])
            out[f"{kind}_sync_p99_ms"] = statistics.median(sync_lat[kind][1::2])
            out[f"{kind}_sync_client_cpu_ms"] = round(statistics.median(sync_client[kind]), 4)
            out[f"{kind}_concurrent_gc_ms_per_op"] = round(
                statistics.median(sum(x["gc"].values()) for x in conc[kind]) / ops * 1000, 4
            )
        leader = leaders["store"].address

        def per_op(key: str, who: Callable[[str], bool]) -> float:
            """CPU ms per op of the busiest node that ``who`` selects, median over the rounds."""
            values: list[float] = [max(v for a, v in x[key].items() if who(a)) for x in conc["store"]]
            return round(statistics.median(values) / ops * 1000, 3)

        out["cpu_ms_per_op_leader"] = per_op("cpu", lambda a: a == leader)
        out["cpu_ms_per_op_each_follower"] = per_op("cpu", lambda a: a != leader)
        out["apply_cpu_ms_per_op_leader"] = per_op("apply", lambda a: a == leader)
        out["apply_cpu_ms_per_op_each_follower"] = per_op("apply", lambda a: a != leader)
        for base in ("stock", "floor"):
            for i, mode in enumerate(("sync", "concurrent")):
                out[f"ratio_store_vs_{base}_{mode}"] = round(medians["store"][i] / medians[base][i], 3)
            out[f"ratio_store_vs_{base}_sync_rounds"] = [
                round(s / b, 3) for s, b in zip(sync_ops["store"], sync_ops[base], strict=True)
            ]
            out[f"ratio_store_vs_{base}_concurrent_rounds"] = [
                round(s["ops"] / b["ops"], 3) for s, b in zip(conc["store"], conc[base], strict=True)
            ]
        out["store_pipelined_ops"] = round(leaders["store"].call("pipelined", CLIENTS, ops)["ops"], 1)
        profiles = os.environ.get("MEDIATOR_BENCH_PROFILE")
        if profiles:  # after the measured rounds: the profiler slows everything down
            for kind in ("floor", "store"):
                profile(
                    clusters[kind],
                    leaders[kind],
                    functools.partial(sync, kind, per_round),
                    Path(profiles),
                    kind,
                )
        log("compare:", {k: v for k, v in out.items() if k.startswith(("ratio", "cpu", "apply"))})


def profile(nodes: list[Node], leader: Node, run: Callable[[], Any], where: Path, kind: str) -> None:
    """``run`` with every node's raft thread and the leader's client profiled (cProfile on the CPU
    clock); the top entries go to ``where/{kind}_{leader|follower}_{raft|client}.txt``."""
    where.mkdir(parents=True, exist_ok=True)
    for n in nodes:
        n.call("profile_start")
    run()
    reports = {n.address: n.call("profile_stop", 45) for n in nodes}
    follower = next(n for n in nodes if n is not leader)
    for role, node in (("leader", leader), ("follower", follower)):
        for thread, text in reports[node.address].items():
            (where / f"{kind}_{role}_{thread}.txt").write_text(text)
    log(f"profiles of {kind} written to {where}")


# -- part manifest ---------------------------------------------------------------------------------
def manifest(work: Path, c: Counts, out: dict[str, Any]) -> None:
    with cluster("store", work) as nodes:
        leader = leader_of(nodes)
        sizes = [(100_000, "manifest_100k_commit_s")]
        if c.big != 100_000:
            sizes.append((c.big, "manifest_1m_commit_s"))
        for leaves, name in sizes:
            result = leader.call("manifest", leaves)
            start = time.monotonic() - result["leader_s"]
            while not all(n.call("has_manifest", result["manifest_id"]) for n in nodes):
                time.sleep(0.01)
            out[name] = round(time.monotonic() - start, 2)
            log(name, out[name], "(leader confirmed after", round(result["leader_s"], 2), "s)")


# -- part nodes ------------------------------------------------------------------------------------
def read_load(targets: list[list[str]], c: Counts, during: Callable[[], Any] | None = None) -> dict[str, Any]:
    """``c.readers`` readers over ``targets`` for ``c.read_s`` seconds (``during`` runs meanwhile)."""
    processes = math.ceil(c.readers / READERS_PER_PROCESS)
    counts = [c.readers // processes + (i < c.readers % processes) for i in range(processes)]
    procs = []
    try:
        for i, count in enumerate(counts):
            # Each process's readers go round robin over the targets, starting one further on.
            shifted = targets[i % len(targets) :] + targets[: i % len(targets)]
            procs.append(
                python(
                    "readers",
                    str(count),
                    str(c.read_s),
                    str(THINK[0]),
                    str(THINK[1]),
                    json.dumps(shifted),
                    str(i),
                    stdin=True,
                )
            )
        for p in procs:
            started(p, "a reader process")
        side: list[Any] = []
        thread = None
        if during is not None:
            thread = threading.Thread(target=lambda: side.append(during()), daemon=True)
            thread.start()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("GO\n")
            p.stdin.flush()
        results = []
        for p in procs:
            stdout, _ = p.communicate(timeout=c.read_s + 120)
            if p.returncode != 0:
                raise RuntimeError(f"a reader process failed (exit status {p.returncode})")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        if thread is not None:
            thread.join(c.read_s + 120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    samples = [s for r in results for s in r["samples"]]
    errors = sum(r["n_errors"] for r in results)
    if not samples:
        raise RuntimeError(f"no read succeeded; errors: {[r['errors'] for r in results]}")
    p50, p99 = quantiles_ms(samples)
    _, lag_p99 = quantiles_ms([s for r in results for s in r["lag"]])
    seconds = max(r["seconds"] for r in results)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "per_s": round(len(samples) / seconds, 1),
        "errors": errors,
        "lag_p99_ms": lag_p99,
        "client_cpu_ms_per_read": round(sum(r["cpu_s"] for r in results) / len(samples) * 1000, 3),
        "during": side[0] if side else None,
    }


def client_overhead(work: Path, c: Counts, out: dict[str, Any]) -> None:
    """The readers against trivial servers: what the client (and the machine) add by themselves."""
    ports = free_ports(3)
    servers = [python("trivial", str(p)) for p in ports]
    try:
        for s in servers:
            started(s, "the trivial server")
        reads = read_load([[f"http://127.0.0.1:{p}/", "-"] for p in ports], c)
    finally:
        for s in servers:
            s.terminate()
            s.wait(30)
            assert s.stdout is not None
            s.stdout.close()
    out["client_read_p50_ms"], out["client_read_p99_ms"] = reads["p50_ms"], reads["p99_ms"]
    out["client_reads_per_s"] = reads["per_s"]
    out["client_read_lag_p99_ms"] = reads["lag_p99_ms"]
    out["client_cpu_ms_per_read"] = reads["client_cpu_ms_per_read"]
    log("client alone:", reads)


def one_size(work: Path, n: int, c: Counts) -> dict[str, Any]:
    """One cluster of ``n`` store nodes: commits, reads over all local APIs, then fail-over."""
    figures: dict[str, Any] = {}
    with cluster("store-api", work, n) as nodes:
        leader = leader_of(nodes)
        figures["sync"] = leader.call("sync", c.nodes_sync)["ops"]
        figures["concurrent"] = leader.call("concurrent", CLIENTS, c.nodes_each)["ops"]
        apis = [node.call("api") for node in nodes]
        deadline = time.monotonic() + 30
        while not all(node.call("has_set", api["set_id"]) for node in nodes for api in apis):
            if time.monotonic() > deadline:
                raise RuntimeError("the sets to read did not reach every node in 30 s")
            time.sleep(0.02)
        reads = read_load(
            [[api["url"], api["token"]] for api in apis],
            c,
            lambda: leader.call("write_for", c.read_s, WRITES_PER_S),
        )
        figures["reads"] = reads
        survivor = next(node for node in nodes if node is not leader)
        survivor.call("probe_setup")
        killed_at = time.monotonic()
        leader.kill()
        figures["failover"] = survivor.call("probe", timeout=120) - killed_at
    log(
        f"{n} nodes:",
        {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()},
    )
    return figures


def scale(work: Path, rounds: int, sizes: list[int], c: Counts, out: dict[str, Any]) -> None:
    client_overhead(work, c, out)
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    for r in range(rounds):
        for n in sizes if r % 2 == 0 else list(reversed(sizes)):
            runs[n].append(one_size(work, n, c))
    base = min(sizes)
    medians: dict[int, dict[str, float]] = {}
    for n in sizes:
        got = runs[n]
        medians[n] = {
            "sync": spread([g["sync"] for g in got], f"sync_ops_{n}", out),
            "concurrent": spread([g["concurrent"] for g in got], f"concurrent_ops_{n}", out),
        }
        failovers = [g["failover"] for g in got]
        out[f"failover_s_{n}"] = round(statistics.median(failovers), 3)
        out[f"failover_max_s_{n}"] = round(max(failovers), 3)
        # The reads of all rounds: medians of each round's p50 and p99, and the worst p99.
        out[f"read_p50_ms_{n}"] = statistics.median(g["reads"]["p50_ms"] for g in got)
        out[f"read_p99_ms_{n}"] = statistics.median(g["reads"]["p99_ms"] for g in got)
        out[f"read_p99_max_ms_{n}"] = max(g["reads"]["p99_ms"] for g in got)
        out[f"reads_per_s_{n}"] = statistics.median(g["reads"]["per_s"] for g in got)
        out[f"read_errors_{n}"] = sum(g["reads"]["errors"] for g in got)
        out[f"read_lag_p99_ms_{n}"] = statistics.median(g["reads"]["lag_p99_ms"] for g in got)
        out[f"read_writes_per_s_{n}"] = round(
            statistics.median(g["reads"]["during"]["per_s"] for g in got), 1
        )
    for n in sizes:
        if n != base:
            for mode in ("sync", "concurrent"):
                out[f"{mode}_ratio_{n}_vs_{base}"] = round(medians[n][mode] / medians[base][mode], 3)
            out[f"failover_ratio_{n}_vs_{base}"] = round(
                out[f"failover_s_{n}"] / out[f"failover_s_{base}"], 3
            )


def main() -> None:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
        parser.add_argument("--nodes", default="3,5,6", help="cluster sizes of part nodes (default 3,5,6)")

    args, skip = arguments(__doc__ or "", PARTS, configure)
    # Stopped from outside: unwind, so every node and reader process is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))
    try:
        sizes = sorted({int(s) for s in args.nodes.split(",") if s.strip()})
    except ValueError:
        sys.exit(f"--nodes takes cluster sizes separated by commas, not {args.nodes!r}")
    if not sizes or min(sizes) < 1:
        sys.exit("--nodes needs at least one cluster size of 1 or more")
    counts = Counts.of(args.quick)
    rounds = max(1, args.rounds)
    goals = goals_for(sizes, args.quick)
    out: dict[str, Any] = {"quick": args.quick, "rounds": rounds, "nodes": sizes, "cores": os.cpu_count()}
    parts: dict[str, Callable[[Path, dict[str, Any]], None]] = {
        "compare": lambda work, out: compare(work, rounds, counts, out),
        "manifest": lambda work, out: manifest(work, counts, out),
        "nodes": lambda work, out: scale(work, rounds, sizes, counts, out),
    }
    errors = run_parts("store", parts, skip, out)
    table(goals, out, skip)
    finish(out, as_goals(goals), skip, errors)


if __name__ == "__main__":
    main()
