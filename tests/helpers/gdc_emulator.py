"""An emulator of the NCI Genomic Data Commons (GDC) API, for offline tests, demos and benchmarks.

It answers like ``https://api.gdc.cancer.gov`` as GDC's documentation describes it (``NCI-GDC/gdc-docs``,
docs/API/Users_Guide: Search_and_Retrieval, Downloading_Files, System_Information, Appendix A) and as
GDC's own code behaves (gdc-client's download and version code and its mock server; the gdcapi request
parsing, response formatting, sanitising and auth code that uc-cdis/peregrine and cdiserrors inherited):

- search: ``/files``, ``/cases``, ``/projects`` by GET (query string) or POST (JSON or form body, which
  overrides the query string), with ``filters`` (``= != < <= > >= in exclude excludeifany is not and
  or``; field names with or without the endpoint's prefix; wildcards; dates compared as instants),
  ``fields`` (dotted names, answered nested: ``"cases":[{"project":{"project_id":..}}]``), ``expand``,
  ``size``/``from``, ``sort``, ``facets`` (``aggregations`` of ``buckets`` sorted by ``doc_count``, a
  ``_missing`` bucket, ``stats`` for numbers; a facet disregards the filters on its own field, range
  filters excepted), ``format`` (JSON, TSV, CSV, XML), ``pretty`` and, on ``/files``,
  ``return_type=manifest`` (every match, whatever ``size``). Unknown ``fields``, ``facets`` or
  ``expand`` values are dropped with a warning (``"unrecognized values: [...]"``) and a 200, as GDC does;
  a bad filter (malformed JSON, unknown operator, unknown field) or an unknown sort field is a 400.
- ``/files/{id}``, ``/cases/{id}`` (the case UUID), ``/projects/{id}``: ``{"data": {...}, "warnings":
  {}}`` without hits, 404 when unknown; ``/<endpoint>/_mapping``.
- ``/data/{id}``: the bytes, ``Content-Disposition: attachment; filename=<name>``, ``Content-Length``,
  HTTP ranges (206 + ``Content-Range``, 416); ``/data/{a},{b}`` and ``POST /data`` (JSON ``ids`` or form
  ``ids=``) stream a ``.tar.gz`` (``?tarfile``: ``.tar``) without ``Content-Length``, holding
  ``MANIFEST.txt`` and ``<id>/<file name>``. Controlled files want an ``X-Auth-Token`` whose acl meets
  the file's: 403 ``{"message": ...}`` with GDC's messages otherwise. Superseded versions stay
  downloadable; redacted (removed) files are 404.
- ``/manifest/{ids}`` (GET, or POST ids): the Data Transfer Tool's TSV, ``id filename md5 size state``.
- ``/files/versions/{ids}``, ``POST /files/versions`` (``{"ids": [...]}``) and ``POST
  /files/versions/manifest`` (a manifest TSV): per id ``id, filename, version, md5, size, state,
  release, latest_id, latest_filename, latest_version, latest_md5, latest_size, latest_state,
  latest_release``; ``/history/{id}``: ``[{uuid, version, file_change, release_date, data_release}]``;
  ``/status``. Everything also answers under ``/v0/``.

Choices the public record leaves open are marked [UNVERIFIED] where they are made: the exact text of
400 and 404 messages, unknown ids in ``/files/versions`` (left out) and ``/history`` (``[]``), what
versions and history say of a redacted file (``state``/``latest_state`` ``"redacted"``, a
``"redacted"`` history row), and the tar's ``MANIFEST.txt``. As GDC's docs show, ``/files/versions``
reports the file state (``"validated"``), not ``"superseded"``: a superseded id is one whose
``latest_id`` differs from it (``/history`` says ``"superseded"``).

The catalogue is made from real IDC patients (``catalogue_from_idc``: the PatientIDs of IDC's Parquet
index, minus a deterministic ~5% GDC lacks) or made up in any size (``synthetic_catalogue``). A file's
bytes are generated from its id and size, never stored: a shared pseudo-random body (so MD5s cost a
few microseconds, from cached MD5 states) ending in a tail unique to the file. The archive changes
while it runs: a clock (``now``, ``advance``) stamps ``revise`` (a new version with a new UUID),
``add_file``, ``remove`` and ``new_release``. Faults are queued per endpoint (``fail``; ``corrupt`` for
one download); requests are counted per endpoint (``requests``) and bytes served by ``/data``
(``data_bytes``).

Standalone: ``python -m tests.helpers.gdc_emulator --port 8081 --collections tcga_luad,cptac_luad``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import json
import math
import random
import re
import socket
import tarfile
import threading
import time
import uuid
import zoneinfo
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.dom import minidom
from xml.sax.saxutils import escape

from tests.helpers.net import LoopbackServer, dispatching_handler

# -- releases --------------------------------------------------------------------------------------

#: GDC's data releases and their dates (its release notes), oldest first. Later ones are made up,
#: 120 days apart.
RELEASES: tuple[tuple[str, str], ...] = (
    ("12.0", "2018-06-13"), ("13.0", "2018-09-27"), ("14.0", "2018-12-18"), ("15.0", "2019-02-20"),
    ("16.0", "2019-03-26"), ("17.0", "2019-06-05"), ("18.0", "2019-07-08"), ("19.0", "2019-09-17"),
    ("20.0", "2019-11-11"), ("21.0", "2019-12-10"), ("22.0", "2020-01-16"), ("23.0", "2020-04-07"),
    ("24.0", "2020-05-07"), ("25.0", "2020-07-22"), ("26.0", "2020-09-08"), ("27.0", "2020-10-29"),
    ("28.0", "2021-02-02"), ("29.0", "2021-03-31"), ("30.0", "2021-09-23"), ("31.0", "2021-10-29"),
    ("32.0", "2022-03-29"), ("33.0", "2022-05-03"), ("33.1", "2022-05-31"), ("34.0", "2022-07-27"),
    ("35.0", "2022-09-28"), ("36.0", "2022-12-12"), ("37.0", "2023-03-29"), ("38.0", "2023-08-31"),
    ("39.0", "2023-12-04"), ("40.0", "2024-03-29"), ("41.0", "2024-08-28"), ("42.0", "2025-01-30"),
    ("43.0", "2025-05-07"), ("44.0", "2025-10-29"), ("45.0", "2025-12-04"),
)  # fmt: skip
#: The release a new catalogue is at (``/status``): "Data Release 42.0 - January 30, 2025".
CURRENT_RELEASE = "42.0"
#: The first release of GDC 2.0 (GENCODE v36); most of today's files were first released in it.
HARMONIZED_RELEASE = "32.0"
_KNOWN = dict(RELEASES)
_ORDER = [name for name, _ in RELEASES]


def _major(release: str) -> int:
    return int(release.split(".")[0])


def release_date(release: str) -> dt.date:
    """The day ``release`` came out."""
    if release in _KNOWN:
        return dt.date.fromisoformat(_KNOWN[release])
    last, day = RELEASES[-1]
    return dt.date.fromisoformat(day) + dt.timedelta(days=120 * (_major(release) - _major(last)))


def next_release(release: str) -> str:
    if release in _KNOWN and release != _ORDER[-1]:
        return _ORDER[_ORDER.index(release) + 1]
    return f"{_major(release) + 1}.0"


def previous_release(release: str) -> str:
    if release in _KNOWN:
        return _ORDER[max(0, _ORDER.index(release) - 1)]
    candidate = f"{_major(release) - 1}.0"
    return candidate if _major(candidate) > _major(_ORDER[-1]) else _ORDER[-1]


def releases_between(first: str, last: str) -> list[str]:
    """Every release from ``first`` to ``last``, both included."""
    out, release = [first], first
    while release != last and len(out) < 1000:
        release = next_release(release)
        out.append(release)
    return out


def _span(data_release: str) -> tuple[str, str]:
    """``"32.0 - 37.0"`` -> ``("32.0", "37.0")``."""
    first, _, last = data_release.partition(" - ")
    return first.strip(), (last or first).strip()


# -- time ------------------------------------------------------------------------------------------

try:
    #: GDC stamps its datetimes in Chicago time (``-06:00`` in winter, ``-05:00`` in summer).
    TZ: dt.tzinfo = zoneinfo.ZoneInfo("America/Chicago")
except zoneinfo.ZoneInfoNotFoundError:  # no time zone database: winter time all year
    TZ = dt.timezone(dt.timedelta(hours=-6))


def iso(moment: dt.datetime) -> str:
    """A datetime as GDC writes it: ``2022-02-07T08:48:39.178606-06:00``."""
    return moment.astimezone(TZ).isoformat(timespec="microseconds")


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 date or datetime; without an offset it is read as UTC (as Elasticsearch does)."""
    text = text.strip()
    moment = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- file contents ---------------------------------------------------------------------------------

_PERIOD = 1_048_573  # a prime: the shared body never repeats within a megabyte
_BLOCK = 4096
_CHUNK = 256 * 1024
_TAIL = 64
_md5_lock = threading.Lock()
_md5_states: list[Any] = []


@functools.cache
def _pattern() -> bytes:
    return random.Random(0x6DC).randbytes(_PERIOD)


def _body(start: int, end: int) -> Iterator[memoryview]:
    """Bytes ``start:end`` of the endless shared body, in pieces."""
    view = memoryview(_pattern())
    while start < end:
        at = start % _PERIOD
        take = min(end - start, _PERIOD - at, _CHUNK)
        yield view[at : at + take]
        start += take


