"""The installed ``mediator-desktop`` (the Debian package's /usr/bin commands) on a private Xvfb
display, as a user starts it: used by tests/package/test_deb.py and bench/package.py.

``Desktop`` starts Xvfb (``-displayfd``: ready when it names its display); ``InstalledApp`` starts
the app in its own MEDIATOR_HOME (no mDNS, no first-start question, no keyring) and finds its main
window with ``xdotool search --name MEDIator``, as the issue asks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

BIN = Path("/usr/bin")
WINDOW_NAME = "MEDIator"


class Desktop:
    """A private X display (Xvfb); ``with Desktop() as desktop: desktop.env``."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.display = ""

    def __enter__(self) -> Desktop:
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        number = self.process.stdout.readline().strip()  # written once the server accepts clients
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start (Debian: apt-get install xvfb)")
        self.display = f":{number}"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def env(self, home: Path) -> dict[str, str]:
        """An environment for the app on this display, with its data under ``home``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "WAYLAND_"))}
        env.update(
            DISPLAY=self.display,
            MEDIATOR_HOME=str(home),
            MEDIATOR_DISCOVERY="off",
            MEDIATOR_NO_WELCOME="1",
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        )
        return env


def windows(env: dict[str, str], name: str = WINDOW_NAME) -> list[str]:
    """The ids of the visible and hidden X windows whose title contains ``name``."""
    done = subprocess.run(
        ["xdotool", "search", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout.split()


def mapped_windows(env: dict[str, str], name: str = WINDOW_NAME) -> list[str]:
    """The ids of the mapped (shown) windows whose title contains ``name``."""
    done = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout.split()


class InstalledApp:
    """``/usr/bin/mediator-desktop`` as a child process on ``desktop``, its data in ``home``."""

    def __init__(self, desktop: Desktop, home: Path, args: Sequence[str] = ()) -> None:
        self.env = desktop.env(home)
        self.home = home
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(BIN / "mediator-desktop"), *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, condition: Callable[[], bool], what: str, seconds: float = 60.0) -> float:
        """Poll ``condition`` (every 20 ms) until it holds; returns the seconds since the start.
        Raises when the app exits first or time runs out."""
        deadline = time.monotonic() + seconds
        while not condition():
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                status = self.process.returncode
                raise AssertionError(f"the app exited with {status} before {what}:\n{err[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {seconds:.0f} s")
            time.sleep(0.02)
        return time.perf_counter() - self.started

    def wait_for_window(self, seconds: float = 60.0) -> float:
        """Seconds from the start until the main window is shown (found by xdotool)."""
        return self.wait_for(lambda: bool(mapped_windows(self.env)), "the main window", seconds)

    def command(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``/usr/bin/mediator ARGS`` as this user (same home, same display)."""
        return subprocess.run(
            [str(BIN / "mediator"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cpu_seconds(self) -> float:
        """The CPU time (user + system) the app used so far (Linux: /proc/PID/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def quit(self, seconds: float = 30.0) -> tuple[int, str]:
        """Quit as a user does (Ctrl+Q in the window); returns the exit status and stderr."""
        ids = mapped_windows(self.env)
        if ids:
            subprocess.run(
                ["xdotool", "windowfocus", "--sync", ids[0], "key", "--clearmodifiers", "ctrl+q"],
                env=self.env,
                capture_output=True,
                timeout=10,
                check=False,
            )
        try:
            _, err = self.process.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the app did not quit within {seconds:.0f} s of Ctrl+Q") from None
        return self.process.returncode, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
