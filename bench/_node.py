"""A process for ``bench/store.py``: a node (a pysyncobj counter or our store) with a control port,
a reader client, or a trivial HTTP server.

Usage:
- ``python bench/_node.py {stock|floor|store|store-api} ADDRESS PEERS DATA_DIR CONTROL_PORT AUTHKEY_HEX``:
  a node. ``stock``: a pysyncobj counter with pysyncobj's own connections and ``password=`` (Fernet
  with PBKDF2, zlib, pickle protocol 2: what a user of pysyncobj would pick). ``floor``: the same
  counter on our transport (``raft.transport.SteadyTransport`` and ``raft.cipher.ClusterCipher``,
  commands pickled with the highest protocol as ``RaftStore`` does), without signatures or a store:
  the floor of our design. ``store``: our store; ``store-api`` also serves the node's local API.
  Both counters replicate an opaque payload as long as the store's command, with ``raft_conf``'s
  settings. The secret comes from the environment variable ``MEDIATOR_BENCH_SECRET``. Work runs
  inside the node's process, as the desktop app or a script on the same machine calls its node.
- ``python bench/_node.py readers COUNT SECONDS THINK_LO THINK_HI TARGETS_JSON SEED``: ``COUNT``
  readers (pycurl multi driven by epoll, one thread), each reading its target (``[url, token]``,
  readers spread round robin over them) then pausing a random ``THINK_LO``-``THINK_HI`` seconds;
  starts on a line ``GO`` on stdin, prints one JSON line of the latencies (seconds, ``samples``),
  how late each read started (``lag``), the errors and the process's CPU seconds (``cpu_s``).
- ``python bench/_node.py trivial PORT``: an HTTP server answering every request at once with
  ``{}`` (what the reader client costs by itself).
"""

from __future__ import annotations

import asyncio
import cProfile
import heapq
import io
import json
import logging
import os
import pickle
import pstats
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, ClassVar

from pysyncobj import FAIL_REASON, SyncObj, replicated
from pysyncobj.syncobj import _COMMAND_TYPE

from mediator_desktop.core.commands import SeqClock, seal
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.manifest import ManifestBuilder
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings, SettingsFile
from mediator_desktop.core.state import StoreState
from mediator_desktop.raft.cipher import ClusterCipher
from mediator_desktop.raft.store import RaftStore, raft_conf
from mediator_desktop.raft.transport import SteadyTransport

SECRET = os.environ.get("MEDIATOR_BENCH_SECRET", "bench-secret")
#: What the store's synchronous clients commit (and so what a command of theirs weighs).
SYNC_SELECTION = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))


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

        StoreState.apply = timed  # type: ignore[method-assign,assignment]


