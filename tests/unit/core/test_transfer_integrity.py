"""The download record's integrity parts: files' sizes, times and MD5s kept when placed, an older
record read as unknown, the damage check without reads, what reports say about checks, and leaves
finished together recorded done in one commit."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from pathlib import Path

from mediator_desktop.core.transfer import (
    CHECKED_MD5,
    CHECKED_SIZE,
    Checked,
    Placed,
    Report,
    TransferState,
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
        threads = [
            threading.Thread(
                target=lambda k=f"src/{i}", p=f"{i}/x.dcm": (
                    state.done(k, [Placed(p, 3, 9, None)], CHECKED_SIZE),
                    returned.append(k),
                )
            )
            for i in range(5)
        ]
        with state._lock:  # a commit under way
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while len(state._finished) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(state._finished) == 5 and returned == []  # nobody returns before the commit
        for t in threads:
            t.join(10)
        assert sorted(returned) == [f"src/{i}" for i in range(5)]
        assert [s for s in statements if s.lower() == "commit"] == ["commit"]
        assert {key: row.status for key, row in state.leaves().items()} == {
            f"src/{i}": "done" for i in range(5)
        }
        assert state.placed()["src/3"] == [Placed("3/x.dcm", 3, 9, None)]
    finally:
        state.close()
