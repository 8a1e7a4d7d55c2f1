"""The local API's request and answer bodies (pydantic only, so the SDK can use them without the server).

Requests (``_Body``) refuse fields they do not know: a typo must not silently select more than
was meant. Answers (``_Answer``) ignore fields they do not know: an older SDK talking to a newer
node must not fail on a field added since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from mediator_desktop.core import errors
from mediator_desktop.core.manifest import Leaf
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.replica import Version
from mediator_desktop.core.settings import SettingField
from mediator_desktop.core.source import BrowseItem

#: The sidebar's groups of sets (``core.service.SCOPES``).
SetScope = Literal["all", "mine", "shared", "cluster", "public", "published", "following"]
VisibilityName = Literal["private", "cluster", "public"]
Key = Annotated[str, Field(min_length=1, max_length=1024)]
SetName = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=10_000)]


class _Body(BaseModel):
    """A request body: unknown fields are refused (422). Built by ``build_bodies`` when the
    server's routes load (FastAPI warns about its own ``body`` alias when it meets a deferred
    model); a CLI command or the SDK, which only send bodies as JSON, never builds them."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Answer(BaseModel):
    """An answer: fields this version does not know yet are ignored. Each builds its validator on
    first use (``defer_build``): a CLI command reads a few of the 57, and building all of them
    cost every command about 50 ms at start-up."""

    model_config = ConfigDict(extra="ignore", defer_build=True)


class _ReadsLikeADict(_Answer):
    """Also readable as ``model["field"]``, as the SDK's download reports were before they were
    typed; prefer ``model.field``."""

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)


# -- pointers and selections ---------------------------------------------------------------------
class PointerBody(_Body):
    """A path of keys down a source's levels, at any granularity, plus metadata filters."""

    source: Key
    path: list[Key] = Field(default_factory=list, max_length=16)
    filters: dict[Key, list[Key]] = Field(default_factory=dict)

    def pointer(self) -> Pointer:
        return Pointer(self.source, tuple(self.path), make_filters(self.filters))


class PointerModel(_Answer):
    """A pointer as the node answers it (see ``PointerBody``)."""

    source: str
    path: list[str] = Field(default_factory=list)
    filters: dict[str, list[str]] = Field(default_factory=dict)

    @classmethod
    def of(cls, pointer: Pointer) -> PointerModel:
        return cls(
            source=pointer.source_id,
            path=list(pointer.path),
            filters={k: list(v) for k, v in pointer.filters},
        )


class RuleModel(_Answer):
    include: bool
    pointer: PointerModel


# -- the node and its cluster --------------------------------------------------------------------
class NodeInfo(_Answer):
    version: str
    key_id: str
    display_name: str
    data_dir: str
    download_dir: str
    raft_address: str


class MemberModel(_Answer):
    address: str
    connected: bool
    is_self: bool
    is_leader: bool


class ClusterModel(_Answer):
    self_address: str
    leader: str | None
    has_quorum: bool
    term: int
    commit_index: int
    members: list[MemberModel]


class PeerModel(_Answer):
    node_id: str
    name: str
    raft_address: str
    version: str
    protocol: int
    status: str


class UserModel(_Answer):
    key_id: str
    display_name: str


class JoinCodeBody(_Body):
    ttl: float = Field(default=600.0, ge=60, le=86_400)


class JoinCodeModel(_Answer):
    code: str


class JoinBody(_Body):
    code: Annotated[str, Field(min_length=1, max_length=100)]


class AddressBody(_Body):
    address: Annotated[str, Field(min_length=3, max_length=300)]


# -- archives ------------------------------------------------------------------------------------
class SourceModel(_Answer):
    id: str
    title: str
    levels: list[str]
    filterable: list[str]
    kind: str = Field(default="", description="the kind of archive (idc, tcia, dicomweb, local...)")
    options: dict[str, Any] = Field(default_factory=dict, description="its settings (never secrets)")
    indexes: bool = Field(default=False, description="it indexes a folder: rescan applies")


class SourceOptionModel(_Answer):
    name: str
    title: str
    help: str
    required: bool
    kind: str
    default: str | int | bool | None


