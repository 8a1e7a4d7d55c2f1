"""Publishing a set version with a DOI: the metadata (DataCite's kernel, Zenodo's deposit form),
checked before anything is sent, and what a DOI service (``Minter``) offers.

A published version is frozen in the store at once; its DOI is minted afterwards, by a queue that
retries until the service answers. A minter records each step it took (``record``) in the store
before the next, so a retry after a crash, or on another member, resumes where the first stopped
and never mints a second DOI for the same version.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediator_desktop.core.errors import MetadataProblems, ValidationError

#: Longest title, description and name a DOI record takes here (DataCite has no hard limit; a
#: journal's reference list and a landing page do).
MAX_TITLE = 500
MAX_DESCRIPTION = 20_000
MAX_NAME = 300
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
log = logging.getLogger(__name__)


def orcid_ok(orcid: str) -> bool:
    """Whether ``orcid`` (``0000-0002-1825-0097`` or its URL) has a valid ISO 7064 11-2 check digit."""
    found = _ORCID.match(orcid.strip())
    if found is None:
        return False
    digits = found.group(1).replace("-", "")
    total = 0
    for char in digits[:-1]:
        total = (total + int(char)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


@dataclass(frozen=True, slots=True)
class Creator:
    """A person or organisation credited for the data. ``name`` is ``Family, Given`` for people."""

    name: str
    given: str = ""
    family: str = ""
    orcid: str = ""
    affiliation: str = ""

    def problems(self, where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if not self.name.strip():
            out[f"{where}.name"] = "a creator needs a name (Family, Given)"
        elif len(self.name) > MAX_NAME:
            out[f"{where}.name"] = f"at most {MAX_NAME} characters"
        if self.orcid and not orcid_ok(self.orcid):
            out[f"{where}.orcid"] = (
                f"{self.orcid!r} is no valid ORCID iD (its check digit is wrong or its form)"
            )
        return out

    @property
    def orcid_id(self) -> str:
        found = _ORCID.match(self.orcid.strip())
        return found.group(1) if found else ""


@dataclass(frozen=True, slots=True)
class Related:
    """An identifier the data relates to: a source collection's DOI it ``References``."""

    identifier: str
    kind: str = "DOI"
    relation: str = "References"


