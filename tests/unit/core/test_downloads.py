"""Download requests and jobs: what is refused at once, the layout a job takes, steering, and small
real downloads from a local DICOM folder through the service."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.core.downloads import DownloadJob, DownloadRequest
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.events import (
    DownloadCancelled,
    DownloadEvent,
    DownloadFailed,
    DownloadFinished,
    DownloadProgressed,
    DownloadStarted,
)
from mediator_desktop.core.jobs import Progress
from mediator_desktop.core.layout import DEFAULT_LAYOUT
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.service import Service
from mediator_desktop.core.source import DataSource, LeafPlan
from tests.helpers.service import P1, P1_SERIES, P2, P2_SERIES, World, recording
from tests.helpers.transfer import downloader, files_under

LAYOUT = "{patient}/{series}"


def finished(job: DownloadJob, timeout: float = 30.0) -> DownloadJob:
    changes = -1
    while not job.finished:
        before = changes
        changes = job.wait(changes, timeout)
        assert changes != before or job.finished, f"job {job.id} did not change in {timeout} s: {job.state}"
    return job


class HeldArchive:
    """The lab's archive, except that it answers what a series is made of (``plan``) only once the
    test releases it: a download held while it asks its archive, for as long as the test wants."""

    def __init__(self, source: DataSource) -> None:
        self._source = source
        self._gate = threading.Event()
        self._cond = threading.Condition()
        self._asking: list[threading.Thread] = []  # the threads that asked, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def plan(self, leaf: Leaf) -> LeafPlan:
        with self._cond:
            self._asking.append(threading.current_thread())
            self._cond.notify_all()
        if not self._gate.wait(60):
            raise RuntimeError("the held archive was never released")
        return self._source.plan(leaf)

    def wait_asked(self, count: int, timeout: float = 30.0) -> None:
        with self._cond:
            asked = self._cond.wait_for(lambda: len(self._asking) >= count, timeout)
            assert asked, f"the archive was asked for {len(self._asking)} series in {timeout} s, not {count}"

    def release(self, timeout: float = 30.0) -> None:
        """Answer every question, then wait until the threads that asked have ended."""
        self._gate.set()
        with self._cond:
            asking = list(self._asking)
        for thread in asking:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} still runs {timeout} s after the archive answered"


@pytest.fixture
def held(lab: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldArchive]:
    """Services made after this fixture download from the lab's archive through ``HeldArchive``."""
    archive = HeldArchive(lab.source)
    with downloader(archive) as engine:  # type: ignore[arg-type]  # a DataSource by delegation
        monkeypatch.setattr(lab, "downloader", engine)
        try:
            yield archive
        finally:
            archive.release()


def assert_nothing_complete(job: DownloadJob, destination: Path, *, pending: int) -> None:
    """The job ended cancelled, and nothing of it was presented, or placed, as complete."""
    assert job.state == "cancelled", job.to_json()
    report = job.report
    assert report is not None and report.cancelled and not report.ok, job.to_json()
    assert (report.fetched, report.failed, report.pending) == ((), (), pending), report.summary()
    summary = report.summary()
    assert summary.startswith("0 fetched") and f"cancelled with {pending} not started" in summary, summary
    assert files_under(destination) == []


def cancelled_within(job: DownloadJob, seconds: float) -> DownloadJob:
    """The job, once it has ended; fails when it still runs ``seconds`` after the cancel."""
    deadline = time.monotonic() + seconds
    changes = -1
    while not job.finished:
        left = deadline - time.monotonic()
        assert left > 0, f"job {job.id} still {job.state} {seconds} s after its cancel: {job.to_json()}"
        changes = job.wait(changes, left)
    return job


@pytest.fixture
def alice(lab: World) -> Service:
    return lab.service("alice", download_layout=LAYOUT)


@pytest.fixture
def set_id(alice: Service) -> str:
    return alice.sets.create("Lung", add=[P1, P2])


# -- the request ---------------------------------------------------------------------------------
def test_request_normalises_its_fields(tmp_path: Path) -> None:
    request = DownloadRequest("s", str(tmp_path), only=["a", "b"])  # type: ignore[arg-type]
    assert request.destination == tmp_path
    assert request.only == frozenset({"a", "b"})
    assert (request.version, request.layout, request.workers, request.prune) == (None, None, 8, False)
    request.check()


def test_request_refuses_a_relative_destination() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        DownloadRequest("s", Path("downloads/lung")).check()


