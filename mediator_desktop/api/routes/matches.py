"""Matching data in other archives (radiogenomic cohorts): ``/v1/matches``.

A cohort's patients (a collection, some patients, a filtered cohort of one archive, a clinical
filter, or patients named) are looked for in the other archives: IDC and TCIA by ``PatientID``, GDC
by case ``submitter_id``, pathology by subject. Per archive the answer says which patients it holds,
which it lacks and the kinds of data they have there (CT, SM, RNA-Seq, slides...), or why it could
not be searched. ``/v1/matches/cohort`` turns the kinds chosen per archive into the rules a set
holds (``POST /v1/sets``, ``.../versions``): they stay joined, so a new matching file later is an
archive update of the set.
"""

from __future__ import annotations

from fastapi import APIRouter

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import MatchBody, MatchCohortBody, MatchCohortModel, MatchModel
from mediator_desktop.core import errors
from mediator_desktop.core.integrator import Matching, describe_match
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service

router = APIRouter(tags=["matches"])


def _match(service: Service, body: MatchBody, into: list[Pointer] | None = None) -> Matching:
    origin = [Pointer.parse(text) for text in body.origin]
    targets = into if into is not None else [Pointer.parse(text) for text in body.into]
    return service.archives.match(origin, body.patients, targets)


@router.post("/v1/matches")
def post_match(body: MatchBody, service: ServiceDep) -> MatchModel:
    """What the other archives hold for a cohort's patients: per archive the patients ``found`` and
    ``missing``, the ``kinds`` of data they have there (each with its ``category``, the ``filter``
    that selects it, its patients, leaves and bytes), or the ``error`` that kept it from being
    searched (the other archives still answer). Nothing is stored."""
    return MatchModel.model_validate(describe_match(_match(service, body)))


@router.post("/v1/matches/cohort")
def post_match_cohort(body: MatchCohortBody, service: ServiceDep) -> MatchCohortModel:
    """The rules that hold a match in a set: each origin pointer joined (``@in``) to the kinds chosen
    per archive, and with ``every`` only the patients that have them in every chosen archive
    (``@every``). ``patients`` are the patients with the chosen data in every chosen archive."""
    if not body.origin:
        raise errors.ValidationError(
            "a set holds a cohort as pointers into its archive: give origin (e.g. idc/tcga_luad, or "
            "idc/tcga_luad/TCGA-05-4244 for one patient), not only patients"
        )
    into = [Pointer.parse(text) for text in body.into] or [Pointer(source) for source in body.chosen]
    searched = {p.source_id for p in into}
    unsearched = sorted(set(body.chosen) - searched)
    if unsearched:
        raise errors.ValidationError(
            f"chosen names {', '.join(unsearched)}, which into leaves out (into: "
            f"{', '.join(str(p) for p in into)}); add it to into, or leave into empty"
        )
    matching = _match(service, body, into)
    for source in body.chosen:
        error = matching.archive(source).error
        if error is not None:
            raise errors.SourceError(
                f"{source} could not be searched ({error}); try again, or choose without it"
            )
    pointers = matching.cohort(body.chosen, every=body.every)
    patients = matching.common(body.chosen)
    return MatchCohortModel(pointers=[str(p) for p in pointers], patients=patients, count=len(patients))