class SourceKindModel(_Answer):
    """A kind of archive that can be added, with the options it takes."""

    name: str
    title: str
    description: str
    options: list[SourceOptionModel]
    secret: str | None = Field(description='what its secret is ("password", "token"), or null: none')
    secret_help: str = ""


OptionValue = Annotated[str, Field(max_length=4096)] | StrictInt | StrictBool


class NewSource(_Body):
    """An archive to add (or to test before adding it)."""

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="default: the kind, numbered when taken"
    )
    options: dict[Annotated[str, Field(max_length=64)], OptionValue] = Field(
        default_factory=dict, max_length=32
    )
    secret: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None, description="a password or token: kept in the OS keyring, never in the settings"
    )


class SecretBody(_Body):
    secret: Annotated[str, Field(min_length=1, max_length=4096)]


class CheckModel(_Answer):
    source: str
    message: str = Field(description='what the archive answered, e.g. "reachable: 3 collections"')


class ScanReportModel(_Answer):
    source: str
    read: int
    unchanged: int
    removed: int
    skipped: int
    skipped_examples: list[str] = Field(description="up to 20 skipped files, each with the reason")
    summary: str


class ItemModel(_Answer):
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


class PageModel(_Answer):
    items: list[ItemModel]
    offset: int
    total: int
    more: bool


# -- replica sets --------------------------------------------------------------------------------
class VersionModel(_Answer):
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


class ForkModel(_Answer):
    """Where a duplicated set came from."""

    set_id: str
    version: int | None


class SetModel(_Answer):
    id: str
    name: str
    description: str
    owner: str
    owner_name: str
    editors: list[str]
    visibility: VisibilityName
    forked_from: ForkModel | None
    following: bool
    head: int | None
    published: list[int]
    leaves: int | None = Field(description="leaves of the head version")
    size: int | None = Field(description="bytes of the head version, as far as the archives say")
    warnings: list[str] = Field(
        default_factory=list,
        description="only in the answer to a create: a pointer that selects nothing, a set without data",
    )
    update: str | None = Field(
        default=None,
        description="the summary of an archive update of the head version that you have not declined "
        '("+2 series, 1 revised"; see /v1/sets/{id}/drift), or null',
    )


class NewSet(_Body):
    name: SetName
    description: Text = ""
    visibility: VisibilityName = "private"
    add: list[PointerBody] = Field(default_factory=list, max_length=10_000)
    message: Text = ""
    strict: bool = Field(default=False, description="refuse pointers that select nothing")


class Update(_Body):
    add: list[PointerBody] = Field(default_factory=list, max_length=10_000)
    remove: list[PointerBody] = Field(default_factory=list, max_length=10_000)
    message: Text = ""
    expected_head: int | None = Field(
        default=None, ge=1, description="the version this change builds on (default: the current head)"
    )
    strict: bool = Field(default=False, description="refuse pointers that select nothing")


class UpdateResult(_Answer):
    version: int | None = Field(description="the new version; null when nothing changed")
    set: SetModel
    warnings: list[str] = Field(
        default_factory=list, description="a pointer that selects nothing, a set without data"
    )


class Rename(_Body):
    name: SetName
    description: Text | None = Field(default=None, description="the new description (default: unchanged)")


class Duplicate(_Body):
    version: int | None = Field(default=None, ge=1)
    name: Annotated[str, Field(max_length=200)] = ""


class VisibilityBody(_Body):
    visibility: VisibilityName


class LeafModel(_Answer):
    key: str
    source: str
    path: list[str]
    size: int | None
    fingerprint: str


class LeavesModel(_Answer):
    manifest_id: str
    total: int
    offset: int
    leaves: list[LeafModel]


class DiffModel(_Answer):
    summary: str
    selection_summary: str
    added: int
    removed: int
    changed: int
    added_leaves: list[str] = Field(description="leaves as pointer strings (source/key/...), up to limit")
    removed_leaves: list[str]
    changed_leaves: list[str]


