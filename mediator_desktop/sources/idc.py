"""NCI Imaging Data Commons, browsed and resolved offline from the real index.

The ``idc-index-data`` package carries IDC's series index as Parquet (about 1,044,000 series in
179 collections). This source reads the columns it needs with pyarrow once, then answers browsing
and resolution with vectorised Arrow compute, so the whole of IDC is browsable without an account
or a network. Levels: collection > patient > study > series; a leaf is a series.

Fingerprint of a series: size in bytes, instance count, ``crdc_series_uuid`` (an immutable series
version: a revised series gets a new one) and the IDC release that last revised it.

Update tracking: a set pinned at an earlier release is checked against the index in use, which is
the newest of the installed one and one fetched from IDC's published index files into the app's
data folder (``refresh``). ``prior_versions_index`` says which releases served a version that the
index no longer has, and where it still lies, so pinned versions keep downloading until the user
accepts the update. ``index_at_release`` rebuilds IDC as it was at an earlier release from the
installed files, for tests and benchmarks with real changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from mediator_desktop.core.errors import IntegrityError, NotFound, SourceError, ValidationError
from mediator_desktop.core.manifest import (
    TAB,
    US,
    Leaf,
    Manifest,
    encode_fingerprint,
    encode_key,
    escape_component,
    unescape_component,
)
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.publishing import Reference
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    DataKind,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
    Tracked,
)
from mediator_desktop.sources import http

if TYPE_CHECKING:
    import pyarrow as pa
    import requests

#: Where IDC publishes the index files of its newest release (idc-index-data's release artifacts;
#: ``<version>/release_artifacts`` instead of ``current/...`` pins one release).
INDEX_URL = "https://storage.googleapis.com/idc-index-data-artifacts/current/release_artifacts"
INDEX_FILE = "idc_index.parquet"
PRIOR_FILE = "prior_versions_index.parquet"
#: Seconds between two looks for a newer published index.
REFRESH_SECONDS = 6 * 3600.0

KIND = SourceKind(
    "idc",
    "NCI Imaging Data Commons",
    "The public collections of IDC, browsed offline from the index installed with the app; "
    "series download anonymously from IDC's public buckets.",
    options=(
        SourceOption(
            "index",
            "Series index",
            "Path to an IDC series index (.parquet) to use instead of the installed one.",
        ),
        SourceOption(
            "endpoint_url",
            "S3 endpoint",
            "An S3 endpoint holding IDC's buckets, other than AWS (a mirror); empty for AWS.",
            kind="url",
        ),
        SourceOption(
            "index_url",
            "Published index",
            "Where IDC publishes the index of its newest release, looked at every few hours when "
            "online (unless a series index is given); empty for IDC's own.",
            kind="url",
            default=INDEX_URL,
        ),
    ),
)

log = logging.getLogger(__name__)
PATH_COLUMNS = ("collection_id", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")
#: What a modality is, for the "matching data" view; other modalities are radiology.
_MODALITY_CATEGORY = {
    "SM": "pathology",
    **{
        m: "other"
        for m in ("ANN", "SEG", "SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "KO", "PR", "RWV", "OT")
    },
}
FILTERABLE = ("Modality", "BodyPartExamined")
COLUMNS = (
    *PATH_COLUMNS,
    *FILTERABLE,
    "instanceCount",
    "series_size_MB",
    "crdc_series_uuid",
    "aws_bucket",
    "series_revised_idc_version",
)
_NEEDS_ESCAPE = r"[\x00-\x1f%]"
_DICTIONARY_COLUMNS = ("collection_id", "PatientID", "StudyInstanceUID", *FILTERABLE, "aws_bucket")
_FINGERPRINT_COLUMNS = ("instanceCount", "series_size_MB", "crdc_series_uuid", "series_revised_idc_version")
#: What names studies, series and patients for people (``core.labels``), read when the index has it.
_LABEL_COLUMNS = (
    "StudyDate",
    "StudyDescription",
    "SeriesNumber",
    "SeriesDescription",
    "PatientAge",
    "PatientSex",
)
#: The label columns that describe each level's entries (collections have none).
_LEVEL_LABELS = {1: ("PatientAge", "PatientSex"), 2: ("StudyDate", "StudyDescription")}
#: Rows encoded at a time when resolving.
_BATCH = 65_536
#: The schema metadata key of idc-index-data's files that names the package version that made them.
_VERSION_KEY = b"idc_index_data_version"
_PRIOR_COLUMNS = ("crdc_series_uuid", "aws_bucket", "Modality", "min_idc_version", "max_idc_version")
#: A published index larger than this is refused (garbage must not fill the disk).
_MAX_INDEX_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class SeriesChange:
    """A pinned IDC series version that the current index no longer serves."""

    leaf: Leaf
    current_version: str | None  # the series' crdc_series_uuid today; None: withdrawn
    served_in: tuple[int, int] | None  # first and last IDC release of the pinned version

    @property
    def withdrawn(self) -> bool:
        return self.current_version is None


@dataclass(frozen=True, slots=True)
class _PriorVersion:
    """Where a series version the index no longer lists still lies, from prior_versions_index."""

    bucket: str | None
    modality: str | None
    served_in: tuple[int, int]


def default_index_path() -> Path:
    try:
        import idc_index_data
    except ImportError:
        raise SourceError(
            "the IDC index is not installed (package idc-index-data); reinstall MEDIator Desktop"
        ) from None
    return Path(str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH))


def default_prior_path() -> Path | None:
    """The installed prior_versions_index, if idc-index-data is installed."""
    try:
        import idc_index_data
    except ImportError:
        return None
    path = idc_index_data.PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH
    return None if path is None else Path(str(path))


def index_version(path: Path) -> str | None:
    """The idc-index-data version an index file was made by (``25.0.5-0-gf08b112``), from its
    Parquet schema metadata (only the footer is read); None when it names none or is unreadable."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return None
    value = metadata.get(_VERSION_KEY)
    return value.decode("utf-8", "replace") if value else None


