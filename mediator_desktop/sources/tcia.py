"""The Cancer Imaging Archive through its NBIA REST API (v4; v1/v2 compatible).

Levels: collection > patient > study > series; a leaf is a series, fingerprinted by its size,
image count and release date (``DateReleased`` with ``MaxSubmissionTimestamp``). Quirks handled
as the NBIA server's code has them: an empty 200 means no rows, v4 dates are MM-DD-YYYY, v4
refuses unknown parameters, errors come as plain text. A bearer token is optional (legacy
restricted collections); it is passed in, never stored here.

A series downloads as TCIA's zip with MD5s (``plan``); its ``finish`` checks it before anything is
presented as complete: that it is a zip at all, its integrity, that no entry escapes the folder,
the MD5 of every image and the image count.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import threading
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from mediator_desktop.core.errors import IntegrityError, SourceError, ValidationError
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

DEFAULT_URL = "https://nbia.cancerimagingarchive.net/nbia-api/services/v4/"
FILTERABLE = ("Modality", "BodyPartExamined")
_LEVEL_PARAMS = ("Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")

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


class TciaSource:
    """NBIA REST API client as a ``DataSource``. Thread-safe."""

    hierarchy: Hierarchy = Hierarchy(("collection", "patient", "study", "series"))
    filterable: tuple[str, ...] = FILTERABLE
    #: NBIA builds each zip on the fly; a few at a time is polite and as fast.
    connections: int = 4

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
        rows = self._rows("getSeries", f"the series of {'/'.join(path) or 'TCIA'}", **params)
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
    def resolve(self, selection: Selection) -> Manifest:
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        builder = ManifestBuilder()
        scopes = sorted({r.pointer.path for r in rules if r.include})
        # A scope inside another one is fetched with it.
        scopes = [s for s in scopes if not any(o != s and s[: len(o)] == o for o in scopes)]
        if () in scopes:
            scopes = [(c.key,) for c in self.browse(limit=10**6).items]
        seen: set[str] = set()
        for scope in scopes:
            for row in self._series_rows(scope):
                path = tuple(str(row.get(p) or "") for p in _LEVEL_PARAMS)
                if not all(path) or path[3] in seen:
                    continue
                metadata = {name: str(row.get(name) or "").upper() or None for name in FILTERABLE}
                if not decide(_upper_filters(rules), self.source_id, path, metadata):
                    continue
                seen.add(path[3])
                released = "/".join(
                    str(row.get(k) or "")
                    for k in ("DateReleased", "MaxSubmissionTimestamp", "TimeStamp")
                    if row.get(k)
                )
                builder.add(
                    self.source_id,
                    path,
                    size=int(row["FileSize"]) if row.get("FileSize") is not None else None,
                    count=int(row["ImageCount"]) if row.get("ImageCount") is not None else None,
                    released=released or None,
                )
        return builder.build()

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
        except zipfile.BadZipFile:
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
                for name in images:
                    try:
                        data = archive.read(name)
                    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
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
                if "LICENSE" in names:
                    (into / "LICENSE").write_bytes(archive.read("LICENSE"))
                    out.append(into / "LICENSE")
                return out
        except (
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
            csv.Error,
        ) as exc:
            # A damaged list of MD5s, an entry flagged as encrypted, a field csv refuses, ...
            raise IntegrityError(f"TCIA's zip for series {series} is corrupt ({exc}); try again") from None


def _unpack_series(
    stage: Path, downloaded: list[Path], *, series: str, expected: int | None, size: int | None
) -> list[Path]:
    """A series' ``finish`` step (module level, so a worker process can run it)."""
    return TciaSource._unpack(downloaded[0], stage, series, expected, size)


def _upper_filters(rules: list[Any]) -> list[Any]:
    """Rules with filter values upper-cased: NBIA compares Modality and body part case-blind."""
    from mediator_desktop.core.pointer import make_filters
    from mediator_desktop.core.selection import Rule

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
