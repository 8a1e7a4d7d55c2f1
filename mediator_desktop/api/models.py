"""The local API's request and answer bodies (pydantic only, so the SDK can use them without the server)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.replica import Version
from mediator_desktop.core.source import BrowseItem
from mediator_desktop.core.transfer import DEFAULT_LAYOUT

#: The sidebar's groups of sets (``core.service.SCOPES``).
SetScope = Literal["all", "mine", "shared", "cluster", "public", "published", "following"]
Key = Annotated[str, Field(min_length=1, max_length=1024)]


# -- bodies and answers --------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointerModel(_Model):
    """A path of keys down a source's levels, at any granularity, plus metadata filters."""

    source: Key
    path: list[Key] = Field(default_factory=list, max_length=16)
    filters: dict[Key, list[Key]] = Field(default_factory=dict)

    def pointer(self) -> Pointer:
        return Pointer(self.source, tuple(self.path), make_filters(self.filters))

    @classmethod
    def of(cls, pointer: Pointer) -> PointerModel:
        return cls(
            source=pointer.source_id,
            path=list(pointer.path),
            filters={k: list(v) for k, v in pointer.filters},
        )


class RuleModel(_Model):
    include: bool
    pointer: PointerModel


class NodeInfo(_Model):
    version: str
    key_id: str
    display_name: str
    data_dir: str
    download_dir: str
    raft_address: str


class MemberModel(_Model):
    address: str
    connected: bool
    is_self: bool
    is_leader: bool


class ClusterModel(_Model):
    self_address: str
    leader: str | None
    has_quorum: bool
    term: int
    commit_index: int
    members: list[MemberModel]


class PeerModel(_Model):
    node_id: str
    name: str
    raft_address: str
    version: str
    protocol: int
    status: str


class UserModel(_Model):
    key_id: str
    display_name: str


class SourceModel(_Model):
    id: str
    title: str
    levels: list[str]
    filterable: list[str]


class ItemModel(_Model):
    key: str
    level: str
    label: str
    leaves: int | None
    size: int | None
    details: dict[str, str]

    @classmethod
    def of(cls, item: BrowseItem) -> ItemModel:
        return cls(
            key=item.key,
            level=item.level,
            label=item.label,
            leaves=item.leaves,
            size=item.size,
            details=dict(item.details),
        )


class PageModel(_Model):
    items: list[ItemModel]
    offset: int
    total: int
    more: bool


class VersionModel(_Model):
    number: int
    parent: int | None
    author: str
    time: float
    message: str
    manifest_id: str
    rules: list[RuleModel]

    @classmethod
    def of(cls, v: Version) -> VersionModel:
        return cls(
            number=v.number,
            parent=v.parent,
            author=v.author,
            time=v.time,
            message=v.message,
            manifest_id=v.manifest_id,
            rules=[
                RuleModel(include=r.include, pointer=PointerModel.of(r.pointer))
                for r in v.selection.sorted_rules()
            ],
        )


class ForkModel(_Model):
    """Where a duplicated set came from."""

    set_id: str
    version: int | None


class SetModel(_Model):
    id: str
    name: str
    description: str
    owner: str
    owner_name: str
    editors: list[str]
    visibility: Literal["private", "cluster", "public"]
    forked_from: ForkModel | None
    following: bool
    head: int | None
    published: list[int]
    leaves: int | None = Field(description="leaves of the head version")
    size: int | None = Field(description="bytes of the head version, as far as the archives say")


class NewSet(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=10_000)] = ""
    visibility: Literal["private", "cluster", "public"] = "private"
    add: list[PointerModel] = Field(default_factory=list, max_length=10_000)
    message: Annotated[str, Field(max_length=10_000)] = ""


class Update(_Model):
    add: list[PointerModel] = Field(default_factory=list, max_length=10_000)
    remove: list[PointerModel] = Field(default_factory=list, max_length=10_000)
    message: Annotated[str, Field(max_length=10_000)] = ""
    expected_head: int | None = Field(
        default=None, ge=1, description="the version this change builds on (default: the current head)"
    )


class UpdateResult(_Model):
    version: int | None = Field(description="the new version; null when nothing changed")
    set: SetModel


class Duplicate(_Model):
    version: int | None = Field(default=None, ge=1)
    name: Annotated[str, Field(max_length=200)] = ""


class VisibilityBody(_Model):
    visibility: Literal["private", "cluster", "public"]


class LeafModel(_Model):
    key: str
    source: str
    path: list[str]
    size: int | None
    fingerprint: str


class LeavesModel(_Model):
    manifest_id: str
    total: int
    offset: int
    leaves: list[LeafModel]


class DiffModel(_Model):
    summary: str
    selection_summary: str
    added: int
    removed: int
    changed: int
    added_leaves: list[str] = Field(description="leaves as pointer strings (source/key/...), up to limit")
    removed_leaves: list[str]
    changed_leaves: list[str]


class NewDownload(_Model):
    set_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    destination: Annotated[str, Field(min_length=1, max_length=4096, description="an absolute folder path")]
    version: int | None = Field(default=None, ge=1)
    layout: Annotated[str, Field(min_length=1, max_length=500)] = DEFAULT_LAYOUT
    workers: int = Field(default=8, ge=1, le=64)
    prune: bool = False
    only: list[Key] | None = Field(default=None, max_length=1_000_000)


class ProgressModel(_Model):
    bytes_done: int
    bytes_total: int
    items_done: int
    items_total: int
    failed: int
    rate: float
    eta: float | None
    line: str


class JobModel(_Model):
    id: str
    set_id: str
    set_name: str
    version: int
    destination: str
    state: Literal["running", "paused", "done", "failed", "cancelled"]
    changes: int
    progress: ProgressModel | None
    report: dict[str, Any] | None
    summary: str | None
    error: str | None
    error_type: str | None


class JoinCodeBody(_Model):
    ttl: float = Field(default=600.0, ge=60, le=86_400)


class JoinCodeModel(_Model):
    code: str


class JoinBody(_Model):
    code: Annotated[str, Field(min_length=1, max_length=100)]


class AddressBody(_Model):
    address: Annotated[str, Field(min_length=3, max_length=300)]


class ErrorModel(_Model):
    error: str
    message: str
    current_head: int | None = None


def leaf_model(line: str) -> LeafModel:
    leaf = Leaf.decode(line)
    return LeafModel(
        key=leaf.key,
        source=leaf.source_id,
        path=list(leaf.path),
        size=leaf.fingerprint.size,
        fingerprint=leaf.fingerprint.encode(),
    )
