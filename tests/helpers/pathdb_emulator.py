"""An emulator of TCIA's PathDB (caMicroscope's Drupal catalogue of whole-slide images), for offline
tests and demos.

It answers as PathDB's own Drupal configuration does (SBU-BMI/PathDB ``config/views.view.*.yml``,
Drupal 9 core serialization), in the shapes ``tcia_utils.pathdb`` parses:

- ``GET /collections?_format=json``: the REST export of the ``collections`` view, no pager: every
  taxonomy term of the ``collections`` vocabulary as Drupal serializes an entity, each field an
  array of items (``"tid":[{"value":12}]``, ``"name":[{"value":"TCGA-LUAD"}]``, ``"changed":
  [{"value":"2023-05-01T12:00:00+00:00","format":"Y-m-d\\\\TH:i:sP"}]``), sorted by name.
- ``GET /listofimages/{collection}?_format=json&page=N``: the REST export of the ``listofimages``
  view: whole ``wsi`` nodes (``nid``, ``imageid``, ``clinicaltrialsubjectid``, ``studyid``,
  ``field_collection`` as an entity reference with ``target_id``, ``field_wsiimage`` as a file
  reference with an absolute ``url``, ``imagedvolumewidth``/``height`` and
  ``referencepixelphysicalvaluex``/``y`` as floats, ``created``/``changed``...), 100 a page (the
  export's pager), sorted by collection id, study id, subject id and image id; a page past the end
  is an empty array. The argument is a term id or a term name (the view's "taxonomy term name with
  depth" contextual filter); one that names no collection filters everything out, so it is an
  empty array too, never a 404, as Views answers. Without ``_format=json`` the view's HTML page.
- ``GET|HEAD /system/files/wsi/YYYY-MM/NAME``: the slide file, as Drupal's private file download
  serves it (``Content-Length``, ``Accept-Ranges: bytes``, ranges, ``image/tiff`` for ``.tif``,
  ``application/octet-stream`` for ``.svs``); a removed slide's file is a 404.
- Any other path: Drupal's 404 (a JSON ``{"message": ...}`` with ``_format=json``, else HTML).

JSON is written as PHP's ``json_encode`` with Drupal's flags writes it: compact, ``/`` escaped,
``< > ' & "`` as ``\\u003C``..., non-ASCII as ``\\uXXXX``.

Slides are small generated pyramidal TIFFs in Aperio's SVS layout (tiled, deflate-compressed:
baseline, thumbnail, then reduced levels; ``tifffile`` writes them), deterministic from the slide's
seed, made on first download or HEAD and kept. The archive changes while it runs: ``add_slide``,
``replace_slide`` (a new file: new file id, new bytes, ``changed`` moves), ``remove_slide``; the
clock (``now``/``advance``) stamps them. Faults are queued per endpoint (``fail``), downloads can be
corrupted once (``corrupt``), requests are counted per endpoint (``requests``).

Standalone: ``python -m tests.helpers.pathdb_emulator --port 8082``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.helpers.net import LoopbackServer

#: Items per page of the ``listofimages`` REST export (its pager's ``items_per_page``).
PAGE_SIZE = 100
#: Tile edge of the generated slides, in pixels.
TILE = 256
_DRUPAL_DATE = "Y-m-d\\TH:i:sP"
_EPOCH = dt.datetime(2024, 6, 3, 9, 0, tzinfo=dt.UTC)
#: Slide sizes (width, height) the catalogue draws from: small, so a file stays near 30 KB.
SIZES = ((1024, 768), (896, 640), (768, 512))


@dataclass
class CollectionTerm:
    """A term of PathDB's ``collections`` vocabulary."""

    tid: int
    name: str
    changed: dt.datetime
    doi: str = ""


@dataclass
class Slide:
    """One ``wsi`` node of PathDB and its file."""

    nid: int
    fid: int
    collection: str
    subject: str
    imageid: str
    file_name: str
    created: dt.datetime
    changed: dt.datetime
    seed: int
    width: int = 1024
    height: int = 768
    mpp: float | None = 0.252
    #: ``studyid``: at TCIA it holds the collection's name (tcia_utils reads it as such).
    study: str = ""
    manufacturer: str = "Aperio"

    @property
    def folder(self) -> str:
        return f"wsi/{self.created:%Y-%m}"

    @property
    def path(self) -> str:
        """The file's URL path below the site (what ``field_wsiimage[0].url`` ends with)."""
        return f"/system/files/{self.folder}/{quote(self.file_name)}"


