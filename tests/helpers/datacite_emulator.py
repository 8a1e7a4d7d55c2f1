"""An emulator of the DataCite REST API (``https://api.datacite.org/``), for offline tests and demos.

It answers as DataCite's server (``datacite/lupo``) does and as its documentation and the invenio
``datacite`` client (``DataCiteRESTClient``) expect:

- JSON:API ``dois`` records: ``POST /dois`` (``{"data": {"type": "dois", "attributes": {...}}}``,
  with a full ``doi`` or only a ``prefix``, which gets a random suffix as DataCite's ``xxxx-xxxx``),
  ``PUT /dois/{doi}`` (an update; a DOI that does not exist yet is created, 201, as lupo's
  ``update`` does), ``GET /dois/{doi}``, ``DELETE /dois/{doi}`` (drafts only: 204; a registered or
  findable DOI is 405 ``Method not allowed``), ``GET /dois?client-id=...`` (``page[size]``,
  ``page[number]``, ``state``), answered as ``application/vnd.api+json; charset=utf-8``.
- States through the ``event`` attribute: none -> draft, ``publish`` -> findable, ``register`` ->
  registered, ``hide`` -> findable becomes registered. A transition the state does not allow is
  ignored, as lupo's state machine does without raising.
- HTTP Basic auth with a repository ID and password: 401 ``Bad credentials.`` without or with wrong
  ones, 403 ``You are not authorized to access this resource.`` for a prefix or DOI of another
  repository. Anyone reads a findable DOI; a draft or registered one is 404 unless its owner asks.
- 422 ``{"errors": [{"source", "uid", "title"}]}`` (lupo's ``serialize_errors``) when a registered or
  findable DOI lacks a mandatory field (creators, titles, publisher, publicationYear,
  types.resourceTypeGeneral, url) and ``This DOI has already been taken`` on a second create.

The exact titles of the missing-field errors are [UNVERIFIED]: lupo validates the XML it builds
against the kernel-4 schema and says what libxml2 says; these follow that form ("Missing child
element(s)...", "... can't be blank").

Faults are queued per endpoint (``create``, ``update``, ``get``, ``delete``, ``list``, or ``*`` for
any), each used once: ``500``/``502``/``503``/``429`` (``429:5`` adds ``Retry-After: 5``), ``delay:S``
(answer after S seconds), ``drop`` (close the connection without answering), ``lost`` (do the work,
then close the connection: the client never hears of it). Requests are counted per endpoint
(``requests``); ``records`` holds every DOI by its lowercase name.

Standalone: ``python -m tests.helpers.datacite_emulator --port 8082``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import datetime as dt
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.net import Faults, LoopbackServer, Reply, dispatching_handler

JSON_API = "application/vnd.api+json; charset=utf-8"
SCHEMA_NS = "{http://datacite.org/schema/kernel-4}"

#: DataCite kernel 4.5's resourceTypeGeneral values.
RESOURCE_TYPES = frozenset(
    {
        "Audiovisual",
        "Award",
        "Book",
        "BookChapter",
        "Collection",
        "ComputationalNotebook",
        "ConferencePaper",
        "ConferenceProceeding",
        "DataPaper",
        "Dataset",
        "Dissertation",
        "Event",
        "Image",
        "Instrument",
        "InteractiveResource",
        "Journal",
        "JournalArticle",
        "Model",
        "OutputManagementPlan",
        "PeerReview",
        "PhysicalObject",
        "Preprint",
        "Project",
        "Report",
        "Service",
        "Software",
        "Sound",
        "Standard",
        "StudyRegistration",
        "Text",
        "Workflow",
        "Other",
    }
)
_DOI = re.compile(r"^10\.\d{4,5}/[-._;()/:a-zA-Z0-9*~$=]+$")
_URL = re.compile(r"^(ftp|http|https)://\S+")
#: lupo's random suffixes: Crockford base32 without ambiguous letters, ``xxxx-xxxx``.
_SUFFIX_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

#: Attributes a ``dois`` record always carries (empty until set), as lupo's serializer lists them.
_EMPTY: dict[str, Any] = {
    "identifiers": [],
    "alternateIdentifiers": [],
    "creators": [],
    "titles": [],
    "publisher": None,
    "container": {},
    "publicationYear": None,
    "subjects": [],
    "contributors": [],
    "dates": [],
    "language": None,
    "types": {},
    "relatedIdentifiers": [],
    "relatedItems": [],
    "sizes": [],
    "formats": [],
    "version": None,
    "rightsList": [],
    "descriptions": [],
    "geoLocations": [],
    "fundingReferences": [],
    "url": None,
    "contentUrl": None,
    "metadataVersion": 0,
    "schemaVersion": None,
    "source": "api",
    "reason": None,
    "viewCount": 0,
    "downloadCount": 0,
    "referenceCount": 0,
    "citationCount": 0,
    "partCount": 0,
    "partOfCount": 0,
    "versionCount": 0,
    "versionOfCount": 0,
}
#: Attributes a client may not set: the server's own.
_SERVER_OWNED = frozenset(
    {"state", "created", "registered", "published", "updated", "isActive", "event", "prefix", "suffix"}
)
#: Which event moves which state where (lupo's aasm events).
_EVENTS = {
    "publish": ({"draft", "registered"}, "findable"),
    "register": ({"draft"}, "registered"),
    "hide": ({"findable"}, "registered"),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Repository:
    """A DataCite repository account: its ID (the Basic auth user name), password and prefixes."""

    client_id: str
    password: str
    prefixes: set[str] = field(default_factory=set)


@dataclass
class DoiRecord:
    """One DOI as the emulator holds it."""

    doi: str
    client_id: str
    state: str
    attributes: dict[str, Any]
    created: str
    updated: str
    registered: str | None = None

    def view(self) -> dict[str, Any]:
        """The JSON:API resource object."""
        prefix, _, suffix = self.doi.partition("/")
        attributes = {**copy.deepcopy(_EMPTY), **copy.deepcopy(self.attributes)}
        attributes.update(
            doi=self.doi,
            prefix=prefix,
            suffix=suffix,
            identifiers=attributes.get("identifiers") or [],
            state=self.state,
            isActive=self.state == "findable",
            created=self.created,
            registered=self.registered,
            published=str(attributes["publicationYear"]) if attributes.get("publicationYear") else None,
            updated=self.updated,
        )
        return {
            "id": self.doi,
            "type": "dois",
            "attributes": attributes,
            "relationships": {
                "client": {"data": {"id": self.client_id.lower(), "type": "clients"}},
                "media": {"data": {"id": self.doi, "type": "media"}},
            },
        }


def _errors(status: int, title: str) -> Reply:
    return Reply(status, {"errors": [{"status": str(status), "title": title}]})


def _invalid(uid: str, *problems: tuple[str, str]) -> Reply:
    return Reply(
        422, {"errors": [{"source": source, "uid": uid, "title": title} for source, title in problems]}
    )


def missing_fields(attributes: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What keeps a DOI with ``attributes`` from being registered or findable: (source, title) pairs."""
    out: list[tuple[str, str]] = []
    creators = attributes.get("creators") or []
    if not isinstance(creators, list) or not creators:
        out.append(("creators", f"Missing child element(s). Expected is ( {SCHEMA_NS}creator )."))
    elif any(not isinstance(c, dict) or not str(c.get("name") or "").strip() for c in creators):
        out.append(("creators", f"Missing child element(s). Expected is ( {SCHEMA_NS}creatorName )."))
    titles = attributes.get("titles") or []
    if not isinstance(titles, list) or not titles:
        out.append(("titles", f"Missing child element(s). Expected is ( {SCHEMA_NS}title )."))
    elif any(not isinstance(t, dict) or not str(t.get("title") or "").strip() for t in titles):
        out.append(("titles", "Title can't be blank"))
    publisher = attributes.get("publisher")
    if isinstance(publisher, dict):
        publisher = publisher.get("name")
    if not str(publisher or "").strip():
        out.append(("publisher", "Publisher can't be blank"))
    year = str(attributes.get("publicationYear") or "")
    if not re.fullmatch(r"[1-2]\d{3}", year):
        out.append(
            (
                "publicationYear",
                f"Element '{SCHEMA_NS}publicationYear': [facet 'pattern'] The value '{year}' is not "
                "accepted by the pattern '[\\d]{4}'.",
            )
        )
    types = attributes.get("types")
    general = types.get("resourceTypeGeneral") if isinstance(types, dict) else None
    if not general:
        out.append(
            (
                "types",
                f"Element '{SCHEMA_NS}resourceType': The attribute 'resourceTypeGeneral' is required "
                "but missing.",
            )
        )
    elif general not in RESOURCE_TYPES:
        out.append(
            (
                "types",
                f"Element '{SCHEMA_NS}resourceType', attribute 'resourceTypeGeneral': [facet "
                f"'enumeration'] The value '{general}' is not an element of the set.",
            )
        )
    url = attributes.get("url")
    if not url:
        out.append(("url", "Can't be blank"))
    return out


