"""Package benchmark: how fast the installed bundle (the Debian package's ``/usr/bin/mediator-desktop``)
shows its window, on a private Xvfb display, as a user starts it.

    python bench/package.py [--deb build/mediator-desktop_VERSION_ARCH.deb] [--rounds N]

With ``--deb`` the package is installed first (``dpkg -i``, as root) and removed at the end;
without it the installed one is measured. The last line is one JSON object of the figures, with
``goals_missed`` (the goals below that were missed or not measured) and ``errors`` (parts that
failed); the exit status is 1 when a goal was missed.

Part ``start`` (``--rounds`` starts after a first one):
- ``bundle_first_start_s``: from starting the app on a new data folder (identity and settings made)
  to its main window shown (``xdotool search --onlyvisible --name MEDIator``, polled every 20 ms);
- ``bundle_start_s``: the same on a data folder used before, a user's daily start (median of the
  rounds; ``bundle_start_s_max`` the slowest); goal <= 3 s;
- ``bundle_start_cpu_s``: the CPU time (user + system) the app used until then (median): what
  the start costs whatever else the machine runs;
- ``bundle_api_ready_s``: until the local API answers ``mediator status`` (median);
- ``bundle_quit_s``: from Ctrl+Q in the window to the process gone (median);
- ``bundle_mb``: the installed bundle's size (``/opt/mediator-desktop``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._goals import Goals, main  # noqa: E402
from tests.helpers.installed_app import BIN, Desktop, InstalledApp  # noqa: E402

GOALS: Goals = {"bundle_start_s": ("start", lambda out: out["bundle_start_s"] <= 3.0)}
INSTALLED = Path("/opt/mediator-desktop")


def one_start(desktop: Desktop, home: Path) -> dict[str, float]:
    app = InstalledApp(desktop, home)
    try:
        shown = app.wait_for_window()
        cpu = app.cpu_seconds()
        api = app.wait_for(lambda: app.command("--json", "status", timeout=30).returncode == 0, "the API")
        asked = time.perf_counter()
        status, err = app.quit()
        if status != 0:
            raise RuntimeError(f"the app exited with {status} after Ctrl+Q:\n{err[-2000:]}")
        return {"shown": shown, "cpu": cpu, "api": api, "quit": time.perf_counter() - asked}
    finally:
        app.kill()


def start(work: Path, rounds: int, out: dict[str, Any]) -> None:
    if not (BIN / "mediator-desktop").exists():
        raise RuntimeError("no /usr/bin/mediator-desktop: give --deb, or install the package (make package)")
    files = (f for f in INSTALLED.rglob("*") if f.is_file() and not f.is_symlink())
    out["bundle_mb"] = round(sum(f.stat().st_size for f in files) / 1e6, 1)
    home = work / "home"
    with Desktop() as desktop:
        first = one_start(desktop, home)
        out["bundle_first_start_s"] = round(first["shown"], 2)
        runs = [one_start(desktop, home) for _ in range(rounds)]
    shown = [run["shown"] for run in runs]
    print("starts (s): " + ", ".join(f"{s:.2f}" for s in shown), file=sys.stderr)
    out["bundle_start_s"] = round(statistics.median(shown), 2)
    out["bundle_start_s_max"] = round(max(shown), 2)
    out["bundle_start_cpu_s"] = round(statistics.median(run["cpu"] for run in runs), 2)
    out["bundle_api_ready_s"] = round(statistics.median(run["api"] for run in runs), 2)
    out["bundle_quit_s"] = round(statistics.median(run["quit"] for run in runs), 2)


def install(deb: Path) -> None:
    subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True, timeout=600)


def remove() -> None:
    subprocess.run(["dpkg", "-r", "mediator-desktop"], check=True, capture_output=True, timeout=600)


if __name__ == "__main__":
    # --deb is this script's own; the rest is the benchmark's common command line (bench/_goals.py).
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--deb", type=Path)
    known, rest = own.parse_known_args()
    sys.argv[1:] = rest
    if not shutil.which("xdotool") or not shutil.which("Xvfb"):
        sys.exit("error: needs xdotool and Xvfb (Debian: apt-get install xdotool xvfb)")
    if known.deb is not None:
        install(known.deb)
    try:
        main("package", __doc__ or "", {"start": start}, GOALS)
    finally:
        if known.deb is not None:
            remove()
