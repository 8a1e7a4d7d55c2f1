"""Signed command envelopes: the only way to change the replicated store.

Wire format (version 1)::

    b"MDE1" | Ed25519 signature (64 bytes) | header JSON | b"\\n" | payload

The header is canonical JSON (sorted keys, no spaces, UTF-8) of
``{"op", "args", "author", "seq", "time"}``; the signature covers header, newline and payload.
The payload carries raw bytes (manifest chunks) that JSON would inflate. A whole envelope stays
under ``MAX_COMMAND_BYTES`` so each Raft command is well under 64 KB.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.identity import Identity

MAGIC: Final = b"MDE1"
SIGNATURE_BYTES: Final = 64
MAX_COMMAND_BYTES: Final = 60_000
_KEY_ID = re.compile(r"[0-9a-f]{32}")
#: How deeply arrays and objects may nest in a header. Deeper JSON would make the decoder recurse
#: until the interpreter's limit, at a depth that depends on the caller's stack, not the command.
MAX_DEPTH: Final = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}

#: Operation names are wire protocol: never rename one; add new ones.
OPS: Final = frozenset(
    {
        "register_user",
        "create_set",
        "commit_version",
        "rename_set",
        "delete_set",
        "duplicate_set",
        "set_visibility",
        "grant_editor",
        "revoke_editor",
        "follow",
        "unfollow",
        "put_manifest_chunk",
        "commit_manifest",
        "publish_version",
        "record_drift",
        "record_checks",
        "dismiss_drift",
        "put_table_chunk",
        "commit_table",
        "put_selection_chunk",
        "record_mint",
    }
)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed, not yet verified, command."""

    op: str
    args: dict[str, Any]
    author: str
    seq: int
    time: float
    payload: bytes
    signed: bytes  # what the signature covers: header, newline, payload
    signature: bytes
    digest: str  # sha256 of signature and signed bytes: tells a retry from a replay


class _SealedHere:
    """Envelopes this process signed itself, by their bytes: they need neither parsing nor a
    signature check here.

    Skipping both is deterministic: ``seal`` builds the envelope that ``parse`` would read from
    the same bytes, and a signature made with the author's key is one that verification would
    accept. Bounded by count and bytes; oldest first out.
    """

    def __init__(self, size: int = 65_536, max_bytes: int = 32 << 20) -> None:
        self._envelopes: OrderedDict[bytes, Envelope] = OrderedDict()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, data: bytes, envelope: Envelope) -> None:
        with self._lock:
            if data in self._envelopes:
                self._envelopes.move_to_end(data)
                return
            self._bytes += 2 * len(data)  # the bytes, and the envelope's copy of them
            self._envelopes[data] = envelope
            while len(self._envelopes) > self._size or self._bytes > self._max_bytes:
                self._bytes -= 2 * len(self._envelopes.popitem(last=False)[0])

    def get(self, data: bytes) -> Envelope | None:
        with self._lock:
            return self._envelopes.get(data)

    def take(self, data: bytes) -> Envelope | None:
        """``get``, and forget the envelope: once applied, a retry of it is answered by the state."""
        with self._lock:
            envelope = self._envelopes.pop(data, None)
            if envelope is not None:
                self._bytes -= 2 * len(data)
            return envelope


SEALED_HERE: Final = _SealedHere()


def seal(
    identity: Identity, op: str, args: dict[str, Any], seq: int, when: float, payload: bytes = b""
) -> bytes:
    """Sign a command as ``identity``."""
    try:
        header = canonical_json({"op": op, "args": args, "author": identity.key_id, "seq": seq, "time": when})
        if _too_deep(header):
            raise ValueError(f"its arguments nest more than {MAX_DEPTH} levels deep")
        # What parse() will read from these bytes: the JSON values, not the caller's objects, and
        # only if they encode back to the same header (keys that are not text, say, would not).
        fields = json.loads(header)
        canonical = canonical_json(fields)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"command {op} cannot be written as canonical JSON: {exc}") from None
    if canonical != header:
        raise ValidationError(f"command {op} cannot be written as canonical JSON: use text keys only")
    checked = _fields(fields)  # before anything is signed
    signed = header + b"\n" + payload
    signature = identity.sign(signed)
    data = MAGIC + signature + signed
    if len(data) > MAX_COMMAND_BYTES:
        raise ValidationError(
            f"command {op} is {len(data)} bytes; at most {MAX_COMMAND_BYTES} fit in one replicated command"
        )
    SEALED_HERE.add(data, Envelope(*checked, payload, signed, signature, _digest(signature, signed)))
    return data