def _version_key(version: str | None) -> tuple[int, ...]:
    """``25.0.5-0-gf08b112`` -> (25, 0, 5): what orders two index files; () when unknown."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version or "")
    return tuple(int(n) for n in match.groups() if n is not None) if match else ()


def index_release(path: Path) -> int | None:
    """The IDC release an index file describes (its idc-index-data major version), if it says."""
    key = _version_key(index_version(path))
    return key[0] if key else None


#: Columns of the index that name one version of a series: never copied from another version.
_VERSION_COLUMNS = (
    "crdc_series_uuid",
    "series_aws_url",
    "aws_bucket",
    "series_size_MB",
    "instanceCount",
    "series_revised_idc_version",
)


def index_at_release(
    release: int,
    out: Path,
    *,
    index: Path | None = None,
    prior: Path | None = None,
    collections: Sequence[str] | None = None,
) -> Path:
    """IDC's series index as it was at an earlier ``release``, rebuilt from a later index and its
    prior_versions_index (default: the installed ones), written to ``out`` (Parquet, every column
    of ``index``, in key order) for ``IdcSource(index_path=out)``.

    At ``release`` R, a series of the index that IDC added and last revised at or before R is as
    it is; a series revised after R, and one removed since R, is the version prior_versions_index
    says IDC served at R (``min_idc_version <= R <= max_idc_version``), with that version's
    uuid, bucket, URL and size, ``series_revised_idc_version`` = the first release that served it,
    no ``instanceCount`` (the prior index does not say), and its other columns from the series'
    current version where the series still exists (else empty). A series revised after R that
    no prior version covers is left out: what IDC served then is unknown.

    ``collections`` limits the rebuild to those collections (a quicker, smaller file).

    The file's ``idc_index_data_version`` metadata starts with R (``22.0.0-reconstructed-from-
    25.0.5-0-gf08b112``), so ``index_release`` and ``IdcSource.state`` say ``22``.

    Raises:
        ValidationError: R is not a release between 1 and the index's own.
        SourceError: an index file is missing or unreadable.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    index = index or default_index_path()
    prior = prior or default_prior_path()
    if prior is None:
        raise SourceError("IDC: prior_versions_index is not installed (package idc-index-data)")
    only = None if collections is None else [("collection_id", "in", list(collections))]
    try:
        schema = pq.read_schema(index)
        old = pq.read_table(
            prior, columns=[*PATH_COLUMNS, *_PRIOR_COLUMNS, "series_size_MB", "series_aws_url"], filters=only
        )
    except (OSError, ValueError) as exc:
        raise SourceError(f"IDC: cannot read the index files: {exc}") from None
    version = (schema.metadata or {}).get(_VERSION_KEY, b"").decode("utf-8", "replace")
    newest = _version_key(version)
    if not newest or not 1 <= release <= newest[0]:
        raise ValidationError(
            f"IDC release {release} cannot be rebuilt from {index.name} (release {version or 'unknown'})"
        )
    # Values that repeat stay dictionary-encoded in memory; the file keeps the index's own types.
    unique = {"SeriesInstanceUID", "crdc_series_uuid", "series_aws_url"}
    text = [f.name for f in schema if f.name not in unique and pa.types.is_large_string(f.type)]
    try:
        full = pq.read_table(index, read_dictionary=text, filters=only)
    except (OSError, ValueError) as exc:
        raise SourceError(f"IDC: cannot read the index {index}: {exc}") from None
    n = full.num_rows
    as_it_was = pc.fill_null(
        pc.and_(
            pc.less_equal(full.column("series_init_idc_version"), release),
            pc.less_equal(full.column("series_revised_idc_version"), release),
        ),
        False,
    )
    # The index row of each earlier version's series (hash the few prior ones, not the index).
    at = _versions_at(old, release)
    hit = pc.index_in(
        full.column("SeriesInstanceUID"), value_set=at.column("SeriesInstanceUID").combine_chunks()
    )
    found = pc.is_valid(hit)
    full_rows = pc.indices_nonzero(found).to_numpy()
    at_rows = hit.filter(found).to_numpy()
    now = np.full(at.num_rows, -1, dtype=np.int64)
    now[at_rows] = full_rows
    # A series the index has as it was at R is taken from the index.
    shadowed = np.zeros(at.num_rows, dtype=bool)
    shadowed[at_rows] = as_it_was.to_numpy()[full_rows]
    at, now = at.filter(pa.array(~shadowed)), now[~shadowed]
    extra = _as_index_rows(at, pa.array(now, mask=now < 0), old, full)
    # Key order, as IDC's index has it: the resolver then needs no sort.
    kept = pc.indices_nonzero(as_it_was)
    keys = pa.table(
        {
            c: pa.chunked_array(
                [
                    *full.column(c).filter(as_it_was).cast(pa.large_string()).chunks,
                    *extra.column(c).cast(pa.large_string()).chunks,
                ],
                pa.large_string(),
            )
            for c in PATH_COLUMNS
        }
    )
    ids = np.concatenate([kept.to_numpy().astype(np.int64), np.arange(n, n + extra.num_rows)])
    order = ids[pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in PATH_COLUMNS]).to_numpy()]
    del keys
    metadata = {_VERSION_KEY: f"{release}.0.0-reconstructed-from-{version}".encode()}
    target = schema.remove_metadata().with_metadata(metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.part")
    try:
        with pq.ParquetWriter(temporary, target, compression="zstd") as writer:
            for start in range(0, len(order), 131_072):
                piece = _rows(full, extra, order[start : start + 131_072])
                writer.write_table(
                    pa.table([piece.column(f.name).cast(f.type) for f in target], schema=target)
                )
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return out


def _rows(full: pa.Table, extra: pa.Table, ids: Any) -> pa.Table:
    """Rows ``ids`` (numpy) of ``full`` followed by ``extra``, in that order."""
    import numpy as np
    import pyarrow as pa

    n = full.num_rows
    from_full = ids < n
    if from_full.all():
        return full.take(ids)
    a, b = ids[from_full], ids[~from_full] - n
    both = pa.concat_tables([full.take(a), extra.take(b)])
    where = np.empty(len(ids), dtype=np.int64)
    where[from_full] = np.arange(len(a))
    where[~from_full] = np.arange(len(a), len(ids))
    return both.take(where)


def _versions_at(old: pa.Table, release: int) -> pa.Table:
    """The rows of prior_versions_index served at ``release``, one per series."""
    import pyarrow as pa
    import pyarrow.compute as pc

    served = pc.and_(
        pc.less_equal(old.column("min_idc_version"), release),
        pc.greater_equal(old.column("max_idc_version"), release),
    )
    at = old.filter(served)
    if at.num_rows < 2:
        return at
    # Rows of one version differ by bucket only; two versions of a series at once would be an
    # error of the prior index: keep the one served last.
    at = at.take(
        pc.sort_indices(at, sort_keys=[("SeriesInstanceUID", "ascending"), ("min_idc_version", "descending")])
    )
    series = at.column("SeriesInstanceUID").combine_chunks()
    first = pc.not_equal(series.slice(1), series.slice(0, len(series) - 1))
    return at.filter(pa.concat_arrays([pa.array([True]), first]))


def _as_index_rows(earlier: pa.Table, now: pa.Array, old: pa.Table, full: pa.Table) -> pa.Table:
    """Prior versions as rows of ``full``'s schema (see ``index_at_release``); ``now``: the row
    of each one's series in ``full``, null for a removed series."""
    import pyarrow as pa
    import pyarrow.compute as pc

    first_served = old.group_by("crdc_series_uuid").aggregate([("min_idc_version", "min")])
    first_of_version = first_served.column("min_idc_version_min").take(
        pc.index_in(earlier.column("crdc_series_uuid"), value_set=first_served.column("crdc_series_uuid"))
    )
    first_seen = old.group_by("SeriesInstanceUID").aggregate([("min_idc_version", "min")])
    first_of_series = first_seen.column("min_idc_version_min").take(
        pc.index_in(earlier.column("SeriesInstanceUID"), value_set=first_seen.column("SeriesInstanceUID"))
    )
    added = pc.min_element_wise(first_of_series, full.column("series_init_idc_version").take(now))
    given: dict[str, Any] = {
        **{c: earlier.column(c) for c in ("series_size_MB", "series_aws_url", "aws_bucket", "Modality")},
        **{c: earlier.column(c) for c in (*PATH_COLUMNS, "crdc_series_uuid")},
        "series_revised_idc_version": first_of_version,
        "series_init_idc_version": added,
    }
    columns = []
    for f in full.schema:
        if f.name in given:
            column = (
                pa.chunked_array([given[f.name]]) if isinstance(given[f.name], pa.Array) else given[f.name]
            )
            if pa.types.is_dictionary(f.type):
                values = column.cast(f.type.value_type)
                column = pa.chunked_array([chunk.dictionary_encode() for chunk in values.chunks], f.type)
            else:
                column = column.cast(f.type)
        elif f.name in _VERSION_COLUMNS:
            column = pa.nulls(earlier.num_rows, f.type)
        else:
            column = full.column(f.name).take(now)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=full.schema)


def _rank(rule: Rule) -> tuple[int, int, int, bool]:
    """Order in which rules are laid over each other: later ones win where they match.

    Deeper first loses to deeper; at one depth, more filter constraints win; at a tie, exclusions
    come last, so they win (as ``decide`` has it for rules that do not cover each other).
    """
    filters = rule.pointer.filters
    return (rule.pointer.depth, len(filters), -sum(len(v) for _, v in filters), rule.include)


