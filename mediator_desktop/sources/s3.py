"""Amazon S3 and S3-compatible object stores (MinIO, Ceph...), listed through boto3.

A source holds one or more buckets of one endpoint (AWS when none is given) and reads them either
anonymously (public buckets) or with an access key kept in the OS keyring, written
``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` with an optional ``:SESSION_TOKEN``. Without a key and not
anonymous, boto3's own chain applies (environment, ``~/.aws``, an instance role).

Levels: bucket > folder > ... > object; a leaf is an object at any depth from 2, its path
``(bucket, *key.split("/"))``. The hierarchy is a fixed tuple of ``LEVELS`` names: ``bucket``, one
name per folder level, ``object`` last. A key template such as ``{patient}/{kind}/...`` names the
key's leading folders (a ``{field}`` segment names its level; a literal segment is ``folder N``);
the other folder levels are ``folder N`` (N counts the key's segments from 1). With ``{patient}``
the source joins a clinical table's patients (``join_patients``). Keys the hierarchy cannot hold
are skipped and logged: folder markers (keys ending in ``/``), keys with an empty segment
(``a//b``) or a ``.``/``..`` segment (HTTP clients would fold it into another path), and keys of
more than ``LEVELS - 1`` segments.

Fingerprint of an object: its size, its ETag (``etag:<hex>`` or, for a multipart upload,
``etag:<hex>-<parts>``), when it was last modified (ISO 8601, UTC, whole seconds) and, in a
versioned bucket, its VersionId.

Downloads are pinned to what the set resolved: in a versioned bucket the URL names the version, so
an object overwritten or deleted since still downloads as it was; every download also sends
``If-Match`` with the pinned ETag, so in an unversioned bucket a changed object fails with a 412
(a drift, never silently the new bytes). A single-part ETag is checked as the object's MD5 (unless
the bucket encrypts with KMS by default: then an ETag is no MD5); a multipart ETag is checked in a
finishing step that recomputes it from the part size one HEAD request tells (``PartNumber=1``),
when the parts are of one size; otherwise only the size is checked. The bytes move through the
transfer engine: plain URLs for anonymous access, URLs presigned for an hour otherwise.

Update tracking (``track``) lists the set's prefixes again (S3 has no "changed since" query): new,
overwritten and deleted objects become drift; in a versioned bucket the listing of every version
also tells whether the pinned versions are still there.

Errors: every boto3 failure becomes a ``SourceError`` naming the bucket and what to do (a bucket
that does not exist, a refused key, an endpoint out of reach: ``ArchiveUnreachable``), never a
botocore traceback. boto3 runs with connect/read timeouts and its standard retry mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from mediator_desktop._version import __version__
from mediator_desktop.core.errors import (
    ArchiveUnreachable,
    IntegrityError,
    MediatorError,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.manifest import TAB, Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    LeafPlan,
    RemoteFile,
    SourceKind,
    SourceOption,
    Tracked,
    whole_number,
)
from mediator_desktop.core.transfer import Checked

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Levels of every S3 hierarchy: bucket, ``LEVELS - 2`` folder levels, object.
LEVELS = 32
DEFAULT_REGION = "us-east-1"
DEFAULT_CONNECTIONS = 16
#: Seconds a browsed listing (one bucket and prefix) is reused, so paging through it is one listing.
LISTING_SECONDS = 30.0
#: Seconds a bucket's versioning and default encryption are reused.
BUCKET_SECONDS = 600.0
#: Lifetime of a presigned download URL (the engine plans a leaf right before fetching it).
PRESIGN_SECONDS = 3600
#: Listings and HEAD requests at once when a set has many prefixes.
LIST_THREADS = 8

_MD5 = re.compile(r"[0-9a-f]{32}")
_MULTIPART = re.compile(r"[0-9a-f]{32}-([1-9][0-9]*)")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Bucket names boto3 accepts (S3 itself is stricter; an endpoint says when it refuses one).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
#: Bucket names AWS serves at ``https://<bucket>.s3.<region>.amazonaws.com`` with a valid certificate.
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_CHANGED = (
    "changed since the set was resolved (it no longer matches the pinned ETag); check the set for updates"
)

KIND = SourceKind(
    "s3",
    "Amazon S3 / object store",
    "Buckets of Amazon S3 or an S3-compatible store (MinIO, Ceph...): browsed by prefix, each object "
    "pinned to its version (or ETag) and downloaded in parallel.",
    options=(
        SourceOption(
            "buckets",
            "Buckets",
            "The buckets to browse, separated by commas, e.g. genomics, scans.",
            required=True,
        ),
        SourceOption(
            "endpoint_url",
            "Endpoint",
            "The S3 endpoint, e.g. https://minio.lab.example:9000; empty for Amazon S3.",
            kind="url",
        ),
        SourceOption("region", "Region", "The buckets' region.", default=DEFAULT_REGION),
        SourceOption(
            "anonymous",
            "Anonymous access",
            "Read public buckets without signing requests (no access key needed).",
            kind="bool",
            default=False,
        ),
        SourceOption(
            "key_template",
            "Key template",
            "What the keys' leading folders are, e.g. {patient}/{kind}/... ; a {patient} segment lets "
            "clinical tables join on it.",
        ),
        SourceOption(
            "connections",
            "Connections",
            "Downloads from this store at once.",
            kind="int",
            default=DEFAULT_CONNECTIONS,
        ),
    ),
    secret="access key",
    secret_help="ACCESS_KEY_ID:SECRET_ACCESS_KEY (an optional third part :SESSION_TOKEN)",
)


# -- configuration -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Segment:
    """One folder level a key template names: a ``{field}`` or a literal folder name."""

    field: str | None
    text: str


def parse_template(template: str | None) -> tuple[Segment, ...]:
    """The folder levels a key template names, coarsest first: ``{patient}/{kind}/...`` gives a
    ``patient`` and a ``kind`` level; a trailing ``...`` (optional) stands for whatever follows.

    Raises:
        ValidationError: an empty segment, ``...`` before the end, a field that is not alone in
            its segment, a field named twice or ``bucket``/``object``, or too many segments.
    """
    text = (template or "").strip().strip("/")
    if not text:
        return ()
    parts = text.split("/")
    if parts[-1] == "...":
        parts.pop()
    segments: list[Segment] = []
    for part in parts:
        if part == "...":
            raise ValidationError(f"key template {template!r}: '...' may only end it")
        if not part.strip():
            raise ValidationError(f"key template {template!r} has an empty segment")
        match = _FIELD.fullmatch(part)
        if match is None and ("{" in part or "}" in part):
            raise ValidationError(
                f"key template {template!r}: write a field alone in its segment, as {{patient}}, not {part!r}"
            )
        name = match.group(1) if match else None
        if name in ("bucket", "object"):
            raise ValidationError(f"key template {template!r}: {{{name}}} is a level of its own; rename it")
        if name is not None and any(s.field == name for s in segments):
            raise ValidationError(f"key template {template!r} names {{{name}}} twice")
        segments.append(Segment(name, part))
    if len(segments) > LEVELS - 2:
        raise ValidationError(f"key template {template!r} has more than {LEVELS - 2} folder levels")
    return tuple(segments)


def levels_for(segments: Sequence[Segment]) -> tuple[str, ...]:
    """The fixed hierarchy: ``bucket``, the template's names, ``folder N`` fillers, ``object``."""
    names = ["bucket"]
    names += [s.field or f"folder {i}" for i, s in enumerate(segments, start=1)]
    names += [f"folder {i}" for i in range(len(segments) + 1, LEVELS - 1)]
    names.append("object")
    return tuple(names)


