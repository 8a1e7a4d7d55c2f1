"""The local HTTP API: the PubCons facade for the SDK, the CLI and programs in other languages.

Served on 127.0.0.1 only, by the node running on this machine. Every ``/v1`` request needs the
token of ``local-api.json`` (see ``core.endpoint``) as ``Authorization: Bearer TOKEN``; the
OpenAPI document at ``/openapi.json`` describes every operation. Errors come back as
``{"error": "ConflictError", "message": "...", ...}`` with a status that says which kind:
400 bad input, 401 no or wrong token, 403 not allowed, 404 not found, 409 conflict (with
``current_head``), 413 body too large, 422 malformed request, 502 archive failure, 503 no quorum.
"""

from __future__ import annotations

import contextlib
import hmac
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette import types as asgi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mediator_desktop import __version__
from mediator_desktop.api.models import (
    AddressBody,
    ClusterModel,
    DiffModel,
    Duplicate,
    ErrorModel,
    ForkModel,
    ItemModel,
    JobModel,
    JoinBody,
    JoinCodeBody,
    JoinCodeModel,
    Key,
    LeavesModel,
    MemberModel,
    NewDownload,
    NewSet,
    NodeInfo,
    PageModel,
    PeerModel,
    SetModel,
    SetScope,
    SourceModel,
    Update,
    UpdateResult,
    UserModel,
    VersionModel,
    VisibilityBody,
    leaf_model,
)
from mediator_desktop.core import errors
from mediator_desktop.core.downloads import DownloadJob
from mediator_desktop.core.endpoint import token_proof
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.replica import ReplicaSet, Visibility
from mediator_desktop.core.service import Service

if TYPE_CHECKING:
    from mediator_desktop.node import Node

#: The largest request body accepted (a set update with thousands of pointers fits easily).
MAX_BODY = 1 << 20
#: The longest a client may hold a request open waiting for a download to change.
MAX_WAIT = 30.0

SetId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="a replica set id (32 hex digits)")]

_STATUS: tuple[tuple[type[errors.MediatorError], int], ...] = (
    (errors.ValidationError, 400),
    (errors.PairingError, 400),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.ConflictError, 409),
    (errors.DownloadBusy, 409),
    (errors.InsufficientSpace, 507),
    (errors.SourceError, 502),
    (errors.IntegrityError, 502),
    (errors.ClusterUnavailable, 503),
)


