"""The real system tray: Xvfb with a tray host (trayer), Qt's own notification balloon shown and
clicked, the click received as ``message_clicked``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.proc import stop_process

pytestmark = [pytest.mark.timeout(90), pytest.mark.skipif(sys.platform != "linux", reason="X11 only")]


def free_display() -> int:
    return next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())


def test_a_real_tray_shows_a_notification_and_receives_its_click(tmp_path: Path) -> None:
    assert shutil.which("Xvfb") and shutil.which("trayer"), "make test installs xvfb and trayer"
    display = free_display()
    xvfb = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-displayfd", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    trayer = None
    try:
        assert xvfb.stdout is not None
        assert xvfb.stdout.readline().strip() == str(display)  # -displayfd: the server is ready
        env = {**os.environ, "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb"}
        trayer = subprocess.Popen(
            ["trayer", "--SetDockType", "true", "--edge", "top"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = subprocess.run(
            [sys.executable, "-m", "tests.helpers.tray_probe"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = [line for line in probe.stdout.splitlines() if line.startswith("{")]
        assert lines, probe.stderr
        result = json.loads(lines[-1])
        assert result == {"available": True, "clicked": True, "balloon": True}, probe.stderr
    finally:
        stop_process(trayer, 10)
        stop_process(xvfb, 10)
        if xvfb.stdout is not None:
            xvfb.stdout.close()