class GcClock:
    """Seconds this process spent in the cyclic garbage collector (all generations), since start."""

    seconds = 0.0
    collections = 0
    _started = 0.0

    @classmethod
    def install(cls) -> None:
        import gc

        def clock(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                cls._started = time.perf_counter()
            else:
                cls.seconds += time.perf_counter() - cls._started
                cls.collections += 1

        gc.callbacks.append(clock)


class Profiles:
    """cProfile on the CPU clock (``time.thread_time``), per thread: the raft thread (switched on
    and off at the start of a tick) and the threads that serve ``sync`` requests.
    ``profile_start``/``profile_stop`` control it (``MEDIATOR_BENCH_PROFILE`` in ``bench/store.py``)."""

    on = False
    raft: cProfile.Profile | None = None
    raft_running = False
    clients: ClassVar[list[cProfile.Profile]] = []

    @classmethod
    def install(cls) -> None:
        tick = SyncObj._onTick

        def profiled(node: SyncObj, *args: Any, **kwargs: Any) -> Any:
            if cls.on != cls.raft_running:  # switched on this thread: a profile is per thread
                if cls.on:
                    cls.raft = cProfile.Profile(time.thread_time)
                    cls.raft.enable()
                elif cls.raft is not None:
                    cls.raft.disable()
                cls.raft_running = cls.on
            return tick(node, *args, **kwargs)

        SyncObj._onTick = profiled

    @classmethod
    def client(cls, run: Callable[[], Any]) -> Any:
        if not cls.on:
            return run()
        profile = cProfile.Profile(time.thread_time)
        cls.clients.append(profile)
        profile.enable()
        try:
            return run()
        finally:
            profile.disable()

    @classmethod
    def start(cls) -> None:
        cls.raft, cls.clients, cls.on = None, [], True

    @classmethod
    def stop(cls, top: int = 40) -> dict[str, str]:
        """The top entries (own time, then cumulative) of the raft thread and of the clients."""
        cls.on = False
        time.sleep(0.3)  # the raft thread ticks at least every 50 ms: its profile is off by now
        report = {}
        for name, profiles in (("raft", [cls.raft] if cls.raft else []), ("client", cls.clients)):
            if not profiles:
                continue
            text = io.StringIO()
            stats = pstats.Stats(profiles[0], stream=text)
            for extra in profiles[1:]:
                stats.add(extra)
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            report[name] = text.getvalue()
        return report


class Counter(SyncObj):  # type: ignore[misc]
    """Stock pysyncobj: ``raft_conf``'s settings (``password=`` included: Fernet with PBKDF2, zlib,
    pickle protocol 2 on every connection), one replicated method taking an opaque payload."""

    def __init__(self, address: str, peers: list[str], data: Path, **kwargs: Any) -> None:
        super().__init__(address, peers, raft_conf(SECRET, data), **kwargs)
        self.value = 0

    @replicated  # type: ignore[untyped-decorator]
    def inc_payload(self, payload: bytes) -> int:
        self.value += len(payload)
        return self.value

    def submit(self, payload: bytes, timeout: float = 10) -> None:
        """Replicate ``payload`` and wait until this node applied it."""
        self.inc_payload(payload, sync=True, timeout=timeout)


class FloorCounter(Counter):
    """The floor of our design: pysyncobj with our transport (``SteadyTransport``: lean messages
    sealed by ``ClusterCipher``, not Fernet; no zlib) and the call pickled with the highest protocol,
    as ``RaftStore`` sends it; no signatures, no parsing, no state but a counter."""

    def __init__(self, address: str, peers: list[str], data: Path) -> None:
        self._cipher = ClusterCipher(SECRET)  # before the transport starts: it asks at once
        super().__init__(address, peers, data, transportClass=SteadyTransport)
        self._inc_id = self._methodToID[self._getFuncName("inc_payload")]

    @property
    def encryptor(self) -> ClusterCipher:
        return self._cipher

    def _getEncryptor(self) -> ClusterCipher:
        return self._cipher

    def submit(self, payload: bytes, timeout: float = 10) -> None:
        done = threading.Lock()
        done.acquire()
        outcome: list[int] = []

        def finished(result: Any, error: int) -> None:
            outcome.append(error)
            done.release()

        call = pickle.dumps((self._inc_id, (payload,)), pickle.HIGHEST_PROTOCOL)
        self._applyCommand(call, finished, _COMMAND_TYPE.REGULAR)
        if not done.acquire(timeout=timeout):
            raise TimeoutError("the floor counter did not answer in time")
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise RuntimeError(f"the floor counter failed (pysyncobj error {outcome[0]})")


def latencies_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


class StoreWork:
    def __init__(self, store: RaftStore, data_dir: Path) -> None:
        self.store = store
        self.data_dir = data_dir
        self._identities: dict[str, Identity] = {}
        self._seq = SeqClock()
        self._probe: tuple[Service, str] | None = None
        self._api: Any = None
        self._users: list[tuple[Service, str]] = []

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

    def command_bytes(self, which: str) -> int:
        """The size of one version commit as the ``sync`` (``"sync"``) or ``concurrent`` clients
        (``"empty"``) send it: what the counters replicate in its place."""
        selection = SYNC_SELECTION if which == "sync" else Selection()
        return len(self.presigned_commits(f"size {which}", selection, 1)[0])

    def sync(self, n: int) -> dict[str, Any]:
        service, set_id = self.service("sync")
        samples = []
        cpu = time.thread_time()
        start = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            service.sets.commit(set_id, SYNC_SELECTION, message="bench")
            samples.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        client = (time.thread_time() - cpu) / n * 1000
        return {"ops": n / elapsed, **latencies_ms(samples), "client_cpu_ms": round(client, 4)}

    def sync_presigned(self, n: int) -> dict[str, Any]:
        """``n`` signed commits, sealed beforehand, submitted one at a time (``RaftStore.submit``):
        what ``sync`` costs without the service and the signing."""
        commands = self.presigned_commits("sync presigned", SYNC_SELECTION, n)
        samples = []
        cpu = time.thread_time()
        start = time.perf_counter()
        for command in commands:
            t = time.perf_counter()
            result = self.store.submit(command)
            samples.append(time.perf_counter() - t)
            if result[0] != "ok":
                raise RuntimeError(f"a presigned commit failed: {result}")
        elapsed = time.perf_counter() - start
        client = (time.thread_time() - cpu) / n * 1000
        return {"ops": n / elapsed, **latencies_ms(samples), "client_cpu_ms": round(client, 4)}

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

    def prepare_concurrent(self, clients: int) -> None:
        """The users and sets of the next ``concurrent`` run, made before its CPU is measured."""
        self._users = [self.service(f"client{i}") for i in range(clients)]

    def concurrent(self, clients: int, n_each: int) -> dict[str, Any]:
        users, self._users = self._users or [self.service(f"client{i}") for i in range(clients)], []
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

    def write_for(self, seconds: float, per_s: float = 0.0) -> dict[str, Any]:
        """One writer committing for ``seconds`` (writes going on while readers read): ``per_s``
        commits a second, on a steady clock (0: each as soon as the one before is done)."""
        writer, set_id = self.service("writer")
        writes = 0
        start = time.monotonic()
        deadline = start + seconds
        while (now := time.monotonic()) < deadline:
            if per_s > 0 and now < start + writes / per_s:
                time.sleep(start + writes / per_s - now)
                continue
            writer.sets.commit(set_id, Selection(), message="during reads")
            writes += 1
        return {"writes": writes, "per_s": writes / (time.monotonic() - start)}

    def api(self) -> dict[str, Any]:
        """Where this node's local API answers, its token and a set of this node's user to read."""
        if self._api is None:
            raise RuntimeError("this node runs without its local API (kind store-api starts it)")
        service, api = self._api
        service.register()
        set_id = service.sets.create("bench reads", visibility=Visibility.CLUSTER)
        service.sets.commit(set_id, SYNC_SELECTION, message="to read")
        return {"url": f"{api.url}/v1/sets/{set_id}", "token": api.token, "set_id": set_id}

    def has_set(self, set_id: str) -> bool:
        return set_id in self.store.state.sets

    def probe_setup(self) -> None:
        """A user and a set for ``probe``, made while the cluster is whole."""
        self._probe = self.service("probe")

    def probe(self) -> float:
        """Commit once (the service retries until a leader answers); ``time.monotonic()`` when it
        succeeded (one clock for all processes of the machine)."""
        if self._probe is None:
            raise RuntimeError("probe_setup first")
        service, set_id = self._probe
        service.sets.commit(set_id, Selection(), message="after the leader died")
        return time.monotonic()

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


def counter_sync(counter: Counter, n: int, size: int) -> dict[str, Any]:
    """``n`` synchronous commands of ``size`` bytes, one at a time."""
    payload = os.urandom(size)  # incompressible, as signed commands are mostly
    samples = []
    cpu = time.thread_time()
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        counter.submit(payload)
        samples.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    client = (time.thread_time() - cpu) / n * 1000
    return {"ops": n / elapsed, **latencies_ms(samples), "client_cpu_ms": round(client, 4)}


def counter_concurrent(counter: Counter, clients: int, n_each: int, size: int) -> dict[str, Any]:
    """``clients`` threads, each replicating synchronously: what pysyncobj itself does with as many
    clients as ``StoreWork.concurrent`` (one command per log entry)."""
    payload = os.urandom(size)
    samples: list[list[float]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        for _ in range(n_each):
            t = time.perf_counter()
            counter.submit(payload)
            samples[i].append(time.perf_counter() - t)

    elapsed = run_clients(clients, run)
    flat = [s for per in samples for s in per]
    return {"ops": len(flat) / elapsed, **latencies_ms(flat)}


def run_clients(clients: int, run: Callable[[int], None]) -> float:
    """Run ``run(i)`` on ``clients`` threads, started together; the seconds until all are done."""
    barrier = threading.Barrier(clients + 1)
    failures: list[BaseException] = []

    def client(i: int) -> None:
        barrier.wait()
        try:
            run(i)
        except BaseException as exc:  # noqa: BLE001  (said by the caller: a client that failed)
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} of {clients} clients failed, first: {failures[0]!r}")
    return time.perf_counter() - start


def serve(conn: Connection, work: Any, kind: str) -> None:
    with conn:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            op, *args = request
            try:
                answer = handle(work, kind, op, args)
            except Exception as exc:  # noqa: BLE001  (sent back: the benchmark says it out loud)
                answer = RuntimeError(f"{op} failed on the node: {type(exc).__name__}: {exc}")
            conn.send(answer)


def handle(work: Any, kind: str, op: str, args: list[Any]) -> Any:
    if op == "status":
        s = work.getStatus() if kind in ("stock", "floor") else work.store.syncobj.getStatus()
        return {"leader": None if s["leader"] is None else str(s["leader"]), "applied": s["last_applied"]}
    if op == "apply_cpu_s":
        return ApplyClock.seconds
    if op == "gc_s":
        return GcClock.seconds
    if op == "profile_start":
        return Profiles.start()
    if op == "profile_stop":
        return Profiles.stop(*args)
    if op == "has_manifest":
        return args[0] in work.store.state.manifests
    if op == "counter_sync":
        return Profiles.client(lambda: counter_sync(work, *args))
    if op == "sync":
        return Profiles.client(lambda: work.sync(*args))
    if op == "counter_concurrent":
        return counter_concurrent(work, *args)
    return getattr(work, op)(*args)


def run_node(kind: str, address: str, peers: str, data: str, port: str, authkey: str) -> None:
    data_dir = Path(data)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The kinds share the benchmark's stderr: each line says which node wrote it.
    logging.basicConfig(format=f"[{kind} {address}] %(levelname)s %(name)s: %(message)s")
    Profiles.install()
    GcClock.install()
    others = [p for p in peers.split(",") if p]
    api = None
    if kind == "stock":
        work: Any = Counter(address, others, data_dir)
    elif kind == "floor":
        work = FloorCounter(address, others, data_dir)
    elif kind in ("store", "store-api"):
        ApplyClock.install()
        work = StoreWork(RaftStore(address, others, data_dir, SECRET), data_dir)
        if kind == "store-api":
            from mediator_desktop.api.server import LocalApi

            settings = SettingsFile(Settings(data_dir=data_dir), persist=False)
            service = Service(work.store, Identity.generate("reader"), settings=settings, timeout=30)
            api = LocalApi(service).start()
            work._api = (service, api)
    else:
        raise SystemExit(f"no node kind {kind!r}: stock, floor, store or store-api")
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
    if api is not None:
        api.stop()
    if kind in ("stock", "floor"):
        work.destroy()
    else:
        work.store.close()


def run_readers(
    count: int, seconds: float, think: tuple[float, float], targets: list[list[str]], seed: int
) -> None:
    """Readers with think time on one pycurl multi handle driven by epoll (pycurl's socket API:
    no select() over every connection, no limit of 1024 file descriptors), the cyclic garbage
    collector off while they run (see the module's usage). Each latency runs from the moment the
    request is handed to libcurl to the moment its answer is seen complete; ``lag`` is how late
    the loop started reads against their due time (the client's own delay)."""
    import gc
    import select

    import pycurl

    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAXCONNECTS, count + 16)  # every reader keeps its connection
    poller = select.epoll()
    watched: dict[int, int] = {}
    deadline: list[float | None] = [None]  # libcurl's next timeout (perf_counter), None: none

    def on_socket(event: int, fd: int, _multi: Any, _data: Any) -> None:
        if event == pycurl.POLL_REMOVE:
            if watched.pop(fd, None) is not None:
                poller.unregister(fd)
            return
        mask = (select.EPOLLIN if event in (pycurl.POLL_IN, pycurl.POLL_INOUT) else 0) | (
            select.EPOLLOUT if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT) else 0
        )
        if fd in watched:
            poller.modify(fd, mask)
        else:
            poller.register(fd, mask)
        watched[fd] = mask

    def on_timer(ms: int) -> None:
        deadline[0] = None if ms < 0 else time.perf_counter() + ms / 1000

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    handles = []
    for i in range(count):
        url, token = targets[i % len(targets)]
        c = pycurl.Curl()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.HTTPHEADER, [f"Authorization: Bearer {token}"])
        c.setopt(pycurl.WRITEFUNCTION, len)  # the body is read and dropped
        c.setopt(pycurl.TIMEOUT, 30)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.reader = i
        handles.append(c)
    rng = random.Random(seed)
    gc.collect()
    gc.freeze()
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return
    gc.disable()  # a collection is a pause of every reader of this process
    cpu = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    # Each reader starts at a random moment of its first pause, so they do not all start at once.
    due = [(start + rng.uniform(0, think[1]), i) for i in range(count)]
    heapq.heapify(due)
    began: dict[int, float] = {}
    samples: list[float] = []
    lag: list[float] = []
    errors: list[str] = []
    flags = {select.EPOLLIN: pycurl.CSELECT_IN, select.EPOLLOUT: pycurl.CSELECT_OUT}

    def finished(c: Any, error: str | None, done: float) -> None:
        multi.remove_handle(c)
        took = done - began.pop(c.reader)
        if error is None:
            status = c.getinfo(pycurl.RESPONSE_CODE)
            if status == 200:
                samples.append(took)
            else:
                errors.append(f"HTTP {status}")
        else:
            errors.append(error)
        if done + think[0] < end:
            heapq.heappush(due, (done + rng.uniform(*think), c.reader))

    while due or began:
        now = time.perf_counter()
        while due and due[0][0] <= now:
            at, i = heapq.heappop(due)
            began[i] = now = time.perf_counter()
            lag.append(now - at)
            multi.add_handle(handles[i])  # libcurl asks for a timeout of 0: started just below
        timeout = 0.05
        if due:
            timeout = min(timeout, due[0][0] - now)
        if deadline[0] is not None:
            timeout = min(timeout, deadline[0] - now)
        events = poller.poll(max(timeout, 0.0)) if timeout > 0 else poller.poll(0)
        for fd, mask in events:
            action = 0
            for bit, flag in flags.items():
                if mask & bit:
                    action |= flag
            if mask & (select.EPOLLERR | select.EPOLLHUP):
                action |= pycurl.CSELECT_ERR
            multi.socket_action(fd, action)
        if deadline[0] is not None and time.perf_counter() >= deadline[0]:
            deadline[0] = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        while True:
            queued, ok, failed = multi.info_read()
            done = time.perf_counter()
            for c in ok:
                finished(c, None, done)
            for c, _code, message in failed:
                finished(c, message, done)
            if not queued:
                break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    gc.enable()
    print(
        json.dumps(
            {
                "samples": samples,
                "lag": lag,
                "errors": errors[:20],
                "n_errors": len(errors),
                "seconds": elapsed,
                "cpu_s": cpu,
            }
        )
    )


class _Trivial(asyncio.Protocol):
    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(self.ANSWER)  # type: ignore[attr-defined]


def run_trivial(port: int) -> None:
    async def serve_forever() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Trivial, "127.0.0.1", port, backlog=2048)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("READY", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(serve_forever())


def main() -> None:
    kind = sys.argv[1]
    if kind == "readers":
        count, seconds, lo, hi, targets, seed = sys.argv[2:8]
        run_readers(int(count), float(seconds), (float(lo), float(hi)), json.loads(targets), int(seed))
    elif kind == "trivial":
        run_trivial(int(sys.argv[2]))
    else:
        run_node(*sys.argv[1:7])


if __name__ == "__main__":
    main()