def _order(paths: pa.Table) -> tuple[bool, bool]:
    """Whether the rows are already in key order (IDC's index is, so no sort is needed), and
    whether two neighbouring rows share a whole path (a leaf named twice)."""
    import pyarrow.compute as pc

    n = paths.num_rows
    if n < 2:
        return True, False
    later = same = None  # built from the last column to the first
    for name in reversed(paths.column_names):
        column = paths.column(name)
        a, b = column.slice(0, n - 1), column.slice(1)
        less, equal = pc.less(b, a), pc.equal(b, a)
        later = less if later is None else pc.or_(less, pc.and_(equal, later))
        same = equal if same is None else pc.and_(equal, same)
    return not pc.any(later).as_py(), bool(pc.any(same).as_py())


def _runs(rules: Sequence[Rule]) -> list[list[Rule]]:
    """Rules in order, with neighbouring rules that differ only in their last key grouped (whole
    collections, or the patients a clinical table joined): one set lookup instead of a pass each."""
    runs: list[list[Rule]] = []
    for rule in rules:
        p = rule.pointer
        last = runs[-1][0] if runs else None
        if (
            last is not None
            and p.depth > 0
            and last.pointer.depth == p.depth
            and last.pointer.path[:-1] == p.path[:-1]
            and last.pointer.filters == p.filters
            and last.include == rule.include
        ):
            runs[-1].append(rule)
        else:
            runs.append([rule])
    return runs


def _has_unordered_conflicts(rules: Sequence[Rule]) -> bool:
    """Whether two rules of one depth, neither covering the other, overlap with opposite modes:
    then the layered evaluation may differ from ``decide`` and the exact path is taken."""
    by_depth: dict[tuple[int, bool], list[Rule]] = {}
    for rule in rules:
        by_depth.setdefault((rule.pointer.depth, rule.include), []).append(rule)
    for (depth, include), kept in by_depth.items():
        if include:
            continue
        for b in kept:  # exclusions are few: pair each with the inclusions of its depth
            for a in by_depth.get((depth, True), ()):
                if (
                    a.pointer.intersects(b.pointer)
                    and not a.pointer.covers(b.pointer)
                    and not b.pointer.covers(a.pointer)
                ):
                    return True
    return False