# -- update tracking -----------------------------------------------------------------------------
SetIdText = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class DriftModel(_Answer):
    """An archive update of a version: what its selection selects in the archives now, where a check
    found it changed (``core.state.DriftRecord``)."""

    version: int = Field(description="the version whose data changed in the archives")
    manifest_id: str = Field(description="the manifest of what the archives hold now")
    summary: str = Field(description='one line: "+12 series (2.1 GB), 3 revised, 1 removed"')
    state: str = Field(description='the archive state checked against ("IDC v25"), or ""')
    notes: list[str] = Field(description="what else to know (pinned versions still downloadable...)")
    added: int
    revised: int
    removed: int
    checked: float = Field(description="when the check found it (seconds since the epoch)")
    by: str = Field(description="the key id of the user whose node found it")
    by_name: str


class LastCheckModel(_Answer):
    """The last update check of a set (``core.state.CheckRecord``)."""

    version: int = Field(description="the version checked")
    time: float = Field(description="when the check ended (seconds since the epoch)")
    by: str = Field(description="the key id of the user whose node checked")
    by_name: str = ""
    error: str = Field(description='why it failed, or "" when it worked')


class TrackModel(_Answer):
    """A set's archive updates as you see them."""

    set_id: str
    drift: DriftModel | None = Field(
        description="the archive update of the head version found by the last check (also one you "
        "declined: see declined), or null: the head is what the archives held then"
    )
    declined: bool = Field(description="you declined the update: you are not told about it again")
    last_check: LastCheckModel | None = Field(description="the last check of the head version, or null")
    line: str = Field(description='one line for people: "archive update: +2 series, 1 revised"')


class UpdateCheckModel(_Answer):
    """What checking one set for archive updates found (``core.tracking.CheckOutcome``)."""

    set_id: str
    name: str
    version: int | None = Field(description="the version checked; null: the set has none yet")
    new: bool = Field(description="this check found the update (and recorded it)")
    error: str = Field(description='why the check failed, or "" when it worked')
    drift: DriftModel | None = Field(description="the set's update now, or null: it is up to date")
    line: str = Field(description='one line for people: "Lung CT v1: update found: +2 series"')


class SetUpdateModel(_Answer):
    """A set you follow or own whose archives changed, with the update you have not declined."""

    set: SetModel
    drift: DriftModel


class ChecksBody(_Body):
    sets: list[SetIdText] | None = Field(
        default=None, max_length=10_000, description="set ids (default: every set you follow or own)"
    )
    full: bool = Field(
        default=False,
        description="resolve every selection again instead of asking what changed (finds TCIA removals)",
    )


class AcceptBody(_Body):
    fork: bool = Field(
        default=False,
        description="commit the update to a new set of yours (copied from the pinned version), "
        "not to this one: for readers of a public set",
    )
    name: Annotated[str, Field(max_length=200)] = Field(
        default="", description="with fork: the new set's name (default: the set's, marked as a fork)"
    )


# -- downloads -----------------------------------------------------------------------------------
class NewDownload(_Body):
    set_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    destination: Annotated[str, Field(min_length=1, max_length=4096, description="an absolute folder path")]
    version: int | None = Field(default=None, ge=1, description="default: the head")
    layout: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="the folder template (default: the node's download_layout setting)"
    )
    workers: int = Field(default=8, ge=1, le=64)
    prune: bool = False
    only: list[Key] | None = Field(default=None, max_length=1_000_000)
    verify: bool = Field(
        default=False,
        description="re-hash every file already in place against the archive's MD5 (by size where it "
        "gave none) and fetch again the leaves that differ (without it, files are compared by size and "
        "modification time)",
    )


class ProgressModel(_Answer):
    bytes_done: int
    bytes_total: int
    items_done: int
    items_total: int
    failed: int
    rate: float
    eta: float | None
    line: str


class FailureModel(_ReadsLikeADict):
    """A leaf that did not arrive, and why."""

    key: str = Field(description="the leaf as a pointer (source/key/...): pass it in ``only`` to retry")
    source: str
    path: list[str]
    reason: str