@dataclass
class Catalogue:
    """What the emulator serves. ``missing`` holds, per collection, the subjects IDC has slides
    of that the catalogue deliberately leaves out (so that joins have misses)."""

    collections: list[CollectionTerm]
    slides: list[Slide]
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def subjects(self, collection: str) -> list[str]:
        return sorted({s.subject for s in self.slides if s.collection == collection})


# -- slide files --------------------------------------------------------------------------------------
def slide_levels(width: int, height: int) -> list[tuple[int, int]]:
    """The (width, height) of each pyramid level of a generated slide: halved while above a tile."""
    levels = [(width, height)]
    while max(levels[-1]) > TILE:
        w, h = levels[-1]
        levels.append((max(1, w // 2), max(1, h // 2)))
    return levels


def slide_bytes(slide: Slide) -> bytes:
    """A pyramidal TIFF in Aperio's SVS layout for ``slide``: deterministic from its seed and size."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(slide.seed)
    y, x = np.mgrid[0 : slide.height, 0 : slide.width]
    image = np.empty((slide.height, slide.width, 3), np.uint8)
    image[..., 0] = 236 - (x * 24 // slide.width)
    image[..., 1] = 214 - (y * 30 // slide.height)
    image[..., 2] = 232
    for _ in range(14):  # nuclei-coloured blobs on a pink background: compresses well, yet unique
        cx, cy = int(rng.integers(0, slide.width)), int(rng.integers(0, slide.height))
        r = int(rng.integers(12, 80))
        blob = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        image[blob] = (int(rng.integers(80, 170)), int(rng.integers(30, 90)), int(rng.integers(110, 190)))
    mpp = f"|MPP = {slide.mpp:.4f}" if slide.mpp else ""
    head = "Aperio Image Library v12.0.15 \r\n"
    buffer = io.BytesIO()
    levels = slide_levels(slide.width, slide.height)
    with tifffile.TiffWriter(buffer) as tif:
        options: dict[str, Any] = {"photometric": "rgb", "compression": "zlib", "metadata": None}
        tif.write(
            image,
            tile=(TILE, TILE),
            description=(
                f"{head}{slide.width}x{slide.height} [0,0 {slide.width}x{slide.height}] ({TILE}x{TILE}) "
                f"RGB|AppMag = 40{mpp}|Filename = {slide.imageid}"
            ),
            **options,
        )
        thumb = image[:: max(1, slide.height // 96), :: max(1, slide.height // 96)]
        tif.write(thumb, description=f"{head}{slide.width}x{slide.height} -> thumbnail", **options)
        for w, h in levels[1:]:
            step = slide.width // w
            tif.write(
                np.ascontiguousarray(image[::step, ::step][:h, :w]),
                tile=(TILE, TILE),
                description=f"{head}{slide.width}x{slide.height} -> {w}x{h}",
                **options,
            )
    return buffer.getvalue()


# -- catalogues ---------------------------------------------------------------------------------------
def pathdb_name(idc_collection: str) -> str:
    """TCIA's name of an IDC collection id: ``tcga_luad`` -> ``TCGA-LUAD``."""
    return idc_collection.upper().replace("_", "-")


def _image_ids(collection: str, subject: str, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """(imageid, file name) of ``count`` slides of ``subject``, named as TCIA names them."""
    out = []
    for k in range(count):
        if collection.startswith("TCGA-"):
            imageid = f"{subject}-01Z-00-DX{k + 1}"
            name = f"{imageid}.{uuid.UUID(int=rng.getrandbits(128), version=4)!s}".upper() + ".svs"
        elif collection.startswith("CPTAC-"):
            imageid = f"{subject}-{21 + k}"
            name = f"{imageid}.svs"
        else:
            imageid = f"{subject}_{k + 1}"
            name = f"{imageid}.svs"
        out.append((imageid, name))
    return out


def catalogue_from_idc(
    collections: Iterable[str] = ("tcga_luad",),
    *,
    seed: int = 0,
    slides_per_subject: tuple[int, int] = (1, 3),
    missing_fraction: float = 0.05,
) -> Catalogue:
    """A PathDB catalogue of the subjects IDC has slide-microscopy (SM) series of, in ``collections``
    (IDC ids; named as TCIA names them: ``TCGA-LUAD``). Each subject gets ``slides_per_subject``
    slides (inclusive range, drawn with ``seed``); ``missing_fraction`` of the subjects are left
    out (listed in ``Catalogue.missing``). Cheap: no slide file is made until one is asked for."""
    import idc_index_data
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = list(collections)
    table = pq.read_table(
        idc_index_data.IDC_INDEX_PARQUET_FILEPATH,
        columns=["collection_id", "PatientID", "Modality"],
        filters=[("Modality", "=", "SM"), ("collection_id", "in", wanted)],
    )
    rng = random.Random(seed)
    terms: list[CollectionTerm] = []
    slides: list[Slide] = []
    missing: dict[str, tuple[str, ...]] = {}
    nid, fid = 1000, 5000
    for index, idc_id in enumerate(sorted(wanted)):
        name = pathdb_name(idc_id)
        rows = table.filter(pc.equal(table.column("collection_id"), idc_id))
        subjects = sorted({p for p in rows.column("PatientID").to_pylist() if p})
        if not subjects:
            raise ValueError(f"IDC has no slide-microscopy series in {idc_id!r}")
        left_out = set(rng.sample(subjects, round(len(subjects) * missing_fraction)))
        missing[name] = tuple(sorted(left_out))
        created = _EPOCH - dt.timedelta(days=400 - 30 * index)
        terms.append(CollectionTerm(11 + index, name, created, f"https://doi.org/10.7937/tcia.{idc_id}"))
        for subject in subjects:
            if subject in left_out:
                continue
            count = rng.randint(*slides_per_subject)
            for imageid, file_name in _image_ids(name, subject, count, rng):
                nid += 1
                fid += 1
                width, height = rng.choice(SIZES)
                when = created + dt.timedelta(minutes=nid % 997)
                slides.append(
                    Slide(
                        nid,
                        fid,
                        name,
                        subject,
                        imageid,
                        file_name,
                        when,
                        when,
                        rng.getrandbits(32),
                        width,
                        height,
                        rng.choice((0.252, 0.2527, 0.504)),
                        name,
                    )
                )
    return Catalogue(terms, slides, missing)


# -- Drupal's answers ----------------------------------------------------------------------------------
def drupal_json(data: Any) -> bytes:
    """JSON as Drupal's encoder writes it (``json_encode`` with HEX_TAG|HEX_APOS|HEX_AMP|HEX_QUOT)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    text = text.replace("/", "\\/").replace("<", "\\u003C").replace(">", "\\u003E")
    text = text.replace("'", "\\u0027").replace("&", "\\u0026")
    return text.encode()


def _date(moment: dt.datetime) -> dict[str, str]:
    return {"value": moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"), "format": _DRUPAL_DATE}


def _uuid(*parts: object) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:16], version=4))


def _html(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en" dir="ltr">\n<head>\n<meta charset="utf-8" />\n'
        '<meta name="Generator" content="Drupal 9 (https://www.drupal.org)" />\n'
        f"<title>{title} | PathDB</title>\n"
        f'</head>\n<body class="path-frontpage">\n<main role="main"><h1>{title}</h1>\n{body}\n</main>\n'
        "</body>\n</html>\n"
    ).encode()


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class PathDbEmulator(LoopbackServer):
    """PathDB on 127.0.0.1. Not a mock: it serves HTTP as the real site does (see the module
    docstring); tests change the archive and queue faults while it runs. Thread-safe."""

    def __init__(self, catalogue: Catalogue | None = None, port: int = 0, *, md5: bool = False) -> None:
        self.catalogue = catalogue if catalogue is not None else catalogue_from_idc()
        #: Fill each node's ``md5`` field (PathDB has the field; TCIA's listing is not known to
        #: fill it, so it stays empty unless asked for). Filling it makes every listed slide's file.
        self.md5 = md5
        #: Requests per endpoint: ``collections``, ``listofimages``, ``files`` (GET), ``head``
        #: (HEAD of a file), ``other``.
        self.requests: Counter[str] = Counter()
        #: Range requests (GET) per node id.
        self.ranged: Counter[int] = Counter()
        self._faults: dict[str, list[tuple[int, bytes | None, str, dict[str, str]]]] = {}
        self._corrupt: dict[int, list[str]] = {}
        self._files: dict[tuple[int, int], bytes] = {}
        self._file_locks: dict[tuple[int, int], threading.Lock] = {}
        self._lock = threading.RLock()
        self._clock = _EPOCH
        self._next_nid = max((s.nid for s in self.catalogue.slides), default=1000) + 1
        self._next_fid = max((s.fid for s in self.catalogue.slides), default=5000) + 1
        self._next_tid = max((c.tid for c in self.catalogue.collections), default=10) + 1
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                emulator._handle(self, head=False)

            def do_HEAD(self) -> None:
                emulator._handle(self, head=True)

            def log_message(self, *args: object) -> None:
                pass

        self._serve(ThreadingHTTPServer(("127.0.0.1", port), Handler))

    # -- life ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The site's base URL, ``http://127.0.0.1:PORT/`` (what a source's ``base_url`` takes)."""
        return f"http://127.0.0.1:{self.port}/"

    # -- what it holds -------------------------------------------------------------------------
    @property
    def slides(self) -> list[Slide]:
        return self.catalogue.slides

    def collection(self, name: str) -> CollectionTerm:
        for term in self.catalogue.collections:
            if term.name == name:
                return term
        raise KeyError(f"no collection {name!r} in the emulator's catalogue")

    def slide(self, nid: int) -> Slide:
        for s in self.catalogue.slides:
            if s.nid == nid:
                return s
        raise KeyError(f"no slide with nid {nid} in the emulator's catalogue")

    def file_url(self, slide: Slide) -> str:
        return self.url.rstrip("/") + slide.path

    def file_bytes(self, slide: Slide) -> bytes:
        """The slide's current file (made on first use, then kept)."""
        key = (slide.nid, slide.fid)
        with self._lock:
            data = self._files.get(key)
            if data is not None:
                return data
            lock = self._file_locks.setdefault(key, threading.Lock())
        with lock:  # made once, outside the emulator's lock: other requests go on meanwhile
            with self._lock:
                data = self._files.get(key)
            if data is None:
                data = slide_bytes(slide)
                with self._lock:
                    self._files[key] = data
        return data

    # -- the clock and changes -----------------------------------------------------------------
    def now(self) -> float:
        """The archive's clock as Unix time (what new and changed nodes are stamped with)."""
        return self._clock.timestamp()

    def advance(self, seconds: float) -> float:
        """Moves the clock on by ``seconds``; returns it as Unix time."""
        with self._lock:
            self._clock += dt.timedelta(seconds=seconds)
        return self.now()

    def add_slide(
        self,
        collection: str,
        subject: str,
        *,
        imageid: str | None = None,
        file_name: str | None = None,
        width: int = 1024,
        height: int = 768,
        mpp: float | None = 0.252,
        study: str | None = None,
    ) -> Slide:
        """A new node (and file) stamped now; ``collection`` may be new (a new term)."""
        with self._lock:
            if not any(c.name == collection for c in self.catalogue.collections):
                self.catalogue.collections.append(CollectionTerm(self._next_tid, collection, self._clock))
                self._next_tid += 1
            nid, fid = self._next_nid, self._next_fid
            self._next_nid += 1
            self._next_fid += 1
            imageid = imageid or f"{subject}-NEW{nid}"
            slide = Slide(
                nid,
                fid,
                collection,
                subject,
                imageid,
                file_name or f"{imageid}.svs",
                self._clock,
                self._clock,
                random.Random(nid).getrandbits(32),
                width,
                height,
                mpp,
                collection if study is None else study,
            )
            self.catalogue.slides.append(slide)
            return slide

    def replace_slide(self, nid: int) -> Slide:
        """A new file for node ``nid`` (a new file entity: new id, new bytes); ``changed`` moves."""
        with self._lock:
            slide = self.slide(nid)
            slide.fid = self._next_fid
            self._next_fid += 1
            slide.seed = random.Random(slide.seed).getrandbits(32)
            slide.changed = self._clock
            return slide

    def touch_slide(self, nid: int) -> Slide:
        """Node ``nid`` edited (metadata only): ``changed`` moves, the file stays."""
        with self._lock:
            slide = self.slide(nid)
            slide.changed = self._clock
            return slide

    def remove_slide(self, nid: int) -> Slide:
        """Node ``nid`` deleted: gone from the listing, its file a 404."""
        with self._lock:
            slide = self.slide(nid)
            self.catalogue.slides.remove(slide)
            return slide

    def touch_collection(self, name: str) -> CollectionTerm:
        """The collection's term edited by a curator: its ``changed`` moves."""
        with self._lock:
            term = self.collection(name)
            term.changed = self._clock
            return term

    # -- faults --------------------------------------------------------------------------------
    def fail(
        self,
        endpoint: str,
        status: int,
        times: int = 1,
        body: bytes | None = None,
        content_type: str = "text/html; charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests of ``endpoint`` (``collections``, ``listofimages``,
        ``files``, ``head``) answer ``status`` with ``body`` (default: an error page as the site's
        web server writes it; with status 200 and an HTML body: "HTML instead of JSON")."""
        with self._lock:
            self._faults.setdefault(endpoint, []).extend(
                [(status, body, content_type, dict(headers or {}))] * times
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._corrupt.clear()

    def corrupt(self, nid: int, mode: str, times: int = 1) -> None:
        """The next ``times`` downloads (GET) of node ``nid``'s file are wrong: ``truncate`` (the
        first half only, with its own Content-Length: a short file) or ``flip`` (as many bytes,
        the first 4 KB inverted: a TIFF no longer)."""
        if mode not in ("truncate", "flip"):
            raise ValueError(f"corrupt takes 'truncate' or 'flip', not {mode!r}")
        with self._lock:
            self._corrupt.setdefault(nid, []).extend([mode] * times)

    def _next_fault(self, endpoint: str) -> tuple[int, bytes | None, str, dict[str, str]] | None:
        with self._lock:
            queue = self._faults.get(endpoint)
            return queue.pop(0) if queue else None

    # -- HTTP ----------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler, *, head: bool) -> None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        if path.startswith("/system/files/"):
            endpoint = "head" if head else "files"
        elif path == "/collections":
            endpoint = "collections"
        elif path == "/listofimages" or path.startswith("/listofimages/"):
            endpoint = "listofimages"
        else:
            endpoint = "other"
        with self._lock:
            self.requests[endpoint] += 1
        fault = self._next_fault(endpoint)
        if fault is not None:
            status, body, kind, headers = fault
            if body is None:
                reason = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}
                text = reason.get(status, "Error")
                page = f"<html><head><title>{status} {text}</title></head><body><h1>{text}</h1></body></html>"
                body = page.encode()
            return self._send(request, status, kind, body, headers, head=head)
        json_format = query.get("_format") == "json"
        if endpoint in ("files", "head"):
            return self._file(request, unquote(path), head=head)
        if endpoint == "collections":
            if not json_format:
                return self._send(request, 200, "text/html; charset=UTF-8", _html("Collections", "<table/>"))
            return self._json(request, self._collections(), head=head)
        if endpoint == "listofimages":
            argument = unquote(path[len("/listofimages/") :]) if path.startswith("/listofimages/") else ""
            if not json_format:
                body = _html("List of Images", "<table class='views-table'></table>")
                return self._send(request, 200, "text/html; charset=UTF-8", body, head=head)
            return self._json(request, self._listing(argument, query.get("page", "0")), head=head)
        if json_format:
            message = {"message": f'No route found for "GET {self.url.rstrip("/")}{path}"'}
            return self._send(request, 404, "application/json", drupal_json(message), head=head)
        body = _html("Page not found", "<p>The requested page could not be found.</p>")
        return self._send(request, 404, "text/html; charset=UTF-8", body, head=head)

    def _json(self, request: BaseHTTPRequestHandler, data: Any, *, head: bool) -> None:
        self._send(request, 200, "application/json", drupal_json(data), head=head)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        kind: str | None,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
        length: int | None = None,
    ) -> None:
        request.send_response(status)
        if kind:
            request.send_header("Content-Type", kind)
        request.send_header("X-Generator", "Drupal 9 (https://www.drupal.org)")
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body) if length is None else length))
        request.end_headers()
        if not head:
            request.wfile.write(body)

    # -- the views -----------------------------------------------------------------------------
    def _collections(self) -> list[dict[str, Any]]:
        with self._lock:
            terms = sorted(self.catalogue.collections, key=lambda c: c.name.lower())
            return [self._term(c) for c in terms]

    def _term(self, term: CollectionTerm) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]+", "-", term.name.lower()).strip("-")
        return {
            "tid": [{"value": term.tid}],
            "uuid": [{"value": _uuid("term", term.tid)}],
            "revision_id": [{"value": term.tid}],
            "langcode": [{"value": "en"}],
            "vid": [
                {
                    "target_id": "collections",
                    "target_type": "taxonomy_vocabulary",
                    "target_uuid": _uuid("vocabulary"),
                }
            ],
            "revision_created": [_date(term.changed)],
            "revision_user": [],
            "revision_log_message": [],
            "status": [{"value": True}],
            "name": [{"value": term.name}],
            "description": [{"value": None, "format": None}],
            "weight": [{"value": 0}],
            "parent": [{"target_id": None}],
            "changed": [_date(term.changed)],
            "default_langcode": [{"value": True}],
            "revision_translation_affected": [{"value": True}],
            "path": [{"alias": f"/collections/{slug}", "pid": term.tid, "langcode": "en"}],
            "url": [{"uri": term.doi, "title": "", "options": []}] if term.doi else [],
        }

    def _listing(self, argument: str, page_text: str) -> list[dict[str, Any]]:
        try:
            page = max(0, int(page_text))
        except ValueError:  # Drupal's pager reads anything else as the first page
            page = 0
        with self._lock:
            terms = {c.tid: c for c in self.catalogue.collections}
            if argument:
                cleaned = re.sub(r"[^a-z0-9]+", "-", argument.lower()).strip("-")
                chosen = [
                    c
                    for c in terms.values()
                    if str(c.tid) == argument
                    or re.sub(r"[^a-z0-9]+", "-", c.name.lower()).strip("-") == cleaned
                ]
                names = {c.name for c in chosen}
            else:  # no argument: the view's default "ignore" lists every slide
                names = {c.name for c in terms.values()}
            by_name = {c.name: c for c in terms.values()}
            rows = sorted(
                (s for s in self.catalogue.slides if s.collection in names),
                key=lambda s: (
                    by_name[s.collection].tid,
                    s.study.lower(),
                    s.subject.lower(),
                    s.imageid.lower(),
                    s.nid,
                ),
            )[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        return [self._node(s, by_name[s.collection]) for s in rows]

    def _node(self, s: Slide, term: CollectionTerm) -> dict[str, Any]:
        user = {"target_id": 1, "target_type": "user", "target_uuid": _uuid("user", 1), "url": "/user/1"}
        md5 = (
            [{"value": hashlib.md5(self.file_bytes(s), usedforsecurity=False).hexdigest()}]
            if self.md5
            else []
        )
        return {
            "nid": [{"value": s.nid}],
            "uuid": [{"value": _uuid("node", s.nid)}],
            "vid": [{"value": s.nid * 3 + s.fid % 3}],
            "langcode": [{"value": "en"}],
            "type": [{"target_id": "wsi", "target_type": "node_type", "target_uuid": _uuid("type", "wsi")}],
            "revision_timestamp": [_date(s.changed)],
            "revision_uid": [user],
            "revision_log": [],
            "status": [{"value": True}],
            "uid": [user],
            "title": [{"value": s.imageid}],
            "created": [_date(s.created)],
            "changed": [_date(s.changed)],
            "promote": [{"value": False}],
            "sticky": [{"value": False}],
            "default_langcode": [{"value": True}],
            "revision_translation_affected": [{"value": True}],
            "path": [{"alias": None, "pid": None, "langcode": "en"}],
            "acquisitiondatetime": [],
            "clinicaltrialsubjectid": [{"value": s.subject}],
            "field_bulk_upload": [],
            "field_collection": [
                {
                    "target_id": term.tid,
                    "target_type": "taxonomy_term",
                    "target_uuid": _uuid("term", term.tid),
                    "url": f"/taxonomy/term/{term.tid}",
                }
            ],
            "field_iip_path": [{"value": f"/data/images/{s.folder}/{s.file_name}"}],
            "field_utarget": [],
            "field_wsiimage": [
                {
                    "target_id": s.fid,
                    "display": True,
                    "description": "",
                    "target_type": "file",
                    "target_uuid": _uuid("file", s.fid),
                    "url": self.file_url(s),
                }
            ],
            "imagedvolumeheight": [{"value": float(s.height)}],
            "imagedvolumewidth": [{"value": float(s.width)}],
            "imageid": [{"value": s.imageid}],
            "lossyimagecompression": [],
            "lossyimagecompressionmethod": [],
            "lossyimagecompressionratio": [],
            "manufacturer": [{"value": s.manufacturer}],
            "md5": md5,
            "patientid": [],
            "referencepixelphysicalvaluex": [{"value": s.mpp}] if s.mpp else [],
            "referencepixelphysicalvaluey": [{"value": s.mpp}] if s.mpp else [],
            "studyid": [{"value": s.study}] if s.study else [],
        }

    # -- files ---------------------------------------------------------------------------------
    def _file(self, request: BaseHTTPRequestHandler, path: str, *, head: bool) -> None:
        with self._lock:
            slide = next((s for s in self.catalogue.slides if unquote(s.path) == path), None)
            mode = None
            if slide is not None and not head:
                queue = self._corrupt.get(slide.nid)
                mode = queue.pop(0) if queue else None
        if slide is None:
            body = _html("Page not found", "<p>The requested page could not be found.</p>")
            return self._send(request, 404, "text/html; charset=UTF-8", body, head=head)
        data = self.file_bytes(slide)
        if mode == "truncate":
            data = data[: len(data) // 2]
        elif mode == "flip":
            cut = min(4096, len(data))
            data = bytes(b ^ 0xFF for b in data[:cut]) + data[cut:]
        kind = (
            "image/tiff"
            if slide.file_name.lower().endswith((".tif", ".tiff"))
            else "application/octet-stream"
        )
        headers = {
            "Accept-Ranges": "bytes",
            "Cache-Control": "private",
            "Last-Modified": slide.changed.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        wanted = request.headers.get("Range")
        if wanted:
            with self._lock:
                self.ranged[slide.nid] += not head
            match = _RANGE.match(wanted.strip())
            size = len(data)
            if match is None or (not match.group(1) and not match.group(2)):
                return self._send(request, 416, kind, b"", {"Content-Range": f"bytes */{size}"}, head=head)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # the last N bytes
                start, end = max(0, size - int(match.group(2))), size - 1
            if start >= size or start > end:
                return self._send(request, 416, kind, b"", {"Content-Range": f"bytes */{size}"}, head=head)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return self._send(request, 206, kind, data[start : end + 1], headers, head=head)
        self._send(request, 200, kind, data, headers, head=head)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a TCIA PathDB emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--collections", default="tcga_luad", help="IDC collection ids, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--md5", action="store_true", help="fill each node's md5 field")
    args = parser.parse_args()
    catalogue = catalogue_from_idc(args.collections.split(","), seed=args.seed)
    emulator = PathDbEmulator(catalogue, port=args.port, md5=args.md5)
    emulator.serve_until_interrupted(
        f"PathDB emulator at {emulator.url} ({len(catalogue.slides)} slides in "
        f"{', '.join(c.name for c in catalogue.collections)})"
    )


if __name__ == "__main__":
    main()
