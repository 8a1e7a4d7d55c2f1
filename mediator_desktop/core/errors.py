"""Typed errors that cross layers, and the one table every frontend translates them through.

Every expected failure the user can meet is one of these, with a message that says what happened
and what to do next. Programming errors are not wrapped: they propagate.

Each class carries its machine ``code`` (what the store's results and the local API's error bodies
name), the ``http_status`` the local API answers with and the ``exit_code`` of the ``mediator``
command. The API, the SDK and the CLI read these attributes; none keeps a table of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

#: Exit codes of the ``mediator`` command (also documented in docs/cli.md).
EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_CLUSTER_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4
EXIT_PERMISSION_DENIED = 5
EXIT_CONFLICT = 6
EXIT_ARCHIVE_ERROR = 7
EXIT_DOWNLOAD_INCOMPLETE = 8
EXIT_NO_NODE = 9
EXIT_OUTCOME_UNKNOWN = 10
EXIT_INTERRUPTED = 130

_BY_CODE: dict[str, type[MediatorError]] = {}
_BY_NAME: dict[str, type[MediatorError]] = {}


class MediatorError(Exception):
    """Base of every expected, user-facing failure."""

    #: The machine code: store results, the local API's ``code`` field.
    code: ClassVar[str] = "error"
    #: The status the local API answers with.
    http_status: ClassVar[int] = 400
    #: The exit status of the ``mediator`` command.
    exit_code: ClassVar[int] = EXIT_USER_ERROR

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _BY_CODE.setdefault(cls.code, cls)
        _BY_NAME.setdefault(cls.__name__, cls)

    def to_json(self) -> dict[str, Any]:
        """The local API's error body: ``{"error": class name, "code": ..., "message": ...}``."""
        return {"error": type(self).__name__, "code": self.code, "message": str(self)}


class ValidationError(MediatorError, ValueError):
    """Input that breaks a rule of the domain model (a bad path, a malformed manifest...)."""

    code = "validation"


class MetadataProblems(ValidationError):
    """Publication metadata that breaks rules of a DOI record, with every problem by field
    (``title``, ``creators.0.orcid``, ``landing_url``...), so a form shows each next to its field.
    The local API answers it with 400 and the problems as ``detail``; the SDK raises it again."""

    code = "metadata"

    def __init__(self, message: str, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems = dict(problems or {})

    @classmethod
    def of(cls, problems: Mapping[str, str]) -> MetadataProblems:
        said = "; ".join(f"{name}: {text}" for name, text in problems.items())
        return cls(f"the publication metadata is not complete: {said}", problems)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "detail": dict(self.problems)}


class IntegrityError(MediatorError):
    """Data whose content does not match the hash or size it claims."""

    code = "integrity"
    http_status = 502
    exit_code = EXIT_ARCHIVE_ERROR


class EditedExport(IntegrityError):
    """An RO-Crate or bag MEDIator exported, changed by hand since (a checksum or the selection's
    hash disagrees): the user's file is at fault, not an archive."""

    code = "edited_export"
    http_status = 400
    exit_code = EXIT_USER_ERROR


class NotFound(MediatorError, LookupError):
    """A replica set, version, user or manifest that does not exist (or is not visible to you)."""

    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


class PermissionDenied(MediatorError):
    """The author of a command may not do what it asks."""

    code = "permission"
    http_status = 403
    exit_code = EXIT_PERMISSION_DENIED


class ReplayError(PermissionDenied):
    """A command whose sequence number was used before, or that is too old."""

    code = "replay"


class ImmutableError(PermissionDenied):
    """An attempt to change something published."""

    code = "immutable"


class ConflictError(MediatorError):
    """A change based on a stale version; carries the current head so the caller can rebase."""

    code = "conflict"
    http_status = 409
    exit_code = EXIT_CONFLICT

    def __init__(self, message: str, *, current_head: int | None = None) -> None:
        super().__init__(message)
        self.current_head = current_head

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "current_head": self.current_head}


class ClusterUnavailable(MediatorError):
    """No quorum answered within the bounded wait; nothing was written."""

    code = "cluster_unavailable"
    http_status = 503
    exit_code = EXIT_CLUSTER_UNAVAILABLE


class OutcomeUnknown(ClusterUnavailable):
    """A change went out to the cluster, and no answer came in time, not even to the same signed
    command sent again: it may have been applied (or may still be, once enough members are back).
    ``ClusterUnavailable`` alone means nothing was written."""

    code = "outcome_unknown"
    exit_code = EXIT_OUTCOME_UNKNOWN


class SourceError(MediatorError):
    """An archive failed or answered something unusable."""

    code = "source"
    http_status = 502
    exit_code = EXIT_ARCHIVE_ERROR


class ArchiveUnreachable(SourceError):
    """An archive's host could not be reached at all: its name did not resolve, it refused or timed
    out the connection, or a proxy or TLS handshake failed. Not about one item: about the archive.

    Attributes:
        host: ``host[:port]`` when known, else "".
        reason: what libcurl (or the HTTP client) said, e.g. ``Could not resolve host: x``.
    """

    code = "archive_unreachable"

    def __init__(self, message: str, *, host: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason or message


class Cancelled(MediatorError):
    """The user cancelled the job; what finished stays, the rest resumes on the next run."""

    code = "cancelled"


class InsufficientSpace(MediatorError):
    """The destination has too little free space for what a download needs; nothing was fetched."""

    code = "insufficient_space"
    http_status = 507


class DownloadBusy(MediatorError):
    """Another download is already writing into the same folder."""

    code = "download_busy"
    http_status = 409


class PairingError(MediatorError):
    """A join failed: a wrong, expired or used code, another protocol version, or no answer."""

    code = "pairing"


class NodeRunning(MediatorError):
    """Another node already runs on the same data folder (use it through its local API)."""

    code = "node_running"


class NodeUnreachable(MediatorError):
    """No node answers on this machine's local API (not running, or the token was refused)."""

    code = "node_unreachable"
    http_status = 503
    exit_code = EXIT_NO_NODE


def by_code(code: str) -> type[MediatorError]:
    """The error class of a machine code (``MediatorError`` for one this version does not know)."""
    return _BY_CODE.get(code, MediatorError)


def by_name(name: str) -> type[MediatorError]:
    """The error class of a class name, as the local API's ``error`` field carries it."""
    return _BY_NAME.get(name, MediatorError)


def from_json(body: dict[str, Any], fallback: str = "") -> MediatorError:
    """The typed error of an error body of the local API (an unknown kind: ``MediatorError``)."""
    message = str(body.get("message") or fallback or "the node refused the request")
    kind = by_code(str(body.get("code", ""))) if "code" in body else by_name(str(body.get("error", "")))
    if kind is ConflictError:
        head = body.get("current_head")
        return ConflictError(message, current_head=head if isinstance(head, int) else None)
    if kind is MetadataProblems:
        detail = body.get("detail")
        problems = {str(k): str(v) for k, v in detail.items()} if isinstance(detail, dict) else {}
        return MetadataProblems(message, problems)
    return kind(message)


def error_of(code: str, message: str, extra: dict[str, Any] | None = None) -> MediatorError:
    """The typed error of a store result ``("err", code, message, extra)``."""
    kind = by_code(code)
    if kind is ConflictError:
        head = (extra or {}).get("current_head")
        return ConflictError(message, current_head=head if isinstance(head, int) else None)
    return kind(message)