class ReportModel(_ReadsLikeADict):
    """What a download did (``core.transfer.Report``)."""

    destination: str
    manifest_id: str
    fetched: list[str] = Field(description="the leaves fetched, as pointers (source/key/...)")
    unchanged: int
    removed: list[str] = Field(description="leaves no longer in the version, as pointers")
    pruned: list[str] = Field(description="files deleted because their leaf left the version")
    failed: list[FailureModel]
    unreachable: dict[str, str] = Field(
        default_factory=dict,
        description="archives that could not be reached at all (source id -> why): their leaves all "
        "failed with that reason, and the run stopped asking them",
    )
    pending: int = Field(description="leaves not attempted: the job was cancelled first")
    bytes: int
    seconds: float
    cancelled: bool
    refetched: list[str] = Field(
        default_factory=list,
        description="leaves fetched again because their files changed or were deleted since download",
    )
    size_only: list[str] = Field(
        default_factory=list,
        description="leaves fetched that were checked by count and size only (the archive gave no MD5): "
        "never verified",
    )
    verified: int = Field(default=0, description="with verify: files re-hashed that matched their MD5")
    unverifiable: int = Field(
        default=0, description="with verify: files the archive gave no MD5 for, checked by size only"
    )
    ok: bool


class LeafChangeModel(_ReadsLikeADict):
    """A leaf of a published version whose archive data changed since (``core.tracking.LeafChange``)."""

    source_id: str
    path: list[str]
    change: Literal["revised", "removed"]
    pinned: dict[str, Any] = Field(description="the fingerprint the version recorded")
    now: dict[str, Any] | None = Field(description="the archive's fingerprint now; null: removed")
    fetched: bool | None = Field(
        description="true: the pinned data was fetched and verified; false: no longer fetchable "
        "(reason says why); null: not tried"
    )
    reason: str
    line: str = Field(description="one line for people: the leaf, its change and its fate")


class ReproductionModel(_ReadsLikeADict):
    """A published version against its archives now, after a download of it."""

    set_id: str
    version: int
    leaves: int
    identical: bool = Field(description="every leaf is in its archive as the version recorded it")
    summary: str
    changes: list[LeafChangeModel]
    added: int = Field(description="leaves the selection selects now that the version does not hold")
    states: list[str]
    notes: list[str]
    error: str = Field(description="why the comparison failed (an archive down); empty when it worked")


class JobModel(_Answer):
    id: str
    set_id: str
    set_name: str
    version: int
    destination: str
    state: Literal["running", "paused", "done", "failed", "cancelled"]
    changes: int
    progress: ProgressModel | None
    report: ReportModel | None
    summary: str | None
    error: str | None
    error_type: str | None
    reproduction: ReproductionModel | None = Field(
        default=None,
        description="for a published version: its leaves against their archives now, marked by this "
        "download (which changed since publication, and whether the pinned data is still fetchable)",
    )


# -- clinical tables and cohorts -----------------------------------------------------------------
TableName = Annotated[str, Field(min_length=1, max_length=100)]
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
Condition = Annotated[
    str, Field(min_length=1, max_length=1000, description='a column condition: "age>=60", "stage=II,IIA"')
]
FilePath = Annotated[
    str, Field(min_length=1, max_length=4096, description="a file on the node's machine (absolute path)")
]


class ColumnModel(_Answer):
    """A column of a clinical table: its kind and what its values look like (``core.clinical.Column``)."""

    name: str
    kind: str = Field(description="text, number or date: how conditions compare its values")
    blanks: int = Field(description="rows without a value")
    distinct: int = Field(description="different values")
    low: str | None = Field(description="the smallest value (numbers, dates, text in order), or null")
    high: str | None = Field(description="the largest value, or null")


class TablePreviewModel(_Answer):
    """What adding a table file would read (``core.clinical.TablePreview``); nothing is stored."""

    filename: str
    rows: int
    columns: list[ColumnModel]
    key_guess: str | None = Field(description="the column taken as the patient key, or null: none fits")
    head: list[list[str]] = Field(description="the first rows, as text")
    problems: list[str] = Field(description="what would stop the file from being added, or should be checked")


