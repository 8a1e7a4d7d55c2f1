"""A node made on a thread that has ended still works: pysyncobj stops its tick thread when the
thread that made the node ends, and the app makes nodes on worker threads (a join from the UI's
worker or the local API's thread pool)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mediator_desktop.raft.membership import LONE_TIMEOUTS, free_loopback_address
from mediator_desktop.raft.store import RaftStore
from tests.helpers.actors import Actor

pytestmark = pytest.mark.timeout(60)


def test_a_node_made_on_a_finished_thread_keeps_ticking(tmp_path: Path) -> None:
    made: list[RaftStore] = []

    def make() -> None:
        store = RaftStore(free_loopback_address(), [], tmp_path, "a-secret", election_timeout=LONE_TIMEOUTS)
        made.append(store)
        store.wait_ready(10)

    worker = threading.Thread(target=make, name="worker")
    worker.start()
    worker.join()
    assert made, "the node did not start"
    store = made[0]
    try:
        result = store.submit(Actor("alice").register(), timeout=5)
        assert result[0] == "ok", result
        assert store.syncobj.tick_thread_alive()
    finally:
        store.close()
