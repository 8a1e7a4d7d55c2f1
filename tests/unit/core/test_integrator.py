"""The Integrator: a clinical rule joined to the archives that hold its patients, through the real
service over a real one-node store, a local DICOM folder (``lab``) and IDC's real index."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mediator_desktop.core.clinical import join_pointer, parse_conditions
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.integrator import find_patients, patient_depth
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.sources.clinical import PandasTables
from tests.helpers.service import SOURCE, World

pytestmark = pytest.mark.timeout(120)

TRIAL = "PatientID,age,stage,smoking\nP1,61,II,current\nP2,55,IIA,former\nP3,70,IIB,current\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(tmp_path, stack)


def _service(world: World, name: str = "ann", **sources: object) -> Service:
    service = Service(
        world.store,
        Identity.generate(name),
        sources={SOURCE: world.source, **sources},  # type: ignore[dict-item]
        settings=world.settings_file(name),
        table_engine=PandasTables(),
    )
    world._stack.callback(service.close)
    service.register()
    return service


def _table(service: Service, folder: Path, text: str = TRIAL, name: str = "trial") -> None:
    path = folder / f"{name}.csv"
    path.write_text(text)
    service.clinical.add(path, name)


def _paths(service: Service, set_id: str, source: str) -> list[tuple[str, ...]]:
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    return [leaf.path for leaf in manifest if leaf.source_id == source]


def test_a_cohort_joins_the_patients_an_archive_has_and_names_the_ones_it_lacks(
    world: World, tmp_path: Path
) -> None:
    ann = _service(world)
    _table(ann, tmp_path)
    smokers = join_pointer("trial", parse_conditions(["smoking=current"]), [Pointer.of(SOURCE)])

    outcome = ann.sets.create_from("smokers", add=[smokers])

    # P1 and P3 smoke; the folder holds P1 and P2: P1's series joins, P3 is said to be missing.
    assert _paths(ann, outcome.set_id, SOURCE) == [("P1", "1.2.1", "1.2.1.1")]
    assert _paths(ann, outcome.set_id, "clinical") == [("trial", "P1"), ("trial", "P3")]
    assert outcome.warnings == ("1 of 2 patients of clinical/trial have data in lab; none for P3",)
    # The set keeps the rule, not the patients: it follows the table.
    assert ann.sets.version(outcome.set_id).selection == Selection.of(smokers)


def test_the_target_filters_count_and_a_removed_patient_stays_removed(world: World, tmp_path: Path) -> None:
    ann = _service(world)
    _table(ann, tmp_path)
    everyone = join_pointer("trial", parse_conditions(["age>=0"]), [Pointer.of(SOURCE, Modality="MR")])

    outcome = ann.sets.create_from("MR of the trial", add=[everyone])
    # P1 has CT only: the filter of the target leaves it out, and the note says so.
    assert _paths(ann, outcome.set_id, SOURCE) == [("P2", "1.2.2", "1.2.2.1")]
    assert "2 of 3" not in outcome.warnings[0] and "none for P1, P3" in outcome.warnings[0]

    ann.sets.change(outcome.set_id, remove=[Pointer.of(SOURCE, "P2", Modality="MR")])
    assert _paths(ann, outcome.set_id, SOURCE) == []
    checked = ann.tracking.check([outcome.set_id])
    assert not checked[0].error and not checked[0].new  # the exclusion holds when re-resolved


def test_a_new_table_version_is_drift_and_accepting_it_follows_the_table(
    world: World, tmp_path: Path
) -> None:
    ann = _service(world)
    _table(ann, tmp_path)
    smokers = join_pointer("trial", parse_conditions(["smoking=current"]), [Pointer.of(SOURCE)])
    set_id = ann.sets.create_from("smokers", add=[smokers]).set_id
    ann.sets.follow(set_id)
    assert not ann.tracking.check([set_id])[0].new

    _table(ann, tmp_path, TRIAL.replace("P2,55,IIA,former", "P2,56,IIA,current"))  # P2 took it up
    (outcome,) = ann.tracking.check([set_id])

    assert outcome.new and not outcome.error
    drift = ann.tracking.drift(set_id)
    assert drift is not None and (drift.added, drift.revised, drift.removed) == (2, 0, 0)
    assert "lab: +1 series" in drift.summary
    assert _paths(ann, set_id, SOURCE) == [("P1", "1.2.1", "1.2.1.1")]  # nothing changes before accepting
    accepted = ann.tracking.accept(set_id)
    assert accepted.version == 2
    assert _paths(ann, set_id, SOURCE) == [("P1", "1.2.1", "1.2.1.1"), ("P2", "1.2.2", "1.2.2.1")]
    _, diff = ann.sets.diff(set_id, 1, 2)
    assert [leaf.path for leaf in diff.added] == [("trial", "P2"), ("P2", "1.2.2", "1.2.2.1")]


def test_bad_join_targets_are_refused_before_anything_is_written(world: World, tmp_path: Path) -> None:
    ann = _service(world)
    _table(ann, tmp_path)
    too_deep = join_pointer("trial", (), [Pointer.of(SOURCE, "P1")])
    with pytest.raises(ValidationError, match=r"reaches down to a patient.*\(e\.g\. lab\)$"):
        ann.sets.create_from("deep", add=[too_deep])
    nowhere = join_pointer("trial", (), [Pointer.of("tcia", "LIDC-IDRI")])
    with pytest.raises(NotFound, match=r"no source 'tcia' is configured here"):
        ann.sets.create_from("nowhere", add=[nowhere])
    assert ann.sets.list() == []


def test_idc_finds_a_cohort_in_its_index_as_browsing_would(world: World, tmp_path: Path) -> None:
    from mediator_desktop.sources.idc import IdcSource

    idc = IdcSource()
    ann = _service(world, idc=idc)
    patients = [item.key for item in idc.browse(("nsclc_radiogenomics",), limit=5).items]
    scope = Pointer.of("idc", "nsclc_radiogenomics", Modality="CT")
    assert patient_depth(idc) == 2

    found = find_patients(idc, scope, [*patients, "NOT-A-PATIENT"])

    by_browsing = {
        key: [("nsclc_radiogenomics", key)]
        for key in patients
        if idc.browse(("nsclc_radiogenomics", key), filters=scope.filters, limit=1).total
    }
    assert found == by_browsing and found
    rows = "PatientID,arm\n" + "".join(f"{p},a\n" for p in [*patients, "NOT-A-PATIENT"])
    _table(ann, tmp_path, rows, "arms")
    outcome = ann.sets.create_from("ct", add=[join_pointer("arms", (), [scope])])
    assert {path[1] for path in _paths(ann, outcome.set_id, "idc")} == set(found)
    assert outcome.warnings[-1].startswith(f"{len(found)} of 6 patients of clinical/arms have data in idc/")
