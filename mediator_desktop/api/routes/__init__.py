"""The local API's routers, one per resource; ``api.app.build_app`` includes them all."""

from mediator_desktop.api.routes import (
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
