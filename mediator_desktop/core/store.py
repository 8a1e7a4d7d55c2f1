"""The ``Store`` protocol: what the service needs from a replicated store (raft/ implements it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mediator_desktop.core.errors import ImmutableError, ReplayError, error_of
from mediator_desktop.core.events import EventBus
from mediator_desktop.core.state import Result, StoreState

__all__ = ["ClusterStatus", "ImmutableError", "Member", "ReplayError", "Store", "unwrap"]


def unwrap(result: Result) -> Any:
    """The value of an applied command, or its error raised as the matching typed exception."""
    if result[0] == "ok":
        return result[1]
    _, code, message, extra = result
    raise error_of(code, message, extra)


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
        """Replicate one signed command; returns its result (``unwrap`` gives the value or raises
        the typed error).

        Raises ``ClusterUnavailable`` when no quorum answers within ``timeout`` seconds.
        """
        ...

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Any]:
        """Replicate commands in order, pipelined; results in the same order, as ``submit``."""
        ...

    def status(self) -> ClusterStatus: ...

    def close(self) -> None: ...
