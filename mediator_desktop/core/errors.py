"""Typed errors that cross layers.

Every expected failure the user can meet is one of these, with a message that says what happened
and what to do next. Programming errors are not wrapped: they propagate.
"""

from __future__ import annotations


class MediatorError(Exception):
    """Base of every expected, user-facing failure."""


class ValidationError(MediatorError, ValueError):
    """Input that breaks a rule of the domain model (a bad path, a malformed manifest...)."""


class IntegrityError(MediatorError):
    """Data whose content does not match the hash or size it claims."""


class NotFound(MediatorError, LookupError):
    """A replica set, version, user or manifest that does not exist (or is not visible to you)."""


class PermissionDenied(MediatorError):
    """The author of a command may not do what it asks."""


class ConflictError(MediatorError):
    """A change based on a stale version; carries the current head so the caller can rebase."""

    def __init__(self, message: str, *, current_head: int | None = None) -> None:
        super().__init__(message)
        self.current_head = current_head


class ClusterUnavailable(MediatorError):
    """No quorum answered within the bounded wait; nothing was written."""


class SourceError(MediatorError):
    """An archive failed or answered something unusable."""


class Cancelled(MediatorError):
    """The user cancelled the job; what finished stays, the rest resumes on the next run."""


class InsufficientSpace(MediatorError):
    """The destination has too little free space for what a download needs; nothing was fetched."""


class DownloadBusy(MediatorError):
    """Another download is already writing into the same folder."""


class PairingError(MediatorError):
    """A join failed: a wrong, expired or used code, another protocol version, or no answer."""


class NodeRunning(MediatorError):
    """Another node already runs on the same data folder (use it through its local API)."""


class NodeUnreachable(MediatorError):
    """No node answers on this machine's local API (not running, or the token was refused)."""
