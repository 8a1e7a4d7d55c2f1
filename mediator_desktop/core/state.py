"""The replicated state machine: users, replica sets, versions, manifests, drift, publications,
clinical tables.

``StoreState.apply`` runs on every node, in log order, and must give the same answer everywhere:
it never reads the clock, randomness or files. It verifies each command's signature, replay
window, permission, preconditions and immutability, then changes the state or returns an error.
Results are plain tuples: ``("ok", value)`` or ``("err", code, message, extra)``.

Readers on other threads see consistent values: every change replaces immutable values (frozen
dataclasses, tuples) in dicts, or appends to a list, each an atomic step under the GIL.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import zstandard

from mediator_desktop.core import events
from mediator_desktop.core.commands import Envelope, parse
from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.identity import key_id_of, verify
from mediator_desktop.core.manifest import MAX_CHUNK_BYTES, MAX_MANIFEST_BYTES
from mediator_desktop.core.publishing import DoiMetadata
from mediator_desktop.core.replica import (
    MAX_COLUMN_NAME,
    MAX_NAME,
    MAX_TABLE_BLOB_BYTES,
    MAX_TABLE_COLUMNS,
    MAX_TEXT,
    PublishedRecord,
    ReplicaSet,
    TableVersion,
    Version,
    Visibility,
    check_table_name,
)
from mediator_desktop.core.selection import Selection

log = logging.getLogger(__name__)

Result = tuple[Any, ...]

#: How far back (ns) an author's sequence number may lie behind the newest one seen from them.
REPLAY_WINDOW_NS: Final = 600 * 10**9
#: Results kept per author to answer a retried command with its first answer.
REMEMBERED_RESULTS: Final = 4096
MAX_MANIFEST_CHUNKS: Final = MAX_MANIFEST_BYTES // MAX_CHUNK_BYTES + 1
#: What one chunk may unpack to: 340 times its size, where manifests pack about 7 to 1. More is a
#: decompression bomb, which would hold every node's Raft thread (and memory) for seconds.
MAX_UNPACKED_PER_CHUNK: Final = 16 << 20
#: The largest zstd window an upload may ask the nodes to hold (level 19 uses 8 MiB; we write 3).
MAX_WINDOW_BYTES: Final = 8 << 20
_SLICE: Final = 512
#: Sets one ``record_checks`` command may report on (each entry is small: the command stays far
#: under 64 KB).
MAX_CHECKS_PER_COMMAND: Final = 200
MAX_TABLE_CHUNKS: Final = MAX_TABLE_BLOB_BYTES // MAX_CHUNK_BYTES + 1
#: Table uploads one author may have under way; starting another drops their oldest, so chunks
#: never committed cannot pile up in every member's memory.
MAX_TABLE_UPLOADS: Final = 4
#: A selection too large for one command (a manifest file of thousands of series imported) goes
#: in chunks (``put_selection_chunk``), at most this large once decompressed.
MAX_SELECTION_BYTES: Final = 64 << 20
MAX_SELECTION_CHUNKS: Final = 256
STATE_FORMAT: Final = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SET_ID = re.compile(r"[0-9a-f]{32}")


class Rejected(Exception):
    """A command refused by ``apply``; becomes an ``("err", ...)`` result."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True, slots=True)
class User:
    key_id: str
    public_key: bytes
    display_name: str
    registered: float


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """What a version's selection resolves to in the archives now, where a check found it changed.

    Attributes:
        manifest_id: the leaves added and revised since the pinned version, as the archives hold
            them now (a manifest in the store: the record grows with the changes, not the set).
        removed_id: the pinned leaves the archives no longer hold (a manifest; "" for none).
            The pinned manifest with these two applied is what the selection resolves to now.
        summary: one line for people: ``+12 series (2.1 GB), 3 revised, 1 removed``.
        checked, by: when and by whom the change was found.
        state: the archive state checked against (``IDC v25``, ``TCIA as of 2026-12-06``).
        notes: what else the user should know (pinned versions still downloadable...).
        added, revised, removed: leaves, for badges and scripts.
        dismissed: users who declined this update (it stays silent for them).
    """

    set_id: str
    version: int
    manifest_id: str
    summary: str
    checked: float
    by: str
    state: str = ""
    notes: tuple[str, ...] = ()
    added: int = 0
    revised: int = 0
    removed: int = 0
    dismissed: frozenset[str] = frozenset()
    removed_id: str = ""

    @property
    def empty(self) -> bool:
        """The archives hold the pinned data again: no update."""
        return not (self.added or self.revised or self.removed)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """The last update check of a set (one per set, whatever its outcome).

    Attributes:
        version: the version checked.
        time, by: when the last check ended and on whose node.
        error: why it failed, or "" when it worked.
        ok_time: when a check of ``version`` last worked (0: never); what the archive said then
            is the drift record, or the pinned manifest when there is none.
    """

    version: int
    time: float
    by: str
    error: str = ""
    ok_time: float = 0.0


@dataclass
class _AuthorLog:
    """Replay protection for one author: recent seqs with their results; older ones are refused."""

    newest: int = 0
    floor: int = 0  # seqs at or below were forgotten: refused as too old
    recent: dict[int, tuple[str, Result]] = field(default_factory=dict)


@dataclass
class _Upload:
    total: int
    chunks: list[bytes] = field(default_factory=list)


