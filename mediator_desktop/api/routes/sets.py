"""Replica sets: ``/v1/sets``, their versions, leaves and diffs, who may see and change them, and
manifest files (``/v1/sets/import``, ``/v1/sets/{id}/export``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mediator_desktop.api.deps import ServiceDep, SetId
from mediator_desktop.api.models import (
    DiffModel,
    Duplicate,
    ForkModel,
    ImportBody,
    ImportModel,
    LeavesModel,
    NewSet,
    Rename,
    SetExportModel,
    SetModel,
    SetScope,
    Update,
    UpdateResult,
    VersionModel,
    VisibilityBody,
    VisibilityName,
    leaf_model,
)
from mediator_desktop.core import errors
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import ReplicaSet, Visibility
from mediator_desktop.core.selection import SelectionDiff
from mediator_desktop.core.service import ImportResult, Service

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


# -- manifest files ------------------------------------------------------------------------------
_IMPORT_BODY: dict[str, Any] = {
    "required": True,
    "description": "JSON: a file or exported .crate/.bag folder on this machine (`path`), or a file's "
    "`name` and `text`; or the raw file (application/octet-stream, text/plain; a zipped crate or bag "
    "as application/zip too) with its name in the `name` query parameter",
    "content": {
        "application/json": {"schema": ImportBody.model_json_schema()},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}


@router.post("/v1/sets/import", status_code=201, tags=["sets"], openapi_extra={"requestBody": _IMPORT_BODY})
async def post_import(
    request: Request,
    service: ServiceDep,
    name: Annotated[
        str | None,
        Query(min_length=1, max_length=255, description="with a raw file: its name, with its extension"),
    ] = None,
    visibility: Annotated[
        VisibilityName | None, Query(description="with a raw file (default private)")
    ] = None,
) -> ImportModel:
    """A new set from a manifest file: a TCIA ``.tcia``, an IDC ``.s5cmd``, a GDC manifest (TSV), a
    MEDIator set export, or an RO-Crate or BDBag MEDIator exported (its folder as ``path``, or the
    zip ``GET /v1/sets/{id}/export`` gives, raw or as ``path``). Its series and files are found in
    the archives configured here; what none of them holds comes back in ``missing``. The file's name
    (without extension) names the set."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == "application/json" or content_type.endswith("+json"):
        if name is not None or visibility is not None:
            raise errors.ValidationError(
                "name and visibility go in the JSON body; as query parameters they come with a raw file"
            )
        try:  # as FastAPI reads the JSON bodies of other routes
            body = ImportBody.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            problem = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
            raise RequestValidationError([{**problem, "input": {}, "ctx": {"error": exc.msg}}]) from None
        except (UnicodeDecodeError, RecursionError) as exc:  # not UTF-8, or nested deeper than json reads
            problem = {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}
            error = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
            raise RequestValidationError([{**problem, "input": {}, "ctx": {"error": error}}]) from None
        except pydantic.ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        if body.path is not None and (body.name is not None or body.text is not None):
            raise errors.ValidationError(
                "send either path (a file on this machine) or name and text, not both"
            )
        if body.path is not None:
            path = _manifest_path(body.path)
            result = await run_in_threadpool(service.sets.import_file, path, Visibility(body.visibility))
            return _imported(service, result)
        if body.name is None or body.text is None:
            raise errors.ValidationError(
                "send the manifest as path (a file on this machine), or as name (with its extension) and text"
            )
        try:
            data = body.text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON can carry one, no file can
            raise errors.ValidationError("text is not valid Unicode; send the file's own text") from None
        filename, seen = body.name, Visibility(body.visibility)
    else:
        if name is None:
            raise errors.ValidationError(
                "a raw manifest file needs its name (with its extension) as ?name=, e.g. ?name=lung.tcia; "
                "or send JSON with path, or with name and text"
            )
        data, filename, seen = raw, name, Visibility(visibility or "private")
    safe = _file_name(filename)

    def import_copy() -> ImportResult:
        with tempfile.TemporaryDirectory(prefix="mediator-import-") as folder:
            path = Path(folder) / safe
            path.write_bytes(data)
            return service.sets.import_file(path, seen)

    return _imported(service, await run_in_threadpool(import_copy))


def _imported(service: Service, result: ImportResult) -> ImportModel:
    return ImportModel(
        set_id=result.set_id,
        version=result.version,
        count=result.pointers,
        missing=list(result.missing),
        set=set_model(service, service.sets.get(result.set_id)),
    )


def _file_name(name: str) -> str:
    """``name`` as the name of a file in a folder of ours: one plain name, never a path."""
    if "/" in name or "\\" in name or "\0" in name or name.strip() in ("", ".", ".."):
        raise errors.ValidationError(
            f"{name[:100]!r} is not a file name; give the file's own name, e.g. lung.tcia"
        )
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        raise errors.ValidationError(f"{name[:100]!r} is not a file name; give the file's own name") from None
    if size > 255:
        raise errors.ValidationError("the file name is longer than 255 bytes; give a shorter one")
    return name.strip()


