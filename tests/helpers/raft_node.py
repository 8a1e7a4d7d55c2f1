"""A store node in its own process, driven by tests over a local control connection.

Usage: ``python -m tests.helpers.raft_node --address HOST:PORT --peers A,B --data DIR
--secret-file FILE --control-port N --authkey HEX``. Prints ``READY`` once it accepts control
connections. SIGTERM stops it cleanly. Requests (pickled tuples over
``multiprocessing.connection``, authenticated by the authkey):

- ``("submit", command, timeout)`` -> ``("ok", result)`` or ``("raised", error type, message)``
- ``("snapshot",)`` -> a plain summary of the state, equal on nodes that agree
- ``("status",)`` -> ``ClusterStatus`` as a dict
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.state import StoreState
from mediator_desktop.raft.store import RaftStore


def snapshot(state: StoreState) -> dict[str, Any]:
    return {
        "users": sorted(state.users),
        "sets": {
            set_id: [rs.head, rs.owner, rs.visibility.value, sorted(rs.editors), sorted(rs.published)]
            for set_id, rs in sorted(state.sets.items())
        },
        "versions": {
            set_id: [(v.number, v.author, v.message, v.manifest_id) for v in versions]
            for set_id, versions in sorted(state.versions.items())
        },
        "manifests": sorted(state.manifests),
        "applied": state.applied,
    }


def serve(conn: Connection, store: RaftStore) -> None:
    with conn:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            kind = request[0]
            if kind == "submit":
                try:
                    reply: tuple[Any, ...] = ("ok", store.submit(request[1], request[2]))
                except MediatorError as exc:
                    reply = ("raised", type(exc).__name__, str(exc))
            elif kind == "snapshot":
                reply = ("ok", snapshot(store.state))
            elif kind == "status":
                reply = ("ok", dataclasses.asdict(store.status()))
            else:
                reply = ("raised", "ValueError", f"unknown request {kind!r}")
            conn.send(reply)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--peers", default="")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--secret-file", required=True, type=Path)
    parser.add_argument("--control-port", required=True, type=int)
    parser.add_argument("--authkey", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = RaftStore(
        args.address,
        [p for p in args.peers.split(",") if p],
        args.data,
        args.secret_file.read_text().strip(),
    )
    listener = Listener(("127.0.0.1", args.control_port), authkey=bytes.fromhex(args.authkey))

    def accept() -> None:
        while not stop.is_set():
            try:
                conn = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, store), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("READY", flush=True)
    stop.wait()
    listener.close()
    store.close()


if __name__ == "__main__":
    main()
