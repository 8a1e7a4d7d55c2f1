"""The app stops cleanly on SIGTERM and on Ctrl-C (SIGINT), also without a display: the Qt loop
quits, the node stops, and the local API's endpoint file no longer names the process (a stale one
would point the SDK and the CLI at a dead process; the node keeps the file's token, with pid 0)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from mediator_desktop.core.endpoint import Endpoint
from tests.unit.ui.app_process import kill, start_app, stop, wait_for

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_app_and_its_node_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    home = tmp_path / "home"
    data = home / "data"
    process = start_app(home)
    try:
        wait_for(lambda: (data / "local-api.json").exists(), process, "the local API endpoint file")
        served = Endpoint.read(data)
        assert served is not None and served.pid == process.pid
        err = stop(process, signum)
        assert process.returncode == 0, err[-3000:]
        # The file stays, no longer naming the process, with the token the next start serves again.
        left = Endpoint.read(data)
        assert left is not None, "local-api.json is gone: the next start would serve another token"
        assert left == Endpoint(served.url, served.token, 0, served.version), left
        assert f"{signum.name} received: stopping" in err
        assert "node stopped" in err
    finally:
        kill(process)
