"""The Interface API: what every archive adapter offers (``DataSource``) and what it hands back.

A source declares its levels (``Hierarchy``); the last is the leaf level. It browses the children
of a path, page by page, with counts and sizes where the archive gives them; lists the values a
metadata filter can take; and resolves a selection into a manifest of leaves with fingerprints.
For downloads it plans a leaf: the files to fetch (URLs with sizes and checksums), the metadata
the folder layout uses, and an optional step that turns what arrived into the leaf's files (a zip
unpacked, a multipart body split); the transfer engine (``core.transfer``) schedules, resumes,
verifies and places them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mediator_desktop.core.manifest import Leaf, Manifest
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Selection


@dataclass(frozen=True, slots=True)
class BrowseItem:
    """One child of a path: a collection, a patient, a study, a series..."""

    key: str
    level: str
    label: str = ""
    leaves: int | None = None  # leaves below it (series, objects, files), if known
    size: int | None = None  # bytes below it, if known
    details: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class BrowsePage:
    items: tuple[BrowseItem, ...]
    offset: int
    total: int  # children in all, for paging

    @property
    def more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file to fetch: a URL the transport can GET (``http(s)://`` or ``file://``).

    Attributes:
        name: the file's name inside its leaf's folder (made safe again by the engine).
        size: bytes, when the archive says; checked after the download.
        md5: hex MD5, when the archive gives one (TCIA, GDC, single-part S3 ETags); checked.
        headers: extra request headers (an archive's token, ``Accept``).
        refused: what to tell the user when the archive refuses it (HTTP 401/403), e.g. which
            access it needs; None for the generic advice.
    """

    url: str
    name: str
    size: int | None = None
    md5: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    refused: str | None = None


class LazyFields(Mapping[str, str]):
    """Layout fields computed on first use: metadata that costs an archive request (a series'
    modality from TCIA or a PACS) is asked for only when the layout names it."""

    def __init__(self, **getters: Callable[[], str]) -> None:
        self._getters = getters
        self._values: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._values:
            self._values[name] = self._getters[name]()
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._getters)

    def __len__(self) -> int:
        return len(self._getters)


#: Turns the files that arrived (in a staging folder) into the leaf's files, in the same folder,
#: verifying what the transport could not (a zip's MD5 list, the instances of a multipart body).
#: Raises ``IntegrityError`` when the content is wrong. Called on a worker thread.
Finish = Callable[[Path, list[Path]], list[Path]]


@dataclass(frozen=True, slots=True)
class LeafPlan:
    """How to download one leaf.

    Attributes:
        files: what to fetch.
        fields: metadata for the folder layout (``modality``...); the leaf's keys are added by the
            engine under the hierarchy's level names.
        finish: see ``Finish``; None when the fetched files are the leaf's files.
        count: how many files the leaf must end with (a series' instances), when known.
        heavy: ``finish`` is CPU-bound (unzipping, hashing) and picklable, so the engine may run it
            in a worker process, off the GIL.
    """

    files: tuple[RemoteFile, ...]
    fields: Mapping[str, str] = field(default_factory=dict)
    finish: Finish | None = None
    count: int | None = None
    heavy: bool = False


class DataSource(Protocol):
    """An archive, as the rest of the app sees it. Methods may block on I/O: call them off the GUI thread."""

    source_id: str
    title: str
    hierarchy: Hierarchy

    @property
    def filterable(self) -> tuple[str, ...]:
        """Metadata names ``filters`` may use (``Modality``, ``BodyPartExamined``...)."""
        ...

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        """Children of ``path`` (the root: the first level), sorted by key."""
        ...

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        """The values metadata ``name`` takes below ``path``, sorted."""
        ...

    def resolve(self, selection: Selection) -> Manifest:
        """The leaves of this source that ``selection`` selects, with their fingerprints."""
        ...

    #: Connections the transfer engine may open to this archive at once.
    connections: int

    def plan(self, leaf: Leaf) -> LeafPlan:
        """What to fetch for ``leaf`` (may ask the archive for a listing, never for the data).

        Raises ``SourceError`` when the archive cannot say, ``IntegrityError`` when what it holds
        no longer matches the leaf's fingerprint (the set should be resolved again).
        """
        ...


