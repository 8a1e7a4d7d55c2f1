"""Store benchmark: three node processes on 127.0.0.1 with the cluster secret set.

Figures (last line, one JSON object):
- ``bare_sync_ops``: a bare pysyncobj counter, same settings, one synchronous client;
  ``bare_concurrent_ops``: the bare counter with 8 synchronous clients (one command per log entry),
  and ``bare_concurrent_cpu_ms_per_op``, the CPU all three bare nodes spent per operation.
- ``store_sync_ops``: our signed version commits through the service, one client, with
  ``p50_ms``/``p99_ms``.
- ``store_concurrent_ops``: 8 clients, with ``concurrent_p50_ms``/``concurrent_p99_ms`` and the CPU
  each node spent per operation (``cpu_ms_per_op_leader``, ``cpu_ms_per_op_each_follower``, and
  ``store_concurrent_cpu_ms_per_op`` for all three): three nodes share two cores, so the sum bounds
  the throughput. ``apply_cpu_ms_per_op_leader`` and ``apply_cpu_ms_per_op_each_follower`` are the
  part spent applying commands (a follower parses and verifies each; the leader, which signed them,
  does not).
- ``store_pipelined_ops``: one client thread keeping 8 signed commits on their way at once, the
  same work without waking a Python thread per commit.
- ``read_p99_ms``: 1,000 local reader threads while writes go on.
- ``manifest_100k_commit_s``, ``manifest_1m_commit_s``: until all three nodes hold the manifest.
- ``ratio_store_vs_bare`` = store_sync_ops / bare_sync_ops; ``ratio_concurrent_store_vs_bare`` =
  store_concurrent_ops / bare_concurrent_ops, the peer figure of the same run for the 8-client goal.
Goals: ratio >= 0.7, store_concurrent_ops >= 3,000, read_p99_ms <= 5, manifest_1m_commit_s <= 60.

Usage: ``python bench/store.py [--quick]`` (``--quick``: small counts, for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Alternating rounds of the bare counter and the store, one synchronous client each.
ROUNDS = 6


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Node:
    def __init__(self, kind: str, address: str, peers: list[str], data: Path) -> None:
        self.address = address
        self.port = free_ports(1)[0]
        self.authkey = secrets.token_bytes(16)
        env = {**os.environ, "MEDIATOR_BENCH_SECRET": "bench-cluster-secret"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_node.py"),
                kind,
                address,
                ",".join(peers),
                str(data),
                str(self.port),
                self.authkey.hex(),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError(f"node {address} did not start")

    def call(self, *request: Any, timeout: float = 600) -> Any:
        with Client(("127.0.0.1", self.port), authkey=self.authkey) as conn:
            conn.send(request)
            if not conn.poll(timeout):
                raise TimeoutError(f"{request[0]} took more than {timeout} s")
            return conn.recv()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextmanager
def cluster(kind: str, root: Path) -> Iterator[list[Node]]:
    """Three node processes of ``kind``, stopped (and waited for) on the way out."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    with ExitStack() as stack:
        nodes = []
        for i, a in enumerate(addresses):
            nodes.append(Node(kind, a, [b for b in addresses if b != a], root / f"{kind}{i}"))
            stack.callback(nodes[-1].stop)
        yield nodes