class TableVersionModel(_Answer):
    """A version of a clinical table in the cluster's store (``TableVersion``)."""

    name: str
    number: int
    table_id: str = Field(description="the content hash of this version")
    key_column: str = Field(description="the column that holds the patient keys")
    columns: list[str]
    rows: int
    filename: str = Field(description="the file it was read from")
    author: str = Field(description="the key id of the user who added it")
    author_name: str = ""
    time: float = Field(description="when it was added (seconds since the epoch)")


class TableModel(_Answer):
    """A clinical table: its latest version and every version, oldest first."""

    table: TableVersionModel
    history: list[TableVersionModel]


class NewTable(_Body):
    """A table file (CSV, TSV, Excel) on this machine to add to the store, or a new version of a table."""

    path: FilePath
    name: TableName | None = Field(default=None, description="default: from the file's name")
    key_column: ColumnName | None = Field(
        default=None, description="the column of patient keys (default: the one the preview guesses)"
    )


class TablePreviewBody(_Body):
    path: FilePath
    key_column: ColumnName | None = Field(default=None, description="default: guessed")


class ValueCountModel(_Answer):
    value: str
    count: int = Field(description="rows with this value")


class SelectBody(_Body):
    conditions: list[Condition] = Field(
        default_factory=list, max_length=100, description="all must hold; none: every patient"
    )


class PatientsModel(_Answer):
    """The patients (keys) of a table whose rows meet conditions."""

    patients: list[str]
    count: int


class RowsModel(_Answer):
    """Rows of a clinical table, as text."""

    columns: list[str]
    rows: list[list[str]]


PointerText = Annotated[
    str, Field(min_length=1, max_length=2000, description="a pointer: SOURCE[/KEY...][?NAME=VALUE]")
]


class JoinPreviewBody(_Body):
    """A cohort join to look at before a set holds it: a table, conditions, the archives to join to."""

    table: TableName
    conditions: list[Condition] = Field(default_factory=list, max_length=100)
    targets: list[PointerText] = Field(
        min_length=1, max_length=100, description='archives or collections: "idc/nlst", "lab"'
    )


class JoinTargetModel(_Answer):
    """What a cohort finds in one archive."""

    target: str = Field(description="the archive (scope) as a pointer")
    patients: int = Field(description="patients the conditions select")
    found: int = Field(description="of them, those the archive holds")
    missing: list[str] = Field(description="the patients it does not hold")


class JoinPreviewModel(_Answer):
    """A cohort join, previewed: the pointer a set holds for it, and what each archive holds."""

    pointer: str = Field(description="the join as one pointer: add it to a set to hold the cohort")
    patients: list[str] = Field(description="the patients the conditions select")
    targets: list[JoinTargetModel]


# -- matching data in other archives (radiogenomic cohorts) --------------------------------------
PatientKey = Annotated[str, Field(min_length=1, max_length=256)]


class MatchBody(_Body):
    """Whose data to find in the other archives: the patients of some pointers into one archive (or
    clinical table) and/or patients named, searched in ``into``."""

    origin: list[PointerText] = Field(
        default_factory=list,
        max_length=1000,
        description="pointers into one archive: a collection, some patients, a filter "
        '("idc/tcga_luad?Modality=CT")',
    )
    patients: list[PatientKey] = Field(
        default_factory=list, max_length=100_000, description="patients named (IDs as the archives use them)"
    )
    into: list[PointerText] = Field(
        default_factory=list,
        max_length=100,
        description='where to look: archives or parts of them ("gdc", "idc/tcga_luad"); default: every '
        "other archive with patients",
    )


KindLabels = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=100)
]


class MatchCohortBody(MatchBody):
    """A match to hold in a set: the origin's patients joined to the kinds of data chosen per archive."""

    into: list[PointerText] = Field(
        default_factory=list, max_length=100, description="where to look (default: the archives of chosen)"
    )
    chosen: dict[Annotated[str, Field(min_length=1, max_length=64)], KindLabels | None] = Field(
        min_length=1,
        max_length=100,
        description='per archive (source id), the kinds of data to join ({"gdc": ["RNA-Seq"]}), or null: '
        "everything it holds",
    )
    every: bool = Field(
        default=True, description="keep only the patients that have the chosen data in every chosen archive"
    )


