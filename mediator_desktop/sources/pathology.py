"""Digital pathology from TCIA's PathDB (caMicroscope's Drupal catalogue of whole-slide images).

PathDB is read through the two JSON views ``tcia_utils.pathdb`` uses (PathDB's own Drupal
configuration has them): ``collections?_format=json`` (every collection term at once, each field an
array of ``{"value": ...}`` items: ``tid``, ``name``, ``changed``) and
``listofimages/{tid}?_format=json&page=N`` (whole slide nodes, 100 a page from page 0 until an
empty array: ``nid``, ``imageid``, ``clinicaltrialsubjectid``, ``studyid``,
``field_collection[0].target_id``, ``field_wsiimage[0].url`` and ``.target_id`` (the file),
``imagedvolumewidth``/``height``, ``referencepixelphysicalvaluex``/``y``, ``created``, ``changed``).
Anonymous access; no token.

Levels: collection > subject > slide. A slide's key is its ``imageid``; when two slides of a subject
share one, the oldest node keeps it and the others become ``imageid~nid`` (deterministic, and stable
when more copies arrive). ``studyid`` is no level: at TCIA it holds the collection's name (tcia_utils
reads it as such), so it is shown in a slide's details and given to folder layouts as ``study``.

A leaf is one slide file. Its fingerprint: ``released`` = the node's ``changed`` time (UTC),
``version`` = ``<nid>/<file id>`` (a replaced file is a new file entity, hence a new id), and
``checksum`` = ``md5:<hex>`` only where the node's ``md5`` field is filled. PathDB's schema has that
field but tcia_utils never reads it and TCIA's listing is not known to fill it; the listing gives no
file size either. So, without an MD5, a download is checked by its size (one HEAD request per slide
when it is planned, never per slide when resolving) and by its structure: a TIFF-based slide (.svs,
.tif...) must be a TIFF whose every tile or strip lies inside the file; wrong bytes inside the image
data cannot be seen without a checksum. A slide replaced since the set was resolved is not
downloaded (PathDB serves only its current file): the plan fails and says to check the set.

Update tracking (``track``): PathDB has no "changed since" query, so every collection the set touches
is listed again (one request per 100 slides); new, replaced, edited and removed slides are told
apart by the node's ``changed`` time and file id, and a collection whose own ``changed`` moved is
named in the notes. The result equals a fresh ``resolve``.

Joins (the Integrator): the subject level holds patients (``clinicaltrialsubjectid``, e.g.
``TCGA-05-4244``, as TCIA's and IDC's PatientID); ``join_patients`` and ``data_kinds`` read the
collection listings (cached for ``CACHE_SECONDS``).

Errors: an unknown collection is ``NotInPathDb`` (a ``SourceError`` with code ``not_found``);
HTML where JSON belongs, 4xx/5xx (429 and 5xx retried with backoff by the shared session) and
garbage are ``SourceError``s naming what was asked; a host that cannot be reached at all is
``ArchiveUnreachable``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import struct
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from mediator_desktop.core.errors import (
    EXIT_NOT_FOUND,
    ArchiveUnreachable,
    IntegrityError,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.manifest import Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
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
    whole_number,
)
from mediator_desktop.sources import http
from mediator_desktop.sources.transport import unreachable

log = logging.getLogger(__name__)

DEFAULT_URL = "https://pathdb.cancerimagingarchive.net/"
#: Items per page of PathDB's ``listofimages`` REST export (its pager).
PAGE_SIZE = 100
#: Pages of one collection at most (a server that never ends its pages is refused).
MAX_PAGES = 10_000
#: How long a collection's listing serves browsing, joins and download plans.
CACHE_SECONDS = 30.0
#: Subject key of slides whose node names no subject.
NO_SUBJECT = "(no subject)"
#: File name endings of TIFF-based slide formats, whose structure a download is checked against.
TIFF_ENDINGS = (".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".qptiff")

KIND = SourceKind(
    "pathology",
    "Pathology (TCIA PathDB / caMicroscope)",
    "Whole-slide images of TCIA's pathology collections, listed by PathDB (caMicroscope); "
    "each slide downloads as its original file (.svs, .tif...).",
    options=(
        SourceOption(
            "base_url",
            "PathDB address",
            "The PathDB site; leave as is for TCIA's.",
            kind="url",
            default=DEFAULT_URL,
        ),
        SourceOption(
            "collections",
            "Collections",
            "Only these collections, comma-separated (e.g. TCGA-LUAD, CPTAC-LUAD); empty: all of them.",
            default="",
        ),
        SourceOption(
            "connections",
            "Connections",
            "Slides downloaded at once from PathDB.",
            kind="int",
            default=4,
        ),
    ),
)


class NotInPathDb(SourceError, LookupError):
    """A collection, or a subject of one, that PathDB does not list (``not_found``, HTTP 404)."""

    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


@dataclass(frozen=True, slots=True)
class PathDbCollection:
    """A term of PathDB's ``collections`` vocabulary."""

    tid: int
    name: str
    changed: str  # ISO 8601, UTC, as the fingerprints hold times


