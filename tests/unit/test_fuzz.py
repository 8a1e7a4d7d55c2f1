"""A bounded run of every fuzz target (``fuzz/``): seconds each, failing on a crash.

Each target runs in its own process (libFuzzer exits the process when it is done), starting from
the committed seeds in ``fuzz/corpus/<target>/`` (which it never writes: new inputs go to a
temporary folder). ``make fuzz`` runs the same targets for minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
#: Seconds of fuzzing per target in ``make test``.
SECONDS = int(os.environ.get("MEDIATOR_FUZZ_SECONDS", "4"))
#: The mutation seed of ``make test``'s runs: fixed, so a run that passed passes again on this
#: commit (a crash found at random would block an unrelated change). Finding new crashes is the job
#: of ``make fuzz`` (minutes per target, a new seed each run); set it to 0 for a random seed here.
SEED = int(os.environ.get("MEDIATOR_FUZZ_SEED", "1"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_survives_a_bounded_run(name: str, tmp_path: Path) -> None:
    target = TARGETS[name]
    seeds = ROOT / "fuzz" / "corpus" / name
    assert any(seeds.iterdir()), f"no seeds for {name} in {seeds}"
    found = tmp_path / "corpus"
    found.mkdir()
    command = [
        sys.executable,
        "-m",
        "fuzz.run",
        name,
        f"-max_total_time={SECONDS}",
        "-print_final_stats=1",
        "-timeout=20",  # one input taking longer is a hang: a crash too
        "-rss_limit_mb=4096",
        f"-seed={SEED}",
        f"-artifact_prefix={tmp_path}/",
        str(found),
        str(seeds),
    ]
    # Temporary files of the target (and a node's folders) land under tmp_path.
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SECONDS + target.setup_seconds + 60,
        check=False,
    )
    executions = re.search(r"stat::number_of_executed_units:\s*(\d+)", run.stderr)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    print(f"fuzz {name}: {executions.group(1) if executions else '?'} executions in {SECONDS} s")
    assert run.returncode == 0 and not crashes, (
        f"fuzz target {name} crashed (exit {run.returncode}; {crashes}); the input is in {tmp_path}. "
        f"Make it a regression test of the parser.\n{run.stderr[-6000:]}"
    )
    assert executions is not None and int(executions.group(1)) > len(list(seeds.iterdir())), (
        f"fuzz target {name} ran no more than its seeds:\n{run.stderr[-3000:]}"
    )
