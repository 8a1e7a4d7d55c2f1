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

    def join() -> None:
        try:
            joiner.service.cluster.join(code)
        except BaseException as exc:  # noqa: BLE001 - raised on the test's thread
            failure.append(exc)

    worker = threading.Thread(target=join, name="join-worker")
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and not failure, failure
    started = time.monotonic()
    set_id = joiner.service.sets.create("after a join on a worker", visibility=Visibility.CLUSTER)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 15
    while set_id not in first.store.state.sets:  # replication has no callback to wait on here
        assert time.monotonic() < deadline, "the set never reached the member"
        time.sleep(0.02)
    status = joiner.service.cluster.status()
    assert status.has_quorum and all(m.connected for m in status.members), status