def _text(args: dict[str, Any], name: str, limit: int, *, empty_ok: bool = False) -> str:
    value = args.get(name, "" if empty_ok else None)
    if not isinstance(value, str) or (not empty_ok and not value.strip()) or len(value) > limit:
        raise Rejected("validation", f"{name} must be text of 1 to {limit} characters")
    return value


def _int(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if type(value) is not int or value < 0:
        raise Rejected("validation", f"{name} must be a whole number")
    return value


def _opt_int(args: dict[str, Any], name: str) -> int | None:
    return None if args.get(name) is None else _int(args, name)


def _set_id(args: dict[str, Any], name: str = "set_id") -> str:
    value = args.get(name)
    if not isinstance(value, str) or not _SET_ID.fullmatch(value):
        raise Rejected("validation", f"{name} must be a replica set id (32 hex digits)")
    return value


def _manifest_id(args: dict[str, Any]) -> str:
    value = args.get("manifest_id")
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise Rejected("validation", "manifest_id must be a sha256 in hex")
    return value


def _table_id(args: dict[str, Any]) -> str:
    value = args.get("table_id")
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise Rejected("validation", "table_id must be a sha256 in hex")
    return value


def _columns(args: dict[str, Any], key_column: str) -> tuple[str, ...]:
    columns = args.get("columns")
    if (
        not isinstance(columns, list)
        or not 1 <= len(columns) <= MAX_TABLE_COLUMNS
        or not all(isinstance(c, str) and c.strip() and len(c) <= MAX_COLUMN_NAME for c in columns)
    ):
        raise Rejected(
            "validation",
            f"columns must be a list of 1 to {MAX_TABLE_COLUMNS} names of 1 to {MAX_COLUMN_NAME} characters",
        )
    if len(set(columns)) != len(columns):
        raise Rejected("validation", "column names repeat: every column needs a name of its own")
    if key_column not in columns:
        raise Rejected("validation", f"the key column {key_column!r} is not one of the columns")
    return tuple(columns)


class StoreState:
    """All replicated data of one cluster."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.sets: dict[str, ReplicaSet] = {}
        self.versions: dict[str, list[Version]] = {}
        self.manifests: dict[str, tuple[bytes, ...]] = {}
        self.published: dict[tuple[str, int], PublishedRecord] = {}
        self.drift: dict[tuple[str, int], DriftRecord] = {}
        self.checks: dict[str, CheckRecord] = {}
        #: Clinical tables by name: their versions, oldest first (version n at index n - 1).
        self.tables: dict[str, list[TableVersion]] = {}
        #: The stored form of each table version (Parquet bytes), in chunks, by table id.
        self.table_blobs: dict[str, tuple[bytes, ...]] = {}
        self.applied = 0
        self._authors: dict[str, _AuthorLog] = {}
        self._uploads: dict[tuple[str, str], _Upload] = {}
        self._table_uploads: dict[tuple[str, str], _Upload] = {}
        self._selection_uploads: dict[tuple[str, str], _Upload] = {}
        # Transient, never dumped: running hashes of uploads, rebuilt from chunks when missing.
        self._hashing: dict[tuple[str, str], tuple[Any, Any, int]] = {}
        #: Called with (kind, details) after each change, on the applying thread.
        self.listener: Callable[[events.Event], None] | None = None

    # -- dump ----------------------------------------------------------------------------------
    def to_dump(self) -> dict[str, Any]:
        """The durable state (no copies: the caller serialises it at once, pysyncobj in a fork)."""
        return {
            "format": STATE_FORMAT,
            "users": self.users,
            "sets": self.sets,
            "versions": self.versions,
            "manifests": self.manifests,
            "published": self.published,
            "drift": self.drift,
            "checks": self.checks,
            "tables": self.tables,
            "table_blobs": self.table_blobs,
            "applied": self.applied,
            "authors": self._authors,
            "uploads": self._uploads,
            "table_uploads": self._table_uploads,
            "selection_uploads": self._selection_uploads,
        }

    @classmethod
    def from_dump(cls, data: dict[str, Any]) -> StoreState:
        if data.get("format") != STATE_FORMAT:
            raise ValidationError(
                f"store dump has format {data.get('format')!r}; this app reads format {STATE_FORMAT}"
            )
        state = cls()
        state.users = data["users"]
        state.sets = data["sets"]
        state.versions = data["versions"]
        state.manifests = data["manifests"]
        state.published = data["published"]
        state.drift = data["drift"]
        state.checks = data.get("checks", {})
        state.tables = data.get("tables", {})  # dumps of protocol 5 and older have none
        state.table_blobs = data.get("table_blobs", {})
        state.applied = data["applied"]
        state._authors = data["authors"]
        state._uploads = data["uploads"]
        state._table_uploads = data.get("table_uploads", {})
        state._selection_uploads = data.get("selection_uploads", {})  # protocol 6 and older: none
        return state

    def newest_seq(self, key_id: str) -> int:
        log = self._authors.get(key_id)
        return log.newest if log else 0

    # -- apply ---------------------------------------------------------------------------------
    def apply(self, command: bytes, sealed_here: Callable[[bytes], Envelope | None] | None = None) -> Result:
        """Apply one replicated command. Called on the raft thread, on every node, in log order.

        Args:
            command: the envelope bytes.
            sealed_here: optional lookup of envelopes this process signed itself, by their bytes
                (``commands.SEALED_HERE.get``): what it returns is what ``parse`` would, with a
                valid signature, so skipping both is deterministic.
        """
        self.applied += 1
        envelope = sealed_here(command) if sealed_here is not None else None
        trusted = envelope is not None
        if envelope is None:
            try:
                envelope = parse(command)
            except ValidationError as exc:
                return ("err", "validation", str(exc), {})
        try:
            author = self._authenticate(envelope, trusted)
            seen = self._check_replay(envelope)
            if seen is not None:
                return seen
        except Rejected as exc:
            return ("err", exc.code, exc.message, exc.extra)
        try:
            value = getattr(self, f"_op_{envelope.op}")(envelope, author)
            result: Result = ("ok", value)
        except Rejected as exc:
            result = ("err", exc.code, exc.message, exc.extra)
        except ValidationError as exc:  # a record's own checks (a name, a pointer) refused an argument
            result = ("err", "validation", f"{envelope.op}: {exc}", {})
        except MemoryError:
            raise  # depends on the machine, not the command: answering would split the nodes
        except Exception as exc:
            # A defect of ours, hit by some argument. The same code fails the same way on every
            # node, so refusing is deterministic; raising would stop the log here on every node.
            log.error("refused %s of %s after an internal error", envelope.op, envelope.author, exc_info=True)
            result = (
                "err",
                "validation",
                f"{envelope.op} could not be applied ({type(exc).__name__}: {exc}); "
                "the command was refused. Please report this.",
                {},
            )
        self._remember(envelope, result)
        return result

    def _authenticate(self, envelope: Envelope, trusted: bool) -> User | None:
        if envelope.op == "register_user":
            key = envelope.args.get("public_key")
            if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{64}", key):
                raise Rejected("validation", "public_key must be 32 bytes in hex")
            public_key = bytes.fromhex(key)
            if key_id_of(public_key) != envelope.author:
                raise Rejected("permission", "the author's key id does not match the public key")
            user = None
        else:
            user = self.users.get(envelope.author)
            if user is None:
                raise Rejected(
                    "permission", f"unknown author {envelope.author}: register the user before anything else"
                )
            public_key = user.public_key
        if not (trusted or verify(public_key, envelope.signature, envelope.signed)):
            raise Rejected("permission", "the signature does not match the command: forged or damaged")
        return user

    def _check_replay(self, envelope: Envelope) -> Result | None:
        log = self._authors.get(envelope.author)
        if log is None:
            return None
        earlier = log.recent.get(envelope.seq)
        if earlier is not None:
            digest, result = earlier
            if digest == envelope.digest:
                return result  # a retry of the same command: the same answer, applied once
            raise Rejected("replay", f"sequence number {envelope.seq} of {envelope.author} was used before")
        if envelope.seq <= max(log.floor, log.newest - REPLAY_WINDOW_NS):
            raise Rejected(
                "replay", f"command of {envelope.author} is too old (replayed or from a stale clock)"
            )
        return None

    def _remember(self, envelope: Envelope, result: Result) -> None:
        log = self._authors.get(envelope.author)
        if log is None:
            if result[0] != "ok":
                return  # an unregistered author leaves no trace
            log = self._authors[envelope.author] = _AuthorLog()
        log.recent[envelope.seq] = (envelope.digest, result)
        log.newest = max(log.newest, envelope.seq)
        if len(log.recent) >= 2 * REMEMBERED_RESULTS:  # prune now and then, not on every command
            ordered = sorted(log.recent)
            keep = [s for s in ordered[-REMEMBERED_RESULTS:] if s > log.newest - REPLAY_WINDOW_NS]
            log.floor = max(log.floor, ordered[len(ordered) - len(keep) - 1])
            log.recent = {s: log.recent[s] for s in keep}

    def _emit(self, event: events.Event) -> None:
        if self.listener is not None:
            self.listener(event)

    # -- helpers -------------------------------------------------------------------------------
    def _set(self, set_id: str, reader: str) -> ReplicaSet:
        rs = self.sets.get(set_id)
        if rs is None or not rs.can_read(reader):
            raise Rejected("not_found", f"replica set {set_id} does not exist or is not shared with you")
        return rs

    def _owned(self, set_id: str, author: str, action: str) -> ReplicaSet:
        rs = self._set(set_id, author)
        if rs.owner != author:
            raise Rejected("permission", f"only the owner of {rs.name!r} may {action}")
        return rs

    def _version(self, set_id: str, number: int) -> Version:
        versions = self.versions.get(set_id, [])
        if not 1 <= number <= len(versions):
            raise Rejected("not_found", f"replica set {set_id} has no version {number}")
        return versions[number - 1]

    def _put_set(self, rs: ReplicaSet) -> None:
        self.sets[rs.id] = rs
        self._emit(events.SetChanged(rs.id))

    # -- operations ----------------------------------------------------------------------------
    def _op_register_user(self, e: Envelope, user: User | None) -> dict[str, Any]:
        name = _text(e.args, "display_name", MAX_NAME)
        existing = self.users.get(e.author)
        self.users[e.author] = User(
            e.author, bytes.fromhex(e.args["public_key"]), name, existing.registered if existing else e.time
        )
        if existing is None or existing.display_name != name:  # new, or a new name to show
            self._emit(events.UserRegistered(e.author))
        return {"key_id": e.author}

    def _op_create_set(self, e: Envelope, user: User) -> dict[str, Any]:
        set_id = _set_id(e.args)
        if set_id in self.sets:
            raise Rejected("conflict", f"replica set {set_id} exists already")
        try:
            visibility = Visibility(e.args.get("visibility", "private"))
        except ValueError:
            raise Rejected("validation", "visibility must be private, cluster or public") from None
        try:
            rs = ReplicaSet(
                set_id,
                _text(e.args, "name", MAX_NAME),
                owner=e.author,
                description=_text(e.args, "description", MAX_TEXT, empty_ok=True),
                visibility=visibility,
            )
        except ValidationError as exc:
            raise Rejected("validation", str(exc)) from None
        self.versions[set_id] = []
        self._put_set(rs)
        return {"set_id": set_id}

    def _op_commit_version(self, e: Envelope, user: User) -> dict[str, Any]:
        set_id = _set_id(e.args)
        rs = self._set(set_id, e.author)
        if not rs.can_edit(e.author):
            raise Rejected("permission", f"you are not an editor of {rs.name!r}; ask its owner")
        expected = _opt_int(e.args, "expected_head")
        if expected != rs.head:
            raise Rejected(
                "conflict",
                f"{rs.name!r} is at version {rs.head}, not {expected}: someone committed meanwhile; "
                "look at their change, then commit again",
                current_head=rs.head,
            )
        manifest_id = _manifest_id(e.args)
        if manifest_id not in self.manifests:
            raise Rejected("not_found", f"manifest {manifest_id[:12]} is not in the store; upload it first")
        try:
            selection = self._same_as_parent(set_id, rs.head, Selection.from_json(self._selection_arg(e)))
            number = (rs.head or 0) + 1
            version = Version(
                number,
                rs.head,
                e.author,
                e.time,
                _text(e.args, "message", MAX_TEXT, empty_ok=True),
                selection,
                manifest_id,
            )
        except ValidationError as exc:
            raise Rejected("validation", str(exc)) from None
        self.versions[set_id].append(version)
        self._put_set(replace(rs, head=number))
        self._emit(events.VersionCommitted(set_id, number))
        return {"set_id": set_id, "version": number}

    def _same_as_parent(self, set_id: str, head: int | None, selection: Selection) -> Selection:
        """The parent version's selection object when ``selection`` equals it, else ``selection``.

        A version often keeps its parent's rules (a commit after the archives changed, a new
        manifest for the same cohort): the versions then share one selection instead of holding a
        copy each. Equal selections are interchangeable (immutable, compared by value), so this
        changes nothing but memory, and the objects the garbage collector walks through again
        and again as the history grows (a Selection, its frozenset, rules and pointers per version).
        """
        versions = self.versions.get(set_id, [])
        if head is not None and 1 <= head <= len(versions):
            kept = versions[head - 1].selection
            if kept == selection:
                return kept
        return selection

    def _selection_arg(self, e: Envelope) -> Any:
        """A version's selection: in the command, or (``selection_id``) from the chunks its author
        uploaded before (zstd-compressed canonical JSON whose SHA-256 is the id)."""
        selection_id = e.args.get("selection_id")
        if selection_id is None:
            return e.args.get("selection")
        if not isinstance(selection_id, str) or not re.fullmatch(r"[0-9a-f]{64}", selection_id):
            raise Rejected("validation", "selection_id must be 64 lowercase hex digits")
        key = (e.author, selection_id)
        upload = self._selection_uploads.pop(key, None)
        if upload is None or len(upload.chunks) != upload.total:
            have = len(upload.chunks) if upload else 0
            raise Rejected("conflict", f"selection {selection_id[:12]} is incomplete ({have} chunks arrived)")
        try:
            unpacker = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)
            with unpacker.stream_reader(io.BytesIO(b"".join(upload.chunks))) as reader:
                data = reader.read(MAX_SELECTION_BYTES + 1)
        except zstandard.ZstdError as exc:
            raise Rejected("validation", f"selection {selection_id[:12]} is damaged: {exc}") from None
        if len(data) > MAX_SELECTION_BYTES or hashlib.sha256(data).hexdigest() != selection_id:
            raise Rejected(
                "validation", f"selection {selection_id[:12]} does not match its id (or is too large)"
            )
        try:
            return json.loads(data)
        except ValueError:
            raise Rejected("validation", f"selection {selection_id[:12]} is not JSON") from None

    def _op_put_selection_chunk(self, e: Envelope, user: User) -> dict[str, Any]:
        """One piece of a selection too large for ``commit_version``, which names it by its id."""
        selection_id = e.args.get("selection_id")
        if not isinstance(selection_id, str) or not re.fullmatch(r"[0-9a-f]{64}", selection_id):
            raise Rejected("validation", "selection_id must be 64 lowercase hex digits")
        index, total = _int(e.args, "index"), _int(e.args, "total")
        if not 1 <= total <= MAX_SELECTION_CHUNKS or index >= total:
            raise Rejected("validation", f"chunk {index} of {total} is out of range")
        if not e.payload or len(e.payload) > MAX_CHUNK_BYTES:
            raise Rejected("validation", f"a selection chunk holds 1 to {MAX_CHUNK_BYTES} bytes")
        key = (e.author, selection_id)
        if index == 0:
            self._selection_uploads.pop(key, None)
            mine = [k for k in self._selection_uploads if k[0] == e.author]
            for stale in mine[: max(0, len(mine) - MAX_TABLE_UPLOADS + 1)]:
                del self._selection_uploads[stale]
            self._selection_uploads[key] = _Upload(total)
        upload = self._selection_uploads.get(key)
        if upload is None or upload.total != total or index != len(upload.chunks):
            expected = len(upload.chunks) if upload else 0
            raise Rejected(
                "conflict", f"expected chunk {expected} of selection {selection_id[:12]}, got {index}"
            )
        upload.chunks.append(e.payload)
        return {"received": index + 1}

    def _op_rename_set(self, e: Envelope, user: User) -> dict[str, Any]:
        rs = self._set(_set_id(e.args), e.author)
        if not rs.can_edit(e.author):
            raise Rejected("permission", f"you are not an editor of {rs.name!r}; ask its owner")
        name = _text(e.args, "name", MAX_NAME)
        description = (
            _text(e.args, "description", MAX_TEXT, empty_ok=True)
            if "description" in e.args
            else rs.description
        )
        self._put_set(replace(rs, name=name, description=description))
        return {"name": name}

    def _op_delete_set(self, e: Envelope, user: User) -> dict[str, Any]:
        set_id = _set_id(e.args)
        rs = self._owned(set_id, e.author, "delete it")
        if rs.published:
            raise Rejected(
                "permission",
                f"{rs.name!r} has published versions, which can never be deleted; make it private to hide it",
            )
        del self.sets[set_id]
        self.versions.pop(set_id, None)
        self._emit(events.SetDeleted(set_id))
        return {"set_id": set_id}

    def _op_duplicate_set(self, e: Envelope, user: User) -> dict[str, Any]:
        source = self._set(_set_id(e.args, "source_id"), e.author)
        if source.visibility is not Visibility.PUBLIC and not source.can_edit(e.author):
            raise Rejected(
                "permission", f"{source.name!r} is not public: only its owner and editors may fork it"
            )
        number = _opt_int(e.args, "version") or source.head
        if number is None:
            raise Rejected("validation", f"{source.name!r} has no version to fork yet")
        original = self._version(source.id, number)
        new_id = _set_id(e.args)
        if new_id in self.sets:
            raise Rejected("conflict", f"replica set {new_id} exists already")
        name = _text(e.args, "name", MAX_NAME, empty_ok=True)
        if not name.strip():  # no name (or a blank one): the source's, marked as a fork
            name = f"{source.name} (fork)"[:MAX_NAME]
        rs = ReplicaSet(
            new_id,
            name,
            owner=e.author,
            description=source.description,
            forked_from=(source.id, number),
            head=1,
        )
        first = replace(
            original,
            number=1,
            parent=None,
            author=e.author,
            time=e.time,
            message=f"forked from {source.name!r} version {number}",
        )
        self.versions[new_id] = [first]
        self._put_set(rs)
        self._emit(events.VersionCommitted(new_id, 1))
        return {"set_id": new_id, "version": 1}

    def _op_set_visibility(self, e: Envelope, user: User) -> dict[str, Any]:
        rs = self._owned(_set_id(e.args), e.author, "change who can see it")
        try:
            visibility = Visibility(str(e.args.get("visibility")))
        except ValueError:
            raise Rejected("validation", "visibility must be private, cluster or public") from None
        self._put_set(replace(rs, visibility=visibility))
        return {"visibility": visibility.value}

    def _editor_change(self, e: Envelope, grant: bool) -> dict[str, Any]:
        rs = self._owned(_set_id(e.args), e.author, "manage its editors")
        key_id = e.args.get("key_id")
        if not isinstance(key_id, str) or key_id not in self.users:
            raise Rejected("not_found", f"no registered user has key id {key_id!r}")
        editors = rs.editors | {key_id} if grant else rs.editors - {key_id}
        self._put_set(replace(rs, editors=frozenset(editors)))
        return {"editors": sorted(editors)}

    def _op_grant_editor(self, e: Envelope, user: User) -> dict[str, Any]:
        return self._editor_change(e, True)

    def _op_revoke_editor(self, e: Envelope, user: User) -> dict[str, Any]:
        return self._editor_change(e, False)

    def _op_follow(self, e: Envelope, user: User) -> dict[str, Any]:
        rs = self._set(_set_id(e.args), e.author)
        self._put_set(replace(rs, followers=rs.followers | {e.author}))
        return {"following": True}

    def _op_unfollow(self, e: Envelope, user: User) -> dict[str, Any]:
        rs = self._set(_set_id(e.args), e.author)
        self._put_set(replace(rs, followers=rs.followers - {e.author}))
        return {"following": False}

    def _op_put_manifest_chunk(self, e: Envelope, user: User) -> dict[str, Any]:
        manifest_id = _manifest_id(e.args)
        index, total = _int(e.args, "index"), _int(e.args, "total")
        if not 1 <= total <= MAX_MANIFEST_CHUNKS or index >= total:
            raise Rejected("validation", f"chunk {index} of {total} is out of range")
        if not e.payload or len(e.payload) > MAX_CHUNK_BYTES:
            raise Rejected("validation", f"a manifest chunk holds 1 to {MAX_CHUNK_BYTES} bytes")
        key = (e.author, manifest_id)
        if index == 0:
            self._drop_upload(key)
            self._uploads[key] = _Upload(total)
        upload = self._uploads.get(key)
        if upload is None or upload.total != total or index != len(upload.chunks):
            expected = len(upload.chunks) if upload else 0
            raise Rejected(
                "conflict", f"expected chunk {expected} of manifest {manifest_id[:12]}, got {index}"
            )
        self._feed(key, upload, e.payload)
        upload.chunks.append(e.payload)
        return {"received": index + 1}

    def _progress(self, key: tuple[str, str], upload: _Upload) -> tuple[Any, Any, int]:
        """The running (decompressor, hash, size) of an upload; rebuilt from its chunks after a restart."""
        progress = self._hashing.get(key)
        if progress is None:
            unpacker = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)
            progress = (unpacker.decompressobj(), hashlib.sha256(), 0)
            for chunk in upload.chunks:
                progress = self._advance(key, progress, chunk)
            self._hashing[key] = progress
        return progress

    def _advance(
        self, key: tuple[str, str], progress: tuple[Any, Any, int], chunk: bytes
    ) -> tuple[Any, Any, int]:
        decompressor, hasher, size = progress
        unpacked = 0
        try:
            # In slices: zstd lets a few bytes stand for 128 KiB, so one call on a whole chunk could
            # unpack gigabytes before any check ran. A slice unpacks to at most about 16 MiB.
            for start in range(0, len(chunk), _SLICE):
                piece = decompressor.decompress(chunk[start : start + _SLICE])
                unpacked += len(piece)
                if unpacked > MAX_UNPACKED_PER_CHUNK:
                    self._drop_upload(key)
                    raise Rejected(
                        "validation",
                        f"manifest {key[1][:12]}: a chunk unpacks to more than {MAX_UNPACKED_PER_CHUNK} "
                        "bytes: not a manifest",
                    )
                if size + unpacked > MAX_MANIFEST_BYTES:
                    self._drop_upload(key)
                    raise Rejected(
                        "validation",
                        f"manifest {key[1][:12]} unpacks to more than {MAX_MANIFEST_BYTES} bytes",
                    )
                hasher.update(piece)
        except zstandard.ZstdError as exc:  # damaged, or asking for a window over MAX_WINDOW_BYTES
            self._drop_upload(key)
            raise Rejected(
                "integrity", f"manifest {key[1][:12]}: a chunk is not zstd data we read ({exc}); upload again"
            ) from None
        return decompressor, hasher, size + unpacked

    def _feed(self, key: tuple[str, str], upload: _Upload, chunk: bytes) -> None:
        """Decompress and hash as chunks arrive, so committing a big manifest is quick."""
        self._hashing[key] = self._advance(key, self._progress(key, upload), chunk)

    def _drop_upload(self, key: tuple[str, str]) -> None:
        self._uploads.pop(key, None)
        self._hashing.pop(key, None)

    def _op_commit_manifest(self, e: Envelope, user: User) -> dict[str, Any]:
        manifest_id = _manifest_id(e.args)
        key = (e.author, manifest_id)
        if manifest_id in self.manifests:
            self._drop_upload(key)
            return {"manifest_id": manifest_id, "new": False}
        upload = self._uploads.get(key)
        if upload is None or len(upload.chunks) != upload.total:
            have = len(upload.chunks) if upload else 0
            raise Rejected("conflict", f"manifest {manifest_id[:12]} is incomplete ({have} chunks arrived)")
        decompressor, hasher, _ = self._progress(key, upload)
        self._drop_upload(key)
        if not decompressor.eof or hasher.hexdigest() != manifest_id:
            raise Rejected(
                "integrity", f"the chunks do not make manifest {manifest_id[:12]}: damaged; upload again"
            )
        self.manifests[manifest_id] = tuple(upload.chunks)
        self._emit(events.ManifestCommitted(manifest_id))
        return {"manifest_id": manifest_id, "new": True}

    def _op_publish_version(self, e: Envelope, user: User) -> dict[str, Any]:
        rs = self._owned(_set_id(e.args), e.author, "publish it")
        number = _int(e.args, "version")
        self._version(rs.id, number)
        if (rs.id, number) in self.published:
            raise Rejected("immutable", f"version {number} of {rs.name!r} is published and can never change")
        service = e.args.get("service", "")
        if service not in ("", "datacite", "zenodo"):
            raise Rejected("validation", f"no DOI service {service!r}: datacite, zenodo or none")
        landing = e.args.get("landing_url", "")
        if (
            not isinstance(landing, str)
            or len(landing) > 2000
            or (landing and not landing.startswith("https://"))
        ):
            raise Rejected("validation", "the landing page is an https:// address")
        raw = e.args.get("metadata")
        try:
            if raw is not None:
                metadata = DoiMetadata.from_json(raw).check()
                title, creators, description = (
                    metadata.title,
                    tuple(c.name for c in metadata.creators),
                    metadata.description,
                )
                year: int | None = metadata.year
                stored: dict[str, Any] | None = metadata.to_json()
            else:
                if service:
                    raise ValidationError("a DOI needs its metadata: creators, title, publisher, year")
                creators = e.args.get("creators", [])
                if not isinstance(creators, list) or not all(isinstance(c, str) and c for c in creators):
                    raise ValidationError("creators must be a list of names")
                title = _text(e.args, "title", MAX_NAME * 2)
                creators, description = tuple(creators), _text(e.args, "description", MAX_TEXT, empty_ok=True)
                year, stored = None, None
            record = PublishedRecord(
                rs.id,
                number,
                e.author,
                e.time,
                title,
                creators=creators,
                publication_year=year,
                description=description,
                doi_state="queued" if service else "none",
                metadata=stored,
                service=service,
                landing_url=landing,
            )
        except ValidationError as exc:
            raise Rejected("validation", str(exc)) from None
        self.published[(rs.id, number)] = record
        self._put_set(replace(rs, published=rs.published | {number}))
        self._emit(events.Published(rs.id, number))
        return {"set_id": rs.id, "version": number}

    def _op_record_mint(self, e: Envelope, user: User) -> dict[str, Any]:
        """How far the DOI of a published version got: the minter's steps (so a retry resumes and
        never mints twice), then the DOI once findable, or why it failed. Only its publisher."""
        set_id = _set_id(e.args)
        number = _int(e.args, "version")
        record = self.published.get((set_id, number))
        if record is None:
            raise Rejected("not_found", f"version {number} of set {set_id} is not published")
        if record.publisher_key != e.author:
            raise Rejected("permission", "only its publisher's node mints a version's DOI")
        if record.doi_state == "findable":
            raise Rejected("immutable", f"version {number} has its DOI {record.doi} already")
        steps = e.args.get("steps", {})
        if (
            not isinstance(steps, dict)
            or len(steps) > 32
            or not all(
                isinstance(k, str) and isinstance(v, str) and len(k) < 64 and len(v) < 2000
                for k, v in steps.items()
            )
        ):
            raise Rejected("validation", "steps are up to 32 short names and texts")
        state = e.args.get("state", record.doi_state)
        if state not in ("queued", "findable", "failed"):
            raise Rejected("validation", f"no DOI state {state!r}")
        doi = e.args.get("doi") or record.doi
        if state == "findable" and not (isinstance(doi, str) and doi.startswith("10.")):
            raise Rejected("validation", "a findable version names its DOI (10.xxxx/...)")
        error = e.args.get("error", "")
        url = e.args.get("url", record.landing_url)
        if not isinstance(error, str) or not isinstance(url, str):
            raise Rejected("validation", "error and url are text")
        merged = dict(record.steps)
        merged.update(steps)
        self.published[(set_id, number)] = replace(
            record,
            steps=tuple(sorted(merged.items())),
            doi_state=state,
            doi=doi if isinstance(doi, str) else None,
            landing_url=url[:2000],
            error=error[:1000],
            attempts=record.attempts + (1 if error else 0),
        )
        self._emit(events.Published(set_id, number))
        return {"set_id": set_id, "version": number, "state": state}

    def _op_record_drift(self, e: Envelope, user: User) -> dict[str, Any]:
        # Any member may record what an archive holds now: one member checks for the cluster,
        # whoever can read the set. What it found changes nothing until an editor accepts it.
        set_id = _set_id(e.args)
        rs = self.sets.get(set_id)
        if rs is None:
            raise Rejected("not_found", f"replica set {set_id} does not exist")
        number = _int(e.args, "version")
        self._version(rs.id, number)
        manifest_id = _manifest_id(e.args)
        removed_id = e.args.get("removed_id", "")
        if removed_id != "":
            removed_id = _manifest_id({"manifest_id": removed_id})
        for needed in filter(None, (manifest_id, removed_id)):
            if needed not in self.manifests:
                raise Rejected("not_found", f"manifest {needed[:12]} is not in the store; upload it first")
        notes = e.args.get("notes", [])
        if not isinstance(notes, list) or len(notes) > 8 or not all(isinstance(n, str) for n in notes):
            raise Rejected("validation", "notes must be a list of at most 8 texts")
        added, revised, removed = (
            _int(e.args, k) if k in e.args else 0 for k in ("added", "revised", "removed")
        )
        record = DriftRecord(
            rs.id,
            number,
            manifest_id,
            _text(e.args, "summary", MAX_TEXT, empty_ok=True),
            e.time,
            e.author,
            state=_text(e.args, "state", MAX_NAME, empty_ok=True),
            notes=tuple(n[:MAX_TEXT] for n in notes),
            added=added,
            revised=revised,
            removed=removed,
            removed_id=removed_id,
        )
        previous = self.checks.get(rs.id)
        if previous is None or previous.version != number or previous.ok_time <= e.time:
            self.checks[rs.id] = CheckRecord(number, e.time, e.author, "", e.time)
        known = self.drift.get((rs.id, number))
        if known is not None and (known.manifest_id, known.removed_id) == (manifest_id, removed_id):
            return {"set_id": rs.id, "version": number, "new": False}  # two members found the same
        self.drift[(rs.id, number)] = record
        self._emit(events.DriftRecorded(rs.id, number))
        return {"set_id": rs.id, "version": number, "new": True}

    def _op_record_checks(self, e: Envelope, user: User) -> dict[str, Any]:
        """Checks that found nothing new (or failed), many sets in one command."""
        checks = e.args.get("checks")
        if not isinstance(checks, list) or len(checks) > MAX_CHECKS_PER_COMMAND:
            raise Rejected("validation", f"checks must be a list of at most {MAX_CHECKS_PER_COMMAND} entries")
        recorded = 0
        for entry in checks:
            if (
                not isinstance(entry, list)
                or len(entry) != 3
                or not isinstance(entry[0], str)
                or type(entry[1]) is not int
                or not isinstance(entry[2], str)
            ):
                raise Rejected("validation", "each check is [set_id, version, error]")
            set_id, number, error = entry
            rs = self.sets.get(set_id)
            if rs is None or not 1 <= number <= len(self.versions.get(set_id, ())):
                continue  # deleted meanwhile: nothing to say
            previous = self.checks.get(set_id)
            ok_time = previous.ok_time if previous is not None and previous.version == number else 0.0
            if not error:
                ok_time = max(ok_time, e.time)
            self.checks[set_id] = CheckRecord(number, e.time, e.author, error[:MAX_TEXT], ok_time)
            recorded += 1
            if error or previous is None or previous.error:  # a failure, or one that ended: show it
                self._emit(events.CheckRecorded(set_id, number))
        return {"recorded": recorded}

    def _op_dismiss_drift(self, e: Envelope, user: User) -> dict[str, Any]:
        """The author declines an update: it stays silent for them (the set keeps its version)."""
        rs = self._set(_set_id(e.args), e.author)
        number = _int(e.args, "version")
        record = self.drift.get((rs.id, number))
        if record is None or record.manifest_id != _manifest_id(e.args):
            raise Rejected(
                "conflict", f"{rs.name!r} has no such update to decline (checked again meanwhile?)"
            )
        self.drift[(rs.id, number)] = replace(record, dismissed=record.dismissed | {e.author})
        self._emit(events.CheckRecorded(rs.id, number))
        return {"set_id": rs.id, "version": number}

    # -- clinical tables (protocol 6) ----------------------------------------------------------
    def _op_put_table_chunk(self, e: Envelope, user: User) -> dict[str, Any]:
        """One piece of a table's stored form; ``commit_table`` checks the whole."""
        table_id = _table_id(e.args)
        index, total = _int(e.args, "index"), _int(e.args, "total")
        if not 1 <= total <= MAX_TABLE_CHUNKS or index >= total:
            raise Rejected(
                "validation",
                f"chunk {index} of {total} is out of range (a table is at most {MAX_TABLE_CHUNKS} chunks)",
            )
        if not e.payload or len(e.payload) > MAX_CHUNK_BYTES:
            raise Rejected("validation", f"a table chunk holds 1 to {MAX_CHUNK_BYTES} bytes")
        key = (e.author, table_id)
        if index == 0:
            self._table_uploads.pop(key, None)
            mine = [k for k in self._table_uploads if k[0] == e.author]
            for stale in mine[: max(0, len(mine) - MAX_TABLE_UPLOADS + 1)]:
                del self._table_uploads[stale]
            self._table_uploads[key] = _Upload(total)
        upload = self._table_uploads.get(key)
        if upload is None or upload.total != total or index != len(upload.chunks):
            expected = len(upload.chunks) if upload else 0
            raise Rejected("conflict", f"expected chunk {expected} of table {table_id[:12]}, got {index}")
        upload.chunks.append(e.payload)
        return {"received": index + 1}

    def _op_commit_table(self, e: Envelope, user: User) -> dict[str, Any]:
        """A new version of a table, once its chunks make the content its id names.

        Any member may add tables and new versions of them. The same content as the latest
        version changes nothing and answers with that version.
        """
        try:
            name = check_table_name(e.args.get("name"))
        except ValidationError as exc:
            raise Rejected("validation", str(exc)) from None
        table_id = _table_id(e.args)
        key_column = _text(e.args, "key_column", MAX_COLUMN_NAME)
        columns = _columns(e.args, key_column)
        rows = _int(e.args, "rows")
        filename = _text(e.args, "filename", MAX_NAME, empty_ok=True)
        key = (e.author, table_id)
        versions = self.tables.get(name, [])
        if versions and versions[-1].table_id == table_id:
            self._table_uploads.pop(key, None)
            return {"name": name, "version": versions[-1].number, "table_id": table_id, "new": False}
        if table_id not in self.table_blobs:
            upload = self._table_uploads.get(key)
            if upload is None or len(upload.chunks) != upload.total:
                have = len(upload.chunks) if upload else 0
                raise Rejected("conflict", f"table {table_id[:12]} is incomplete ({have} chunks arrived)")
            del self._table_uploads[key]
            if sum(map(len, upload.chunks)) > MAX_TABLE_BLOB_BYTES:
                raise Rejected(
                    "validation", f"table {name!r} is stored in more than {MAX_TABLE_BLOB_BYTES} bytes"
                )
            hasher = hashlib.sha256()
            for chunk in upload.chunks:
                hasher.update(chunk)
            if hasher.hexdigest() != table_id:
                raise Rejected(
                    "integrity", f"the chunks do not make table {table_id[:12]}: damaged; upload again"
                )
            self.table_blobs[table_id] = tuple(upload.chunks)
        else:
            self._table_uploads.pop(key, None)
        number = len(versions) + 1
        version = TableVersion(name, number, table_id, key_column, columns, rows, filename, e.author, e.time)
        if versions:
            versions.append(version)
        else:
            self.tables[name] = [version]
        self._emit(events.TableAdded(name, number))
        return {"name": name, "version": number, "table_id": table_id, "new": True}
