"""The ``Store`` protocol: what the service needs from a replicated store (raft/ implements it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mediator_desktop.core.errors import (
    ConflictError,
    IntegrityError,
    MediatorError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from mediator_desktop.core.events import EventBus
from mediator_desktop.core.state import Result, StoreState


class ReplayError(PermissionDenied):
    """A command whose sequence number was used before, or that is too old."""


class ImmutableError(PermissionDenied):
    """An attempt to change something published."""


_ERRORS: dict[str, type[MediatorError]] = {
    "validation": ValidationError,
    "permission": PermissionDenied,
    "conflict": ConflictError,
    "not_found": NotFound,
    "integrity": IntegrityError,
    "replay": ReplayError,
    "immutable": ImmutableError,
}


def unwrap(result: Result) -> Any:
    """The value of an applied command, or its error raised as the matching typed exception."""
    if result[0] == "ok":
        return result[1]
    _, code, message, extra = result
    error = _ERRORS.get(code, MediatorError)
    if error is ConflictError:
        raise ConflictError(message, current_head=extra.get("current_head"))
    raise error(message)


@dataclass(frozen=True, slots=True)
class Member:
    address: str
    is_self: bool
    connected: bool
    is_leader: bool


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    self_address: str
    leader: str | None
    has_quorum: bool
    term: int
    commit_index: int
    last_applied: int
    members: tuple[Member, ...] = field(default=())


class Store(Protocol):
    """A replicated store of replica sets. Reads are local and never block on the network."""

    events: EventBus

    @property
    def state(self) -> StoreState:
        """The local replica of the state (read it, never change it)."""
        ...

    def submit(self, command: bytes, timeout: float | None = None) -> Any:
        """Replicate one signed command; returns its value or raises its typed error.

        Raises ``ClusterUnavailable`` when no quorum answers within ``timeout`` seconds.
        """
        ...

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Any]:
        """Replicate commands in order, pipelined; values in the same order. Errors as ``submit``."""
        ...

    def status(self) -> ClusterStatus: ...

    def close(self) -> None: ...