def _prefix(size: int) -> int:
    """How many leading bytes of a file of ``size`` bytes are the shared body."""
    return 0 if size <= _TAIL else ((size - _TAIL) // _BLOCK) * _BLOCK


def _tail(file_id: str, size: int) -> bytes:
    return hashlib.shake_128(f"gdc-content/{file_id}/{size}".encode()).digest(size - _prefix(size))


def _md5_state(blocks: int) -> Any:
    """The MD5 state after ``blocks`` blocks of the shared body (cached, extended on demand)."""
    with _md5_lock:
        if not _md5_states:
            _md5_states.append(hashlib.md5(usedforsecurity=False))
        while len(_md5_states) <= blocks:
            k = len(_md5_states) - 1
            state = _md5_states[k].copy()
            for piece in _body(k * _BLOCK, (k + 1) * _BLOCK):
                state.update(piece)
            _md5_states.append(state)
        return _md5_states[blocks].copy()


def content_md5(file_id: str, size: int) -> str:
    """The MD5 of the bytes of file ``file_id`` when it is ``size`` bytes long."""
    state = _md5_state(_prefix(size) // _BLOCK)
    state.update(_tail(file_id, size))
    return str(state.hexdigest())


def content_chunks(file_id: str, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes ``start:end`` of file ``file_id`` (``size`` bytes long), in pieces of at most 256 KB."""
    end = size if end is None else min(end, size)
    prefix = _prefix(size)
    if start < prefix:
        for piece in _body(start, min(end, prefix)):
            yield bytes(piece)
    if end > prefix:
        yield _tail(file_id, size)[max(start, prefix) - prefix : end - prefix]


def content(file: GdcFile) -> bytes:
    """All the bytes of ``file`` (what ``/data`` serves)."""
    return b"".join(content_chunks(file.file_id, file.file_size))


class _ContentReader(io.RawIOBase):
    """A file's bytes as a readable stream (for tar members)."""

    def __init__(self, file_id: str, size: int) -> None:
        self._chunks = content_chunks(file_id, size)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            piece = next(self._chunks, None)
            if piece is None:
                break
            self._pending += piece
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


# -- the catalogue ---------------------------------------------------------------------------------

_NAMESPACE = uuid.UUID("6f1c4a52-3c2e-4d7e-9a51-0c6c0d5e9b1a")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


#: GDC's ``type`` of a file per data type.
FILE_TYPES = {
    "Gene Expression Quantification": "gene_expression",
    "Aligned Reads": "aligned_reads",
    "Masked Somatic Mutation": "masked_somatic_mutation",
    "miRNA Expression Quantification": "mirna_expression",
    "Methylation Beta Value": "methylation_beta_value",
    "Clinical Supplement": "clinical_supplement",
    "Biospecimen Supplement": "biospecimen_supplement",
    "Slide Image": "slide_image",
}


@dataclass
class GdcProject:
    project_id: str
    program: str
    name: str
    primary_site: tuple[str, ...] = ()
    disease_type: tuple[str, ...] = ()
    dbgap_accession_number: str | None = None


@dataclass
class GdcCase:
    submitter_id: str
    case_id: str
    project_id: str
    primary_site: str = ""
    disease_type: str = ""
    #: TCGA's cases have none (GDC shows ``null``).
    created_datetime: str | None = None
    updated_datetime: str = "2019-08-06T14:15:54.128069-05:00"


@dataclass
class GdcFile:
    """A file (one version of it). ``md5sum`` left empty is the MD5 of its generated bytes."""

    file_id: str
    file_name: str
    case_ids: tuple[str, ...]  # the cases' submitter ids
    project_id: str
    data_category: str
    data_type: str
    experimental_strategy: str | None
    data_format: str
    access: str = "open"
    acl: tuple[str, ...] = ("open",)
    file_size: int = 0
    md5sum: str = ""
    #: ``released`` (the latest version), ``superseded`` (an older one) or ``redacted`` (removed).
    state: str = "released"
    created_datetime: str = "2022-02-07T08:48:39.178606-06:00"
    updated_datetime: str = "2022-02-09T12:11:12.781445-06:00"
    version: str = "1"
    #: The releases it is (was) in: ``"32.0 - 42.0"``.
    data_release: str = f"{HARMONIZED_RELEASE} - {CURRENT_RELEASE}"
    workflow_type: str | None = None
    submitter_id: str = ""
    type: str = ""
    platform: str | None = None

    def __post_init__(self) -> None:
        if not self.md5sum:
            self.md5sum = content_md5(self.file_id, self.file_size)
        if not self.type:
            self.type = FILE_TYPES.get(self.data_type, self.data_type.lower().replace(" ", "_"))
        if not self.submitter_id:
            self.submitter_id = _uuid5("file-submitter", self.file_id)


@dataclass
class GdcCatalogue:
    """What the archive holds: projects, cases (by submitter id), every version of every file."""

    projects: dict[str, GdcProject] = field(default_factory=dict)
    cases: dict[str, GdcCase] = field(default_factory=dict)
    #: Every version of every file (superseded and redacted ones too), by file id.
    files: dict[str, GdcFile] = field(default_factory=dict)
    #: The ids of a file's versions, oldest first (one list shared by the versions of a file).
    chains: dict[str, list[str]] = field(default_factory=dict)
    #: The release each redacted file was removed in.
    redacted: dict[str, str] = field(default_factory=dict)
    release: str = CURRENT_RELEASE
    #: IDC patients GDC does not have (``catalogue_from_idc``).
    absent: tuple[str, ...] = ()
    #: The GDC project of each IDC collection the catalogue was made from.
    collections: dict[str, str] = field(default_factory=dict)

    def add(self, file: GdcFile, *, replaces: str | None = None) -> GdcFile:
        """Adds ``file``, as the next version of ``replaces`` if given."""
        self.files[file.file_id] = file
        chain = self.chains[replaces] if replaces else []
        chain.append(file.file_id)
        self.chains[file.file_id] = chain
        return file

    def latest(self) -> list[GdcFile]:
        """The files ``/files`` serves: the latest version of each, not redacted."""
        return [f for f in self.files.values() if f.state == "released"]

    def versions(self, file_id: str) -> list[GdcFile]:
        """Every version of the file ``file_id`` belongs to, oldest first."""
        return [self.files[i] for i in self.chains.get(file_id, [])]

    def case(self, key: str) -> GdcCase:
        """A case by submitter id or UUID; ``KeyError`` if none."""
        if key in self.cases:
            return self.cases[key]
        for case in self.cases.values():
            if case.case_id == key:
                return case
        raise KeyError(f"no case {key} in the GDC catalogue")

    def files_of(self, case: str) -> list[GdcFile]:
        """The latest files of a case (submitter id or UUID)."""
        submitter = self.case(case).submitter_id
        return [f for f in self.latest() if submitter in f.case_ids]


# -- the files a case has --------------------------------------------------------------------------


@dataclass(frozen=True)
class FileKind:
    """A kind of file GDC holds, with its metadata, a name template and a (scaled-down) size range."""

    data_category: str
    data_type: str
    data_format: str
    experimental_strategy: str | None
    access: str
    workflow_type: str | None
    name: str  # {uuid}, {UUID}, {case}, {n}
    size: tuple[int, int]
    platform: str | None = None


KINDS: dict[str, FileKind] = {
    "rna_counts": FileKind(
        "Transcriptome Profiling", "Gene Expression Quantification", "TSV", "RNA-Seq", "open",
        "STAR - Counts", "{uuid}.rna_seq.augmented_star_gene_counts.tsv", (20_000, 40_000), "Illumina",
    ),
    "rna_bam": FileKind(
        "Sequencing Reads", "Aligned Reads", "BAM", "RNA-Seq", "controlled", "STAR 2-Pass Genome",
        "{uuid}.rna_seq.genomic.gdc_realn.bam", (160_000, 200_000), "Illumina",
    ),
    "maf": FileKind(
        "Simple Nucleotide Variation", "Masked Somatic Mutation", "MAF", "WXS", "open",
        "Aliquot Ensemble Somatic Variant Merging and Masking", "{uuid}.wxs.aliquot_ensemble_masked.maf.gz",
        (5_000, 15_000), "Illumina",
    ),
    "wxs_bam": FileKind(
        "Sequencing Reads", "Aligned Reads", "BAM", "WXS", "controlled", "BWA with Mark Duplicates and BQSR",
        "{uuid}_wxs_gdc_realn.bam", (160_000, 200_000), "Illumina",
    ),
    "mirna": FileKind(
        "Transcriptome Profiling", "miRNA Expression Quantification", "TXT", "miRNA-Seq", "open",
        "BCGSC miRNA Profiling", "{uuid}.mirbase21.mirnas.quantification.txt", (8_000, 12_000), "Illumina",
    ),
    "methylation": FileKind(
        "DNA Methylation", "Methylation Beta Value", "TXT", "Methylation Array", "open",
        "SeSAMe Methylation Beta Estimation", "{uuid}.methylation_array.sesame.level3betas.txt",
        (30_000, 50_000), "Illumina Human Methylation 450",
    ),
    "clinical": FileKind(
        "Clinical", "Clinical Supplement", "BCR XML", None, "open", None,
        "nationwidechildrens.org_clinical.{case}.xml", (3_000, 12_000),
    ),
    "biospecimen": FileKind(
        "Biospecimen", "Biospecimen Supplement", "BCR XML", None, "open", None,
        "nationwidechildrens.org_biospecimen.{case}.xml", (4_000, 15_000),
    ),
    "diagnostic_slide": FileKind(
        "Biospecimen", "Slide Image", "SVS", "Diagnostic Slide", "open", None,
        "{case}-01Z-00-DX{n}.{UUID}.svs", (60_000, 150_000),
    ),
    "tissue_slide": FileKind(
        "Biospecimen", "Slide Image", "SVS", "Tissue Slide", "open", None,
        "{case}-01A-01-TS{n}.{UUID}.svs", (60_000, 150_000),
    ),
}  # fmt: skip

#: TCGA projects: code -> (name, primary site, main disease type).
TCGA_PROJECTS: dict[str, tuple[str, str, str]] = {
    "ACC": ("Adrenocortical Carcinoma", "Adrenal gland", "Adenomas and Adenocarcinomas"),
    "BLCA": ("Bladder Urothelial Carcinoma", "Bladder", "Transitional Cell Papillomas and Carcinomas"),
    "BRCA": ("Breast Invasive Carcinoma", "Breast", "Ductal and Lobular Neoplasms"),
    "CESC": (
        "Cervical Squamous Cell Carcinoma and Endocervical Adenocarcinoma", "Cervix uteri",
        "Squamous Cell Neoplasms",
    ),
    "CHOL": ("Cholangiocarcinoma", "Liver and intrahepatic bile ducts", "Adenomas and Adenocarcinomas"),
    "COAD": ("Colon Adenocarcinoma", "Colon", "Adenomas and Adenocarcinomas"),
    "DLBC": ("Lymphoid Neoplasm Diffuse Large B-cell Lymphoma", "Lymph nodes", "Mature B-Cell Lymphomas"),
    "ESCA": ("Esophageal Carcinoma", "Esophagus", "Squamous Cell Neoplasms"),
    "GBM": ("Glioblastoma Multiforme", "Brain", "Gliomas"),
    "HNSC": ("Head and Neck Squamous Cell Carcinoma", "Larynx", "Squamous Cell Neoplasms"),
    "KICH": ("Kidney Chromophobe", "Kidney", "Adenomas and Adenocarcinomas"),
    "KIRC": ("Kidney Renal Clear Cell Carcinoma", "Kidney", "Adenomas and Adenocarcinomas"),
    "KIRP": ("Kidney Renal Papillary Cell Carcinoma", "Kidney", "Adenomas and Adenocarcinomas"),
    "LAML": ("Acute Myeloid Leukemia", "Hematopoietic and reticuloendothelial systems", "Myeloid Leukemias"),
    "LGG": ("Brain Lower Grade Glioma", "Brain", "Gliomas"),
    "LIHC": (
        "Liver Hepatocellular Carcinoma", "Liver and intrahepatic bile ducts", "Adenomas and Adenocarcinomas",
    ),
    "LUAD": ("Lung Adenocarcinoma", "Bronchus and lung", "Adenomas and Adenocarcinomas"),
    "LUSC": ("Lung Squamous Cell Carcinoma", "Bronchus and lung", "Squamous Cell Neoplasms"),
    "MESO": ("Mesothelioma", "Heart, mediastinum, and pleura", "Mesothelial Neoplasms"),
    "OV": ("Ovarian Serous Cystadenocarcinoma", "Ovary", "Cystic, Mucinous and Serous Neoplasms"),
    "PAAD": ("Pancreatic Adenocarcinoma", "Pancreas", "Adenomas and Adenocarcinomas"),
    "PCPG": ("Pheochromocytoma and Paraganglioma", "Adrenal gland", "Paragangliomas and Glomus Tumors"),
    "PRAD": ("Prostate Adenocarcinoma", "Prostate gland", "Adenomas and Adenocarcinomas"),
    "READ": ("Rectum Adenocarcinoma", "Rectum", "Adenomas and Adenocarcinomas"),
    "SARC": (
        "Sarcoma", "Connective, subcutaneous and other soft tissues", "Soft Tissue Tumors and Sarcomas, NOS",
    ),
    "SKCM": ("Skin Cutaneous Melanoma", "Skin", "Nevi and Melanomas"),
    "STAD": ("Stomach Adenocarcinoma", "Stomach", "Adenomas and Adenocarcinomas"),
    "TGCT": ("Testicular Germ Cell Tumors", "Testis", "Germ Cell Neoplasms"),
    "THCA": ("Thyroid Carcinoma", "Thyroid gland", "Adenomas and Adenocarcinomas"),
    "THYM": ("Thymoma", "Thymus", "Thymic Epithelial Neoplasms"),
    "UCEC": ("Uterine Corpus Endometrial Carcinoma", "Corpus uteri", "Adenomas and Adenocarcinomas"),
    "UCS": ("Uterine Carcinosarcoma", "Uterus, NOS", "Complex Mixed and Stromal Neoplasms"),
    "UVM": ("Uveal Melanoma", "Eye and adnexa", "Nevi and Melanomas"),
}  # fmt: skip
#: CPTAC collections of IDC (all in GDC's CPTAC-3 here): cancer -> (primary site, disease type).
CPTAC_SITES: dict[str, tuple[str, str]] = {
    "aml": ("Hematopoietic and reticuloendothelial systems", "Myeloid Leukemias"),
    "brca": ("Breast", "Ductal and Lobular Neoplasms"),
    "ccrcc": ("Kidney", "Adenomas and Adenocarcinomas"),
    "cm": ("Skin", "Nevi and Melanomas"),
    "coad": ("Colon", "Adenomas and Adenocarcinomas"),
    "gbm": ("Brain", "Gliomas"),
    "hnscc": ("Larynx", "Squamous Cell Neoplasms"),
    "lscc": ("Bronchus and lung", "Squamous Cell Neoplasms"),
    "luad": ("Bronchus and lung", "Adenomas and Adenocarcinomas"),
    "ov": ("Ovary", "Cystic, Mucinous and Serous Neoplasms"),
    "pda": ("Pancreas", "Ductal and Lobular Neoplasms"),
    "sar": ("Connective, subcutaneous and other soft tissues", "Soft Tissue Tumors and Sarcomas, NOS"),
    "stad": ("Stomach", "Adenomas and Adenocarcinomas"),
    "ucec": ("Corpus uteri", "Adenomas and Adenocarcinomas"),
}
DBGAP = {"TCGA": "phs000178", "CPTAC": "phs001287"}


def project_of_collection(collection: str) -> tuple[str, str, str, str]:
    """The GDC project of an IDC collection: (project id, program, primary site, disease type)."""
    program, _, code = collection.lower().partition("_")
    if program == "tcga" and code.upper() in TCGA_PROJECTS:
        _, site, disease = TCGA_PROJECTS[code.upper()]
        return f"TCGA-{code.upper()}", "TCGA", site, disease
    if program == "cptac":
        site, disease = CPTAC_SITES.get(code, ("Unknown", "Not Reported"))
        return "CPTAC-3", "CPTAC", site, disease
    raise ValueError(f"IDC collection {collection} has no GDC project (only tcga_* and cptac_* have)")


def _project(project_id: str, sites: Iterable[str] = (), diseases: Iterable[str] = ()) -> GdcProject:
    program, _, code = project_id.partition("-")
    if program == "TCGA" and code in TCGA_PROJECTS:
        name, site, disease = TCGA_PROJECTS[code]
        return GdcProject(project_id, "TCGA", name, (site,), (disease,), DBGAP["TCGA"])
    if project_id == "CPTAC-3":
        name = "CPTAC-Brain, Head and Neck, Kidney, Lung, Pancreas, Uterus"
        return GdcProject(project_id, "CPTAC", name, tuple(sites), tuple(diseases), DBGAP["CPTAC"])
    return GdcProject(project_id, program, project_id, tuple(sites), tuple(diseases), None)


def _acl(project: GdcProject, access: str) -> tuple[str, ...]:
    return ("open",) if access == "open" else (project.dbgap_accession_number or "phs000000",)


def make_file(
    kind: FileKind,
    case: GdcCase,
    project: GdcProject,
    rng: random.Random,
    *,
    release: str,
    created: dt.datetime,
    updated: dt.datetime,
    size_scale: float = 1.0,
    n: int = 1,
    file_id: str | None = None,
    size: int | None = None,
) -> GdcFile:
    """A file of ``kind`` for ``case``, first released in ``release``, drawn from ``rng``."""
    file_id = file_id or _uuid(rng)
    named = _uuid(rng)
    name = kind.name.format(uuid=named, UUID=named.upper(), case=case.submitter_id, n=n)
    if size is None:
        size = max(1, int(rng.randint(*kind.size) * size_scale))
    return GdcFile(
        file_id=file_id,
        file_name=name,
        case_ids=(case.submitter_id,),
        project_id=project.project_id,
        data_category=kind.data_category,
        data_type=kind.data_type,
        experimental_strategy=kind.experimental_strategy,
        data_format=kind.data_format,
        access=kind.access,
        acl=_acl(project, kind.access),
        file_size=size,
        created_datetime=iso(created),
        updated_datetime=iso(updated),
        data_release=f"{release} - {CURRENT_RELEASE}",
        workflow_type=kind.workflow_type,
        platform=kind.platform,
    )


def _kinds_of(program: str, rng: random.Random) -> list[tuple[str, int]]:
    """The kinds of files (and their slide numbers) a case has, drawn from ``rng``."""
    out: list[tuple[str, int]] = []
    tcga = program == "TCGA"
    if tcga:
        out += [("clinical", 1), ("biospecimen", 1)]
    if rng.random() < 0.85:  # RNA-Seq: the counts, sometimes of a normal sample too, and the BAM
        out += [("rna_counts", 1), ("rna_bam", 1)]
        if rng.random() < 0.1:
            out.append(("rna_counts", 2))
    if rng.random() < 0.9:  # WXS: the masked MAF, tumour and normal BAMs
        out += [("maf", 1), ("wxs_bam", 1), ("wxs_bam", 2)]
    if tcga and rng.random() < 0.8:
        out.append(("mirna", 1))
    if rng.random() < (0.75 if tcga else 0.6):
        out.append(("methylation", 1))
    if tcga:
        if rng.random() < 0.92:
            out += [("diagnostic_slide", n) for n in range(1, 3 if rng.random() < 0.1 else 2)]
        if rng.random() < 0.7:
            out += [("tissue_slide", n) for n in range(1, 3 if rng.random() < 0.3 else 2)]
    return out


def _first_release(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return HARMONIZED_RELEASE
    later = _ORDER[_ORDER.index(HARMONIZED_RELEASE) + 1 : _ORDER.index(CURRENT_RELEASE) + 1]
    return rng.choice(later)


def _stamps(rng: random.Random, release: str) -> tuple[dt.datetime, dt.datetime]:
    """Created and updated datetimes of a file first released in ``release``."""
    out = dt.datetime.combine(release_date(release), dt.time(9), TZ)
    created = out - dt.timedelta(days=rng.uniform(20, 60), microseconds=rng.randrange(10**6))
    return created, created + dt.timedelta(days=rng.uniform(0, 15), microseconds=rng.randrange(10**6))


def _add_case_files(
    catalogue: GdcCatalogue, case: GdcCase, project: GdcProject, rng: random.Random, size_scale: float
) -> None:
    for key, n in _kinds_of(project.program, rng):
        kind = KINDS[key]
        release = _first_release(rng)
        created, updated = _stamps(rng, release)
        file = make_file(
            kind, case, project, rng, release=release, created=created, updated=updated,
            size_scale=size_scale, n=n,
        )  # fmt: skip
        if release == HARMONIZED_RELEASE and kind.data_format != "SVS" and rng.random() < 0.03:
            # Re-harmonized for GDC 2.0: version 1 (legacy pipeline) was superseded in 32.0.
            old_created, old_updated = _stamps(rng, "12.0")
            old = make_file(
                kind, case, project, rng, release="12.0", created=old_created, updated=old_updated,
                size_scale=size_scale * rng.uniform(0.9, 1.1), n=n,
            )  # fmt: skip
            old.state, old.data_release = "superseded", "12.0 - 31.0"
            catalogue.add(old)
            file.version = "2"
            catalogue.add(file, replaces=old.file_id)
        else:
            catalogue.add(file)


def _idc_patients(collections: Sequence[str]) -> dict[str, list[str]]:
    import idc_index_data
    import pyarrow.parquet as pq

    table = pq.read_table(
        idc_index_data.IDC_INDEX_PARQUET_FILEPATH,
        columns=["collection_id", "PatientID"],
        filters=[("collection_id", "in", list(collections))],
    )
    out: dict[str, set[str]] = {c: set() for c in collections}
    for collection, patient in zip(
        table.column("collection_id").to_pylist(), table.column("PatientID").to_pylist(), strict=True
    ):
        if patient:
            out[collection].add(patient)
    return {c: sorted(p) for c, p in out.items()}


def catalogue_from_idc(
    collections: Iterable[str] = ("tcga_luad",),
    *,
    seed: int = 0,
    max_cases: int | None = None,
    size_scale: float = 1.0,
    absent_fraction: float = 0.05,
) -> GdcCatalogue:
    """GDC's view of the patients of IDC collections (IDC's Parquet index): ``tcga_xxx`` is project
    ``TCGA-XXX``, ``cptac_*`` is ``CPTAC-3``, as in GDC. Each patient is a case (its submitter id is the
    PatientID) but for a deterministic ``absent_fraction`` GDC lacks (``catalogue.absent``); its files
    are drawn from ``seed`` and the patient (the same whatever else is asked): RNA-Seq for ~85%, WXS for
    ~90%, miRNA-Seq, methylation, TCGA's BCR XML and slides, a few re-harmonized (version 2). Sizes
    are a few KB to 200 KB (times ``size_scale``): BAM > SVS > TSV > XML. ``max_cases``: the first
    patients of each collection only."""
    collections = list(collections)
    catalogue = GdcCatalogue()
    absent: list[str] = []
    sites: dict[str, list[tuple[str, str]]] = {}
    for collection in collections:
        project_id, _, site, disease = project_of_collection(collection)
        catalogue.collections[collection] = project_id
        sites.setdefault(project_id, []).append((site, disease))
    for project_id, pairs in sites.items():
        catalogue.projects[project_id] = _project(
            project_id, dict.fromkeys(s for s, _ in pairs), dict.fromkeys(d for _, d in pairs)
        )
    for collection, patients in _idc_patients(collections).items():
        project_id, _, site, disease = project_of_collection(collection)
        project = catalogue.projects[project_id]
        for patient in patients[:max_cases]:
            rng = random.Random(f"gdc/{seed}/{patient}")
            if rng.random() < absent_fraction:
                absent.append(patient)
                continue
            case_id = _uuid(rng)
            created = (
                None
                if project.program == "TCGA"
                else iso(dt.datetime(2019, 1, 1, 9, tzinfo=TZ) + dt.timedelta(days=rng.uniform(0, 900)))
            )
            updated = iso(dt.datetime(2022, 1, 10, 9, tzinfo=TZ) + dt.timedelta(days=rng.uniform(0, 60)))
            case = GdcCase(patient, case_id, project_id, site, disease, created, updated)
            catalogue.cases[patient] = case
            _add_case_files(catalogue, case, project, rng, size_scale)
    catalogue.absent = tuple(absent)
    return catalogue


def synthetic_catalogue(
    files: int = 10_000,
    *,
    file_size: int = 1_000_000,
    cases: int = 500,
    project: str = "TCGA-LUAD",
    seed: int = 0,
) -> GdcCatalogue:
    """``files`` made-up files of ``file_size`` bytes each, spread over ``cases`` cases of ``project``
    (kinds in turn: counts, MAF, controlled BAM, methylation, clinical XML, slide, miRNA); built in a
    fraction of a second, for benchmarks."""
    program = project.partition("-")[0]
    info = _project(project)
    catalogue = GdcCatalogue(projects={project: info})
    rng = random.Random(f"gdc-synthetic/{seed}")
    prefix = "TCGA-SY" if program == "TCGA" else project
    site = info.primary_site[0] if info.primary_site else "Unknown"
    disease = info.disease_type[0] if info.disease_type else "Not Reported"
    made = [GdcCase(f"{prefix}-{i:04d}", _uuid(rng), project, site, disease) for i in range(max(1, cases))]
    catalogue.cases = {c.submitter_id: c for c in made}
    order = ["rna_counts", "maf", "wxs_bam", "methylation", "clinical", "diagnostic_slide", "mirna"]
    created, updated = _stamps(rng, HARMONIZED_RELEASE)
    for i in range(files):
        kind = KINDS[order[i % len(order)]]
        case = made[i % len(made)]
        file = make_file(
            kind, case, info, rng, release=HARMONIZED_RELEASE, created=created, updated=updated,
            n=1 + i // (len(order) * len(made)), size=file_size,
        )  # fmt: skip
        catalogue.add(file)
    return catalogue


# -- fields, the way each endpoint's _mapping lists them ---------------------------------------------

_K, _L, _D, _B = "keyword", "long", "date", "boolean"
_FILE_FIELDS = {
    "file_id": _K, "file_name": _K, "submitter_id": _K, "data_category": _K, "data_type": _K,
    "data_format": _K, "experimental_strategy": _K, "access": _K, "acl": _K, "type": _K, "file_size": _L,
    "md5sum": _K, "state": _K, "created_datetime": _D, "updated_datetime": _D, "version": _K,
    "data_release": _K, "platform": _K, "analysis.analysis_id": _K, "analysis.workflow_type": _K,
}  # fmt: skip
_PROJECT_FIELDS = {
    "project_id": _K, "name": _K, "primary_site": _K, "disease_type": _K, "dbgap_accession_number": _K,
    "released": _B, "releasable": _B, "state": _K, "program.name": _K, "program.program_id": _K,
    "program.dbgap_accession_number": _K,
}  # fmt: skip
_CASE_FIELDS = {
    "case_id": _K, "submitter_id": _K, "primary_site": _K, "disease_type": _K, "state": _K,
    "created_datetime": _D, "updated_datetime": _D, "index_date": _K, "sample_ids": _K,
    "submitter_sample_ids": _K, "slide_ids": _K, "submitter_slide_ids": _K,
}  # fmt: skip
_SUMMARY = {
    "summary.file_count": _L, "summary.file_size": _L, "summary.data_categories.data_category": _K,
    "summary.data_categories.file_count": _L, "summary.experimental_strategies.experimental_strategy": _K,
    "summary.experimental_strategies.file_count": _L,
}  # fmt: skip
_CASE_IN_FILE = ("case_id", "submitter_id", "primary_site", "disease_type", "state")
SCHEMA: dict[str, dict[str, str]] = {
    "files": {
        **_FILE_FIELDS,
        **{f"cases.{k}": _K for k in _CASE_IN_FILE},
        **{f"cases.project.{k}": v for k, v in _PROJECT_FIELDS.items()},
    },
    "cases": {
        **_CASE_FIELDS,
        **{f"project.{k}": v for k, v in _PROJECT_FIELDS.items()},
        **{f"files.{k}": v for k, v in _FILE_FIELDS.items()},
        **_SUMMARY,
    },
    "projects": {
        **_PROJECT_FIELDS,
        **_SUMMARY,
        "summary.case_count": _L,
        "summary.data_categories.case_count": _L,
        "summary.experimental_strategies.case_count": _L,
    },
}
#: Fields that hold lists of objects.
NESTED = {
    "files": ("cases",),
    "cases": ("files", "summary.data_categories", "summary.experimental_strategies"),
    "projects": ("summary.data_categories", "summary.experimental_strategies"),
}
#: What a hit holds when no ``fields`` are asked (in GDC's order).
DEFAULTS = {
    "files": (
        "data_format", "access", "file_name", "submitter_id", "data_category", "acl", "type", "file_size",
        "created_datetime", "updated_datetime", "md5sum", "file_id", "data_type", "state",
        "experimental_strategy", "platform", "version", "data_release",
    ),
    "cases": (
        "slide_ids", "submitter_slide_ids", "disease_type", "submitter_id", "created_datetime", "sample_ids",
        "submitter_sample_ids", "primary_site", "updated_datetime", "case_id", "index_date", "state",
    ),
    "projects": (
        "primary_site", "dbgap_accession_number", "project_id", "disease_type", "name", "releasable",
        "state", "released",
    ),
}  # fmt: skip
#: Field groups ``expand`` takes: every parent of a field.
EXPAND = {
    entity: tuple(sorted({".".join(f.split(".")[:i]) for f in fields for i in range(1, f.count(".") + 1)}))
    for entity, fields in SCHEMA.items()
}
_ID_FIELD = {"files": "file_id", "cases": "case_id", "projects": "project_id"}

#: GDC's messages (its auth code and the Data Transfer Tool's troubleshooting page).
NO_TOKEN = "You don't have access to the data: Please specify a X-Auth-Token"
BAD_TOKEN = "Your token is invalid or expired. Please get a new token from GDC Data Portal."
NO_ACCESS = "You don't have access to the data: You don't have access to the data"
NOT_FOUND_URL = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
POST_TYPES = "Content-Type header for POST must be 'application/json' or 'application/x-www-form-urlencoded'"


class HttpError(Exception):
    """An answer other than 200, with GDC's ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _values(doc: dict[str, Any], parts: Sequence[str]) -> list[Any]:
    """The values at a dotted path, lists flattened at every level, nulls left out."""
    current: list[Any] = [doc]
    for part in parts:
        found: list[Any] = []
        for node in current:
            value = node.get(part) if isinstance(node, dict) else None
            if value is None:
                continue
            if isinstance(value, list):
                found.extend(value)
            else:
                found.append(value)
        current = found
    return current


def _tree(paths: Iterable[str]) -> dict[str, Any]:
    """Dotted field names as a tree (leaves are None)."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node.setdefault(leaf, None)
    return tree


def _project_doc(doc: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key not in doc:
            continue
        value = doc[key]
        if sub is None:
            out[key] = value
        elif isinstance(value, list):
            out[key] = [_project_doc(v, sub) for v in value if isinstance(v, dict)]
        elif isinstance(value, dict):
            out[key] = _project_doc(value, sub)
    return out


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}", out)
    elif value is None:
        out[prefix] = ""
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    else:
        out[prefix] = str(value)


def table(rows: Sequence[dict[str, Any]], delimiter: str = "\t") -> bytes:
    """Rows as GDC's TSV (or CSV): nested values flattened (``cases.0.submitter_id``), columns sorted."""
    flat = []
    for row in rows:
        cells: dict[str, str] = {}
        _flatten(row, "", cells)
        flat.append(cells)
    columns = sorted({c for cells in flat for c in cells})
    if not columns:
        return b""
    out = io.StringIO()
    writer = csv.writer(out, dialect="excel-tab" if delimiter == "\t" else "excel")
    writer.writerow(columns)
    for cells in flat:
        writer.writerow([cells.get(c, "") for c in columns])
    return out.getvalue().encode()


def _xml(data: Any, pretty: bool) -> bytes:
    def element(tag: str, value: Any) -> str:
        if isinstance(value, dict):
            inner = "".join(element(k, v) for k, v in value.items())
        elif isinstance(value, list):
            inner = "".join(element("item", v) for v in value)
        elif value is None:
            inner = ""
        elif isinstance(value, bool):
            inner = "true" if value else "false"
        else:
            inner = escape(str(value))
        return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"

    text = '<?xml version="1.0" ?>' + element("response", data)
    if pretty:
        text = minidom.parseString(text).toprettyxml(indent="\t")
    return text.encode()


def manifest_tsv(files: Iterable[GdcFile]) -> bytes:
    """The Data Transfer Tool's manifest of ``files``."""
    lines = ["id\tfilename\tmd5\tsize\tstate"]
    lines += [f"{f.file_id}\t{f.file_name}\t{f.md5sum}\t{f.file_size}\t{f.state}" for f in files]
    return ("\n".join(lines) + "\n").encode()


def _pagination(count: int, total: int, size: int, start: int, sort: bool) -> dict[str, Any]:
    if total == 0:
        page, pages = 0, 0
    elif size == 0:
        page, pages = 1, total
    else:
        page, pages = start // size + 1, math.ceil(total / size)
    return {
        "count": count,
        "total": total,
        "size": size,
        "from": start,
        "sort": "None" if sort else "",
        "page": page,
        "pages": pages,
    }


def _listed(value: Any) -> list[str]:
    """``a,b`` or ``["a", "b,c"]`` as a list of trimmed, non-empty names."""
    items = value if isinstance(value, list) else [value]
    return [p.strip() for item in items if item is not None for p in str(item).split(",") if p.strip()]


def _unrecognized(names: Sequence[str]) -> str:
    return f"unrecognized values: [{', '.join(names)}]"


@dataclass
class _Fault:
    status: int
    body: bytes | None
    content_type: str
    retry_after: float | None
    delay: float


@dataclass
class _Index:
    generation: int
    docs: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]


class _Chunked(io.RawIOBase):
    """Writes what it is given as HTTP/1.1 chunks."""

    def __init__(self, out: Any, counted: Callable[[int], None]) -> None:
        self._out = out
        self._counted = counted

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if data:
            self._counted(len(data))  # before it leaves: a client may look as soon as it has it all
            self._out.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        return len(data)

    def finish(self) -> None:
        self._out.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # many parallel downloads connect at once


class GdcEmulator(LoopbackServer):
    """GDC's API on 127.0.0.1 (see the module's docstring); ``url`` ends in ``/``."""

    def __init__(
        self,
        catalogue: GdcCatalogue,
        *,
        token: str | None = "gdc-token",
        token_acl: Iterable[str] = ("phs000178",),
        port: int = 0,
    ) -> None:
        self.catalogue = catalogue
        #: The one valid ``X-Auth-Token`` (None: every token is invalid) and the acl it grants.
        self.token = token
        self.token_acl = tuple(token_acl)
        #: Requests per endpoint (``files``, ``cases``, ``projects``, ``data``, ``manifest``,
        #: ``files/versions``, ``history``, ``status``), counted before faults.
        self.requests: Counter[str] = Counter()
        #: The latest requests as (method, endpoint, parameters), oldest first.
        self.queries: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=1000)
        #: Body bytes served by ``/data``.
        self.data_bytes = 0
        #: Seconds each answer waits (a slow archive).
        self.delay = 0.0
        self._lock = threading.RLock()
        self._faults: dict[str, deque[_Fault]] = {}
        self._corrupt: dict[str, str] = {}
        self._generation = 0
        self._indexes: dict[str, _Index] = {}
        newest = max(
            (parse_instant(f.updated_datetime) for f in catalogue.files.values()),
            default=dt.datetime(2025, 1, 1, tzinfo=TZ),
        )
        start = dt.datetime.combine(release_date(catalogue.release) + dt.timedelta(days=4), dt.time(10), TZ)
        self._clock = max(start, (newest + dt.timedelta(days=1)).astimezone(TZ))
        Handler = dispatching_handler(self._handle, ("GET", "POST", "HEAD", "PUT", "DELETE"))
        self._serve(_Server(("127.0.0.1", port), Handler))

    # -- life ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # -- the archive changes -----------------------------------------------------------------------
    def now(self) -> str:
        """The archive's clock, as GDC writes datetimes."""
        return iso(self._clock)

    def advance(self, seconds: float) -> None:
        """Moves the clock on."""
        with self._lock:
            self._clock += dt.timedelta(seconds=seconds)

    def _current(self, file_id: str) -> GdcFile:
        file = self.catalogue.files.get(file_id)
        if file is None or file.state != "released":
            raise KeyError(f"{file_id} is not a current file of the GDC catalogue")
        return file

    def _changed(self) -> None:
        self._generation += 1

    def revise(self, file_id: str, *, same_name: bool = True) -> str:
        """A new version of ``file_id``, stamped now: a new UUID, new bytes, MD5 and size (the name too
        unless ``same_name``). The old one is superseded: gone from ``/files``, still in
        ``/files/versions``, ``/history`` and ``/data``. Returns the new id."""
        with self._lock:
            old = self._current(file_id)
            rng = random.Random(f"gdc-revise/{file_id}")
            now, release = self.now(), self.catalogue.release
            name = old.file_name if same_name else _renamed(old.file_name, rng)
            step = max(1, old.file_size // 20)
            size = (
                old.file_size + step if old.file_size <= step or rng.random() < 0.5 else old.file_size - step
            )
            new = replace(
                old,
                file_id=_uuid(rng),
                file_name=name,
                file_size=size,
                md5sum="",
                submitter_id="",
                version=str(int(old.version) + 1 if old.version.isdigit() else 2),
                created_datetime=now,
                updated_datetime=now,
                data_release=f"{release} - {release}",
                state="released",
            )
            first, _ = _span(old.data_release)
            old.state = "superseded"
            old.data_release = f"{first} - {self._before(first, release)}"
            self.catalogue.add(new, replaces=old.file_id)
            self._changed()
            return new.file_id

    @staticmethod
    def _before(first: str, release: str) -> str:
        """The last release a file first released in ``first`` was in, if replaced in ``release``."""
        return first if first == release else previous_release(release)

    def add_file(self, case: str, **fields: Any) -> GdcFile:
        """A new file of ``case`` (submitter id or UUID), released now: by default RNA-Seq counts;
        ``kind=`` one of ``KINDS``; any ``GdcFile`` field overrides (its MD5 follows its size unless
        given)."""
        with self._lock:
            kind = KINDS[fields.pop("kind", "rna_counts")]
            the_case = self.catalogue.case(case)
            project = self.catalogue.projects.get(the_case.project_id) or _project(the_case.project_id)
            rng = random.Random(f"gdc-add/{the_case.submitter_id}/{len(self.catalogue.files)}")
            release = self.catalogue.release
            base = make_file(
                kind, the_case, project, rng, release=release, created=self._clock, updated=self._clock,
                file_id=fields.pop("file_id", None),
            )  # fmt: skip
            base.data_release = f"{release} - {release}"
            overrides = {"md5sum": "", "type": "" if "data_type" in fields else base.type, **fields}
            file = replace(base, **overrides)
            if file.file_id in self.catalogue.files:
                raise ValueError(f"file {file.file_id} exists already")
            self.catalogue.add(file)
            self._changed()
            return file

    def remove(self, file_id: str) -> None:
        """``file_id`` redacted (withdrawn): gone from ``/files`` and ``/data``; versions and history
        say so."""
        with self._lock:
            file = self._current(file_id)
            first, _ = _span(file.data_release)
            release = self.catalogue.release
            file.state = "redacted"
            file.data_release = f"{first} - {self._before(first, release)}"
            file.updated_datetime = self.now()
            self.catalogue.redacted[file_id] = release
            self._changed()

    def new_release(self) -> str:
        """The next data release: current files are in it too. Returns its name."""
        with self._lock:
            release = next_release(self.catalogue.release)
            for file in self.catalogue.latest():
                first, _ = _span(file.data_release)
                file.data_release = f"{first} - {release}"
            self.catalogue.release = release
            self._changed()
            return release

    # -- faults ------------------------------------------------------------------------------------
    def fail(
        self,
        endpoint: str,
        status: int,
        *,
        times: int = 1,
        body: bytes | None = None,
        content_type: str = "application/json",
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` answer ``status`` with ``body`` (default GDC's
        ``{"message": ...}``), ``Retry-After`` if given, after ``delay`` seconds. A 200 with
        ``content_type="text/html"`` is a maintenance page."""
        with self._lock:
            queue = self._faults.setdefault(endpoint, deque())
            queue.extend(_Fault(status, body, content_type, retry_after, delay) for _ in range(times))

    def corrupt(self, file_id: str, mode: str) -> None:
        """The next single download of ``file_id``: ``truncate`` (the connection closes half way) or
        ``flip`` (one wrong byte, same size)."""
        if mode not in ("truncate", "flip"):
            raise ValueError(f"unknown corruption {mode!r}: truncate or flip")
        with self._lock:
            self._corrupt[file_id] = mode

    # -- documents, as GDC indexes them ------------------------------------------------------------
    def _index(self, entity: str) -> _Index:
        with self._lock:
            index = self._indexes.get(entity)
            if index is None or index.generation != self._generation:
                docs = getattr(self, f"_{entity}_docs")()
                key = _ID_FIELD[entity]
                index = _Index(self._generation, docs, {d[key]: d for d in docs})
                self._indexes[entity] = index
            return index

    def _project_sub(self, project_id: str) -> dict[str, Any]:
        project = self.catalogue.projects.get(project_id) or _project(project_id)
        return {
            "project_id": project.project_id,
            "name": project.name,
            "primary_site": list(project.primary_site),
            "disease_type": list(project.disease_type),
            "dbgap_accession_number": project.dbgap_accession_number,
            "released": True,
            "releasable": True,
            "state": "open",
            "program": {
                "name": project.program,
                "program_id": _uuid5("program", project.program),
                "dbgap_accession_number": DBGAP.get(project.program),
            },
        }

    def _file_doc(self, f: GdcFile, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "data_format": f.data_format,
            "access": f.access,
            "file_name": f.file_name,
            "submitter_id": f.submitter_id,
            "data_category": f.data_category,
            "acl": list(f.acl),
            "type": f.type,
            "file_size": f.file_size,
            "created_datetime": f.created_datetime,
            "updated_datetime": f.updated_datetime,
            "md5sum": f.md5sum,
            "file_id": f.file_id,
            "data_type": f.data_type,
            "state": f.state,
        }
        if f.experimental_strategy is not None:
            doc["experimental_strategy"] = f.experimental_strategy
        if f.platform is not None:
            doc["platform"] = f.platform
        doc["version"] = f.version
        doc["data_release"] = f.data_release
        if f.workflow_type is not None:
            doc["analysis"] = {"analysis_id": _uuid5("analysis", f.file_id), "workflow_type": f.workflow_type}
        doc["cases"] = [cases[c] for c in f.case_ids if c in cases]
        return doc

    def _files_docs(self) -> list[dict[str, Any]]:
        project_subs = {p: self._project_sub(p) for p in self.catalogue.projects}
        cases = {}
        for c in self.catalogue.cases.values():
            project = project_subs.get(c.project_id) or self._project_sub(c.project_id)
            cases[c.submitter_id] = {
                "case_id": c.case_id,
                "submitter_id": c.submitter_id,
                "primary_site": c.primary_site,
                "disease_type": c.disease_type,
                "state": "released",
                "project": project,
            }
        return [self._file_doc(f, cases) for f in self.catalogue.latest()]

    @staticmethod
    def _summary(files: Sequence[dict[str, Any]], cases: bool) -> dict[str, Any]:
        def group(key: str) -> list[dict[str, Any]]:
            counts: Counter[str] = Counter()
            members: dict[str, set[str]] = {}
            for f in files:
                value = f.get(key)
                if value is None:
                    continue
                counts[value] += 1
                members.setdefault(value, set()).update(c["case_id"] for c in f.get("cases", []))
            rows = []
            for value, n in sorted(counts.items()):
                row: dict[str, Any] = {key: value, "file_count": n}
                if cases:
                    row["case_count"] = len(members[value])
                rows.append(row)
            return rows

        summary: dict[str, Any] = {
            "file_count": len(files),
            "file_size": sum(f["file_size"] for f in files),
            "data_categories": group("data_category"),
            "experimental_strategies": group("experimental_strategy"),
        }
        if cases:
            summary["case_count"] = len({c["case_id"] for f in files for c in f.get("cases", [])})
        return summary

    def _cases_docs(self) -> list[dict[str, Any]]:
        files = self._index("files").docs
        per_case: dict[str, list[dict[str, Any]]] = {}
        for file_doc in files:
            for c in file_doc["cases"]:
                per_case.setdefault(c["submitter_id"], []).append(file_doc)
        docs = []
        for c in self.catalogue.cases.values():
            own = per_case.get(c.submitter_id, [])
            tcga = c.submitter_id.startswith("TCGA-")
            samples = [f"{c.submitter_id}-01A", f"{c.submitter_id}-10A"] if tcga else [f"{c.submitter_id}-01"]
            doc: dict[str, Any] = {}
            slides = sorted(
                {
                    d["file_name"].split(".")[0]
                    for d in own
                    if d["data_type"] == "Slide Image" and d["file_name"].startswith(c.submitter_id)
                }
            )
            if slides:
                doc["slide_ids"] = [_uuid5("slide", s) for s in slides]
                doc["submitter_slide_ids"] = slides
            doc |= {
                "disease_type": c.disease_type,
                "submitter_id": c.submitter_id,
                "created_datetime": c.created_datetime,
                "sample_ids": [_uuid5("sample", s) for s in samples],
                "submitter_sample_ids": samples,
                "primary_site": c.primary_site,
                "updated_datetime": c.updated_datetime,
                "case_id": c.case_id,
                "index_date": "Diagnosis",
                "state": "released",
                "project": self._project_sub(c.project_id),
                "files": [{k: v for k, v in d.items() if k != "cases"} for d in own],
                "summary": self._summary(own, cases=False),
            }
            docs.append(doc)
        return docs

    def _projects_docs(self) -> list[dict[str, Any]]:
        files = self._index("files").docs
        docs = []
        for project_id in sorted(self.catalogue.projects):
            doc = self._project_sub(project_id)
            own = [f for f in files if any(c["project"]["project_id"] == project_id for c in f["cases"])]
            summary = self._summary(own, cases=True)
            summary["case_count"] = sum(
                1 for c in self.catalogue.cases.values() if c.project_id == project_id
            )
            doc["summary"] = summary
            docs.append(doc)
        return docs

    # -- HTTP --------------------------------------------------------------------------------------
    @staticmethod
    def _endpoint(segments: Sequence[str]) -> str:
        if segments[:2] == ["files", "versions"]:
            return "files/versions"
        return segments[0] if segments else ""

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        segments = [s for s in parts.path.split("/") if s]
        if segments[:1] == ["v0"]:
            segments = segments[1:]
        endpoint = self._endpoint(segments)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length > 0 else b""
        head = method == "HEAD"
        with self._lock:
            self.requests[endpoint] += 1
            queue = self._faults.get(endpoint)
            fault = queue.popleft() if queue else None
        try:
            params = self._params(request, method, query, body)
            with self._lock:
                self.queries.append((method, endpoint, params))
            if fault is not None:
                return self._fault(request, fault, head)
            if self.delay:
                time.sleep(self.delay)
            self._route(request, method, segments, query, params, body)
        except HttpError as error:
            self._send(
                request, error.status, _json({"message": error.message}), "application/json", head=head
            )
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True

    def _params(
        self, request: BaseHTTPRequestHandler, method: str, query: dict[str, list[str]], body: bytes
    ) -> dict[str, Any]:
        """The query string's parameters, overridden by a POST body's (JSON or form), as GDC merges them."""
        params: dict[str, Any] = {k: (v[-1] if k != "ids" else v) for k, v in query.items()}
        if method != "POST" or not body:
            return params
        kind = (request.headers.get("Content-Type") or "").lower()
        if "application/json" in kind:
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise HttpError(400, f"Invalid JSON body: {exc}") from None
            if not isinstance(data, dict):
                raise HttpError(400, "The JSON body must be an object")
            params.update(data)
        elif "application/x-www-form-urlencoded" in kind:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            params.update({k: (v if len(v) > 1 or k == "ids" else v[0]) for k, v in form.items()})
        elif "tsv" in kind or "tab-separated" in kind or "text/plain" in kind:
            params["_manifest"] = body.decode("utf-8", "replace")
        else:
            raise HttpError(400, POST_TYPES)
        return params

    def _fault(self, request: BaseHTTPRequestHandler, fault: _Fault, head: bool) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        body = fault.body
        if body is None:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            body = _json({"message": phrase})
        headers = {}
        if fault.retry_after is not None:
            after = fault.retry_after
            headers["Retry-After"] = str(int(after)) if float(after).is_integer() else str(after)
        self._send(request, fault.status, body, fault.content_type, headers, head=head)

    def _route(
        self,
        request: BaseHTTPRequestHandler,
        method: str,
        segments: list[str],
        query: dict[str, list[str]],
        params: dict[str, Any],
        body: bytes,
    ) -> None:
        head = method == "HEAD"
        if method not in ("GET", "POST", "HEAD"):
            raise HttpError(405, "The method is not allowed for the requested URL.")
        name, rest = (segments[0], segments[1:]) if segments else ("", [])
        if name == "status" and not rest:
            return self._send_json(request, self._status(), params, head)
        if name in SCHEMA:
            if not rest:
                return self._search(request, name, params, head)
            if rest == ["_mapping"]:
                return self._send_json(request, self._mapping(name), params, head)
            if name == "files" and rest[0] == "versions":
                return self._versions(request, method, rest[1:], params, head)
            if len(rest) == 1:
                return self._entity(request, name, rest[0], params, head)
        if name == "data" and len(rest) <= 1:
            ids = _listed(rest[0]) if rest else _listed(params.get("ids"))
            return self._data(request, ids, query, head)
        if name == "manifest" and len(rest) <= 1:
            ids = _listed(rest[0]) if rest else _listed(params.get("ids"))
            files = [self._known(i) for i in ids]
            stamp = self._clock.strftime("%Y%m%d_%H%M%S")
            headers = {"Content-Disposition": f"attachment; filename=gdc_manifest_{stamp}.txt"}
            return self._send(
                request, 200, manifest_tsv(files), "text/plain; charset=utf-8", headers, head=head
            )
        if name == "history" and len(rest) == 1:
            return self._send_json(request, self._history(rest[0]), params, head)
        raise HttpError(404, NOT_FOUND_URL)

    # -- answers -----------------------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        release = self.catalogue.release
        day = release_date(release).strftime("%B %d, %Y")
        return {
            "commit": hashlib.sha1(f"gdcapi/{release}".encode(), usedforsecurity=False).hexdigest(),
            "data_release": f"Data Release {release} - {day}",
            "status": "OK",
            "tag": "7.6.2",
            "version": 1,
        }

    @staticmethod
    def _mapping(entity: str) -> dict[str, Any]:
        fields = SCHEMA[entity]
        return {
            "_mapping": {
                f"{entity}.{f}": {"doc_type": entity, "field": f, "type": kind} for f, kind in fields.items()
            },
            "defaults": list(DEFAULTS[entity]),
            "expand": list(EXPAND[entity]),
            "fields": sorted(fields),
            "multi": [],
            "nested": list(NESTED[entity]),
        }

    def _resolve(self, name: Any, entity: str) -> str | None:
        """A filter's or sort's field name, with or without the endpoint's prefix."""
        if not isinstance(name, str):
            return None
        schema = SCHEMA[entity]
        if name.startswith(entity + ".") and name[len(entity) + 1 :] in schema:
            return name[len(entity) + 1 :]
        return name if name in schema else None

    def _compile(self, node: Any, entity: str) -> Callable[[dict[str, Any]], bool]:
        """A GDC filter as a predicate over documents; a malformed one is a 400."""
        if not isinstance(node, dict) or "op" not in node:
            raise HttpError(400, f"Invalid filters: expected an object with 'op' and 'content', got {node!r}")
        op = str(node["op"]).lower()
        content = node.get("content")
        if op in ("and", "or"):
            if not isinstance(content, list):
                raise HttpError(400, f"Invalid filters: the content of '{op}' must be a list of filters")
            parts = [self._compile(c, entity) for c in content]
            if op == "and":
                return lambda d: all(p(d) for p in parts)
            return lambda d: any(p(d) for p in parts)
        ops = ("=", "!=", "<", "<=", ">", ">=", "in", "exclude", "excludeifany", "is", "not")
        if op not in ops:
            raise HttpError(400, f"Invalid filters: unknown operator '{node['op']}'")
        if not isinstance(content, dict) or "field" not in content:
            raise HttpError(400, f"Invalid filters: the content of '{op}' must have a 'field' and a 'value'")
        field_name = self._resolve(content["field"], entity)
        if field_name is None:
            raise HttpError(400, f"Invalid filters: unrecognized field '{content['field']}' for {entity}")
        path = field_name.split(".")
        if op in ("is", "not"):
            missing = op == "is"
            return lambda d: (not _values(d, path)) == missing
        if "value" not in content:
            raise HttpError(400, f"Invalid filters: the content of '{op}' must have a 'value'")
        kind = SCHEMA[entity][field_name]
        raw = content["value"]
        targets = raw if isinstance(raw, list) else [raw]
        if op in ("<", "<=", ">", ">="):
            if not targets:
                raise HttpError(400, f"Invalid filters: '{op}' needs a value")
            bound = self._comparable(targets[0], kind, field_name)
            compare: Callable[[Any, Any], bool] = {
                "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b,
                ">=": lambda a, b: a >= b,
            }[op]
            return lambda d: any(
                compare(self._comparable(v, kind, field_name), bound) for v in _values(d, path)
            )
        match = self._matcher(targets, kind, field_name)
        if op in ("=", "in"):
            return lambda d: any(match(v) for v in _values(d, path))
        if op in ("!=", "excludeifany"):
            return lambda d: not any(match(v) for v in _values(d, path))
        # exclude: drops the documents whose every value matches (GDC's docs)

        def exclude(d: dict[str, Any]) -> bool:
            values = _values(d, path)
            return not (values and all(match(v) for v in values))

        return exclude

    @staticmethod
    @functools.lru_cache(maxsize=65536)
    def _instant(text: str) -> dt.datetime:
        return parse_instant(text)

    def _comparable(self, value: Any, kind: str, field_name: str) -> Any:
        try:
            if kind == _D:
                return self._instant(str(value))
            if kind == _L:
                return float(value)
        except (TypeError, ValueError):
            raise HttpError(400, f"Invalid filters: {value!r} is not a valid value of {field_name}") from None
        return str(value)

    def _matcher(self, targets: Sequence[Any], kind: str, field_name: str) -> Callable[[Any], bool]:
        """Equality with any target: strings ignore case and take ``*`` wildcards, numbers and dates
        compare as such."""
        if kind in (_L, _D):
            wanted = {self._comparable(t, kind, field_name) for t in targets}
            return lambda v: self._comparable(v, kind, field_name) in wanted
        if kind == _B:
            truth = {str(t).lower() in ("true", "1") for t in targets}
            return lambda v: bool(v) in truth
        exact = {str(t).lower() for t in targets if "*" not in str(t)}
        patterns = [
            re.compile(".*".join(re.escape(p) for p in str(t).lower().split("*")) + r"\Z", re.S)
            for t in targets
            if "*" in str(t)
        ]
        if not patterns:
            return lambda v: str(v).lower() in exact
        return lambda v: str(v).lower() in exact or any(p.match(str(v).lower()) for p in patterns)

    def _filters(self, params: dict[str, Any]) -> Any:
        raw = params.get("filters")
        if raw is None or raw == "" or raw == {}:
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise HttpError(400, f"Invalid filters: {exc}") from None
            if raw == {}:
                return None
        return raw

    def _int(self, params: dict[str, Any], name: str, default: int) -> int:
        value = params.get(name, default)
        try:
            number = int(str(value).strip())
        except ValueError:
            raise HttpError(400, f"'{name}' must be a non-negative integer, not {value!r}") from None
        if number < 0:
            raise HttpError(400, f"'{name}' must be a non-negative integer, not {value!r}")
        return number

    def _fields(self, entity: str, params: dict[str, Any], warnings: dict[str, str]) -> dict[str, Any]:
        """The tree of fields a hit holds: the defaults or ``fields``, plus ``expand``ed groups."""
        schema = SCHEMA[entity]
        asked = _listed(params.get("fields")) if params.get("fields") not in (None, "") else None
        chosen: list[str] = []
        if asked is None:
            chosen += DEFAULTS[entity]
        else:
            unknown = [f for f in asked if f not in schema and f != "id"]
            if unknown:
                warnings["fields"] = _unrecognized(unknown)
            chosen += [f for f in asked if f in schema]
        groups = _listed(params.get("expand"))
        unknown = [g for g in groups if g not in EXPAND[entity]]
        if unknown:
            warnings["expand"] = _unrecognized(unknown)
        for group in groups:
            chosen += [f for f in schema if f.rsplit(".", 1)[0] == group and "." in f]
        return _tree(chosen)

    def _sort(self, docs: list[dict[str, Any]], entity: str, spec: str) -> list[dict[str, Any]]:
        keys = []
        for item in _listed(spec):
            name, _, order = item.partition(":")
            field_name = self._resolve(name.strip(), entity)
            if field_name is None or order.strip().lower() not in ("", "asc", "desc"):
                raise HttpError(400, f"Invalid sort: {item!r}")
            keys.append((field_name, order.strip().lower() == "desc"))
        for field_name, descending in reversed(keys):
            path, kind = field_name.split("."), SCHEMA[entity][field_name]

            def key(d: dict[str, Any], path: list[str] = path, kind: str = kind) -> Any:
                values = _values(d, path)
                if not values:
                    return None
                return self._instant(values[0]) if kind == _D else values[0]

            keyed = [(key(d), d) for d in docs]
            present = [p for p in keyed if p[0] is not None]
            present.sort(key=lambda p: p[0], reverse=descending)
            docs = [d for _, d in present] + [d for k, d in keyed if k is None]
        return docs

    def _facet_filter(self, filters: Any, field_name: str, entity: str) -> Any:
        """The filters a facet of ``field_name`` counts under: without those on that very field (range
        filters excepted), as GDC's docs say."""

        def own(node: Any) -> bool:
            if not isinstance(node, dict):
                return False
            op = str(node.get("op", "")).lower()
            content = node.get("content")
            return (
                op not in ("and", "or", "<", "<=", ">", ">=")
                and isinstance(content, dict)
                and self._resolve(content.get("field"), entity) == field_name
            )

        if filters is None or own(filters):
            return None
        if str(filters.get("op", "")).lower() == "and" and isinstance(filters.get("content"), list):
            return {"op": "and", "content": [c for c in filters["content"] if not own(c)]}
        return filters

    def _aggregations(
        self, entity: str, docs: list[dict[str, Any]], filters: Any, facets: list[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in facets:
            kind = SCHEMA[entity][name]
            own_filters = self._facet_filter(filters, name, entity)
            if own_filters is None:
                pool = docs
            else:
                predicate = self._compile(own_filters, entity)
                pool = [d for d in docs if predicate(d)]
            path = name.split(".")
            if kind == _L:
                numbers = [float(v) for d in pool for v in _values(d, path)]
                count = len(numbers)
                out[name] = {
                    "stats": {
                        "count": count,
                        "min": min(numbers) if count else None,
                        "max": max(numbers) if count else None,
                        "avg": sum(numbers) / count if count else None,
                        "sum": sum(numbers),
                    }
                }
                continue
            counts: Counter[Any] = Counter()
            missing = 0
            for d in pool:
                values = _values(d, path)
                if not values:
                    missing += 1
                for v in set(values if kind != _B else [str(bool(x)).lower() for x in values]):
                    counts[v] += 1
            buckets = [
                {"doc_count": n, "key": k}
                for k, n in sorted(counts.items(), key=lambda p: (-p[1], str(p[0])))
            ]
            if missing:
                buckets.append({"doc_count": missing, "key": "_missing"})
            out[name] = {"buckets": buckets}
        return out

    def _search(
        self, request: BaseHTTPRequestHandler, entity: str, params: dict[str, Any], head: bool
    ) -> None:
        index = self._index(entity)
        filters = self._filters(params)
        docs = index.docs
        if filters is not None:
            predicate = self._compile(filters, entity)
            docs = [d for d in docs if predicate(d)]
        sort = str(params.get("sort") or "")
        if sort:
            docs = self._sort(docs, entity, sort)
        if entity == "files" and str(params.get("return_type", "")).lower() == "manifest":
            files = [self.catalogue.files[d["file_id"]] for d in docs]
            stamp = self._clock.strftime("%Y%m%d_%H%M%S")
            headers = {"Content-Disposition": f"attachment; filename=gdc_manifest_{stamp}.txt"}
            return self._send(
                request, 200, manifest_tsv(files), "text/plain; charset=utf-8", headers, head=head
            )
        size = self._int(params, "size", 10)
        start = self._int(params, "from", 0)
        warnings: dict[str, str] = {}
        tree = self._fields(entity, params, warnings)
        key = _ID_FIELD[entity]
        hits = [{"id": d[key], **_project_doc(d, tree)} for d in docs[start : start + size]]
        data: dict[str, Any] = {"hits": hits}
        facets = _listed(params.get("facets"))
        if facets:
            known = [f for f in facets if f in SCHEMA[entity]]
            unknown = [f for f in facets if f not in SCHEMA[entity]]
            if unknown:
                warnings["facets"] = _unrecognized(unknown)
            if known:
                data["aggregations"] = self._aggregations(entity, index.docs, filters, known)
        data["pagination"] = _pagination(len(hits), len(docs), size, start, bool(sort))
        self._respond(request, {"data": data, "warnings": warnings}, hits, params, entity, head)

    def _entity(
        self, request: BaseHTTPRequestHandler, entity: str, key: str, params: dict[str, Any], head: bool
    ) -> None:
        doc = self._index(entity).by_id.get(key)
        if doc is None:
            singular = entity[:-1]
            raise HttpError(404, f"{singular.capitalize()} with id '{key}' not found")
        warnings: dict[str, str] = {}
        tree = self._fields(entity, params, warnings)
        data = {"id": doc[_ID_FIELD[entity]], **_project_doc(doc, tree)}
        self._respond(
            request, {"data": data, "warnings": warnings}, [data], params, f"{entity[:-1]}.{key}", head
        )

    def _respond(
        self,
        request: BaseHTTPRequestHandler,
        envelope: dict[str, Any],
        rows: list[dict[str, Any]],
        params: dict[str, Any],
        name: str,
        head: bool,
    ) -> None:
        fmt = str(params.get("format") or "json").lower()
        pretty = str(params.get("pretty", "false")).lower() == "true"
        if fmt == "tsv":
            body, kind = table(rows, "\t"), "text/tab-separated-values"
        elif fmt == "csv":
            body, kind = table(rows, ","), "text/csv"
        elif fmt == "xml":
            body, kind = _xml(envelope, pretty), "text/xml"
        else:
            fmt, body, kind = "json", _json(envelope, pretty), "application/json"
        headers = {}
        if str(params.get("attachment", "")).lower() == "true":
            headers["Content-Disposition"] = f"attachment; filename={name}.{self._clock.isoformat()}.{fmt}"
        self._send(request, 200, body, kind, headers, head=head)

    def _send_json(
        self, request: BaseHTTPRequestHandler, data: Any, params: dict[str, Any], head: bool
    ) -> None:
        fmt = str(params.get("format") or "json").lower()
        if fmt == "tsv" and isinstance(data, list):
            return self._send(request, 200, table(data), "text/tab-separated-values", head=head)
        pretty = str(params.get("pretty", "false")).lower() == "true"
        self._send(request, 200, _json(data, pretty), "application/json", head=head)

    # -- versions and history --------------------------------------------------------------------
    def _known(self, file_id: str) -> GdcFile:
        file = self.catalogue.files.get(file_id)
        if file is None or file.state == "redacted":
            raise HttpError(404, f"Data with id {file_id} not found")
        return file

    @staticmethod
    def _file_state(file: GdcFile) -> str:
        return "redacted" if file.state == "redacted" else "validated"

    def _version_row(self, file: GdcFile) -> dict[str, Any]:
        latest = self.catalogue.versions(file.file_id)[-1]
        first, last = _span(latest.data_release)
        return {
            "id": file.file_id,
            "filename": file.file_name,
            "version": file.version,
            "md5": file.md5sum,
            "size": file.file_size,
            "state": self._file_state(file),
            "release": _span(file.data_release)[0],
            "latest_id": latest.file_id,
            "latest_filename": latest.file_name,
            "latest_version": latest.version,
            "latest_md5": latest.md5sum,
            "latest_size": latest.file_size,
            "latest_state": self._file_state(latest),
            "latest_release": releases_between(first, last),
        }

    def _versions(
        self,
        request: BaseHTTPRequestHandler,
        method: str,
        rest: list[str],
        params: dict[str, Any],
        head: bool,
    ) -> None:
        if rest == ["manifest"] and method == "POST":
            text = str(params.get("_manifest", ""))
            reader = csv.DictReader(io.StringIO(text), delimiter="\t")
            ids = [row["id"].strip() for row in reader if row.get("id")]
        elif rest and method != "POST":
            ids = _listed(rest[0])
        elif not rest and method == "POST":
            raw = params.get("ids")
            if not isinstance(raw, list):
                raise HttpError(400, "Pass in object with ids as key and list as value")
            ids = _listed(raw)
        else:
            raise HttpError(404, NOT_FOUND_URL)
        rows = [self._version_row(self.catalogue.files[i]) for i in ids if i in self.catalogue.files]
        self._send_json(request, rows, params, head)

    def _history(self, file_id: str) -> list[dict[str, Any]]:
        versions = self.catalogue.versions(file_id)
        rows = []
        for i, file in enumerate(versions):
            first, _ = _span(file.data_release)
            rows.append(
                {
                    "uuid": file.file_id,
                    "version": file.version,
                    "file_change": "released" if i == len(versions) - 1 else "superseded",
                    "release_date": release_date(first).isoformat(),
                    "data_release": first,
                }
            )
        if versions and versions[-1].state == "redacted":
            file = versions[-1]
            release = self.catalogue.redacted.get(file.file_id, self.catalogue.release)
            rows.append(
                {
                    "uuid": file.file_id,
                    "version": file.version,
                    "file_change": "redacted",
                    "release_date": release_date(release).isoformat(),
                    "data_release": release,
                }
            )
        return rows

    # -- data --------------------------------------------------------------------------------------
    def _authorize(self, request: BaseHTTPRequestHandler, file: GdcFile) -> None:
        """GDC's check: open files for all; controlled ones for a valid token whose acl meets theirs."""
        if tuple(file.acl) == ("open",):
            return
        token = (request.headers.get("X-Auth-Token") or "").strip()
        if not token:
            raise HttpError(403, NO_TOKEN)
        if self.token is None or token != self.token:
            raise HttpError(403, BAD_TOKEN)
        if not set(file.acl) & set(self.token_acl):
            raise HttpError(403, NO_ACCESS)

    def _count(self, n: int) -> None:
        with self._lock:
            self.data_bytes += n

    def _data(
        self, request: BaseHTTPRequestHandler, ids: list[str], query: dict[str, list[str]], head: bool
    ) -> None:
        if not ids:
            raise HttpError(400, "No file ids given")
        files = [self._known(i) for i in ids]
        for file in files:
            self._authorize(request, file)
        archive = len(files) > 1 or "tarfile" in query or "compress" in query
        if not archive:
            return self._single(request, files[0], head)
        gz = "compress" in query or "tarfile" not in query
        stamp = self._clock.strftime("%Y%m%d_%H%M%S") + f".{self._clock.microsecond:06d}"
        name = f"gdc_download_{stamp}.tar" + (".gz" if gz else "")
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Disposition", f"attachment; filename={name}")
        if head:
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        writer = _Chunked(request.wfile, self._count)
        mtime = self._clock.timestamp()
        with tarfile.open(fileobj=writer, mode="w|gz" if gz else "w|") as tar:
            listing = manifest_tsv(replace(f, file_name=f"{f.file_id}/{f.file_name}") for f in files)
            info = tarfile.TarInfo("MANIFEST.txt")
            info.size, info.mtime = len(listing), mtime
            tar.addfile(info, io.BytesIO(listing))
            for f in files:
                info = tarfile.TarInfo(f"{f.file_id}/{f.file_name}")
                info.size, info.mtime = f.file_size, mtime
                tar.addfile(info, _ContentReader(f.file_id, f.file_size))
        writer.finish()

    def _single(self, request: BaseHTTPRequestHandler, file: GdcFile, head: bool) -> None:
        size = file.file_size
        start, end, status = 0, size, 200
        spec = request.headers.get("Range")
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", spec or "")
        if match and (match[1] or match[2]):
            if match[1]:
                start = int(match[1])
                end = min(size, int(match[2]) + 1) if match[2] else size
                bad = start >= size or (bool(match[2]) and int(match[2]) < start)
            else:
                start, bad = max(0, size - int(match[2])), int(match[2]) == 0 or size == 0
            if bad:
                headers = {"Content-Range": f"bytes */{size}"}
                body = _json({"message": "Requested Range Not Satisfiable"})
                return self._send(request, 416, body, "application/json", headers, head=head)
            status = 206
        with self._lock:
            mode = None if head else self._corrupt.pop(file.file_id, None)
        request.send_response(status)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Disposition", f"attachment; filename={file.file_name}")
        request.send_header("Accept-Ranges", "bytes")
        request.send_header("Content-Length", str(end - start))
        if status == 206:
            request.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        request.end_headers()
        if head:
            return
        limit = end - start if mode != "truncate" else (end - start) // 2
        flip = start + (end - start) // 2 if mode == "flip" else -1
        at = start
        for piece in content_chunks(file.file_id, size, start, end):
            if at - start >= limit:
                break
            piece = piece[: limit - (at - start)]
            if at <= flip < at + len(piece):
                changed = bytearray(piece)
                changed[flip - at] ^= 0xFF
                piece = bytes(changed)
            self._count(len(piece))  # before it leaves: a client may look as soon as it has it all
            request.wfile.write(piece)
            at += len(piece)
        if mode == "truncate":
            request.close_connection = True
            request.wfile.flush()
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_WR)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        kind: str,
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if not head:
            request.wfile.write(body)


def _json(data: Any, pretty: bool = False) -> bytes:
    """JSON as GDC writes it (``json.dumps``' separators; ``pretty``: two-space indents)."""
    return json.dumps(data, indent=2 if pretty else None).encode()


_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _renamed(name: str, rng: random.Random) -> str:
    """Another name for a new version: a new UUID in place of the name's, else ``.v2`` before the suffix."""
    found = _UUID_RE.search(name)
    if found:
        fresh = _uuid(rng)
        fresh = fresh.upper() if found[0].isupper() else fresh
        return name[: found.start()] + fresh + name[found.end() :]
    stem, dot, suffix = name.partition(".")
    return f"{stem}.v2{dot}{suffix}" if dot else f"{name}.v2"


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a GDC API emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--collections", default="tcga_luad", help="IDC collection ids (tcga_*, cptac_*)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-cases", type=int, default=None, help="patients per collection at most")
    parser.add_argument("--token", default="gdc-token", help="the valid X-Auth-Token")
    parser.add_argument(
        "--synthetic", type=int, metavar="FILES", help="made-up files instead of IDC's patients (benchmarks)"
    )
    parser.add_argument("--file-size", type=int, default=1_000_000, help="bytes of each made-up file")
    parser.add_argument("--cases", type=int, default=500, help="cases the made-up files spread over")
    args = parser.parse_args()
    if args.synthetic:
        catalogue = synthetic_catalogue(
            args.synthetic, file_size=args.file_size, cases=args.cases, seed=args.seed
        )
    else:
        catalogue = catalogue_from_idc(args.collections.split(","), seed=args.seed, max_cases=args.max_cases)
    emulator = GdcEmulator(catalogue, token=args.token, port=args.port)
    emulator.serve_until_interrupted(
        f"GDC emulator at {emulator.url} ({len(catalogue.cases)} cases, {len(catalogue.latest())} files, "
        f"token {args.token!r})"
    )


if __name__ == "__main__":
    main()
