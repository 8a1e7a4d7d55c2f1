"""MEDIator Desktop: versioned replica sets of imaging-archive data, shared by a peer cluster.

This package is also the Python SDK. It imports without PySide6, so notebooks, 3D Slicer (which
ships its own Qt) and Galaxy tools can use it::

    from mediator_desktop import Mediator

    with Mediator() as m:  # the node running here, or one started for this script
        rs = m.create_set("NLST CT", add=["idc/nlst?Modality=CT"])

The domain types (``Pointer``, ``Selection``, ``Manifest``...) work on their own, without a node.
"""

from typing import TYPE_CHECKING, Any

from mediator_desktop._version import __version__
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import (
    ClusterUnavailable,
    ConflictError,
    IntegrityError,
    MediatorError,
    NodeUnreachable,
    NotFound,
    PermissionDenied,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Hierarchy, Pointer
from mediator_desktop.core.replica import PublishedRecord, ReplicaSet, Version, Visibility
from mediator_desktop.core.selection import Rule, Selection, SelectionDiff

if TYPE_CHECKING:
    from mediator_desktop.sdk import Mediator


def __getattr__(name: str) -> Any:
    # The SDK client loads on first use, so ``import mediator_desktop`` stays light.
    if name == "Mediator":
        from mediator_desktop.sdk import Mediator

        return Mediator
    raise AttributeError(f"module 'mediator_desktop' has no attribute {name!r}")


__all__ = [
    "ClusterUnavailable",
    "ConflictError",
    "Fingerprint",
    "Hierarchy",
    "IntegrityError",
    "Leaf",
    "Manifest",
    "ManifestBuilder",
    "ManifestDiff",
    "Mediator",
    "MediatorError",
    "NodeUnreachable",
    "NotFound",
    "PermissionDenied",
    "Pointer",
    "PublishedRecord",
    "ReplicaSet",
    "Rule",
    "Selection",
    "SelectionDiff",
    "SourceError",
    "ValidationError",
    "Version",
    "Visibility",
    "__version__",
]
