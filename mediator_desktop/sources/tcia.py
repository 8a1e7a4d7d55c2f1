"""The Cancer Imaging Archive through its NBIA REST API (v4; v1/v2 compatible).

Levels: collection > patient > study > series; a leaf is a series, fingerprinted by its size,
image count and release date (``DateReleased`` with ``MaxSubmissionTimestamp``). Quirks handled
as the NBIA server's code has them: an empty 200 means no rows, v4 dates are MM-DD-YYYY, v4
refuses unknown parameters, errors come as plain text. A bearer token is optional (legacy
restricted collections); it is passed in, never stored here.

Update tracking (``track``) asks what changed instead of resolving again: ``getUpdatedSeries``
once, ``NewPatientsInCollection`` per collection of the set, ``NewStudiesInPatientCollection``
where a set picks studies of a patient, then resolves only the patients (or studies) that changed.

A series downloads as TCIA's zip with MD5s (``plan``); its ``finish`` checks it before anything is
presented as complete: that it is a zip at all, its integrity, that no entry escapes the folder,
the MD5 of every image and the image count.

A series' preview (``preview``) is one image of it: ``getSOPInstanceUIDs``, then the middle one
by ``getSingleImage``, rendered by ``sources.thumbnail``.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import errno
import functools
import hashlib
import heapq
import io
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from mediator_desktop.core.errors import IntegrityError, NotFound, SourceError, ValidationError
from mediator_desktop.core.imports import ZIP_DAMAGE
from mediator_desktop.core.manifest import (
    TAB,
    US,
    Fingerprint,
    Leaf,
    Manifest,
    ManifestBuilder,
    encode_fingerprint,
    encode_key,
    escape_component,
    unescape_component,
)
from mediator_desktop.core.paths import safe_component
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    LazyFields,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
    Tracked,
)
from mediator_desktop.core.transfer import Checked
from mediator_desktop.sources import http

DEFAULT_URL = "https://nbia.cancerimagingarchive.net/nbia-api/services/v4/"
FILTERABLE = ("Modality", "BodyPartExamined")
#: A damaged zip (``core.imports.ZIP_DAMAGE``) or a field of its md5hashes.csv csv refuses.
_ZIP_OR_LIST_DAMAGE: tuple[type[Exception], ...] = (*ZIP_DAMAGE, csv.Error)
_LEVEL_PARAMS = ("Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")
_RELEASE_COLUMNS = ("DateReleased", "MaxSubmissionTimestamp", "TimeStamp")
#: Above this many changed patients in one collection a set holds whole, ``track`` lists the
#: collection once instead of each patient.
WHOLE_COLLECTION_AFTER = 50
#: What ``track`` cannot see, said with every incremental answer.
REMOVALS_NOTE = (
    "TCIA does not report deleted series: a removal shows only when another series of its patient "
    "changes; a full check (`mediator sets check --full`) finds every one"
)

KIND = SourceKind(
    "tcia",
    "The Cancer Imaging Archive",
    "TCIA's collections through its NBIA REST API; series download as zips checked against their MD5s.",
    options=(
        SourceOption(
            "base_url",
            "API address",
            "The NBIA REST API (v4, or v1/v2); leave as is for TCIA itself.",
            kind="url",
            default=DEFAULT_URL,
        ),
    ),
    secret="token",
    secret_help="Optional: a TCIA access token, needed only for restricted collections.",
)


def since_param(day: dt.date, base_url: str) -> tuple[str, str]:
    """The (name, value) of a "changed since" date, in the format of the API version called."""
    if "/v4/" in base_url:
        return "fromDate", day.strftime("%m-%d-%Y")
    return "fromDate", day.strftime("%d/%m/%Y")  # v1/v2 getUpdatedSeries: day first


def released_param(day: dt.date, base_url: str) -> tuple[str, str]:
    """The (name, value) that makes ``NewPatientsInCollection`` and ``NewStudiesInPatientCollection``
    answer about series released on ``day`` or later: v4 ``fromDate`` MM-DD-YYYY compared with
    ``>=``; v1/v2 ``Date`` yyyy/MM/dd compared with ``>`` (so the day before is sent)."""
    if "/v4/" in base_url:
        return "fromDate", day.strftime("%m-%d-%Y")
    return "Date", (day - dt.timedelta(days=1)).strftime("%Y/%m/%d")


class TciaSource:
    """NBIA REST API client as a ``DataSource``. Thread-safe."""

    hierarchy: Hierarchy = Hierarchy(("collection", "patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    #: NBIA builds each zip on the fly; a few at a time is polite and as fast.
    connections: int = 4
    #: A series arrives as a zip kept beside its unpacked images until placed: the engine counts
    #: that second copy when it checks free space.
    unpacks: bool = True

    def __init__(
        self,
        source_id: str = "tcia",
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        title: str = "The Cancer Imaging Archive",
        backoff: float = 0.5,
        timeout: tuple[float, float] = http.TIMEOUT,
    ) -> None:
        self.source_id = source_id
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.title = title
        self.timeout = timeout
        self._session = http.session(backoff=backoff)
        self._lock = threading.Lock()
        self._modalities: dict[tuple[str, ...], dict[str, str]] = {}
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    # -- requests ------------------------------------------------------------------------------
    def _rows(self, endpoint: str, what: str, **params: str) -> list[dict[str, Any]]:
        response = http.get(
            self._session,
            "TCIA",
            self.base_url + endpoint,
            what=what,
            timeout=self.timeout,
            params={k: v for k, v in params.items() if v},
        )
        rows = http.json_body(response, "TCIA", what)
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SourceError(f"TCIA answered {what} with JSON that is not a list of rows")
        return rows

    def _series_rows(self, path: tuple[str, ...], filters: Filters = ()) -> list[dict[str, Any]]:
        params = dict(zip(_LEVEL_PARAMS, path, strict=False))
        for name, values in filters:
            if len(values) == 1:  # the API takes one value; several are filtered here
                params[name] = values[0]
        what = f"the series of {'/'.join(path) or 'TCIA'}"
        rows = self._rows("getSeries", what, **params)
        if any(not r.get("SeriesInstanceUID") for r in rows):
            bad = next(r for r in rows if not r.get("SeriesInstanceUID"))
            raise SourceError(f"TCIA answered {what} with a row that is not a series: {_sample(bad)}")
        return [r for r in rows if self._keep(r, path, filters)]

    @staticmethod
    def _keep(row: dict[str, Any], path: tuple[str, ...], filters: Filters) -> bool:
        key = tuple(str(row.get(p) or "") for p in _LEVEL_PARAMS)
        if key[: len(path)] != path:
            return False
        return all(
            str(row.get(name) or "").upper() in {v.upper() for v in values} for name, values in filters
        )

    # -- browsing ------------------------------------------------------------------------------
    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        if len(path) >= len(_LEVEL_PARAMS):
            raise ValidationError("a series is a leaf: it has no children to browse")
        level = self.hierarchy.levels[len(path)]
        if not path and not filters:
            items = [BrowseItem(k, level, k) for k in self._collections()]
        else:
            rows = self._series_rows(path, filters)
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                groups.setdefault(str(row.get(_LEVEL_PARAMS[len(path)]) or ""), []).append(row)
            items = []
            for key in sorted(k for k in groups if k):
                members = groups[key]
                size = sum(int(r.get("FileSize") or 0) for r in members)
                label = (
                    key
                    if level != "series"
                    else f"{members[0].get('Modality') or '?'} series, {members[0].get('ImageCount')} images"
                )
                items.append(BrowseItem(key, level, label, len(members), size))
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def _collections(self) -> list[str]:
        return sorted(
            {
                str(r["Collection"])
                for r in self._rows("getCollectionValues", "the collections")
                if r.get("Collection")
            }
        )

    def check(self) -> str:
        """One request for the collections: the API answers, and the token (if any) is accepted.

        Raises:
            SourceError: TCIA cannot be reached, refused the token, or answered garbage.
        """
        return f"{len(self._collections()):,} collections"

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        endpoint = {"Modality": "getModalityValues", "BodyPartExamined": "getBodyPartValues"}.get(name)
        if endpoint is None:
            raise ValidationError(f"TCIA cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}")
        if len(path) > 1:
            return sorted({str(r[name]) for r in self._series_rows(path) if r.get(name)})
        rows = self._rows(endpoint, f"the {name} values", Collection=path[0] if path else "")
        return sorted({str(r[name]) for r in rows if r.get(name)})

    # -- resolution ----------------------------------------------------------------------------
    def _rules(self, selection: Selection) -> tuple[list[Rule], list[tuple[str, ...]]]:
        """This source's rules (validated) and the paths to list: the included ones not inside another."""
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        scopes = sorted({r.pointer.path for r in rules if r.include})
        # A scope inside another one is fetched with it.
        return rules, [s for s in scopes if not any(o != s and s[: len(o)] == o for o in scopes)]

    def resolve(self, selection: Selection) -> Manifest:
        rules, scopes = self._rules(selection)
        if () in scopes:
            scopes = [(c.key,) for c in self.browse(limit=10**6).items]
        builder = ManifestBuilder()
        upper = _upper_filters(rules)
        seen: set[str] = set()
        for scope in scopes:
            self._add_selected(builder, self._series_rows(scope), upper, seen)
        return builder.build()

    def _add_selected(
        self, builder: ManifestBuilder, rows: list[dict[str, Any]], upper: list[Rule], seen: set[str]
    ) -> None:
        """Adds the series of ``rows`` that the (upper-cased) rules select, once each, to ``builder``."""
        for row in rows:
            path = _path(row)
            if not all(path) or path[3] in seen:
                continue
            if not decide(upper, self.source_id, path, _metadata(row)):
                continue
            seen.add(path[3])
            size, count, released = _fingerprint(row)
            builder.add(self.source_id, path, size=size, count=count, released=released)

    # -- update tracking -----------------------------------------------------------------------
    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects in TCIA now, asking what changed since ``since``.

        With ``since`` (Unix time) it asks about the series released from the day before it on
        (TCIA's dates are days; the overlap only costs bytes: a series whose fingerprint equals the
        one in ``base`` is not a change): ``getUpdatedSeries`` once; ``NewPatientsInCollection``
        per collection the set touches (it also sees collections a token opens, which v4's
        ``getUpdatedSeries`` never lists); ``NewStudiesInPatientCollection`` for a patient only
        that one reports whose studies, not the whole patient, the set picks. Then it lists again
        only the patients (or studies) with a change under the set's rules (a collection at once
        when more than ``WHOLE_COLLECTION_AFTER`` of its patients changed) and splices them into
        ``base``; every other leaf comes from ``base`` as it is. Requests: 1 + collections +
        changed patients. Without ``since``, it resolves in full.

        Raises:
            SourceError: TCIA is down, or answered garbage, to any of the requests (nothing partial
                is returned).
        """
        state = f"TCIA as of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        if since is None:
            return Tracked(self.resolve(selection), state)
        rules, scopes = self._rules(selection)
        if not scopes:
            return Tracked(ManifestBuilder().build(), state)
        upper = _upper_filters(rules)
        start = dt.datetime.fromtimestamp(since, dt.UTC).date() - dt.timedelta(days=1)

        def inside(path: tuple[str, ...]) -> bool:  # the set may hold leaves below ``path``, all of them
            return any(path[: len(s)] == s for s in scopes)

        def touches(path: tuple[str, ...]) -> bool:  # the set holds some leaves below ``path``
            return inside(path) or any(s[: len(path)] == path for s in scopes)

        # 1. Series released (new or re-submitted) since the day before ``start``.
        patients: set[tuple[str, ...]] = set()
        listed: set[tuple[str, ...]] = set()
        day = start - dt.timedelta(days=1)
        name, value = since_param(day, self.base_url)
        what = f"the series updated since {day}"
        for row in self._rows("getUpdatedSeries", what, **{name: value}):
            if not row.get("SeriesInstanceUID"):
                raise SourceError(f"TCIA answered {what} with a row that is not a series: {_sample(row)}")
            path = _path(row)
            if not all(path):
                continue
            listed.add(path[:2])
            if not inside(path):
                continue
            old = _fingerprint_text(base, self.source_id, path)
            selected = decide(upper, self.source_id, path, _metadata(row))
            if (old is None and not selected) or (old is not None and selected and _same(old, row)):
                continue
            patients.add(path[:2])

        # 2. Patients with series released since ``start``, per collection; those step 1 did not
        # list (a collection only a token opens) are listed again, or their new studies.
        if () in scopes:
            collections = sorted(_collections_of(base, self.source_id) | {p[0] for p in listed})
        else:
            collections = sorted({s[0] for s in scopes})
        name, value = released_param(start, self.base_url)
        unexplained: set[tuple[str, ...]] = set()
        for collection in collections:
            what = f"the patients of {collection} with series released since {start}"
            for row in self._rows("NewPatientsInCollection", what, Collection=collection, **{name: value}):
                if not row.get("PatientId"):
                    raise SourceError(
                        f"TCIA answered {what} with a row that is not a patient: {_sample(row)}"
                    )
                patient = (collection, str(row["PatientId"]))
                if patient in listed or patient in patients or not touches(patient):
                    continue
                if inside(patient):
                    patients.add(patient)
                else:
                    unexplained.add(patient)
        studies: set[tuple[str, ...]] = set()
        for collection, patient_id in sorted(unexplained):
            what = f"the studies of {collection}/{patient_id} with series released since {start}"
            params = {"Collection": collection, "PatientID": patient_id, name: value}
            for row in self._rows("NewStudiesInPatientCollection", what, **params):
                if not row.get("StudyInstanceUID"):
                    raise SourceError(f"TCIA answered {what} with a row that is not a study: {_sample(row)}")
                study = (collection, patient_id, str(row["StudyInstanceUID"]))
                if touches(study):
                    studies.add(study)

        # 3. List those again and splice them into ``base``.
        units = _units(patients, studies, scopes)
        builder = ManifestBuilder()
        seen: set[str] = set()
        for unit in units:
            rows = self._series_rows(unit)
            if not rows and any(p[: len(unit)] == unit for p in listed):
                # It has just listed a series there: an empty answer is a hiccup, not a deletion.
                raise SourceError(
                    f"TCIA listed a series of {'/'.join(unit)} as updated but then gave no series "
                    "for it; try later"
                )
            self._add_selected(builder, rows, upper, seen)
        fresh = builder.build()
        manifest = Manifest.from_canonical_lines(
            list(heapq.merge(_without(base, self.source_id, units), fresh.lines())), check_grammar=False
        )
        return Tracked(manifest, state, (REMOVALS_NOTE,))

    def updated_since(self, day: dt.date) -> list[str]:
        """SeriesInstanceUIDs of series new or updated after ``day``."""
        name, value = since_param(day, self.base_url)
        return [
            str(r["SeriesInstanceUID"])
            for r in self._rows("getUpdatedSeries", f"the series updated since {day}", **{name: value})
            if r.get("SeriesInstanceUID")
        ]

    def pointer(self, *path: str, **filters: str) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path, **filters))

    # -- previews ------------------------------------------------------------------------------
    def _instances(self, series: str) -> list[str]:
        """The SOP Instance UIDs of a series, sorted by their numbers (NBIA lists them in no order;
        UIDs given in acquisition order often count up, so the middle one is near the middle)."""
        what = f"the images of series {series}"
        rows = self._rows("getSOPInstanceUIDs", what, SeriesInstanceUID=series)
        uids = {str(r["SOPInstanceUID"]) for r in rows if r.get("SOPInstanceUID")}
        if rows and not uids:
            raise SourceError(f"TCIA answered {what} with rows that are not images: {_sample(rows[0])}")
        return sorted(uids, key=_uid_order)

    def preview(self, path: tuple[str, ...]) -> bytes | None:
        """A thumbnail of a series from one of its images: ``getSOPInstanceUIDs`` lists them, the
        middle one comes by ``getSingleImage`` (two requests, one image) and is rendered by
        ``sources.thumbnail`` (PNG, windowed).

        Raises:
            NotFound: TCIA lists no image of the series any more (it was removed).
            SourceError: TCIA cannot be reached, would not send the image, or sent something that
                cannot be pictured (the reason).
        """
        from mediator_desktop.sources.thumbnail import render

        if len(path) != len(_LEVEL_PARAMS):
            return None
        series = path[-1]
        uids = self._instances(series)
        if not uids:
            raise NotFound(f"TCIA no longer holds series {series}")
        sop = uids[len(uids) // 2]
        what = f"image {sop} of series {series}"
        try:
            response = http.get(
                self._session,
                "TCIA",
                self.base_url + "getSingleImage",
                what=what,
                timeout=self.timeout,
                params={"SeriesInstanceUID": series, "SOPInstanceUID": sop},
            )
        except SourceError as exc:
            # NBIA answers 500 for an image it does not find: the series may have gone meanwhile.
            if not self._instances(series):
                raise NotFound(f"TCIA no longer holds series {series}") from None
            raise SourceError(
                f"{exc} (TCIA also refuses images of restricted collections without a token)"
            ) from None
        try:
            return render(response.content)
        except SourceError as exc:
            kind = response.headers.get("Content-Type", "no type")
            sent = "" if kind.startswith("application/dicom") else f" (it sent {kind})"
            raise SourceError(f"TCIA's {what} cannot be pictured: {exc}{sent}") from None

    # -- fetching ------------------------------------------------------------------------------
    def _modality(self, leaf: Leaf) -> str:
        """The series' modality, from one listing of its study (cached), for folder layouts."""
        study = tuple(leaf.path[:3])
        with self._lock:
            cached = self._modalities.get(study)
        if cached is None:
            rows = self._series_rows(study)
            cached = {str(r.get("SeriesInstanceUID")): str(r.get("Modality") or "") for r in rows}
            with self._lock:
                self._modalities[study] = cached
        return cached.get(leaf.path[-1], "")

    def leaf_urls(self, leaves: Iterable[Leaf]) -> Iterator[tuple[Leaf, str]]:
        """Each series' ``getImage`` URL (by its SeriesInstanceUID; offline)."""
        endpoint = "getImage" if "/v4/" in self.base_url else "getImageWithMD5Hash"
        for leaf in leaves:
            yield leaf, f"{self.base_url}{endpoint}?{urlencode({'SeriesInstanceUID': leaf.path[-1]})}"

    def plan(self, leaf: Leaf) -> LeafPlan:
        """One series as TCIA's zip with MD5s; ``finish`` checks and unpacks it."""
        series = leaf.path[-1]
        if "/v4/" in self.base_url:
            url = f"{self.base_url}getImage?{urlencode({'SeriesInstanceUID': series, 'IncludeMD5': 'yes'})}"
        else:
            url = f"{self.base_url}getImageWithMD5Hash?{urlencode({'SeriesInstanceUID': series})}"
        headers = tuple((k, v) for k, v in self._session.headers.items() if k == "Authorization")
        finish = functools.partial(
            _unpack_series, series=series, expected=leaf.fingerprint.count, size=leaf.fingerprint.size
        )
        return LeafPlan(
            (RemoteFile(url, "series.zip", headers=headers),),
            LazyFields(modality=lambda: self._modality(leaf)),
            finish,
            heavy=True,
        )

    @staticmethod
    def _unpack(
        zip_path: Path, into: Path, series: str, expected: int | None, size: int | None = None
    ) -> list[Path]:
        try:
            with zip_path.open("rb") as f:
                head = f.read(80)
            if not head.startswith(b"PK"):
                raise IntegrityError(
                    f"TCIA answered the images of series {series} with something that is not a zip "
                    f"({head.decode('utf-8', 'replace')!r}); the service may be in maintenance, try later"
                )
            archive = zipfile.ZipFile(zip_path)
        # NotImplementedError: a zip version zipfile cannot read; UnicodeDecodeError: a name flagged
        # as UTF-8 that is not.
        except (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError):
            raise IntegrityError(
                f"TCIA sent a damaged zip for series {series} (truncated or corrupt); try again"
            ) from None
        try:
            with archive:
                names = archive.namelist()
                for name in names:
                    pure = PurePosixPath(name.replace("\\", "/"))
                    if (
                        pure.is_absolute()
                        or ".." in pure.parts
                        or len(pure.parts) != 1
                        or ":" in name
                        or safe_component(name) == zip_path.name
                    ):
                        raise IntegrityError(
                            f"TCIA's zip for series {series} holds an entry that would land outside its "
                            f"folder: {name!r}; refused"
                        )
                unpacked = sum(info.file_size for info in archive.infolist())
                if size is not None and unpacked > 2 * size + (1 << 20):
                    raise IntegrityError(
                        f"TCIA's zip for series {series} would unpack to {unpacked} bytes, far more than the "
                        f"{size} the series holds; refused"
                    )
                hashes = {}
                if "md5hashes.csv" in names:
                    reader = csv.reader(io.StringIO(archive.read("md5hashes.csv").decode("utf-8", "replace")))
                    hashes = {
                        row[0]: row[1].lower() for row in reader if len(row) == 2 and row[0] != "Filename"
                    }
                images = [n for n in names if n not in ("LICENSE", "md5hashes.csv")]
                if expected is not None and len(images) != expected:
                    raise IntegrityError(
                        f"TCIA announced {expected} images for series {series} but sent {len(images)}; "
                        "try again later"
                    )
                out = []
                checked: dict[str, str] = {}
                for name in images:
                    try:
                        data = archive.read(name)
                    except ZIP_DAMAGE as exc:
                        raise IntegrityError(
                            f"TCIA's zip for series {series} is corrupt at {name!r} ({exc}); try again"
                        ) from None
                    want = hashes.get(name)
                    if want is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() != want:
                        raise IntegrityError(
                            f"image {name} of series {series} does not match its MD5; try again"
                        )
                    target = into / safe_component(name)
                    target.write_bytes(data)
                    out.append(target)
                    if want is not None:
                        checked[target.name] = want
                if "LICENSE" in names:
                    (into / "LICENSE").write_bytes(archive.read("LICENSE"))
                    out.append(into / "LICENSE")
                # Without md5hashes.csv, or with images it does not list, those images were checked
                # by count and size only (and the zip's CRC): recorded so, never as verified.
                return Checked(out, checked, len(checked) == len(images))
        except _ZIP_OR_LIST_DAMAGE as exc:
            # A damaged list of MD5s, an entry flagged as encrypted, a field csv refuses, ...
            raise IntegrityError(f"TCIA's zip for series {series} is corrupt ({exc}); try again") from None
        except OSError as exc:
            if exc.errno not in (None, errno.EINVAL):
                raise  # the disk's own failure (full, read-only): not the zip's
            # An entry whose header offset points before the file start (zipfile seeks there), or
            # a bzip2 entry whose data is damaged ("Invalid data stream", no errno: no system call).
            raise IntegrityError(f"TCIA's zip for series {series} is corrupt ({exc}); try again") from None