# -- what a kind of source needs, for forms and commands --------------------------------------------
@dataclass(frozen=True, slots=True)
class SourceOption:
    """One option of a kind of source, as the "Add archive" form and ``mediator sources add`` ask it.

    Attributes:
        kind: how to ask and check it: ``text``, ``url``, ``folder``, ``int`` or ``bool``.
    """

    name: str
    title: str
    help: str = ""
    required: bool = False
    kind: str = "text"
    default: str | int | bool | None = None


def whole_number(value: object, default: int, name: str) -> int:
    """An option that counts something (``connections``), read from a form or a command: text or
    a number, at least 1; blank gives ``default``. Raises ``ValidationError`` naming the option."""
    from mediator_desktop.core.errors import ValidationError

    if value in (None, ""):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValidationError(f"{name} is a whole number, not {value!r}") from None
    if number < 1:
        raise ValidationError(f"{name} must be at least 1, not {number}")
    return number


@dataclass(frozen=True, slots=True)
class SourceKind:
    """A kind of source (``idc``, ``tcia``...): what it is and which options it takes.

    Attributes:
        secret: what the secret kept in the OS keyring is to this kind ("password", "token"), or
            None when it takes none.
    """

    name: str
    title: str
    description: str = ""
    options: tuple[SourceOption, ...] = ()
    secret: str | None = None
    secret_help: str = ""

    def check(self, options: Mapping[str, object]) -> None:
        """Raises ``ValidationError`` naming unknown options and missing required ones."""
        from mediator_desktop.core.errors import ValidationError

        known = {o.name for o in self.options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValidationError(
                f"a {self.name} source has no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(known)) or 'none'}"
            )
        missing = [o.name for o in self.options if o.required and options.get(o.name) in (None, "")]
        if missing:
            raise ValidationError(f"a {self.name} source needs {', '.join(missing)}")


# -- sources that index what they hold (a local folder) ---------------------------------------------
@dataclass(frozen=True, slots=True)
class ScanReport:
    """What one (re-)index of a source did."""

    read: int = 0  # files whose headers were read (new or modified)
    unchanged: int = 0
    removed: int = 0
    skipped: tuple[tuple[str, str], ...] = ()  # (relative path, reason) of files that are not usable

    @property
    def files(self) -> int:
        return self.read + self.unchanged

    def summary(self) -> str:
        skipped = f", {len(self.skipped):,} skipped (not DICOM images)" if self.skipped else ""
        return (
            f"indexed {self.files:,} files: {self.read:,} read, {self.unchanged:,} unchanged, "
            f"{self.removed:,} gone{skipped}"
        )


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """How far an index of a source is: ``done`` of ``total`` files looked at."""

    source_id: str
    done: int
    total: int | None
    finished: bool = False
    report: ScanReport | None = None
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.source_id}: indexing failed: {self.error}"
        if self.finished and self.report is not None:
            return f"{self.source_id}: {self.report.summary()}"
        total = f"{self.total:,}" if self.total is not None else "?"
        return f"{self.source_id}: indexing {total} files... ({self.done:,} done)"


class Scanning(Protocol):
    """A source that indexes what it holds (a local folder): on first use and when it changes, in
    the background, and on demand."""

    source_id: str

    def watch(self, on_progress: Callable[[ScanProgress], None]) -> None:
        """Index now in the background (when never indexed) and again whenever the folder changes;
        report progress to ``on_progress`` (from a background thread)."""
        ...

    def rescan(self) -> ScanReport:
        """Index again now (new and modified files only); blocks until done."""
        ...

    def close(self) -> None: ...


