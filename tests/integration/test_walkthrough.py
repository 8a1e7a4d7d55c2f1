"""docs/walkthrough.md, run literally: every ``machine$ command`` of its console blocks, on two
"machines" (each its own HOME, so the platform's default folders, no MEDIATOR_HOME), with the
output it shows checked line by line (``...`` stands for anything).

Only what cannot be the same on a test machine is replaced: the LAN addresses and the emulator's
port become free loopback ports, and the join code is the one ``join-code`` printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.dicom import make_series
from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "walkthrough.md"
PROMPT = re.compile(r"^(lab-ws-\d)\$ (.*)$")
CODE = re.compile(r"\b[0-9A-Z]{5}(?:-[0-9A-Z]{1,5}){2,}\b")


@dataclass
class Step:
    machine: str
    command: str
    expected: list[str] = field(default_factory=list)


def steps() -> list[Step]:
    found: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            prompt = PROMPT.match(line)
            if prompt:
                found.append(Step(prompt.group(1), prompt.group(2)))
            elif line.strip():
                found[-1].expected.append(line)
    return found


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [r"\s+".join(map(re.escape, part.split())) for part in expected.split("...")]
    return re.compile(".*".join(parts))


def check(step: Step, output: str) -> None:
    """Each expected line matches a line of ``output``, in order."""
    lines = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for expected in step.expected:
        pattern = _pattern(expected)
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        assert at < len(lines), (
            f"{step.machine}$ {step.command}\nexpected a line like: {expected}\ngot:\n{output}"
        )
        at += 1


@pytest.mark.timeout(300)
def test_the_walkthrough_runs_as_printed(tmp_path: Path) -> None:
    ws1_port, ws2_port, emulator_port = free_ports(3)
    replace = {
        "192.168.1.11:7400": f"127.0.0.1:{ws1_port}",
        "192.168.1.12:7400": f"127.0.0.1:{ws2_port}",
        ":8080": f":{emulator_port}",
        "--port 8080": f"--port {emulator_port}",
    }
    homes = {name: tmp_path / name for name in ("lab-ws-1", "lab-ws-2")}
    export = homes["lab-ws-1"] / "scanner-export"  # what the scanner wrote: 12 files, 3 series
    make_series(export, "PAT-001", "1.2.840.1", "1.2.840.1.1", 5, modality="CT", pixels=8)
    make_series(export, "PAT-001", "1.2.840.1", "1.2.840.1.2", 3, modality="SEG", pixels=8)
    make_series(export, "PAT-002", "1.2.840.2", "1.2.840.2.1", 4, modality="MR", pixels=8)
    base = {k: v for k, v in os.environ.items() if k != "MEDIATOR_HOME" and not k.startswith("XDG_")}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    base["PYTHONPATH"] = str(REPO)
    base["MEDIATOR_DISCOVERY"] = "off"
    background: list[subprocess.Popen[str]] = []
    code = ""
    try:
        for step in steps():
            command, expected = step.command, step.expected
            for old, new in replace.items():
                command = command.replace(old, new)
                expected = [line.replace(old, new) for line in expected]
            if command.startswith("mediator join "):
                command = CODE.sub(code, command)
            step = Step(step.machine, command, expected)
            env = {**base, "HOME": str(homes[step.machine])}
            if command.endswith("&"):  # a server: started, then waited for until it says it is up
                log = tmp_path / f"background-{len(background)}.log"
                with log.open("w") as out:
                    background.append(
                        subprocess.Popen(
                            ["bash", "-c", f"exec {command[:-1]}"],
                            cwd=REPO,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                    )
                ready = _pattern(expected[0])
                deadline = time.monotonic() + 90
                while not any(ready.search(" ".join(x.split())) for x in log.read_text().splitlines()):
                    assert background[-1].poll() is None, f"{command} ended:\n{log.read_text()}"
                    assert time.monotonic() < deadline, f"{command} did not start:\n{log.read_text()}"
                    time.sleep(0.2)
                check(step, log.read_text())
                continue
            # stdout and stderr as a terminal shows them: interleaved, in the order written
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=REPO,
                env={**env, "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
            )
            output = done.stdout
            failing = any(line.startswith("mediator:") for line in expected)
            assert (done.returncode != 0) == failing, (
                f"{step.machine}$ {command} -> {done.returncode}\n{output}"
            )
            check(step, output)
            if "join-code" in command:
                code = done.stdout.split()[0]
    finally:
        for proc in reversed(background):
            stop_process(proc, 20)
    assert (homes["lab-ws-1"] / "data" / "lung-ct" / "LIDC-IDRI").is_dir()
    assert (homes["lab-ws-1"] / ".config" / "mediator-desktop" / "settings.json").is_file()
