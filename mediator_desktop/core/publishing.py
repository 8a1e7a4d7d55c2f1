"""Publishing a set version with a DOI: the metadata (DataCite's kernel, Zenodo's deposit form),
checked before anything is sent, and what a DOI service (``Minter``) offers.

A published version is frozen in the store at once; its DOI is minted afterwards, by a queue that
retries until the service answers. A minter records each step it took (``record``) in the store
before the next, so a retry after a crash, or on another member, resumes where the first stopped
and never mints a second DOI for the same version.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediator_desktop.core.errors import ValidationError

#: Longest title, description and name a DOI record takes here (DataCite has no hard limit; a
#: journal's reference list and a landing page do).
MAX_TITLE = 500
MAX_DESCRIPTION = 20_000
MAX_NAME = 300
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")


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
            raise ValidationError(
                "the publication metadata is not complete: "
                + "; ".join(f"{name}: {text}" for name, text in problems.items())
            )
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
