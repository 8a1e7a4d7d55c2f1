"""A node process for ``bench/store.py``: a bare pysyncobj counter or our store, plus a control port.

Usage: ``python bench/_node.py {bare|store} ADDRESS PEERS DATA_DIR CONTROL_PORT AUTHKEY_HEX``.
The secret comes from the environment variable ``MEDIATOR_BENCH_SECRET``. Work runs inside this
process, as the desktop app or a script on the same machine would call its local node.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, replicated

from mediator_desktop.core.commands import SeqClock, seal
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.manifest import ManifestBuilder
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.core.state import StoreState
from mediator_desktop.raft.store import RaftStore, raft_conf

SECRET = os.environ.get("MEDIATOR_BENCH_SECRET", "bench-secret")


class ApplyClock:
    """Thread CPU seconds this process spent in ``StoreState.apply`` (parse, signature check,
    permissions and the change itself), summed over all commands since start."""

    seconds = 0.0

    @classmethod
    def install(cls) -> None:
        apply = StoreState.apply

        def timed(state: StoreState, *args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return apply(state, *args, **kwargs)
            finally:
                cls.seconds += time.thread_time() - start  # only the raft thread applies

        StoreState.apply = timed  # type: ignore[method-assign]


class Counter(SyncObj):  # type: ignore[misc]
    def __init__(self, address: str, peers: list[str], data: Path) -> None:
        # The same settings as RaftStore (with pysyncobj's own transport), so the comparison is fair.
        conf = raft_conf(SECRET, data)
        super().__init__(address, peers, conf)
        self.value = 0

    @replicated  # type: ignore[misc]
    def inc(self) -> int:
        self.value += 1
        return self.value

    @replicated  # type: ignore[misc]
    def inc_payload(self, payload: bytes) -> int:
        self.value += len(payload)
        return self.value


def latencies_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


class StoreWork:
    def __init__(self, store: RaftStore) -> None:
        self.store = store
        self._identities: dict[str, Identity] = {}
        self._seq = SeqClock()

    def service(self, name: str) -> tuple[Service, str]:
        identity = Identity.generate(name)
        self._identities[identity.key_id] = identity
        service = Service(self.store, identity, timeout=30)
        service.register()
        set_id = service.sets.create(f"bench {name}", visibility=Visibility.CLUSTER)
        service.sets.commit(set_id, Selection())
        return service, set_id

    def seal(self, service: Service, op: str, **args: Any) -> bytes:
        """A command signed as ``service``'s user, as the service signs one (not yet submitted)."""
        identity = self._identities[service.key_id]
        seq = self._seq.next(self.store.state.newest_seq(identity.key_id))
        return seal(identity, op, args, seq, time.time())

    def sync(self, n: int) -> dict[str, Any]:
        service, set_id = self.service("sync")
        selection = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))
        samples = []
        start = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            service.sets.commit(set_id, selection, message="bench")
            samples.append(time.perf_counter() - t)
        return {"ops": n / (time.perf_counter() - start), **latencies_ms(samples), "samples": samples}

    def presigned_commits(self, name: str, selection: Selection, n: int) -> list[bytes]:
        """``n`` signed commits of ``selection`` to a new set of a new user, each on the one before."""
        service, set_id = self.service(name)
        head = service.sets.get(set_id).head or 0
        manifest_id = service.sets.version(set_id).manifest_id
        rules = selection.to_json()
        return [
            self.seal(
                service,
                "commit_version",
                set_id=set_id,
                expected_head=head + i,
                selection=rules,
                manifest_id=manifest_id,
                message=name,
            )
            for i in range(n)
        ]

    def raw_sync(self, n: int) -> dict[str, Any]:
        """Pre-signed commits, submitted one at a time: the store without the service around it."""
        commands = self.presigned_commits("raw", Selection.of(Pointer.of("idc", "nlst", Modality="CT")), n)
        start = time.perf_counter()
        for command in commands:
            self.store.submit(command, 10)
        return {"ops": n / (time.perf_counter() - start)}

    def raw_follow(self, n: int) -> dict[str, Any]:
        """Pre-signed ``follow`` commands: the cheapest real operation."""
        service, set_id = self.service("follower")
        commands = [self.seal(service, "follow", set_id=set_id) for _ in range(n)]
        start = time.perf_counter()
        for command in commands:
            self.store.submit(command, 10)
        return {"ops": n / (time.perf_counter() - start)}

    def raw_noop(self, n: int) -> dict[str, Any]:
        """Batches of one junk command each: the store's Raft path with an apply that refuses at once."""
        start = time.perf_counter()
        for _ in range(n):
            self.store._replicated.apply_commands([b"junk"], sync=True, timeout=10)
        return {"ops": n / (time.perf_counter() - start)}

    def pipelined(self, outstanding: int, n: int) -> dict[str, Any]:
        """One client thread keeps ``outstanding`` signed version commits on their way at once
        (``submit_async``), instead of waiting for each: the store without the cost of waking a
        Python thread per commit."""
        commands = self.presigned_commits("pipelined", Selection(), n)
        room = threading.Semaphore(outstanding)
        done = threading.Event()
        outcomes: list[Any] = []

        def finished(result: Any, error: int) -> None:
            outcomes.append((result, error))
            room.release()
            if len(outcomes) == n:
                done.set()

        start = time.perf_counter()
        for command in commands:
            room.acquire()
            self.store.submit_async(command, finished)
        if not done.wait(120):
            raise TimeoutError("pipelined commits did not finish")
        elapsed = time.perf_counter() - start
        failed = [o for o in outcomes if o[1] != 0 or o[0] is None or o[0][0] != "ok"]
        if failed:
            raise RuntimeError(f"{len(failed)} pipelined commits failed, first: {failed[0]}")
        return {"ops": n / elapsed}

    def concurrent(self, clients: int, n_each: int) -> dict[str, Any]:
        users = [self.service(f"client{i}") for i in range(clients)]
        samples: list[list[float]] = [[] for _ in users]

        def run(i: int) -> None:
            service, set_id = users[i]
            for _ in range(n_each):
                t = time.perf_counter()
                service.sets.commit(set_id, Selection(), message="bench")
                samples[i].append(time.perf_counter() - t)

        elapsed = run_clients(clients, run)
        flat = [s for per in samples for s in per]
        return {"ops": len(flat) / elapsed, **latencies_ms(flat)}

    def reads(self, readers: int, seconds: float) -> dict[str, Any]:
        """``readers`` threads read sets and versions while one writer commits."""
        writer, set_id = self.service("writer")
        stop = threading.Event()
        samples: list[list[float]] = [[] for _ in range(readers)]
        writes = [0]

        def write() -> None:
            while not stop.is_set():
                writer.sets.commit(set_id, Selection(), message="during reads")
                writes[0] += 1

        def read(i: int) -> None:
            rng = random.Random(i)
            while not stop.wait(rng.uniform(0.05, 0.15)):
                t = time.perf_counter()
                rs = writer.sets.get(set_id)
                writer.sets.version(set_id, rs.head)
                writer.sets.list("cluster")
                samples[i].append(time.perf_counter() - t)

        threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
        threads.append(threading.Thread(target=write))
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join()
        flat = [s for per in samples for s in per]
        stats = latencies_ms(flat)
        return {
            "reads": len(flat),
            "writes": writes[0],
            "read_p50_ms": stats["p50_ms"],
            "read_p99_ms": stats["p99_ms"],
        }

    def manifest(self, leaves: int) -> dict[str, Any]:
        b = ManifestBuilder()
        rng = random.Random(leaves)
        for i in range(leaves):
            study = f"1.3.6.1.4.1.14519.5.2.1.{rng.getrandbits(120)}"
            b.add(
                "idc",
                (
                    f"collection-{i // 200_000}",
                    f"PAT-{i // 12:07d}",
                    study,
                    f"1.3.6.1.4.1.14519.5.2.1.{rng.getrandbits(120)}",
                ),
                size=rng.randint(1, 600) * 525_000,
                count=rng.randint(1, 600),
                version=f"{rng.getrandbits(128):032x}",
            )
        manifest = b.build()
        service = Service(self.store, Identity.generate("uploader"), timeout=60)
        service.register()
        start = time.perf_counter()
        service.sets.upload_manifest(manifest)
        return {"manifest_id": manifest.id, "leader_s": time.perf_counter() - start, "started": start}