class KindFilterModel(_Answer):
    """The metadata filter that selects one kind of data (``Modality=CT``)."""

    name: str
    value: str


class DataKindModel(_Answer):
    """One kind of data an archive holds for some of the patients (``core.source.DataKind``)."""

    label: str = Field(description='what people call it: "CT", "SM", "RNA-Seq", "slide"')
    category: str = Field(description="radiology, pathology, genomics, clinical or other")
    filter: KindFilterModel | None = Field(
        description="the filter that selects exactly this kind, or null: it is all the archive holds"
    )
    patients: list[str] = Field(description="the patients that have it")
    leaves: int = Field(description="how many leaves (series, files, slides) they have of it")
    size: int | None = Field(description="bytes of those leaves, when known")


class ArchiveMatchModel(_Answer):
    """What one archive holds for a match's patients."""

    source: str
    target: str = Field(description="the archive (or the part of it) searched, as a pointer")
    title: str = Field(description="the archive's name for people")
    found: list[str] = Field(description="the patients it holds")
    missing: list[str] = Field(description="the patients it does not hold")
    error: str | None = Field(description="why it could not be searched, or null")
    kinds: list[DataKindModel] = Field(description="the kinds of data the patients found have there")

    def having(self, labels: Iterable[str] | None = None) -> set[str]:
        """The patients with any of the kinds ``labels`` here (None: any data at all)."""
        if labels is None:
            return set().union(*(k.patients for k in self.kinds)) if self.kinds else set(self.found)
        wanted = set(labels)
        return set().union(*(k.patients for k in self.kinds if k.label in wanted))


class MatchModel(_Answer):
    """A cohort's patients and what each other archive holds of them (``core.integrator.Matching``)."""

    origin: list[str] = Field(description="the pointers the patients come from")
    patients: list[str] = Field(description="the patients matched, sorted")
    archives: list[ArchiveMatchModel]

    def archive(self, source: str) -> ArchiveMatchModel:
        """The answer of one archive searched (``KeyError`` for one that was not)."""
        for archive in self.archives:
            if archive.source == source:
                return archive
        raise KeyError(source)

    def common(self, chosen: Mapping[str, Iterable[str] | None]) -> list[str]:
        """The patients that have, in every archive of ``chosen``, one of its chosen kinds
        (``{"gdc": ["RNA-Seq"], "pathology": None}``), sorted."""
        keep = set(self.patients)
        for source, labels in chosen.items():
            keep &= self.archive(source).having(labels)
        return sorted(keep)


class MatchCohortModel(_Answer):
    """The rules that hold a match in a set (``POST /v1/sets`` or ``.../versions`` take them)."""

    pointers: list[str] = Field(description="one joined rule per origin pointer (@in, and @every with every)")
    patients: list[str] = Field(description="the patients with the chosen data in every chosen archive")
    count: int = Field(description="how many patients")


# -- manifest files ------------------------------------------------------------------------------
ManifestFormat = Literal["gdc", "mediator"]


class ImportBody(_Body):
    """A manifest file to make a set of (TCIA ``.tcia``, IDC ``.s5cmd``, GDC manifest TSV, a MEDIator
    set export): either ``path``, a file on this machine, or its ``name`` and ``text``."""

    path: FilePath | None = Field(default=None, description="a manifest file on this machine (absolute path)")
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None, description='the file\'s name, with its extension ("lung.tcia"): it names the set'
    )
    text: Annotated[str, Field(max_length=1 << 20)] | None = Field(default=None, description="its content")
    visibility: VisibilityName = "private"


class ImportModel(_Answer):
    """A set made of a manifest file (``core.service.ImportResult``)."""

    set_id: str
    version: int = Field(description="its first version")
    count: int = Field(description="the items found in the archives: the pointers the version holds")
    missing: list[str] = Field(description="the items (series UIDs, file UUIDs...) no archive here holds")
    set: SetModel


