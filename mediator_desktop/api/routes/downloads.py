"""Downloads as jobs of the node: ``/v1/downloads``, a long poll per job (for its next change, or
its end), pause, resume, cancel."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import JobModel, NewDownload
from mediator_desktop.core.downloads import DownloadJob, DownloadRequest
from mediator_desktop.core.manifest import US, decode_key, encode_key
from mediator_desktop.core.pointer import Pointer

router = APIRouter(tags=["downloads"])

#: The longest a client may hold a request open waiting for a download to change.
MAX_WAIT = 30.0

JobId = Annotated[str, PathParam(min_length=1, max_length=100)]


def leaf_name(key: str) -> str:
    """A leaf key as the API shows it: a pointer string (``tcia/LIDC/patient/study/series``)."""
    source_id, path = decode_key(key)
    return str(Pointer(source_id, path))


def leaf_key(name: str) -> str:
    """A leaf named as ``leaf_name`` does (or by its raw key, as older clients send) as its key."""
    if US in name:
        return name
    pointer = Pointer.parse(name)
    return encode_key(pointer.source_id, pointer.path)


def job_model(job: DownloadJob) -> JobModel:
    data = job.to_json()
    report = data.get("report")
    if report is not None:
        report["fetched"] = [leaf_name(k) for k in report["fetched"]]
        report["removed"] = [leaf_name(k) for k in report["removed"]]
        for name in ("refetched", "size_only"):
            report[name] = [leaf_name(k) for k in report.get(name, [])]
        for failure in report["failed"]:
            failure["key"] = leaf_name(failure["key"])
    return JobModel.model_validate(data)


def request_of(body: NewDownload) -> DownloadRequest:
    """The one value every frontend fills in; no layout means the node's ``download_layout``."""
    values = body.model_dump()
    if values["only"] is not None:
        values["only"] = [leaf_key(name) for name in values["only"]]
    return DownloadRequest(**values)  # it makes the destination a Path and ``only`` a set


@router.post("/v1/downloads", status_code=202)
def post_download(body: NewDownload, service: ServiceDep) -> JobModel:
    return job_model(service.downloads.start(request_of(body)))


@router.get("/v1/downloads")
def get_downloads(service: ServiceDep) -> list[JobModel]:
    return [job_model(j) for j in service.downloads.list()]


@router.get("/v1/downloads/{job_id}")
def get_download(
    job_id: JobId,
    service: ServiceDep,
    after: Annotated[
        int, Query(ge=-1, description="answer once the job changed after this change number")
    ] = -1,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="seconds to wait for a change")] = 0.0,
    until: Annotated[
        Literal["change", "end"],
        Query(description="what ends the wait: any change after ``after`` (progress), or the job's end"),
    ] = "change",
) -> JobModel:
    job = service.downloads.get(job_id)
    if wait > 0:
        deadline = time.monotonic() + wait
        changes = job.wait(after, wait)
        while until == "end" and not job.finished and (left := deadline - time.monotonic()) > 0:
            changes = job.wait(changes, left)  # progress wakes this thread, not the client
    return job_model(job)


@router.post("/v1/downloads/{job_id}/{action}")
def post_download_action(
    job_id: JobId, action: Literal["pause", "resume", "cancel"], service: ServiceDep
) -> JobModel:
    return job_model(service.downloads.control(job_id, action))