# -- plumbing ------------------------------------------------------------------------------------
class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether announced or streamed.

    The body is read here first (it is small by then) and handed on whole.
    """

    def __init__(self, app: asgi.ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _too_large(self.limit)(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> asgi.Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class TokenProof:
    """Answers ``GET /v1/proof?challenge=HEX`` without a token: proof that this node holds it,
    asked by clients before they send it (``core.endpoint.token_proof``)."""

    def __init__(self, app: asgi.ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/proof" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        challenge = query.get("challenge", "")
        if not re.fullmatch(r"[0-9a-f]{32,128}", challenge):
            response = JSONResponse(
                {"error": "ValidationError", "message": "challenge must be 32 to 128 hex digits"},
                status_code=400,
            )
        else:
            response = JSONResponse({"proof": token_proof(self.token, challenge)})
        await response(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": "BodyTooLarge",
            "message": f"request bodies are limited to {limit} bytes; send less at once",
        },
        status_code=413,
    )


def _error(exc: errors.MediatorError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, errors.ConflictError):
        body["current_head"] = exc.current_head
    return JSONResponse(body, status_code=status)


def _name(leaf: Leaf) -> str:
    """``idc/nlst/100002/1.2.3/1.2.3.4``: a leaf as a pointer string."""
    return str(Pointer(leaf.source_id, leaf.path))


def _visibility(value: str) -> Visibility:
    return Visibility(value)


def build_app(node: Node, token: str) -> FastAPI:
    """The API of ``node``, answering only requests that carry ``token``."""
    bearer = HTTPBearer(auto_error=False, description="the token of local-api.json in the node's data folder")

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                401,
                "send the token of local-api.json (in the node's data folder) "
                "as 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorModel} for code in (400, 401, 403, 404, 409, 413, 502, 503)
    }
    app = FastAPI(
        title="MEDIator Desktop local API",
        version=__version__,
        description=__doc__,
        dependencies=[Depends(authorised)],
        responses=error_responses,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TokenProof, token=token)  # innermost: after the host check
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    app.add_middleware(BodyLimit)

    @app.exception_handler(errors.MediatorError)
    async def mediator_error(request: Request, exc: errors.MediatorError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed"}
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such API path: {request.url.path} (see /openapi.json)"
        return JSONResponse(
            {"error": names.get(exc.status_code, "HTTPError"), "message": message},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    def service() -> Service:
        return node.service

    def set_model(rs: ReplicaSet) -> SetModel:
        svc = service()
        leaves = size = None
        if rs.head is not None:
            with contextlib.suppress(errors.NotFound):  # the manifest is still on its way here
                leaves, size = svc.totals(svc.version(rs.id, rs.head).manifest_id)
        return SetModel(
            id=rs.id,
            name=rs.name,
            description=rs.description,
            owner=rs.owner,
            owner_name=svc.users().get(rs.owner, ""),
            editors=sorted(rs.editors),
            visibility=rs.visibility.value,
            forked_from=None
            if rs.forked_from is None
            else ForkModel(set_id=rs.forked_from[0], version=rs.forked_from[1]),
            following=svc.key_id in rs.followers,
            head=rs.head,
            published=sorted(rs.published),
            leaves=leaves,
            size=size,
        )

    def changed(set_id: str, change: Callable[[Service], object]) -> SetModel:
        """Make a change to a set, then answer with the set as it is now."""
        svc = service()
        change(svc)
        return set_model(svc.get_set(set_id))

    def job_model(job: DownloadJob) -> JobModel:
        return JobModel.model_validate(job.to_json())

    def filters_of(filter_args: list[str]) -> Any:
        out: dict[str, list[str]] = {}
        for item in filter_args:
            name, eq, value = item.partition("=")
            if not eq or not name or not value:
                raise errors.ValidationError(f"filter {item!r} must be NAME=VALUE, e.g. Modality=CT")
            out.setdefault(name, []).extend(v for v in value.split(",") if v)
        return make_filters(out)

    # -- this node and its cluster ---------------------------------------------------------------
    @app.get("/v1/node", tags=["node"])
    def get_node() -> NodeInfo:
        svc = service()
        return NodeInfo(
            version=__version__,
            key_id=svc.key_id,
            display_name=svc.identity.display_name,
            data_dir=str(node.data_dir),
            download_dir=str(node.settings.download_dir),
            raft_address=node.settings.raft_address,
        )

    @app.get("/v1/cluster", tags=["cluster"])
    def get_cluster() -> ClusterModel:
        status = node.status()
        return ClusterModel(
            self_address=status.self_address,
            leader=status.leader,
            has_quorum=status.has_quorum,
            term=status.term,
            commit_index=status.commit_index,
            members=[
                MemberModel(
                    address=m.address,
                    connected=m.connected,
                    is_self=m.address == status.self_address,
                    is_leader=m.address == status.leader,
                )
                for m in status.members
            ],
        )

    @app.get("/v1/peers", tags=["cluster"])
    def get_peers() -> list[PeerModel]:
        return [
            PeerModel(
                node_id=p.node_id,
                name=p.name,
                raft_address=p.raft_address,
                version=p.version,
                protocol=p.protocol,
                status=p.status,
            )
            for p in node.peers()
        ]

    @app.post("/v1/cluster/join-code", tags=["cluster"])
    def post_join_code(body: JoinCodeBody) -> JoinCodeModel:
        return JoinCodeModel(code=node.create_join_code(body.ttl))

    @app.post("/v1/cluster/join", tags=["cluster"])
    def post_join(body: JoinBody) -> ClusterModel:
        node.join(body.code)
        return get_cluster()

    @app.post("/v1/cluster/leave", tags=["cluster"])
    def post_leave() -> ClusterModel:
        node.leave()
        return get_cluster()

    @app.post("/v1/cluster/remove", tags=["cluster"])
    def post_remove(body: AddressBody) -> ClusterModel:
        node.remove_member(body.address)
        return get_cluster()

    @app.get("/v1/users", tags=["node"])
    def get_users() -> list[UserModel]:
        return [UserModel(key_id=k, display_name=n) for k, n in sorted(service().users().items())]

    # -- archives --------------------------------------------------------------------------------
    @app.get("/v1/sources", tags=["sources"])
    def get_sources() -> list[SourceModel]:
        return [
            SourceModel(
                id=s.source_id, title=s.title, levels=list(s.hierarchy.levels), filterable=list(s.filterable)
            )
            for s in service().sources.values()
        ]

    @app.get("/v1/sources/{source_id}/browse", tags=["sources"])
    def get_browse(
        source_id: Annotated[str, PathParam(min_length=1, max_length=200)],
        path: Annotated[list[Key], Query(max_length=16, description="keys from the first level down")] = [],  # noqa: B006
        filter: Annotated[list[str], Query(max_length=32, description="NAME=VALUE[,VALUE]")] = [],  # noqa: B006
        offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    ) -> PageModel:
        page = service().browse(
            source_id, tuple(path), filters=filters_of(filter), offset=offset, limit=limit
        )
        return PageModel(
            items=[ItemModel.of(i) for i in page.items], offset=page.offset, total=page.total, more=page.more
        )

    @app.get("/v1/sources/{source_id}/search", tags=["sources"])
    def get_search(
        source_id: Annotated[str, PathParam(min_length=1, max_length=200)],
        q: Annotated[str, Query(max_length=200, description="text in a key or label (any case)")] = "",
        path: Annotated[list[Key], Query(max_length=16)] = [],  # noqa: B006
        filter: Annotated[list[str], Query(max_length=32)] = [],  # noqa: B006
        limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    ) -> list[ItemModel]:
        found = service().search(source_id, q, tuple(path), filters=filters_of(filter), limit=limit)
        return [ItemModel.of(i) for i in found]

    @app.get("/v1/sources/{source_id}/values/{name}", tags=["sources"])
    def get_values(
        source_id: Annotated[str, PathParam(min_length=1, max_length=200)],
        name: Annotated[str, PathParam(min_length=1, max_length=200)],
        path: Annotated[list[Key], Query(max_length=16)] = [],  # noqa: B006
    ) -> list[str]:
        source = service().source(source_id)
        if name not in source.filterable:
            raise errors.ValidationError(
                f"{source_id} cannot filter on {name!r}; "
                f"it can on {', '.join(source.filterable) or 'nothing'}"
            )
        return source.filter_values(name, tuple(path))

    # -- replica sets ----------------------------------------------------------------------------
    @app.get("/v1/sets", tags=["sets"])
    def get_sets(scope: SetScope = "all") -> list[SetModel]:
        return [set_model(rs) for rs in service().list_sets(scope)]

    @app.post("/v1/sets", status_code=201, tags=["sets"])
    def post_set(body: NewSet) -> SetModel:
        svc = service()
        pointers = [svc.check_pointer(p.pointer()) for p in body.add]
        set_id = svc.create_set(body.name, body.description, _visibility(body.visibility))
        if pointers:
            svc.update(set_id, add=pointers, message=body.message or "created")
        return set_model(svc.get_set(set_id))

    @app.get("/v1/sets/{set_id}", tags=["sets"])
    def get_set(set_id: SetId) -> SetModel:
        return set_model(service().get_set(set_id))

    @app.delete("/v1/sets/{set_id}", status_code=204, tags=["sets"])
    def delete_set(set_id: SetId) -> None:
        service().delete_set(set_id)

    @app.post("/v1/sets/{set_id}/versions", tags=["sets"])
    def post_version(set_id: SetId, body: Update) -> UpdateResult:
        svc = service()
        number = svc.update(
            set_id,
            add=[p.pointer() for p in body.add],
            remove=[p.pointer() for p in body.remove],
            message=body.message,
            expected_head="head" if body.expected_head is None else body.expected_head,
        )
        return UpdateResult(version=number, set=set_model(svc.get_set(set_id)))

    @app.get("/v1/sets/{set_id}/versions", tags=["sets"])
    def get_versions(set_id: SetId) -> list[VersionModel]:
        return [VersionModel.of(v) for v in service().history(set_id)]

    @app.get("/v1/sets/{set_id}/versions/{number}", tags=["sets"])
    def get_version(set_id: SetId, number: Annotated[int, PathParam(ge=1)]) -> VersionModel:
        return VersionModel.of(service().version(set_id, number))

    @app.get("/v1/sets/{set_id}/versions/{number}/leaves", tags=["sets"])
    def get_leaves(
        set_id: SetId,
        number: Annotated[int, PathParam(ge=1)],
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> LeavesModel:
        svc = service()
        manifest = svc.manifest(svc.version(set_id, number).manifest_id)
        lines = manifest.lines()[offset : offset + limit]
        page = [leaf_model(line) for line in lines]
        return LeavesModel(manifest_id=manifest.id, total=len(manifest), offset=offset, leaves=page)

    @app.get("/v1/sets/{set_id}/diff", tags=["sets"])
    def get_diff(
        set_id: SetId,
        old: Annotated[int, Query(ge=1)],
        new: Annotated[int | None, Query(ge=1, description="default: the head")] = None,
        other: Annotated[
            str | None, Query(pattern=r"^[0-9a-f]{32}$", description="compare with this set")
        ] = None,
        limit: Annotated[int, Query(ge=0, le=100_000, description="keys listed per kind")] = 1000,
    ) -> DiffModel:
        svc = service()
        selection, manifest = svc.diff(set_id, old, new, other)
        hierarchies = {sid: s.hierarchy for sid, s in svc.sources.items()}
        return DiffModel(
            summary=manifest.summary(hierarchies),
            selection_summary=selection.summary(),
            added=len(manifest.added),
            removed=len(manifest.removed),
            changed=len(manifest.changed),
            added_leaves=[_name(leaf) for leaf in manifest.added[:limit]],
            removed_leaves=[_name(leaf) for leaf in manifest.removed[:limit]],
            changed_leaves=[_name(new_leaf) for _, new_leaf in manifest.changed[:limit]],
        )

    @app.post("/v1/sets/{set_id}/duplicate", status_code=201, tags=["sets"])
    def post_duplicate(set_id: SetId, body: Duplicate) -> SetModel:
        svc = service()
        return set_model(svc.get_set(svc.duplicate(set_id, body.version, body.name)))

    @app.put("/v1/sets/{set_id}/visibility", tags=["sharing"])
    def put_visibility(set_id: SetId, body: VisibilityBody) -> SetModel:
        return changed(set_id, lambda svc: svc.set_visibility(set_id, _visibility(body.visibility)))

    @app.put("/v1/sets/{set_id}/editors/{key_id}", tags=["sharing"])
    def put_editor(
        set_id: SetId, key_id: Annotated[str, PathParam(min_length=1, max_length=128)]
    ) -> SetModel:
        return changed(set_id, lambda svc: svc.grant_editor(set_id, key_id))

    @app.delete("/v1/sets/{set_id}/editors/{key_id}", tags=["sharing"])
    def delete_editor(
        set_id: SetId, key_id: Annotated[str, PathParam(min_length=1, max_length=128)]
    ) -> SetModel:
        return changed(set_id, lambda svc: svc.revoke_editor(set_id, key_id))

    @app.put("/v1/sets/{set_id}/follow", tags=["sharing"])
    def put_follow(set_id: SetId) -> SetModel:
        return changed(set_id, lambda svc: svc.follow(set_id))

    @app.delete("/v1/sets/{set_id}/follow", tags=["sharing"])
    def delete_follow(set_id: SetId) -> SetModel:
        return changed(set_id, lambda svc: svc.unfollow(set_id))

    # -- downloads -------------------------------------------------------------------------------
    @app.post("/v1/downloads", status_code=202, tags=["downloads"])
    def post_download(body: NewDownload) -> JobModel:
        job = service().downloads.start(
            body.set_id,
            Path(body.destination),
            version=body.version,
            layout=body.layout,
            workers=body.workers,
            prune=body.prune,
            only=body.only,
        )
        return job_model(job)

    @app.get("/v1/downloads", tags=["downloads"])
    def get_downloads() -> list[JobModel]:
        return [job_model(j) for j in service().downloads.list()]

    @app.get("/v1/downloads/{job_id}", tags=["downloads"])
    def get_download(
        job_id: Annotated[str, PathParam(min_length=1, max_length=100)],
        after: Annotated[
            int, Query(ge=-1, description="answer once the job changed after this change number")
        ] = -1,
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT, description="seconds to wait for a change")] = 0.0,
    ) -> JobModel:
        job = service().downloads.get(job_id)
        if wait > 0:
            job.wait(after, wait)
        return job_model(job)

    @app.post("/v1/downloads/{job_id}/{action}", tags=["downloads"])
    def post_download_action(
        job_id: Annotated[str, PathParam(min_length=1, max_length=100)],
        action: Literal["pause", "resume", "cancel"],
    ) -> JobModel:
        job = service().downloads.get(job_id)
        getattr(job.control, action)()
        return job_model(job)

    return app