class ExportRuleModel(_Answer):
    """A rule of an exported selection: a pointer, included or excluded."""

    include: bool
    source: str
    path: list[str]
    filters: dict[str, list[str]]


class SetExportModel(_Answer):
    """A set version as a file others can import (``format`` is ``mediator-set``)."""

    format: str
    version: int = Field(description="the version of the export format")
    name: str
    description: str
    selection: list[ExportRuleModel]
    exported_from: dict[str, Any] = Field(description="the set id and version number it came from")


# -- settings ------------------------------------------------------------------------------------
class SettingsValues(_Answer):
    """Every setting of the node (``core.settings.Settings``)."""

    data_dir: str
    download_dir: str
    download_layout: str
    display_name: str
    raft_address: str
    peers: list[str]
    sources: list[dict[str, Any]]
    discovery: bool
    start_at_login: bool
    update_check_minutes: int
    doi_service: str
    doi_url: str
    doi_repository: str
    doi_prefix: str
    publisher: str


class SettingFieldModel(_Answer):
    name: str
    title: str
    description: str
    live: bool = Field(description="true: a change applies at once; false: when the node starts next")

    @classmethod
    def of(cls, field: SettingField) -> SettingFieldModel:
        return cls(name=field.name, title=field.title, description=field.description, live=field.live)


class SettingsModel(_Answer):
    values: SettingsValues
    fields: list[SettingFieldModel]


class SettingsPatch(_Body):
    """The settings to change; a field left out (or null) stays as it is."""

    data_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    download_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    download_layout: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    display_name: SetName | None = None
    raft_address: Annotated[str, Field(max_length=300)] | None = None
    peers: list[Annotated[str, Field(min_length=3, max_length=300)]] | None = Field(
        default=None, max_length=100
    )
    sources: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    discovery: StrictBool | None = None
    start_at_login: StrictBool | None = None
    update_check_minutes: StrictInt | None = None
    doi_service: Literal["", "datacite", "zenodo"] | None = None
    doi_url: Annotated[str, Field(max_length=2000)] | None = None
    doi_repository: Annotated[str, Field(max_length=200)] | None = None
    doi_prefix: Annotated[str, Field(max_length=100)] | None = None
    publisher: Annotated[str, Field(max_length=300)] | None = None


class SettingsChangeModel(_Answer):
    settings: SettingsValues
    changed: list[str] = Field(description="the settings whose value changed")
    restart: list[str] = Field(description="those of them that apply when the node starts next")


# -- errors --------------------------------------------------------------------------------------
class ErrorModel(_Answer):
    error: str = Field(description="the error's class name: ConflictError, NotFound...")
    code: str | None = Field(default=None, description="its machine code: conflict, not_found...")
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


# -- publishing with a DOI -----------------------------------------------------------------------
MetadataProblems = errors.MetadataProblems  # its home is core.errors; named here for the routes


class CreatorModel(_Answer):
    """A person (``name`` is ``Family, Given``) or an organisation credited for the data."""

    name: str
    given: str = ""
    family: str = ""
    orcid: str = Field(
        default="", description="an ORCID iD, 0000-0002-1825-0097 or its https://orcid.org/ URL"
    )
    affiliation: str = ""


class RelatedModel(_Answer):
    """An identifier the data relates to (a source collection's DOI it ``References``)."""

    identifier: str
    kind: str = "DOI"
    relation: str = "References"


class DoiMetadataModel(_Answer):
    """What a DOI record says of a published version (DataCite's kernel 4; Zenodo's deposit form
    is made from it). ``GET .../publication/suggested`` gives one to start a form with."""

    title: str
    creators: list[CreatorModel]
    publisher: str
    year: int
    description: str = ""
    subjects: list[str] = Field(default_factory=list, description="keywords")
    license: str = Field(default="", description="an SPDX licence id, e.g. CC-BY-4.0")
    funding: list[str] = Field(default_factory=list, description="funders' names")
    related: list[RelatedModel] = Field(default_factory=list)
    version: str = ""
    resource_type: str = "Dataset"
    size: str = ""
    formats: list[str] = Field(default_factory=lambda: ["application/ld+json"])