@pytest.mark.parametrize("workers", [0, -1, 65, 1000])
def test_request_refuses_workers_out_of_range(tmp_path: Path, workers: int) -> None:
    with pytest.raises(ValidationError, match="between 1 and 64"):
        DownloadRequest("s", tmp_path, workers=workers).check()


@pytest.mark.parametrize("workers", [1, 64])
def test_request_accepts_workers_at_the_bounds(tmp_path: Path, workers: int) -> None:
    DownloadRequest("s", tmp_path, workers=workers).check()


@pytest.mark.parametrize("layout", ["", "   ", "{patient:>5}", "{1st}", "{patient}//{series}", "{patient"])
def test_request_refuses_a_bad_layout(tmp_path: Path, layout: str) -> None:
    with pytest.raises(ValidationError):
        DownloadRequest("s", tmp_path, layout=layout).check()


# -- jobs ----------------------------------------------------------------------------------------
def test_start_refuses_a_bad_request_before_anything_starts(
    alice: Service, set_id: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError):
        alice.downloads.start(DownloadRequest(set_id, Path("relative")))
    with pytest.raises(ValidationError):
        alice.downloads.start(DownloadRequest(set_id, tmp_path / "x", workers=0))
    with pytest.raises(NotFound):
        alice.downloads.start(DownloadRequest("0" * 32, tmp_path / "x"))
    with pytest.raises(NotFound):
        alice.downloads.start(DownloadRequest(set_id, tmp_path / "x", version=7))
    assert alice.downloads.list() == []
    assert not (tmp_path / "x").exists()


def test_start_without_a_layout_takes_the_setting(alice: Service, set_id: str, tmp_path: Path) -> None:
    assert alice.downloads.default_layout() == LAYOUT
    job = alice.downloads.start(DownloadRequest(set_id, tmp_path / "one"))
    assert (job.layout, job.version, job.set_name) == (LAYOUT, 1, "Lung")
    assert finished(job).state == "done", job.to_json()
    assert files_under(tmp_path / "one") == sorted(
        [f"P1/1.2.1.1/{i:06d}_{i:04d}.dcm" for i in range(2)]
        + [f"P2/1.2.2.1/{i:06d}_{i:04d}.dcm" for i in range(3)]
    )
    # The setting is read at each start: a change applies to the next job.
    alice.settings.change(download_layout="{series}")
    again = alice.downloads.start(DownloadRequest(set_id, tmp_path / "two"))
    assert again.layout == "{series}"
    explicit = alice.downloads.start(DownloadRequest(set_id, tmp_path / "three", layout=DEFAULT_LAYOUT))
    assert explicit.layout == DEFAULT_LAYOUT
    assert finished(again).state == "done" and finished(explicit).state == "done"
    assert {p.split("/")[0] for p in files_under(tmp_path / "two")} == {P1_SERIES[-1], P2_SERIES[-1]}


def test_a_job_reports_and_emits_what_happened(alice: Service, set_id: str, tmp_path: Path) -> None:
    with recording(alice, DownloadEvent) as seen:
        job = alice.downloads.start(DownloadRequest(set_id, tmp_path / "dest"))
        finished(job)
    assert job.state == "done" and job.error is None
    assert job.report is not None and len(job.report.fetched) == 2 and not job.report.failed
    assert alice.downloads.get(job.id) is job
    assert alice.downloads.list() == [job]
    kinds = [type(e) for e in seen]
    assert kinds[0] is DownloadStarted and kinds[-1] is DownloadFinished
    assert all(isinstance(e, DownloadEvent) and (e.job, e.set_id) == (job.id, set_id) for e in seen)
    body = job.to_json()
    assert (body["id"], body["state"], body["set_name"]) == (job.id, "done", "Lung")
    assert body["report"] is not None and body["summary"]


def test_get_of_an_unknown_job_is_not_found(alice: Service) -> None:
    with pytest.raises(NotFound, match="no download job"):
        alice.downloads.get("1-deadbeef")
    with pytest.raises(NotFound):
        alice.downloads.control("1-deadbeef", "cancel")


def test_control_refuses_an_unknown_action(alice: Service, set_id: str, tmp_path: Path) -> None:
    job = alice.downloads.start(DownloadRequest(set_id, tmp_path / "dest"))
    with pytest.raises(ValidationError, match="paused, resumed or cancelled"):
        alice.downloads.control(job.id, "explode")
    assert not job.control.cancelled and not job.control.paused
    finished(job)


