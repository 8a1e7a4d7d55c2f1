"""MEDIator Desktop: versioned replica sets of imaging-archive data, shared by a peer cluster.

This package is also the Python SDK. It imports without PySide6, so notebooks, 3D Slicer (which
ships its own Qt) and Galaxy tools can use it::

    from mediator_desktop import Mediator

    with Mediator() as m:  # the node running here, or one started for this script
        rs = m.create_set("NLST CT", add=["idc/nlst?Modality=CT"])

The domain types (``Pointer``, ``Selection``, ``Manifest``...) work on their own, without a node.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mediator_desktop._version import __version__

if TYPE_CHECKING:
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
    from mediator_desktop.sdk import Mediator

#: Where each public name lives. They load on first use, so ``import mediator_desktop`` (which
#: every ``mediator`` command pays for before it does anything) stays light.
_HOMES = {
    "ManifestDiff": "core.diff",
    **dict.fromkeys(
        (
            "ClusterUnavailable",
            "ConflictError",
            "IntegrityError",
            "MediatorError",
            "NodeUnreachable",
            "NotFound",
            "PermissionDenied",
            "SourceError",
            "ValidationError",
        ),
        "core.errors",
    ),
    **dict.fromkeys(("Fingerprint", "Leaf", "Manifest", "ManifestBuilder"), "core.manifest"),
    **dict.fromkeys(("Hierarchy", "Pointer"), "core.pointer"),
    **dict.fromkeys(("PublishedRecord", "ReplicaSet", "Version", "Visibility"), "core.replica"),
    **dict.fromkeys(("Rule", "Selection", "SelectionDiff"), "core.selection"),
    "Mediator": "sdk",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mediator_desktop' has no attribute {name!r}")
    value = getattr(import_module(f"mediator_desktop.{home}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


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
