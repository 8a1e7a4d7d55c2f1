"""Replica sets: ``/v1/sets``, their versions, leaves and diffs, and who may see and change them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep, SetId
from mediator_desktop.api.models import (
    DiffModel,
    Duplicate,
    ForkModel,
    LeavesModel,
    NewSet,
    Rename,
    SetModel,
    SetScope,
    Update,
    UpdateResult,
    VersionModel,
    VisibilityBody,
    leaf_model,
)
from mediator_desktop.core import errors
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import ReplicaSet, Visibility
from mediator_desktop.core.selection import SelectionDiff
from mediator_desktop.core.service import Service

router = APIRouter()

KeyId = Annotated[str, PathParam(min_length=1, max_length=128)]
Number = Annotated[int, PathParam(ge=1)]


def set_model(service: Service, rs: ReplicaSet) -> SetModel:
    """A set as the API answers it, with the totals of its head version when they are known."""
    leaves = size = None
    if rs.head is not None:
        with contextlib.suppress(errors.NotFound):  # the manifest is still on its way here
            leaves, size = service.sets.totals(service.sets.version(rs.id, rs.head).manifest_id)
    update = service.tracking.status(rs.id).drift
    return SetModel(
        id=rs.id,
        name=rs.name,
        description=rs.description,
        owner=rs.owner,
        owner_name=service.users().get(rs.owner, ""),
        editors=sorted(rs.editors),
        visibility=rs.visibility.value,
        forked_from=None
        if rs.forked_from is None
        else ForkModel(set_id=rs.forked_from[0], version=rs.forked_from[1]),
        following=service.key_id in rs.followers,
        head=rs.head,
        published=sorted(rs.published),
        leaves=leaves,
        size=size,
        update=None if update is None else update.summary,
    )


def diff_model(service: Service, selection: SelectionDiff, manifest: ManifestDiff, limit: int) -> DiffModel:
    """A diff as the API answers it, listing up to ``limit`` leaves of each kind."""
    return DiffModel(
        summary=manifest.summary(service.archives.hierarchies()),
        selection_summary=selection.summary(),
        added=len(manifest.added),
        removed=len(manifest.removed),
        changed=len(manifest.changed),
        added_leaves=[_name(leaf) for leaf in manifest.added[:limit]],
        removed_leaves=[_name(leaf) for leaf in manifest.removed[:limit]],
        changed_leaves=[_name(new_leaf) for _, new_leaf in manifest.changed[:limit]],
    )


def _changed(service: Service, set_id: str, change: Callable[[], object]) -> SetModel:
    """Make a change to a set, then answer with the set as it is now."""
    change()
    return set_model(service, service.sets.get(set_id))


def _name(leaf: Leaf) -> str:
    """``idc/nlst/100002/1.2.3/1.2.3.4``: a leaf as a pointer string."""
    return str(Pointer(leaf.source_id, leaf.path))


# -- the sets ------------------------------------------------------------------------------------
@router.get("/v1/sets", tags=["sets"])
def get_sets(service: ServiceDep, scope: SetScope = "all") -> list[SetModel]:
    return [set_model(service, rs) for rs in service.sets.list(scope)]


@router.post("/v1/sets", status_code=201, tags=["sets"])
def post_set(body: NewSet, service: ServiceDep) -> SetModel:
    outcome = service.sets.create_from(
        body.name,
        body.description,
        Visibility(body.visibility),
        add=[p.pointer() for p in body.add],
        message=body.message or "created",
        strict=body.strict,
    )
    model = set_model(service, service.sets.get(outcome.set_id))
    model.warnings = list(outcome.warnings)
    return model


@router.get("/v1/sets/{set_id}", tags=["sets"])
def get_set(set_id: SetId, service: ServiceDep) -> SetModel:
    return set_model(service, service.sets.get(set_id))


@router.delete("/v1/sets/{set_id}", status_code=204, tags=["sets"])
def delete_set(set_id: SetId, service: ServiceDep) -> None:
    service.sets.delete(set_id)


@router.put("/v1/sets/{set_id}/name", tags=["sets"])
def put_name(set_id: SetId, body: Rename, service: ServiceDep) -> SetModel:
    """Rename a set (and change its description, if one is given): its owner and editors may."""
    return _changed(service, set_id, lambda: service.sets.rename(set_id, body.name, body.description))


@router.post("/v1/sets/{set_id}/duplicate", status_code=201, tags=["sets"])
def post_duplicate(set_id: SetId, body: Duplicate, service: ServiceDep) -> SetModel:
    return set_model(service, service.sets.get(service.sets.duplicate(set_id, body.version, body.name)))


# -- versions ------------------------------------------------------------------------------------
@router.post("/v1/sets/{set_id}/versions", tags=["sets"])
def post_version(set_id: SetId, body: Update, service: ServiceDep) -> UpdateResult:
    outcome = service.sets.change(
        set_id,
        add=[p.pointer() for p in body.add],
        remove=[p.pointer() for p in body.remove],
        message=body.message,
        expected_head="head" if body.expected_head is None else body.expected_head,
        strict=body.strict,
    )
    return UpdateResult(
        version=outcome.version,
        set=set_model(service, service.sets.get(set_id)),
        warnings=list(outcome.warnings),
    )


@router.get("/v1/sets/{set_id}/versions", tags=["sets"])
def get_versions(set_id: SetId, service: ServiceDep) -> list[VersionModel]:
    return [VersionModel.of(v) for v in service.sets.history(set_id)]


@router.get("/v1/sets/{set_id}/versions/{number}", tags=["sets"])
def get_version(set_id: SetId, number: Number, service: ServiceDep) -> VersionModel:
    return VersionModel.of(service.sets.version(set_id, number))


@router.get("/v1/sets/{set_id}/versions/{number}/leaves", tags=["sets"])
def get_leaves(
    set_id: SetId,
    number: Number,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> LeavesModel:
    manifest = service.sets.manifest(service.sets.version(set_id, number).manifest_id)
    page = [leaf_model(line) for line in manifest.lines()[offset : offset + limit]]
    return LeavesModel(manifest_id=manifest.id, total=len(manifest), offset=offset, leaves=page)


@router.get("/v1/sets/{set_id}/diff", tags=["sets"])
def get_diff(
    set_id: SetId,
    service: ServiceDep,
    old: Annotated[int, Query(ge=1)],
    new: Annotated[int | None, Query(ge=1, description="default: the head")] = None,
    other: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{32}$", description="compare with this set")
    ] = None,
    limit: Annotated[int, Query(ge=0, le=100_000, description="keys listed per kind")] = 1000,
) -> DiffModel:
    selection, manifest = service.sets.diff(set_id, old, new, other)
    return diff_model(service, selection, manifest, limit)


# -- sharing -------------------------------------------------------------------------------------
@router.put("/v1/sets/{set_id}/visibility", tags=["sharing"])
def put_visibility(set_id: SetId, body: VisibilityBody, service: ServiceDep) -> SetModel:
    visibility = Visibility(body.visibility)
    return _changed(service, set_id, lambda: service.sets.set_visibility(set_id, visibility))


@router.put("/v1/sets/{set_id}/editors/{key_id}", tags=["sharing"])
def put_editor(set_id: SetId, key_id: KeyId, service: ServiceDep) -> SetModel:
    return _changed(service, set_id, lambda: service.sets.grant_editor(set_id, key_id))


@router.delete("/v1/sets/{set_id}/editors/{key_id}", tags=["sharing"])
def delete_editor(set_id: SetId, key_id: KeyId, service: ServiceDep) -> SetModel:
    return _changed(service, set_id, lambda: service.sets.revoke_editor(set_id, key_id))


@router.put("/v1/sets/{set_id}/follow", tags=["sharing"])
def put_follow(set_id: SetId, service: ServiceDep) -> SetModel:
    return _changed(service, set_id, lambda: service.sets.follow(set_id))


@router.delete("/v1/sets/{set_id}/follow", tags=["sharing"])
def delete_follow(set_id: SetId, service: ServiceDep) -> SetModel:
    return _changed(service, set_id, lambda: service.sets.unfollow(set_id))
