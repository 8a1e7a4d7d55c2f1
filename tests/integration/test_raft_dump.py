"""A node killed around a full dump keeps every acknowledged change: killed after the dump was
written but before the journal was trimmed (pysyncobj then cleared the journal on start-up), or
in the middle of trimming it (pysyncobj rewrote the journal in place)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mediator_desktop.raft.store import RaftStore
from tests.helpers.net import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SECRET = "dump-test-secret"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUTS = (0.15, 0.35)

# A one-node cluster ticked by hand: a change goes in, then a full dump is forked.
BEFORE_THE_DUMP = """
import os, signal, sys, time
from pathlib import Path
import pysyncobj.journal, pysyncobj.syncobj
from mediator_desktop.raft.store import RaftStore
from tests.helpers.actors import Actor

data, address, secret = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
node = RaftStore(address, [], data, secret, election_timeout=(0.15, 0.35), auto_tick=False)
alice = Actor("alice")

def run(command):
    out = []
    node.submit_async(command, lambda result, error: out.append((result, error)))
    while not out:
        node.tick(0.002)
    assert out[0][1] == 0 and out[0][0][0] == "ok", out

while node.status().leader is None:
    node.tick(0.01)
run(alice.register())
run(alice.create("before the dump")[1])
node.syncobj.forceLogCompaction()
node.tick(0.0)  # forks the child that writes the dump
"""

# A second change is acknowledged, and the process kills itself once the dump is in place,
# before the next tick would trim the journal.
KILLED_BEFORE_THE_TRIM = """
dump = data / "raft" / "dump.bin"

def acknowledged(result, error):
    print("ACK", flush=True)
    while not dump.exists():  # the dump child renamed it into place
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)

node.submit_async(alice.create("acknowledged after the fork")[1], acknowledged)
while True:
    node.tick(0.002)
"""

# The second change is in the journal before the dump is reaped; the process dies inside
# pysyncobj's journal while the trim writes back the second of the entries it keeps. The dump is
# reaped only once the change is acknowledged: a fast machine finished the dump (and trimmed)
# while the change was still on its way.
KILLED_IN_THE_TRIM = """
import pysyncobj.serializer
acked = []
check_serializing = pysyncobj.serializer.Serializer.checkSerializing
def check_after_the_ack(self):
    if not acked:
        return pysyncobj.serializer.SERIALIZER_STATE.SERIALIZING, None
    return check_serializing(self)
pysyncobj.serializer.Serializer.checkSerializing = check_after_the_ack
trimming = []
delete_entries_to = pysyncobj.syncobj.SyncObj._SyncObj__deleteEntriesTo
def trim(self, index):
    log = self._SyncObj__raftLog
    trimming.append(len(log) - (index - log[0][1]))  # the entries the trim keeps
    delete_entries_to(self, index)
pysyncobj.syncobj.SyncObj._SyncObj__deleteEntriesTo = trim
add = pysyncobj.journal.FileJournal.add
written = []
def add_then_die(self, *entry):
    add(self, *entry)
    if trimming and acked:  # never before the acknowledgement is out
        written.append(entry)
        if len(written) == 2:
            print("KILLED IN TRIM keeping", trimming[0], "entries", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
pysyncobj.journal.FileJournal.add = add_then_die

run(alice.create("acknowledged after the fork")[1])
acked.append(True)
print("ACK", flush=True)
while True:
    node.tick(0.002)
"""


def killed_child(script: str, data: Path, address: str) -> list[str]:
    """Run ``BEFORE_THE_DUMP + script``; it must end killed. Returns the lines it printed."""
    child = subprocess.run(
        [sys.executable, "-c", BEFORE_THE_DUMP + script, str(data), address, SECRET],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr
    return child.stdout.splitlines()


def assert_both_changes_after_a_restart(data: Path, address: str) -> None:
    with RaftStore(address, [], data, SECRET, election_timeout=TIMEOUTS, auto_tick=False) as node:
        deadline = time.monotonic() + 10
        names: set[str] = set()
        while names != {"before the dump", "acknowledged after the fork"}:
            assert time.monotonic() < deadline, f"after the restart the store holds only {names}"
            node.tick(0.005)
            names = {rs.name for rs in node.state.sets.values()}


def test_an_acknowledged_change_survives_a_kill_right_after_a_dump(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    assert killed_child(KILLED_BEFORE_THE_TRIM, tmp_path, address) == ["ACK"]
    assert_both_changes_after_a_restart(tmp_path, address)


def test_an_acknowledged_change_survives_a_kill_while_the_journal_is_trimmed(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    lines = killed_child(KILLED_IN_THE_TRIM, tmp_path, address)
    killed = [line for line in lines if line.startswith("KILLED IN TRIM")]
    assert lines[:1] == ["ACK"] and len(killed) == 1, (
        f"the child printed {lines}, not ACK then KILLED IN TRIM"
    )
    assert int(killed[0].split()[-2]) >= 3, killed  # the dump's two entries, and what came after
    assert_both_changes_after_a_restart(tmp_path, address)