# -- sources that can say what changed cheaply (update tracking) ------------------------------------
@dataclass(frozen=True, slots=True)
class Tracked:
    """What one source's part of a replica set resolves to now, found by ``Tracking.track``.

    Attributes:
        manifest: this source's leaves the selection selects now (all of them, not only changes).
        state: the archive state checked against, for people: ``IDC v25``,
            ``TCIA as of 2026-12-06 10:02 UTC``.
        notes: what the user should know about the changes (``2 revised series: the pinned
            versions stay downloadable (served in IDC v18 to v22)``).
    """

    manifest: Manifest
    state: str = ""
    notes: tuple[str, ...] = ()


class Tracking(Protocol):
    """A source that finds what changed in a selection with fewer requests than resolving it
    again (TCIA's "updated since" queries, IDC's newer index). Sources without it are resolved
    again in full by the tracker."""

    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects in this source now.

        Args:
            selection: the set version's selection (rules of other sources are ignored).
            base: this source's leaves as they were at ``since`` (the pinned version's, or what
                the last check found); the answer may reuse every leaf the archive says is unchanged.
            since: when ``base`` was last known to be the archive's state (Unix time), None
                when unknown: then resolve in full.

        Raises ``SourceError`` when the archive is down or answers garbage: the tracker records
        the failure and writes no drift from a partial answer.
        """
        ...


# -- sources a clinical table joins to (the Integrator) ---------------------------------------------
#: Level names that hold patients, for sources that do not name theirs (``patient_level``).
PATIENT_LEVELS = ("patient", "case", "subject")


#: What a kind of data is, for people: the "matching data" view groups archives by it, so a case's
#: slides in IDC (SM series) and in a pathology archive show side by side.
CATEGORIES = ("radiology", "pathology", "genomics", "clinical", "other")


@dataclass(frozen=True, slots=True)
class DataKind:
    """One kind of data an archive holds for some patients (CT, SM, RNA-Seq, slide images).

    Attributes:
        label: what people call it: ``CT``, ``SM``, ``RNA-Seq``, ``slide``.
        category: one of ``CATEGORIES``.
        filter: the metadata filter that selects exactly this kind (``("Modality", "CT")``,
            ``("experimental_strategy", "RNA-Seq")``), or None when it is all the archive holds.
        patients: the patients that have it.
        leaves: how many leaves (series, files, slides) of it they have in all.
        size: bytes of those leaves, when known.
    """

    label: str
    category: str
    filter: tuple[str, str] | None
    patients: frozenset[str]
    leaves: int
    size: int | None = None


class Joining(Protocol):
    """A source that finds patients by their IDs below a scope faster than browsing for them (IDC's
    index, an S3 key template). Sources without it are browsed down to their patient level."""

    #: The level that holds patients (``patient``, ``case``...), or None when there is none.
    patient_level: str | None

    def join_patients(self, scope: Pointer, patients: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
        """For each of ``patients`` this source holds below ``scope`` (a pointer into it that stops
        above the patient level; its filters narrow what counts), the paths down to the patient
        level. Patients it lacks are left out."""
        ...


class Describing(Protocol):
    """A source that says which kinds of data it holds for patients (IDC's modalities, GDC's
    experimental strategies), for the "matching data" view. Without it, all of a source's leaves
    are one kind, named after its leaf level."""

    def data_kinds(self, scope: Pointer, patients: Collection[str]) -> list[DataKind]:
        """The kinds of data ``patients`` have below ``scope`` (its filters narrow what counts),
        each with the patients that have it; kinds nobody has are left out."""
        ...


# -- sources that show a picture of a leaf (previews) ------------------------------------------------
class Previewing(Protocol):
    """A source that can show a small picture of a series cheaply: a local file decoded, one
    instance fetched, a rendered image asked of a DICOMweb server. Sources without it show none."""

    def preview(self, path: tuple[str, ...]) -> bytes | None:
        """A thumbnail of the leaf at ``path``: PNG or JPEG bytes (at most a few hundred pixels a
        side), or None when the leaf holds nothing to picture. Blocks on I/O and decoding: call it
        on a worker.

        Raises ``NotFound`` when the archive no longer holds the leaf, ``SourceError`` saying why
        when it cannot be pictured (an undecodable file, the archive unreachable).
        """
        ...
