"""Safety benchmark: the history-based check of the store (``tests.helpers.history``), run longer.

Clients commit versions to shared sets on three node processes while a nemesis SIGKILLs the
leader, SIGSTOPs a node and restarts nodes; then every node is checked (no acknowledged write lost,
no version made by a refused operation, versions contiguous and identical on every node, no two
acknowledged commits of one version).

Figures (last line, one JSON object): ``seconds``, ``ops`` and the operations per outcome ``ok``,
``refused``, ``unknown`` (with ``unknown_applied``: unknown ones that were in fact applied),
``faults`` (nemesis actions), ``violations`` (safety violations found) and ``longest_gap_s``, the
longest time without a successful write. The last line also carries ``goals_missed`` (the goals
missed; a part that fails misses its goals and is named under ``errors``). Goals: ``violations`` = 0
in every round; ``longest_gap_s`` <= 3 s (issue 21: no window over 3 s while a majority is up).

Usage: ``python bench/safety.py [--seconds 300] [--rounds 1] [--clients 4] [--interval 4] [--faults
rotation|issue21]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, Part
from bench._goals import main as run_bench
from tests.helpers.history import DEFAULT_FAULTS, ISSUE_21_FAULTS, run

SETTINGS: dict[str, Any] = {}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=300.0, help="length of each round (default 300)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between faults (default 4)")
    parser.add_argument("--seed", type=int, default=21, help="the nemesis' choice of nodes")
    parser.add_argument(
        "--faults",
        choices=("rotation", "issue21"),
        default="rotation",
        help="rotation: kill the leader, pause a node, restart a node in turn; issue21: the leader "
        "SIGKILLed every 8 s and once SIGSTOPped for 5 s (sets --interval 8)",
    )


def rounds(args: argparse.Namespace, part: str) -> int:
    issue21 = args.faults == "issue21"
    SETTINGS.update(
        seconds=args.seconds,
        clients=args.clients,
        interval=8.0 if issue21 else args.interval,
        seed=args.seed,
        faults=ISSUE_21_FAULTS if issue21 else DEFAULT_FAULTS,
        pause_s=5.0 if issue21 else 3.0,
    )
    return int(args.rounds)


def bench_history(work: Path, n: int, out: dict[str, Any]) -> None:
    totals: dict[str, float] = {}
    gaps: list[float] = []
    for i in range(max(1, n)):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            report = run(
                Path(tmp) / "cluster",
                SETTINGS["seconds"],
                clients=SETTINGS["clients"],
                interval=SETTINGS["interval"],
                seed=SETTINGS["seed"] + i,
                faults=SETTINGS["faults"],
                pause_s=SETTINGS["pause_s"],
            )
        figures = report.figures
        print(f"round {i + 1}: {figures}", file=sys.stderr, flush=True)
        for violation in report.violations[:20]:
            print(f"  violation: {violation}", file=sys.stderr, flush=True)
        for key in ("seconds", "ops", "ok", "refused", "unknown", "unknown_applied", "faults", "violations"):
            totals[key] = totals.get(key, 0) + figures[key]
        gaps.append(figures["longest_gap_s"])
    out.update({k: round(v, 1) if isinstance(v, float) else v for k, v in totals.items()})
    out["rounds"] = max(1, n)
    out["longest_gap_s"] = max(gaps)
    out["longest_gap_s_per_round"] = gaps


GOALS: Goals = {
    "violations": ("history", lambda f: f["violations"] == 0),
    "longest_gap_s": ("history", lambda f: f["longest_gap_s"] <= 3.0),
}
PARTS: dict[str, Part] = {"history": bench_history}


def main() -> None:
    run_bench("safety", __doc__, PARTS, GOALS, configure=configure, rounds=rounds)


if __name__ == "__main__":
    main()
