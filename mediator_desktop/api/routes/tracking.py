"""Archive updates of sets: check now, see what changed, accept it as a new version or decline it.

A check asks the archives and blocks until they answer; like every route here it is a plain
function, which FastAPI runs in its thread pool, so the server goes on answering meanwhile.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mediator_desktop.api.deps import ServiceDep, SetId
from mediator_desktop.api.models import (
    AcceptBody,
    ChecksBody,
    DiffModel,
    DriftModel,
    LastCheckModel,
    SetUpdateModel,
    TrackModel,
    UpdateCheckModel,
    UpdateResult,
)
from mediator_desktop.api.routes.sets import diff_model, set_model
from mediator_desktop.core.service import Service
from mediator_desktop.core.state import DriftRecord
from mediator_desktop.core.tracking import CheckOutcome

router = APIRouter(tags=["updates"])


def drift_model(service: Service, drift: DriftRecord) -> DriftModel:
    return DriftModel(
        version=drift.version,
        manifest_id=drift.manifest_id,
        summary=drift.summary,
        state=drift.state,
        notes=list(drift.notes),
        added=drift.added,
        revised=drift.revised,
        removed=drift.removed,
        checked=drift.checked,
        by=drift.by,
        by_name=service.users().get(drift.by, ""),
    )


def track_model(service: Service, set_id: str) -> TrackModel:
    """The set's update as you see it; one you declined is shown (marked declined), since you may
    still accept it."""
    status = service.tracking.status(set_id)
    drift, check, line = status.found, status.last_check, status.line
    return TrackModel(
        set_id=set_id,
        drift=None if drift is None else drift_model(service, drift),
        declined=status.declined,
        last_check=None
        if check is None
        else LastCheckModel(
            version=check.version,
            time=check.time,
            by=check.by,
            by_name=service.users().get(check.by, ""),
            error=check.error,
        ),
        line=line,
    )


def check_model(service: Service, outcome: CheckOutcome) -> UpdateCheckModel:
    return UpdateCheckModel(
        set_id=outcome.set_id,
        name=outcome.name,
        version=outcome.version,
        new=outcome.new,
        error=outcome.error,
        drift=None if outcome.drift is None else drift_model(service, outcome.drift),
        line=outcome.line(),
    )


@router.post("/v1/sets/{set_id}/check")
def post_check(set_id: SetId, service: ServiceDep) -> UpdateCheckModel:
    """Check a set for archive updates now, on this node. An archive that fails makes the answer's
    ``error`` (and the set's last check) say why; it is not an error answer."""
    [outcome] = service.tracking.check([set_id])
    return check_model(service, outcome)


@router.post("/v1/checks")
def post_checks(service: ServiceDep, body: ChecksBody | None = None) -> list[UpdateCheckModel]:
    """Check several sets now (default: every set you follow or own), one answer per set."""
    sets = None if body is None else body.sets
    full = body is not None and body.full
    return [check_model(service, outcome) for outcome in service.tracking.check(sets, full=full)]


@router.get("/v1/sets/{set_id}/drift")
def get_drift(set_id: SetId, service: ServiceDep) -> TrackModel:
    """The set's archive update found by the last check, if any, and how that check went."""
    return track_model(service, set_id)


@router.get("/v1/sets/{set_id}/drift/diff")
def get_drift_diff(
    set_id: SetId,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=0, le=100_000, description="keys listed per kind")] = 1000,
) -> DiffModel:
    """The set's head version against what the archives hold now (404: no update)."""
    selection, manifest = service.tracking.diff(set_id)
    return diff_model(service, selection, manifest, limit)


@router.post("/v1/sets/{set_id}/drift/accept")
def post_accept(set_id: SetId, service: ServiceDep, body: AcceptBody | None = None) -> UpdateResult:
    """Commit the update as the set's next version (owner and editors), or with ``fork`` as a new
    set of yours. Then a download into the set's folder fetches only what changed."""
    body = body or AcceptBody()
    outcome = service.tracking.accept(set_id, fork=body.fork, name=body.name)
    return UpdateResult(
        version=outcome.version,
        set=set_model(service, service.sets.get(outcome.set_id)),
        warnings=list(outcome.warnings),
    )


@router.delete("/v1/sets/{set_id}/drift")
def delete_drift(set_id: SetId, service: ServiceDep) -> TrackModel:
    """Decline the update: the set keeps its version and you are not told about it again."""
    service.tracking.dismiss(set_id)
    return track_model(service, set_id)


@router.get("/v1/updates")
def get_updates(service: ServiceDep) -> list[SetUpdateModel]:
    """Sets you follow or own with an archive update you have not declined."""
    return [
        SetUpdateModel(set=set_model(service, rs), drift=drift_model(service, drift))
        for rs, drift in service.tracking.updates()
    ]