def _manifest_path(text: str) -> Path:
    """``text`` as a readable manifest file on this machine, or a typed error saying what is wrong."""
    path = Path(text)
    if not path.is_absolute():
        raise errors.ValidationError(f"{text!r} is not an absolute path; name the file from the root (/...)")
    try:
        path.stat()
    except FileNotFoundError:
        raise errors.NotFound(f"no file {text}") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a folder we may not enter
        raise errors.ValidationError(
            f"cannot read {text!r}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if path.is_dir():
        if (path / "ro-crate-metadata.json").is_file() or (path / "bagit.txt").is_file():
            return path  # an RO-Crate or a bag of ours, as its folder
        raise errors.ValidationError(
            f"{text} is a folder but neither an RO-Crate nor a bag; name a manifest file (.tcia, "
            ".s5cmd, GDC TSV, export) or an exported .crate/.bag folder"
        )
    if not path.is_file():
        raise errors.ValidationError(f"{text} is not a regular file; name a manifest file")
    if not os.access(path, os.R_OK):
        raise errors.ValidationError(f"cannot read {text}: permission denied")
    return path


#: Every export format (``core.exports.FORMATS``); ``rocrate`` and ``bdbag`` come as a zip of the folder.
ExportFormat = Literal["rocrate", "bdbag", "s5cmd", "tcia", "gdc", "csv", "mediator"]
_MEDIA = {
    "s5cmd": "text/plain",
    "tcia": "text/plain",
    "csv": "text/csv",
    "rocrate": "application/zip",
    "bdbag": "application/zip",
}


@router.get(
    "/v1/sets/{set_id}/export",
    tags=["sets"],
    response_model=None,
    responses={
        200: {
            "model": SetExportModel,
            "description": "mediator: the set export (JSON); gdc: the manifest gdc-client reads; "
            "s5cmd, tcia, csv: those files; rocrate, bdbag: a zip of the crate's or the bag's folder",
            "content": {
                "text/tab-separated-values": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def get_export(
    set_id: SetId,
    service: ServiceDep,
    fmt: Annotated[
        ExportFormat,
        Query(
            alias="format",
            description="mediator: a set export any MEDIator imports; gdc: a GDC manifest; s5cmd: IDC's "
            "s5cmd manifest; tcia: an NBIA Data Retriever manifest; csv: one row per leaf; rocrate: a "
            "detached RO-Crate (zip); bdbag: a BagIt bag of pointers (zip)",
        ),
    ] = "mediator",
    version: Annotated[int | None, Query(ge=1, description="default: the head")] = None,
    files: Annotated[
        bool,
        Query(
            description="bdbag only: ask the archives for each leaf's files and list every file with an "
            "MD5 and an http(s) URL in fetch.txt, so `bdbag --resolve-fetch all` fetches and verifies "
            "it (needs the archives online; slower); other leaves stay pointers"
        ),
    ] = False,
) -> Response:
    """A set version as a file: a MEDIator set export (its selection, which ``POST /v1/sets/import``
    makes a set of again), the GDC manifest of its GDC files, IDC's s5cmd manifest, a ``.tcia``
    manifest, a CSV of its leaves, or a zipped RO-Crate or BDBag. A version holding nothing a
    format lists (no GDC files for ``gdc``, no IDC series for ``s5cmd``) is a 400 saying so, as is
    ``files`` with another format than ``bdbag``."""
    rs = service.sets.get(set_id)
    number = service.sets.version(set_id, version).number
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rs.name).strip("._") or "set"
    if files and fmt != "bdbag":
        raise errors.ValidationError(
            f"only a bdbag export lists the files themselves; {fmt} lists leaves (drop files=true)"
        )
    if fmt == "gdc":
        text = service.sets.export_manifest(set_id, number, "gdc")
        disposition = f'attachment; filename="gdc_manifest_{stem}_v{number}.txt"'
        return Response(
            text, media_type="text/tab-separated-values", headers={"Content-Disposition": disposition}
        )
    if fmt == "mediator":
        document = service.sets.export(set_id, number)
        disposition = f'attachment; filename="{stem}_v{number}.json"'
        return JSONResponse(document, headers={"Content-Disposition": disposition})
    folder = Path(tempfile.mkdtemp(prefix="mediator-export-"))
    try:
        if fmt in ("rocrate", "bdbag"):
            suffix = ".crate" if fmt == "rocrate" else ".bag"
            written = service.sets.export_file(
                set_id, number, fmt, folder / f"{stem}_v{number}{suffix}", files=files
            )
            path = shutil.make_archive(str(written), "zip", root_dir=folder, base_dir=written.name)
            name = f"{written.name}.zip"
        else:
            written = service.sets.export_file(set_id, number, fmt, folder)
            name, path = written.name, str(written)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=_MEDIA[fmt],
        filename=name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
