"""An emulator of Zenodo's deposit REST API (``https://zenodo.org/api``), for offline tests and demos.

It answers as Zenodo's developer documentation (developers.zenodo.org: Depositions, Deposition
files, Deposition actions, Errors) describes the legacy deposit API:

- ``POST /api/deposit/depositions`` (``{}`` or ``{"metadata": {...}}``): 201 with ``id``,
  ``conceptrecid``, ``record_id``, ``state: "unsubmitted"``, ``submitted: false``,
  ``metadata.prereserve_doi`` and ``links`` (``self``, ``html``, ``bucket``, ``files``, ``publish``,
  ``edit``, ``discard``, ``newversion``, ``latest_draft``, ``latest_draft_html``).
- ``GET /api/deposit/depositions`` (the owner's) and ``GET /api/deposit/depositions/{id}``.
- ``PUT /api/deposit/depositions/{id}`` with ``{"metadata": {...}}``: 200, or 400 ``{"status": 400,
  "message": "Validation error.", "errors": [{"field": "metadata.title", "message": ...}]}``.
- ``PUT /api/files/{bucket}/{filename}`` (raw body): 201 with ``key``, ``size``, ``checksum:
  "md5:<hex>"``, ``links``; ``GET`` of the same path gives the bytes. ``GET .../depositions/{id}/files``
  lists a deposition's files (``id``, ``filename``, ``filesize``, ``checksum``, ``links``); ``DELETE
  .../depositions/{id}/files/{file_id}`` removes one from a draft (204).
- ``POST .../actions/publish``: 202 with ``doi`` (``10.5281/zenodo.<id>``), ``doi_url``,
  ``conceptdoi``, ``record_id``, ``links.record``, ``links.record_html``, ``links.latest``,
  ``state: "done"``, ``submitted: true``; 400 ``Minimum one file must be provided.`` without files,
  400 with the field errors when the metadata lacks what publishing needs, and 400 ``New version's
  files must differ from all previous versions.`` when a new version repeats the last one's files.
- ``POST .../actions/newversion`` on a published deposition: 201 with that deposition, whose
  ``links.latest_draft`` names a new draft of the same concept (files and metadata copied, a new
  ``prereserve_doi``); asked again while that draft is open, it names the same draft.
- ``POST .../actions/discard`` and ``DELETE`` of an unpublished deposition (201 / 204);
  ``GET /api/records/{id}`` of a published one.
- Auth by ``Authorization: Bearer <token>`` or ``?access_token=``: 401 without or with an unknown
  token, 403 for a token without the ``deposit:write``/``deposit:actions`` scopes or another
  user's deposition.

Choices the documentation leaves open are [UNVERIFIED]: the 400 texts for a published deposition
changed without ``edit`` and for ``newversion`` on a draft, and the ``code`` values of field errors.

Faults are queued per endpoint (``create``, ``list``, ``get``, ``update``, ``upload``, ``files``,
``delete_file``, ``publish``, ``newversion``, ``discard``, ``delete``, ``record``, ``download``, or ``*``),
each used once: ``500``/``502``/``503``/``429[:after]``, ``delay:S``, ``drop`` and ``lost`` (do the work, then
close the connection without answering). Requests are counted per endpoint (``requests``); ``records`` holds
every deposition by id.

Standalone: ``python -m tests.helpers.zenodo_emulator --port 8083``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.net import Faults, LoopbackServer, Reply, dispatching_handler

DOI_PREFIX = "10.5281"
SCOPES = frozenset({"deposit:write", "deposit:actions"})
UPLOAD_TYPES = frozenset(
    {
        "publication",
        "poster",
        "presentation",
        "dataset",
        "image",
        "video",
        "software",
        "lesson",
        "physicalobject",
        "other",
    }
)
ACCESS_RIGHTS = frozenset({"open", "embargoed", "restricted", "closed"})
_401 = (
    "The server could not verify that you are authorized to access the URL requested. You either "
    "supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to "
    "supply the credentials required."
)
_403 = (
    "You don't have the permission to access the requested resource. It is either read-protected or "
    "not readable by the server."
)
_404 = (
    "The requested URL was not found on the server. If you entered the URL manually please check "
    "your spelling and try again."
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def doi_of(record_id: int) -> str:
    return f"{DOI_PREFIX}/zenodo.{record_id}"


@dataclass
class StoredFile:
    key: str
    data: bytes
    file_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def checksum(self) -> str:
        return "md5:" + hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class Deposition:
    """One deposition (a draft, or a published version of a concept record)."""

    id: int
    conceptrecid: int
    owner: str
    bucket: str
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    submitted: bool = False
    created: str = field(default_factory=_now)
    modified: str = field(default_factory=_now)
    #: The open draft of this concept's next version (on the version it was made from).
    next_draft: int | None = None

    @property
    def state(self) -> str:
        return "done" if self.submitted else "unsubmitted"

    @property
    def doi(self) -> str:
        return doi_of(self.id)

    @property
    def conceptdoi(self) -> str:
        return doi_of(self.conceptrecid)


def _message(status: int, message: str) -> Reply:
    return Reply(status, {"status": status, "message": message})


def _validation(*errors: Mapping[str, Any]) -> Reply:
    return Reply(400, {"status": 400, "message": "Validation error.", "errors": list(errors)})


def metadata_errors(metadata: Any, *, publishing: bool) -> list[dict[str, Any]]:
    """Zenodo's field errors for ``metadata``; ``publishing`` adds what only publishing needs."""
    if not isinstance(metadata, dict):
        return [{"field": "metadata", "message": "Not a valid mapping type.", "code": 10}]
    out: list[dict[str, Any]] = []

    def need(name: str) -> bool:
        value = metadata.get(name)
        if value in (None, "", []):
            if publishing:
                out.append(
                    {"field": f"metadata.{name}", "message": "Missing data for required field.", "code": 10}
                )
            return False
        return True

    if need("upload_type") and metadata["upload_type"] not in UPLOAD_TYPES:
        out.append({"field": "metadata.upload_type", "message": "Not a valid choice.", "code": 10})
    if need("title") and not isinstance(metadata["title"], str):
        out.append({"field": "metadata.title", "message": "Not a valid string.", "code": 10})
    need("description")
    if need("creators"):
        creators = metadata["creators"]
        if not isinstance(creators, list):
            out.append({"field": "metadata.creators", "message": "Not a valid list.", "code": 10})
        else:
            for i, creator in enumerate(creators):
                if not isinstance(creator, dict) or not str(creator.get("name") or "").strip():
                    out.append(
                        {"field": f"metadata.creators.{i}.name", "message": "Name is required.", "code": 10}
                    )
                orcid = creator.get("orcid") if isinstance(creator, dict) else None
                if orcid and not re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", str(orcid)):
                    out.append(
                        {
                            "field": f"metadata.creators.{i}.orcid",
                            "message": "Not a valid ORCID identifier.",
                            "code": 10,
                        }
                    )
    date = metadata.get("publication_date")
    if date not in (None, ""):
        try:
            dt.date.fromisoformat(str(date))
        except ValueError:
            out.append({"field": "metadata.publication_date", "message": "Not a valid date.", "code": 10})
    access = metadata.get("access_right")
    if access not in (None, "") and access not in ACCESS_RIGHTS:
        out.append({"field": "metadata.access_right", "message": "Not a valid choice.", "code": 10})
    return out


