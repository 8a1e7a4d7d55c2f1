"""The download record's integrity parts: files' sizes, times and MD5s kept when placed, an older
record read as unknown, the damage check without reads, what reports say about checks, leaves
finished or claimed together recorded in one commit, and folders synced once for everyone waiting."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.transfer import (
    CHECKED_MD5,
    CHECKED_SIZE,
    Checked,
    Placed,
    Report,
    TransferState,
    _FolderSyncs,
    _intact,
)

OLD_SCHEMA = """
create table leaves (
    key text primary key, fingerprint text not null, folder text not null,
    status text not null, bytes integer not null, updated real not null);
create table files (path text primary key, key text not null);
create index files_by_key on files (key);
create table runs (id integer primary key, finished real not null, report text not null);
insert into leaves values ('src/a', 'fp', 'a', 'done', 3, 0);
insert into files values ('a/x.dcm', 'src/a');
"""


def test_checked_file_lists_survive_a_worker_process(tmp_path: Path) -> None:
    files = Checked([tmp_path / "1.dcm", tmp_path / "2.dcm"], {"1.dcm": "ab" * 16}, False)
    back = pickle.loads(pickle.dumps(files))
    assert isinstance(back, Checked) and list(back) == list(files)
    assert back.md5s == {"1.dcm": "ab" * 16} and back.complete is False
    assert Checked([], complete=True).complete


def test_an_older_record_reads_as_unknown_and_gets_sizes_times_and_checks(tmp_path: Path) -> None:
    (tmp_path / ".mediator").mkdir()
    with sqlite3.connect(tmp_path / ".mediator" / "state.sqlite") as db:
        db.executescript(OLD_SCHEMA)
    state = TransferState(tmp_path)
    try:
        assert state.leaves()["src/a"].checked is None
        assert state.placed() == {"src/a": [Placed("a/x.dcm", None, None, None)]}
        state.restat([("a/x.dcm", 3, 42)])
        assert state.placed()["src/a"] == [Placed("a/x.dcm", 3, 42, None)]
        state.claim("src/a", "fp2", "a", ["a/y.dcm"], 5)  # a new version: the old file's facts go
        assert state.placed()["src/a"] == [Placed("a/y.dcm", None, None, None)]
        state.done("src/a", [Placed("a/y.dcm", 5, 7, "cd" * 16)], CHECKED_SIZE)
        assert state.placed()["src/a"] == [Placed("a/y.dcm", 5, 7, "cd" * 16)]
        assert state.leaves()["src/a"].checked == CHECKED_SIZE and state.leaves()["src/a"].status == "done"
        assert state._db.execute("pragma synchronous").fetchone() == (2,)  # FULL
        state.forget("src/a")
        assert state.placed() == {} and state.leaves() == {}
    finally:
        state.close()


def test_the_damage_check_compares_size_and_time_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "a" / "x.dcm"
    path.parent.mkdir()
    path.write_bytes(b"abc")
    st = path.stat()
    root = str(tmp_path)
    same = Placed("a/x.dcm", 3, st.st_mtime_ns, None)
    restat: list[tuple[str, int, int]] = []
    assert _intact(root, [same], restat) and restat == []
    assert not _intact(root, [Placed("a/x.dcm", 4, st.st_mtime_ns, None)], restat)  # size
    assert not _intact(root, [Placed("a/x.dcm", 3, st.st_mtime_ns + 1, None)], restat)  # time
    assert not _intact(root, [same, Placed("a/gone.dcm", 1, 1, None)], restat)  # deleted
    assert _intact(root, [Placed("a/x.dcm", None, None, None)], restat)  # unknown: exists, stated
    assert restat == [("a/x.dcm", 3, st.st_mtime_ns)]
    os.chmod(path, 0)  # unreadable, yet a stat answers: no read happens
    try:
        assert _intact(root, [same], [])
    finally:
        os.chmod(path, 0o644)


def test_reports_say_what_was_fetched_again_and_what_was_checked_by_size_only(tmp_path: Path) -> None:
    report = Report(
        tmp_path,
        "m",
        fetched=("s/a", "s/b", "s/c"),
        unchanged=7,
        refetched=("s/a",),
        size_only=("s/b", "s/c"),
        verified=12,
        unverifiable=2,
    )
    text = report.summary()
    assert "1 leaf re-fetched: files changed or deleted since download" in text
    assert "2 leaves verified by count and size only" in text
    assert "12 files re-hashed and verified" in text and "2 files checked by size only" in text
    data = report.to_json()
    assert data["refetched"] == ["s/a"] and data["size_only"] == ["s/b", "s/c"]
    assert (data["verified"], data["unverifiable"]) == (12, 2)
    plain = Report(tmp_path, "m", unchanged=3).summary()
    assert "re-fetched" not in plain and "size only" not in plain and "verified" not in plain
    assert CHECKED_MD5 != CHECKED_SIZE


def test_leaves_finished_while_a_commit_is_under_way_are_recorded_done_in_one_commit(tmp_path: Path) -> None:
    """Group commit: five leaves finishing while the record is busy are committed together (one
    sync of the record), and each ``done`` returns only once its own leaf is committed."""
    state = TransferState(tmp_path)
    statements: list[str] = []
    try:
        for i in range(5):
            state.claim(f"src/{i}", "fp", str(i), [f"{i}/x.dcm"], 3)
        state._db.set_trace_callback(statements.append)
        returned: list[str] = []

        def done(i: int) -> Callable[[], object]:
            def run() -> None:
                state.done(f"src/{i}", [Placed(f"{i}/x.dcm", 3, 9, None)], CHECKED_SIZE)
                returned.append(f"src/{i}")

            return run

        calls = [done(i) for i in range(5)]
        # A commit under way: nobody returns before it ends.
        _while_held(state._lock, lambda: len(state._pending), calls, meanwhile=lambda: returned == [])
        assert sorted(returned) == [f"src/{i}" for i in range(5)]
        assert [s for s in statements if s.lower() == "commit"] == ["commit"]
        assert {key: row.status for key, row in state.leaves().items()} == {
            f"src/{i}": "done" for i in range(5)
        }
        assert state.placed()["src/3"] == [Placed("3/x.dcm", 3, 9, None)]
    finally:
        state.close()


def _while_held(
    lock: threading.Lock,
    pending: Callable[[], int],
    calls: list[Callable[[], object]],
    meanwhile: Callable[[], object] = lambda: True,
) -> None:
    """Start ``calls`` on threads while ``lock`` (a commit or a sync under way) is held, wait until
    all of them queued (``pending``), check ``meanwhile`` (still holding it), release, join."""
    threads = [threading.Thread(target=call) for call in calls]
    with lock:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while pending() < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)  # nothing to wait on: the queue is the code's own, read as it grows
        assert pending() == len(calls)
        assert meanwhile()
    for t in threads:
        t.join(10)
        assert not t.is_alive()


def test_claims_made_together_commit_once_and_a_refused_one_takes_no_other_with_it(tmp_path: Path) -> None:
    """One-file leaves (S3, GDC) claim once per file: claims queued during a commit go in the
    next one together; a claim refused (its file is another leaf's, or on the disk and not ours)
    is undone alone and raises in its own thread only."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "foreign.dcm").write_text("someone else's")
    state = TransferState(tmp_path)
    statements: list[str] = []
    outcome: dict[str, object] = {}

    def claim(key: str, path: str) -> Callable[[], object]:
        def run() -> None:
            try:
                outcome[key] = state.claim(key, "fp", path.split("/")[0], [path], 3)
            except ValidationError as exc:
                outcome[key] = str(exc)

        return run

    try:
        state.claim("src/taken", "fp", "t", ["t/x.dcm"], 3)
        state._db.set_trace_callback(statements.append)
        calls = [claim(f"src/{i}", f"n/{i}.dcm") for i in range(4)]
        calls += [claim("src/clash", "t/x.dcm"), claim("src/foreign", "c/foreign.dcm")]
        _while_held(state._lock, lambda: len(state._pending), calls)
        assert [s for s in statements if s.lower() == "commit"] == ["commit"]
        assert [outcome[f"src/{i}"] for i in range(4)] == [[], [], [], []]  # nothing to forget
        assert "already holds another leaf" in str(outcome["src/clash"])
        assert "not written by MEDIator" in str(outcome["src/foreign"])
        leaves = state.leaves()
        assert sorted(leaves) == ["src/0", "src/1", "src/2", "src/3", "src/taken"]
        assert state.files_of("src/taken") == ["t/x.dcm"] and state.files_of("src/foreign") == []
        assert (tmp_path / "c" / "foreign.dcm").read_text() == "someone else's"
    finally:
        state.close()


def test_a_folder_asked_for_during_its_sync_is_synced_once_after_it_and_others_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves placed into one folder while another thread syncs it: the next sync covers them all,
    one ``fsync``; another folder syncs meanwhile; a folder that cannot be synced fails its caller."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    synced: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    syncs = _FolderSyncs()
    folder_a = syncs.of(a)

    def b_meanwhile() -> bool:  # another folder does not wait for a's
        syncs.sync([b])
        return len(synced) == 1

    calls: list[Callable[[], object]] = [lambda: syncs.sync([a]) for _ in range(5)]
    _while_held(folder_a.syncing, lambda: folder_a.asked, calls, meanwhile=b_meanwhile)
    assert len(synced) == 2  # a once, for the five
    syncs.sync([a])  # nobody waiting: a sync of its own
    assert len(synced) == 3
    with pytest.raises(FileNotFoundError):
        syncs.sync([b, tmp_path / "gone"])
