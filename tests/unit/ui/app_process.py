"""The ``mediator-desktop`` app as a child process (offscreen, its own MEDIATOR_HOME, no mDNS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def start_app(home: Path, *, welcome: bool = False) -> subprocess.Popen[bytes]:
    """Start the app; ``welcome`` lets it ask for a display name on a first start."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "MEDIATOR_HOME": str(home),
        "MEDIATOR_DISCOVERY": "off",
        "MEDIATOR_NO_WELCOME": "0" if welcome else "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mediator_desktop.ui.app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str, seconds: float = 60.0
) -> None:
    """Poll ``condition`` until it holds; fail when the app exits first or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the app exited with {process.returncode} before {what}:\n{err.decode()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds:.0f} s")
        time.sleep(0.1)


def log_of(home: Path) -> str:
    """What the app logged so far (its log file, under the data folder)."""
    try:
        return (home / "data" / "logs" / "app.log").read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def stop(process: subprocess.Popen[bytes], signum: int, seconds: float = 15.0) -> str:
    """Send ``signum``; returns the app's stderr once it exited (fails after ``seconds``)."""
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app did not stop within {seconds:.0f} s of signal {signum}")
    return err.decode()


def kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)