# The metadata a publish request sends: types only. Every rule of the record (a title's length, an
# ORCID's check digit, the year...) is checked by ``core.publishing.DoiMetadata.problems`` and
# answered by field (``MetadataProblems``), not as a 422 about the request.
_Line = Annotated[str, Field(max_length=100_000)]


class CreatorBody(_Body):
    name: _Line = ""
    given: _Line = ""
    family: _Line = ""
    orcid: _Line = ""
    affiliation: _Line = ""


class RelatedBody(_Body):
    identifier: _Line
    kind: _Line = "DOI"
    relation: _Line = "References"


class DoiMetadataBody(_Body):
    """The DOI record of a version to publish; a field left out is empty (and reported if required)."""

    title: _Line = ""
    creators: list[CreatorBody] = Field(default_factory=list, max_length=1000)
    publisher: _Line = ""
    year: StrictInt = 0
    description: _Line = ""
    subjects: list[_Line] = Field(default_factory=list, max_length=1000)
    license: _Line = ""
    funding: list[_Line] = Field(default_factory=list, max_length=1000)
    related: list[RelatedBody] = Field(default_factory=list, max_length=1000)
    version: _Line = ""
    resource_type: _Line = "Dataset"
    size: _Line = ""
    formats: list[_Line] = Field(default_factory=lambda: ["application/ld+json"], max_length=100)


DoiService = Literal["", "none", "datacite", "zenodo"]


class PublishBody(_Body):
    metadata: DoiMetadataBody | None = Field(
        default=None, description="the DOI record; null: the suggested one (publication/suggested)"
    )
    landing_url: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None,
        description="the https:// page the DOI resolves to (DataCite needs one; Zenodo makes its own)",
    )
    service: DoiService | None = Field(
        default=None,
        description='who mints the DOI: datacite, zenodo, "" or none: no DOI; null: the doi_service setting',
    )


class PublicationModel(_Answer):
    """A published version and how far its DOI got (``doi_state``: queued, findable, failed or
    none: published without a DOI)."""

    set_id: str
    version: int
    doi: str | None
    doi_state: Literal["none", "queued", "findable", "failed"]
    status: str = Field(description='what a set shows: "DOI 10.x/y", "publishing…", "failed: reason; retry"')
    error: str = Field(description="why the last try failed ('' when none did)")
    service: str = Field(description="datacite, zenodo or '' (no DOI)")
    landing_url: str = Field(description="where the DOI resolves (once minted: the service's record page)")
    doi_url: str | None = Field(description="https://doi.org/DOI once minted")
    attempts: int
    title: str
    creators: list[str]
    publication_year: int | None
    publisher_key: str
    time: float
    metadata: DoiMetadataModel | None = Field(description="the DOI record (null: published without one)")


class CitationModel(_Answer):
    """How a paper cites a published version."""

    text: str = Field(description="DataCite's text style")
    bibtex: str
    availability: str = Field(
        description="a data availability statement naming the source collections with their DOIs and licences"
    )


class PublishingSecretBody(_Body):
    service: Literal["datacite", "zenodo"]
    secret: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="the DataCite password or the Zenodo token (kept in the OS keyring, never echoed)"
    )


class ProblemsModel(ErrorModel):
    """An error; a ``ValidationError`` of publication metadata names every problem by field."""

    detail: dict[str, str] = Field(
        default_factory=dict,
        description="the problems by field: title, creators.0.orcid, year, landing_url...",
    )


def build_bodies() -> None:
    """Build every request body's validator now and make it an eager model from here on: FastAPI
    wraps each in its own ``body`` alias, which pydantic warns about (and builds per request)
    for a model that still says ``defer_build``."""
    bodies: list[type[_Body]] = [_Body]
    while bodies:
        body = bodies.pop()
        body.model_config["defer_build"] = False
        body.model_rebuild(force=True)
        bodies.extend(body.__subclasses__())
