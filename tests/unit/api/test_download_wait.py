"""The long poll of a download job (``GET /v1/downloads/{id}?after=N&wait=S``): by default it answers
at the job's next change; ``until=end`` answers only once the job ended (its progress wakes the
node's thread, not the client), and either answers when ``wait`` runs out."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mediator_desktop.api.models import JobModel
from mediator_desktop.api.routes.downloads import get_download
from mediator_desktop.core.downloads import DownloadJob
from mediator_desktop.core.jobs import Progress


def a_job() -> DownloadJob:
    return DownloadJob("1-0a1b2c3d", "0" * 32, "lungs", 1, Path("/data/lungs"))


def service_of(job: DownloadJob) -> Any:
    return SimpleNamespace(downloads=SimpleNamespace(get=lambda job_id: job))


def progress(done: int) -> Progress:
    return Progress(done, 10, done, 10, 0, 0.0, None)


class Poll:
    """One long poll on its own thread, as a client's request is on the node's."""

    def __init__(self, job: DownloadJob, **query: Any) -> None:
        self.answer: JobModel | None = None
        self._thread = threading.Thread(target=self._run, args=(job, query), daemon=True)
        self._thread.start()

    def _run(self, job: DownloadJob, query: dict[str, Any]) -> None:
        self.answer = get_download(job.id, service_of(job), **query)

    def answered_within(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()


def test_a_poll_answers_at_the_next_change() -> None:
    job = a_job()
    poll = Poll(job, after=job.changes, wait=20.0)
    assert not poll.answered_within(0.1)
    job._update(progress=progress(1))
    assert poll.answered_within(10)
    assert poll.answer is not None and poll.answer.state == "running" and poll.answer.changes == 1


def test_until_end_answers_once_the_job_ended_not_at_each_change() -> None:
    job = a_job()
    poll = Poll(job, after=job.changes, wait=20.0, until="end")
    for done in range(1, 6):
        job._update(progress=progress(done))
        assert not poll.answered_within(0.05), f"answered at change {done}, before the end"
    job._update(state="done")
    assert poll.answered_within(10)
    assert poll.answer is not None and poll.answer.state == "done" and poll.answer.changes == 6


def test_until_end_answers_at_once_for_a_job_that_ended_and_when_wait_runs_out() -> None:
    ended = a_job()
    ended._update(state="cancelled")
    assert get_download(ended.id, service_of(ended), after=5, wait=20.0, until="end").state == "cancelled"
    running = a_job()
    started = time.monotonic()
    answer = get_download(running.id, service_of(running), after=-1, wait=0.2, until="end")
    assert answer.state == "running"
    assert 0.15 <= time.monotonic() - started < 10
