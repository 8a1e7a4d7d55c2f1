"""The NCI Genomic Data Commons through its REST API (``https://api.gdc.cancer.gov/``).

Levels: program > project > case > file; a leaf is a file. Keys: the program's name (``TCGA``),
the ``project_id`` (``TCGA-LUAD``), the case's ``submitter_id`` (``TCGA-05-4244``: what clinical
tables name and joins use; its UUID is in the case's details) and the file's ``file_name``. A file
linked to several cases appears under each of them. When two files of one case share a name,
each of them is keyed ``<name>.<first 8 hex of its UUID><extension>`` (``a.vcf.gz`` ->
``a.1dd28069.vcf.gz``), so keys are unique and stay the same from one resolution to the next.

GDC gives every version of a file a new UUID. A file's fingerprint is its size, MD5, UUID and the
first data release that served it (``data_release`` ``"32.0 - 37.0"`` gives ``32.0``; the range
itself grows with every release). So a new version that keeps its name is the same leaf
*revised* (same key, new fingerprint), and one with a new name is a removal plus an addition.

Searches are POSTed as JSON (thousands of case IDs fit), in pages of ``PAGE`` with the fewest
``fields`` needed, later pages fetched in parallel. Resolving lists whole cases (a key depends on
the other files of its case) and applies metadata filters (``data_category``, ``data_type``,
``experimental_strategy``, ``data_format``, ``access``, ``workflow_type``) and exclusions here.
429 and 5xx answers and dropped connections are retried with backoff (POSTed searches too: they
change nothing); a host that cannot be reached is ``ArchiveUnreachable``; HTML, a rejected filter
(GDC's message) and other garbage are ``SourceError``.

Update tracking (``track``) asks ``/files/versions`` about the pinned UUIDs (revised, withdrawn)
and ``/files`` for files updated since the last check (``updated_datetime``, with a margin for
clocks and indexing), then lists again only the cases where something changed. A file the GDC
publishes with an ``updated_datetime`` older than the last check (processed long before its
release) is seen only when something else in its case changes; a full check (``mediator sets
check --full``) resolves in full. A pointer to one file names its key: a new version under a new
name is not selected by it.

Downloads: ``/data/<uuid>`` through the transfer engine (parallel, resumed with Range, checked
against size and MD5), with ``X-Auth-Token`` when a token is stored. A controlled-access file
without a token fails on its own with what to do, before any request for its bytes.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from mediator_desktop._version import __version__
from mediator_desktop.core.errors import ArchiveUnreachable, SourceError, ValidationError
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.manifest import (
    TAB,
    US,
    Leaf,
    Manifest,
    ManifestBuilder,
    encode_key,
    escape_component,
)
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    DataKind,
    LazyFields,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
    Tracked,
    whole_number,
)
from mediator_desktop.sources.transport import unreachable

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.gdc.cancer.gov/"
DEFAULT_CONNECTIONS = 8
#: Hits asked for per search request.
PAGE = 5000
#: IDs (cases, files) per ``in`` filter of one POSTed search.
CHUNK = 2000
#: Pages of one listing fetched at once.
PAGE_THREADS = 4
#: Seconds the list of projects is reused while browsing.
PROJECTS_SECONDS = 300.0
#: Seconds before ``since`` from which ``track`` asks for updated files: GDC's clock and its
#: indexing may lag ours.
SINCE_MARGIN = 3600.0
#: File metadata kept for planning downloads (access, layout fields), at most.
META_CACHE = 50_000
#: What the identifiers of a GDC manifest are (``core.imports.KINDS``).
LOCATE_KIND = "gdc_file_id"
#: The header of the manifest ``gdc-client download -m`` reads.
MANIFEST_HEADER = "id\tfilename\tmd5\tsize\tstate"

#: Metadata filters, and the field each is at ``/files`` (at ``/cases`` behind ``files.``).
FILTER_FIELDS = {
    "access": "access",
    "data_category": "data_category",
    "data_format": "data_format",
    "data_type": "data_type",
    "experimental_strategy": "experimental_strategy",
    "workflow_type": "analysis.workflow_type",
}
FILTERABLE = tuple(sorted(FILTER_FIELDS))

_PROGRAM = "cases.project.program.name"
_PROJECT = "cases.project.project_id"
_CASE = "cases.submitter_id"
_CASE_FIELDS = (_CASE, _PROJECT, _PROGRAM)
#: The fields a leaf needs (its key, fingerprint and what plan checks).
_LEAF_FIELDS = ("file_id", "file_name", "file_size", "md5sum", "data_release", "access", "acl", *_CASE_FIELDS)
_META_FIELDS = tuple(FILTER_FIELDS.values())
#: ``/files/versions`` states of a version that is no longer served.
_GONE_STATES = frozenset({"redacted", "superseded", "deleted", "deprecated", "withdrawn"})
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_COMPRESSED = frozenset({".gz", ".bz2", ".xz", ".zst", ".zip"})
_RELEASE = re.compile(r"\d+(?:\.\d+)?")

#: Experimental strategies by category of data (``DataKind.category``).
GENOMICS = frozenset(
    {
        "ATAC-Seq",
        "Bisulfite-Seq",
        "ChIP-Seq",
        "CNV Array",
        "DNA-Seq",
        "Exon Array",
        "Expression Array",
        "Genotyping Array",
        "Hi-C",
        "Low Pass WGS",
        "Methylation Array",
        "miRNA Expression Array",
        "miRNA-Seq",
        "RNA-Seq",
        "scRNA-Seq",
        "snRNA-Seq",
        "Targeted Sequencing",
        "Total RNA-Seq",
        "WGS",
        "WXS",
    }
)
PATHOLOGY = frozenset({"Diagnostic Slide", "Tissue Slide"})
#: Data categories of files without a strategy that are genomic results.
GENOMIC_CATEGORIES = frozenset(
    {
        "Copy Number Variation",
        "DNA Methylation",
        "Sequencing Reads",
        "Simple Nucleotide Variation",
        "Somatic Structural Variation",
        "Structural Variation",
        "Transcriptome Profiling",
    }
)

KIND = SourceKind(
    "gdc",
    "NCI Genomic Data Commons",
    "Genomic and clinical files of the GDC (TCGA, TARGET, CPTAC...), browsed by program, project and "
    "case; open files download anonymously, controlled ones with a GDC token.",
    options=(
        SourceOption(
            "base_url",
            "API address",
            "The GDC API; leave as is for the GDC itself.",
            kind="url",
            default=DEFAULT_URL,
        ),
        SourceOption(
            "projects",
            "Projects",
            "Show only these projects, separated by commas (e.g. TCGA-LUAD, TCGA-LUSC); empty for all.",
        ),
        SourceOption(
            "connections",
            "Connections",
            "Downloads from the GDC at once.",
            kind="int",
            default=DEFAULT_CONNECTIONS,
        ),
    ),
    secret="token",
    secret_help=(
        "Optional: a GDC authentication token, needed only for controlled-access files (dbGaP "
        "approval required). Log in to the GDC Data Portal (https://portal.gdc.cancer.gov) with your "
        "eRA Commons account, open the menu under your user name, choose Download Token and paste the "
        "content of that file. A token lasts 30 days; store a new one when it expires."
    ),
)


# -- values ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GdcFile:
    """One file as a search answered it (the fields asked for; others empty)."""

    file_id: str
    file_name: str
    size: int | None
    md5: str | None
    released: str | None
    access: str
    acl: tuple[str, ...]
    cases: tuple[tuple[str, str, str], ...]  # (program, project, case submitter_id)
    data_category: str = ""
    data_type: str = ""
    experimental_strategy: str = ""
    data_format: str = ""
    workflow_type: str = ""

    def metadata(self) -> dict[str, str | None]:
        """The values filters compare, by filter name (None when the file has none)."""
        return {name: getattr(self, name) or None for name in FILTERABLE}


@dataclass(frozen=True, slots=True)
class _Project:
    project_id: str
    program: str
    name: str
    primary_site: str
    disease_type: str
    cases: int | None
    files: int | None
    size: int | None


def first_release(data_release: object) -> str | None:
    """The first release of a ``data_release`` value (``"32.0 - 37.0"`` -> ``"32.0"``)."""
    if isinstance(data_release, list):
        data_release = data_release[0] if data_release else None
    if data_release is None:
        return None
    match = _RELEASE.search(str(data_release))
    return match.group() if match else None


def disambiguated(name: str, file_id: str) -> str:
    """The key of a file whose case holds another file of the same name: the first 8 hex of its
    UUID before the extension (``a.vcf.gz`` -> ``a.<hex>.vcf.gz``)."""
    short = file_id.replace("-", "")[:8]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.{short}"
    if f".{ext.lower()}" in _COMPRESSED:
        inner_stem, inner_dot, inner_ext = stem.rpartition(".")
        if inner_dot and inner_stem:
            return f"{inner_stem}.{short}.{inner_ext}.{ext}"
    return f"{stem}.{short}.{ext}"


def original_name(key: str, file_id: str | None) -> str:
    """The file name behind a key (``disambiguated`` undone)."""
    if file_id:
        mark = f".{file_id.replace('-', '')[:8]}"
        stem, found, rest = key.rpartition(mark)
        if found and (not rest or rest.startswith(".")):
            return stem + rest
    return key


def keyed(files: Iterable[GdcFile]) -> list[tuple[str, GdcFile]]:
    """(key, file) of every file of one case: its name, or ``disambiguated`` when shared."""
    files = list(files)
    counts = Counter(f.file_name for f in files)
    names = set(counts)
    out = []
    for f in files:
        key = f.file_name
        if counts[key] > 1:
            key = disambiguated(key, f.file_id)
            if key in names:  # a file really named so: the whole UUID then
                key = f"{f.file_name}.{f.file_id}"
        out.append((key, f))
    return out


def category_of(strategy: str, data_type: str, data_category: str) -> str:
    """The ``DataKind`` category of files of a strategy (or, without one, a type and category)."""
    if strategy in PATHOLOGY or (data_type == "Slide Image" and not strategy):
        return "pathology"
    if strategy in GENOMICS:
        return "genomics"
    if strategy:
        return "other"
    if data_category == "Clinical" or data_type.startswith("Clinical"):
        return "clinical"
    if data_category in GENOMIC_CATEGORIES:
        return "genomics"
    return "other"


def manifest_file(leaves: Iterable[Leaf]) -> str:
    """The GDC manifest (TSV) of ``leaves``, as ``gdc-client download -m`` reads it and
    ``core.imports.read_manifest_file`` reads it back: one line per file UUID."""
    lines = [MANIFEST_HEADER]
    seen: set[str] = set()
    for leaf in leaves:
        fingerprint = leaf.fingerprint
        file_id = fingerprint.version
        if not file_id or file_id in seen:  # a file linked to several cases is one download
            continue
        seen.add(file_id)
        checksum = fingerprint.checksum or ""
        md5 = checksum[4:] if checksum.startswith("md5:") else ""
        size = "" if fingerprint.size is None else str(fingerprint.size)
        name = original_name(leaf.path[-1], file_id).replace("\t", " ").replace("\n", " ")
        lines.append(f"{file_id}\t{name}\t{md5}\t{size}\treleased")
    return "\n".join(lines) + "\n"


# -- filters -----------------------------------------------------------------------------------------
def _in(field: str, values: Iterable[str]) -> dict[str, Any]:
    return {"op": "in", "content": {"field": field, "value": list(values)}}


def _and(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    content = [p for p in parts if p]
    return {"op": "and", "content": content} if content else None


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _text(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v not in (None, ""))
    return "" if value is None else str(value)


def _number(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _dig(hit: Mapping[str, Any], dotted: str) -> Any:
    value: Any = hit
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _case_paths(hit: Mapping[str, Any], prefix: str = "cases") -> tuple[tuple[str, str, str], ...]:
    """(program, project, case) of every case a file hit (or a case hit, ``prefix=""``) names."""
    cases = hit.get(prefix) if prefix else [hit]
    if isinstance(cases, Mapping):
        cases = [cases]
    if not isinstance(cases, list):
        return ()
    out = []
    for case in cases:
        if not isinstance(case, Mapping):
            continue
        submitter = _text(case.get("submitter_id"))
        project = _text(_dig(case, "project.project_id"))
        program = _text(_dig(case, "project.program.name")) or project.split("-", 1)[0]
        if submitter and project and program:
            out.append((program, project, submitter))
    return tuple(dict.fromkeys(out))


def _file_of(hit: Mapping[str, Any]) -> GdcFile | None:
    file_id = _text(hit.get("file_id") or hit.get("id"))
    if not file_id:
        return None
    acl = hit.get("acl")
    md5 = _text(hit.get("md5sum")).lower() or None
    return GdcFile(
        file_id=file_id,
        file_name=_text(hit.get("file_name")) or file_id,
        size=_number(hit.get("file_size")),
        md5=md5,
        released=first_release(hit.get("data_release")),
        access=_text(hit.get("access")),
        acl=tuple(str(a) for a in acl) if isinstance(acl, list) else ((str(acl),) if acl else ()),
        cases=_case_paths(hit),
        data_category=_text(hit.get("data_category")),
        data_type=_text(hit.get("data_type")),
        experimental_strategy=_text(hit.get("experimental_strategy")),
        data_format=_text(hit.get("data_format")),
        workflow_type=_text(_dig(hit, "analysis.workflow_type")),
    )


def _inside(path: tuple[str, ...], scopes: Iterable[tuple[str, ...]]) -> bool:
    return any(path[: len(s)] == s for s in scopes)


# -- the source --------------------------------------------------------------------------------------
class GdcSource:
    """The GDC API as a ``DataSource`` (also ``Tracking``, ``Joining``, ``Describing``). Thread-safe."""

    hierarchy: Hierarchy = Hierarchy(("program", "project", "case", "file"))
    filterable: tuple[str, ...] = FILTERABLE
    patient_level: str | None = "case"
    #: Layout fields its plans give beyond the common ones and its levels.
    layout_fields = ("data_category", "data_type", "experimental_strategy", "data_format")
    #: What ``manifest_file`` writes (``Sets.export_manifest`` asks for it by this name).
    manifest_format: str = "gdc"

    def __init__(
        self,
        source_id: str = "gdc",
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        projects: Collection[str] | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        title: str = "NCI Genomic Data Commons",
        retries: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = (5.0, 120.0),
    ) -> None:
        self.source_id = source_id
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.title = title
        self.token = (token or "").strip() or None
        self.projects = tuple(sorted({p.strip() for p in projects or () if p.strip()})) or None
        self.connections = connections
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"MEDIator-Desktop/{__version__}"
        self._lock = threading.Lock()
        self._project_cache: tuple[float, list[_Project]] | None = None
        self._meta: dict[str, GdcFile] = {}
        #: Superseded file UUIDs the last ``locate`` found under a newer version (old -> new).
        self.replaced: dict[str, str] = {}

    # -- requests ------------------------------------------------------------------------------
    def _call(self, method: str, endpoint: str, what: str, body: Any = None) -> Any:
        """The JSON of a 2xx answer; retries 429/5xx and dropped connections with backoff."""
        url = self.base_url + endpoint
        response: requests.Response | None = None
        for attempt in range(self.retries + 1):
            try:
                response = self._session.request(method, url, json=body, timeout=self.timeout)
            except requests.exceptions.RequestException as exc:
                gone = unreachable(exc)
                if gone is not None:  # no host to talk to: the tracker or the user tries later
                    host = gone.host or urlsplit(url).netloc
                    raise ArchiveUnreachable(
                        f"the GDC ({host}) cannot be reached for {what}: {gone.reason}; check the network, "
                        "a proxy or VPN, or the archive's address",
                        host=host,
                        reason=gone.reason,
                    ) from None
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                if isinstance(exc, requests.exceptions.Timeout):
                    raise SourceError(f"the GDC did not answer in time for {what}; try later") from None
                raise SourceError(
                    f"the GDC failed for {what} ({type(exc).__name__}) {attempt + 1} times; try later"
                ) from None
            if response.status_code in _RETRY_STATUS and attempt < self.retries:
                time.sleep(self._pause(response, attempt))
                continue
            break
        assert response is not None
        status = response.status_code
        if status in _RETRY_STATUS:
            raise SourceError(f"the GDC answered {status} for {what}, {self.retries + 1} times; try later")
        if status >= 400:
            message = _error_message(response)
            if status == 400:
                raise SourceError(f"the GDC refused the query for {what}: {message}")
            if status in (401, 403):
                raise SourceError(f"the GDC refused access to {what} (HTTP {status}): {message}")
            raise SourceError(f"the GDC answered {status} for {what}: {message}")
        return self._json(response, what)

    def _pause(self, response: requests.Response, attempt: int) -> float:
        wait = float(self.backoff * 2**attempt)
        after = response.headers.get("Retry-After", "")
        if after.isdigit():
            wait = max(wait, min(float(after), 30.0))
        return wait

    @staticmethod
    def _json(response: requests.Response, what: str) -> Any:
        kind = response.headers.get("Content-Type", "unknown type")
        try:
            return response.json()
        except ValueError:
            text = response.text.strip()[:80]
            raise SourceError(
                f"the GDC answered {what} with something that is not JSON ({kind}: {text!r}); it may be "
                "under maintenance, try later"
            ) from None

    def _page(
        self, endpoint: str, body: Mapping[str, Any], what: str
    ) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        """One search request: (hits, pagination total, aggregations)."""
        answer = self._call("POST", endpoint, what, dict(body))
        data = answer.get("data") if isinstance(answer, dict) else None
        hits = data.get("hits") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(hits, list):
            raise SourceError(
                f"the GDC answered {what} with JSON that is not a search result: {_sample(answer)}"
            )
        warnings = answer.get("warnings")
        if warnings:
            log.info("GDC warnings for %s: %s", what, warnings)
        pagination = data.get("pagination")
        total = _number(pagination.get("total")) if isinstance(pagination, dict) else None
        aggregations = data.get("aggregations")
        return (
            [h for h in hits if isinstance(h, dict)],
            len(hits) if total is None else total,
            aggregations if isinstance(aggregations, dict) else {},
        )

    def _search(
        self,
        endpoint: str,
        filters: dict[str, Any] | None,
        fields: Iterable[str],
        what: str,
        *,
        sort: str,
        size: int = PAGE,
    ) -> list[dict[str, Any]]:
        """Every hit of a search: page after page up to ``pagination.total``, the later ones at once."""
        body: dict[str, Any] = {
            "fields": ",".join(dict.fromkeys(fields)),
            "size": size,
            "from": 0,
            "sort": sort,
            "format": "json",
        }
        if filters:
            body["filters"] = filters
        for _ in range(2):
            hits, total, _ = self._page(endpoint, body, what)
            if len(hits) >= total or not hits:
                return hits
            step = len(hits)
            offsets = range(step, total, step)

            with ThreadPoolExecutor(min(PAGE_THREADS, len(offsets))) as pool:
                bodies = [{**body, "from": offset, "size": step} for offset in offsets]
                answers = pool.map(lambda later: self._page(endpoint, later, what), bodies)
                pages = [(got, count) for got, count, _ in answers]
            if all(count == total for _, count in pages):
                for got, _ in pages:
                    hits.extend(got)
                if len(hits) == total:
                    return hits
            log.info("the GDC's answer to %s changed while it was read; reading it again", what)
        raise SourceError(f"the GDC's answer to {what} kept changing while it was read; try again later")

    def _facets(
        self, endpoint: str, filters: dict[str, Any] | None, fields: Sequence[str], what: str
    ) -> dict[str, dict[str, int]]:
        """Value counts (``facets``) of ``fields`` among the hits of ``filters``."""
        body: dict[str, Any] = {"facets": ",".join(fields), "size": 0, "from": 0, "format": "json"}
        if filters:
            body["filters"] = filters
        _, _, aggregations = self._page(endpoint, body, what)
        out: dict[str, dict[str, int]] = {}
        for name in fields:
            buckets = (
                aggregations.get(name, {}).get("buckets")
                if isinstance(aggregations.get(name), dict)
                else None
            )
            counts: dict[str, int] = {}
            for bucket in buckets or ():
                if isinstance(bucket, dict) and bucket.get("key") not in (None, "", "_missing"):
                    counts[str(bucket["key"])] = _number(bucket.get("doc_count")) or 0
            out[name] = counts
        return out

    # -- scopes --------------------------------------------------------------------------------
    def _filter_clauses(self, filters: Filters, prefix: str = "") -> list[dict[str, Any]]:
        clauses = []
        for name, values in filters:
            field = FILTER_FIELDS.get(name)
            if field is None:
                raise ValidationError(
                    f"the GDC cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}"
                )
            clauses.append(_in(prefix + field, values))
        return clauses

    def _restricted(self, prefix: str = "cases.") -> dict[str, Any] | None:
        return _in(f"{prefix}project.project_id", self.projects) if self.projects else None

    def _path_filter(self, path: Sequence[str], prefix: str = "cases.") -> dict[str, Any] | None:
        """The filter of the files (``prefix="cases."``) or cases (``""``) below ``path``."""
        clauses = []
        if not path:
            clauses.append(self._restricted(prefix))
        if len(path) >= 1:
            clauses.append(_in(f"{prefix}project.program.name", [path[0]]))
            if len(path) == 1:
                clauses.append(self._restricted(prefix))
        if len(path) >= 2:
            clauses.append(_in(f"{prefix}project.project_id", [path[1]]))
        if len(path) >= 3:
            clauses.append(_in(f"{prefix}submitter_id", [path[2]]))
        return _and(*clauses)

    def _scope_queries(
        self, scopes: Sequence[tuple[str, ...]]
    ) -> list[tuple[dict[str, Any] | None, list[tuple[str, ...]]]]:
        """(files filter, the scopes it lists whole) for ``scopes`` (none inside another): few
        requests, each listing every file of every case inside its scopes."""
        queries: list[tuple[dict[str, Any] | None, list[tuple[str, ...]]]] = []
        if () in scopes:
            return [(self._path_filter(()), [()])]
        programs = sorted({s[0] for s in scopes if len(s) == 1})
        if programs:
            queries.append((_and(_in(_PROGRAM, programs), self._restricted()), [(p,) for p in programs]))
        projects = sorted({s[:2] for s in scopes if len(s) == 2})
        for chunk in _chunks([p[1] for p in projects]):
            queries.append((_and(_in(_PROJECT, chunk)), [s for s in projects if s[1] in set(chunk)]))
        cases = sorted({s[:3] for s in scopes if len(s) >= 3})
        for chunk_of_cases in (cases[i : i + CHUNK] for i in range(0, len(cases), CHUNK)):
            filters = _and(
                _in(_PROJECT, sorted({c[1] for c in chunk_of_cases})),
                _in(_CASE, sorted({c[2] for c in chunk_of_cases})),
            )
            queries.append((filters, list(chunk_of_cases)))
        return queries

    def _list_cases(
        self, scopes: Sequence[tuple[str, ...]], fields: Iterable[str] = _LEAF_FIELDS
    ) -> dict[tuple[str, str, str], list[GdcFile]]:
        """Every file of every case inside ``scopes`` (none inside another), by case."""
        fields = tuple(dict.fromkeys((*_LEAF_FIELDS, *fields)))
        by_case: dict[tuple[str, str, str], list[GdcFile]] = {}
        for filters, listed in self._scope_queries(scopes):
            what = "the files of " + _named(listed)
            for hit in self._search("files", filters, fields, what, sort="file_id:asc"):
                f = _file_of(hit)
                if f is None:
                    continue
                for case in f.cases:
                    # Only cases this query lists whole: keys depend on every file of the case.
                    if _inside(case, listed):
                        by_case.setdefault(case, []).append(f)
        if self.projects is not None:
            allowed = set(self.projects)
            explicit = {s[1] for s in scopes if len(s) >= 2}
            by_case = {c: fs for c, fs in by_case.items() if c[1] in allowed or c[1] in explicit}
        self._remember(f for files in by_case.values() for f in files)
        return by_case

    def _remember(self, files: Iterable[GdcFile]) -> None:
        with self._lock:
            for f in files:
                if f.file_id not in self._meta and len(self._meta) >= META_CACHE:
                    self._meta.clear()
                self._meta[f.file_id] = f

    # -- browsing ------------------------------------------------------------------------------
    def _projects(self) -> list[_Project]:
        with self._lock:
            cached = self._project_cache
        if cached is not None and time.monotonic() - cached[0] < PROJECTS_SECONDS:
            return cached[1]
        fields = (
            "project_id",
            "name",
            "program.name",
            "primary_site",
            "disease_type",
            "summary.case_count",
            "summary.file_count",
            "summary.file_size",
        )
        hits = self._search(
            "projects",
            _and(_in("project_id", self.projects)) if self.projects else None,
            fields,
            "the projects",
            sort="project_id:asc",
            size=1000,
        )
        projects = []
        for hit in hits:
            project_id = _text(hit.get("project_id"))
            if not project_id:
                continue
            projects.append(
                _Project(
                    project_id,
                    _text(_dig(hit, "program.name")) or project_id.split("-", 1)[0],
                    _text(hit.get("name")),
                    _text(hit.get("primary_site")),
                    _text(hit.get("disease_type")),
                    _number(_dig(hit, "summary.case_count")),
                    _number(_dig(hit, "summary.file_count")),
                    _number(_dig(hit, "summary.file_size")),
                )
            )
        projects.sort(key=lambda p: p.project_id)
        with self._lock:
            self._project_cache = (time.monotonic(), projects)
        return projects

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        """Children of ``path``: programs, projects, cases (paged by the GDC unless filtered), files.

        Programs and projects carry file counts and sizes (the projects' ``summary``; with filters,
        file counts from facets), cases the same from their ``summary`` and their UUID, primary
        site and disease type in details, files their type, format, size and access.
        """
        if len(path) >= len(self.hierarchy.levels):
            raise ValidationError("a file is a leaf: it has no children to browse")
        clauses = self._filter_clauses(filters)  # checks the names first
        if len(path) <= 1:
            items = self._browse_top(path, filters, clauses)
        elif len(path) == 2:
            return self._browse_cases(path, filters, clauses, offset, limit)
        else:
            items = self._browse_files(path, filters)
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def _browse_top(
        self, path: tuple[str, ...], filters: Filters, clauses: list[dict[str, Any]]
    ) -> list[BrowseItem]:
        projects = [p for p in self._projects() if not path or p.program == path[0]]
        counts: dict[str, int] | None = None
        if filters:
            what = f"the files of {'/'.join(path) or 'the GDC'} with {_describe(filters)}"
            counts = self._facets("files", _and(self._path_filter(path), *clauses), (_PROJECT,), what)[
                _PROJECT
            ]
            projects = [p for p in projects if counts.get(p.project_id)]
        if path:
            return [
                BrowseItem(
                    p.project_id,
                    "project",
                    p.name or p.project_id,
                    p.files if counts is None else counts[p.project_id],
                    p.size if counts is None else None,
                    _details(
                        ("program", p.program),
                        ("primary_site", p.primary_site),
                        ("disease_type", p.disease_type),
                        ("cases", "" if p.cases is None else str(p.cases)),
                    ),
                )
                for p in projects
            ]
        programs: dict[str, list[_Project]] = {}
        for p in projects:
            programs.setdefault(p.program, []).append(p)
        items = []
        for name in sorted(programs):
            members = programs[name]
            files = [p.files if counts is None else counts[p.project_id] for p in members]
            sizes = [p.size for p in members]
            items.append(
                BrowseItem(
                    name,
                    "program",
                    name,
                    None if None in files else sum(f or 0 for f in files),
                    None if counts is not None or None in sizes else sum(s or 0 for s in sizes),
                    (("projects", str(len(members))),),
                )
            )
        return items

    def _browse_cases(
        self, path: tuple[str, ...], filters: Filters, clauses: list[dict[str, Any]], offset: int, limit: int
    ) -> BrowsePage:
        fields = (
            "submitter_id",
            "case_id",
            "primary_site",
            "disease_type",
            "summary.file_count",
            "summary.file_size",
        )
        where = _and(self._path_filter(path, ""))
        what = f"the cases of {path[1]}"
        if not filters:
            body = {
                "filters": where,
                "fields": ",".join(fields),
                "from": offset,
                "size": max(1, limit),
                "sort": "submitter_id:asc",
                "format": "json",
            }
            hits, total, _ = self._page("cases", body, what)
            page = [item for item in map(_case_item, hits) if item is not None]
            return BrowsePage(tuple(page), offset, total)
        described = f"the files of {'/'.join(path)} with {_describe(filters)}"
        counts = self._facets("files", _and(self._path_filter(path), *clauses), (_CASE,), described)[_CASE]
        hits = self._search("cases", where, fields, what, sort="submitter_id:asc")
        items: list[BrowseItem] = []
        for hit in hits:
            item = _case_item(hit)
            if item is not None and counts.get(item.key):
                items.append(
                    BrowseItem(item.key, item.level, item.label, counts[item.key], None, item.details)
                )
        items.sort(key=lambda i: i.key)
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def _browse_files(self, path: tuple[str, ...], filters: Filters) -> list[BrowseItem]:
        case = (path[0], path[1], path[2])
        files = self._list_cases([case], _META_FIELDS).get(case, [])
        wanted = dict(filters)
        items = []
        for key, f in keyed(files):
            meta = f.metadata()
            if any(meta.get(name) not in values for name, values in wanted.items()):
                continue
            kind = f.data_type or f.data_category or "file"
            label = ", ".join(
                part
                for part in (
                    kind,
                    f.data_format,
                    human_bytes(f.size) if f.size is not None else "",
                    f.access,
                )
                if part
            )
            details = _details(
                ("file_id", f.file_id),
                ("data_category", f.data_category),
                ("data_type", f.data_type),
                ("experimental_strategy", f.experimental_strategy),
                ("data_format", f.data_format),
                ("workflow_type", f.workflow_type),
                ("access", f.access),
                ("md5", f.md5 or ""),
                ("data_release", f.released or ""),
            )
            items.append(BrowseItem(key, "file", label, 1, f.size, details))
        items.sort(key=lambda i: i.key)
        return items

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        """The values ``name`` takes among the files below ``path`` (one facets request)."""
        field = FILTER_FIELDS.get(name)
        if field is None:
            raise ValidationError(f"the GDC cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}")
        what = f"the {name} values of {'/'.join(path) or 'the GDC'}"
        return sorted(self._facets("files", self._path_filter(path[:3]), (field,), what)[field])

    def check(self) -> str:
        """One request to ``/status``: the API answers. Returns its data release."""
        return self._state()

    def _state(self) -> str:
        answer = self._call("GET", "status", "its status")
        release = None
        if isinstance(answer, dict):
            for name in ("data_release", "release", "data_release_version"):
                match = _RELEASE.search(_text(answer.get(name)))
                if match:
                    release = match.group()
                    break
        if release:
            return f"GDC data release {release}"
        return f"GDC as of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"

    def pointer(self, *path: str, **filters: str | Iterable[str]) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path, **filters))

    # -- resolution ----------------------------------------------------------------------------
    def _rules(self, selection: Selection) -> tuple[list[Rule], list[tuple[str, ...]]]:
        """This source's rules (validated) and the case-or-coarser paths to list (none inside another)."""
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
            self._filter_clauses(rule.pointer.filters)
        scopes = sorted({r.pointer.path[:3] for r in rules if r.include})
        return rules, [s for s in scopes if not any(o != s and s[: len(o)] == o for o in scopes)]

    def resolve(self, selection: Selection) -> Manifest:
        """The files ``selection`` selects: the cases below its included pointers listed whole
        (a few POSTed searches, pages of ``PAGE``), filters and exclusions applied here."""
        rules, scopes = self._rules(selection)
        builder = ManifestBuilder()
        if scopes:
            self._add(builder, rules, self._list_cases(scopes, self._rule_fields(rules)))
        return builder.build()

    @staticmethod
    def _rule_fields(rules: Iterable[Rule]) -> tuple[str, ...]:
        return tuple(FILTER_FIELDS[name] for r in rules for name, _ in r.pointer.filters)

    def _add(
        self,
        builder: ManifestBuilder,
        rules: list[Rule],
        by_case: Mapping[tuple[str, str, str], list[GdcFile]],
    ) -> None:
        sid = self.source_id
        filtered = any(r.pointer.filters for r in rules)
        for case, files in by_case.items():
            for key, f in keyed(files):
                path = (*case, key)
                if not decide(rules, sid, path, f.metadata() if filtered else {}):
                    continue
                builder.add(
                    sid,
                    path,
                    size=f.size,
                    count=1,
                    checksum=f"md5:{f.md5}" if f.md5 else None,
                    version=f.file_id,
                    released=f.released,
                )

    # -- update tracking -----------------------------------------------------------------------
    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects now, asking the GDC what changed instead of listing it all.

        ``/files/versions`` (POSTed, ``CHUNK`` UUIDs a request) tells which pinned files have a
        newer version (revised) or none (withdrawn, redacted); ``/files`` which files inside the
        set's scopes were updated since ``since`` (less ``SINCE_MARGIN``): new files, new versions,
        changed metadata. Only the cases holding any of these are listed again and spliced into
        ``base``; every other leaf of ``base`` stays as it is. Without ``since``, resolves in full.

        Raises:
            SourceError: the GDC is down or answered garbage (nothing partial is returned).
        """
        state = self._state()
        if since is None:
            return Tracked(self.resolve(selection), state)
        rules, scopes = self._rules(selection)
        if not scopes:
            return Tracked(ManifestBuilder().build(), state)
        pinned: dict[str, set[tuple[str, str, str]]] = {}
        for leaf in base.under(self.source_id):
            if leaf.fingerprint.version and len(leaf.path) == 4:
                pinned.setdefault(leaf.fingerprint.version, set()).add(
                    (leaf.path[0], leaf.path[1], leaf.path[2])
                )
        touched: set[tuple[str, str, str]] = set()

        # 1. The pinned versions: revised or withdrawn.
        versions = self._versions(sorted(pinned))
        revised: Counter[str] = Counter()
        withdrawn = 0
        latest_ids: set[str] = set()
        for file_id, cases in pinned.items():
            entry = versions.get(file_id)
            latest = _text(entry.get("latest_id")) if entry else ""
            latest_state = _text(entry.get("latest_state") or entry.get("state")).lower() if entry else ""
            if entry and latest == file_id and latest_state not in _GONE_STATES:
                continue
            touched |= cases
            if entry and latest and latest != file_id and latest_state not in _GONE_STATES:
                latest_ids.add(latest)
                releases = entry.get("latest_release")
                revised[first_release(releases) or ""] += 1
            else:
                withdrawn += 1
        for chunk in _chunks(sorted(latest_ids)):
            what = f"the newest versions of {len(chunk):,} pinned files"
            for hit in self._search(
                "files", _and(_in("file_id", chunk)), _CASE_FIELDS, what, sort="file_id:asc"
            ):
                touched |= set(_case_paths(hit))

        # 2. Files updated since the last check, inside the set's scopes.
        moment = dt.datetime.fromtimestamp(since - SINCE_MARGIN, dt.UTC).isoformat()
        changed = {"op": ">=", "content": {"field": "updated_datetime", "value": moment}}
        for filters, listed in self._scope_queries(scopes):
            what = f"the files of {_named(listed)} updated since {moment}"
            fields = ("file_id", *_CASE_FIELDS)
            for hit in self._search("files", _and(filters, changed), fields, what, sort="file_id:asc"):
                touched |= {c for c in _case_paths(hit) if _inside(c, listed)}
                touched |= pinned.get(_text(hit.get("file_id")), set())  # it may have left a case

        # 3. List those cases again and splice them into ``base``.
        touched = {c for c in touched if _inside(c, scopes)}
        builder = ManifestBuilder()
        if touched:
            fresh_cases = self._list_cases(sorted(touched), self._rule_fields(rules))
            self._add(builder, rules, {c: fresh_cases.get(c, []) for c in touched})
        fresh = builder.build()
        drop = {encode_key(self.source_id, case) for case in touched}
        own = escape_component(self.source_id) + US
        kept = [
            line
            for line in base.lines()
            if line.startswith(own) and US.join(line.partition(TAB)[0].split(US)[:4]) not in drop
        ]
        manifest = Manifest.from_canonical_lines(list(heapq.merge(kept, fresh.lines())), check_grammar=False)
        versions_before = set(pinned)
        new = {leaf.fingerprint.version for leaf in fresh} - versions_before - latest_ids
        return Tracked(manifest, state, _notes(revised, withdrawn, len(new)))

    def _versions(self, file_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``/files/versions`` entries of ``file_ids`` (POSTed in chunks), by id."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(file_ids):
            answer = self._call(
                "POST", "files/versions", f"the versions of {len(chunk):,} files", {"ids": chunk}
            )
            if isinstance(answer, dict):  # tolerate an envelope
                answer = answer.get("data", answer.get("hits"))
                if isinstance(answer, dict):
                    answer = answer.get("hits")
            if not isinstance(answer, list):
                raise SourceError(f"the GDC answered the versions of files with {_sample(answer)}")
            for entry in answer:
                if isinstance(entry, dict) and entry.get("id"):
                    out[str(entry["id"])] = entry
        return out

    # -- manifests people have -----------------------------------------------------------------
    def locate(self, kind: str, identifiers: Sequence[str]) -> tuple[list[Pointer], list[str]]:
        """File pointers for GDC file UUIDs (``gdc_file_id``, a GDC manifest's ``id`` column), and the
        identifiers not found. A superseded UUID is found as its newest version (``replaced`` and
        the log say which). One file linked to several cases gives a pointer under each."""
        if kind != LOCATE_KIND:
            return [], list(identifiers)
        wanted = list(dict.fromkeys(i.strip().lower() for i in identifiers if i.strip()))
        files = self._files_by_id(wanted)
        missing = [i for i in wanted if i not in files]
        replaced: dict[str, str] = {}
        if missing:
            for old, entry in self._versions(missing).items():
                latest = _text(entry.get("latest_id"))
                state = _text(entry.get("latest_state") or entry.get("state")).lower()
                if latest and latest != old and state not in _GONE_STATES:
                    replaced[old.lower()] = latest
            files.update(self._files_by_id(sorted(set(replaced.values()) - set(files))))
            replaced = {old: new for old, new in replaced.items() if new in files}
            if replaced:
                log.warning(
                    "GDC: %d file UUIDs are older versions; their newest versions were taken: %s",
                    len(replaced),
                    ", ".join(f"{o} -> {n}" for o, n in sorted(replaced.items())[:8]),
                )
        self.replaced = replaced
        keys = self._keys_of(list(files.values()))
        pointers: dict[str, list[Pointer]] = {}
        for file_id, f in files.items():
            pointers[file_id] = [
                Pointer(self.source_id, (*case, keys[(case, file_id)]))
                for case in f.cases
                if (case, file_id) in keys
            ]
        found: list[Pointer] = []
        absent = []
        for original in identifiers:
            file_id = original.strip().lower()
            got = pointers.get(replaced.get(file_id, file_id))
            if got:
                found.extend(got)
            else:
                absent.append(original)
        return list(dict.fromkeys(found)), absent

    def _files_by_id(self, file_ids: Sequence[str]) -> dict[str, GdcFile]:
        out: dict[str, GdcFile] = {}
        for chunk in _chunks(file_ids):
            what = f"{len(chunk):,} files by UUID"
            for hit in self._search(
                "files", _and(_in("file_id", chunk)), _LEAF_FIELDS, what, sort="file_id:asc"
            ):
                f = _file_of(hit)
                if f is not None:
                    out[f.file_id.lower()] = f
        return out

    def _keys_of(self, files: Sequence[GdcFile]) -> dict[tuple[tuple[str, str, str], str], str]:
        """The key of each file under each of its cases: its name, unless another file of that
        case has the same name (asked with one search for those names in those cases)."""
        cases = sorted({c for f in files for c in f.cases})
        names = sorted({f.file_name for f in files})
        same: dict[tuple[str, str, str], dict[str, GdcFile]] = {}
        for chunk in (cases[i : i + CHUNK] for i in range(0, len(cases), CHUNK)):
            filters = _and(
                _in(_PROJECT, sorted({c[1] for c in chunk})),
                _in(_CASE, sorted({c[2] for c in chunk})),
                _in("file_name", names),
            )
            wanted = set(chunk)
            for hit in self._search(
                "files", filters, _LEAF_FIELDS, "files of the same names", sort="file_id:asc"
            ):
                f = _file_of(hit)
                if f is not None:
                    for case in f.cases:
                        if case in wanted:
                            same.setdefault(case, {})[f.file_id] = f
        keys: dict[tuple[tuple[str, str, str], str], str] = {}
        for case, by_id in same.items():
            for key, f in keyed(by_id.values()):
                keys[(case, f.file_id.lower())] = key
        return keys

    def manifest_file(self, leaves: Iterable[Leaf]) -> str:
        """The GDC manifest (TSV) of ``leaves``: see the module's ``manifest_file``."""
        return manifest_file(leaves)

    def leaf_urls(self, leaves: Iterable[Leaf]) -> Iterator[tuple[Leaf, str]]:
        """Each file's download URL, ``<api>/data/<file uuid>`` (offline)."""
        for leaf in leaves:
            file_id = leaf.fingerprint.version or leaf.path[-1]
            yield leaf, f"{self.base_url}data/{file_id}"

    # -- joins and kinds of data (the Integrator) ----------------------------------------------
    def _check_scope(self, scope: Pointer) -> None:
        if scope.source_id != self.source_id or scope.depth >= 3:
            raise ValidationError(
                f"join target {scope} must be a pointer into GDC archive {self.source_id!r} above its "
                "cases (the archive, a program or a project)"
            )
        self._filter_clauses(scope.filters)

    def join_patients(self, scope: Pointer, patients: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
        """The (program, project, case) paths of the cases whose ``submitter_id`` is one of
        ``patients`` below ``scope`` (with files its filters select): ``/cases`` POSTed with ``in``
        filters, ``CHUNK`` IDs a request. Cases the GDC lacks are left out."""
        self._check_scope(scope)
        wanted = sorted({p for p in patients if p})
        found: dict[str, list[tuple[str, ...]]] = {}
        fields = ("submitter_id", "project.project_id", "project.program.name")
        for chunk in _chunks(wanted):
            filters = _and(
                _in("submitter_id", chunk),
                self._path_filter(scope.path, ""),
                *self._filter_clauses(scope.filters, "files."),
            )
            what = f"{len(chunk):,} cases by submitter ID"
            for hit in self._search("cases", filters, fields, what, sort="submitter_id:asc"):
                for path in _case_paths(hit, ""):
                    if path[2] in set(chunk) and _inside(path, [scope.path]):
                        found.setdefault(path[2], []).append(path)
        return {k: sorted(set(v)) for k, v in sorted(found.items())}

    def data_kinds(self, scope: Pointer, patients: Collection[str]) -> list[DataKind]:
        """The kinds of files ``patients`` have below ``scope``: one per experimental strategy (or,
        for files without one, per data type), with the patients, file count and bytes of each."""
        self._check_scope(scope)
        wanted = sorted({p for p in patients if p})
        fields = (
            "file_id",
            "file_size",
            "data_category",
            "data_type",
            "experimental_strategy",
            *_CASE_FIELDS,
        )
        kinds: dict[tuple[str, str], tuple[set[str], set[str], list[int]]] = {}
        labels: dict[tuple[str, str], tuple[str, str]] = {}
        for chunk in _chunks(wanted):
            filters = _and(
                _in(_CASE, chunk),
                self._path_filter(scope.path),
                *self._filter_clauses(scope.filters),
            )
            members = set(chunk)
            what = f"the files of {len(chunk):,} cases"
            for hit in self._search("files", filters, fields, what, sort="file_id:asc"):
                f = _file_of(hit)
                if f is None:
                    continue
                who = {c[2] for c in f.cases if c[2] in members and _inside(c, [scope.path])}
                if not who:
                    continue
                if f.experimental_strategy:
                    kind = ("experimental_strategy", f.experimental_strategy)
                elif f.data_type:
                    kind = ("data_type", f.data_type)
                else:
                    kind = ("data_category", f.data_category or "unknown")
                patients_of, ids, size = kinds.setdefault(kind, (set(), set(), [0]))
                patients_of |= who
                if f.file_id not in ids:
                    ids.add(f.file_id)
                    size[0] += f.size or 0
                labels[kind] = (f.data_type, f.data_category)
        out = []
        for (name, value), (who, ids, size) in kinds.items():
            data_type, data_category = labels[(name, value)]
            strategy = value if name == "experimental_strategy" else ""
            out.append(
                DataKind(
                    label=value,
                    category=category_of(strategy, data_type, data_category),
                    filter=(name, value) if value != "unknown" else None,
                    patients=frozenset(who),
                    leaves=len(ids),
                    size=size[0],
                )
            )
        out.sort(key=lambda k: (k.category, k.label))
        return out

    # -- fetching ------------------------------------------------------------------------------
    def _file_meta(self, leaf: Leaf) -> GdcFile | None:
        """What the GDC says of a leaf's file (cached; one listing of its case otherwise), or None
        when it no longer lists that version."""
        file_id = leaf.fingerprint.version or ""
        with self._lock:
            known = self._meta.get(file_id)
        if known is None and len(leaf.path) == 4:
            self._list_cases([(leaf.path[0], leaf.path[1], leaf.path[2])], _META_FIELDS)
            with self._lock:
                known = self._meta.get(file_id)
        return known

    def plan(self, leaf: Leaf) -> LeafPlan:
        """One file from ``/data/<uuid>``, checked for size and MD5 by the engine, with the token
        when one is stored. Without a token, a controlled-access file fails here with what to do.

        Raises:
            SourceError: a controlled file and no token; a leaf without a file UUID.
        """
        fingerprint = leaf.fingerprint
        file_id = fingerprint.version
        if not file_id or len(leaf.path) != 4:
            raise SourceError(f"{'/'.join(leaf.path)} names no GDC file version; resolve the set again")
        program, project, case, key = leaf.path
        meta = self._file_meta(leaf)
        controlled = meta is not None and meta.access.lower() == "controlled"
        if controlled and self.token is None:
            raise SourceError(self.controlled_message(meta.acl if meta else ()))
        checksum = fingerprint.checksum or ""
        md5 = checksum[4:] if checksum.startswith("md5:") else None
        headers = (("X-Auth-Token", self.token),) if self.token else ()
        # A token that lacks the file's dbGaP study (or expired) is refused by the GDC: say which.
        refused = self.controlled_message(meta.acl) if controlled and meta is not None else None
        file = RemoteFile(f"{self.base_url}data/{file_id}", key, fingerprint.size, md5, headers, refused)

        def meta_field(name: str) -> Callable[[], str]:
            def get() -> str:
                meta = self._file_meta(leaf)
                return "" if meta is None else str(getattr(meta, name))

            return get

        def modality() -> str:
            meta = self._file_meta(leaf)
            return "" if meta is None else meta.experimental_strategy or meta.data_format or meta.data_type

        fields = LazyFields(
            patient=lambda: case,
            case=lambda: case,
            project=lambda: project,
            program=lambda: program,
            collection=lambda: project,
            series=lambda: key,
            study=meta_field("data_category"),
            modality=modality,
            data_category=meta_field("data_category"),
            data_type=meta_field("data_type"),
            experimental_strategy=meta_field("experimental_strategy"),
            data_format=meta_field("data_format"),
        )
        return LeafPlan((file,), fields, count=1)

    def controlled_message(self, acl: Sequence[str]) -> str:
        """What a controlled-access file without (or beyond) the stored token needs."""
        studies = ", ".join(acl) or "a dbGaP study"
        return (
            f"controlled access: dbGaP {studies} needed: store a GDC token with "
            f"`mediator sources secret {self.source_id}` (from the GDC Data Portal, once dbGaP has "
            "approved your access)"
        )

    def close(self) -> None:
        self._session.close()


# -- helpers -----------------------------------------------------------------------------------------
def _case_item(hit: Mapping[str, Any]) -> BrowseItem | None:
    key = _text(hit.get("submitter_id"))
    if not key:
        return None
    return BrowseItem(
        key,
        "case",
        key,
        _number(_dig(hit, "summary.file_count")),
        _number(_dig(hit, "summary.file_size")),
        _details(
            ("case_id", _text(hit.get("case_id") or hit.get("id"))),
            ("primary_site", _text(hit.get("primary_site"))),
            ("disease_type", _text(hit.get("disease_type"))),
        ),
    )


def _details(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in pairs if v)


def _describe(filters: Filters) -> str:
    return ", ".join(f"{name}={'|'.join(values)}" for name, values in filters)


def _named(scopes: Sequence[tuple[str, ...]]) -> str:
    if not scopes or scopes == [()]:
        return "the GDC"
    names = ["/".join(s) for s in scopes[:3]]
    more = f" and {len(scopes) - 3:,} more" if len(scopes) > 3 else ""
    return ", ".join(names) + more


def _sample(value: object) -> str:
    return repr(value)[:120]


def _error_message(response: requests.Response) -> str:
    """GDC's own words for a refusal (``{"message": ...}``), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return repr(response.text.strip()[:200])
    if isinstance(body, dict):
        for name in ("message", "error", "detail", "warnings"):
            if body.get(name):
                return _text(body[name]) if not isinstance(body[name], dict) else str(body[name])
    return _sample(body)


def _notes(revised: Counter[str], withdrawn: int, new: int) -> tuple[str, ...]:
    """For people: ``3 files revised in GDC data release 42.0; 1 withdrawn; 2 new``."""
    parts = []
    count = sum(revised.values())
    if count:
        releases = sorted(r for r in revised if r)
        where = ""
        if len(releases) == 1:
            where = f" in GDC data release {releases[0]}"
        elif releases:
            where = f" in GDC data releases {', '.join(releases)}"
        parts.append(f"{count:,} file{'' if count == 1 else 's'} revised{where}")
    if withdrawn:
        parts.append(
            f"{withdrawn:,} withdrawn"
            if parts
            else f"{withdrawn:,} file{'' if withdrawn == 1 else 's'} withdrawn"
        )
    if new:
        parts.append(f"{new:,} new" if parts else f"{new:,} new file{'' if new == 1 else 's'}")
    return ("; ".join(parts),) if parts else ()


def _projects_option(value: object) -> list[str] | None:
    if value in (None, ""):
        return None
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()] or None
    return [p.strip() for p in str(value).split(",") if p.strip()] or None


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> GdcSource:
    """Registry factory. Options: ``base_url`` (default: the GDC's API), ``projects`` (a comma list
    of the projects to show; empty for all), ``connections``; the secret is a GDC token."""
    return GdcSource(
        source_id,
        str(options.get("base_url") or DEFAULT_URL),
        token=secret,
        projects=_projects_option(options.get("projects")),
        connections=whole_number(options.get("connections"), DEFAULT_CONNECTIONS, "connections"),
    )
