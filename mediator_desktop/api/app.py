"""The local HTTP API: the PubCons facade for the SDK, the CLI and programs in other languages.

Served on 127.0.0.1 only, by the node running on this machine. Every ``/v1`` request needs the
token of ``local-api.json`` (see ``core.endpoint``) as ``Authorization: Bearer TOKEN``; the
OpenAPI document at ``/openapi.json`` describes every operation. Errors come back as
``{"error": "ConflictError", "code": "conflict", "message": "...", ...}`` with a status that
says which kind: 400 bad input, 401 no or wrong token, 403 not allowed, 404 not found, 405 a
method the path does not take, 409 conflict (with ``current_head``) or a folder another download
is writing into, 413 body too large, 422 malformed request, 502 archive failure, 503 no quorum,
507 not enough disk space.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette import types as asgi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mediator_desktop._version import __version__
from mediator_desktop.api.fast import FastSetReads, SetAnswers
from mediator_desktop.api.models import ErrorModel
from mediator_desktop.api.routes import ROUTERS
from mediator_desktop.core import errors
from mediator_desktop.core.endpoint import token_proof
from mediator_desktop.core.service import Service

#: The largest request body accepted (a set update with thousands of pointers fits easily).
MAX_BODY = 1 << 20

#: Errors the HTTP layer answers itself: (error, code) per status.
_HTTP_ERRORS = {
    401: ("Unauthorized", "unauthorized"),
    404: ("NotFound", "not_found"),
    405: ("MethodNotAllowed", "method_not_allowed"),
    413: ("BodyTooLarge", "body_too_large"),
}


def error_statuses() -> list[int]:
    """Every status an error answer can have (each ``MediatorError``'s and the HTTP layer's)."""
    kinds: list[type[errors.MediatorError]] = [errors.MediatorError]
    statuses = set(_HTTP_ERRORS)
    while kinds:
        kind = kinds.pop()
        statuses.add(kind.http_status)
        kinds.extend(kind.__subclasses__())
    return sorted(statuses)


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
            response = _error(errors.ValidationError("challenge must be 32 to 128 hex digits"))
        else:
            response = JSONResponse({"proof": token_proof(self.token, challenge)})
        await response(scope, receive, send)


def _error(exc: errors.MediatorError) -> JSONResponse:
    """A typed error as the API answers it: its own status and body (``MediatorError.to_json``)."""
    return JSONResponse(exc.to_json(), status_code=exc.http_status)


def _http_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    error, code = _HTTP_ERRORS.get(status, ("HTTPError", "http_error"))
    return JSONResponse(
        {"error": error, "code": code, "message": message}, status_code=status, headers=headers
    )


def _problem(problem: Mapping[str, Any]) -> str:
    """One line for one pydantic problem: ``name: at most 200 characters (got 250)``."""
    where = ".".join(str(part) for part in problem.get("loc", ()) if part not in ("body", "query", "path"))
    kind, ctx = problem.get("type", ""), problem.get("ctx") or {}
    value = problem.get("input")
    size = f" (got {len(value)})" if isinstance(value, str | list) else ""
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        text = "is empty"
    elif kind in ("string_too_short", "too_short"):
        text = f"needs at least {ctx.get('min_length')}{size}"
    elif kind == "string_too_long":
        text = f"has at most {ctx.get('max_length')} characters{size}"
    elif kind == "too_long":
        text = f"has at most {ctx.get('max_length')} items{size}"
    elif kind == "extra_forbidden":
        text = "is not a field this request takes"
    elif kind == "missing":
        text = "is missing"
    else:
        text = str(problem.get("msg", "is not valid")).rstrip(".").lower()
    return f"{where or 'the request'} {text}"


def _too_large(limit: int) -> JSONResponse:
    return _http_error(413, f"request bodies are limited to {limit} bytes; send less at once")


def build_app(service: Service, token: str) -> FastAPI:
    """The API of a node's ``service``, answering only requests that carry ``token``."""
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
        status: {"model": ErrorModel} for status in error_statuses()
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
    app.state.service = service  # what the routers' ``ServiceDep`` hands them
    app.add_middleware(TokenProof, token=token)  # innermost: after the host check
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    app.add_middleware(BodyLimit)
    # outermost: a plain read of a set it can answer never reaches the framework (``api.fast``)
    # (not for the OpenAPI document alone, built without a service)
    if service is not None:
        app.state.set_answers = SetAnswers(service)
        app.add_middleware(FastSetReads, answers=app.state.set_answers, token=token)

    @app.exception_handler(errors.MediatorError)
    async def mediator_error(request: Request, exc: errors.MediatorError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Without the inputs: a body that could not be read may hold text no answer can carry
        # (a lone surrogate), and echoing it back tells the caller nothing new.
        raw = exc.errors()
        problems = [{k: v for k, v in p.items() if k != "input"} for p in raw]
        message = "; ".join(_problem(p) for p in raw[:3]) + (
            f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        )
        body = {
            "error": "ValidationError",
            "code": errors.ValidationError.code,
            "message": message.encode("utf-8", "replace").decode("utf-8"),
            "detail": jsonable_encoder(problems),
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such API path: {request.url.path} (see /openapi.json)"
        return _http_error(exc.status_code, message, exc.headers)

    for router in ROUTERS:
        app.include_router(router)
    return app