@dataclass(frozen=True, slots=True)
class PathDbSlide:
    """One slide node of a collection's listing, with its key below the subject."""

    nid: int
    fid: int | None
    collection: str
    subject: str
    key: str
    imageid: str
    study: str
    url: str
    file_name: str
    width: int | None
    height: int | None
    mpp_x: float | None
    mpp_y: float | None
    created: str
    changed: str
    md5: str | None

    @property
    def path(self) -> tuple[str, str, str]:
        return (self.collection, self.subject, self.key)

    @property
    def version(self) -> str:
        return f"{self.nid}/{self.fid}" if self.fid is not None else str(self.nid)

    @property
    def checksum(self) -> str | None:
        return f"md5:{self.md5}" if self.md5 else None


def _first(item: Mapping[str, Any], name: str, part: str = "value") -> Any:
    """``item[name][0][part]`` of a Drupal-serialized entity, None where any step is missing."""
    values = item.get(name)
    if not isinstance(values, list) or not values or not isinstance(values[0], dict):
        return None
    return values[0].get(part)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def _utc(value: Any) -> str:
    """A Drupal date (``2023-05-01T12:00:00+00:00``) as UTC ``2023-05-01T12:00:00Z``; other text as is."""
    text = _text(value)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(iso: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _md5(value: Any) -> str | None:
    text = _text(value).lower()
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


def _sample(item: Any) -> str:
    return repr(item)[:160]


class PathologySource:
    """TCIA's PathDB as a ``DataSource`` (with ``Tracking``, ``Joining`` and ``Describing``). Thread-safe."""

    hierarchy: Hierarchy = Hierarchy(("collection", "subject", "slide"))
    filterable: tuple[str, ...] = ()
    #: The Integrator's patient level: a subject is a patient (TCIA's PatientID).
    patient_level: str | None = "subject"

    def __init__(
        self,
        source_id: str = "pathology",
        base_url: str = DEFAULT_URL,
        *,
        collections: Iterable[str] = (),
        title: str = "TCIA pathology (PathDB)",
        connections: int = 4,
        backoff: float = 0.5,
        timeout: tuple[float, float] = http.TIMEOUT,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.source_id = source_id
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.title = title
        self.only = tuple(c.strip() for c in collections if c.strip())
        self.connections = max(1, int(connections))
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._session = http.session(backoff=backoff)
        self._lock = threading.Lock()
        self._listings: dict[int, tuple[float, str, list[PathDbSlide]]] = {}
        self._listing_locks: dict[int, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"<PathologySource {self.source_id} at {self.base_url}>"

    def close(self) -> None:
        self._session.close()

    # -- requests ------------------------------------------------------------------------------
    def _get(
        self,
        url: str,
        what: str,
        *,
        head: bool = False,
        params: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """GET (or HEAD) ``url``; every failure becomes an error that names PathDB and ``what``
        (answers with a status in ``allow`` are returned as they are)."""
        host = urlsplit(self.base_url).netloc
        try:
            call = self._session.head if head else self._session.get
            response = call(url, params=params, timeout=self.timeout, allow_redirects=True)
        except requests.exceptions.RetryError:
            raise SourceError(f"PathDB kept failing for {what}; try later") from None
        except requests.exceptions.ConnectionError as exc:
            gone = unreachable(exc)
            if gone is not None:
                raise ArchiveUnreachable(
                    f"PathDB ({host}) cannot be reached for {what}: {gone.reason}; check the address "
                    f"{self.base_url}, the network, a proxy or VPN",
                    host=gone.host or host,
                    reason=gone.reason,
                ) from None
            raise SourceError(
                f"PathDB ({host}) dropped the connection for {what} ({exc.__class__.__name__}); try later"
            ) from None
        except requests.exceptions.Timeout:
            raise SourceError(f"PathDB did not answer in time for {what}; try later") from None
        status = response.status_code
        if status in allow:
            return response
        if status in (401, 403):
            raise SourceError(f"PathDB refused access to {what} ({status}); the collection may not be public")
        if status == 429 or status >= 500:
            raise SourceError(f"PathDB answered {status} for {what} after retries; try later")
        if status >= 400:
            body = "" if head else f": {response.text[:160]!r}"
            raise SourceError(f"PathDB answered {status} for {what}{body}")
        return response

    def _json(self, url: str, what: str, **params: str) -> list[dict[str, Any]]:
        """A JSON array of objects from ``url`` (``_format=json`` added)."""
        response = self._get(url, what, params={"_format": "json", **params})
        kind = response.headers.get("Content-Type", "")
        if "html" in kind.lower() or response.content.lstrip()[:1] == b"<":
            raise SourceError(
                f"PathDB answered {what} with a web page instead of JSON ({kind or 'no type'}: "
                f"{response.text[:80]!r}); the site may be in maintenance, try later"
            )
        data = http.json_body(response, "PathDB", what)
        if isinstance(data, dict) and "message" in data:
            raise SourceError(f"PathDB refused {what}: {str(data['message'])[:160]}")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise SourceError(
                f"PathDB answered {what} with JSON that is not a list of items: {_sample(data)}"
            )
        return data

    # -- collections and their slides ----------------------------------------------------------
    def collections(self) -> dict[str, PathDbCollection]:
        """The collections PathDB lists (only those of the ``collections`` option, when given), by name."""
        out: dict[str, PathDbCollection] = {}
        for item in self._json(self.base_url + "collections", "the collections"):
            tid, name = _int(_first(item, "tid")), _text(_first(item, "name"))
            if tid is None or not name:
                raise SourceError(
                    f"PathDB answered the collections with an item that is not one: {_sample(item)}"
                )
            out[name] = PathDbCollection(tid, name, _utc(_first(item, "changed")))
        if self.only:
            wanted = {name.lower() for name in self.only}
            out = {name: c for name, c in out.items() if name.lower() in wanted}
        return out

    def _collection(self, name: str, known: Mapping[str, PathDbCollection] | None = None) -> PathDbCollection:
        known = self.collections() if known is None else known
        found = known.get(name)
        if found is None:
            raise NotInPathDb(
                f"PathDB has no collection {name!r}"
                + (" among the ones this archive is limited to" if self.only else "")
                + f"; it has {', '.join(sorted(known)[:8]) or 'none'}{'...' if len(known) > 8 else ''}"
            )
        return found

    def _list(self, collection: PathDbCollection) -> list[PathDbSlide]:
        """Every slide of ``collection``, paged from 0 to the empty page, with keys."""
        items: dict[int, dict[str, Any]] = {}
        for page in range(MAX_PAGES):
            what = f"page {page} of the slides of {collection.name}"
            rows = self._json(f"{self.base_url}listofimages/{collection.tid}", what, page=str(page))
            if not rows:
                break
            fresh = 0
            for item in rows:
                nid = _int(_first(item, "nid"))
                if nid is None:
                    raise SourceError(
                        f"PathDB answered {what} with an item that is not a slide: {_sample(item)}"
                    )
                fresh += nid not in items
                items[nid] = item
            if not fresh:  # a server that repeats its last page instead of ending
                raise SourceError(
                    f"PathDB repeated the slides of {collection.name} at page {page}; try later"
                )
        else:
            raise SourceError(f"PathDB gave more than {MAX_PAGES} pages of slides of {collection.name}")
        return _keyed(collection, items.values())

    def slides(self, name: str, *, fresh: bool = False) -> list[PathDbSlide]:
        """The slides of collection ``name``: listed again when ``fresh`` or when the cached listing
        is older than ``cache_seconds``."""
        return self._slides(self._collection(name), fresh=fresh)

    def _slides(self, collection: PathDbCollection, *, fresh: bool = False) -> list[PathDbSlide]:
        with self._lock:
            lock = self._listing_locks.setdefault(collection.tid, threading.Lock())
        asked = time.monotonic()
        with lock:  # one listing at a time per collection: threads planning downloads share it
            with self._lock:
                cached = self._listings.get(collection.tid)
            if cached is not None and cached[1] == collection.name:
                taken, _, slides = cached
                if (not fresh and asked - taken < self.cache_seconds) or (fresh and taken >= asked):
                    return slides
            slides = self._list(collection)
            with self._lock:
                self._listings[collection.tid] = (time.monotonic(), collection.name, slides)
            return slides

    def _many(self, collections: list[PathDbCollection], *, fresh: bool) -> list[list[PathDbSlide]]:
        if len(collections) <= 1:
            return [self._slides(c, fresh=fresh) for c in collections]
        with ThreadPoolExecutor(min(self.connections, len(collections))) as pool:
            return list(pool.map(functools.partial(self._slides, fresh=fresh), collections))

    # -- browsing ------------------------------------------------------------------------------
    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        """Collections, a collection's subjects, or a subject's slides, sorted by key."""
        self._check_filters(filters)
        if len(path) >= len(self.hierarchy.levels):
            raise ValidationError("a slide is a leaf: it has no children to browse")
        if not path:
            known = self.collections()
            items = [
                BrowseItem(
                    c.name,
                    "collection",
                    c.name,
                    details=(("PathDB id", str(c.tid)), ("updated", c.changed[:10])),
                )
                for c in sorted(known.values(), key=lambda c: c.name)
            ]
            return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))
        slides = self.slides(path[0])
        if len(path) == 1:
            subjects: dict[str, list[PathDbSlide]] = {}
            for slide in slides:
                subjects.setdefault(slide.subject, []).append(slide)
            items = [
                BrowseItem(
                    subject,
                    "subject",
                    f"{subject} ({len(members)} slide{'s' if len(members) != 1 else ''})",
                    len(members),
                    details=(("slides", str(len(members))), ("study", _studies(members))),
                )
                for subject, members in sorted(subjects.items())
            ]
        else:
            chosen = [s for s in slides if s.subject == path[1]]
            if not chosen:
                raise NotInPathDb(f"PathDB lists no slides of subject {path[1]!r} in {path[0]}")
            items = [
                BrowseItem(s.key, "slide", _label(s), 1, details=self._details(s))
                for s in sorted(chosen, key=lambda s: s.key)
            ]
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def _details(self, slide: PathDbSlide) -> tuple[tuple[str, str], ...]:
        """What a pathologist reads about a slide."""
        details = [("image", slide.imageid)]
        if slide.width and slide.height:
            details.append(("image size", f"{slide.width:,} × {slide.height:,} px"))
        if slide.mpp_x:
            y = slide.mpp_y or slide.mpp_x
            details.append(("pixel spacing", f"{slide.mpp_x:.4g} × {y:.4g} µm/px"))
            if slide.width and slide.height:
                details.append(
                    (
                        "tissue area",
                        f"{slide.width * slide.mpp_x / 1000:.1f} × {slide.height * y / 1000:.1f} mm",
                    )
                )
        details += [
            ("study", slide.study or "-"),
            ("file", slide.file_name),
            ("PathDB node", str(slide.nid)),
            ("changed", slide.changed),
            (
                "viewer",
                f"{self.base_url}caMicroscope/apps/viewer/viewer.html?slideId={slide.nid}&mode=pathdb",
            ),
        ]
        if slide.md5:
            details.append(("MD5", slide.md5))
        return tuple(details)

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        raise ValidationError("PathDB's slides have no metadata to filter on")

    def check(self) -> str:
        """One request for the collections: PathDB answers JSON, and the ``collections`` option names
        only collections it has.

        Raises:
            SourceError: PathDB cannot be reached or answered garbage; ``NotInPathDb`` for a
                collection of the option it does not list.
        """
        known = self.collections()
        if self.only:
            lower = {name.lower() for name in known}
            absent = [name for name in self.only if name.lower() not in lower]
            if absent:
                raise NotInPathDb(f"PathDB lists no collection {', '.join(map(repr, absent))}")
        return _plural(len(known), "collection")

    def pointer(self, *path: str) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path))

    def _check_filters(self, filters: Filters) -> None:
        if filters:
            raise ValidationError(
                f"PathDB's slides have no metadata to filter on; drop the filters "
                f"{', '.join(name for name, _ in filters)}"
            )

    # -- resolution ----------------------------------------------------------------------------
    def _rules(self, selection: Selection) -> tuple[list[Rule], list[tuple[str, ...]]]:
        """This source's rules (checked) and the included paths not inside another."""
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
            if rule.pointer.filters:
                raise ValidationError(
                    f"pointer {rule.pointer} has filters, but PathDB's slides have no metadata to filter on"
                )
        scopes = sorted({r.pointer.path for r in rules if r.include})
        return rules, [s for s in scopes if not any(o != s and s[: len(o)] == o for o in scopes)]

    def _scope_collections(
        self, scopes: list[tuple[str, ...]], known: Mapping[str, PathDbCollection], *, strict: bool
    ) -> list[PathDbCollection]:
        if () in scopes:
            return sorted(known.values(), key=lambda c: c.name)
        names = sorted({s[0] for s in scopes})
        if strict:
            return [self._collection(name, known) for name in names]
        return [known[name] for name in names if name in known]

    def _manifest(self, rules: list[Rule], listings: Iterable[list[PathDbSlide]]) -> Manifest:
        builder = ManifestBuilder()
        for slides in listings:
            for slide in slides:
                if decide(rules, self.source_id, slide.path, {}):
                    builder.add(
                        self.source_id,
                        slide.path,
                        checksum=slide.checksum,
                        version=slide.version,
                        released=slide.changed or None,
                    )
        return builder.build()

    def resolve(self, selection: Selection) -> Manifest:
        """The slides ``selection`` selects: each collection it touches listed in full (fresh),
        exclusions applied.

        Raises:
            NotInPathDb: an included pointer names a collection PathDB does not list.
            SourceError: PathDB failed or answered garbage.
        """
        rules, scopes = self._rules(selection)
        if not scopes:
            return ManifestBuilder().build()
        chosen = self._scope_collections(scopes, self.collections(), strict=True)
        return self._manifest(rules, self._many(chosen, fresh=True))

    # -- update tracking -----------------------------------------------------------------------
    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects now (equal to ``resolve``), with notes on what changed since
        ``base``: new, replaced (a new file) and edited (metadata only) slides, removed ones, and
        collections PathDB says it updated since ``since``. PathDB has no "changed since" query:
        every collection the set touches is listed again. A collection PathDB no longer lists
        counts as emptied (its slides are removed), with a note, rather than failing the check.

        Raises:
            SourceError: PathDB is down or answered garbage (nothing partial is returned).
        """
        state = f"PathDB as of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        rules, scopes = self._rules(selection)
        known = self.collections()
        chosen = self._scope_collections(scopes, known, strict=False) if scopes else []
        manifest = self._manifest(rules, self._many(chosen, fresh=True))
        notes: list[str] = []
        gone = sorted({s[0] for s in scopes if s and s[0] not in known})
        if gone:
            notes.append(
                f"PathDB no longer lists {_names(gone)}: {'its' if len(gone) == 1 else 'their'} slides "
                "count as removed"
            )
        if since is not None:
            updated = [c.name for c in chosen if (_timestamp(c.changed) or 0) > since]
            if updated:
                notes.append(f"PathDB marks {_names(updated)} as updated since the last check")
        notes += _changes(base, manifest, self.source_id)
        return Tracked(manifest, state, tuple(notes))

    # -- joins (the Integrator) ----------------------------------------------------------------
    def _scoped(self, scope: Pointer) -> list[PathDbSlide]:
        """The slides below ``scope`` (this source's root or a collection), from cached listings."""
        if scope.source_id != self.source_id or scope.depth > 1:
            raise ValidationError(
                f"join target {scope} must be this PathDB archive ({self.source_id}) or one of its "
                "collections, above its subjects"
            )
        self._check_filters(scope.filters)
        known = self.collections()
        chosen = self._scope_collections([scope.path], known, strict=True)
        return [slide for slides in self._many(chosen, fresh=False) for slide in slides]

    def join_patients(self, scope: Pointer, patients: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
        """For each of ``patients`` that has slides below ``scope`` (the archive or a collection),
        its (collection, subject) paths; the others are left out. Costs the listings of the
        collections in scope (cached), never a request per patient."""
        wanted = set(patients)
        found: dict[str, set[tuple[str, ...]]] = {}
        for slide in self._scoped(scope):
            if slide.subject in wanted:
                found.setdefault(slide.subject, set()).add(slide.path[:2])
        return {patient: sorted(paths) for patient, paths in sorted(found.items())}

    def data_kinds(self, scope: Pointer, patients: Collection[str]) -> list[DataKind]:
        """One kind, ``slide`` (pathology): the ``patients`` with slides below ``scope`` and how
        many slides they have (PathDB gives no sizes)."""
        wanted = set(patients)
        have = [slide for slide in self._scoped(scope) if slide.subject in wanted]
        if not have:
            return []
        return [DataKind("slide", "pathology", None, frozenset(s.subject for s in have), len(have), None)]

    # -- fetching ------------------------------------------------------------------------------
    def _find(self, leaf: Leaf) -> PathDbSlide:
        if len(leaf.path) != len(self.hierarchy.levels):
            raise SourceError(f"{'/'.join(leaf.path)} is not a slide of PathDB: resolve the set again")
        collection, subject, key = leaf.path
        try:
            slides = self.slides(collection)
        except NotInPathDb:
            raise SourceError(
                f"PathDB no longer lists collection {collection}; check the set for updates"
            ) from None
        for slide in slides:
            if slide.subject == subject and slide.key == key:
                return slide
        raise SourceError(
            f"PathDB no longer lists slide {key} of {subject} in {collection}; check the set for updates"
        )

    def plan(self, leaf: Leaf) -> LeafPlan:
        """One slide file: its URL from the (cached) listing, its size from one HEAD request; the
        file is checked by size, by MD5 where PathDB has one, and (TIFF-based formats) by structure.

        Raises:
            IntegrityError: the slide was replaced or edited since the set was resolved.
            SourceError: PathDB no longer lists it, or failed.
        """
        slide = self._find(leaf)
        fingerprint = leaf.fingerprint
        if (fingerprint.version, fingerprint.released) != (slide.version, slide.changed or None):
            what = "replaced (a new file)" if fingerprint.version != slide.version else "changed"
            raise IntegrityError(
                f"slide {slide.key} of {slide.subject} was {what} in PathDB on {slide.changed} after the "
                "set was resolved; PathDB serves only its current file: check the set for updates"
            )
        head = self._get(slide.url, f"slide {slide.key}", head=True, allow=(405, 501))
        # A server without HEAD gives no size: the download is then checked by its structure alone.
        headers: Mapping[str, str] = head.headers if head.status_code not in (405, 501) else {}
        if "html" in headers.get("Content-Type", "").lower():
            raise SourceError(
                f"PathDB answered slide {slide.key} with a web page instead of the file; the site may "
                "be in maintenance or ask for a login, try later"
            )
        size = _int(headers.get("Content-Length"))
        finish = None
        if slide.file_name.lower().endswith(TIFF_ENDINGS):
            finish = functools.partial(_check_slide, name=f"slide {slide.key} ({slide.file_name})")
        fields = {
            "collection": slide.collection,
            "subject": slide.subject,
            "patient": slide.subject,
            "study": slide.study or slide.collection,
            "modality": "SM",
            "series": slide.key,
        }
        file = RemoteFile(slide.url, slide.file_name, size or None, slide.md5)
        return LeafPlan((file,), fields, finish, count=1)


def _keyed(collection: PathDbCollection, items: Iterable[Mapping[str, Any]]) -> list[PathDbSlide]:
    """Slides of a listing with their keys; repeated image ids of a subject disambiguated."""
    parsed = []
    for item in items:
        nid = _int(_first(item, "nid"))
        url = _text(_first(item, "field_wsiimage", "url"))
        if nid is None:
            continue
        if not url:
            log.warning("PathDB node %s of %s has no slide file; skipped", nid, collection.name)
            continue
        name = unquote(PurePosixPath(urlsplit(url).path).name) or f"{nid}.svs"
        imageid = _text(_first(item, "imageid")) or PurePosixPath(name).stem or f"node-{nid}"
        parsed.append(
            (
                nid,
                _int(_first(item, "field_wsiimage", "target_id")),
                _text(_first(item, "clinicaltrialsubjectid")) or NO_SUBJECT,
                imageid,
                item,
                url,
                name,
            )
        )
    parsed.sort(key=lambda p: (p[2], p[3], p[0]))
    out = []
    seen: set[tuple[str, str]] = set()
    for nid, fid, subject, imageid, item, url, name in parsed:
        key = imageid if (subject, imageid) not in seen else f"{imageid}~{nid}"
        seen.add((subject, imageid))
        out.append(
            PathDbSlide(
                nid,
                fid,
                collection.name,
                subject,
                key,
                imageid,
                _text(_first(item, "studyid")),
                url,
                name,
                _int(_first(item, "imagedvolumewidth")),
                _int(_first(item, "imagedvolumeheight")),
                _float(_first(item, "referencepixelphysicalvaluex")),
                _float(_first(item, "referencepixelphysicalvaluey")),
                _utc(_first(item, "created")),
                _utc(_first(item, "changed")),
                _md5(_first(item, "md5")),
            )
        )
    return out


def _label(slide: PathDbSlide) -> str:
    parts = [slide.imageid if slide.key == slide.imageid else f"{slide.imageid} (node {slide.nid})"]
    if slide.width and slide.height:
        parts.append(f"{slide.width:,} × {slide.height:,} px")
    if slide.mpp_x:
        parts.append(f"{slide.mpp_x:.4g} µm/px")
    return ", ".join(parts)


def _studies(slides: list[PathDbSlide]) -> str:
    return ", ".join(sorted({s.study for s in slides if s.study})) or "-"


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


def _changes(base: Manifest, now: Manifest, source_id: str) -> list[str]:
    """For people: per collection, the slides new, replaced, edited and removed since ``base``."""
    before = {leaf.path: leaf.fingerprint for leaf in base.under(source_id)}
    after = {leaf.path: leaf.fingerprint for leaf in now.under(source_id)}
    counts: dict[str, list[int]] = {}
    for path in before.keys() | after.keys():
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        tally = counts.setdefault(path[0], [0, 0, 0, 0])
        if old is None:
            tally[0] += 1
        elif new is None:
            tally[3] += 1
        elif old.version != new.version or old.checksum != new.checksum:
            tally[1] += 1
        else:
            tally[2] += 1
    notes = []
    for collection, (added, replaced, edited, removed) in sorted(counts.items()):
        parts = [
            text
            for count, text in (
                (added, f"+{_plural(added, 'slide')}"),
                (replaced, f"{replaced} replaced (new file)"),
                (edited, f"{edited} edited (same file)"),
                (removed, f"{removed} removed"),
            )
            if count
        ]
        notes.append(f"{collection}: {', '.join(parts)}")
    return notes


# -- checking a slide file --------------------------------------------------------------------------
_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8: what offsets use
_OFFSETS = {273: 279, 324: 325}  # StripOffsets -> StripByteCounts, TileOffsets -> TileByteCounts


def _check_slide(stage: Path, downloaded: list[Path], *, name: str) -> list[Path]:
    """A slide's ``finish`` step: its file must be a TIFF whose every strip or tile lies inside it."""
    problem = _tiff_problem(downloaded[0])
    if problem is not None:
        raise IntegrityError(f"PathDB sent a damaged {name}: {problem}; it was discarded, try again")
    return downloaded


def _tiff_problem(path: Path) -> str | None:
    """What is wrong with the TIFF at ``path`` (its header, IFD chain and data offsets), or None."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
        if head[:1] == b"<":
            return "it is a web page, not an image"
        if head[:2] not in (b"II", b"MM"):
            return "it is not a TIFF (wrong first bytes)"
        order = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(order + "H", head[2:4])[0]
        if magic == 42:
            big, offset = False, struct.unpack(order + "I", head[4:8])[0]
        elif magic == 43 and len(head) >= 16:
            big, offset = True, struct.unpack(order + "Q", head[8:16])[0]
        else:
            return "it is not a TIFF (wrong version)"
        if path.name.lower().endswith(".ndpi"):
            return None  # NDPI bends TIFF offsets past 4 GB: the header is all that can be checked
        seen: set[int] = set()
        count_size, entry_size, next_size = (8, 20, 8) if big else (2, 12, 4)
        while offset:
            if offset in seen or len(seen) > 4096:
                return "its directories loop"
            if offset + count_size > size:
                return f"a directory at byte {offset} lies past its end ({size} bytes)"
            seen.add(offset)
            f.seek(offset)
            (entries,) = struct.unpack(order + ("Q" if big else "H"), f.read(count_size))
            table = f.read(entries * entry_size + next_size)
            if len(table) < entries * entry_size + next_size:
                return f"the directory at byte {offset} is cut short"
            tags: dict[int, list[int]] = {}
            for i in range(entries):
                entry = table[i * entry_size : (i + 1) * entry_size]
                tag, kind = struct.unpack(order + "HH", entry[:4])
                if tag not in _OFFSETS and tag not in _OFFSETS.values():
                    continue
                if kind not in _TIFF_TYPES:
                    return f"tag {tag} has type {kind}, not an offset"
                code, width = _TIFF_TYPES[kind]
                count = struct.unpack(order + ("Q" if big else "I"), entry[4 : 12 if big else 8])[0]
                inline = entry[12:] if big else entry[8:]
                if count * width <= len(inline):
                    raw = inline[: count * width]
                else:
                    (where,) = struct.unpack(order + ("Q" if big else "I"), inline)
                    if where + count * width > size:
                        return f"the list of tag {tag} lies past its end"
                    f.seek(where)
                    raw = f.read(count * width)
                tags[tag] = list(struct.unpack(f"{order}{count}{code}", raw))
            for offsets_tag, counts_tag in _OFFSETS.items():
                starts, lengths = tags.get(offsets_tag), tags.get(counts_tag)
                if starts is None:
                    continue
                if lengths is None or len(lengths) != len(starts):
                    return f"its tiles or strips at byte {offset} have no sizes"
                for start, length in zip(starts, lengths, strict=True):
                    if start + length > size:
                        end = start + length
                        return f"it ends at byte {size}, before a tile or strip it lists ({start}-{end})"
            (offset,) = struct.unpack(order + ("Q" if big else "I"), table[entries * entry_size :])
    return None


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> PathologySource:
    """Registry factory. Options: ``base_url`` (default: TCIA's PathDB), ``collections`` (a comma
    list limiting the archive to those), ``connections``; PathDB takes no secret."""
    text = options.get("collections") or ""
    names = text.split(",") if isinstance(text, str) else [str(n) for n in text]
    connections = whole_number(options.get("connections"), 4, "connections")
    return PathologySource(
        source_id,
        str(options.get("base_url") or DEFAULT_URL),
        collections=names,
        connections=connections,
    )
