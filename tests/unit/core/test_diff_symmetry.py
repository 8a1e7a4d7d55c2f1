"""A diff's one line tells additions and removals alike: count, size and spread (issue 23)."""

from __future__ import annotations

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest
from mediator_desktop.core.pointer import Hierarchy

LEVELS = {"tcia": Hierarchy(("collection", "patient", "study", "series"))}


def series(patient: str, study: str, uid: str, size: int) -> Leaf:
    return Leaf("tcia", ("RIDER", patient, study, uid), Fingerprint(size=size, count=1, version="v1"))


#: 14 series of 3 studies (two patients), 120.3 MB in all.
MOVED = [
    series(f"P{1 + n % 2}", f"S{n % 3}", f"1.2.{n}", 8_592_000 + (3_000 if n == 0 else 0)) for n in range(14)
]
KEPT = [series("P9", "S9", "9.9", 1_000)]


def test_a_removal_reads_like_the_addition_it_undoes() -> None:
    small, big = Manifest.build(KEPT), Manifest.build([*KEPT, *MOVED])
    added = ManifestDiff.between(small, big).summary(LEVELS)
    removed = ManifestDiff.between(big, small).summary(LEVELS)
    assert added == "+14 series (120.3 MB) in 2 patients"
    assert removed == "-14 series (120.3 MB) in 2 patients"


def test_one_removed_series_names_its_study_and_size() -> None:
    before = Manifest.build([*KEPT, series("P1", "S1", "1.1", 5_000_000)])
    line = ManifestDiff.between(before, Manifest.build(KEPT)).summary(LEVELS)
    assert line == "-1 series (5.0 MB) in 1 study"


def test_both_directions_and_changes_in_one_line() -> None:
    old = Manifest.build([*KEPT, series("P1", "S1", "a", 100), series("P2", "S2", "b", 100)])
    new = Manifest.build(
        [
            Leaf("tcia", KEPT[0].path, Fingerprint(size=2_000, count=1, version="v2")),
            series("P3", "S3", "c", 300),
            series("P3", "S4", "d", 300),
        ]
    )
    line = ManifestDiff.between(old, new).summary(LEVELS)
    assert line == "+2 series (600 B) in 2 studies, -2 series (200 B) in 2 patients, 1 changed"
