"""An emulator of TCIA's NBIA REST API (v1/v2/v4 search and image endpoints), for offline tests and demos.

It answers like the NBIA server's own code (see ``../shared/reference/nbia-contract.md``): the
columns each endpoint returns per version, Jettison-style JSON (no spaces, ``/`` escaped, null
keys left out), an empty 200 for no rows, 400s with plain-text messages for missing or (v4)
unknown parameters, MM-DD-YYYY dates in v4, ``getImage`` zips of real DICOM (made with
pydicom) with LICENSE and ``md5hashes.csv``, and one image by ``getSOPInstanceUIDs`` then
``getSingleImage`` (``application/dicom``; an image it does not hold is a 500, as NBIA's NPE).
Its catalogue is built from real IDC rows of TCIA collections (``catalogue_from_idc``), or made
up quickly in any size (``synthetic_catalogue``).
Faults can be queued per endpoint to test clients; requests are counted per endpoint.

The archive changes while it runs, as TCIA does: a clock the test moves (``advance``) stamps new
and re-submitted series with their ``DateReleased``/``TimeStamp``; ``add_series``, ``add_study``,
``add_patient``, ``resubmit`` and ``delete_series`` change the catalogue, and the change queries
(``getUpdatedSeries``, ``NewPatientsInCollection``, ``NewStudiesInPatientCollection``) answer
with each version's parameters, date formats and comparisons (``>`` or ``>=`` against midnight
of the given day, as MySQL compares a DATETIME with a date). Collections can be restricted to a
token (``restricted``, ``token``): v2/v4 show them to its bearer, except v4 ``getUpdatedSeries``,
which, as NBIA's, lists public collections only.

Standalone: ``python -m tests.helpers.tcia_emulator --port 8080`` serves
``http://127.0.0.1:8080/nbia-api/services/v4/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import threading
import time
import zipfile
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from tests.helpers.net import Faults, LoopbackServer

ROOT = "/nbia-api/services/"
LICENSE_NAME = "Creative Commons Attribution 4.0 International License"
LICENSE_URI = "https://creativecommons.org/licenses/by/4.0/"

#: Allowed parameters per v4 endpoint (anything else: 400), and required ones.
ALLOWED = {
    "getCollectionValues": {"format"},
    "getPatient": {"Collection", "PatientId", "format"},
    "getPatientStudy": {"Collection", "PatientID", "StudyInstanceUID", "format"},
    "getSeries": {
        "Collection",
        "PatientID",
        "StudyInstanceUID",
        "Modality",
        "BodyPartExamined",
        "ManufacturerModelName",
        "Manufacturer",
        "SeriesInstanceUID",
        "format",
    },
    "getSeriesSize": {"SeriesInstanceUID", "format"},
    "getSOPInstanceUIDs": {"SeriesInstanceUID", "format"},
    "getModalityValues": {"Collection", "BodyPartExamined", "format"},
    "getBodyPartValues": {"Collection", "Modality", "format"},
    "getUpdatedSeries": {"fromDate", "format"},
    "NewPatientsInCollection": {"Collection", "fromDate", "format"},
    "NewStudiesInPatientCollection": {"Collection", "PatientID", "fromDate", "format"},
    "getImage": {"SeriesInstanceUID", "NewFileNames", "IncludeMD5"},
    "getImageWithMD5Hash": {"SeriesInstanceUID"},
    "getSingleImage": {"SeriesInstanceUID", "SOPInstanceUID"},
}
REQUIRED = {
    "getSeriesSize": (
        ("SeriesInstanceUID",),
        "A parameter, SeriesInstanceUID is required for this API call.",
    ),
    "getSOPInstanceUIDs": (
        ("SeriesInstanceUID",),
        "A parameter, SeriesInstanceUID is required for this API call.",
    ),
    "getImage": (("SeriesInstanceUID",), "A parameter, SeriesInstanceUID, is required for this API call."),
    "getImageWithMD5Hash": (
        ("SeriesInstanceUID",),
        "A parameter, SeriesInstanceUID, is required for this API call.",
    ),
    "NewPatientsInCollection": (
        ("Collection", "fromDate"),
        "A parameter, Collection and Date are required for this API call.",
    ),
    "NewStudiesInPatientCollection": (
        ("Collection", "fromDate"),
        "A parameter, Collection and Date are required for this API call.",
    ),
}
#: The v1/v2 getUpdatedSeries columns (v4 answers with its 30 getSeries columns).
UPDATED_V1 = (
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "ProtocolName",
    "SeriesDate",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesNumber",
    "AnnotationsFlag",
    "Collection",
    "PatientID",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ImageCount",
    "DateReleased",
)


@dataclass
class Series:
    collection: str
    patient: str
    study: str
    uid: str
    modality: str
    body_part: str | None
    manufacturer: str | None
    study_date: dt.date
    series_date: dt.date | None
    released: dt.date
    image_count: int
    sex: str | None = "F"
    age: str | None = "061Y"
    description: str | None = "Series"
    pixels: int = 8  # rows and columns of each image (16 bits a pixel)
    #: When it was released (``DateReleased``); None: midnight of ``released``.
    released_at: dt.datetime | None = None
    #: When its images were last submitted (``TimeStamp``, v4 ``MaxSubmissionTimestamp``); None:
    #: when it was released.
    submitted_at: dt.datetime | None = None
    #: Bytes (``FileSize``); None: the size of its generated images. Set by big made-up
    #: catalogues, so that listing them never builds DICOM.
    file_size: int | None = None
    _files: list[tuple[str, bytes]] | None = field(default=None, repr=False)

    def files(self) -> list[tuple[str, bytes]]:
        """(SOP Instance UID, DICOM bytes) of each image, made on first use."""
        if self._files is None:
            self._files = [(_sop_uid(self.uid, i), _dicom(self, i)) for i in range(self.image_count)]
        return self._files

    @property
    def size(self) -> int:
        if self.file_size is not None:
            return self.file_size
        return sum(len(data) for _, data in self.files())

    @property
    def released_moment(self) -> dt.datetime:
        return self.released_at or dt.datetime.combine(self.released, dt.time())

    @property
    def submitted_moment(self) -> dt.datetime:
        return self.submitted_at or self.released_moment


def _sop_uid(series_uid: str, index: int) -> str:
    """A valid UID (at most 64 characters) derived from the series UID, as DICOM's 2.25 root allows."""
    digest = hashlib.sha256(f"{series_uid}/{index}".encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _dicom(series: Series, index: int) -> bytes:
    sop = _sop_uid(series.uid, index)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.PatientID = series.patient
    ds.StudyInstanceUID = series.study
    ds.SeriesInstanceUID = series.uid
    ds.Modality = series.modality
    ds.InstanceNumber = index + 1
    ds.AcquisitionNumber = 1
    ds.Rows = ds.Columns = series.pixels
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if series.pixels == 8:
        ds.PixelData = bytes((index + k) % 256 for k in range(128))
    else:  # noise, as a real image compresses little
        ds.PixelData = random.Random(sop).randbytes(series.pixels * series.pixels * 2)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def catalogue_from_idc(
    collections: Iterable[str] = ("lidc_idri", "soft_tissue_sarcoma"),
    patients: int = 3,
    max_images: int = 4,
    pixels: int = 8,
) -> list[Series]:
    """Series of real TCIA collections as IDC lists them (names as TCIA spells them)."""
    import idc_index_data
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = [
        "collection_id",
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "BodyPartExamined",
        "Manufacturer",
        "StudyDate",
        "SeriesDate",
        "series_init_idc_version",
        "instanceCount",
        "PatientSex",
        "PatientAge",
        "SeriesDescription",
    ]
    table = pq.read_table(idc_index_data.IDC_INDEX_PARQUET_FILEPATH, columns=columns)
    out = []
    for collection in collections:
        rows = table.filter(pc.equal(table.column("collection_id"), collection)).to_pylist()
        keep = sorted({r["PatientID"] for r in rows})[:patients]
        for r in sorted(rows, key=lambda r: (r["PatientID"], r["StudyInstanceUID"], r["SeriesInstanceUID"])):
            if r["PatientID"] not in keep:
                continue
            released = dt.date(2020, 1, 1) + dt.timedelta(days=30 * int(r["series_init_idc_version"] or 1))
            out.append(
                Series(
                    collection.upper().replace("_", "-"),
                    r["PatientID"],
                    r["StudyInstanceUID"],
                    r["SeriesInstanceUID"],
                    r["Modality"] or "OT",
                    r["BodyPartExamined"],
                    r["Manufacturer"],
                    _date(r["StudyDate"]) or dt.date(2000, 1, 1),
                    _date(r["SeriesDate"]),
                    released,
                    max(1, min(int(r["instanceCount"] or 1), max_images)),
                    r["PatientSex"],
                    r["PatientAge"],
                    r["SeriesDescription"],
                    pixels,
                )
            )
    return out


def synthetic_catalogue(
    series: int = 10_000,
    collections: int = 4,
    *,
    studies_per_patient: int = 2,
    series_per_study: int = 5,
    images: int = 4,
    released: dt.date = dt.date(2024, 1, 2),
) -> list[Series]:
    """``series`` made-up series in ``collections`` collections (``SYNTHETIC-1``...), each patient with
    ``studies_per_patient`` studies of ``series_per_study`` series; built in milliseconds, as their
    sizes are given (no DICOM is made until an image is asked for)."""
    modalities = ("CT", "CT", "MR", "SEG", "RTSTRUCT")
    out: list[Series] = []
    for c in range(collections):
        wanted = series // collections + (1 if c < series % collections else 0)
        made = 0
        patient = 0
        while made < wanted:
            for study in range(studies_per_patient):
                study_uid = f"1.3.6.1.4.1.14519.5.2.1.9999.{c + 1}.{patient}.{study}"
                for k in range(series_per_study):
                    if made == wanted:
                        break
                    out.append(
                        Series(
                            f"SYNTHETIC-{c + 1}",
                            f"SYN{c + 1}-{patient:05d}",
                            study_uid,
                            f"{study_uid}.{k}",
                            modalities[k % len(modalities)],
                            "CHEST",
                            "ACME",
                            dt.date(2000, 1, 1) + dt.timedelta(days=patient % 3650),
                            None,
                            released,
                            images,
                            file_size=images * 10_000 + k,
                        )
                    )
                    made += 1
            patient += 1
    return out


def java_timestamp(moment: dt.datetime) -> str:
    """``java.sql.Timestamp.toString()``: ``2020-05-21 15:26:48.0`` (v1/v2 dates)."""
    fraction = f"{moment.microsecond:06d}".rstrip("0") or "0"
    return f"{moment:%Y-%m-%d %H:%M:%S}.{fraction}"


def jettison(rows: list[dict[str, Any]]) -> bytes:
    """JSON as NBIA writes it: compact, null keys dropped, '/' escaped, non-ASCII raw."""
    clean = [{k: v for k, v in row.items() if v is not None} for row in rows]
    return json.dumps(clean, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode()


def mdy(day: dt.date | None) -> str | None:
    return None if day is None else day.strftime("%m-%d-%Y")


class TciaEmulator(LoopbackServer):
    """NBIA on 127.0.0.1. Faults queued with ``faults.add(endpoint, kind, ...)``, each used once:
    ``500``/``503``/``429`` (``429:5`` adds ``Retry-After: 5``), ``html`` (a maintenance page),
    ``badjson``, ``wrongrows`` (JSON rows without the endpoint's columns), ``empty`` (no rows),
    ``slow``, for the image endpoints the zip faults of ``_image``, and for ``getSingleImage``
    ``garbage`` (a 200 ``application/dicom`` of bytes that are not DICOM)."""

    def __init__(self, series: list[Series] | None = None, port: int = 0) -> None:
        self.series = series if series is not None else catalogue_from_idc()
        self.faults = Faults()
        #: Requests per endpoint (counted before faults); see ``total_requests``, ``reset_requests``.
        self.requests: Counter[str] = Counter()
        #: The latest requests as (version, endpoint, query parameters), oldest first.
        self.queries: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=1000)
        #: The archive's "now" (naive, read as UTC by ``now``): what new and re-submitted series are
        #: stamped with. Starts the day after the newest release, at 09:00.
        newest = max((s.released for s in self.series), default=dt.date(2024, 1, 1))
        self.clock = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time(9))
        #: Collections only a bearer of ``token`` sees (v2/v4; never v1 nor v4 getUpdatedSeries).
        self.restricted: set[str] = set()
        self.token: str | None = None
        self._ids = 0
        self._lock = threading.Lock()
        #: getImage / getImageWithMD5Hash requests per SeriesInstanceUID.
        self.image_requests: Counter[str] = Counter()
        #: Seconds each image request waits before answering.
        self.image_delay = 0.0
        #: Keep each zip once built, as a server streams stored files (benchmarks: the client's
        #: cost shows, not the emulator's zipping).
        self.cache_zips = False
        #: Which images ``md5hashes.csv`` lists: "all", "some" (not the first image) or "none" (no
        #: md5hashes.csv in the zip at all), as NBIA's zips without MD5s come.
        self.md5_entries = "all"
        self._zips: dict[tuple[str, str, bool, bool, str], bytes] = {}
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                emulator._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._serve(ThreadingHTTPServer(("127.0.0.1", port), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{ROOT}"

    @property
    def v4(self) -> str:
        return self.url + "v4/"

    # -- counting ------------------------------------------------------------------------------
    @property
    def total_requests(self) -> int:
        """Requests of every endpoint (images included) since the start or ``reset_requests``."""
        with self._lock:
            return sum(self.requests.values())

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.image_requests.clear()
            self.queries.clear()

    # -- the archive changes -------------------------------------------------------------------
    def now(self) -> float:
        """The clock as Unix time (the clock is read as UTC)."""
        return self.clock.replace(tzinfo=dt.UTC).timestamp()

    def advance(self, **delta: float) -> dt.datetime:
        """Moves the clock on by ``timedelta(**delta)`` (``days=1``, ``hours=3``); returns it."""
        self.clock += dt.timedelta(**delta)
        return self.clock

    def _uid(self) -> str:
        self._ids += 1
        digest = hashlib.sha256(f"new/{self._ids}/{self.clock}".encode()).digest()[:16]
        return f"2.25.{int.from_bytes(digest, 'big')}"

    def _stamp(self, s: Series) -> Series:
        s.released, s.released_at, s.submitted_at = self.clock.date(), self.clock, self.clock
        return s

    def find(self, uid: str) -> Series:
        """The series ``uid``; ``KeyError`` if the catalogue has none."""
        for s in self.series:
            if s.uid == uid:
                return s
        raise KeyError(f"no series {uid} in the emulator's catalogue")

    def add_series(
        self,
        study: str,
        *,
        modality: str = "CT",
        image_count: int = 2,
        body_part: str | None = "CHEST",
        uid: str | None = None,
    ) -> Series:
        """A new series in the existing ``study``, released now."""
        like = next((s for s in self.series if s.study == study), None)
        if like is None:
            raise KeyError(f"no study {study} in the emulator's catalogue")
        return self._new_series(
            like.collection, like.patient, study, like, modality, image_count, body_part, uid
        )

    def _new_series(
        self,
        collection: str,
        patient: str,
        study: str,
        like: Series | None,
        modality: str,
        image_count: int,
        body_part: str | None,
        uid: str | None,
    ) -> Series:
        s = Series(
            collection,
            patient,
            study,
            uid or self._uid(),
            modality,
            body_part,
            like.manufacturer if like else "ACME",
            like.study_date if like and like.study == study else self.clock.date(),
            self.clock.date(),
            self.clock.date(),
            image_count,
            like.sex if like else "M",
            like.age if like else "050Y",
            "New series",
            like.pixels if like else 8,
        )
        with self._lock:
            self.series.append(self._stamp(s))
        return s

    def add_study(
        self,
        collection: str,
        patient: str,
        *,
        series: int = 1,
        modality: str = "CT",
        image_count: int = 2,
        uid: str | None = None,
    ) -> list[Series]:
        """A new study of ``series`` series for the existing ``patient`` of ``collection``, released now."""
        like = next((s for s in self.series if s.collection == collection and s.patient == patient), None)
        if like is None:
            raise KeyError(f"no patient {patient} in {collection} in the emulator's catalogue")
        study = uid or self._uid()
        return [
            self._new_series(collection, patient, study, like, modality, image_count, "CHEST", None)
            for _ in range(series)
        ]

    def add_patient(
        self,
        collection: str,
        patient: str | None = None,
        *,
        studies: int = 1,
        series: int = 1,
        modality: str = "CT",
        image_count: int = 2,
    ) -> list[Series]:
        """A new patient (``NEW-<n>`` unless named) with ``studies`` studies of ``series`` series each,
        released now; ``collection`` may be new too."""
        patient = patient or f"NEW-{self._ids + 1:04d}"
        out = []
        for _ in range(studies):
            study = self._uid()
            out += [
                self._new_series(collection, patient, study, None, modality, image_count, "CHEST", None)
                for _ in range(series)
            ]
        return out

    def resubmit(self, uid: str, *, image_count: int | None = None) -> Series:
        """Images of series ``uid`` submitted again: released and stamped now, with ``image_count``
        images (default: one more), hence a new ``ImageCount`` and ``FileSize``."""
        s = self.find(uid)
        with self._lock:
            s.image_count = image_count if image_count is not None else s.image_count + 1
            s.file_size = None
            s._files = None
            for key in [k for k in self._zips if k[0] == uid]:
                del self._zips[key]
            self._stamp(s)
        return s

    def delete_series(self, uid: str) -> Series:
        """Series ``uid`` taken out of the archive (as NBIA hides or deletes one: no date changes)."""
        s = self.find(uid)
        with self._lock:
            self.series = [x for x in self.series if x.uid != uid]
        return s

    def _pool(self, request: BaseHTTPRequestHandler, version: str, endpoint: str) -> list[Series]:
        """The series the caller may see: restricted collections only for the token's bearer."""
        if not self.restricted:
            return self.series
        public_only = version == "v1" or (version == "v4" and endpoint == "getUpdatedSeries")
        bearer = request.headers.get("Authorization")
        if not public_only and self.token is not None and bearer == f"Bearer {self.token}":
            return self.series
        return [s for s in self.series if s.collection not in self.restricted]

    # -- HTTP ----------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if not parts.path.startswith(ROOT):
            return self._send(request, 404, "text/html", b"<html><body>Not Found</body></html>")
        version, _, endpoint = parts.path[len(ROOT) :].partition("/")
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests[endpoint] += 1
            self.queries.append((version, endpoint, params))
        fault = self.faults.next(endpoint)
        if fault is not None and fault.partition(":")[0] in ("503", "429", "500"):
            status, _, after = fault.partition(":")
            return self._send(
                request,
                int(status),
                "text/plain",
                b"Server was not able to process your request\n",
                {"Retry-After": after} if after else None,
            )
        if fault == "html":
            return self._send(request, 200, "text/html", b"<html><body>Maintenance</body></html>")
        if fault == "badjson":
            return self._send(request, 200, "application/json", b'[{"Collection":')
        if fault == "empty":  # no rows, as NBIA says so
            return self._send(request, 200, None, b"")
        if fault == "wrongrows":
            return self._send(request, 200, "application/json", b'[{"Unexpected":"row"}]')
        if fault == "slow":
            time.sleep(2.0)
        if version not in ("v1", "v2", "v4") or endpoint not in ALLOWED:
            return self._send(request, 404, "text/html", b"<html><body>Not Found</body></html>")
        if version == "v4":
            unknown = sorted(set(params) - ALLOWED[endpoint])
            if unknown:
                allowed = sorted(ALLOWED[endpoint])
                message = f"Invalid query parameter: '{unknown[0]}'. Allowed parameters are: {allowed}"
                # No type is set: Jersey takes the endpoint's first @Produces type.
                kind = "application/dicom" if endpoint == "getSingleImage" else "application/xml"
                return self._send(request, 400, kind, message.encode())
        names, message = REQUIRED.get(endpoint, ((), ""))
        if version != "v4" and endpoint in ("NewPatientsInCollection", "NewStudiesInPatientCollection"):
            names = ("Collection", "Date")
        if any(not params.get(n) for n in names):
            return self._send(request, 400, "application/json", message.encode())
        pool = self._pool(request, version, endpoint)
        if endpoint in ("getImage", "getImageWithMD5Hash"):
            return self._image(request, endpoint, params, fault, pool)
        if endpoint == "getSingleImage":
            return self._single_image(request, params, fault, pool)
        if endpoint == "getSOPInstanceUIDs" and version == "v4":
            pool = self.series  # v4 asks general_image alone: no authorization, no visibility test
        rows = getattr(self, f"_{endpoint}")(params, version, pool)
        if not rows:
            return self._send(request, 200, None, b"")
        return self._send(request, 200, "application/json", jettison(rows))

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        kind: str | None,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        request.send_response(status)
        if kind:
            request.send_header("Content-Type", kind)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    # -- search --------------------------------------------------------------------------------
    def _match(self, pool: list[Series], params: dict[str, str], **columns: str) -> list[Series]:
        def ok(s: Series) -> bool:
            for param, attr in columns.items():
                wanted = params.get(param)
                if not wanted:
                    continue
                value = getattr(s, attr)
                exact = param in ("StudyInstanceUID", "SeriesInstanceUID")
                if value is None or (value != wanted if exact else value.upper() != wanted.upper()):
                    return False
            return True

        return [s for s in pool if ok(s)]

    def _getCollectionValues(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        return [{"Collection": c} for c in dict.fromkeys(s.collection for s in pool)]

    def _patient_row(self, s: Series, version: str) -> dict[str, Any]:
        row: dict[str, Any] = {"PatientId": s.patient, "PatientName": s.patient}
        if version != "v4":
            row["PatientBirthDate"] = None
        row |= {
            "PatientSex": s.sex,
            "EthnicGroup": None,
            "Collection": s.collection,
            "Phantom": "NO",
            "SpeciesCode": "337915000",
            "SpeciesDescription": "Homo sapiens",
        }
        if version == "v4":
            row["Authorized"] = 1
        return row

    def _getPatient(self, params: dict[str, str], version: str, pool: list[Series]) -> list[dict[str, Any]]:
        found = self._match(pool, params, Collection="collection", PatientId="patient")
        return list({s.patient: self._patient_row(s, version) for s in found}.values())

    def _getPatientStudy(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        found = self._match(
            pool, params, Collection="collection", PatientID="patient", StudyInstanceUID="study"
        )
        return self._study_rows(found, version)

    def _study_rows(self, found: list[Series], version: str) -> list[dict[str, Any]]:
        studies: dict[str, list[Series]] = {}
        for s in found:
            studies.setdefault(s.study, []).append(s)
        rows = []
        for uid, members in studies.items():
            s = members[0]
            date: Any = mdy(s.study_date) if version == "v4" else f"{s.study_date} 00:00:00.0"
            row = {
                "StudyInstanceUID": uid,
                "StudyDate": date,
                "StudyDescription": "Study",
                "StudyID": "1",
                "PatientAge": s.age,
                "PatientID": s.patient,
                "PatientName": s.patient,
                "PatientSex": s.sex,
                "Collection": s.collection,
                "SeriesCount": len(members),
            }
            if version == "v4":
                row["Authorized"] = 1
            rows.append(row)
        return rows

    def _series_row(self, s: Series, version: str) -> dict[str, Any]:
        if version == "v4":
            return {
                "SeriesInstanceUID": s.uid,
                "StudyInstanceUID": s.study,
                "Modality": s.modality.upper(),
                "ProtocolName": None,
                "SeriesDate": mdy(s.series_date),
                "SeriesDescription": s.description,
                "BodyPartExamined": s.body_part,
                "SeriesNumber": 1,
                "AnnotationsFlag": None,
                "Collection": s.collection,
                "Site": "TCIA",
                "PatientID": s.patient,
                "PatientSex": s.sex,
                "PatientAge": s.age,
                "Manufacturer": s.manufacturer.upper() if s.manufacturer else None,
                "ManufacturerModelName": None,
                "SoftwareVersions": None,
                "ImageCount": s.image_count,
                "MaxSubmissionTimestamp": mdy(s.submitted_moment.date()),
                "LicenseName": LICENSE_NAME,
                "LicenseURI": LICENSE_URI,
                "DataDescriptionURI": f"https://doi.org/10.7937/tcia.{s.collection.lower()}",
                "FileSize": s.size,
                "ReleasedStatus": "Released",
                "DateReleased": mdy(s.released),
                "StudyDesc": "Study",
                "StudyDate": mdy(s.study_date),
                "ThirdPartyAnalysis": "NO",
                "Authorized": 1,
            }
        return {
            "SeriesInstanceUID": s.uid,
            "StudyInstanceUID": s.study,
            "Modality": s.modality,
            "ProtocolName": None,
            "SeriesDate": f"{s.series_date} 00:00:00.0" if s.series_date else None,
            "SeriesDescription": s.description,
            "BodyPartExamined": s.body_part,
            "SeriesNumber": 1,
            "AnnotationsFlag": False,
            "Collection": s.collection,
            "PatientID": s.patient,
            "Manufacturer": s.manufacturer,
            "ManufacturerModelName": None,
            "SoftwareVersions": None,
            "ImageCount": s.image_count,
            "TimeStamp": java_timestamp(s.submitted_moment),
            "LicenseName": LICENSE_NAME,
            "LicenseURI": LICENSE_URI,
            "CollectionURI": f"https://doi.org/10.7937/tcia.{s.collection.lower()}",
            "FileSize": s.size,
            "DateReleased": java_timestamp(s.released_moment),
            "StudyDesc": "Study",
            "StudyDate": f"{s.study_date} 00:00:00.0",
            "ThirdPartyAnalysis": "NO",
        }

    def _getSeries(self, params: dict[str, str], version: str, pool: list[Series]) -> list[dict[str, Any]]:
        found = self._match(
            pool,
            params,
            Collection="collection",
            PatientID="patient",
            StudyInstanceUID="study",
            Modality="modality",
            BodyPartExamined="body_part",
            Manufacturer="manufacturer",
            SeriesInstanceUID="uid",
        )
        return [self._series_row(s, version) for s in found]

    def _one(self, pool: list[Series], params: dict[str, str]) -> Series | None:
        uid = params.get("SeriesInstanceUID", "")
        return next((s for s in pool if s.uid.upper() == uid.upper()), None)

    def _getSeriesSize(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        s = self._one(pool, params)
        return [{"TotalSizeInBytes": s.size, "ObjectCount": s.image_count}] if s else []

    def _getSOPInstanceUIDs(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        # NBIA's query has no ORDER BY: the rows come in the database's order (here: as made).
        s = self._one(pool, params)
        return [{"SOPInstanceUID": sop} for sop, _ in s.files()] if s else []

    def _values(self, found: list[Series], attr: str, column: str) -> list[dict[str, Any]]:
        values = sorted(
            {(getattr(s, attr) or "").upper() or None for s in found}, key=lambda v: (v is not None, v or "")
        )
        return [{column: v} for v in values]

    def _getModalityValues(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        return self._values(
            self._match(pool, params, Collection="collection", BodyPartExamined="body_part"),
            "modality",
            "Modality",
        )

    def _getBodyPartValues(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        return self._values(
            self._match(pool, params, Collection="collection", Modality="modality"),
            "body_part",
            "BodyPartExamined",
        )

    def _since(self, text: str, version: str, *, v1_day_first: bool) -> dt.date | None:
        fmt = "%m-%d-%Y" if version == "v4" else ("%d/%m/%Y" if v1_day_first else "%Y/%m/%d")
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            return None

    def _getUpdatedSeries(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        since = self._since(
            params.get("fromDate") or ("01-01-1900" if version == "v4" else "01/01/1900"),
            version,
            v1_day_first=True,
        )
        if since is None:
            return []
        midnight = dt.datetime.combine(since, dt.time())
        rows = [self._series_row(s, version) for s in pool if s.released_moment > midnight]
        if version != "v4":
            rows = [{k: row.get(k) for k in UPDATED_V1} for row in rows]
        return rows

    def _released_since(
        self, params: dict[str, str], version: str, pool: list[Series], **columns: str
    ) -> list[Series]:
        """Series of ``pool`` matching ``columns`` released since the request's date: v4 ``fromDate``
        (MM-DD-YYYY, ``>=``), v1/v2 ``Date`` (yyyy/MM/dd, ``>``); an unreadable date matches none."""
        since = self._since(params["fromDate" if version == "v4" else "Date"], version, v1_day_first=False)
        if since is None:
            return []
        midnight = dt.datetime.combine(since, dt.time())
        return [
            s
            for s in self._match(pool, params, **columns)
            if (s.released_moment >= midnight if version == "v4" else s.released_moment > midnight)
        ]

    def _NewPatientsInCollection(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        found = self._released_since(params, version, pool, Collection="collection")
        return list({s.patient: self._patient_row(s, version) for s in found}.values())

    def _NewStudiesInPatientCollection(
        self, params: dict[str, str], version: str, pool: list[Series]
    ) -> list[dict[str, Any]]:
        found = self._released_since(params, version, pool, Collection="collection", PatientID="patient")
        # SeriesCount counts the series released since the date, as the query groups after filtering.
        return self._study_rows(found, version)

    # -- images --------------------------------------------------------------------------------
    def _single_image(
        self, request: BaseHTTPRequestHandler, params: dict[str, str], fault: str | None, pool: list[Series]
    ) -> None:
        """``getSingleImage``: one instance's file as it is stored. Only an absent parameter is
        "missing" (NBIA tests ``== null``); an image it does not find (an empty UID too) makes its
        DAO answer null and the next line throw a NullPointerException: a 500."""
        if "SeriesInstanceUID" not in params or "SOPInstanceUID" not in params:
            required = b"A parameter, SeriesInstanceUID and SOPInstanceUID, are required for this API call."
            return self._send(request, 400, "application/json", required)
        s = self._one(pool, params)
        data = None
        if s is not None:
            data = next((d for sop, d in s.files() if sop == params["SOPInstanceUID"]), None)
        if data is None:
            message = (
                "Server was not able to process your request\n"
                'Cannot invoke "gov.nih.nci.nbia.wadosupport.WADOSupportDTO.getCollection()" because '
                '"wdto" is null'
            )
            return self._send(request, 500, "text/plain", message.encode())
        if fault == "garbage":
            data = b"<html><body>not an image</body></html>" + bytes(200)
        disposition = {"Content-Disposition": f"attachment; filename={params['SOPInstanceUID']}.dcm"}
        self._send(request, 200, "application/dicom", data, disposition)

    def _image(
        self,
        request: BaseHTTPRequestHandler,
        endpoint: str,
        params: dict[str, str],
        fault: str | None,
        pool: list[Series],
    ) -> None:
        s = self._one(pool, params)
        self.image_requests[params.get("SeriesInstanceUID", "")] += 1
        if self.image_delay:
            time.sleep(self.image_delay)  # a slow archive, so that a test can interrupt a download
        if s is None:
            message = (
                "The user has not been granted the access to image with given SeriesInstanceUID,"
                f"{params['SeriesInstanceUID']}. Please contact System Admin to resolve this issue."
            )
            return self._send(request, 400, "application/json", message.encode())
        with_md5 = endpoint == "getImageWithMD5Hash" or params.get("IncludeMD5", "").lower() == "yes"
        new_names = params.get("NewFileNames", "").lower() == "yes"
        headers = {"Content-Disposition": f'attachment; filename="{s.uid}.zip"'}
        cache_key = (s.uid, endpoint, with_md5, new_names, self.md5_entries)
        if fault is None and cache_key in self._zips:
            return self._send(request, 200, "application/octet-stream", self._zips[cache_key], headers)
        files = s.files()
        width = len(str(len(files)))
        names = [f"1-{i + 1:0{width}d}.dcm" if new_names else f"{i + 1:08d}.dcm" for i in range(len(files))]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            if endpoint == "getImage":
                z.writestr("LICENSE", f"{s.collection} is licensed under {LICENSE_NAME} ({LICENSE_URI}).\n")
            for index, (name, (_, data)) in enumerate(zip(names, files, strict=True)):
                if fault == "missing_instance" and index == len(files) - 1:
                    continue
                if fault == "zip_slip" and index == 0:
                    name = "../../escaped.dcm"
                if fault == "absolute_path" and index == 0:
                    name = "/tmp/absolute.dcm"
                if fault == "bomb" and index == 0:
                    data = bytes(64 << 20)  # 64 MB of zeros, about 64 KB deflated
                z.writestr(name, data)
            if with_md5 and self.md5_entries != "none":
                lines = ["Filename,MD5Hash"]
                for index, (name, (_, data)) in enumerate(zip(names, files, strict=True)):
                    if self.md5_entries == "some" and index == 0:
                        continue
                    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
                    lines.append(f"{name},{'0' * 32 if fault == 'bad_md5' else digest}")
                if fault == "md5_field":
                    lines.append("x" * 200_000 + ",0")  # more than Python's csv takes in one field
                z.writestr("md5hashes.csv", "\n".join(lines) + "\n")
        body = buffer.getvalue()
        if fault == "encrypted":  # every entry flagged as encrypted: unreadable without a password
            flagged = bytearray(body)
            for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
                at = flagged.find(signature)
                while at != -1:
                    flagged[at + flags] |= 1
                    at = flagged.find(signature, at + 4)
            body = bytes(flagged)
        if fault == "truncated_zip":
            body = body[: len(body) // 2]
        if fault == "corrupt_zip":
            middle = len(body) // 3
            body = body[:middle] + bytes(64) + body[middle + 64 :]
        if fault is None and self.cache_zips:
            self._zips[cache_key] = body
        self._send(request, 200, "application/octet-stream", body, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a TCIA (NBIA REST API) emulator on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--cache-zips", action="store_true", help="build each series' zip once")
    parser.add_argument("--collections", default="lidc_idri,soft_tissue_sarcoma", help="IDC collection ids")
    parser.add_argument("--patients", type=int, default=3, help="patients per collection")
    parser.add_argument("--max-images", type=int, default=4, help="images per series at most")
    parser.add_argument("--pixels", type=int, default=8, help="rows and columns of each image")
    args = parser.parse_args()
    series = catalogue_from_idc(args.collections.split(","), args.patients, args.max_images, args.pixels)
    emulator = TciaEmulator(series, port=args.port)
    emulator.cache_zips = args.cache_zips
    emulator.serve_until_interrupted(f"TCIA emulator at {emulator.v4} ({len(emulator.series)} series)")


if __name__ == "__main__":
    main()