def parse_secret(secret: str, source_id: str) -> tuple[str, str, str | None]:
    """``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`` as its parts (the message never shows them)."""
    parts = secret.strip().split(":", 2)
    if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
        raise ValidationError(
            f"the access key of S3 archive {source_id!r} must read ACCESS_KEY_ID:SECRET_ACCESS_KEY "
            "(an optional third part :SESSION_TOKEN); store it again with "
            f"`mediator sources secret {source_id}`"
        )
    token = parts[2].strip() if len(parts) == 3 and parts[2].strip() else None
    return parts[0].strip(), parts[1].strip(), token


def _buckets(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    buckets = tuple(dict.fromkeys(str(b).strip() for b in items if str(b).strip()))
    if not buckets:
        raise ValidationError("an S3 archive needs at least one bucket (buckets: genomics, scans)")
    for bucket in buckets:
        if not _BUCKET.fullmatch(bucket):
            raise ValidationError(
                f"{bucket!r} is not a bucket name: use letters, digits, '.', '-' and '_' (3 to 255)"
            )
    return buckets


# -- what a listing says -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    size: int
    etag: str  # without quotes; "" when the store gave none
    modified: str  # ISO 8601 UTC, whole seconds
    version: str | None  # VersionId, in a versioned bucket
    latest: bool = True


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _shown_time(iso: str) -> str:
    return iso.replace("T", " ").replace("Z", " UTC")


def _etag(value: object) -> str:
    return str(value or "").strip().strip('"')


def _entry(item: Mapping[str, Any], version: bool) -> _Object:
    return _Object(
        str(item["Key"]),
        int(item["Size"]),
        _etag(item.get("ETag")),
        _iso(item.get("LastModified")),
        str(item["VersionId"]) if version else None,
        bool(item.get("IsLatest", True)),
    )


def _path_of(bucket: str, key: str) -> tuple[str, ...] | None:
    """The leaf path of ``key``, or None when the hierarchy cannot hold it (see the module docstring)."""
    segments = key.split("/")
    if len(segments) > LEVELS - 1 or any(s in ("", ".", "..") for s in segments):
        return None
    return (bucket, *segments)


def _fingerprint(obj: _Object) -> dict[str, Any]:
    return {
        "size": obj.size,
        "checksum": f"etag:{obj.etag}" if obj.etag else None,
        "version": obj.version,
        "released": obj.modified,
    }


class _Skipped:
    """Keys a listing could not hold, counted and logged once per operation."""

    def __init__(self) -> None:
        self.count = 0
        self.example = ""

    def add(self, bucket: str, key: str) -> None:
        self.count += 1
        self.example = self.example or f"s3://{bucket}/{key}"

    def log(self, source_id: str) -> None:
        if self.count:
            log.info(
                "S3 archive %s: skipped %d keys the hierarchy cannot hold (folder markers, empty or dot "
                "segments, more than %d segments), e.g. %s",
                source_id,
                self.count,
                LEVELS - 1,
                self.example,
            )


# -- the source ------------------------------------------------------------------------------------------
class S3Source:
    """S3 buckets as a ``DataSource`` (with ``Tracking`` and ``Joining``). Thread-safe.

    Attributes:
        buckets: the configured buckets, the browse root.
        endpoint_url: the endpoint, or None for Amazon S3.
        patient_level: ``"patient"`` when the key template names ``{patient}``, else None.
        template: the key template's folder levels.
    """

    filterable: tuple[str, ...] = ()

    def __init__(
        self,
        source_id: str,
        buckets: Sequence[str],
        *,
        endpoint_url: str | None = None,
        region: str = DEFAULT_REGION,
        anonymous: bool = False,
        secret: str | None = None,
        key_template: str | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        title: str | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        attempts: int = 4,
    ) -> None:
        """Args:
        buckets: bucket names (at least one).
        endpoint_url: an S3 endpoint other than AWS (``http(s)://host[:port]``).
        anonymous: sign nothing (public buckets); ``secret`` is then not used.
        secret: ``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`` from the OS keyring.
        timeout: connect and read timeouts of boto3's requests (seconds).
        attempts: tries per request in boto3's standard retry mode (1: no retry).
        """
        self.source_id = source_id
        self.buckets = _buckets(list(buckets))
        endpoint = (endpoint_url or "").strip().rstrip("/") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValidationError(
                f"the endpoint of S3 archive {source_id!r} must be an http(s) address, not {endpoint!r}"
            )
        self.endpoint_url = endpoint
        self.region = region.strip() or DEFAULT_REGION
        self.anonymous = anonymous
        self._credentials = None if anonymous or not secret else parse_secret(secret, source_id)
        self.template = parse_template(key_template)
        self.key_template = key_template or ""
        self.hierarchy = Hierarchy(levels_for(self.template))
        #: The key segment (0-based) holding the patient, when the template names one.
        self._patient_segment = next((i for i, s in enumerate(self.template) if s.field == "patient"), None)
        self.patient_level: str | None = "patient" if self._patient_segment is not None else None
        self.connections = max(1, int(connections))
        where = f" at {self._where()}" if self.endpoint_url else ""
        self.title = title or f"S3 {', '.join(self.buckets)}{where}"
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._lock = threading.Lock()
        self._s3: Any = None
        self._listings: dict[tuple[str, str], tuple[float, list[BrowseItem]]] = {}
        self._versioning: dict[str, tuple[float, bool]] = {}
        self._md5_etags: dict[str, tuple[float, bool]] = {}

    def __repr__(self) -> str:
        return f"<S3Source {self.source_id}: {', '.join(self.buckets)} at {self._where()}>"

    # -- boto3 ---------------------------------------------------------------------------------------
    def _client(self) -> Any:
        """The boto3 client (made on first use: boto3 takes a while to import). Thread-safe."""
        with self._lock:
            if self._s3 is None:
                import boto3.session  # type: ignore[import-untyped]
                from botocore import UNSIGNED  # type: ignore[import-untyped]
                from botocore.config import Config  # type: ignore[import-untyped]

                config = Config(
                    region_name=self.region,
                    signature_version=UNSIGNED if self.anonymous else "s3v4",
                    connect_timeout=self.timeout[0],
                    read_timeout=self.timeout[1],
                    retries={"max_attempts": self.attempts, "mode": "standard"},
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    max_pool_connections=LIST_THREADS * 2,
                    user_agent_extra=f"MEDIator-Desktop/{__version__}",
                )
                key_id, secret, token = self._credentials or (None, None, None)
                session = boto3.session.Session(
                    aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token
                )
                self._s3 = session.client("s3", endpoint_url=self.endpoint_url, config=config)
            return self._s3

    def close(self) -> None:
        with self._lock:
            client, self._s3 = self._s3, None
        if client is not None:
            client.close()

    def _where(self) -> str:
        return urlsplit(self.endpoint_url).netloc if self.endpoint_url else "Amazon S3"

    @contextlib.contextmanager
    def _answers(self, bucket: str, what: str) -> Iterator[None]:
        """Turns boto3's failures inside the block into errors that name ``bucket`` and what to do."""
        bx = _errors()
        try:
            yield
        except bx.ClientError as exc:
            raise self._refusal(exc, bucket, what) from None
        except (bx.ConnectTimeoutError, bx.EndpointConnectionError, bx.ProxyConnectionError) as exc:
            details = getattr(exc, "kwargs", {})
            reason = re.sub(r"^<[^>]*>: ", "", str(details.get("error") or exc))
            raise ArchiveUnreachable(
                f"cannot reach the S3 endpoint {self._where()} for bucket {bucket!r}: {reason}; check the "
                f"endpoint of archive {self.source_id!r}, the network, a proxy or VPN",
                host=urlsplit(str(details.get("endpoint_url") or self.endpoint_url or "")).netloc,
                reason=reason,
            ) from None
        except bx.ReadTimeoutError:
            raise SourceError(
                f"S3 ({self._where()}) did not answer in time for {what} of bucket {bucket!r}; try later"
            ) from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError):
            raise SourceError(
                f"S3 archive {self.source_id!r} has no access key for bucket {bucket!r}: store one with "
                f"`mediator sources secret {self.source_id}` (ACCESS_KEY_ID:SECRET_ACCESS_KEY), or turn "
                "on anonymous access for a public bucket"
            ) from None
        except bx.BotoCoreError as exc:
            raise SourceError(
                f"S3 ({self._where()}) failed on {what} of bucket {bucket!r}: {exc}; try later"
            ) from None

    def _refusal(self, exc: Any, bucket: str, what: str) -> MediatorError:
        """A ``ClientError`` (an answer of the store) as an error that says what to do."""
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message") or "").strip()
        sid, where = self.source_id, self._where()
        store = f"`mediator sources secret {sid}`"
        if code == "NoSuchBucket":
            return SourceError(
                f"S3 bucket {bucket!r} does not exist at {where}; check the buckets (and the endpoint) "
                f"of archive {sid!r}"
            )
        if code == "InvalidAccessKeyId":
            return SourceError(
                f"S3 ({where}) does not know the access key ID of archive {sid!r} (bucket {bucket!r}); "
                f"store the right ACCESS_KEY_ID:SECRET_ACCESS_KEY with {store}"
            )
        if code == "SignatureDoesNotMatch":
            return SourceError(
                f"S3 ({where}) refused the secret access key of archive {sid!r} for bucket {bucket!r} "
                "(the signature does not match); store the right ACCESS_KEY_ID:SECRET_ACCESS_KEY "
                f"with {store}"
            )
        if code in ("RequestTimeTooSkewed", "RequestExpired"):
            return SourceError(
                f"S3 ({where}) refused {what} of bucket {bucket!r} because this computer's clock is off "
                "(signed requests allow 15 minutes); set the clock right, then try again"
            )
        if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
            return SourceError(
                f"the session token of S3 archive {sid!r} has expired or is not valid (bucket {bucket!r}); "
                f"store fresh credentials with {store}"
            )
        if code in (
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ):
            region = error.get("Region") or exc.response.get("ResponseMetadata", {}).get(
                "HTTPHeaders", {}
            ).get("x-amz-bucket-region")
            hint = f"its region is {region}" if region else "it lives in another region"
            return SourceError(
                f"S3 bucket {bucket!r} is not in region {self.region} ({hint}); set the region of "
                f"archive {sid!r} to the bucket's"
            )
        if status == 412 or code in ("PreconditionFailed", "412"):
            return IntegrityError(f"{what} {_CHANGED}")
        if status == 404 or code in ("NoSuchKey", "NoSuchVersion", "404"):
            return SourceError(
                f"S3 bucket {bucket!r} no longer has {what}: it was deleted since the set was resolved; "
                "check the set for updates"
            )
        if code in ("AccessDenied", "AllAccessDisabled", "AccountProblem") or status == 403:
            if self.anonymous:
                return SourceError(
                    f"S3 bucket {bucket!r} refused anonymous access to {what} ({status} {code}): it is "
                    f"not public; store an access key with {store} and turn off anonymous access of "
                    f"archive {sid!r}"
                )
            return SourceError(
                f"S3 bucket {bucket!r} refused {what} to the access key of archive {sid!r} ({status} "
                f"{code}): the key lacks permission (s3:ListBucket, s3:GetObject); ask the bucket's "
                f"owner, or store another key with {store}"
            )
        if status >= 500 or code in ("SlowDown", "InternalError", "ServiceUnavailable"):
            return SourceError(
                f"S3 ({where}) answered {status} {code} for {what} of bucket {bucket!r}; try later"
            )
        return SourceError(
            f"S3 ({where}) answered {status} {code} for {what} of bucket {bucket!r}: {message[:200]}"
        )

    def _pool_map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``fn`` over ``items`` on up to ``LIST_THREADS`` threads (boto3 clients are thread-safe)."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(LIST_THREADS, len(items)), thread_name_prefix="s3-list") as pool:
            return list(pool.map(fn, items))

    # -- requests --------------------------------------------------------------------------------------
    def versioned(self, bucket: str) -> bool:
        """Whether ``bucket`` keeps versions (versioning enabled, or suspended after it was).

        A store that refuses to say (anonymous access to a public bucket often may not ask) counts
        as unversioned: downloads are then pinned by ETag alone.
        """
        return self._bucket_fact(bucket, self._versioning, self._ask_versioning)

    def _ask_versioning(self, bucket: str) -> bool:
        ClientError = _errors().ClientError
        client = self._client()
        with self._answers(bucket, "the versioning"):
            try:
                answer = client.get_bucket_versioning(Bucket=bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("AccessDenied", "NotImplemented", "MethodNotAllowed", "XNotImplemented"):
                    raise
                log.info(
                    "S3 bucket %s does not say whether it keeps versions (%s): pinned by ETag", bucket, code
                )
                return False
        return answer.get("Status") in ("Enabled", "Suspended")

    def _etags_are_md5(self, bucket: str) -> bool:
        """Whether ``bucket``'s single-part ETags are MD5s: not when it encrypts with KMS by default,
        or will not say (a key without s3:GetEncryptionConfiguration). Anonymous reads never meet
        KMS-encrypted objects (those need a key), so a public bucket's ETags count as MD5s. An object
        encrypted with KMS in a bucket that does not do so by default fails its MD5 check."""
        if self.anonymous:
            return True
        return self._bucket_fact(bucket, self._md5_etags, self._ask_encryption)

    def _ask_encryption(self, bucket: str) -> bool:
        ClientError = _errors().ClientError
        client = self._client()
        with self._answers(bucket, "the default encryption"):
            try:
                answer = client.get_bucket_encryption(Bucket=bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in (
                    "ServerSideEncryptionConfigurationNotFoundError",
                    "NotImplemented",
                    "XNotImplemented",
                ):
                    return True  # no default encryption, or a store without KMS
                if code != "AccessDenied":
                    raise
                log.info(
                    "S3 bucket %s does not tell its encryption (%s): ETags are not checked as MD5s",
                    bucket,
                    code,
                )
                return False
        rules = answer.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        algorithms = {
            str(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm", "")) for r in rules
        }
        return not any(a.startswith("aws:kms") for a in algorithms)

    def _bucket_fact(
        self, bucket: str, cache: dict[str, tuple[float, bool]], ask: Callable[[str], bool]
    ) -> bool:
        now = time.monotonic()
        with self._lock:
            known = cache.get(bucket)
        if known is not None and now - known[0] < BUCKET_SECONDS:
            return known[1]
        value = ask(bucket)
        with self._lock:
            cache[bucket] = (now, value)
        return value

    def _list(
        self, bucket: str, prefix: str, *, versions: bool, delimiter: bool = False
    ) -> tuple[list[_Object], list[str]]:
        """The objects under ``prefix`` (with ``versions``: every version, ``latest`` marking the
        current ones; delete markers left out) and, with ``delimiter``, the common prefixes one
        level down; every page."""
        client = self._client()
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            params["Delimiter"] = "/"
        operation = "list_object_versions" if versions else "list_objects_v2"
        objects: list[_Object] = []
        prefixes: list[str] = []
        what = f"the listing of s3://{bucket}/{prefix}"
        with self._answers(bucket, what):
            for page in client.get_paginator(operation).paginate(**params):
                prefixes += [str(p["Prefix"]) for p in page.get("CommonPrefixes") or () if p.get("Prefix")]
                try:
                    objects += [
                        _entry(item, versions)
                        for item in page.get("Versions" if versions else "Contents") or ()
                    ]
                except (KeyError, TypeError, ValueError):
                    raise SourceError(
                        f"S3 ({self._where()}) answered {what} with an entry without a key, size or version"
                    ) from None
        return objects, prefixes

    def _head(self, bucket: str, key: str, versioned: bool) -> _Object | None:
        """The current version of object ``key``, None when there is none (absent or deleted)."""
        ClientError = _errors().ClientError
        client = self._client()
        with self._answers(bucket, f"object {key!r}"):
            try:
                head = client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) == 404:
                    return None
                raise
        version = (str(head.get("VersionId") or "") or "null") if versioned else None
        return _Object(
            key, int(head["ContentLength"]), _etag(head.get("ETag")), _iso(head.get("LastModified")), version
        )

    # -- browsing -------------------------------------------------------------------------------------
    def _check_path(self, path: tuple[str, ...]) -> None:
        if path and path[0] not in self.buckets:
            raise ValidationError(
                f"S3 archive {self.source_id!r} has no bucket {path[0]!r}; "
                f"its buckets: {', '.join(self.buckets)}"
            )
        for key in path[1:]:
            if "/" in key:
                raise ValidationError(
                    f"{key!r} is not one folder or object name: a path holds the key's segments one by one"
                )

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        """The buckets (root), or the folders and objects one level below ``path``, sorted by name.

        A listing is kept for ``LISTING_SECONDS``, so paging through it costs one listing.
        """
        if filters:
            raise ValidationError("S3 objects have no metadata to filter on; browse without filters")
        if len(path) >= len(self.hierarchy.levels):
            raise ValidationError(f"S3 paths are at most {len(self.hierarchy.levels)} keys deep")
        self._check_path(path)
        items = self._children(path) if path else [BrowseItem(b, "bucket", b) for b in self.buckets]
        return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))

    def _children(self, path: tuple[str, ...]) -> list[BrowseItem]:
        bucket, prefix = path[0], "".join(f"{k}/" for k in path[1:])
        now = time.monotonic()
        with self._lock:
            cached = self._listings.get((bucket, prefix))
        if cached is not None and now - cached[0] < LISTING_SECONDS:
            return cached[1]
        versioned = self.versioned(bucket)
        objects, prefixes = self._list(bucket, prefix, versions=False, delimiter=True)
        versions: dict[str, str] = {}
        if versioned:
            every, _ = self._list(bucket, prefix, versions=True, delimiter=True)
            versions = {o.key: str(o.version) for o in every if o.latest}
        level = self.hierarchy.levels[len(path)]
        items: list[BrowseItem] = []
        skipped = _Skipped()
        for common in prefixes:
            name = common[len(prefix) :].removesuffix("/")
            if name in ("", ".", "..") or len(path) >= len(self.hierarchy.levels) - 1:
                skipped.add(bucket, common)
                continue
            items.append(BrowseItem(name, level, name))
        for obj in objects:
            name = obj.key[len(prefix) :]
            if name in ("", ".", ".."):
                skipped.add(bucket, obj.key)
                continue
            details = [("ETag", obj.etag), ("Last modified", _shown_time(obj.modified))]
            if obj.key in versions:
                details.append(("Version", versions[obj.key]))
            items.append(BrowseItem(name, "object", name, leaves=1, size=obj.size, details=tuple(details)))
        skipped.log(self.source_id)
        items.sort(key=lambda item: (item.key, item.level == "object"))
        with self._lock:
            self._listings = {k: v for k, v in self._listings.items() if now - v[0] < LISTING_SECONDS}
            self._listings[(bucket, prefix)] = (now, items)
        return items

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        raise ValidationError(f"S3 cannot filter on {name!r}: its objects have no metadata filters")

    def check(self) -> str:
        """One listing of one key per bucket (and its versioning): the store answers, every bucket
        exists and the access (key or anonymous) may list it.

        Raises:
            SourceError: naming the first bucket that fails, and why.
        """
        client = self._client()
        said = []
        for bucket in self.buckets:
            versioned = self.versioned(bucket)
            with self._answers(bucket, "the listing"):
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            said.append(f"{bucket} ({'versioned' if versioned else 'not versioned'})")
        return f"reachable at {self._where()}: {', '.join(said)}"

    def pointer(self, *path: str) -> Pointer:
        return self.hierarchy.validate(Pointer.of(self.source_id, *path))

    # -- resolution -----------------------------------------------------------------------------------
    def _rules(self, selection: Selection) -> tuple[list[Rule], list[tuple[str, ...]]]:
        """This source's rules (checked) and the paths to list: the included ones not inside another."""
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
            if rule.pointer.filters:
                raise ValidationError(
                    f"pointer {rule.pointer} has filters, but S3 objects have no metadata to filter on"
                )
            self._check_path(rule.pointer.path)
        scopes = sorted({r.pointer.path for r in rules if r.include})
        if () in scopes:
            return rules, [(b,) for b in self.buckets]
        return rules, [s for s in scopes if not any(o != s and s[: len(o)] == o for o in scopes)]

    def _scan(
        self, scope: tuple[str, ...], pinned: Collection[tuple[str, str, str]] = ()
    ) -> tuple[list[_Object], bool, set[tuple[str, str, str]]]:
        """What lies at and below ``scope``: (current objects, whether the bucket keeps versions,
        which of the ``pinned`` (bucket, key, version) the listing holds). A scope deeper than a
        bucket means the objects under ``key/`` and the object ``key`` itself (one HEAD), never
        ``key`` as a mere prefix of other keys."""
        bucket, segments = scope[0], scope[1:]
        versioned = self.versioned(bucket)
        prefix = "".join(f"{k}/" for k in segments)
        listed, _ = self._list(bucket, prefix, versions=versioned)
        current = [o for o in listed if o.latest]
        held = {(bucket, o.key, str(o.version)) for o in listed if o.version is not None} & set(pinned)
        del listed
        if segments:
            exact = self._head(bucket, "/".join(segments), versioned)
            if exact is not None:
                current.append(exact)
        return current, versioned, held

    def _resolve(
        self, selection: Selection, pinned: Collection[tuple[str, str, str]] = ()
    ) -> tuple[Manifest, dict[str, bool], set[tuple[str, str, str]]]:
        """The manifest, whether each listed bucket keeps versions, and which of the ``pinned``
        (bucket, key, version) the listings hold (current or not)."""
        rules, scopes = self._rules(selection)
        builder = ManifestBuilder()
        versioned: dict[str, bool] = {}
        held: set[tuple[str, str, str]] = set()
        skipped = _Skipped()
        scans = self._pool_map(functools.partial(self._scan, pinned=pinned), scopes)
        # The scopes are disjoint (none inside another), so no object is met twice.
        for scope, (current, keeps, found) in zip(scopes, scans, strict=True):
            bucket = scope[0]
            versioned[bucket] = keeps
            held |= found
            for obj in current:
                path = _path_of(bucket, obj.key)
                if path is None:
                    skipped.add(bucket, obj.key)
                elif decide(rules, self.source_id, path, {}):
                    builder.add(self.source_id, path, **_fingerprint(obj))
        skipped.log(self.source_id)
        return builder.build(), versioned, held

    def resolve(self, selection: Selection) -> Manifest:
        """The objects ``selection`` selects: each included prefix listed to the end (every version
        in a versioned bucket, for the VersionIds), exclusions applied."""
        return self._resolve(selection)[0]

    # -- update tracking ------------------------------------------------------------------------------
    def track(self, selection: Selection, base: Manifest, since: float | None) -> Tracked:
        """What ``selection`` selects now: its prefixes listed again (S3 cannot say what changed
        since a time, so ``since`` is not used), with notes on the pinned objects that changed:
        whether their versions stay downloadable.

        Raises:
            SourceError: the store failed on a listing (nothing partial is returned).
        """
        state = f"S3 as of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        pinned = {
            (leaf.path[0], "/".join(leaf.path[1:]), leaf.fingerprint.version)
            for leaf in base.under(self.source_id)
            if leaf.fingerprint.version is not None
        }
        manifest, versioned, held = self._resolve(selection, pinned)
        now = {line.partition(TAB)[0]: line for line in manifest.lines()}
        kept: dict[str, int] = {}
        lost: dict[str, int] = {}
        unversioned: dict[str, int] = {}
        for line in base.lines():
            key = line.partition(TAB)[0]
            if now.get(key) == line:
                continue
            leaf = Leaf.decode(line)
            if leaf.source_id != self.source_id:
                continue
            bucket, object_key = leaf.path[0], "/".join(leaf.path[1:])
            version = leaf.fingerprint.version
            if not versioned.get(bucket, False) or version is None:
                unversioned[bucket] = unversioned.get(bucket, 0) + 1
            elif (bucket, object_key, version) in held or self._version_exists(bucket, object_key, version):
                kept[bucket] = kept.get(bucket, 0) + 1
            else:
                lost[bucket] = lost.get(bucket, 0) + 1
        notes = []
        if kept:
            notes.append(
                f"{_count(kept)} overwritten or deleted in {_named(kept)}: the pinned versions stay "
                "downloadable (the bucket keeps versions)"
            )
        if lost:
            notes.append(
                f"{_count(lost, 'pinned version')} deleted for good from {_named(lost)}: they can no "
                "longer be downloaded"
            )
        if unversioned:
            notes.append(
                f"{_count(unversioned)} overwritten or deleted in {_named(unversioned)}: the bucket keeps "
                "no versions, so the pinned ones can no longer be downloaded; update the set to download "
                "the current ones"
            )
        return Tracked(manifest, state, tuple(notes))

    def _version_exists(self, bucket: str, key: str, version: str) -> bool:
        """Whether one version of an object is still stored (asked only for an object a set picks
        by its full key: every other one is in the listing of its prefix)."""
        ClientError = _errors().ClientError
        client = self._client()
        with self._answers(bucket, f"version {version} of object {key!r}"):
            try:
                client.head_object(Bucket=bucket, Key=key, VersionId=version)
            except ClientError as exc:
                if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) in (
                    400,
                    404,
                    405,
                ):
                    return False
                raise
        return True

    # -- joins (the Integrator) -------------------------------------------------------------------------
    def join_patients(self, scope: Pointer, patients: Collection[str]) -> dict[str, list[tuple[str, ...]]]:
        """For each of ``patients`` with a folder below ``scope`` (this source's root, a bucket, or
        a folder above the patient level), its paths down to that folder: one delimiter listing per
        folder above the patient level (literal template segments cost none), never one request
        per patient. Patients it lacks are left out.

        Raises:
            ValidationError: the key template names no ``{patient}``, or ``scope`` is not a pointer
                into this source above the patient level.
        """
        if self._patient_segment is None:
            raise ValidationError(
                f"S3 archive {self.source_id!r} has no patient level to join on: give it a key template "
                "naming {patient}, e.g. {patient}/..."
            )
        depth = self._patient_segment + 2  # keys of a path down to a patient: bucket + folders
        if scope.source_id != self.source_id or scope.filters or scope.depth >= depth:
            raise ValidationError(
                f"join target {scope} must be a pointer into S3 archive {self.source_id!r}, without "
                f"filters, above its patient level ({' > '.join(self.hierarchy.levels[:depth])})"
            )
        self._check_path(scope.path)
        wanted = set(patients)
        frontier = [scope.path] if scope.path else [(b,) for b in self.buckets]
        for reached in range(len(frontier[0]) + 1, depth + 1):
            segment = self.template[reached - 2]
            if segment.field is None:  # a literal folder: no listing needed
                frontier = [(*path, segment.text) for path in frontier]
                continue
            listings = self._pool_map(self._folders, frontier)
            frontier = [
                (*path, name)
                for path, names in zip(frontier, listings, strict=True)
                for name in names
                if reached < depth or name in wanted
            ]
        found: dict[str, list[tuple[str, ...]]] = {}
        for path in sorted(frontier):
            found.setdefault(path[-1], []).append(path)
        return found

    def _folders(self, path: tuple[str, ...]) -> list[str]:
        """The names of the folders one level below ``path`` (one delimiter listing, every page)."""
        prefix = "".join(f"{k}/" for k in path[1:])
        _, prefixes = self._list(path[0], prefix, versions=False, delimiter=True)
        names = (p[len(prefix) :].removesuffix("/") for p in prefixes)
        return [name for name in names if name not in ("", ".", "..")]

    # -- fetching --------------------------------------------------------------------------------------
    def object_url(self, bucket: str, key: str, version: str | None = None) -> str:
        """Where the transfer engine GETs an object: a plain URL for anonymous access (path-style at
        a given endpoint), else one presigned for ``PRESIGN_SECONDS``; ``version`` pins a version."""
        if not self.anonymous:
            params = {"Bucket": bucket, "Key": key}
            if version:
                params["VersionId"] = version
            with self._answers(bucket, "a download address"):
                return str(
                    self._client().generate_presigned_url(
                        "get_object", Params=params, ExpiresIn=PRESIGN_SECONDS
                    )
                )
        if self.endpoint_url:
            base = f"{self.endpoint_url}/{bucket}"
        elif _DNS_BUCKET.fullmatch(bucket):
            base = f"https://{bucket}.s3.{self.region}.amazonaws.com"
        else:
            base = f"https://s3.{self.region}.amazonaws.com/{bucket}"
        url = f"{base}/{quote(key, safe='/')}"
        return f"{url}?versionId={quote(version, safe='')}" if version else url

    def leaf_urls(self, leaves: Iterable[Leaf]) -> Iterator[tuple[Leaf, str]]:
        """Each object's plain URL, pinned to its version (``?versionId=``) when the bucket keeps
        versions: never presigned (an export outlives a signature), never a request."""
        for leaf in leaves:
            bucket, key = leaf.path[0], "/".join(leaf.path[1:])
            if self.endpoint_url:
                base = f"{self.endpoint_url}/{bucket}"
            elif _DNS_BUCKET.fullmatch(bucket):
                base = f"https://{bucket}.s3.{self.region}.amazonaws.com"
            else:
                base = f"https://s3.{self.region}.amazonaws.com/{bucket}"
            url = f"{base}/{quote(key, safe='/')}"
            version = leaf.fingerprint.version
            yield leaf, f"{url}?versionId={quote(version, safe='')}" if version else url

    def plan(self, leaf: Leaf) -> LeafPlan:
        """One object, pinned: its version (when the bucket keeps versions) and ``If-Match`` with its
        ETag, checked by size and, when its ETag is an MD5, by MD5; a multipart ETag is recomputed
        in ``finish`` (see the module docstring), which costs one or two HEAD requests here.

        Raises:
            IntegrityError: the object changed since the set was resolved (seen by a HEAD request).
            SourceError: the store refused or failed a HEAD request.
        """
        bucket, segments = leaf.path[0], leaf.path[1:]
        if not segments:
            raise SourceError(f"{'/'.join(leaf.path)} is a bucket, not an object: resolve the set again")
        key = "/".join(segments)
        fingerprint = leaf.fingerprint
        checksum = fingerprint.checksum or ""
        etag = checksum[len("etag:") :] if checksum.startswith("etag:") else ""
        version = fingerprint.version
        headers = (("If-Match", f'"{etag}"'),) if etag else ()
        md5 = etag if _MD5.fullmatch(etag) and self._etags_are_md5(bucket) else None
        finish = None
        multipart = _MULTIPART.fullmatch(etag)
        if multipart and fingerprint.size is not None and self._etags_are_md5(bucket):
            part_size = self._part_size(bucket, key, version, etag, int(multipart.group(1)), fingerprint.size)
            if part_size is not None:
                finish = functools.partial(
                    _check_multipart, etag=etag, part_size=part_size, name=f"s3://{bucket}/{key}"
                )
        file = RemoteFile(self.object_url(bucket, key, version), segments[-1], fingerprint.size, md5, headers)
        return LeafPlan((file,), self._fields(bucket, segments), finish, count=1, heavy=finish is not None)

    def _part_size(
        self, bucket: str, key: str, version: str | None, etag: str, parts: int, size: int
    ) -> int | None:
        """The part size of a multipart object whose parts (but the last) are of one size, from
        HEAD ``PartNumber=1`` (and ``PartNumber=<last>`` to confirm); None when they are not, or
        the store does not say."""
        client = self._client()

        def part(number: int) -> tuple[int, int | None]:
            params: dict[str, Any] = {
                "Bucket": bucket,
                "Key": key,
                "PartNumber": number,
                "IfMatch": f'"{etag}"',
            }
            if version:
                params["VersionId"] = version
            with self._answers(bucket, f"s3://{bucket}/{key}"):
                head = client.head_object(**params)
            count = head.get("PartsCount")
            return int(head["ContentLength"]), int(count) if count is not None else None

        first, count = part(1)
        if count not in (None, parts) or first <= 0:
            return None
        if parts == 1:
            return first if first == size else None
        if not (parts - 1) * first < size <= parts * first:
            return None  # a store that ignores PartNumber, or parts of several sizes
        if parts > 2 and part(parts)[0] != size - (parts - 1) * first:
            return None
        return first

    def _fields(self, bucket: str, segments: tuple[str, ...]) -> dict[str, str]:
        folders = segments[:-1]
        fields = {"collection": bucket, "modality": "S3", "series": segments[-1]}
        below = folders
        index = self._patient_segment
        if index is not None and index < len(folders):
            fields["patient"] = folders[index]
            below = folders[index + 1 :]
        fields["study"] = " ".join(below) or "objects"
        return fields


