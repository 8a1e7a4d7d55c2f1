"""A hung node is said to hang, not called an impostor (issue 21).

Against a SIGSTOPped ``mediator node run``, the port still takes connections (the kernel accepts
them) but nothing answers. ``mediator status`` and the SDK said "what answers at ... is not the
MEDIator node of this data folder"; they say the node does not answer (hung or overloaded).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.errors import EXIT_NO_NODE, NodeUnreachable
from mediator_desktop.sdk import Mediator
from tests.integration.test_cli import HeadlessNode, env_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

#: The SDK's request timeout in these tests, and how long its other work may take besides.
SDK_TIMEOUT = 2.0
OTHER_WORK_S = 1.0


@pytest.fixture
def hung_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A running ``mediator node run``, stopped with SIGSTOP; its home (``MEDIATOR_HOME`` here too).
    Resumed and stopped after."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDIATOR_HOME", str(home))
    node = HeadlessNode(home)
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        yield home
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.proc.pid, signal.SIGCONT)
        node.stop()


def test_the_sdk_says_a_hung_node_does_not_answer(hung_node: Path) -> None:
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as caught:
        Mediator(start=False, timeout=SDK_TIMEOUT)
    took = time.monotonic() - started
    message = str(caught.value)
    assert "does not answer (hung or overloaded)" in message, message
    assert "not the MEDIator node" not in message
    # The caller is not kept waiting: the SDK gives up after the timeout it was given. Wall time of
    # the constructor alone (all of it the SDK's); OTHER_WORK_S is for its other work (reading the
    # settings and the endpoint file, one loopback connect) on a loaded machine. A second try, or
    # the 10 s cap instead of the timeout, would miss it.
    print(f"timing: the SDK gave up on a hung node after {took:.3f} s (timeout {SDK_TIMEOUT} s)")
    assert took <= SDK_TIMEOUT + OTHER_WORK_S, f"the SDK gave up after {took:.2f} s"


def test_mediator_status_says_a_hung_node_does_not_answer(hung_node: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mediator_desktop.cli", "status"],
        env=env_for(hung_node),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == EXIT_NO_NODE, (out.stdout, out.stderr)
    assert "does not answer (hung or overloaded)" in out.stderr, out.stderr
    assert "not the MEDIator node" not in out.stderr