def leader_of(nodes: list[Node], timeout: float = 30) -> Node:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = {n.call("status")["leader"] for n in nodes}
        if len(leaders) == 1 and None not in leaders:
            return next(n for n in nodes if n.address in leaders)
        time.sleep(0.05)
    raise RuntimeError("no leader")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_sync, n_each, readers, big = (300, 100, 200, 100_000) if args.quick else (3000, 1000, 1000, 1_000_000)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with cluster("store", root) as nodes:
            with cluster("bare", root) as bare:
                bare_leader, leader = leader_of(bare), leader_of(nodes)
                # One synchronous client each, in alternating rounds: both clusters see the same
                # machine, whatever else it is doing meanwhile.
                bare_leader.call("bare_sync", 200)  # warm up
                leader.call("sync", 200)
                bare_s = store_s = 0.0
                samples: list[float] = []
                for _ in range(ROUNDS):
                    bare_s += n_sync / ROUNDS / bare_leader.call("bare_sync", n_sync // ROUNDS)["ops"]
                    sync = leader.call("sync", n_sync // ROUNDS)
                    store_s += n_sync / ROUNDS / sync["ops"]
                    samples += sync["samples"]
                out["bare_sync_ops"] = round(n_sync / bare_s, 1)
                out["store_sync_ops"] = round(n_sync / store_s, 1)
                samples.sort()
                out["p50_ms"] = round(statistics.median(samples) * 1000, 3)
                out["p99_ms"] = round(samples[int(len(samples) * 0.99)] * 1000, 3)
                log("sync", {k: out[k] for k in ("bare_sync_ops", "store_sync_ops", "p50_ms", "p99_ms")})
                before = {n.address: cpu_seconds(n.proc.pid) for n in bare}
                out["bare_concurrent_ops"] = round(bare_leader.call("bare_concurrent", 8, n_each)["ops"], 1)
                out["bare_concurrent_cpu_ms_per_op"] = round(
                    sum(cpu_seconds(n.proc.pid) - before[n.address] for n in bare) / (8 * n_each) * 1000, 3
                )
                log("bare concurrent", out["bare_concurrent_ops"])
            before = {n.address: cpu_seconds(n.proc.pid) for n in nodes}
            applying = {n.address: n.call("apply_cpu_s") for n in nodes}
            concurrent = leader.call("concurrent", 8, n_each)
            spent = {n.address: cpu_seconds(n.proc.pid) - before[n.address] for n in nodes}
            applying = {n.address: n.call("apply_cpu_s") - applying[n.address] for n in nodes}
            ops = 8 * n_each
            out["cpu_ms_per_op_leader"] = round(spent[leader.address] / ops * 1000, 3)
            out["cpu_ms_per_op_each_follower"] = round(
                max(v for a, v in spent.items() if a != leader.address) / ops * 1000, 3
            )
            out["store_concurrent_ops"] = round(concurrent["ops"], 1)
            out["store_concurrent_cpu_ms_per_op"] = round(sum(spent.values()) / ops * 1000, 3)
            out["apply_cpu_ms_per_op_leader"] = round(applying[leader.address] / ops * 1000, 3)
            out["apply_cpu_ms_per_op_each_follower"] = round(
                max(v for a, v in applying.items() if a != leader.address) / ops * 1000, 3
            )
            out["concurrent_p50_ms"], out["concurrent_p99_ms"] = concurrent["p50_ms"], concurrent["p99_ms"]
            log("concurrent", concurrent)
            out["store_pipelined_ops"] = round(leader.call("pipelined", 8, 8 * n_each)["ops"], 1)
            log("pipelined", out["store_pipelined_ops"])
            reads = leader.call("reads", readers, 5.0)
            out["read_p99_ms"] = reads["read_p99_ms"]
            out["read_p50_ms"] = reads["read_p50_ms"]
            out["reads"], out["writes_during_reads"] = reads["reads"], reads["writes"]
            log("reads", reads)
            for leaves, name in ((100_000, "manifest_100k_commit_s"), (big, "manifest_1m_commit_s")):
                if leaves == 100_000 and name == "manifest_1m_commit_s":
                    name = "manifest_big_commit_s"
                result = leader.call("manifest", leaves)
                start = time.monotonic() - result["leader_s"]
                while not all(n.call("has_manifest", result["manifest_id"]) for n in nodes):
                    time.sleep(0.01)
                out[name] = round(time.monotonic() - start, 2)
                log(name, out[name], "(leader confirmed after", round(result["leader_s"], 2), "s)")
    out["ratio_store_vs_bare"] = round(out["store_sync_ops"] / out["bare_sync_ops"], 3)
    out["ratio_concurrent_store_vs_bare"] = round(out["store_concurrent_ops"] / out["bare_concurrent_ops"], 3)
    goals = (
        ("ratio_store_vs_bare", ">=", 0.7),
        ("store_concurrent_ops", ">=", 3000),
        ("read_p99_ms", "<=", 5),
        ("manifest_1m_commit_s", "<=", 60),
    )
    out["goals_missed"] = [
        f"{name} {out[name]} (goal {sign} {goal})"
        for name, sign, goal in goals
        if name in out and not (out[name] >= goal if sign == ">=" else out[name] <= goal)
    ]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
