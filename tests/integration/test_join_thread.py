"""A join made on a worker thread leaves the node able to write (issue 21).

The app joins on worker threads (the peers panel's worker, the local API's thread pool). pysyncobj
stopped a node's tick thread once the thread that made it had ended: the newcomer went deaf, its
member dropped the connection and lost its quorum, and the next write failed after 10 s with
"no quorum: 2 of 2 cluster members are reachable".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mediator_desktop.core.replica import Visibility
from tests.helpers.service import make_node

pytestmark = pytest.mark.timeout(120)

#: Issue 21's availability goal: the longest time without a successful write while a majority is up.
GOAL_WRITE_WINDOW_S = 3.0


@pytest.fixture
def nodes() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_writes_go_through_after_a_join_made_on_a_thread_that_has_ended(
    tmp_path: Path, nodes: ExitStack
) -> None:
    first = nodes.enter_context(make_node(tmp_path, "first"))
    joiner = nodes.enter_context(make_node(tmp_path, "joiner"))
    code = first.service.cluster.create_join_code()
    failure: list[BaseException] = []
    joined_at: list[float] = []

    def join() -> None:
        try:
            joiner.service.cluster.join(code)
            joined_at.append(time.monotonic())
        except BaseException as exc:  # noqa: BLE001 - raised on the test's thread
            failure.append(exc)

    worker = threading.Thread(target=join, name="join-worker")
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and not failure, failure
    set_id = joiner.service.sets.create("after a join on a worker", visibility=Visibility.CLUSTER)
    # The goal (issue 21): no window over 3 s without a successful write while a majority is up.
    # join() returns once the node is a ready member and both members are up, so the window is
    # timed from that return (on the worker) to the write's acknowledgement. A deaf node (the bug)
    # fails the write itself: OutcomeUnknown after its 10 s timeout and a re-send.
    window = time.monotonic() - joined_at[0]
    print(f"timing: the first write was acknowledged {window:.3f} s after join() returned")
    assert window <= GOAL_WRITE_WINDOW_S, f"no write for {window:.2f} s after the join"
    deadline = time.monotonic() + 15
    while set_id not in first.store.state.sets:  # replication has no callback to wait on here
        assert time.monotonic() < deadline, "the set never reached the member"
        time.sleep(0.02)
    status = joiner.service.cluster.status()
    assert status.has_quorum and all(m.connected for m in status.members), status