def bare_concurrent(counter: Counter, clients: int, n_each: int) -> dict[str, Any]:
    """``clients`` threads, each incrementing the bare counter synchronously: what pysyncobj itself
    does with as many clients as ``StoreWork.concurrent`` (one command per log entry)."""

    def run(i: int) -> None:
        for _ in range(n_each):
            counter.inc(sync=True, timeout=10)

    return {"ops": clients * n_each / run_clients(clients, run)}


def run_clients(clients: int, run: Callable[[int], None]) -> float:
    """Run ``run(i)`` on ``clients`` threads, started together; the seconds until all are done."""
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        barrier.wait()
        run(i)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def serve(conn: Connection, work: Any, kind: str) -> None:
    with conn:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            op, *args = request
            if op == "status":
                s = work.getStatus() if kind == "bare" else work.store.syncobj.getStatus()
                conn.send(
                    {
                        "leader": None if s["leader"] is None else str(s["leader"]),
                        "applied": s["last_applied"],
                    }
                )
            elif op == "apply_cpu_s":
                conn.send(ApplyClock.seconds)
            elif op == "has_manifest":
                conn.send(args[0] in work.store.state.manifests)
            elif op == "bare_sync":
                n = args[0]
                payload = b"x" * (args[1] if len(args) > 1 else 0)
                start = time.perf_counter()
                for _ in range(n):
                    if payload:
                        work.inc_payload(payload, sync=True, timeout=10)
                    else:
                        work.inc(sync=True, timeout=10)
                conn.send({"ops": n / (time.perf_counter() - start)})
            elif op == "bare_concurrent":
                conn.send(bare_concurrent(work, *args))
            else:
                conn.send(getattr(work, op)(*args))


def main() -> None:
    kind, address, peers, data, port, authkey = sys.argv[1:7]
    data_dir = Path(data)
    data_dir.mkdir(parents=True, exist_ok=True)
    others = [p for p in peers.split(",") if p]
    if kind == "bare":
        work: Any = Counter(address, others, data_dir)
    else:
        ApplyClock.install()
        work = StoreWork(RaftStore(address, others, data_dir, SECRET))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listener = Listener(("127.0.0.1", int(port)), authkey=bytes.fromhex(authkey))

    def accept() -> None:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, work, kind), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("READY", flush=True)
    stop.wait()
    listener.close()
    if kind == "bare":
        work.destroy()
    else:
        work.store.close()


if __name__ == "__main__":
    main()
