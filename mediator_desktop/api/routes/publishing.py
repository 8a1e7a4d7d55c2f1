"""Publishing a set version with a DOI: ``/v1/sets/{id}/versions/{n}/publish`` and its publication.

Publishing freezes the version at once and answers with its record; the DOI is minted afterwards
by a queue on this node, which retries while the service is down (``doi_state`` queued, then
findable, or failed when it needs the user: wrong credentials, metadata the service refused).
Metadata that breaks a rule of the DOI record is refused with 400 and every problem by field in
``detail`` (``{"title": "...", "creators.0.orcid": "..."}``), so a form shows each next to its field.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep, SetId
from mediator_desktop.api.models import (
    CitationModel,
    DoiMetadataModel,
    MetadataProblems,
    ProblemsModel,
    PublicationModel,
    PublishBody,
    PublishingSecretBody,
)
from mediator_desktop.core.publishing import DoiMetadata
from mediator_desktop.core.replica import PublishedRecord

router = APIRouter(tags=["publishing"])

Number = Annotated[int, PathParam(ge=1, le=2**31, description="a version number of the set")]
LANDING_PAGE = (
    "a DataCite DOI resolves to a landing page you give: an https:// address (your lab's page of "
    "the data, or a Zenodo record)"
)


def publication_model(record: PublishedRecord) -> PublicationModel:
    return PublicationModel(
        set_id=record.set_id,
        version=record.version,
        doi=record.doi,
        doi_state=record.doi_state,  # type: ignore[arg-type]  # the store keeps one of the four
        status=record.status(),
        error=record.error,
        service=record.service,
        landing_url=record.landing_url,
        doi_url=f"https://doi.org/{record.doi}" if record.doi else None,
        attempts=record.attempts,
        title=record.title,
        creators=list(record.creators),
        publication_year=record.publication_year,
        publisher_key=record.publisher_key,
        time=record.time,
        metadata=DoiMetadataModel.model_validate(record.metadata) if record.metadata else None,
    )


@router.get("/v1/sets/{set_id}/versions/{number}/publication/suggested")
def get_suggested(set_id: SetId, number: Number, service: ServiceDep) -> DoiMetadataModel:
    """Metadata to start the publish form with: the set's name and description, you as the
    creator, the ``publisher`` setting, this year, the source collections' DOIs (as ``related``)
    and their licence when they share one."""
    return DoiMetadataModel.model_validate(service.publishing.suggest(set_id, number).to_json())


@router.post(
    "/v1/sets/{set_id}/versions/{number}/publish",
    responses={400: {"model": ProblemsModel, "description": "the metadata's problems by field"}},
)
def post_publish(set_id: SetId, number: Number, body: PublishBody, service: ServiceDep) -> PublicationModel:
    """Publish a version for good (it can never change, nor the set be deleted) and queue its DOI
    with ``service`` (default: the ``doi_service`` setting; ``none``: no DOI). Answers at once with
    the record (``doi_state`` queued): poll ``.../publication`` for the DOI. Metadata with problems
    is refused with 400 and every problem by field in ``detail``; nothing is published then."""
    chosen = service.settings.get().doi_service if body.service is None else body.service
    chosen = "" if chosen == "none" else chosen
    metadata = None
    problems: dict[str, str] = {}
    if body.metadata is not None:
        metadata = DoiMetadata.from_json(body.metadata.model_dump())
        problems = metadata.problems()
    if chosen == "datacite" and not body.landing_url:
        problems["landing_url"] = LANDING_PAGE
    elif body.landing_url and not body.landing_url.startswith("https://"):
        problems["landing_url"] = "the landing page is an https:// address"
    if problems:
        raise MetadataProblems.of(problems)
    record = service.publishing.publish(
        set_id, number, metadata, landing_url=body.landing_url or None, service=chosen
    )
    return publication_model(record)


@router.get("/v1/sets/{set_id}/versions/{number}/publication")
def get_publication(set_id: SetId, number: Number, service: ServiceDep) -> PublicationModel:
    """A published version's record: its DOI and ``status`` once minted, or how far minting got
    (``error``: why the last try failed). 404 when the version is not published."""
    return publication_model(service.publishing.get(set_id, number))


@router.post("/v1/sets/{set_id}/versions/{number}/publication/retry")
def post_retry(set_id: SetId, number: Number, service: ServiceDep) -> PublicationModel:
    """Try minting the DOI again now (after fixing the credentials, or when the service is back).
    400 when the version has nothing to mint (it has its DOI, or was published without one)."""
    return publication_model(service.publishing.retry(set_id, number))


@router.get("/v1/sets/{set_id}/versions/{number}/citation")
def get_citation(set_id: SetId, number: Number, service: ServiceDep) -> CitationModel:
    """How a paper cites a published version: DataCite's text style, BibTeX, and a data
    availability statement naming the source collections with their DOIs and licences. Before
    the DOI is minted the citation says "(DOI pending)"."""
    citation = service.publishing.citation(set_id, number)
    return CitationModel(text=citation.text, bibtex=citation.bibtex, availability=citation.availability)


@router.put("/v1/publishing/secret", status_code=204)
def put_secret(body: PublishingSecretBody, service: ServiceDep) -> None:
    """Keep the DataCite repository password or the Zenodo token in the node's OS keyring; used
    for the next DOI (and a retry) from now on. Never given back."""
    service.publishing.set_secret(body.service, body.secret)
