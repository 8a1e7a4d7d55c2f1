"""Radiogenomic cohorts: the patients of one archive matched in others (``Archives.match``) and kept
joined in a set (``cohort`` rules with ``@in`` and ``@every``), through the real service over a
real one-node store, two local DICOM folders (``lab`` and ``annex``) and IDC's real index."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import duckdb
import idc_index_data
import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.integrator import cohort, patient_paths
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.sources.clinical import PandasTables
from mediator_desktop.sources.local import LocalFolderSource
from tests.helpers.dicom import make_series
from tests.helpers.service import SOURCE, World

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(tmp_path, stack)


@pytest.fixture
def annex(world: World, tmp_path: Path) -> Iterator[LocalFolderSource]:
    """A second archive: P1 (a CT) and P3 (a PT), not P2."""
    folder = tmp_path / "annex"
    make_series(folder, "P1", "2.1", "2.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "P3", "2.3", "2.3.1", 1, modality="PT", pixels=8)
    source = LocalFolderSource("annex", folder, tmp_path / "index" / "annex.sqlite")
    source.reindex()
    yield source
    source.close()


def _service(world: World, **sources: object) -> Service:
    service = Service(
        world.store,
        Identity.generate("ann"),
        sources={SOURCE: world.source, **sources},  # type: ignore[dict-item]
        settings=world.settings_file("ann"),
        table_engine=PandasTables(),
    )
    world._stack.callback(service.close)
    service.register()
    return service


def _paths(service: Service, set_id: str) -> dict[str, list[tuple[str, ...]]]:
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    out: dict[str, list[tuple[str, ...]]] = {}
    for leaf in manifest:
        out.setdefault(leaf.source_id, []).append(leaf.path)
    return out


def test_match_says_per_archive_which_patients_it_holds_and_what_data(
    world: World, annex: LocalFolderSource
) -> None:
    ann = _service(world, annex=annex)

    matching = ann.archives.match([Pointer.of(SOURCE)])

    assert matching.patients == ("P1", "P2")
    assert matching.searched == ["annex"]  # the origin is not searched; clinical is not an archive
    found = matching.archive("annex")
    assert found.found == ("P1",)
    assert found.paths == {"P1": (("P1",),)}
    assert [(k.label, sorted(k.patients), k.leaves) for k in found.kinds] == [("series", ["P1"], 1)]
    assert matching.common({"annex": None}) == ["P1"]


def test_a_filter_on_the_origin_counts_and_named_patients_join_the_cohort(
    world: World, annex: LocalFolderSource
) -> None:
    ann = _service(world, annex=annex)

    mr_only = ann.archives.match([Pointer.of(SOURCE, Modality="MR")])
    named = ann.archives.match(patients=["P3", "P9"], into=[Pointer.of("annex")])

    assert mr_only.patients == ("P2",) and mr_only.archive("annex").found == ()
    assert named.patients == ("P3", "P9") and named.archive("annex").found == ("P3",)
    with pytest.raises(ValidationError, match=r"no patients to match"):
        ann.archives.match([Pointer.of(SOURCE, Modality="US")])


def test_a_cohort_of_every_archive_keeps_only_the_patients_all_hold_and_stays_joined(
    world: World, annex: LocalFolderSource, tmp_path: Path
) -> None:
    ann = _service(world, annex=annex)
    matching = ann.archives.match([Pointer.of(SOURCE)])
    (rule,) = matching.cohort({"annex": None}, every=True)

    outcome = ann.sets.create_from("P1 everywhere", add=[rule])

    # P2 has no data in the annex: it is left out here and there, and the note says so.
    assert _paths(ann, outcome.set_id) == {
        "annex": [("P1", "2.1", "2.1.1")],
        SOURCE: [("P1", "1.2.1", "1.2.1.1")],
    }
    assert outcome.warnings == (
        "1 of 2 patients of lab have data in every archive joined (annex); none for P2",
    )
    # The set keeps the rule: when the annex gets P2's data, P2 joins on the next resolution.
    make_series(tmp_path / "annex", "P2", "2.2", "2.2.1", 1, modality="MR", pixels=8)
    annex.reindex()
    now = ann.archives.resolve(ann.sets.version(outcome.set_id).selection)
    assert sorted((leaf.source_id, leaf.path[0]) for leaf in now) == [
        ("annex", "P1"),
        ("annex", "P2"),
        (SOURCE, "P1"),
        (SOURCE, "P2"),
    ]


def test_a_cohort_of_any_archive_keeps_its_own_patients_and_joins_the_found_ones(
    world: World, annex: LocalFolderSource
) -> None:
    ann = _service(world, annex=annex)
    rule = cohort(Pointer.of(SOURCE), [Pointer.of("annex", Modality="CT")])

    outcome = ann.sets.create_from("lab and the annex's CT", add=[rule])

    assert _paths(ann, outcome.set_id) == {
        "annex": [("P1", "2.1", "2.1.1")],
        SOURCE: [("P1", "1.2.1", "1.2.1.1"), ("P2", "1.2.2", "1.2.2.1")],
    }
    assert outcome.warnings == ("1 of 2 patients of lab have data in annex?Modality=CT; none for P2",)
    with pytest.raises(ValidationError, match=r"not to itself"):
        cohort(Pointer.of(SOURCE), [Pointer.of(SOURCE, "P1")])


def test_idc_says_which_modalities_a_cohort_has_as_its_index_does() -> None:
    from mediator_desktop.sources.idc import IdcSource

    idc = IdcSource()
    ct = patient_paths(idc, Pointer.of("idc", "tcga_luad", Modality="CT"))

    kinds = {k.label: k for k in idc.data_kinds(Pointer.of("idc"), list(ct))}

    index = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    rows = duckdb.sql(
        f"""select Modality, count(distinct PatientID), count(*) from '{index}'
        where PatientID in (select PatientID from '{index}' where collection_id = 'tcga_luad'
        and Modality = 'CT') group by Modality"""
    ).fetchall()
    assert {m: (len(k.patients), k.leaves) for m, k in kinds.items()} == {m: (p, n) for m, p, n in rows}
    assert len(ct) == len(kinds["CT"].patients)
    assert kinds["SM"].category == "pathology" and kinds["CT"].category == "radiology"
    assert kinds["CT"].filter == ("Modality", "CT")