def _too_deep(header: bytes) -> bool:
    """Whether arrays and objects nest more than ``MAX_DEPTH`` deep (outside strings)."""
    if header.count(b"[") + header.count(b"{") <= MAX_DEPTH:
        return False  # the common case, decided without a scan
    depth = deepest = 0
    for byte in _NOT_BRACKET.sub(b"", _STRING.sub(b"", header)):
        depth += _DEPTH_STEP[byte]
        deepest = max(deepest, depth)
    return deepest > MAX_DEPTH


def _digest(signature: bytes, signed: bytes) -> str:
    h = hashlib.sha256(signature)
    h.update(signed)
    return h.hexdigest()


def _fields(header: Any) -> tuple[str, dict[str, Any], str, int, float]:
    """A decoded header's op, args, author, seq and time, once checked."""
    if not isinstance(header, dict) or set(header) != {"op", "args", "author", "seq", "time"}:
        raise ValidationError("command header must hold exactly op, args, author, seq and time")
    op, args, author, seq, when = (header[k] for k in ("op", "args", "author", "seq", "time"))
    if not isinstance(op, str) or op not in OPS:
        raise ValidationError(f"unknown operation {op!r}")
    if not isinstance(args, dict):
        raise ValidationError("command args must be an object")
    if not isinstance(author, str) or not _KEY_ID.fullmatch(author):
        raise ValidationError("command author is not a key id")
    if type(seq) is not int or seq <= 0:
        raise ValidationError("command seq must be a positive whole number")
    if type(when) not in (int, float) or not math.isfinite(when) or when < 0:
        raise ValidationError("command time must be a finite number of seconds")
    return op, args, author, seq, float(when)


def parse(data: object) -> Envelope:
    """Parse an envelope; every malformation is a ``ValidationError``. Does not check the signature."""
    if not isinstance(data, bytes):
        raise ValidationError(f"a command is bytes, not {type(data).__name__}")
    if len(data) > MAX_COMMAND_BYTES:
        raise ValidationError(
            f"command of {len(data)} bytes refused: at most {MAX_COMMAND_BYTES} are allowed"
        )
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + SIGNATURE_BYTES + 2:
        raise ValidationError("not a signed command (bad magic or too short)")
    signature = data[len(MAGIC) : len(MAGIC) + SIGNATURE_BYTES]
    signed = data[len(MAGIC) + SIGNATURE_BYTES :]
    header_bytes, newline, payload = signed.partition(b"\n")
    if not newline:
        raise ValidationError("command header is not terminated")
    if _too_deep(header_bytes):
        raise ValidationError(f"command header nests more than {MAX_DEPTH} levels deep")
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"command header is not JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"op", "args", "author", "seq", "time"}:
        raise ValidationError("command header must hold exactly op, args, author, seq and time")
    try:
        canonical = canonical_json(header)
    except ValueError:
        raise ValidationError("command header holds a number that is not finite") from None
    if canonical != header_bytes:
        raise ValidationError("command header is not in canonical form")
    return Envelope(*_fields(header), payload, signed, signature, _digest(signature, signed))


class SeqClock:
    """Per-author sequence numbers: nanoseconds since the epoch, strictly increasing in this process,
    and above whatever the store has seen from the author (so a clock set back cannot stall us)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, floor: int = 0) -> int:
        with self._lock:
            self._last = max(self._last + 1, floor + 1, time.time_ns())
            return self._last
