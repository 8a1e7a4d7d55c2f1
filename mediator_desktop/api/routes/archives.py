"""The archives (sources): ``/v1/sources``, browse, search and filter values."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import (
    CheckModel,
    ItemModel,
    Key,
    NewSource,
    PageModel,
    ScanReportModel,
    SecretBody,
    SourceKindModel,
    SourceModel,
    SourceOptionModel,
)
from mediator_desktop.core import errors
from mediator_desktop.core.pointer import Filters, make_filters
from mediator_desktop.core.service import Service

router = APIRouter(tags=["sources"])

SourceId = Annotated[str, PathParam(min_length=1, max_length=200)]


def filters_of(filter_args: list[str]) -> Filters:
    """``["Modality=CT,MR", ...]`` as filters; raises ``ValidationError`` for a malformed one."""
    out: dict[str, list[str]] = {}
    for item in filter_args:
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise errors.ValidationError(f"filter {item!r} must be NAME=VALUE, e.g. Modality=CT")
        out.setdefault(name, []).extend(v for v in value.split(",") if v)
    return make_filters(out)


def source_models(service: Service) -> list[SourceModel]:
    configs = {c["id"]: c for c in service.archives.configs()}
    return [
        SourceModel(
            id=s.source_id,
            title=s.title,
            levels=list(s.hierarchy.levels),
            filterable=list(s.filterable),
            kind=configs.get(s.source_id, {}).get("kind", ""),
            options=configs.get(s.source_id, {}).get("options", {}),
            indexes=service.archives.indexes(s.source_id),
        )
        for s in service.archives.all()
    ]


@router.get("/v1/sources")
def get_sources(service: ServiceDep) -> list[SourceModel]:
    return source_models(service)


@router.get("/v1/sources/kinds")
def get_kinds(service: ServiceDep) -> list[SourceKindModel]:
    """The kinds of archive that can be added, with the options each takes."""
    return [
        SourceKindModel(
            name=k.name,
            title=k.title,
            description=k.description,
            options=[
                SourceOptionModel(
                    name=o.name,
                    title=o.title,
                    help=o.help,
                    required=o.required,
                    kind=o.kind,
                    default=o.default,
                )
                for o in k.options
            ],
            secret=k.secret,
            secret_help=k.secret_help,
        )
        for k in service.archives.kinds()
    ]


@router.post("/v1/sources", status_code=201)
def post_source(body: NewSource, service: ServiceDep) -> SourceModel:
    """Add an archive, live (saved in the settings; its secret goes to the OS keyring)."""
    source_id = service.archives.add(body.kind, body.options, source_id=body.id, secret=body.secret)
    return next(m for m in source_models(service) if m.id == source_id)


@router.post("/v1/sources/test")
def post_test(body: NewSource, service: ServiceDep) -> CheckModel:
    """Check an archive answers before adding it."""
    message = service.archives.test(body.id, kind=body.kind, options=body.options, secret=body.secret)
    return CheckModel(source=body.id or body.kind, message=message)


@router.delete("/v1/sources/{source_id}", status_code=204)
def delete_source(source_id: SourceId, service: ServiceDep) -> None:
    service.archives.remove(source_id)


@router.post("/v1/sources/{source_id}/test")
def post_test_configured(source_id: SourceId, service: ServiceDep) -> CheckModel:
    """Check a configured archive answers."""
    return CheckModel(source=source_id, message=service.archives.test(source_id))


@router.put("/v1/sources/{source_id}/secret", status_code=204)
def put_secret(source_id: SourceId, body: SecretBody, service: ServiceDep) -> None:
    """Keep an archive's password or token in the OS keyring; the archive uses it at once."""
    service.archives.set_secret(source_id, body.secret)


@router.post("/v1/sources/{source_id}/rescan")
def post_rescan(source_id: SourceId, service: ServiceDep) -> ScanReportModel:
    """Index a folder archive again now (only new and changed files are read)."""
    report = service.archives.rescan(source_id)
    return ScanReportModel(
        source=source_id,
        read=report.read,
        unchanged=report.unchanged,
        removed=report.removed,
        skipped=len(report.skipped),
        skipped_examples=[f"{path}: {reason}" for path, reason in report.skipped[:20]],
        summary=report.summary(),
    )


@router.get("/v1/sources/{source_id}/browse")
def get_browse(
    source_id: SourceId,
    service: ServiceDep,
    path: Annotated[list[Key], Query(max_length=16, description="keys from the first level down")] = [],  # noqa: B006
    filter: Annotated[list[str], Query(max_length=32, description="NAME=VALUE[,VALUE]")] = [],  # noqa: B006
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> PageModel:
    page = service.archives.browse(
        source_id, tuple(path), filters=filters_of(filter), offset=offset, limit=limit
    )
    return PageModel(
        items=[ItemModel.of(i) for i in page.items], offset=page.offset, total=page.total, more=page.more
    )


@router.get("/v1/sources/{source_id}/search")
def get_search(
    source_id: SourceId,
    service: ServiceDep,
    q: Annotated[str, Query(max_length=200, description="text in a key or label (any case)")] = "",
    path: Annotated[list[Key], Query(max_length=16)] = [],  # noqa: B006
    filter: Annotated[list[str], Query(max_length=32)] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> list[ItemModel]:
    found = service.archives.search(source_id, q, tuple(path), filters=filters_of(filter), limit=limit)
    return [ItemModel.of(i) for i in found]


@router.get("/v1/sources/{source_id}/values/{name}")
def get_values(
    source_id: SourceId,
    name: Annotated[str, PathParam(min_length=1, max_length=200)],
    service: ServiceDep,
    path: Annotated[list[Key], Query(max_length=16)] = [],  # noqa: B006
) -> list[str]:
    return service.archives.filter_values(source_id, name, tuple(path))
