"""NCI Imaging Data Commons, browsed and resolved offline from the real index.

The ``idc-index-data`` package carries IDC's series index as Parquet (about 1,044,000 series in
179 collections). This source reads the columns it needs with pyarrow once, then answers browsing
and resolution with vectorised Arrow compute, so the whole of IDC is browsable without an account
or a network. Levels: collection > patient > study > series; a leaf is a series.

Fingerprint of a series: size in bytes, instance count, ``crdc_series_uuid`` (an immutable series
version: a revised series gets a new one) and the IDC release that last revised it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from mediator_desktop.core.errors import IntegrityError, SourceError, ValidationError
from mediator_desktop.core.manifest import TAB, US, Leaf, Manifest, encode_fingerprint, encode_key
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
)
from mediator_desktop.sources import http

if TYPE_CHECKING:
    import pyarrow as pa

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
    ),
)

PATH_COLUMNS = ("collection_id", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")
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
#: Rows encoded at a time when resolving.
_BATCH = 65_536


@dataclass(frozen=True, slots=True)
class SeriesChange:
    """A pinned IDC series version that the current index no longer serves."""

    leaf: Leaf
    current_version: str | None  # the series' crdc_series_uuid today; None: withdrawn
    served_in: tuple[int, int] | None  # first and last IDC release of the pinned version

    @property
    def withdrawn(self) -> bool:
        return self.current_version is None


def default_index_path() -> Path:
    try:
        import idc_index_data
    except ImportError:
        raise SourceError(
            "the IDC index is not installed (package idc-index-data); reinstall MEDIator Desktop"
        ) from None
    return Path(str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH))


def _release() -> str:
    import idc_index_data

    return f"v{str(idc_index_data.__version__).split('.')[0]}"


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
    """Rules in order, with neighbouring unfiltered collection-level rules of one mode grouped."""
    runs: list[list[Rule]] = []
    for rule in rules:
        simple = rule.pointer.depth == 1 and not rule.pointer.filters
        last = runs[-1][0] if runs else None
        if (
            simple
            and last is not None
            and last.pointer.depth == 1
            and not last.pointer.filters
            and last.include == rule.include
        ):
            runs[-1].append(rule)
        else:
            runs.append([rule])
    return runs


def _has_unordered_conflicts(rules: Sequence[Rule]) -> bool:
    """Whether two rules of one depth, neither covering the other, overlap with opposite modes:
    then the layered evaluation may differ from ``decide`` and the exact path is taken."""
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            if (
                a.include != b.include
                and a.pointer.depth == b.pointer.depth
                and a.pointer.intersects(b.pointer)
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

    def __init__(self, index_path: Path | None = None, *, endpoint_url: str | None = None) -> None:
        """Args:
        index_path: the series index (default: the one idc-index-data ships).
        endpoint_url: the S3 endpoint holding IDC's public buckets (default: AWS).
        """
        self._index_path = index_path
        self.endpoint_url = endpoint_url
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
            import pyarrow.parquet as pq

            path = self._index_path or default_index_path()
            try:
                # Repeated values stay dictionary-encoded: a smaller table in memory.
                table = pq.read_table(path, columns=list(COLUMNS), read_dictionary=list(_DICTIONARY_COLUMNS))
            except (OSError, ValueError) as exc:
                raise SourceError(f"IDC: cannot read the index {path}: {exc}") from None
            self._collections = self._group(table, 0)
            self._table = table
        self._clean()

    def _loaded(self) -> pa.Table:
        if self._table is None:
            self.load()
        assert self._table is not None
        return self._table

    @property
    def series_count(self) -> int:
        return int(self._loaded().num_rows)

    def check(self) -> str:
        """What the index holds (loads it if needed; no network).

        Raises:
            SourceError: the index is missing or unreadable.
        """
        series = self.series_count
        release = "" if self._index_path is not None else f" (release {_release()})"
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
            rows = table.select([column, "series_size_MB", "Modality", "instanceCount"]).to_pylist()
            return sorted(
                (
                    BrowseItem(
                        r[column],
                        level,
                        f"{r['Modality'] or '?'} series, {r['instanceCount']} instances",
                        1,
                        round((r["series_size_MB"] or 0) * 1e6),
                        (("Modality", r["Modality"] or ""),),
                    )
                    for r in rows
                ),
                key=lambda item: item.key,
            )
        grouped = table.group_by(column).aggregate([(column, "count"), ("series_size_MB", "sum")])
        keys = grouped.column(column).to_pylist()
        counts = grouped.column(f"{column}_count").to_pylist()
        sizes = pc.round(pc.multiply(grouped.column("series_size_MB_sum"), 1e6)).to_pylist()
        items = [
            BrowseItem(k, level, k, n, int(s or 0)) for k, n, s in zip(keys, counts, sizes, strict=True) if k
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

    def _selected(self, selection: Selection) -> pa.Table:
        """The index rows of the series ``selection`` selects."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self._loaded()
        rules = sorted((r for r in selection.rules if r.pointer.source_id == self.source_id), key=_rank)
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        if not any(r.include for r in rules):
            return table.slice(0, 0)
        if _has_unordered_conflicts(rules):
            return self._resolve_exactly(table, rules)
        selected = pa.chunked_array([pa.array([False] * table.num_rows)])
        for group in _runs(rules):
            if len(group) > 1:  # whole collections, alike: one set lookup instead of one pass each
                values = pa.array([r.pointer.path[0] for r in group])
                mask = pc.is_in(table.column(PATH_COLUMNS[0]), value_set=values)
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
    def changes(self, manifest: Manifest) -> list[SeriesChange]:
        """IDC series of ``manifest`` whose pinned version is no longer the current one.

        A ``crdc_series_uuid`` names one immutable version of a series: if the current index no
        longer lists it, the series was revised (the index has it under a new version) or
        withdrawn. ``prior_versions_index`` says in which IDC releases the pinned one was served.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        pinned: dict[str, Leaf] = {
            leaf.fingerprint.version: leaf
            for leaf in manifest
            if leaf.source_id == self.source_id and leaf.fingerprint.version is not None
        }
        if not pinned:
            return []
        table = self._loaded()
        current = set(
            table.filter(pc.is_in(table.column("crdc_series_uuid"), value_set=pa.array(sorted(pinned))))
            .column("crdc_series_uuid")
            .to_pylist()
        )
        stale = {uuid: leaf for uuid, leaf in pinned.items() if uuid not in current}
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
        served = self._prior_versions(sorted(stale))
        return [
            SeriesChange(leaf, replacement.get(leaf.path[-1]), served.get(uuid))
            for uuid, leaf in sorted(stale.items(), key=lambda item: item[1].path)
        ]

    def _prior_versions(self, uuids: list[str]) -> dict[str, tuple[int, int]]:
        """(first, last) IDC release that served each of ``uuids``, from prior_versions_index."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            import idc_index_data

            path = Path(str(idc_index_data.PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH))
        except ImportError:
            return {}
        if self._index_path is not None or not path.exists():
            return {}
        table = pq.read_table(
            path,
            columns=["crdc_series_uuid", "min_idc_version", "max_idc_version"],
            filters=[("crdc_series_uuid", "in", pa.array(uuids))],
        )
        return {
            r["crdc_series_uuid"]: (int(r["min_idc_version"]), int(r["max_idc_version"]))
            for r in table.to_pylist()
        }

    # -- fetching ------------------------------------------------------------------------------
    def _row_of(self, uuid: str) -> dict[str, Any] | None:
        """The index row of a series version, by binary search over the uuids sorted once."""
        import pyarrow.compute as pc

        with self._lock:
            if self._by_uuid is None:
                table = self._table
                assert table is not None
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
            self._loaded().slice(order[lo].as_py(), 1).select(["aws_bucket", "Modality"]).to_pylist()[0]
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

    def plan(self, leaf: Leaf) -> LeafPlan:
        """The objects of one series (one anonymous S3 listing), with sizes and single-part ETags
        as MD5s; the count must match the index."""

        uuid = leaf.fingerprint.version
        series = leaf.path[-1]
        self._loaded()
        row = self._row_of(uuid) if uuid else None
        if row is None:
            raise SourceError(f"IDC: series {series} version {uuid} is not in this index (revised since?)")
        bucket = row["aws_bucket"]
        objects = self._list(bucket, f"{uuid}/", f"series {series}")
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
        return f"<IdcSource {self._index_path or 'idc-index-data'}>"


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> IdcSource:
    """Registry factory. Options: ``endpoint_url`` (an S3 endpoint other than AWS), ``index``."""
    source = IdcSource(
        Path(options["index"]) if options.get("index") else None, endpoint_url=options.get("endpoint_url")
    )
    source.source_id = source_id
    return source