class IdcSource:
    """The IDC series index as a ``DataSource``. Thread-safe; loads the index on first use."""

    source_id: str = "idc"
    title: str = "NCI Imaging Data Commons"
    hierarchy: Hierarchy = Hierarchy(("collection", "patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    connections: int = 16

    def __init__(
        self,
        index_path: Path | None = None,
        *,
        endpoint_url: str | None = None,
        data_dir: Path | None = None,
        index_url: str | None = None,
        index_timeout: tuple[float, float] = (5.0, 60.0),
        backoff: float = 0.5,
    ) -> None:
        """Args:
        index_path: exactly this series index, never another (default: the newest of the one
            idc-index-data ships and one fetched into ``data_dir``).
        endpoint_url: the S3 endpoint holding IDC's public buckets (default: AWS).
        data_dir: the folder of this source's fetched index files; None: never fetch one.
        index_url: where IDC publishes its newest index files (default: ``INDEX_URL``).
        index_timeout: connect and read timeouts when fetching them (seconds).
        backoff: first wait before retrying a failed fetch (seconds; it doubles).
        """
        self._index_path = index_path
        self.endpoint_url = endpoint_url
        self._data_dir = None if index_path is not None else data_dir
        self.index_url = (index_url or INDEX_URL).rstrip("/")
        self.index_timeout = index_timeout
        self.backoff = backoff
        #: Seconds between two looks for a newer published index.
        self.refresh_seconds = REFRESH_SECONDS
        self._refresh_lock = threading.Lock()
        self._session: requests.Session | None = None
        self._in_use: Path | None = None  # the index file loaded
        self._version: str | None = None  # its idc-index-data version
        self._prior: pa.Table | None = None  # prior_versions_index rows, once read
        #: Listings go through libcurl: one per series, so their CPU cost adds up.
        self._getter = http.CurlGetter()
        #: Objects per listing page (S3's default, 1,000, when None).
        self.list_page_size: int | None = None
        self._table: pa.Table | None = None
        self._collections: list[BrowseItem] = []
        self._clean_keys: bool | None = None
        self._lock = threading.Lock()
        self._by_uuid: tuple[Any, Any] | None = None

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the index (about a second); later calls return at once."""
        with self._lock:
            if self._table is not None:
                return
            path = self._newest_index()
            table, collections = self._read(path)
            self._use(path, table, collections)
        self._clean()

    def _newest_index(self) -> Path:
        """The index to use: the one given, else the newer of the installed and the fetched one."""
        if self._index_path is not None:
            return self._index_path
        fetched = None if self._data_dir is None else self._data_dir / INDEX_FILE
        if fetched is None or not fetched.exists():
            return default_index_path()
        try:
            installed = default_index_path()
        except SourceError:
            return fetched
        newer = _version_key(index_version(fetched)) > _version_key(index_version(installed))
        return fetched if newer else installed

    def _read(self, path: Path) -> tuple[pa.Table, list[BrowseItem]]:
        import pyarrow.parquet as pq

        try:
            # Repeated values stay dictionary-encoded: a smaller table in memory.
            # The readable names' columns (StudyDate...), where the index has them, stay
            # dictionary-encoded too: about 65 MB for IDC's million series.
            names = set(pq.read_schema(path).names)
            labels = [c for c in _LABEL_COLUMNS if c in names]
            table = pq.read_table(
                path, columns=[*COLUMNS, *labels], read_dictionary=[*_DICTIONARY_COLUMNS, *labels]
            )
        except (OSError, ValueError) as exc:
            raise SourceError(f"IDC: cannot read the index {path}: {exc}") from None
        if table.num_rows and table.column(0).num_chunks > 1:
            # One dictionary per row group: grouping and comparing need one per column.
            table = table.unify_dictionaries()
        return table, self._group(table, 0)

    def _use(self, path: Path, table: pa.Table, collections: list[BrowseItem]) -> None:
        """Make ``table`` (read from ``path``) the index in use. Called with ``_lock`` held."""
        self._collections = collections
        self._table = table
        self._in_use = path
        self._version = index_version(path)
        self._clean_keys = None
        self._by_uuid = None
        self._prior = None

    def _loaded(self) -> pa.Table:
        if self._table is None:
            self.load()
        assert self._table is not None
        return self._table

    @property
    def series_count(self) -> int:
        return int(self._loaded().num_rows)

    @property
    def release(self) -> int | None:
        """The IDC release of the index in use (loads it), None when its file does not say."""
        self._loaded()
        key = _version_key(self._version)
        return key[0] if key else None

    @property
    def state(self) -> str:
        """The index in use, for people: ``IDC v25``."""
        release = self.release
        if release is not None:
            return f"IDC v{release}"
        return f"IDC index {self._in_use.name if self._in_use else ''}".rstrip()

    def check(self) -> str:
        """What the index holds (loads it if needed; no network).

        Raises:
            SourceError: the index is missing or unreadable.
        """
        series = self.series_count
        release = "" if self.release is None else f" (release v{self.release})"
        return f"IDC index{release}: {len(self._collections):,} collections, {series:,} series"

    # -- selection masks -----------------------------------------------------------------------
    def _mask(self, table: pa.Table, path: Sequence[str], filters: Filters) -> pa.ChunkedArray | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = None
        for column, key in zip(PATH_COLUMNS, path, strict=False):
            step = pc.equal(table.column(column), key)
            mask = step if mask is None else pc.and_(mask, step)
        for name, values in filters:
            if name not in FILTERABLE:
                raise ValidationError(f"IDC cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}")
            step = pc.fill_null(pc.is_in(table.column(name), value_set=pa.array(values)), False)
            mask = step if mask is None else pc.and_(mask, step)
        return mask

    def _select(self, table: pa.Table, path: Sequence[str], filters: Filters) -> pa.Table:
        if len(path) > len(PATH_COLUMNS):
            raise ValidationError(f"IDC has {len(PATH_COLUMNS)} levels; {'/'.join(path)} is deeper")
        mask = self._mask(table, path, filters)
        return table if mask is None else table.filter(mask)

    # -- browsing ------------------------------------------------------------------------------
    def _group(self, table: pa.Table, depth: int) -> list[BrowseItem]:
        import pyarrow.compute as pc

        column = PATH_COLUMNS[depth]
        level = self.hierarchy.levels[depth]
        if depth == len(PATH_COLUMNS) - 1:
            extra = [c for c in ("SeriesNumber", "SeriesDescription") if c in table.column_names]
            rows = table.select([column, "series_size_MB", "Modality", "instanceCount", *extra]).to_pylist()
            return sorted(
                (
                    BrowseItem(
                        r[column],
                        level,
                        f"{r['Modality'] or '?'} series, {r['instanceCount']} instances",
                        1,
                        round((r["series_size_MB"] or 0) * 1e6),
                        (
                            ("Modality", r["Modality"] or ""),
                            ("ImageCount", str(r["instanceCount"] or "")),
                            *((c, str(r[c])) for c in extra if r[c]),
                        ),
                    )
                    for r in rows
                ),
                key=lambda item: item.key,
            )
        described = [c for c in _LEVEL_LABELS.get(depth, ()) if c in table.column_names]
        if described:  # min() of the text, for one value per group (they agree within a study)
            import pyarrow as pa

            table = table.select([column, "series_size_MB", *described])
            for name in described:
                table = table.set_column(
                    table.column_names.index(name), name, pc.cast(table.column(name), pa.string())
                )
        grouped = table.group_by(column).aggregate(
            [(column, "count"), ("series_size_MB", "sum"), *((c, "min") for c in described)]
        )
        keys = grouped.column(column).to_pylist()
        counts = grouped.column(f"{column}_count").to_pylist()
        sizes = pc.round(pc.multiply(grouped.column("series_size_MB_sum"), 1e6)).to_pylist()
        facts = [grouped.column(f"{c}_min").to_pylist() for c in described]
        items = [
            BrowseItem(
                k,
                level,
                k,
                n,
                int(s or 0),
                tuple((c, str(v[i])) for c, v in zip(described, facts, strict=True) if v[i]),
            )
            for i, (k, n, s) in enumerate(zip(keys, counts, sizes, strict=True))
            if k
        ]
        items.sort(key=lambda item: item.key)
        return items

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        table = self._loaded()
        if len(path) >= len(PATH_COLUMNS):
            raise ValidationError("a series is a leaf: it has no children to browse")
        if not path and not filters:
            items = self._collections
        else:
            items = self._group(self._select(table, path, filters), len(path))
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        import pyarrow.compute as pc

        if name not in FILTERABLE:
            raise ValidationError(f"IDC cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}")
        selected = self._select(self._loaded(), path, ())
        values = pc.unique(selected.column(name)).to_pylist()
        return sorted(v for v in values if v)

    # -- resolution ----------------------------------------------------------------------------
    def resolve(self, selection: Selection) -> Manifest:
        """Every series the selection selects, as a manifest (vectorised; about a second for NLST)."""

        # _lines checked the keys for repeats on the way.
        return Manifest.from_canonical_lines(
            self._lines(self._selected(selection)), check_grammar=False, check_unique=False
        )

    def locate(self, kind: str, identifiers: Sequence[str]) -> tuple[list[Pointer], list[str]]:
        """Series pointers for SeriesInstanceUIDs (``series_uid``, as in a TCIA manifest) or
        ``crdc_series_uuid`` values (as in an IDC s5cmd manifest); and the identifiers not found."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = {"series_uid": "SeriesInstanceUID", "crdc_series_uuid": "crdc_series_uuid"}.get(kind)
        if column is None:
            return [], list(identifiers)
        table = self._loaded()
        wanted = pa.array(list(identifiers), pa.string())
        rows = table.filter(pc.is_in(table.column(column), value_set=wanted))
        found: dict[str, Pointer] = {}
        for row in rows.select([*PATH_COLUMNS, column]).to_pylist():
            path = tuple(row[c] for c in PATH_COLUMNS)
            if all(path):
                found[row[column]] = Pointer(self.source_id, path)
        return list(dict.fromkeys(found.values())), [i for i in identifiers if i not in found]

    # -- joins (the Integrator) -----------------------------------------------------------------
    patient_level: str | None = "patient"

    def join_patients(self, scope: Pointer, patients: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
        """The (collection, patient) paths of ``patients`` below ``scope``, from the index: one
        lookup however many patients (a clinical table's cohort of a whole collection)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._select(self._loaded(), scope.path, scope.filters)
        wanted = pa.array(list(patients), pa.string())
        rows = table.filter(pc.is_in(table.column(PATH_COLUMNS[1]), value_set=wanted))
        pairs = rows.select(PATH_COLUMNS[:2]).group_by(list(PATH_COLUMNS[:2])).aggregate([])
        found: dict[str, list[tuple[str, ...]]] = {}
        for collection, patient in zip(
            pairs.column(PATH_COLUMNS[0]).to_pylist(), pairs.column(PATH_COLUMNS[1]).to_pylist(), strict=True
        ):
            if collection and patient:
                found.setdefault(patient, []).append((collection, patient))
        return found

    def references(self, leaves: Iterable[Leaf]) -> list[Reference]:
        """The collections ``leaves`` come from, with the DOIs and licences the index gives
        (``source_DOI``, ``license_short_name``; a collection with several lists each once). Read
        from the index file on demand: the columns are not kept in memory."""
        import pyarrow.parquet as pq

        collections = sorted({leaf.path[0] for leaf in leaves if leaf.path})
        self._loaded()
        if not collections or self._in_use is None:
            return []
        try:
            rows = pq.read_table(
                self._in_use,
                columns=[PATH_COLUMNS[0], "source_DOI", "license_short_name"],
                filters=[(PATH_COLUMNS[0], "in", collections)],
            )
        except (OSError, KeyError, ValueError) as exc:  # an index without those columns
            log.info("no collection DOIs in %s: %s", self._in_use, exc)
            return []
        found = {
            (c or "", (d or "").removeprefix("https://doi.org/"), lic or "")
            for c, d, lic in zip(*(rows.column(n).to_pylist() for n in rows.column_names), strict=True)
        }
        return [Reference(*item) for item in sorted(found) if item[0]]

    def data_kinds(self, scope: Pointer, patients: Collection[str]) -> list[DataKind]:
        """The modalities ``patients`` have below ``scope``, from the index: slide microscopy
        (``SM``) counts as pathology, annotations and segmentations as other, the rest as radiology."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._select(self._loaded(), scope.path, scope.filters)
        wanted = pa.array(list(patients), pa.string())
        rows = table.filter(pc.is_in(table.column(PATH_COLUMNS[1]), value_set=wanted))
        by_modality: dict[str, tuple[set[str], list[int], list[float]]] = {}
        for patient, modality, size in zip(
            rows.column(PATH_COLUMNS[1]).to_pylist(),
            rows.column("Modality").to_pylist(),
            rows.column("series_size_MB").to_pylist(),
            strict=True,
        ):
            if not patient or not modality:
                continue
            have, count, total = by_modality.setdefault(modality, (set(), [0], [0.0]))
            have.add(patient)
            count[0] += 1
            total[0] += size or 0.0
        return [
            DataKind(
                modality,
                _MODALITY_CATEGORY.get(modality, "radiology"),
                ("Modality", modality),
                frozenset(have),
                count[0],
                round(total[0] * 1e6),
            )
            for modality, (have, count, total) in sorted(by_modality.items())
        ]

    def _selected(self, selection: Selection) -> pa.Table:
        """The index rows of the series ``selection`` selects."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._loaded()
        rules = sorted(
            (r for r in selection.rules if r.pointer.source_id == self.source_id),
            # Rules of one rank apply alike in any order; alike ones next to each other group.
            key=lambda r: (_rank(r), r.pointer.path[:-1], r.pointer.filters, r.pointer.path[-1:]),
        )
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        if not any(r.include for r in rules):
            return table.slice(0, 0)
        if _has_unordered_conflicts(rules):
            return self._resolve_exactly(table, rules)
        selected = pa.chunked_array([pa.array([False] * table.num_rows)])
        for group in _runs(rules):
            if len(group) > 1:  # alike but for the last key: one set lookup instead of a pass each
                first = group[0].pointer
                depth = first.depth
                values = pa.array([r.pointer.path[-1] for r in group])
                mask = pc.is_in(table.column(PATH_COLUMNS[depth - 1]), value_set=values)
                above = self._mask(table, first.path[:-1], first.filters)
                if above is not None:
                    mask = pc.and_(mask, above)
                selected = pc.if_else(mask, group[0].include, selected)
                continue
            rule = group[0]
            mask = self._mask(table, rule.pointer.path, rule.pointer.filters)
            if mask is None:
                selected = pa.chunked_array([pa.array([rule.include] * table.num_rows)])
            else:
                selected = pc.if_else(mask, rule.include, selected)
        return table.filter(selected)

    def s5cmd_manifest(self, selection: Selection) -> str:
        """The selected series as an s5cmd manifest, as IDC's tools write and read it."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = self._selected(selection)
        text = pa.large_string()
        commands = pc.binary_join_element_wise(
            pa.scalar("cp s3://", text),
            rows.column("aws_bucket").cast(text),
            pa.scalar("/", text),
            rows.column("crdc_series_uuid").cast(text),
            pa.scalar("/* .", text),
            pa.scalar("", text),
        )
        header = (
            "# To download the files in this manifest, first install s5cmd (https://github.com/peak/s5cmd),\n"
            "# then run the following command:\n"
            "# s5cmd --no-sign-request --endpoint-url https://s3.amazonaws.com run manifest.s5cmd\n"
        )
        return header + "\n".join(sorted(commands.to_pylist())) + "\n"

    def leaf_urls(self, leaves: Iterable[Leaf]) -> Iterator[tuple[Leaf, str]]:
        """Each series' folder in IDC's public buckets, ``s3://<bucket>/<crdc_series_uuid>/``, from
        the index (offline: a lookup made once per index, about half a second and 150 MB for all of
        IDC, then a million series take about a second). A version the index no longer has is
        looked up in ``prior_versions_index``; one neither knows gets ``idc-open-data``, where most
        of IDC lies."""
        table = self._loaded()
        cached = getattr(self, "_url_lookup", None)
        if cached is None or cached[0] is not table:
            buckets = table.column("aws_bucket").combine_chunks()
            names = buckets.dictionary.to_pylist()
            by_uuid = dict(
                zip(
                    table.column("crdc_series_uuid").to_pylist(),
                    [names[i] for i in buckets.indices.to_pylist()],
                    strict=True,
                )
            )
            cached = (table, by_uuid)
            self._url_lookup = cached
        by_uuid = cached[1]
        batch: list[tuple[Leaf, str]] = []

        def flush() -> Iterator[tuple[Leaf, str]]:
            earlier = self._prior_versions([uuid for _, uuid in batch])
            for leaf, uuid in batch:
                prior = earlier.get(uuid)
                where = prior.bucket if prior is not None and prior.bucket else "idc-open-data"
                yield leaf, f"s3://{where}/{uuid}/"

        for leaf in leaves:
            uuid = leaf.fingerprint.version or ""
            bucket = by_uuid.get(uuid)
            if bucket is not None:
                yield leaf, f"s3://{bucket}/{uuid}/"
            else:  # rare: a version an index update replaced
                batch.append((leaf, uuid))
                if len(batch) == 10_000:
                    yield from flush()
                    batch = []
        if batch:
            yield from flush()

    def _resolve_exactly(self, table: pa.Table, rules: Sequence[Rule]) -> pa.Table:
        """Per-row ``decide`` over the rows any rule matches: slower, for tangled selections."""
        import pyarrow as pa
        import pyarrow.compute as pc

        touched = None
        for rule in rules:
            mask = self._mask(table, rule.pointer.path, rule.pointer.filters)
            if mask is None:
                touched = None
                break
            touched = mask if touched is None else pc.or_(touched, mask)
        candidates = table if touched is None else table.filter(touched)
        names = sorted({name for r in rules for name, _ in r.pointer.filters})
        rows = candidates.select([*PATH_COLUMNS, *names]).to_pylist()
        keep = [
            decide(rules, self.source_id, tuple(r[c] for c in PATH_COLUMNS), {n: r[n] for n in names})
            for r in rows
        ]
        return candidates.filter(pa.array(keep, type=pa.bool_()))

    def _lines(self, table: pa.Table) -> list[str]:
        """Canonical manifest lines of ``table``'s series, sorted, built with Arrow compute.

        Rows are put in key order first (IDC's index already is), then encoded a batch at a time,
        so only one batch of lines exists in Arrow next to the Python list being built (a million
        series fit in the memory goal).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        # A series without a full path cannot be a leaf.
        complete = None
        for column in PATH_COLUMNS:
            step = pc.fill_null(pc.not_equal(table.column(column), ""), False)
            complete = step if complete is None else pc.and_(complete, step)
        if complete is not None and not pc.all(complete).as_py():
            table = table.filter(complete)
        if table.num_rows == 0:
            return []
        # Path tuples sort like keys and lines (the separators sort below any field character).
        text = pa.large_string()
        paths = pa.table({c: table.column(c).cast(text) for c in PATH_COLUMNS})
        ordered, repeated = _order(paths)
        if ordered and repeated:
            raise SourceError("IDC: the index lists a series twice under the same path; reinstall it")
        order = (
            None if ordered else pc.sort_indices(paths, sort_keys=[(c, "ascending") for c in PATH_COLUMNS])
        )
        rest = table.select(list(_FINGERPRINT_COLUMNS))
        clean = self._clean()
        out: list[str] = []
        escaped = False
        last_key: str | None = None
        for start in range(0, table.num_rows, _BATCH):
            if order is None:
                part_paths, part_rest = paths.slice(start, _BATCH), rest.slice(start, _BATCH)
            else:
                chosen = order.slice(start, _BATCH)
                part_paths, part_rest = paths.take(chosen), rest.take(chosen)
                # Now sorted: a key named twice sits on neighbouring rows.
                key = pc.binary_join_element_wise(*part_paths.columns, pa.scalar(US, text))
                repeats = pc.equal(key.slice(1), key.slice(0, len(key) - 1)) if len(key) > 1 else None
                if key[0].as_py() == last_key or (repeats is not None and pc.any(repeats).as_py()):
                    raise SourceError("IDC: the index lists a series twice under the same path; reinstall it")
                last_key = key[-1].as_py()
            batch: list[str] = self._encode(part_paths, part_rest).to_pylist()
            if not clean:
                escape = pc.fill_null(
                    pc.match_substring_regex(part_rest.column("crdc_series_uuid").cast(text), _NEEDS_ESCAPE),
                    False,
                )
                for column in part_paths.columns:
                    escape = pc.or_(
                        escape, pc.fill_null(pc.match_substring_regex(column, _NEEDS_ESCAPE), False)
                    )
                if pc.any(escape).as_py():
                    # Rare: a key with control characters or '%' takes the slow, exact path.
                    escaped = True
                    rows = pa.Table.from_arrays(
                        [*part_paths.columns, *part_rest.columns],
                        names=[*PATH_COLUMNS, *_FINGERPRINT_COLUMNS],
                    )
                    for i in pc.indices_nonzero(escape.combine_chunks()).to_pylist():
                        batch[i] = self._line_slowly(rows.slice(i, 1).to_pylist()[0])
            out.extend(batch)
        if escaped:
            out.sort()  # escaping can move a key
        return out

    def _encode(self, paths: pa.Table, rest: pa.Table) -> Any:
        """Lines of the rows (path columns, then fingerprint columns), in their order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pa.large_string()
        empty = pa.scalar("", text)
        us, tab = pa.scalar(US, text), pa.scalar(TAB, text)
        size = pc.fill_null(
            pc.round(pc.multiply(rest.column("series_size_MB"), 1e6)).cast(pa.int64()).cast(text), empty
        )
        # source US collection US patient US study US (series TAB size) US count US US version US release
        return pc.binary_join_element_wise(
            pa.scalar(self.source_id, text),
            *paths.columns[:-1],
            pc.binary_join_element_wise(paths.columns[-1], size, tab),
            pc.fill_null(rest.column("instanceCount").cast(text), empty),
            empty,
            pc.fill_null(rest.column("crdc_series_uuid").cast(text), empty),
            pc.fill_null(
                pc.binary_join_element_wise(
                    pa.scalar("idc_v", text), rest.column("series_revised_idc_version").cast(text), empty
                ),
                empty,
            ),
            us,
        )

    def _clean(self) -> bool:
        """Whether no key or version in the index needs escaping (checked once, then cached).

        Scans the columns' UTF-8 bytes with numpy: a control byte or ``%`` anywhere sends every
        resolution through the exact per-row check instead.
        """
        if self._clean_keys is None:
            import numpy as np

            table = self._loaded()
            clean = True
            seen: set[tuple[int, int]] = set()  # chunks of one column often share one buffer
            for column in (*PATH_COLUMNS, "crdc_series_uuid"):
                for chunk in table.column(column).chunks:
                    values = chunk.dictionary if hasattr(chunk, "dictionary") else chunk
                    data = values.buffers()[2]
                    if data is None or (data.address, data.size) in seen:
                        continue
                    seen.add((data.address, data.size))
                    raw = np.frombuffer(data, dtype=np.uint8)
                    if (raw < 0x20).any() or (raw == 0x25).any():
                        clean = False
                        break
                if not clean:
                    break
            self._clean_keys = clean
        return self._clean_keys

    def _line_slowly(self, row: dict[str, Any]) -> str:
        size = row["series_size_MB"]
        released = row["series_revised_idc_version"]
        return (
            encode_key(self.source_id, [row[c] for c in PATH_COLUMNS])
            + TAB
            + encode_fingerprint(
                None if size is None else round(size * 1e6),
                row["instanceCount"],
                None,
                row["crdc_series_uuid"],
                None if released is None else f"idc_v{released}",
            )
        )

    # -- change tracking -----------------------------------------------------------------------
    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects in the newest index (``Tracking``; no request but the look
        for a newer published index, at most every ``refresh_seconds``).

        The manifest is resolved in full (vectorised: well under a second for NLST), so ``since``
        is not needed. The notes say which pinned versions of ``base`` the index no longer lists,
        whether IDC still serves them, and when a newer index could not be fetched. Called on the
        tracker's thread.
        """
        fetch_note = self.refresh()
        manifest = self.resolve(selection)
        now = set(manifest.lines())
        gone = [line for line in base.lines() if line not in now]
        del now
        notes = (fetch_note, _change_note(self._stale(gone)))
        return Tracked(manifest, self.state, tuple(n for n in notes if n))

    def changes(self, manifest: Manifest) -> list[SeriesChange]:
        """IDC series of ``manifest`` whose pinned version is no longer the current one.

        A ``crdc_series_uuid`` names one immutable version of a series: if the current index no
        longer lists it, the series was revised (the index has it under a new version) or
        withdrawn. ``prior_versions_index`` says in which IDC releases the pinned one was served.
        """
        return self._stale(manifest.lines())

    def _stale(self, lines: Sequence[str]) -> list[SeriesChange]:
        """``changes`` of canonical manifest lines (versions read from the lines, no ``Leaf``
        made but for the stale ones)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        prefix = escape_component(self.source_id) + US
        pinned: dict[str, str] = {}  # version -> line
        for line in lines:
            if line.startswith(prefix):
                # key TAB size US count US checksum US version US released
                version = line.rsplit(US, 2)[1]
                if version:
                    pinned[unescape_component(version)] = line
        if not pinned:
            return []
        table = self._loaded()
        current = set(
            table.filter(pc.is_in(table.column("crdc_series_uuid"), value_set=pa.array(sorted(pinned))))
            .column("crdc_series_uuid")
            .to_pylist()
        )
        stale = {uuid: Leaf.decode(line) for uuid, line in pinned.items() if uuid not in current}
        if not stale:
            return []
        series_uids = pa.array(sorted({leaf.path[-1] for leaf in stale.values()}))
        now = table.filter(pc.is_in(table.column("SeriesInstanceUID"), value_set=series_uids))
        replacement = dict(
            zip(
                now.column("SeriesInstanceUID").to_pylist(),
                now.column("crdc_series_uuid").to_pylist(),
                strict=True,
            )
        )
        prior = self._prior_versions(sorted(stale))
        changes = []
        for uuid, leaf in sorted(stale.items(), key=lambda item: item[1].path):
            earlier = prior.get(uuid)
            served = None if earlier is None else earlier.served_in
            changes.append(SeriesChange(leaf, replacement.get(leaf.path[-1]), served))
        return changes

    def _prior_versions(self, uuids: Sequence[str]) -> dict[str, _PriorVersion]:
        """What prior_versions_index says of series versions ``uuids`` (those it knows)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._prior_table()
        if table.num_rows == 0 or not uuids:
            return {}
        wanted = pa.array(list(uuids), table.schema.field("crdc_series_uuid").type)
        rows = table.filter(pc.is_in(table.column("crdc_series_uuid"), value_set=wanted))
        prior: dict[str, _PriorVersion] = {}
        # Sorted by last release: a version moved between buckets has a row per bucket, and the
        # latest says where it lies.
        for uuid, bucket, modality, first, last in zip(
            *(rows.column(c).to_pylist() for c in _PRIOR_COLUMNS), strict=True
        ):
            if first is None or last is None:
                continue
            before = prior.get(uuid)
            if before is not None:
                first, last = min(first, before.served_in[0]), max(last, before.served_in[1])
            prior[uuid] = _PriorVersion(bucket, modality, (int(first), int(last)))
        return prior

    def _prior_table(self) -> pa.Table:
        """The rows of prior_versions_index beside the index in use and of the installed one
        (what an earlier release served stays true, whichever index is in use), sorted by last
        release. Read once per index."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self._loaded()
        with self._lock:
            if self._prior is not None:
                return self._prior
            in_use = self._in_use
        paths = [] if in_use is None else [in_use.parent / PRIOR_FILE]
        installed = default_prior_path()
        if installed is not None and installed not in paths:
            paths.append(installed)
        text = pa.large_string()
        schema = pa.schema([(c, pa.int64() if c.endswith("_idc_version") else text) for c in _PRIOR_COLUMNS])
        tables = [schema.empty_table()]
        for path in paths:
            if not path.exists():
                continue
            try:
                tables.append(
                    pq.read_table(path, columns=list(_PRIOR_COLUMNS))
                    .select(list(_PRIOR_COLUMNS))
                    .cast(schema)
                )
            except (OSError, ValueError):
                continue  # an unreadable one only costs what it would have told
        rows = pa.concat_tables(tables)
        rows = rows.take(pc.sort_indices(rows, sort_keys=[("max_idc_version", "ascending")]))
        with self._lock:
            if self._in_use == in_use:
                self._prior = rows
        return rows

    # -- a newer index, when online ------------------------------------------------------------
    def refresh(self, now: float | None = None) -> str | None:
        """Switch to the index of IDC's newest release when it is newer than the one in use.

        Looks at ``index_url`` at most once every ``refresh_seconds`` (the time is kept in the
        data folder, so restarts do not look again), and only when this source has a data folder
        and no index was given. A newer ``idc_index.parquet`` and its ``prior_versions_index``
        are downloaded into temporary files in the data folder, checked against the published
        SHA-256 and read in full, then renamed into place and used. Called on the tracker's thread.

        Args:
            now: the time (Unix seconds) to count the interval from; default: the clock's.

        Returns:
            None, or a note for the user when the index could not be fetched (the index in use
            stays; this never raises for a network or server failure).
        """
        folder = self._data_dir
        if folder is None:
            return None
        now = time.time() if now is None else now
        with self._refresh_lock:
            memo = _read_json(folder / "refresh.json")
            last = memo.get("checked_at")
            if isinstance(last, (int, float)) and 0 <= now - last < self.refresh_seconds:
                failed = memo.get("failed")
            else:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    self._fetch_newest(folder, memo, *self._current())
                    failed = None
                except SourceError as exc:
                    failed = str(exc)
                except OSError as exc:
                    failed = f"cannot write to {folder}: {exc.strerror or exc}"
                memo.update(checked_at=now, failed=failed)
                with contextlib.suppress(OSError):  # then it is looked at again next time
                    _write_json(folder / "refresh.json", memo)
        if not isinstance(failed, str):
            return None
        return f"IDC's newest index could not be fetched ({failed}): checked against {self._in_use_text()}"

    def _current(self) -> tuple[Path | None, str | None]:
        """The index file in use (or to be used: no need to load it) and its version; None when
        there is none yet (idc-index-data missing: then any published index is newer)."""
        with self._lock:
            if self._in_use is not None:
                return self._in_use, self._version
        try:
            path = self._newest_index()
        except SourceError:
            return None, None
        return path, index_version(path)

    def _in_use_text(self) -> str:
        path, version = self._current()
        if path is None:
            return "no index: none is installed"
        release = f"v{_version_key(version)[0]}" if _version_key(version) else "index"
        if path.parent == self._data_dir:
            return f"the {release} fetched earlier"
        return f"the installed {release}"

    def _fetch_newest(
        self, folder: Path, memo: dict[str, Any], in_use: Path | None, in_use_version: str | None
    ) -> None:
        """Download, check and use the published index if it is newer than ``in_use``. Raises
        ``SourceError`` with a short reason (it goes into a note), ``OSError`` when the folder
        is not writable."""
        digest = self._published_digest(INDEX_FILE)
        if digest == memo.get("not_newer") or (in_use is not None and digest == _digest_of(in_use, memo)):
            return
        parts: list[Path] = []
        try:
            part = self._download(INDEX_FILE, digest, folder)
            parts.append(part)
            version = index_version(part)
            _check_columns(part, COLUMNS, "index")
            if not _version_key(version):
                raise SourceError("the published index names no release")
            if _version_key(version) <= _version_key(in_use_version):
                memo["not_newer"] = digest
                return
            try:  # all of it: a damaged page fails here, not in use
                table, collections = self._read(part)
            except SourceError:
                raise SourceError("the published index is unreadable") from None
            prior_part = self._download(PRIOR_FILE, self._published_digest(PRIOR_FILE), folder)
            parts.append(prior_part)
            _check_columns(prior_part, _PRIOR_COLUMNS, "prior versions index")
            # The prior versions first: beside an older index, a newer one does no harm.
            os.replace(prior_part, folder / PRIOR_FILE)
            os.replace(part, folder / INDEX_FILE)
        finally:
            for leftover in parts:
                leftover.unlink(missing_ok=True)
        _digest_of(folder / INDEX_FILE, memo, digest)
        with self._lock:
            self._use(folder / INDEX_FILE, table, collections)
        self._clean()

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = http.session(retries=2, backoff=self.backoff)
        return self._session

    def _get(self, name: str) -> requests.Response:
        """GET a published file (streamed); failures become short ``SourceError`` reasons."""
        import requests
        from urllib3.exceptions import ReadTimeoutError

        url = f"{self.index_url}/{name}"
        try:
            response = self._http().get(url, timeout=self.index_timeout, stream=True)
        except requests.exceptions.Timeout:
            raise SourceError("no answer in time") from None
        except requests.exceptions.ConnectionError as exc:
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            if isinstance(reason, ReadTimeoutError):
                raise SourceError("no answer in time") from None
            raise SourceError("offline?") from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"{exc.__class__.__name__} for {name}") from None
        if response.status_code != 200:
            response.close()
            raise SourceError(f"IDC answered {response.status_code} for {name}")
        return response

    def _published_digest(self, name: str) -> str:
        """The SHA-256 IDC publishes beside a file (``<hex>  <name>``, as sha256sum writes it)."""
        import requests

        bad = SourceError(f"IDC published no valid checksum for {name}")
        head = b""
        with self._get(f"{name}.sha256") as response:
            try:
                for chunk in response.iter_content(1024):
                    head += chunk
                    if len(head) > 4096:
                        raise bad
            except requests.exceptions.RequestException:
                raise SourceError(f"the download of {name}.sha256 broke off") from None
        match = re.fullmatch(rb"([0-9a-f]{64}) [ *]?(\S+)\s*", head)
        if match is None or match.group(2).decode("utf-8", "replace") != name:
            raise bad
        return match.group(1).decode()

    def _download(self, name: str, digest: str, folder: Path) -> Path:
        """A published file in a temporary file of ``folder``, checked against ``digest``."""
        import requests

        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        path = Path(temporary)
        done = False
        try:
            hasher = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out, self._get(name) as response:
                try:
                    for chunk in response.iter_content(1 << 20):
                        size += len(chunk)
                        if size > _MAX_INDEX_BYTES:
                            raise SourceError(f"the published {name} is too large")
                        hasher.update(chunk)
                        out.write(chunk)
                except requests.exceptions.RequestException:
                    raise SourceError(f"the download of {name} broke off") from None
            if hasher.hexdigest() != digest:
                raise SourceError(f"the published {name} does not match its checksum")
            done = True
            return path
        finally:
            if not done:
                path.unlink(missing_ok=True)

    # -- fetching ------------------------------------------------------------------------------
    def _row_of(self, uuid: str) -> dict[str, Any] | None:
        """The index row of a series version, by binary search over the uuids sorted once."""
        import pyarrow.compute as pc

        with self._lock:  # the index and its lookup together: a refresh may switch both
            table = self._table
            assert table is not None
            if self._by_uuid is None:
                order = pc.sort_indices(table.column("crdc_series_uuid"))
                self._by_uuid = (order, pc.take(table.column("crdc_series_uuid"), order).combine_chunks())
            order, uuids = self._by_uuid
        lo, hi = 0, len(uuids)
        while lo < hi:
            mid = (lo + hi) // 2
            if uuids[mid].as_py() < uuid:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(uuids) or uuids[lo].as_py() != uuid:
            return None
        row: dict[str, Any] = (
            table.slice(order[lo].as_py(), 1).select(["aws_bucket", "Modality"]).to_pylist()[0]
        )
        return row

    def _list(self, bucket: str, prefix: str, what: str) -> list[tuple[str, int, str]]:
        """(key, size, ETag) of the objects under ``prefix``: anonymous ListObjectsV2, page by page.

        One plain GET per page through libcurl and the standard library's XML parser: botocore
        spends about 20 ms of CPU per page on the same answer and requests about 1.4 ms, which a
        10,000-series download would feel.
        """
        url = self.object_url(bucket, "").rstrip("/")
        params = {"list-type": "2", "prefix": prefix}
        if self.list_page_size:
            params["max-keys"] = str(self.list_page_size)
        objects: list[tuple[str, int, str]] = []
        while True:
            body = self._getter.get("IDC", url, what=f"the objects of {what}", params=params)
            try:
                root = ElementTree.fromstring(body)
            except ElementTree.ParseError:
                raise SourceError(
                    f"IDC answered the listing of {what} with something that is not XML"
                ) from None
            fields = {_local(child.tag): child for child in root}
            for child in root:
                if _local(child.tag) != "Contents":
                    continue
                entry = {_local(x.tag): (x.text or "") for x in child}
                try:
                    objects.append((entry["Key"], int(entry["Size"]), entry.get("ETag", "").strip('"')))
                except (KeyError, ValueError):
                    raise SourceError(f"IDC listed an object of {what} without a key or size") from None
            token = fields.get("NextContinuationToken")
            if (
                fields.get("IsTruncated") is None
                or (fields["IsTruncated"].text or "") != "true"
                or token is None
            ):
                return objects
            params["continuation-token"] = token.text or ""

    def object_url(self, bucket: str, key: str) -> str:
        """Where an object of IDC's public buckets is read without signing."""
        from urllib.parse import quote

        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{bucket}/{quote(key)}"
        return f"https://{bucket}.s3.amazonaws.com/{quote(key)}"

    def modalities(self, paths: Collection[tuple[str, ...]]) -> dict[str, int]:
        """Series per modality among the series at ``paths`` (a set's composition chart); series
        the index does not list count as ``?``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._loaded()
        wanted = pa.array([p[-1] for p in paths if len(p) == len(PATH_COLUMNS)], pa.string())
        rows = table.filter(pc.is_in(table.column(PATH_COLUMNS[-1]), value_set=wanted))
        counts = pc.value_counts(pc.cast(rows.column("Modality"), pa.string()).combine_chunks())
        out = {str(c["values"] or "?"): int(c["counts"]) for c in counts.to_pylist()}
        missing = len(wanted) - rows.num_rows
        if missing > 0:
            out["?"] = out.get("?", 0) + missing
        return out

    def preview(self, path: tuple[str, ...]) -> bytes | None:
        """A thumbnail of a series from one of its instances, fetched (online only): the middle
        one, or a slide's smallest (its thumbnail level). Raises ``NotFound`` when the index no
        longer lists the series, ``SourceError`` when it cannot be fetched or decoded."""
        from mediator_desktop.sources.thumbnail import render

        if len(path) != len(PATH_COLUMNS):
            return None
        leaves = list(self.resolve(Selection.of(Pointer(self.source_id, path))))
        if not leaves:
            raise NotFound(f"IDC {self.state} no longer lists series {path[-1]}")
        files = sorted(self.plan(leaves[0]).files, key=lambda f: f.name)
        if not files:
            raise SourceError(f"IDC holds no files for series {path[-1]}")
        modalities = self._select(self._loaded(), path, ()).column("Modality").to_pylist()
        slide = "SM" in modalities
        chosen = min(files, key=lambda f: f.size or 0) if slide else files[len(files) // 2]
        return render(self._getter.get("IDC", chosen.url, what=f"an instance of series {path[-1]}"))

    def plan(self, leaf: Leaf) -> LeafPlan:
        """The objects of one series (one anonymous S3 listing), with sizes and single-part ETags
        as MD5s; the count must match the index.

        The pinned version is fetched, also when a newer index has replaced it: prior_versions_index
        says where IDC still serves it.
        """

        uuid = leaf.fingerprint.version
        series = leaf.path[-1]
        self._loaded()
        if not uuid:
            raise SourceError(f"IDC: series {series} has no version to fetch; resolve the set again")
        row = self._row_of(uuid)
        earlier = None
        if row is None:
            earlier = self._prior_versions([uuid]).get(uuid)
            if earlier is None:
                raise SourceError(_not_served(series, uuid))
            row = {"aws_bucket": earlier.bucket, "Modality": earlier.modality}
        bucket = row["aws_bucket"]
        objects = self._list(bucket, f"{uuid}/", f"series {series}")
        if earlier is not None and not objects:
            raise SourceError(_not_served(series, uuid))
        if leaf.fingerprint.count is not None and len(objects) != leaf.fingerprint.count:
            raise IntegrityError(
                f"IDC: series {series} should have {leaf.fingerprint.count} instances, "
                f"s3://{bucket}/{uuid}/ holds {len(objects)}"
            )
        files = [
            RemoteFile(
                url=self.object_url(bucket, key),
                name=key.rsplit("/", 1)[-1],
                size=size,
                md5=etag if len(etag) == 32 and "-" not in etag else None,
            )
            for key, size, etag in objects
        ]
        return LeafPlan(tuple(files), {"modality": row.get("Modality") or ""}, count=len(files))

    def pointer(self, *path: str, **filters: str | Sequence[str]) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path, **filters))

    def __repr__(self) -> str:
        return f"<IdcSource {self._in_use or self._index_path or 'idc-index-data'}>"


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def _not_served(series: str, uuid: str) -> str:
    return (
        f"IDC no longer serves version {uuid} of series {series}: accept the set's update to "
        "download the current version (mediator sets accept NAME)"
    )


def _change_note(changes: Sequence[SeriesChange]) -> str | None:
    """One line on the pinned versions the index no longer lists: ``3 revised and 1 removed
    series: their pinned versions stay downloadable (served from IDC v18 to v22)``."""
    if not changes:
        return None
    revised = sum(1 for c in changes if not c.withdrawn)
    removed = len(changes) - revised
    head = (
        " and ".join(f"{n:,} {word}" for n, word in ((revised, "revised"), (removed, "removed")) if n)
        + " series"
    )
    served = [c.served_in for c in changes if c.served_in is not None]
    gone = len(changes) - len(served)
    if served:
        first, last = min(s[0] for s in served), max(s[1] for s in served)
        when = f"served in IDC v{first}" if first == last else f"served from IDC v{first} to v{last}"
    if not gone:
        whose = "its pinned version stays" if len(changes) == 1 else "their pinned versions stay"
        return f"{head}: {whose} downloadable ({when})"
    lost = f"{gone:,} pinned {'version is' if gone == 1 else 'versions are'} no longer served by IDC"
    if not served:
        return f"{head}: {lost}"
    kept = f"{len(served):,} pinned {'version stays' if len(served) == 1 else 'versions stay'}"
    return f"{head}: {kept} downloadable ({when}); {lost}"


def _check_columns(path: Path, columns: Sequence[str], what: str) -> None:
    """Raises ``SourceError`` unless ``path`` is Parquet with ``columns``."""
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError):
        raise SourceError(f"the published {what} is not a Parquet file") from None
    missing = [c for c in columns if c not in names]
    if missing:
        more = " and more" if len(missing) > 3 else ""
        raise SourceError(f"the published {what} lacks {', '.join(missing[:3])}{more}")


def _digest_of(path: Path, memo: dict[str, Any], known: str | None = None) -> str:
    """SHA-256 of an index file, remembered in ``memo`` by path, size and mtime."""
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns]
    digests = memo.setdefault("digests", {})
    entry = digests.get(str(path))
    if known is None and isinstance(entry, list) and entry[:2] == stamp and isinstance(entry[-1], str):
        return entry[-1]
    if known is None:
        hasher = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        known = hasher.hexdigest()
    digests[str(path)] = [*stamp, known]
    return known


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(value))
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> IdcSource:
    """Registry factory. Options: ``endpoint_url`` (an S3 endpoint other than AWS), ``index``
    (exactly this index file), ``index_url`` (where IDC publishes its newest index). Fetched
    index files live in ``data_dir / "idc"``."""
    given = Path(options["index"]) if options.get("index") else None
    source = IdcSource(
        given,
        endpoint_url=options.get("endpoint_url"),
        data_dir=None if given is not None else data_dir / "idc",
        # MEDIATOR_IDC_INDEX_URL: another default (a lab's mirror; tests keep to loopback with it).
        index_url=options.get("index_url") or os.environ.get("MEDIATOR_IDC_INDEX_URL") or None,
    )
    source.source_id = source_id
    return source
