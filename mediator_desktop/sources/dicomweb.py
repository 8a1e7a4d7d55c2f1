"""A DICOMweb archive (a lab PACS such as Orthanc, Google Healthcare, IDC's proxy): QIDO-RS search.

Levels: patient > study > series; a leaf is a series, fingerprinted by its instance count and a
hash of its sorted SOP Instance UIDs (QIDO-RS has no content hash or modification date). Paging
follows the DICOMweb convention: ``limit``/``offset`` until an empty page.

A series' preview (``preview``) is one instance of it, the middle one by Instance Number (QIDO-RS):
the server's own rendering (WADO-RS ``/rendered`` as PNG, scaled to the preview's size),
or, where the server has none, the instance itself rendered here (``sources.thumbnail``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import mmap
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mediator_desktop.core.errors import IntegrityError, NotFound, SourceError, ValidationError
from mediator_desktop.core.manifest import Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.paths import safe_component
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    LazyFields,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
)
from mediator_desktop.sources import http

PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID = "00100020", "0020000D", "0020000E", "00080018"
MODALITY, BODY_PART, SERIES_INSTANCES, STUDY_SERIES = "00080060", "00180015", "00201209", "00201206"
INSTANCE_NUMBER, TOTAL_COLUMNS, TOTAL_ROWS = "00200013", "00480006", "00480007"
#: The largest side of a preview the server is asked to render (``viewport``), in pixels.
PREVIEW_SIDE = 256
#: What a rendered preview may be (the first bytes of each).
_PICTURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
FILTERABLE = ("Modality", "BodyPartExamined")
_FILTER_TAGS = {"Modality": MODALITY, "BodyPartExamined": BODY_PART}

KIND = SourceKind(
    "dicomweb",
    "DICOMweb archive (PACS)",
    "A PACS or archive that speaks DICOMweb (Orthanc, dcm4chee, a cloud DICOM store): searched "
    "with QIDO-RS, series retrieved with WADO-RS.",
    options=(
        SourceOption(
            "base_url",
            "DICOMweb address",
            "The DICOMweb root, e.g. http://pacs:8042/dicom-web",
            required=True,
            kind="url",
        ),
        SourceOption(
            "username", "User name", "For HTTP basic authentication; empty when the archive is open."
        ),
    ),
    secret="password",
    secret_help="The password of the user name above.",
)


#: Bytes copied at a time from a multipart body to a part's file.
_COPY_BYTES = 1 << 20


class _NotMultipart(Exception):
    pass


def _split_multipart(body_file: Path, stage: Path) -> list[Path]:
    """Write each part of a multipart/related body (WADO-RS) to its own file in ``stage``.

    The body is read through a memory map, a part copied a megabyte at a time: a series of
    gigabytes is never held in memory (the email parser held it about nine times over).

    Raises:
        _NotMultipart: the body does not start with a boundary line.
        IntegrityError: the body is cut short or malformed.
    """
    with body_file.open("rb") as f, contextlib.ExitStack() as stack:
        if os.fstat(f.fileno()).st_size == 0:
            raise _NotMultipart
        body = stack.enter_context(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        line_end = body.find(b"\r\n", 0, 200)
        if line_end < 3 or body[:2] != b"--":
            raise _NotMultipart
        boundary = body[2:line_end].rstrip(b" \t")
        delimiter = b"\r\n--" + boundary
        parts: list[Path] = []
        position = line_end + 2
        while True:
            if body[position : position + 2] == b"\r\n":  # a part without headers
                headers, start = b"", position + 2
            else:
                headers_end = body.find(b"\r\n\r\n", position)
                if headers_end < 0:
                    raise IntegrityError("a part's headers never end (cut short)")
                headers, start = body[position:headers_end], headers_end + 4
            end = body.find(delimiter, start)
            if end < 0:
                raise IntegrityError("cut short (no closing boundary)")
            target = stage / f"part-{len(parts):06d}"
            with target.open("wb") as out:
                for at in range(start, end, _COPY_BYTES):
                    out.write(body[at : min(at + _COPY_BYTES, end)])
            encoding = re.search(rb"(?im)^content-transfer-encoding:[ \t]*([\w-]+)", headers)
            if encoding is not None and encoding.group(1).lower() == b"base64":
                try:
                    target.write_bytes(base64.b64decode(target.read_bytes()))
                except binascii.Error as exc:
                    raise IntegrityError(f"a part announced as base64 is not ({exc})") from None
            elif encoding is not None and encoding.group(1).lower() not in (b"binary", b"8bit", b"7bit"):
                raise IntegrityError(
                    f"a part is sent in the encoding {encoding.group(1).decode('latin-1')!r}"
                )
            parts.append(target)
            after = end + len(delimiter)
            if body[after : after + 2] == b"--":
                return parts
            line_end = body.find(b"\r\n", after)
            if line_end < 0:
                raise IntegrityError("cut short (a boundary line never ends)")
            position = line_end + 2


def _value(dataset: dict[str, Any], tag: str) -> str | None:
    element = dataset.get(tag) or dataset.get(tag.lower()) or {}
    values = element.get("Value") if isinstance(element, dict) else None
    if not values:
        return None
    first = values[0]
    if isinstance(first, dict):  # PN
        first = first.get("Alphabetic")
    return None if first is None else str(first)


class DicomWebSource:
    """QIDO-RS over ``base_url`` (e.g. ``http://pacs:8042/dicom-web``). Thread-safe."""

    hierarchy: Hierarchy = Hierarchy(("patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    connections: int = 6

    def __init__(
        self,
        source_id: str,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        page_size: int = 500,
        title: str | None = None,
        backoff: float = 0.5,
    ) -> None:
        self.source_id = source_id
        self.base_url = base_url.rstrip("/")
        self.title = title or f"DICOMweb {self.base_url}"
        self.page_size = page_size
        self._session = http.session(backoff=backoff)
        self._session.auth = auth
        self._session.headers["Accept"] = "application/dicom+json, application/json"
        self._lock = threading.Lock()
        self._modalities: dict[str, dict[str, str]] = {}

    # -- QIDO ----------------------------------------------------------------------------------
    def _query(self, resource: str, what: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every dataset of a QIDO search, page by page until an empty page (servers may cap a
        page below ``limit`` without saying so)."""
        offset = 0
        while True:
            page = self._datasets(resource, what, {**params, "limit": self.page_size, "offset": offset})
            if not page:  # a server may send fewer than asked for before the end: only [] ends it
                return
            yield from page
            offset += len(page)

    def _datasets(self, resource: str, what: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One QIDO-RS answer, as a list of datasets (a lone dataset as a list of one)."""
        page = http.json_body(
            http.get(self._session, self.title, f"{self.base_url}/{resource}", what=what, params=params),
            self.title,
            what,
        )
        if isinstance(page, dict):
            page = [page]
        if not isinstance(page, list) or not all(isinstance(d, dict) for d in page):
            raise SourceError(f"{self.title} answered {what} with JSON that is not a list of datasets")
        return page

    def check(self) -> str:
        """One QIDO-RS search for a single study: the archive answers, and accepts the credentials.

        Raises:
            SourceError: it cannot be reached, refused the credentials, or does not speak QIDO-RS.
        """
        found = self._datasets("studies", "a search for studies", {"limit": 1})
        return "reachable (studies found)" if found else "reachable (no studies yet)"

    def _series(self, patient: str | None = None, study: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"includefield": [PATIENT_ID, MODALITY, BODY_PART, SERIES_INSTANCES]}
        if patient is not None:
            params["PatientID"] = patient
        resource = f"studies/{study}/series" if study else "series"
        what = f"the series of {'/'.join(x for x in (patient, study) if x) or 'the archive'}"
        return list(self._query(resource, what, **params))

    # -- browsing ------------------------------------------------------------------------------
    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        if len(path) >= len(self.hierarchy.levels):
            raise ValidationError("a series is a leaf: it has no children to browse")
        series = [s for s in self._series(*self._scope(path)) if self._matches(s, path, filters)]
        level = self.hierarchy.levels[len(path)]
        groups: dict[str, list[dict[str, Any]]] = {}
        tag = (PATIENT_ID, STUDY_UID, SERIES_UID)[len(path)]
        for s in series:
            groups.setdefault(_value(s, tag) or "", []).append(s)
        items = []
        for key in sorted(k for k in groups if k):
            members = groups[key]
            label = key if level != "series" else f"{_value(members[0], MODALITY) or '?'} series"
            items.append(BrowseItem(key, level, label, len(members)))
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    @staticmethod
    def _scope(path: tuple[str, ...]) -> tuple[str | None, str | None]:
        return (path[0] if path else None, path[1] if len(path) > 1 else None)

    def _matches(self, series: dict[str, Any], path: tuple[str, ...], filters: Filters) -> bool:
        key = (
            _value(series, PATIENT_ID) or "",
            _value(series, STUDY_UID) or "",
            _value(series, SERIES_UID) or "",
        )
        if key[: len(path)] != path:
            return False
        return all(
            _value(series, _FILTER_TAGS[name]) in values for name, values in filters if name in _FILTER_TAGS
        )

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        if name not in _FILTER_TAGS:
            raise ValidationError(
                f"{self.title} cannot filter on {name!r}; it filters on {', '.join(FILTERABLE)}"
            )
        values = {
            _value(s, _FILTER_TAGS[name])
            for s in self._series(*self._scope(path))
            if self._matches(s, path, ())
        }
        return sorted(v for v in values if v)

    # -- resolution ----------------------------------------------------------------------------
    def resolve(self, selection: Selection) -> Manifest:
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        builder = ManifestBuilder()
        scopes = {self._scope(r.pointer.path) for r in rules if r.include}
        if (None, None) in scopes:
            scopes = {(None, None)}
        seen: set[tuple[str, str, str]] = set()
        for patient, study in sorted(scopes, key=lambda s: (s[0] or "", s[1] or "")):
            for series in self._series(patient, study):
                path = (
                    _value(series, PATIENT_ID) or "",
                    _value(series, STUDY_UID) or "",
                    _value(series, SERIES_UID) or "",
                )
                if not all(path) or path in seen:
                    continue
                metadata = {name: _value(series, tag) for name, tag in _FILTER_TAGS.items()}
                if not decide(rules, self.source_id, path, metadata):
                    continue
                seen.add(path)
                uids = sorted(
                    _value(d, SOP_UID) or ""
                    for d in self._query(
                        f"studies/{path[1]}/series/{path[2]}/instances",
                        f"the instances of series {path[2]}",
                        includefield=SOP_UID,
                    )
                )
                announced = _value(series, SERIES_INSTANCES)
                if announced is not None and announced.isdigit() and int(announced) != len(uids):
                    raise SourceError(
                        f"{self.title}: series {path[2]} announces {announced} instances but lists "
                        f"{len(uids)}; the archive may be receiving it right now, try again later"
                    )
                digest = hashlib.sha256("\n".join(uids).encode()).hexdigest()
                builder.add(self.source_id, path, count=len(uids), checksum=f"sop-uids-sha256:{digest}")
        return builder.build()

    # -- retrieval -----------------------------------------------------------------------------
    def _modality(self, patient: str, study: str, series: str) -> str:
        with self._lock:
            cached = self._modalities.get(study)
        if cached is None:
            cached = {
                _value(d, SERIES_UID) or "": _value(d, MODALITY) or "" for d in self._series(patient, study)
            }
            with self._lock:
                self._modalities[study] = cached
        return cached.get(series, "")

    def plan(self, leaf: Leaf) -> LeafPlan:
        """One series by WADO-RS as a multipart body; ``finish`` splits it into instances named by
        SOP Instance UID and checks they are exactly those the fingerprint hashed."""
        patient, study, series = leaf.path
        headers = [("Accept", 'multipart/related; type="application/dicom"')]
        if self._session.auth:
            user, password = self._session.auth  # type: ignore[misc]
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        url = f"{self.base_url}/studies/{quote(study)}/series/{quote(series)}"

        def finish(stage: Path, downloaded: list[Path]) -> list[Path]:
            return self._split(downloaded[0], stage, leaf)

        return LeafPlan(
            (RemoteFile(url, "series.multipart", headers=tuple(headers)),),
            LazyFields(modality=lambda: self._modality(patient, study, series)),
            finish,
            count=leaf.fingerprint.count,
        )

    def _split(self, body_file: Path, stage: Path, leaf: Leaf) -> list[Path]:
        import pydicom

        series = leaf.path[-1]
        try:
            parts = _split_multipart(body_file, stage)
        except _NotMultipart:
            raise IntegrityError(
                f"{self.title} did not answer series {series} with multipart DICOM; try again"
            ) from None
        except IntegrityError as exc:
            raise IntegrityError(f"{self.title} sent series {series} {exc}; try again") from None
        uids, files = [], []
        for part in parts:
            try:
                ds = pydicom.dcmread(part, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                uid = str(ds.SOPInstanceUID)
            except Exception as exc:  # noqa: BLE001 (pydicom on damaged bytes raises many kinds)
                raise IntegrityError(
                    f"{self.title} sent a part of series {series} that is not DICOM: {exc}"
                ) from None
            uids.append(uid)
            target = stage / f"{safe_component(uid)}.dcm"
            if target in files:
                raise IntegrityError(f"{self.title} sent instance {uid} of series {series} twice; try again")
            os.replace(part, target)
            files.append(target)
        digest = hashlib.sha256("\n".join(sorted(uids)).encode()).hexdigest()
        if leaf.fingerprint.checksum and leaf.fingerprint.checksum != f"sop-uids-sha256:{digest}":
            raise IntegrityError(
                f"{self.title} sent {len(uids)} instances of series {series} that are not the "
                f"{leaf.fingerprint.count} the set pins (it changed since); resolve the set again"
            )
        return files

    def pointer(self, *path: str, **filters: str) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path, **filters))

    # -- previews ------------------------------------------------------------------------------
    def preview(self, path: tuple[str, ...]) -> bytes | None:
        """A thumbnail of a series from one instance: the middle one by Instance Number (a slide's
        smallest level), found by QIDO-RS; the server's rendering of it (WADO-RS ``/rendered``, PNG
        at most ``PREVIEW_SIDE`` pixels a side), or, when the server renders none (or not as PNG),
        the instance fetched and rendered here.

        Raises:
            NotFound: the archive lists no instance of the series any more.
            SourceError: the archive cannot be reached, or the instance cannot be pictured (why).
        """
        if len(path) != len(self.hierarchy.levels):
            return None
        _, study, series = path
        sop = self._middle_instance(study, series)
        url = f"{self.base_url}/studies/{quote(study)}/series/{quote(series)}/instances/{quote(sop)}"
        what = f"a picture of instance {sop} of series {series}"
        try:
            # One type: Orthanc refuses an Accept listing several. The viewport's comma is sent as
            # it is: Orthanc does not read a %2C.
            rendered = http.get(
                self._session,
                self.title,
                f"{url}/rendered?viewport={PREVIEW_SIDE},{PREVIEW_SIDE}",
                what=what,
                headers={"Accept": "image/png"},
            )
            if rendered.content.startswith(_PICTURES):
                return rendered.content
        except SourceError:
            pass  # no rendered resource (404, 406, 501...), or it failed: render it here
        return self._render_instance(url, sop, series)

    def _middle_instance(self, study: str, series: str) -> str:
        what = f"the instances of series {series}"
        rows = list(
            self._query(
                f"studies/{quote(study)}/series/{quote(series)}/instances",
                what,
                includefield=[SOP_UID, INSTANCE_NUMBER, TOTAL_COLUMNS, TOTAL_ROWS],
            )
        )
        found = [(d, _value(d, SOP_UID)) for d in rows]
        instances = [(d, uid) for d, uid in found if uid]
        if not instances:
            raise NotFound(f"{self.title} no longer holds series {series}")

        def pixels(d: dict[str, Any]) -> int | None:
            cols, rows_ = _number(_value(d, TOTAL_COLUMNS)), _number(_value(d, TOTAL_ROWS))
            return cols * rows_ if cols is not None and rows_ is not None else None

        levels = [(pixels(d), uid) for d, uid in instances if pixels(d) is not None]
        if levels:  # a slide: its smallest level is its thumbnail
            return min(levels)[1]
        ordered = sorted(instances, key=lambda du: (_number(_value(du[0], INSTANCE_NUMBER)) or 0, du[1]))
        return ordered[len(ordered) // 2][1]

    def _render_instance(self, url: str, sop: str, series: str) -> bytes:
        """The instance by WADO-RS (multipart, or a bare ``application/dicom`` some servers send),
        rendered here."""
        from mediator_desktop.sources.thumbnail import render

        what = f"instance {sop} of series {series}"
        response = http.get(
            self._session,
            self.title,
            url,
            what=what,
            headers={"Accept": 'multipart/related; type="application/dicom"'},
        )
        with tempfile.TemporaryDirectory(prefix="mediator-preview-") as folder:
            body = Path(folder) / "body"
            body.write_bytes(response.content)
            try:
                parts = _split_multipart(body, Path(folder))
            except _NotMultipart:
                parts = [body]
            except IntegrityError as exc:
                raise SourceError(f"{self.title} sent {what} {exc}") from None
            if not parts:
                raise SourceError(f"{self.title} sent no part for {what}")
            try:
                return render(parts[0])
            except SourceError as exc:
                raise SourceError(f"{self.title}'s {what} cannot be pictured: {exc}") from None


def _number(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except (ValueError, OverflowError):  # not a number, or "inf"
        return None


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> DicomWebSource:
    """Registry factory. Options: ``base_url`` (required), ``username``; the secret is the password."""
    if not options.get("base_url"):
        raise ValidationError(
            f"DICOMweb source {source_id!r} needs a base_url (e.g. http://pacs:8042/dicom-web)"
        )
    auth = (str(options["username"]), secret or "") if options.get("username") else None
    return DicomWebSource(source_id, str(options["base_url"]), auth=auth)