class DataCiteEmulator(LoopbackServer):
    """DataCite's REST API on 127.0.0.1 for one repository (``username`` owns ``prefix``); more with
    ``add_repository``. ``records`` holds every DOI; ``faults``/``requests`` as the module says."""

    def __init__(
        self,
        prefix: str = "10.80000",
        username: str = "MEDIATOR.TEST",
        password: str = "secret",
        port: int = 0,
    ) -> None:
        self.repositories: dict[str, Repository] = {}
        self.add_repository(username, password, prefix)
        #: Every DOI by its lowercase name.
        self.records: dict[str, DoiRecord] = {}
        self.faults = Faults()
        #: Requests per endpoint (``create``, ``update``, ``get``, ``delete``, ``list``, ``other``).
        self.requests: Counter[str] = Counter()
        self._random = random.Random(0xDC)
        self._lock = threading.RLock()
        Handler = dispatching_handler(self._handle)
        self._serve(ThreadingHTTPServer(("127.0.0.1", port), Handler))

    @property
    def url(self) -> str:
        """The API root, with its trailing slash (as ``https://api.test.datacite.org/``)."""
        return f"http://127.0.0.1:{self.port}/"

    def add_repository(self, client_id: str, password: str, *prefixes: str) -> Repository:
        repository = Repository(client_id, password, {p.lower() for p in prefixes})
        self.repositories[client_id.lower()] = repository
        return repository

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def state(self, doi: str) -> str | None:
        """The state of ``doi`` (``draft``, ``registered``, ``findable``), or None when unknown."""
        with self._lock:
            record = self.records.get(doi.lower())
            return record.state if record else None

    # -- HTTP ----------------------------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/")
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        doi = unquote(path[len("/dois/") :]).lower() if path.startswith("/dois/") else ""
        endpoint = {
            ("POST", False): "create",
            ("PUT", True): "update",
            ("GET", True): "get",
            ("DELETE", True): "delete",
            ("GET", False): "list",
        }.get((method, bool(doi)), "other")
        if path not in ("/dois",) and not doi:
            endpoint = "other"
        with self._lock:
            self.requests[endpoint] += 1
        fault = self.faults.next(endpoint)
        kind, _, arg = (fault or "").partition(":")
        if kind in ("500", "502", "503", "429"):
            headers = {"Retry-After": arg} if arg else {}
            title = "Too many requests" if kind == "429" else "The service is temporarily unavailable"
            return self._send(request, int(kind), {"errors": [{"status": kind, "title": title}]}, headers)
        if kind == "drop":
            return self._drop(request)
        if kind == "delay":
            time.sleep(float(arg or 1.0))
        try:
            if endpoint == "other":
                raise _errors(404, "The resource you are looking for doesn't exist.")
            user = self._user(request)
            handler = getattr(self, f"_{endpoint}")
            status, answer = handler(user, doi, query, body)
        except Reply as reply:
            status, answer = reply.status, reply.body
        if kind == "lost":
            return self._drop(request)
        self._send(request, status, answer)

    @staticmethod
    def _drop(request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        request.wfile.flush()
        request.connection.shutdown(2)  # SHUT_RDWR: the client sees the connection closed

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        if body is not None:
            request.send_header("Content-Type", JSON_API)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _user(self, request: BaseHTTPRequestHandler) -> Repository | None:
        """The repository of the request's Basic credentials; None without any; 401 when wrong."""
        header = request.headers.get("Authorization") or ""
        if not header:
            return None
        kind, _, token = header.partition(" ")
        if kind.lower() != "basic":
            raise _errors(401, "Bad credentials.")
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _errors(401, "Bad credentials.") from None
        repository = self.repositories.get(user.lower())
        if repository is None or repository.password != password:
            raise _errors(401, "Bad credentials.")
        return repository

    @staticmethod
    def _signed_in(user: Repository | None) -> Repository:
        if user is None:
            raise _errors(401, "Bad credentials.")
        return user

    @staticmethod
    def _document(body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):  # Rails' JSON::ParserError text
            raise _errors(400, f"unexpected token at '{body[:40].decode(errors='replace')}'") from None
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, dict):
            raise _errors(422, "Invalid payload: the document has no data object")
        attributes = data.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _errors(422, "Invalid payload: attributes is not an object")
        return attributes

    def _owned(self, user: Repository, doi: str) -> None:
        if doi.partition("/")[0] not in user.prefixes:
            raise _errors(403, "You are not authorized to access this resource.")

    def _new_suffix(self, prefix: str) -> str:
        while True:
            chars = "".join(self._random.choice(_SUFFIX_ALPHABET) for _ in range(8))
            doi = f"{prefix}/{chars[:4]}-{chars[4:]}"
            if doi not in self.records:
                return doi

    def _apply(self, record: DoiRecord, attributes: Mapping[str, Any]) -> DoiRecord:
        """``record`` with ``attributes`` and their event applied; 422 when the result may not be
        registered or findable."""
        merged = copy.deepcopy(record.attributes)
        for key, value in attributes.items():
            if key not in _SERVER_OWNED and key != "doi":
                merged[key] = copy.deepcopy(value)
        event = attributes.get("event")
        state = record.state
        if isinstance(event, str) and event in _EVENTS:
            sources, target = _EVENTS[event]
            if state in sources:
                state = target
        problems = missing_fields(merged) if state in ("registered", "findable") else []
        url = merged.get("url")
        if url and not _URL.match(str(url)):  # lupo checks a URL in any state
            problems.append(("url", "URL is not valid"))
        if problems:
            raise _invalid(record.doi, *problems)
        registered = record.registered
        if state != "draft" and registered is None:
            registered = _now()
        merged.setdefault("identifiers", [])
        return DoiRecord(record.doi, record.client_id, state, merged, record.created, _now(), registered)

    def _create(
        self, user: Repository | None, _doi: str, _query: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        user = self._signed_in(user)
        attributes = self._document(body)
        with self._lock:
            doi = str(attributes.get("doi") or "").lower()
            prefix = str(attributes.get("prefix") or "").lower()
            if doi:
                if not _DOI.match(doi):
                    raise _invalid(doi, ("doi", "Is invalid"))
            elif prefix:
                self._owned(user, f"{prefix}/x")
                doi = self._new_suffix(prefix)
            else:
                raise _invalid("", ("doi", "Can't be blank"))
            self._owned(user, doi)
            if doi in self.records:
                raise _invalid(doi, ("doi", "This DOI has already been taken"))
            now = _now()
            blank = DoiRecord(doi, user.client_id, "draft", {}, now, now)
            record = self._apply(blank, attributes)
            self.records[doi] = record
            return 201, {"data": record.view()}

    def _update(
        self, user: Repository | None, doi: str, _query: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        user = self._signed_in(user)
        attributes = self._document(body)
        with self._lock:
            self._owned(user, doi)
            record = self.records.get(doi)
            status = 200
            if record is None:  # lupo's update creates a DOI it does not know
                if not _DOI.match(doi):
                    raise _invalid(doi, ("doi", "Is invalid"))
                now = _now()
                record, status = DoiRecord(doi, user.client_id, "draft", {}, now, now), 201
            elif record.client_id.lower() != user.client_id.lower():
                raise _errors(403, "You are not authorized to access this resource.")
            record = self._apply(record, attributes)
            self.records[doi] = record
            return status, {"data": record.view()}

    def _get(
        self, user: Repository | None, doi: str, _query: Mapping[str, str], _body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            record = self.records.get(doi)
            visible = record is not None and (
                record.state == "findable"
                or (user is not None and user.client_id.lower() == record.client_id.lower())
            )
            if record is None or not visible:
                raise _errors(404, "The resource you are looking for doesn't exist.")
            return 200, {"data": record.view()}

    def _delete(
        self, user: Repository | None, doi: str, _query: Mapping[str, str], _body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        user = self._signed_in(user)
        with self._lock:
            record = self.records.get(doi)
            if record is None:
                raise _errors(404, "The resource you are looking for doesn't exist.")
            if record.client_id.lower() != user.client_id.lower():
                raise _errors(403, "You are not authorized to access this resource.")
            if record.state != "draft":
                raise _errors(405, "Method not allowed")
            del self.records[doi]
            return 204, None

    def _list(
        self, user: Repository | None, _doi: str, query: Mapping[str, str], _body: bytes
    ) -> tuple[int, dict[str, Any]]:
        client = (query.get("client-id") or query.get("client_id") or "").lower()
        prefix = (query.get("prefix") or "").lower()
        state = query.get("state") or ""
        try:
            size = max(0, min(1000, int(query.get("page[size]") or 25)))
            number = max(1, int(query.get("page[number]") or 1))
        except ValueError:
            raise _errors(400, "page[size] and page[number] are numbers") from None
        with self._lock:
            rows = [
                r
                for r in sorted(self.records.values(), key=lambda r: r.created + r.doi)
                if (
                    r.state == "findable"
                    or (user is not None and user.client_id.lower() == r.client_id.lower())
                )
                and (not client or r.client_id.lower() == client)
                and (not prefix or r.doi.startswith(prefix + "/"))
                and (not state or r.state == state)
            ]
            page = rows[(number - 1) * size : number * size]
            total = len(rows)
            pages = (total + size - 1) // size if size else 0
            return 200, {
                "data": [r.view() for r in page],
                "meta": {"total": total, "totalPages": pages, "page": number},
                "links": {"self": f"{self.url}dois?page[number]={number}&page[size]={size}"},
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--prefix", default="10.80000")
    parser.add_argument("--username", default="MEDIATOR.TEST")
    parser.add_argument("--password", default="secret")
    args = parser.parse_args()
    emulator = DataCiteEmulator(args.prefix, args.username, args.password, port=args.port)
    emulator.serve_until_interrupted(
        f"DataCite emulator at {emulator.url} ({args.username} / prefix {args.prefix})"
    )


if __name__ == "__main__":
    main()
