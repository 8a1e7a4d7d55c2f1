"""MEDIator Desktop: versioned replica sets of imaging-archive data, shared by a peer cluster.

This package is also the Python SDK. It imports without PySide6, so notebooks, 3D Slicer (which
ships its own Qt) and Galaxy tools can use it::

    from mediator_desktop import Pointer, Selection, ManifestBuilder

    selection = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))
"""

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import (
    ClusterUnavailable,
    ConflictError,
    IntegrityError,
    MediatorError,
    NotFound,
    PermissionDenied,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Hierarchy, Pointer
from mediator_desktop.core.replica import PublishedRecord, ReplicaSet, Version, Visibility
from mediator_desktop.core.selection import Rule, Selection, SelectionDiff

__version__ = "0.1.0"

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
    "MediatorError",
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
