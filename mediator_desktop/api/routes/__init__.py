"""The local API's routers, one per resource; ``api.app.build_app`` includes them all."""

from mediator_desktop.api.models import build_bodies

build_bodies()  # before any route names a body (deferred, so the SDK never builds them)

from mediator_desktop.api.routes import (  # noqa: E402
    archives,
    clinical,
    cluster,
    downloads,
    matches,
    publishing,
    sets,
    settings,
    tracking,
)

ROUTERS = (
    cluster.router,
    archives.router,
    sets.router,
    tracking.router,
    clinical.router,
    matches.router,
    publishing.router,
    downloads.router,
    settings.router,
)

__all__ = ["ROUTERS"]
