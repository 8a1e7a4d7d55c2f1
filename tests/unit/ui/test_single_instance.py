"""One app per data folder: a second start hands its files to the running app (two real processes,
offscreen), and the socket's protocol in one process (a request, a malformed one, a stale socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import idc_index_data
import pyarrow.parquet as pq
import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.endpoint import Endpoint
from mediator_desktop.ui.single_instance import InstanceServer, server_name
from tests.unit.ui.app_process import kill, log_of, stop, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
APP_ENV = {"QT_QPA_PLATFORM": "offscreen", "MEDIATOR_DISCOVERY": "off", "MEDIATOR_NO_WELCOME": "1"}


def idc_series(count: int) -> list[str]:
    """Real series UIDs of IDC's index (offline), which the default IDC archive finds."""
    table = pq.read_table(
        str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH),
        columns=["SeriesInstanceUID"],
        filters=[("collection_id", "=", "rider_pilot"), ("Modality", "=", "CT")],
    )
    return sorted(table.column("SeriesInstanceUID").to_pylist())[:count]


def sets_of(home: Path) -> list[str]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mediator"), "--json", "sets", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MEDIATOR_HOME": str(home)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [entry["name"] for entry in json.loads(done.stdout)]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_second_start_hands_its_files_to_the_running_app(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = home / "data"
    manifest = tmp_path / "rider.tcia"
    series = idc_series(3)
    manifest.write_text("manifestVersion=3.0\nListOfSeriesToDownload=\n" + "\n".join(series[:2]) + "\n")
    opened = tmp_path / "opened.tcia"
    opened.write_text("manifestVersion=3.0\nListOfSeriesToDownload=\n" + series[2] + "\n")
    # The first start is given a file too (a double click with no app running): imported once shown.
    first = subprocess.Popen(
        [sys.executable, "-m", "mediator_desktop.ui.app", str(opened)],
        env={**os.environ, **APP_ENV, "MEDIATOR_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: (data / "local-api.json").exists(), first, "the local API endpoint file")
        served = Endpoint.read(data)
        assert served is not None and served.pid == first.pid
        # As a file manager starts it (Exec=mediator-desktop %F), from another folder.
        second = subprocess.run(
            [sys.executable, "-m", "mediator_desktop.ui.app", manifest.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **APP_ENV, "MEDIATOR_HOME": str(home)},
            check=False,
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert "already runs" in second.stderr and "handed it 1 file(s)" in second.stderr
        assert "node " not in second.stderr  # no second node started
        wait_for(lambda: {"opened", "rider"} <= set(sets_of(home)), first, "the sets of both files")
        assert "handed over 1 file(s)" in log_of(home)
        # The running app is the same process, still serving.
        again = Endpoint.read(data)
        assert again is not None and again.pid == first.pid
        err = stop(first, 15)
        assert first.returncode == 0, err[-3000:]
    finally:
        kill(first)


def test_a_request_reaches_the_app_and_is_answered(qtbot: QtBot, tmp_path: Path) -> None:
    server = InstanceServer(tmp_path / "data")
    try:
        assert server.claim()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(server._server.fullServerName())
        with qtbot.waitSignal(server.activated, timeout=5000) as activated:
            client.sendall(json.dumps({"files": ["/tmp/a.tcia", 3]}).encode() + b"\n")
        assert activated.args == [[Path("/tmp/a.tcia")]]
        assert read_reply(qtbot, client) == b"ok\n"
        client.close()
        # Not a request at all: refused, and nothing is activated.
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(server._server.fullServerName())
        client.sendall(b"GET / HTTP/1.0\n")
        assert read_reply(qtbot, client) == b"error\n"
        client.close()
    finally:
        server.close()


def read_reply(qtbot: QtBot, client: socket.socket) -> bytes:
    client.setblocking(False)
    got: list[bytes] = []

    def answered() -> bool:
        try:
            got.append(client.recv(100))
        except BlockingIOError:
            return False
        return True

    qtbot.waitUntil(answered, timeout=5000)
    return got[0]


def test_a_socket_left_by_an_app_that_died_is_taken_over(qtbot: QtBot, tmp_path: Path) -> None:
    data = tmp_path / "data"
    probe = InstanceServer(data)
    assert probe.claim()
    path = probe._server.fullServerName()
    probe.close()
    assert not Path(path).exists()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # bound, never listening: what a killed app leaves behind
    stale.close()
    assert Path(path).exists()
    server = InstanceServer(data)
    try:
        assert server.claim()
        assert server._server.isListening() and server.name == server_name(data)
    finally:
        server.close()
