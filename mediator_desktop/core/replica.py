"""Replica sets, their immutable versions and published records."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.selection import Selection

_SET_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_NAME = 200
MAX_TEXT = 20_000


class Visibility(StrEnum):
    """Who may read a set. ``private`` is access control, not secrecy: every node stores every set."""

    PRIVATE = "private"
    CLUSTER = "cluster"
    PUBLIC = "public"


def new_set_id() -> str:
    """A 128-bit random id, as 32 hex digits."""
    return secrets.token_hex(16)


def check_set_id(value: object) -> str:
    if not isinstance(value, str) or not _SET_ID.fullmatch(value):
        raise ValidationError(f"{value!r} is not a replica set id (32 hex digits)")
    return value


def _check_text(what: str, value: object, limit: int, *, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, not {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ValidationError(f"{what} is empty")
    if len(value) > limit:
        raise ValidationError(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    return value


@dataclass(frozen=True, slots=True)
class Version:
    """An immutable snapshot: the selection, the manifest it resolved to, and who made it when."""

    number: int
    parent: int | None
    author: str
    time: float
    message: str
    selection: Selection
    manifest_id: str

    def __post_init__(self) -> None:
        if type(self.number) is not int or self.number < 1:
            raise ValidationError(f"version numbers start at 1, not {self.number!r}")
        if self.parent is not None and (type(self.parent) is not int or not 1 <= self.parent < self.number):
            raise ValidationError(f"version {self.number} cannot have parent {self.parent!r}")
        _check_text("the author key id", self.author, 128, empty_ok=False)
        _check_text("the version message", self.message, MAX_TEXT, empty_ok=True)
        if not _SHA256.fullmatch(self.manifest_id):
            raise ValidationError(f"{self.manifest_id!r} is not a manifest id (sha256 hex)")

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "parent": self.parent,
            "author": self.author,
            "time": self.time,
            "message": self.message,
            "selection": self.selection.to_json(),
            "manifest_id": self.manifest_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Version:
        try:
            return cls(
                data["number"],
                data["parent"],
                data["author"],
                float(data["time"]),
                data["message"],
                Selection.from_json(data["selection"]),
                data["manifest_id"],
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError(f"malformed version record: {exc}") from None


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """A version frozen for citation. DOI fields are filled by the publishing issue (DataCite)."""

    set_id: str
    version: int
    publisher_key: str
    time: float
    title: str
    creators: tuple[str, ...] = ()
    publication_year: int | None = None
    resource_type: str = "Dataset"
    description: str = ""
    doi: str | None = None
    doi_state: str = "none"  # none | queued | findable | failed
    #: The DOI record's metadata (``core.publishing.DoiMetadata.to_json``), when a DOI was asked for.
    metadata: dict[str, Any] | None = None
    service: str = ""  # the DOI service that mints it: datacite | zenodo; empty: none
    landing_url: str = ""  # where the DOI resolves (DataCite); Zenodo's record page once minted
    steps: tuple[tuple[str, str], ...] = ()  # what the minter recorded so far (Zenodo's deposition...)
    error: str = ""  # why the last try failed (the queue retries unless it needs the user)
    attempts: int = 0

    def __post_init__(self) -> None:
        check_set_id(self.set_id)
        _check_text("the title", self.title, MAX_NAME * 2, empty_ok=False)

    @property
    def minting(self) -> bool:
        """Whether a DOI is still to be minted (queued, or failed and waiting for a retry)."""
        return bool(self.service) and self.doi_state in ("queued", "failed")

    def status(self) -> str:
        """What a set shows: ``DOI 10.x/y``, ``publishing...``, ``failed: reason``."""
        if self.doi_state == "findable" and self.doi:
            return f"DOI {self.doi}"
        if self.doi_state == "queued":
            return "publishing…" + (f" (retrying: {self.error})" if self.error else "")
        if self.doi_state == "failed":
            return f"failed: {self.error}; retry"
        return "published (no DOI)"


@dataclass(frozen=True, slots=True)
class ReplicaSet:
    """A named, shared, versioned set of pointers into archives. Versions live beside it."""

    id: str
    name: str
    owner: str
    description: str = ""
    editors: frozenset[str] = frozenset()
    visibility: Visibility = Visibility.PRIVATE
    forked_from: tuple[str, int] | None = None
    followers: frozenset[str] = frozenset()
    head: int | None = None
    published: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_set_id(self.id)
        _check_text("the set name", self.name, MAX_NAME, empty_ok=False)
        _check_text("the description", self.description, MAX_TEXT, empty_ok=True)
        _check_text("the owner key id", self.owner, 128, empty_ok=False)
        if not isinstance(self.visibility, Visibility):
            raise ValidationError(
                f"visibility must be one of private, cluster, public; not {self.visibility!r}"
            )
        if self.forked_from is not None:
            check_set_id(self.forked_from[0])

    def can_read(self, key_id: str) -> bool:
        return self.visibility is not Visibility.PRIVATE or key_id == self.owner or key_id in self.editors

    def can_edit(self, key_id: str) -> bool:
        return key_id == self.owner or key_id in self.editors


# -- clinical tables ---------------------------------------------------------------------------------
#: Longest name of a clinical table (it is a key of pointers: ``clinical/<name>/<patient>``).
MAX_TABLE_NAME = 100
#: Largest stored form (Parquet, zstd) of one table version. Every member holds every version in
#: memory and in its dumps, so this stays far below what a lab's workstation can spare.
MAX_TABLE_BLOB_BYTES = 64 << 20
MAX_TABLE_COLUMNS = 1000
MAX_COLUMN_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_table_name(value: object) -> str:
    """A table name: 1 to 100 characters, no control characters, no ``/``, no space at either end."""
    if not isinstance(value, str):
        raise ValidationError(f"a table name must be text, not {type(value).__name__}")
    if not value.strip():
        raise ValidationError("the table name is empty: give the table a name")
    if len(value) > MAX_TABLE_NAME:
        raise ValidationError(
            f"the table name is {len(value)} characters long; at most {MAX_TABLE_NAME} are allowed"
        )
    if _CONTROL.search(value) or "/" in value:
        raise ValidationError(f"the table name {value!r} holds a '/' or a control character; choose another")
    if value != value.strip():
        raise ValidationError(f"the table name {value!r} starts or ends with a space")
    return value


@dataclass(frozen=True, slots=True)
class TableVersion:
    """One version of a clinical table in the store (its content: ``StoreState.table_blobs``).

    Attributes:
        name: what users call the table (``clinical``); versions of one name are numbered from 1.
        table_id: sha256 (hex) of the stored form, a Parquet file.
        key_column: the column naming each row's patient (case, subject).
        columns: every column, in the file's order (the key column among them).
        rows: rows of data (the header not counted).
        filename: the file it was read from (``clinical.xlsx``), for people.
        author, time: who added it, when.
    """

    name: str
    number: int
    table_id: str
    key_column: str
    columns: tuple[str, ...]
    rows: int
    filename: str
    author: str
    time: float

    def __post_init__(self) -> None:
        check_table_name(self.name)
        if type(self.number) is not int or self.number < 1:
            raise ValidationError(f"table versions are numbered from 1, not {self.number!r}")
        if not _SHA256.fullmatch(self.table_id):
            raise ValidationError(f"{self.table_id!r} is not a table id (sha256 hex)")
        if self.key_column not in self.columns:
            raise ValidationError(f"the key column {self.key_column!r} is not a column of the table")
