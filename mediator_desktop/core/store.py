"""The ``Store`` protocol: what the service needs from a replicated store (raft/ implements it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediator_desktop.core.errors import (
    ClusterUnavailable,
    ImmutableError,
    OutcomeUnknown,
    ReplayError,
    error_of,
)
from mediator_desktop.core.events import EventBus
from mediator_desktop.core.state import Result, StoreState

__all__ = [
    "ClusterStatus",
    "ImmutableError",
    "Member",
    "ReplayError",
    "Store",
    "submit_settled",
    "submit_upload",
    "unwrap",
]

log = logging.getLogger(__name__)


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

        Raises ``ClusterUnavailable`` when no quorum answers within ``timeout`` seconds and nothing
        was written, ``OutcomeUnknown`` (a ``ClusterUnavailable``) when the command went out and
        may have been applied: sending the same envelope again answers with what happened.
        """
        ...

    def submit_many(self, commands: list[bytes], timeout: float | None = None) -> list[Any]:
        """Replicate commands in order, pipelined; results in the same order, as ``submit``."""
        ...

    def status(self) -> ClusterStatus: ...

    def close(self) -> None: ...


def submit_settled(store: Store, commands: list[bytes], timeout: float | None = None) -> list[Result]:
    """``store.submit_many``, and when its outcome is unknown, what really happened.

    A command that went out and got no answer in time may have been applied. The state answers a
    repeated envelope with its first result (and applies it once), so the same signed commands are
    sent again, for up to ``timeout`` seconds more, as soon as the cluster answers: the caller learns
    whether they were applied (and with what result) instead of being told "unavailable".

    Raises:
        OutcomeUnknown: the cluster did not answer the second time either: the commands may have
            been applied, or may still be.
        ClusterUnavailable: nothing was written (no command went out).
    """
    try:
        return list(store.submit_many(commands, timeout))
    except OutcomeUnknown as exc:
        log.warning("a change got no answer in time (%s); sending it again to learn what happened", exc)
    try:
        return list(store.submit_many(commands, timeout))
    except ClusterUnavailable:
        try:
            members = store.status().members
            reachable = f" ({sum(m.connected for m in members)} of {len(members)} cluster members reachable)"
        except ClusterUnavailable:  # the node is switching stores
            reachable = ""
        raise OutcomeUnknown(
            "unknown: the change may have been applied. It went out to the cluster and got no answer, "
            f"not even when it was sent again{reachable}; it may also still be applied once enough "
            "members are back. Look whether it is there before you make it again."
        ) from None


def submit_upload(store: Store, seal: Callable[[], list[bytes]], timeout: float | None = None) -> list[Any]:
    """Submit an upload in order (chunks, then a commit), restarting it once from chunk 0.

    The store retries a batch that got lost (a leader change, a forward that never arrived) while
    the next batch may already be applied: chunk k+1 then lands before chunk k, and the state
    refuses it and what follows as out of order. That is a conflict of the upload with itself, not
    with anyone else's change, so the whole upload is sent once more, freshly sealed (the state
    would answer the same envelopes with their first answers) from chunk 0, which starts it over.

    Each attempt is ``submit_settled``: an upload whose outcome is unknown is sent again as it was.

    Args:
        seal: seals the upload's commands anew each time it is called.
        timeout: for each attempt, as ``Store.submit_many``.

    Returns:
        The values of the commands, in order.

    Raises:
        ConflictError: the second attempt was out of order too; other typed errors as ``unwrap``;
            ``OutcomeUnknown`` and ``ClusterUnavailable`` as ``submit_settled``.
    """
    results = submit_settled(store, seal(), timeout)
    first = next((r for r in results if r[0] == "err"), None)
    if first is not None and first[1] == "conflict":
        log.warning("an upload arrived out of order (%s); sending it again from its first chunk", first[2])
        results = submit_settled(store, seal(), timeout)
    return [unwrap(r) for r in results]