@dataclass(frozen=True, slots=True)
class DoiMetadata:
    """What a DOI record says of a published version (DataCite's mandatory fields first)."""

    title: str
    creators: tuple[Creator, ...]
    publisher: str
    year: int
    description: str = ""
    subjects: tuple[str, ...] = ()
    license: str = ""  # an SPDX id: CC-BY-4.0
    funding: tuple[str, ...] = ()
    related: tuple[Related, ...] = ()
    version: str = ""
    resource_type: str = "Dataset"
    size: str = ""
    formats: tuple[str, ...] = field(default=("application/ld+json",))

    def problems(self) -> dict[str, str]:
        """What is wrong, by field (``title``, ``creators.0.orcid``...), so forms show each next to
        its field; empty when the metadata can be sent."""
        out: dict[str, str] = {}
        if not self.title.strip():
            out["title"] = "a title is required"
        elif len(self.title) > MAX_TITLE:
            out["title"] = f"at most {MAX_TITLE} characters (this one has {len(self.title):,})"
        if not self.creators:
            out["creators"] = "at least one creator is required"
        for i, creator in enumerate(self.creators):
            out.update(creator.problems(f"creators.{i}"))
        if not self.publisher.strip():
            out["publisher"] = "a publisher is required (your institution, or the repository)"
        elif len(self.publisher) > MAX_NAME:
            out["publisher"] = f"at most {MAX_NAME} characters"
        this_year = dt.datetime.now(dt.UTC).year
        if not 1900 <= self.year <= this_year + 1:
            out["year"] = f"a publication year between 1900 and {this_year + 1}"
        if len(self.description) > MAX_DESCRIPTION:
            out["description"] = f"at most {MAX_DESCRIPTION:,} characters"
        if self.resource_type != "Dataset":
            out["resource_type"] = "a replica set is published as a Dataset"
        for i, related in enumerate(self.related):
            if related.kind == "DOI" and not _DOI.match(related.identifier):
                out[f"related.{i}"] = f"{related.identifier!r} is no DOI (10.xxxx/...)"
        return out

    def check(self) -> DoiMetadata:
        """``self``, or ``ValidationError`` listing every problem."""
        problems = self.problems()
        if problems:
            raise MetadataProblems.of(problems)
        return self

    # -- the services' forms ------------------------------------------------------------------------
    def datacite_attributes(self) -> dict[str, Any]:
        """The ``attributes`` of a DataCite REST ``dois`` record (kernel 4)."""
        creators = []
        for c in self.creators:
            person: dict[str, Any] = {
                "name": c.name,
                "nameType": "Personal" if "," in c.name else "Organizational",
            }
            if c.given:
                person["givenName"] = c.given
            if c.family:
                person["familyName"] = c.family
            if c.orcid_id:
                person["nameIdentifiers"] = [
                    {
                        "nameIdentifier": f"https://orcid.org/{c.orcid_id}",
                        "nameIdentifierScheme": "ORCID",
                        "schemeUri": "https://orcid.org",
                    }
                ]
            if c.affiliation:
                person["affiliation"] = [{"name": c.affiliation}]
            creators.append(person)
        out: dict[str, Any] = {
            "creators": creators,
            "titles": [{"title": self.title}],
            "publisher": self.publisher,
            "publicationYear": self.year,
            "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Replica set"},
            "schemaVersion": "http://datacite.org/schema/kernel-4",
        }
        if self.description:
            out["descriptions"] = [{"description": self.description, "descriptionType": "Abstract"}]
        if self.subjects:
            out["subjects"] = [{"subject": s} for s in self.subjects]
        if self.license:
            out["rightsList"] = [
                {
                    "rights": self.license,
                    "rightsIdentifier": self.license.lower(),
                    "rightsIdentifierScheme": "SPDX",
                    "schemeUri": "https://spdx.org/licenses/",
                }
            ]
        if self.funding:
            out["fundingReferences"] = [{"funderName": f} for f in self.funding]
        if self.related:
            out["relatedIdentifiers"] = [
                {
                    "relatedIdentifier": r.identifier,
                    "relatedIdentifierType": r.kind,
                    "relationType": r.relation,
                }
                for r in self.related
            ]
        if self.version:
            out["version"] = self.version
        if self.size:
            out["sizes"] = [self.size]
        if self.formats:
            out["formats"] = list(self.formats)
        return out

    def zenodo_metadata(self) -> dict[str, Any]:
        """The ``metadata`` of a Zenodo deposition."""
        creators = []
        for c in self.creators:
            person: dict[str, Any] = {"name": c.name}
            if c.affiliation:
                person["affiliation"] = c.affiliation
            if c.orcid_id:
                person["orcid"] = c.orcid_id
            creators.append(person)
        out: dict[str, Any] = {
            "title": self.title,
            "upload_type": "dataset",
            "description": self.description or self.title,
            "creators": creators,
            "publication_date": f"{self.year}-01-01" if self.year else "",
        }
        if self.subjects:
            out["keywords"] = list(self.subjects)
        if self.license:
            out["license"] = self.license.lower()
        if self.related:
            out["related_identifiers"] = [
                {
                    "identifier": r.identifier,
                    "relation": r.relation[:1].lower() + r.relation[1:],
                    "scheme": r.kind.lower(),
                }
                for r in self.related
            ]
        if self.version:
            out["version"] = self.version
        return out

    # -- plain values (the store, the local API) ------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "creators": [
                {
                    "name": c.name,
                    "given": c.given,
                    "family": c.family,
                    "orcid": c.orcid,
                    "affiliation": c.affiliation,
                }
                for c in self.creators
            ],
            "publisher": self.publisher,
            "year": self.year,
            "description": self.description,
            "subjects": list(self.subjects),
            "license": self.license,
            "funding": list(self.funding),
            "related": [
                {"identifier": r.identifier, "kind": r.kind, "relation": r.relation} for r in self.related
            ],
            "version": self.version,
            "resource_type": self.resource_type,
            "size": self.size,
            "formats": list(self.formats),
        }

    @classmethod
    def from_json(cls, data: Any) -> DoiMetadata:
        if not isinstance(data, dict):
            raise ValidationError(f"publication metadata is an object, not {type(data).__name__}")
        try:
            return cls(
                title=str(data.get("title", "")),
                creators=tuple(
                    Creator(**{k: str(v) for k, v in c.items() if k in Creator.__slots__})
                    if isinstance(c, dict)
                    else Creator(str(c))
                    for c in data.get("creators", [])
                ),
                publisher=str(data.get("publisher", "")),
                year=int(data.get("year", 0)),
                description=str(data.get("description", "")),
                subjects=tuple(str(s) for s in data.get("subjects", [])),
                license=str(data.get("license", "")),
                funding=tuple(str(f) for f in data.get("funding", [])),
                related=tuple(
                    Related(
                        str(r["identifier"]), str(r.get("kind", "DOI")), str(r.get("relation", "References"))
                    )
                    for r in data.get("related", [])
                ),
                version=str(data.get("version", "")),
                resource_type=str(data.get("resource_type", "Dataset")),
                size=str(data.get("size", "")),
                formats=tuple(str(f) for f in data.get("formats", ("application/ld+json",))),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ValidationError(f"malformed publication metadata: {exc}") from None


@dataclass(frozen=True, slots=True)
class Minted:
    """A DOI a service made findable: the DOI, its landing page and the steps recorded on the way
    (Zenodo's deposition id and concept DOI, which the set's next version builds on)."""

    doi: str
    url: str
    state: str = "findable"
    steps: Mapping[str, str] = field(default_factory=dict)


class Minter(Protocol):
    """A DOI service (DataCite, Zenodo). Methods block on the network: call them from the queue."""

    name: str

    def mint(
        self,
        key: str,
        metadata: DoiMetadata,
        landing_url: str | None,
        attachment: tuple[str, bytes] | None,
        done: Mapping[str, str],
        record: Callable[[Mapping[str, str]], None],
        previous: Mapping[str, str] | None,
    ) -> Minted:
        """Mint (or finish minting) the DOI of one published version.

        Args:
            key: a stable name of the version (``<set_id>-v3``): a DataCite DOI's suffix derives
                from it, so a retry finds the DOI an earlier try created instead of making another.
            landing_url: the page the DOI resolves to (DataCite needs one; Zenodo makes its own).
            attachment: a file to deposit with the record (Zenodo: the set's RO-Crate).
            done: the steps an earlier try recorded; resume after them.
            record: store steps (``{"deposition": "123"}``) before going on: they survive a crash.
            previous: the steps of the set's previous published version (Zenodo: a new version of
                that record, so both share one concept DOI), or None.

        Raises:
            ArchiveUnreachable, SourceError: the service is down or answered 5xx: retry later.
            PermissionDenied: wrong or missing credentials (401/403): do not retry.
            ValidationError: the service rejected the metadata (its own messages).
        """
        ...


# -- citing a published version ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reference:
    """A source collection a version's data comes from: its DOI and licence, for citations."""

    collection: str
    doi: str = ""
    license: str = ""


@dataclass(frozen=True, slots=True)
class Citation:
    """How a paper cites a published version: DataCite's text style, BibTeX and a data
    availability statement naming the source collections with their DOIs and licences."""

    text: str
    bibtex: str
    availability: str


def cite(
    metadata: DoiMetadata,
    doi: str | None,
    set_name: str,
    version: int,
    references: Sequence[Reference] = (),
) -> Citation:
    """The citation of a published version (``doi`` None: not minted yet, said so)."""
    names = [c.name for c in metadata.creators]
    authors = "; ".join(names) if len(names) <= 20 else "; ".join(names[:19]) + " … " + names[-1]
    link = f"https://doi.org/{doi}" if doi else "(DOI pending)"
    text = (
        f"{authors} ({metadata.year}). {metadata.title} (Version {version}) [Data set]. "
        f"{metadata.publisher}. {link}"
    )
    key = re.sub(
        r"[^A-Za-z0-9]", "", (metadata.creators[0].family or metadata.creators[0].name.split(",")[0])
    )
    bib_fields = {
        "author": " and ".join(names),
        "title": "{" + metadata.title + "}",
        "year": str(metadata.year),
        "publisher": metadata.publisher,
        "version": str(version),
        "note": f"MEDIator replica set {set_name}, version {version}",
    }
    if doi:
        bib_fields |= {"doi": doi, "url": f"https://doi.org/{doi}"}
    bibtex = (
        f"@misc{{{key or 'mediator'}{metadata.year}_v{version},\n"
        + ",\n".join(f"  {name} = {{{value}}}" for name, value in bib_fields.items())
        + "\n}"
    )
    sources = [
        r.collection
        + (f" (https://doi.org/{r.doi}" if r.doi else " (")
        + (f"; licence {r.license})" if r.license else ")" if r.doi else "")
        for r in references
    ]
    sources = [s.replace(" ()", "") for s in sources]
    availability = (
        f"The data used in this study are listed, with a fingerprint of every file, in the MEDIator "
        f"replica set \u201c{set_name}\u201d, version {version} ({link}). "
        + (f"They are held by their archives: {'; '.join(sources)}." if sources else "")
    ).strip()
    return Citation(text, bibtex, availability)


# -- the queue that mints DOIs ------------------------------------------------------------------------
class MintQueue:
    """Mints the DOIs of the versions this node's user published, retrying with backoff until the
    service answers. Its state lives in the store (``record_mint``): a restart, or a crash between
    two steps, resumes from the steps recorded and never mints a second DOI.

    Args:
        published: the store's published records, by (set, version).
        me: this user's key id (only the publisher's node mints: the credentials are there).
        record: writes ``record_mint`` (set_id, version, **args) to the store.
        minter: the minter of a service (``datacite``, ``zenodo``), or ``ValidationError`` when it
            is not set up here.
        attachment: the file a deposit carries for a version (its RO-Crate), or None.
        backoff: seconds before the first retry; doubled each time, at most ``max_backoff``.
    """

    def __init__(
        self,
        published: Callable[[], Mapping[tuple[str, int], Any]],
        me: str,
        record: Callable[..., Any],
        minter: Callable[[str], Minter],
        attachment: Callable[[str, int], tuple[str, bytes] | None] = lambda set_id, version: None,
        *,
        backoff: float = 30.0,
        max_backoff: float = 3600.0,
    ) -> None:
        self._published = published
        self._me = me
        self._record = record
        self._minter = minter
        self._attachment = attachment
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._due: dict[tuple[str, int], float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mint-queue", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def wake(self, key: tuple[str, int] | None = None) -> None:
        """Try now (a version just published, or the user asked to retry)."""
        if key is not None:
            self._due.pop(key, None)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                log.exception("the DOI queue failed a pass")
            due = [t for t in self._due.values()]
            wait = max(0.0, min(due) - time.monotonic()) if due else 600.0
            self._wake.wait(min(wait, 600.0))

    def pending(self) -> list[Any]:
        """The records this node still has to mint, oldest first."""
        return sorted(
            (r for r in self._published().values() if r.publisher_key == self._me and r.minting),
            key=lambda r: r.time,
        )

    def run_once(self) -> list[tuple[tuple[str, int], str]]:
        """One pass over the versions due: ``[(key, outcome)]`` with outcome findable, retry or failed."""
        outcomes = []
        with self._lock:
            for rec in self.pending():
                key = (rec.set_id, rec.version)
                if rec.doi_state == "failed" or self._due.get(key, 0.0) > time.monotonic():
                    continue
                outcomes.append((key, self._mint(rec)))
        return outcomes

    def _previous(self, rec: Any) -> Mapping[str, str] | None:
        earlier = [
            r
            for (set_id, number), r in self._published().items()
            if set_id == rec.set_id
            and number < rec.version
            and r.service == rec.service
            and r.doi_state == "findable"
        ]
        return dict(max(earlier, key=lambda r: r.version).steps) if earlier else None

    def _mint(self, rec: Any) -> str:
        from mediator_desktop.core.errors import ArchiveUnreachable, PermissionDenied, SourceError

        key = (rec.set_id, rec.version)
        try:
            minter = self._minter(rec.service)
            minted = minter.mint(
                f"{rec.set_id}-v{rec.version}",
                DoiMetadata.from_json(rec.metadata),
                rec.landing_url or None,
                self._attachment(rec.set_id, rec.version),
                dict(rec.steps),
                lambda steps: self._record(rec.set_id, rec.version, steps=dict(steps), state="queued"),
                self._previous(rec),
            )
        except (ArchiveUnreachable, SourceError) as exc:
            delay = min(self._max_backoff, self._backoff * 2 ** min(rec.attempts, 16))
            self._due[key] = time.monotonic() + delay
            self._record(rec.set_id, rec.version, state="queued", error=f"{exc} (next try in {delay:.0f} s)")
            return "retry"
        except (PermissionDenied, ValidationError) as exc:
            self._record(rec.set_id, rec.version, state="failed", error=str(exc))
            return "failed"
        self._due.pop(key, None)
        self._record(
            rec.set_id,
            rec.version,
            steps=dict(minted.steps),
            state="findable",
            doi=minted.doi,
            url=minted.url,
            error="",
        )
        return "findable"
