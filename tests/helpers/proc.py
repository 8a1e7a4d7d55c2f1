"""Stopping the server processes tests start: politely, then for sure, and always waited for."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the process is reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``proc`` writes to its stdout (a pipe, text mode), waiting at most ``timeout``."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no line from process {proc.pid} within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"process {proc.pid} closed its output (exit {proc.wait(5)})")
    return line