class ZenodoEmulator(LoopbackServer):
    """Zenodo's deposit API on 127.0.0.1 for one user (``token``); more with ``add_token``."""

    def __init__(self, token: str = "zenodo-token", port: int = 0) -> None:
        #: Tokens: their owner and scopes.
        self.tokens: dict[str, tuple[str, frozenset[str]]] = {}
        self.add_token(token, owner="1")
        #: Every deposition by id.
        self.records: dict[int, Deposition] = {}
        self.buckets: dict[str, int] = {}
        self.faults = Faults()
        #: Requests per endpoint (see the module's list).
        self.requests: Counter[str] = Counter()
        self._ids = 1_000_000
        self._lock = threading.RLock()
        Handler = dispatching_handler(self._handle)
        self._serve(ThreadingHTTPServer(("127.0.0.1", port), Handler))

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API base, as ``https://zenodo.org/api``."""
        return f"{self.root}/api"

    def add_token(self, token: str, owner: str, scopes: frozenset[str] = SCOPES) -> None:
        self.tokens[token] = (owner, frozenset(scopes))

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def published(self) -> list[Deposition]:
        with self._lock:
            return [d for d in self.records.values() if d.submitted]

    # -- views ---------------------------------------------------------------------------------
    def view(self, d: Deposition) -> dict[str, Any]:
        api = self.url
        links: dict[str, str] = {
            "self": f"{api}/deposit/depositions/{d.id}",
            "html": f"{self.root}/deposit/{d.id}",
            "files": f"{api}/deposit/depositions/{d.id}/files",
            "bucket": f"{api}/files/{d.bucket}",
            "edit": f"{api}/deposit/depositions/{d.id}/actions/edit",
            "discard": f"{api}/deposit/depositions/{d.id}/actions/discard",
            "newversion": f"{api}/deposit/depositions/{d.id}/actions/newversion",
            "publish": f"{api}/deposit/depositions/{d.id}/actions/publish",
            "registerconceptdoi": f"{api}/deposit/depositions/{d.id}/actions/registerconceptdoi",
            "latest_draft": f"{api}/deposit/depositions/{d.id}",
            "latest_draft_html": f"{self.root}/deposit/{d.id}",
        }
        if d.next_draft is not None:
            links["latest_draft"] = f"{api}/deposit/depositions/{d.next_draft}"
            links["latest_draft_html"] = f"{self.root}/deposit/{d.next_draft}"
        metadata = copy.deepcopy(d.metadata)
        out: dict[str, Any] = {
            "id": d.id,
            "record_id": d.id,
            "conceptrecid": str(d.conceptrecid),
            "created": d.created,
            "modified": d.modified,
            "owner": int(d.owner) if d.owner.isdigit() else d.owner,
            "state": d.state,
            "submitted": d.submitted,
            "title": str(metadata.get("title") or ""),
            "files": [
                {
                    "id": f.file_id,
                    "filename": f.key,
                    "filesize": len(f.data),
                    "checksum": f.checksum.removeprefix("md5:"),
                    "links": {
                        "self": f"{api}/deposit/depositions/{d.id}/files/{f.file_id}",
                        "download": f"{api}/files/{d.bucket}/{f.key}",
                    },
                }
                for f in d.files.values()
            ],
            "links": links,
        }
        if d.submitted:
            metadata["doi"] = d.doi
            metadata.pop("prereserve_doi", None)
            out.update(doi=d.doi, doi_url=f"https://doi.org/{d.doi}", conceptdoi=d.conceptdoi)
            links.update(
                record=f"{api}/records/{d.id}",
                record_html=f"{self.root}/records/{d.id}",
                latest=f"{api}/records/{self._latest(d.conceptrecid)}",
                latest_html=f"{self.root}/records/{self._latest(d.conceptrecid)}",
                doi=f"https://doi.org/{d.doi}",
                conceptdoi=f"https://doi.org/{d.conceptdoi}",
                badge=f"{self.root}/badge/doi/{d.doi}.svg",
            )
        else:
            metadata["prereserve_doi"] = {"doi": d.doi, "recid": d.id}
            out["doi"] = ""
        out["metadata"] = metadata
        return out

    def _latest(self, concept: int) -> int:
        return max(
            (d.id for d in self.records.values() if d.conceptrecid == concept and d.submitted), default=0
        )

    # -- HTTP ----------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, list[str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] != ["api"]:
            return "other", []
        rest = parts[1:]
        if rest[:2] == ["deposit", "depositions"]:
            tail = rest[2:]
            if not tail:
                return {"POST": "create", "GET": "list"}.get(method, "other"), []
            if len(tail) == 1:
                return {"GET": "get", "PUT": "update", "DELETE": "delete"}.get(method, "other"), tail
            if len(tail) == 2 and tail[1] == "files" and method == "GET":
                return "files", tail[:1]
            if len(tail) == 3 and tail[1] == "files" and method == "DELETE":
                return "delete_file", [tail[0], tail[2]]
            if len(tail) == 3 and tail[1] == "actions" and method == "POST":
                action = tail[2]
                if action in ("publish", "newversion", "discard"):
                    return action, tail[:1]
        if rest[:1] == ["files"] and len(rest) == 3:
            return {"PUT": "upload", "GET": "download"}.get(method, "other"), rest[1:]
        if rest[:1] == ["records"] and len(rest) == 2 and method == "GET":
            return "record", rest[1:]
        return "other", []

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        endpoint, args = self._route(method, parts.path)
        with self._lock:
            self.requests[endpoint] += 1
        fault = self.faults.next(endpoint)
        kind, _, arg = (fault or "").partition(":")
        if kind in ("500", "502", "503", "429"):
            headers = {"Retry-After": arg} if arg else {}
            text = "Too many requests." if kind == "429" else "Internal server error."
            return self._send(request, int(kind), {"status": int(kind), "message": text}, headers)
        if kind == "drop":
            return self._drop(request)
        if kind == "delay":
            time.sleep(float(arg or 1.0))
        raw: bytes | None = None
        try:
            if endpoint == "other":
                raise _message(404, _404)
            if endpoint == "record":
                status, answer = self._record(args)
            else:
                owner = self._owner(request, query)
                if endpoint == "download":
                    raw = self._download(owner, args)
                    status, answer = 200, None
                else:
                    status, answer = getattr(self, f"_{endpoint}")(owner, args, body)
        except Reply as reply:
            status, answer = reply.status, reply.body
        if kind == "lost":
            return self._drop(request)
        if raw is not None:
            return self._send_bytes(request, raw)
        self._send(request, status, answer)

    @staticmethod
    def _drop(request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        request.connection.shutdown(2)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        if body is not None:
            request.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    @staticmethod
    def _send_bytes(request: BaseHTTPRequestHandler, data: bytes) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _owner(self, request: BaseHTTPRequestHandler, query: Mapping[str, str]) -> str:
        header = request.headers.get("Authorization") or ""
        token = ""
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        token = token or query.get("access_token", "")
        found = self.tokens.get(token) if token else None
        if found is None:
            raise _message(401, _401)
        owner, scopes = found
        if not scopes >= SCOPES:
            raise _message(403, _403)
        return owner

    def _deposition(self, owner: str, args: list[str]) -> Deposition:
        try:
            number = int(args[0])
        except (IndexError, ValueError):
            raise _message(404, _404) from None
        d = self.records.get(number)
        if d is None:
            raise _message(404, _404)
        if d.owner != owner:
            raise _message(403, _403)
        return d

    @staticmethod
    def _json(body: bytes) -> Any:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _message(400, "Could not parse the request body as JSON.") from None

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new(self, owner: str, concept: int | None, metadata: dict[str, Any]) -> Deposition:
        concept = concept if concept is not None else self._next_id()
        d = Deposition(self._next_id(), concept, owner, str(uuid.uuid4()), metadata)
        self.records[d.id] = d
        self.buckets[d.bucket] = d.id
        return d

    # -- endpoints -----------------------------------------------------------------------------
    def _create(self, owner: str, _args: list[str], body: bytes) -> tuple[int, Any]:
        document = self._json(body)
        metadata = document.get("metadata", {}) if isinstance(document, dict) else None
        errors = metadata_errors(metadata, publishing=False)
        if errors:
            raise _validation(*errors)
        with self._lock:
            d = self._new(owner, None, copy.deepcopy(metadata) if isinstance(metadata, dict) else {})
            return 201, self.view(d)

    def _list(self, owner: str, _args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            mine = [d for d in self.records.values() if d.owner == owner]
            return 200, [self.view(d) for d in sorted(mine, key=lambda d: -d.id)]

    def _get(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            return 200, self.view(self._deposition(owner, args))

    def _update(self, owner: str, args: list[str], body: bytes) -> tuple[int, Any]:
        document = self._json(body)
        metadata = document.get("metadata") if isinstance(document, dict) else None
        if metadata is None:
            raise _validation(
                {"field": "metadata", "message": "Missing data for required field.", "code": 10}
            )
        errors = metadata_errors(metadata, publishing=False)
        if errors:
            raise _validation(*errors)
        with self._lock:
            d = self._deposition(owner, args)
            if d.submitted:  # [UNVERIFIED] text
                raise _message(400, "Deposition is published; use the edit action to change its metadata.")
            d.metadata = copy.deepcopy(metadata)
            d.modified = _now()
            return 200, self.view(d)

    def _upload(self, owner: str, args: list[str], body: bytes) -> tuple[int, Any]:
        bucket, key = args
        with self._lock:
            number = self.buckets.get(bucket)
            if number is None:
                raise _message(404, _404)
            d = self._deposition(owner, [str(number)])
            if d.submitted:
                raise _message(403, "Bucket is locked.")
            stored = StoredFile(key, body)
            d.files[key] = stored
            d.modified = _now()
            link = f"{self.url}/files/{bucket}/{key}"
            return 201, {
                "key": key,
                "mimetype": "application/json" if key.endswith(".json") else "application/octet-stream",
                "checksum": stored.checksum,
                "version_id": stored.file_id,
                "size": len(body),
                "created": d.modified,
                "updated": d.modified,
                "is_head": True,
                "delete_marker": False,
                "links": {
                    "self": link,
                    "version": f"{link}?versionId={stored.file_id}",
                    "uploads": f"{link}?uploads",
                },
            }

    def _files(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            return 200, self.view(self._deposition(owner, args))["files"]

    def _delete_file(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            d = self._deposition(owner, args[:1])
            if d.submitted:
                raise _message(403, "Bucket is locked.")
            found = next((k for k, f in d.files.items() if f.file_id == args[1]), None)
            if found is None:
                raise _message(404, _404)
            del d.files[found]
            d.modified = _now()
            return 204, None

    def _download(self, owner: str, args: list[str]) -> bytes:
        bucket, key = args
        with self._lock:
            number = self.buckets.get(bucket)
            if number is None:
                raise _message(404, _404)
            d = self.records[number]
            if not d.submitted and d.owner != owner:
                raise _message(403, _403)
            stored = d.files.get(key)
            if stored is None:
                raise _message(404, _404)
            return stored.data

    def _publish(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            d = self._deposition(owner, args)
            if d.submitted:  # [UNVERIFIED] text
                raise _message(400, "Deposition is already published.")
            errors = metadata_errors(d.metadata, publishing=True)
            if not d.files:
                errors.append({"message": "Minimum one file must be provided.", "code": 10})
            if errors:
                raise _validation(*errors)
            before = [p for p in self.records.values() if p.conceptrecid == d.conceptrecid and p.submitted]
            if before:
                last = max(before, key=lambda p: p.id)
                if {k: f.checksum for k, f in last.files.items()} == {
                    k: f.checksum for k, f in d.files.items()
                }:
                    raise _validation(
                        {"message": "New version's files must differ from all previous versions.", "code": 10}
                    )
            d.submitted = True
            d.modified = _now()
            for p in before:
                if p.next_draft == d.id:
                    p.next_draft = None
            return 202, self.view(d)

    def _newversion(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            d = self._deposition(owner, args)
            if not d.submitted:  # [UNVERIFIED] text
                raise _message(400, "You can only create a new version of a published deposition.")
            siblings = [p for p in self.records.values() if p.conceptrecid == d.conceptrecid]
            draft = next((p for p in siblings if not p.submitted), None)
            if draft is None:
                metadata = copy.deepcopy(d.metadata)
                metadata.pop("doi", None)
                draft = self._new(owner, d.conceptrecid, metadata)
                draft.files = {k: StoredFile(f.key, f.data) for k, f in d.files.items()}
            d.next_draft = draft.id
            return 201, self.view(d)

    def _discard(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            d = self._deposition(owner, args)
            if d.submitted:
                raise _message(400, "Deposition is published; there is nothing to discard.")
            self._remove(d)
            return 201, self.view(d)

    def _delete(self, owner: str, args: list[str], _body: bytes) -> tuple[int, Any]:
        with self._lock:
            d = self._deposition(owner, args)
            if d.submitted:
                raise _message(403, "You cannot delete a published deposition.")
            self._remove(d)
            return 204, None

    def _remove(self, d: Deposition) -> None:
        del self.records[d.id]
        self.buckets.pop(d.bucket, None)
        for p in self.records.values():
            if p.next_draft == d.id:
                p.next_draft = None

    def _record(self, args: list[str]) -> tuple[int, Any]:
        with self._lock:
            try:
                d = self.records.get(int(args[0]))
            except ValueError:
                d = None
            if d is None or not d.submitted:
                raise _message(404, "PID does not exist.")
            view = self.view(d)
            return 200, {
                "id": d.id,
                "recid": str(d.id),
                "conceptrecid": str(d.conceptrecid),
                "doi": d.doi,
                "conceptdoi": d.conceptdoi,
                "doi_url": f"https://doi.org/{d.doi}",
                "metadata": view["metadata"],
                "files": [
                    {
                        "key": f.key,
                        "size": len(f.data),
                        "checksum": f.checksum,
                        "links": {"self": link["links"]["download"]},
                    }
                    for f, link in zip(d.files.values(), view["files"], strict=True)
                ],
                "links": {
                    k: v
                    for k, v in view["links"].items()
                    if k in ("self", "html", "doi", "latest", "latest_html")
                }
                | {"self": f"{self.url}/records/{d.id}", "html": f"{self.root}/records/{d.id}"},
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--token", default="zenodo-token")
    args = parser.parse_args()
    emulator = ZenodoEmulator(args.token, port=args.port)
    emulator.serve_until_interrupted(f"Zenodo emulator at {emulator.url} (token {args.token})")


if __name__ == "__main__":
    main()
