"""Update tracking of the GDC source against the emulator: revised (same name, new name), added and
withdrawn files, found from ``/files/versions`` and ``updated_datetime``, equal a fresh resolution."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import SourceError
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.gdc import GdcSource
from tests.helpers.gdc_emulator import GdcCatalogue, GdcEmulator, catalogue_from_idc, parse_instant

LUAD = ("TCGA", "TCGA-LUAD")


@pytest.fixture(scope="module")
def pristine() -> GdcCatalogue:
    return catalogue_from_idc(("tcga_luad",), max_cases=40)


@pytest.fixture
def emulator(pristine: GdcCatalogue) -> Iterator[GdcEmulator]:
    """An emulator of its own per test: the tests change the archive."""
    with GdcEmulator(copy.deepcopy(pristine)) as started:
        yield started


@pytest.fixture
def gdc(emulator: GdcEmulator) -> GdcSource:
    return GdcSource("gdc", emulator.url, backoff=0.01)


def now(emulator: GdcEmulator) -> float:
    return parse_instant(emulator.now()).timestamp()


def by_data_type(emulator: GdcEmulator, case: str, data_type: str) -> str:
    return next(f.file_id for f in emulator.catalogue.files_of(case) if f.data_type == data_type)


def test_revisions_additions_and_withdrawals_equal_a_fresh_resolution(
    gdc: GdcSource, emulator: GdcEmulator
) -> None:
    selection = Selection.of(gdc.pointer(*LUAD))
    base = gdc.resolve(selection)
    since = now(emulator)
    unchanged = gdc.track(selection, base, since)
    assert unchanged.manifest == base and unchanged.notes == ()
    assert unchanged.state == "GDC data release 42.0"

    emulator.advance(3600)
    cases = sorted(emulator.catalogue.cases)
    same_name = by_data_type(emulator, cases[0], "Gene Expression Quantification")
    new_name = by_data_type(emulator, cases[1], "Masked Somatic Mutation")
    withdrawn = by_data_type(emulator, cases[2], "Clinical Supplement")
    old_names = {i: emulator.catalogue.files[i].file_name for i in (same_name, new_name, withdrawn)}
    revised_same = emulator.revise(same_name, same_name=True)
    revised_new = emulator.revise(new_name, same_name=False)
    emulator.remove(withdrawn)
    added = emulator.add_file(cases[3], kind="mirna")
    before = dict(emulator.requests)
    tracked = gdc.track(selection, base, since)
    asked = {k: v - before.get(k, 0) for k, v in emulator.requests.items() if v != before.get(k, 0)}

    assert tracked.manifest == gdc.resolve(selection)
    assert tracked.notes == ("2 files revised in GDC data release 42.0; 1 withdrawn; 1 new",)
    assert tracked.state == "GDC data release 42.0"
    drift = ManifestDiff.between(base, tracked.manifest)
    assert [(old.path[2:], new.fingerprint.version) for old, new in drift.changed] == [
        ((cases[0], old_names[same_name]), revised_same)
    ]
    assert sorted(leaf.path[2:] for leaf in drift.removed) == sorted(
        [(cases[1], old_names[new_name]), (cases[2], old_names[withdrawn])]
    )
    assert sorted(leaf.fingerprint.version or "" for leaf in drift.added) == sorted(
        [revised_new, added.file_id]
    )
    # No listing of the whole project: versions, the new versions, updates, the changed cases.
    assert asked == {"status": 1, "files/versions": 1, "files": 3}


def test_without_since_it_resolves_in_full_and_releases_do_not_change_fingerprints(
    gdc: GdcSource, emulator: GdcEmulator
) -> None:
    selection = Selection.of(gdc.pointer("TCGA"))
    base = gdc.resolve(selection)
    release = emulator.new_release()  # every current file is in it: their data_release ranges grow
    full = gdc.track(selection, base, None)
    assert full.manifest == base and full.state == f"GDC data release {release}"
    assert gdc.track(selection, base, now(emulator)).manifest == base


def test_filters_decide_what_a_change_brings(gdc: GdcSource, emulator: GdcEmulator) -> None:
    cases = sorted(emulator.catalogue.cases)
    selection = Selection.of(gdc.pointer(*LUAD, data_type="Gene Expression Quantification")).remove(
        gdc.pointer(*LUAD, cases[5])
    )
    base = gdc.resolve(selection)
    since = now(emulator)
    emulator.advance(60)
    emulator.revise(by_data_type(emulator, cases[0], "Masked Somatic Mutation"))  # not selected
    emulator.add_file(cases[5], kind="rna_counts")  # in an excluded case
    unchanged = gdc.track(selection, base, since)
    assert unchanged.manifest == base == gdc.resolve(selection)
    assert unchanged.notes == ()

    counts = emulator.add_file(cases[1], kind="rna_counts")
    # A new file named like another of its case: both get keys of their own.
    twin_of = next(
        f for f in emulator.catalogue.files_of(cases[2]) if f.data_type == "Gene Expression Quantification"
    )
    twin = emulator.add_file(cases[2], kind="rna_counts", file_name=twin_of.file_name)
    tracked = gdc.track(selection, base, since)
    assert tracked.manifest == gdc.resolve(selection)
    drift = ManifestDiff.between(base, tracked.manifest)
    assert {leaf.fingerprint.version for leaf in drift.added} == {
        counts.file_id,
        twin.file_id,
        twin_of.file_id,
    }
    assert [leaf.fingerprint.version for leaf in drift.removed] == [twin_of.file_id]
    assert tracked.notes == ("2 new files",)


def test_a_revision_under_a_file_pointer_and_a_withdrawn_revision(
    gdc: GdcSource, emulator: GdcEmulator
) -> None:
    cases = sorted(emulator.catalogue.cases)
    counts = emulator.catalogue.files[by_data_type(emulator, cases[0], "Gene Expression Quantification")]
    maf = emulator.catalogue.files[by_data_type(emulator, cases[1], "Masked Somatic Mutation")]
    selection = Selection.of(
        gdc.pointer(*LUAD, cases[0], counts.file_name), gdc.pointer(*LUAD, cases[1], maf.file_name)
    )
    base = gdc.resolve(selection)
    assert len(base) == 2
    since = now(emulator)
    emulator.advance(60)
    newer = emulator.revise(counts.file_id)
    emulator.remove(emulator.revise(maf.file_id))  # revised, then the new version withdrawn
    tracked = gdc.track(selection, base, since)
    assert tracked.manifest == gdc.resolve(selection)
    assert [leaf.fingerprint.version for leaf in tracked.manifest] == [newer]
    assert tracked.notes == ("1 file revised in GDC data release 42.0; 1 withdrawn",)


def test_a_failing_archive_gives_no_partial_answer(gdc: GdcSource, emulator: GdcEmulator) -> None:
    selection = Selection.of(gdc.pointer(*LUAD))
    base = gdc.resolve(selection)
    emulator.fail("files/versions", 503, times=gdc.retries + 1)
    with pytest.raises(SourceError, match="503"):
        gdc.track(selection, base, now(emulator))
    emulator.fail("files", 200, body=b"<html>maintenance</html>", content_type="text/html")
    with pytest.raises(SourceError, match="not JSON"):
        gdc.track(selection, base, now(emulator))
