"""The history-based safety check (``tests.helpers.history``), bounded to about a minute.

Four clients against three node processes for 30 s while a nemesis SIGKILLs the leader, SIGSTOPs a
node for 3 s and restarts a node, one fault every 4 s; then every node is checked. ``bench/safety.py``
runs the same check longer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.history import Op, check, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_no_acknowledged_write_is_lost_under_kills_pauses_and_restarts(tmp_path: Path) -> None:
    report = run(tmp_path / "cluster", seconds=30.0)
    figures = report.figures
    print("history:", figures)
    assert report.ops and report.figures["seconds"] < 60
    for when, what in report.nemesis:
        print(f"  {when:6.1f} s  {what}")
    assert not report.violations, "\n".join(report.violations[:20])
    # The check saw every kind of fault and every kind of outcome it judges.
    assert figures["faults"] >= 5, report.nemesis
    assert figures["ok"] >= 50, figures
    assert figures["refused"] >= 1, figures


def test_the_checker_finds_each_kind_of_violation() -> None:
    """The checker on a made-up history, so a green run means something."""
    s = "a" * 32
    ops = [
        Op(0, s, "c0-0", None, 0.0, 1.0, "ok", 1),
        Op(1, s, "c1-0", None, 0.0, 1.0, "ok", 1),  # the same (set, version) acknowledged twice
        Op(0, s, "c0-1", 1, 1.0, 2.0, "ok", 2),  # lost on node 1
        Op(1, s, "c1-1", 1, 1.0, 2.0, "refused", None, "conflict"),  # yet applied as version 3
    ]
    good = {"versions": {s: [(1, "k", "c0-0", "m"), (2, "k", "c0-1", "m"), (3, "k", "c1-1", "m")]}}
    bad = {"versions": {s: [(1, "k", "c0-0", "m"), (3, "k", "c1-1", "m")]}}
    found = "\n".join(check(ops, [good, bad], [s]))
    for expected in ("two acknowledged", "lost", "refused c1-1", "not contiguous", "differs"):
        assert expected in found, found
    assert check(ops[2:3], [good, good], [s]) == []