def _errors() -> Any:
    """botocore's exceptions module (imported on first use, as boto3 is)."""
    from botocore import exceptions

    return exceptions


def _count(by_bucket: Mapping[str, int], noun: str = "object") -> str:
    total = sum(by_bucket.values())
    return f"{total:,} {noun}{'' if total == 1 else 's'}"


def _named(by_bucket: Mapping[str, int]) -> str:
    names = sorted(by_bucket)
    return ("bucket " if len(names) == 1 else "buckets ") + ", ".join(names)


def _check_multipart(stage: Path, downloaded: list[Path], *, etag: str, part_size: int, name: str) -> Checked:
    """A multipart object's ``finish``: its ETag recomputed (the MD5 of its parts' MD5s, ``-N``),
    and the whole file's MD5 in the same read, which ``verify`` compares with later: a match
    verifies the content as an MD5 does, so the leaf is not "checked by size only".

    Module level, so a worker process can run it.
    """
    digests: list[bytes] = []
    whole = hashlib.md5(usedforsecurity=False)
    with downloaded[0].open("rb") as f:
        while True:
            part = hashlib.md5(usedforsecurity=False)
            left = part_size
            while left:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                part.update(block)
                whole.update(block)
                left -= len(block)
            if left == part_size and digests:
                break
            digests.append(part.digest())
            if left:
                break
    got = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"
    if got != etag:
        raise IntegrityError(
            f"{name} does not match its multipart ETag ({etag}, parts of {part_size} bytes; got {got}); "
            "it was discarded, try again"
        )
    return Checked(downloaded, {downloaded[0].name: whole.hexdigest()}, complete=True)


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def create(source_id: str, options: Mapping[str, Any], secret: str | None, data_dir: Path) -> S3Source:
    """Registry factory. Options: ``buckets`` (required, comma-separated), ``endpoint_url`` (empty:
    AWS), ``region``, ``anonymous``, ``key_template``, ``connections``; the secret is the access key
    ``ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]``."""
    return S3Source(
        source_id,
        _buckets(options.get("buckets")),
        endpoint_url=str(options.get("endpoint_url") or "") or None,
        region=str(options.get("region") or DEFAULT_REGION),
        anonymous=_flag(options.get("anonymous")),
        secret=secret,
        key_template=str(options.get("key_template") or "") or None,
        connections=whole_number(options.get("connections"), DEFAULT_CONNECTIONS, "connections"),
    )
