"""The archives (sources): ``/v1/sources``, browse, search and filter values."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import ItemModel, Key, PageModel, SourceModel
from mediator_desktop.core import errors
from mediator_desktop.core.pointer import Filters, make_filters

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


@router.get("/v1/sources")
def get_sources(service: ServiceDep) -> list[SourceModel]:
    return [
        SourceModel(
            id=s.source_id, title=s.title, levels=list(s.hierarchy.levels), filterable=list(s.filterable)
        )
        for s in service.archives.all()
    ]


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
