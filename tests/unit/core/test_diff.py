from __future__ import annotations

import pytest
from hypothesis import given

from mediator_desktop.core.diff import ManifestDiff, human_bytes, plural
from mediator_desktop.core.errors import IntegrityError
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest
from mediator_desktop.core.pointer import Hierarchy
from tests.helpers.strategies import leaf_lists

LEVELS = {"tcia": Hierarchy(("collection", "patient", "study", "series"))}


def series(patient: str, study: str, uid: str, size: int = 100, version: str = "v1") -> Leaf:
    return Leaf("tcia", ("LIDC", patient, study, uid), Fingerprint(size=size, count=1, version=version))


BASE = [series("P1", "S1", "1"), series("P1", "S1", "2"), series("P2", "S1", "3"), series("P3", "S9", "4")]


def test_summary_counts_bytes_and_spread() -> None:
    old = Manifest.build(BASE)
    added = [
        series("P4", "S1", "10", 700_000_000),
        series("P4", "S2", "11", 700_000_000),
        series("P5", "S1", "12", 300_000_000),
        series("P6", "S1", "13", 200_000_000),
        series("P6", "S1", "14", 200_000_000),
    ]
    changed = [
        series("P1", "S1", "1", version="v2"),
        series("P1", "S1", "2", 101),
        series("P2", "S1", "3", 5),
    ]
    new = Manifest.build([*added, *changed])  # series 4 removed
    diff = ManifestDiff.between(old, new)
    assert diff.summary(LEVELS) == "+5 series (2.1 GB) in 3 patients, -1 series (100 B) in 1 study, 3 changed"
    (per_source,) = diff.by_source(LEVELS)
    assert per_source.added.spread == (("collection", 1), ("patient", 3), ("study", 4))
    assert per_source.removed.leaves == 1
    assert per_source.removed.bytes == 100
    assert {a.path[-1] for a, _ in diff.changed} == {"1", "2", "3"}
    assert diff.summary() == (
        "+5 leaves (2.1 GB) in 3 level-2 groups, -1 leaf (100 B) in 1 level-3 group, 3 changed"
    )


def test_grouped_per_level() -> None:
    old = Manifest.build(BASE)
    new = Manifest.build([BASE[1], BASE[3], series("P1", "S1", "5", 7), series("P2", "S1", "3", 9, "v2")])
    per_patient = ManifestDiff.between(old, new).grouped(2)
    assert set(per_patient) == {("tcia", ("LIDC", "P1")), ("tcia", ("LIDC", "P2"))}
    p1 = per_patient[("tcia", ("LIDC", "P1"))]
    assert (p1.added, p1.added_bytes, p1.removed, p1.removed_bytes) == (1, 7, 1, 100)
    p2 = per_patient[("tcia", ("LIDC", "P2"))]
    assert (p2.changed, p2.changed_bytes, p2.added) == (1, 9, 0)
    assert ManifestDiff.between(old, new).grouped(5) == {}


def test_no_changes_and_several_sources() -> None:
    m = Manifest.build(BASE)
    assert not ManifestDiff.between(m, m)
    assert ManifestDiff.between(m, m).summary() == "no changes"
    s3 = Leaf("s3", ("bucket", "a.dcm"), Fingerprint(size=2_000, checksum="etag:x"))
    diff = ManifestDiff.between(m, Manifest.build([*BASE, s3]))
    assert diff.summary(LEVELS) == "+1 leaf (2.0 KB) in 1 level-1 group"
    diff2 = ManifestDiff.between(Manifest.build(BASE[:1]), Manifest.build([*BASE[:2], s3]))
    assert (
        diff2.summary(LEVELS) == "s3: +1 leaf (2.0 KB) in 1 level-1 group; tcia: +1 series (100 B) in 1 study"
    )


def test_apply_checks_its_base() -> None:
    a, b = Manifest.build(BASE), Manifest.build(BASE[1:])
    with pytest.raises(IntegrityError, match="applies to manifest"):
        ManifestDiff.between(a, b).apply(b)


@given(leaf_lists, leaf_lists)
def test_applying_diff_a_b_to_a_gives_b(a_leaves: list[Leaf], b_leaves: list[Leaf]) -> None:
    a, b = Manifest.build(a_leaves), Manifest.build(b_leaves)
    diff = ManifestDiff.between(a, b)
    assert diff.apply(a) == b
    keys_a = {(x.source_id, x.path) for x in a_leaves}
    keys_b = {(x.source_id, x.path) for x in b_leaves}
    assert {(x.source_id, x.path) for x in diff.added} == keys_b - keys_a
    assert {(x.source_id, x.path) for x in diff.removed} == keys_a - keys_b
    assert all(old != new and old.path == new.path for old, new in diff.changed)


def test_plural_and_bytes() -> None:
    assert [plural(w, 2) for w in ("series", "study", "patient", "leaf", "key")] == [
        "series",
        "studies",
        "patients",
        "leaves",
        "keys",
    ]
    assert plural("study", 1) == "study"
    assert human_bytes(999) == "999 B"
    assert human_bytes(2_100_000_000) == "2.1 GB"
