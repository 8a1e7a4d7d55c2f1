"""Peers and pairing, as the rest of the app sees them (no zeroconf or Raft here).

Discovery is not trust: a machine seen on the network is only a ``Peer``. It joins the cluster
with a **join code** that a member makes: short enough to read out or type, expiring, single-use.
The code holds a member's pairing address, when it expires and a 48-bit one-time token; the
cluster secret itself never travels in the code (the member hands it over, encrypted with a key
derived from the token, once the newcomer has proved it knows the token).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from mediator_desktop.core.errors import ValidationError

if TYPE_CHECKING:
    from mediator_desktop.core.store import ClusterStatus

#: Wire protocol of pairing and of the replicated commands; nodes that differ cannot join.
#: 2: the Raft traffic is sealed with XChaCha20-Poly1305, not Fernet. 3: messages are pickled with
#: the highest protocol and not zlib-compressed (``raft.transport``), and so are the commands.
#: 4: the ``rename_set`` command (a node of protocol 3 would refuse what the others apply).
#: 5: update tracking: ``record_checks``, ``dismiss_drift`` and the longer ``record_drift``.
#: 6: clinical tables: ``put_table_chunk`` and ``commit_table``.
#: 7: selections too large for one command: ``put_selection_chunk``, ``commit_version``'s ``selection_id``.
#: 8: DOIs: ``publish_version`` takes DataCite metadata and a service, ``record_mint``.
PROTOCOL = 8
CODE_VERSION = 1
#: Crockford's base32: no I, L, O or U, so a code read aloud is typed back right.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READS_AS = {"I": "1", "L": "1", "O": "0"}
TOKEN_BYTES = 6
CODE_BYTES = 1 + 4 + 2 + 4 + TOKEN_BYTES + 1  # version, IPv4, port, expiry, token, check
CODE_DIGITS = (CODE_BYTES * 8 + 4) // 5

PeerStatus = Literal["member", "not member", "other cluster"]


@dataclass(frozen=True, slots=True)
class Peer:
    """A machine running MEDIator that this node has seen advertise itself."""

    node_id: str
    name: str
    raft_address: str  # host:port
    api_port: int
    version: str
    protocol: int
    cluster_id: str
    status: PeerStatus


@dataclass(frozen=True, slots=True)
class JoinCode:
    """What a newcomer types to join: where to ask, until when, and the one-time token."""

    host: str  # IPv4 of the member that made the code
    port: int  # its pairing port
    expires: int  # Unix time, whole minutes
    token: bytes

    @classmethod
    def new(cls, host: str, port: int, ttl: float = 600.0, *, now: float | None = None) -> JoinCode:
        now = time.time() if now is None else now
        expires = int((now + ttl) // 60 * 60 + 60)  # rounded up to the minute
        return cls(host, port, expires, secrets.token_bytes(TOKEN_BYTES))

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    def text(self) -> str:
        """``XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXX``: 29 characters of base32 in groups of five."""
        try:
            ip = ipaddress.IPv4Address(self.host).packed
        except ValueError:
            raise ValidationError(f"join codes carry IPv4 addresses; {self.host!r} is not one") from None
        body = (
            bytes([CODE_VERSION])
            + ip
            + self.port.to_bytes(2, "big")
            + (self.expires // 60).to_bytes(4, "big")
            + self.token
        )
        raw = body + hashlib.sha256(body).digest()[:1]
        digits = _b32(raw)
        return "-".join(digits[i : i + 5] for i in range(0, len(digits), 5))

    @classmethod
    def parse(cls, text: str) -> JoinCode:
        """Read a code as typed: case, spaces, dashes and I/L/O for 1/0 do not matter."""
        cleaned = "".join(_READS_AS.get(ch, ch) for ch in text.upper() if ch not in " -\t\n")
        if any(ch not in _ALPHABET for ch in cleaned) or not cleaned:
            raise ValidationError("a join code has only letters and digits; check what you typed")
        raw = _unb32(cleaned) if len(cleaned) == CODE_DIGITS else b""
        if len(raw) != CODE_BYTES:
            raise ValidationError("this join code is too short or too long; check what you typed")
        body, check = raw[:-1], raw[-1:]
        if hashlib.sha256(body).digest()[:1] != check:
            raise ValidationError(
                "this join code is mistyped (its check digit does not match); type it again"
            )
        if body[0] != CODE_VERSION:
            raise ValidationError(
                f"this join code was made by a different app version (code format {body[0]}); "
                "update both machines to the same version"
            )
        host = str(ipaddress.IPv4Address(body[1:5]))
        port = int.from_bytes(body[5:7], "big")
        expires = int.from_bytes(body[7:11], "big") * 60
        return cls(host, port, expires, body[11:])


def _b32(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    length = (len(data) * 8 + 4) // 5
    return "".join(_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(length)))


def _unb32(text: str) -> bytes:
    number = 0
    for ch in text:
        number = number * 32 + _ALPHABET.index(ch)
    size = len(text) * 5 // 8
    if number >> (size * 8):
        return b""  # more digits than a code has
    return number.to_bytes(size, "big")


def cluster_id_of(secret: str) -> str:
    """What nodes advertise to tell clusters apart: a hash of the secret, never the secret."""
    return hashlib.sha256(b"mediator-cluster-v1:" + secret.encode()).hexdigest()[:16]


class Cluster(Protocol):
    """The cluster part of the service (``service.cluster``); ``raft.membership`` implements it.

    Every method may raise ``ClusterUnavailable`` while the node is starting, joining or leaving.
    """

    def status(self) -> ClusterStatus:
        """Members and their health, from Raft (not from discovery)."""
        ...

    def peers(self) -> list[Peer]:
        """Machines seen on the network, marked member / not member / other cluster."""
        ...

    def address(self) -> str:
        """This node's Raft address (host:port)."""
        ...

    def create_join_code(self, ttl: float = 600.0) -> str:
        """A single-use code (valid ``ttl`` seconds) that lets one machine join this cluster."""
        ...

    def join(self, code: str, *, ready_timeout: float = 30.0) -> None:
        """Join the cluster of the member that made ``code`` (this node's store is replaced)."""
        ...

    def leave(self, *, ready_timeout: float = 30.0) -> None:
        """Leave the cluster and go on alone, with a new secret and an empty store."""
        ...

    def remove_member(self, address: str) -> None:
        """Remove a (dead) member, unless the rest could then not make progress."""
        ...