def test_control_pauses_resumes_and_cancels(lab: World, held: HeldArchive, tmp_path: Path) -> None:
    alice = lab.service("alice", download_layout=LAYOUT)
    set_id = alice.sets.create("Lung", add=[P1, P2])
    destination = tmp_path / "dest"
    ended = threading.Event()
    alice.events.subscribe(lambda _: ended.set(), DownloadCancelled, DownloadFinished, DownloadFailed)
    with recording(alice, DownloadEvent) as seen:
        job = alice.downloads.start(DownloadRequest(set_id, destination))
        held.wait_asked(2)  # both series wait on the archive: nothing can arrive before the cancel
        assert alice.downloads.control(job.id, "pause") is job
        assert job.control.paused and job.state == "paused"
        alice.downloads.control(job.id, "resume")
        assert not job.control.paused and job.state == "running"
        alice.downloads.control(job.id, "cancel")
        assert job.control.cancelled
        # The cancel ends the job while the archive still holds both series (it need not answer).
        assert cancelled_within(job, 10).state == "cancelled", job.to_json()
        assert ended.wait(10), "the job ended without its last event"
    held.release()  # the archive answers now: the series it was asked for are dropped, not placed
    assert_nothing_complete(job, destination, pending=2)
    kinds = [type(e) for e in seen if not isinstance(e, DownloadProgressed)]
    assert kinds == [DownloadStarted, DownloadCancelled]


def test_a_finished_job_keeps_its_state_when_steered_or_closed(
    alice: Service, set_id: str, tmp_path: Path
) -> None:
    job = finished(alice.downloads.start(DownloadRequest(set_id, tmp_path / "dest")))
    assert job.state == "done", job.to_json()
    for action in ("pause", "resume", "cancel"):
        alice.downloads.control(job.id, action)
        assert (job.state, job.finished) == ("done", True), f"{action} turned a finished job {job.state!r}"
    alice.downloads.close()  # "what finished stays"
    assert (job.state, job.finished) == ("done", True), f"close() turned a finished job {job.state!r}"


def test_a_job_without_a_downloader_fails_visibly(lab: World, tmp_path: Path) -> None:
    bob = lab.service("bob", downloads=False)
    set_id = bob.sets.create("Lung", add=[P1])
    with recording(bob, DownloadFailed) as seen:
        job = finished(bob.downloads.start(DownloadRequest(set_id, tmp_path / "dest")))
    assert (job.state, job.error_type) == ("failed", "ValidationError")
    assert job.error and "without a downloader" in job.error
    assert [e.job for e in seen if isinstance(e, DownloadFailed)] == [job.id]
    with pytest.raises(ValidationError, match="without a downloader"):
        bob.downloads.run(DownloadRequest(set_id, tmp_path / "dest"))


# -- run: blocking, in the caller's thread ------------------------------------------------------------
def test_run_downloads_a_version_into_a_folder(alice: Service, set_id: str, tmp_path: Path) -> None:
    alice.sets.update(set_id, remove=[P2])
    seen: list[Progress] = []
    destination = tmp_path / "lung"
    report = alice.downloads.run(DownloadRequest(set_id, destination, version=1), progress=seen.append)
    assert len(report.fetched) == 2 and not report.failed and not report.cancelled
    assert seen and seen[-1].items_done == seen[-1].items_total == 2
    assert len(files_under(destination)) == 5
    # Bringing the folder up to the head fetches nothing; pruning removes the dropped series.
    again = alice.downloads.run(DownloadRequest(set_id, destination, prune=True))
    assert again.fetched == () and again.unchanged == 1 and len(again.pruned) == 1
    assert [p for p in files_under(destination) if p.startswith("P2/")] == []
    with pytest.raises(ValidationError):
        alice.downloads.run(DownloadRequest(set_id, Path("relative")))


def test_close_cancels_running_jobs(lab: World, held: HeldArchive, tmp_path: Path) -> None:
    carol = lab.service("carol")
    set_id = carol.sets.create("Lung", add=[P1, P2])
    destination = tmp_path / "dest"
    job = carol.downloads.start(DownloadRequest(set_id, destination))
    held.wait_asked(2)
    carol.downloads.close(timeout=10)  # the archive still holds both series
    assert job.control.cancelled
    assert job.state == "cancelled", f"close() returned with the job {job.state}: {job.to_json()}"
    held.release()
    assert_nothing_complete(job, destination, pending=2)