def _path(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(p) or "") for p in _LEVEL_PARAMS)


def _metadata(row: dict[str, Any]) -> dict[str, str | None]:
    return {name: str(row.get(name) or "").upper() or None for name in FILTERABLE}


def _number(row: dict[str, Any], column: str) -> int | None:
    value = row.get(column)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        try:
            number = int(float(value))  # a BigDecimal written as 1.5E7
        except (TypeError, ValueError, OverflowError):
            number = -1
    if number < 0:
        raise SourceError(f"TCIA gave {column} {value!r} for series {row.get('SeriesInstanceUID')}")
    return number


def _uid_order(uid: str) -> tuple[int, ...]:
    """A UID's sort key: its components as numbers (``1.10`` after ``1.9``)."""
    return tuple(int(part) if part.isdigit() else -1 for part in uid.split("."))


def _released(row: dict[str, Any]) -> list[str]:
    return [str(row[k]) for k in _RELEASE_COLUMNS if row.get(k)]


def _fingerprint(row: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(size, count, released) of a series row, as the leaf's fingerprint holds them."""
    return _number(row, "FileSize"), _number(row, "ImageCount"), "/".join(_released(row)) or None


def _fingerprint_text(manifest: Manifest, source_id: str, path: tuple[str, ...]) -> str | None:
    """The encoded fingerprint of the leaf at ``path``, None if ``manifest`` has none there (no
    ``Leaf`` is made: ``track`` looks up every series TCIA lists)."""
    lines = manifest.lines()
    key = encode_key(source_id, path) + TAB
    i = bisect.bisect_left(lines, key)
    return lines[i][len(key) :] if i < len(lines) and lines[i].startswith(key) else None


def _same(old: str, row: dict[str, Any]) -> bool:
    """Whether ``row`` shows the series as the encoded fingerprint ``old`` has it, on the columns
    the row has (v1/v2 ``getUpdatedSeries`` rows lack ``FileSize`` and ``TimeStamp``)."""
    size, count, released = _fingerprint(row)
    if (size, count, released) != (None, None, None) and old == encode_fingerprint(
        size, count, None, None, released
    ):
        return True
    fingerprint = Fingerprint.decode(old)
    if (size is not None and size != fingerprint.size) or (count is not None and count != fingerprint.count):
        return False
    parts = _released(row)
    return (fingerprint.released or "").split("/")[: len(parts)] == parts


def _sample(row: dict[str, Any]) -> str:
    return repr(row)[:120]


def _collections_of(manifest: Manifest, source_id: str) -> set[str]:
    own = escape_component(source_id) + US
    return {unescape_component(line.split(US, 2)[1]) for line in manifest.lines() if line.startswith(own)}


def _units(
    patients: set[tuple[str, ...]], studies: set[tuple[str, ...]], scopes: list[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """The paths to list again: changed patients, by collection when many changed in one the set
    holds whole, and changed studies not inside them."""
    by_collection: dict[str, list[tuple[str, ...]]] = {}
    for patient in patients:
        by_collection.setdefault(patient[0], []).append(patient)
    units: list[tuple[str, ...]] = []
    for collection, members in by_collection.items():
        whole = () in scopes or (collection,) in scopes
        units += [(collection,)] if whole and len(members) > WHOLE_COLLECTION_AFTER else members
    units += [s for s in studies if not any(s[: len(u)] == u for u in units)]
    return sorted(units)


def _without(base: Manifest, source_id: str, units: list[tuple[str, ...]]) -> list[str]:
    """The lines of ``source_id`` in ``base`` that are not below any of ``units`` (still sorted)."""
    own = escape_component(source_id) + US
    drop = {encode_key(source_id, unit) for unit in units}
    depths = sorted({len(unit) for unit in units})
    kept = []
    for line in base.lines():
        if not line.startswith(own):
            continue
        keys = line.partition(TAB)[0].split(US)
        if not any(US.join(keys[: depth + 1]) in drop for depth in depths):
            kept.append(line)
    return kept


def _unpack_series(
    stage: Path, downloaded: list[Path], *, series: str, expected: int | None, size: int | None
) -> list[Path]:
    """A series' ``finish`` step (module level, so a worker process can run it)."""
    return TciaSource._unpack(downloaded[0], stage, series, expected, size)


def _upper_filters(rules: list[Rule]) -> list[Rule]:
    """Rules with filter values upper-cased: NBIA compares Modality and body part case-blind."""
    from mediator_desktop.core.pointer import make_filters

    return [
        Rule(
            Pointer(
                r.pointer.source_id,
                r.pointer.path,
                make_filters({k: [v.upper() for v in vs] for k, vs in r.pointer.filters}),
            ),
            r.include,
        )
        for r in rules
    ]


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> TciaSource:
    """Registry factory. Options: ``base_url`` (default: TCIA's v4 API); the secret is a bearer token."""
    return TciaSource(source_id, str(options.get("base_url") or DEFAULT_URL), token=secret)
