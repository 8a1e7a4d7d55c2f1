"""A whole node (discovery, pairing, Raft) in its own process, driven over a Unix socket.

Run inside a network namespace: ``ip netns exec NS python -m tests.helpers.cluster_node HOME ADDRESS
SOCKET``. The file system is shared across namespaces, so the test talks to it through SOCKET.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.events import DriftRecorded
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.notices import Notices
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from tests.helpers.proc import stop_process

AUTHKEY = b"mediator-test-cluster"
#: (time, title, text) of the update notices this node raised (``watch_notices``).
_NOTICES: list[tuple[float, str, str]] = []


def serve(home: Path, address: str, socket_path: str, discovery: bool = True) -> None:
    settings = Settings(
        data_dir=home / "data",
        download_dir=home / "downloads",
        display_name=home.name,
        raft_address=address,
        discovery=discovery,
        sources=(),
    )
    node = Node(settings, settings_path=home / "settings.json").start(ready_timeout=30)
    listener = Listener(socket_path, family="AF_UNIX", authkey=AUTHKEY)
    services: dict[str, Service] = {}
    try:
        with listener.accept() as conn:
            while True:
                try:
                    name, args = conn.recv()
                except EOFError:
                    return
                if name == "stop":
                    conn.send(("ok", None))
                    return
                try:
                    conn.send(("ok", _call(node, name, args, services)))
                except MediatorError as exc:
                    conn.send(("err", f"{exc.__class__.__name__}: {exc}"))
    finally:
        listener.close()
        for service in services.values():
            service.close()
        node.stop()


def _call(node: Node, name: str, args: list[Any], services: dict[str, Service]) -> Any:
    # A "timeout" call swaps in a service of the same user whose changes wait that long for the
    # cluster (the node's own service waits the default 10 s).
    service = services.get("timed", node.service)
    cluster = node.service.cluster
    if name == "join_code":
        return cluster.create_join_code(*args)
    if name == "join":
        started = time.monotonic()
        cluster.join(args[0])
        return time.monotonic() - started
    if name == "create_set":
        set_id = service.sets.create(args[0], visibility=Visibility.CLUSTER)
        service.sets.commit(set_id, Selection(), message="first")
        return set_id
    if name == "commit":
        return service.sets.commit(args[0], Selection(), message=args[1])
    if name == "versions":
        return {s: len(v) for s, v in node.store.state.versions.items()}
    if name == "status":
        return asdict(cluster.status())
    if name == "peers":
        return [asdict(p) for p in cluster.peers()]
    # -- update tracking --
    if name == "add_source":  # kind, id, options, secret
        return node.service.archives.add(args[0], args[2], source_id=args[1], secret=args[3])
    if name == "rescan":
        return node.service.archives.rescan(args[0]).summary()
    if name == "check":
        return [outcome.line() for outcome in node.service.tracking.check([args[0]])]
    if name == "key_id":
        return node.service.key_id
    if name == "create_tracked":
        set_id = service.sets.create(
            args[0], visibility=Visibility.CLUSTER, add=[Pointer.of(args[1], *args[2:])]
        )
        service.sets.follow(set_id)
        return set_id
    if name == "follow":
        service.sets.follow(args[0])
        return None
    if name == "watch_notices":
        notices = Notices(node.service)

        def noticed(event: DriftRecorded) -> None:
            notice = notices.on_event(event)
            if notice is not None:
                _NOTICES.append((time.time(), notice.title, notice.text))

        node.service.events.subscribe(noticed, DriftRecorded)
        return None
    if name == "notices":
        return list(_NOTICES)
    if name == "drift":
        record = node.service.tracking.drift(args[0])
        return None if record is None else asdict(record)
    if name == "timeout":
        identity = Identity.load_or_create(node.data_dir, node.settings.display_name)
        services["timed"] = Service(node.store, identity, timeout=float(args[0]))
        return None
    raise ValueError(f"unknown call {name}")


def eventually(check: Callable[[], Any], timeout: float = 30.0, poll: float = 0.05) -> Any:
    """Poll node processes until ``check`` holds, or the time is up; returns its last value (no
    callbacks cross processes, so a test asks again)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(poll)


class RemoteNode:
    """The test's handle on a node process."""

    def __init__(
        self,
        prefix: list[str],
        home: Path,
        address: str,
        socket_path: Path,
        cwd: Path,
        *,
        discovery: bool = True,
    ) -> None:
        import subprocess

        self.address = address
        self.proc = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "tests.helpers.cluster_node",
                str(home),
                address,
                str(socket_path),
                *([] if discovery else ["nodiscovery"]),
            ],
            cwd=cwd,
        )
        deadline = time.monotonic() + 60
        while True:  # the socket file appears at bind, a moment before the listener accepts
            try:
                self.conn = Client(str(socket_path), family="AF_UNIX", authkey=AUTHKEY)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    stop_process(self.proc, 5)
                    raise RuntimeError(f"the node at {address} did not start") from None
                time.sleep(0.05)

    def call(self, name: str, *args: Any) -> Any:
        self.conn.send((name, list(args)))
        kind, value = self.conn.recv()
        if kind == "err":
            raise MediatorError(value)
        return value

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.call("stop")
        stop_process(self.proc, 20)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3], discovery=sys.argv[4:] != ["nodiscovery"])
