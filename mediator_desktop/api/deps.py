"""What every router of the local API shares: the node's ``Service`` (a FastAPI dependency) and
the path parameters several of them take."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam

from mediator_desktop.core.service import Service


async def get_service(request: Request) -> Service:
    """The service ``build_app`` was given (``app.state.service``)."""
    service: Service = request.app.state.service
    return service


#: A route's parameter ``service: ServiceDep`` receives the node's service.
ServiceDep = Annotated[Service, Depends(get_service)]

SetId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="a replica set id (32 hex digits)")]
