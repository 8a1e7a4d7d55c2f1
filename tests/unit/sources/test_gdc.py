"""The GDC source against the GDC emulator: browsing, resolution, downloads through the transfer
engine, faults, manifests, joins and kinds of data."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.errors import ArchiveUnreachable, SourceError, ValidationError
from mediator_desktop.core.imports import read_manifest_file
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.transfer import STATE_DIR, _stage_name
from mediator_desktop.sources import gdc as gdc_module
from mediator_desktop.sources.gdc import KIND, GdcSource, create, disambiguated, manifest_file, original_name
from tests.helpers.gdc_emulator import (
    GdcCatalogue,
    GdcEmulator,
    GdcFile,
    catalogue_from_idc,
    content,
    synthetic_catalogue,
)
from tests.helpers.transfer import download, downloader, files_under

TOKEN = "gdc-token"
LUAD = ("TCGA", "TCGA-LUAD")


@pytest.fixture(scope="module")
def catalogue() -> GdcCatalogue:
    return catalogue_from_idc(("tcga_luad",))


@pytest.fixture(scope="module")
def emulator(catalogue: GdcCatalogue) -> Iterator[GdcEmulator]:
    with GdcEmulator(catalogue, token=TOKEN, token_acl=("phs000178",)) as started:
        yield started


@pytest.fixture
def gdc(emulator: GdcEmulator) -> GdcSource:
    return GdcSource("gdc", emulator.url, backoff=0.01, timeout=(2.0, 10.0))


def latest(catalogue: GdcCatalogue) -> list[GdcFile]:
    return catalogue.latest()


def expected_leaf(catalogue: GdcCatalogue, f: GdcFile, case: str, source_id: str = "gdc") -> Leaf:
    """The leaf the source must make of ``f`` under ``case``, computed from the catalogue."""
    project = catalogue.cases[case].project_id
    program = catalogue.projects[project].program
    return Leaf(
        source_id,
        (program, project, case, f.file_name),
        Fingerprint(f.file_size, 1, f"md5:{f.md5sum}", f.file_id, f.data_release.split(" - ")[0]),
    )


def a_case(catalogue: GdcCatalogue, *, access: str | None = None, strategy: str | None = None) -> str:
    """The first case (by submitter id) that has a file of ``access`` / ``strategy``."""
    for case in sorted(catalogue.cases):
        files = catalogue.files_of(case)
        if access and not any(f.access == access for f in files):
            continue
        if strategy and not any(f.experimental_strategy == strategy for f in files):
            continue
        if files:
            return case
    raise AssertionError("no such case")


# -- browsing --------------------------------------------------------------------------------------------
def test_browse_each_level_with_counts_labels_and_paging(gdc: GdcSource, catalogue: GdcCatalogue) -> None:
    files = latest(catalogue)
    (program,) = gdc.browse().items
    assert (program.key, program.level, program.leaves) == ("TCGA", "program", len(files))
    assert program.size == sum(f.file_size for f in files)
    (project,) = gdc.browse(("TCGA",)).items
    assert (project.key, project.label) == ("TCGA-LUAD", "Lung Adenocarcinoma")
    assert dict(project.details)["primary_site"] == "Bronchus and lung"
    assert dict(project.details)["cases"] == str(len(catalogue.cases))

    cases = sorted(catalogue.cases)
    page = gdc.browse(LUAD, offset=100, limit=50)
    assert page.total == len(cases) and page.more
    assert [c.key for c in page.items] == cases[100:150]
    first = page.items[0]
    case = catalogue.cases[first.key]
    details = dict(first.details)
    assert details["case_id"] == case.case_id
    assert (details["primary_site"], details["disease_type"]) == (case.primary_site, case.disease_type)
    own = catalogue.files_of(first.key)
    assert (first.leaves, first.size) == (len(own), sum(f.file_size for f in own))

    listed = gdc.browse((*LUAD, first.key))
    assert [i.key for i in listed.items] == sorted(f.file_name for f in own)
    by_name = {f.file_name: f for f in own}
    for item in listed.items:
        f = by_name[item.key]
        assert (item.level, item.size, item.leaves) == ("file", f.file_size, 1)
        assert f.data_type in item.label and f.access in item.label
        assert dict(item.details)["file_id"] == f.file_id
    with pytest.raises(ValidationError, match="leaf"):
        gdc.browse((*LUAD, first.key, listed.items[0].key))


def test_browse_with_filters_counts_by_facets(gdc: GdcSource, catalogue: GdcCatalogue) -> None:
    rna = [f for f in latest(catalogue) if f.experimental_strategy == "RNA-Seq"]
    only_rna = (("experimental_strategy", ("RNA-Seq",)),)
    (program,) = gdc.browse(filters=only_rna).items
    assert program.leaves == len(rna)
    (project,) = gdc.browse(("TCGA",), filters=only_rna).items
    assert project.leaves == len(rna)

    per_case = Counter(c for f in rna for c in f.case_ids)
    page = gdc.browse(LUAD, filters=only_rna, limit=1000)
    assert page.total == len(per_case)
    assert {i.key: i.leaves for i in page.items} == dict(per_case)
    assert all(dict(i.details)["case_id"] for i in page.items)

    case = a_case(catalogue, access="controlled")
    bams = gdc.browse((*LUAD, case), filters=(("data_format", ("BAM",)), ("access", ("controlled",))))
    assert [i.key for i in bams.items] == sorted(
        f.file_name for f in catalogue.files_of(case) if f.data_format == "BAM"
    )
    assert gdc.filter_values("experimental_strategy", LUAD) == sorted(
        {f.experimental_strategy for f in latest(catalogue) if f.experimental_strategy}
    )
    with pytest.raises(ValidationError, match="cannot filter on 'colour'"):
        gdc.browse(LUAD, filters=(("colour", ("red",)),))
    with pytest.raises(ValidationError, match="cannot filter"):
        gdc.filter_values("Modality")


# -- resolution ------------------------------------------------------------------------------------------
def test_resolve_honours_filters_exclusions_and_depths(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator
) -> None:
    excluded = sorted(catalogue.cases)[3]
    clinical = next(f for f in catalogue.files_of(excluded) if f.data_type == "Clinical Supplement")
    selection = (
        Selection.of(gdc.pointer(*LUAD, experimental_strategy=["RNA-Seq", "WXS"]))
        .remove(gdc.pointer(*LUAD, excluded))
        .add(gdc.pointer(*LUAD, excluded, clinical.file_name))
        .remove(gdc.pointer(*LUAD, workflow_type="STAR 2-Pass Genome"))
    )
    before = emulator.requests["files"]
    manifest = gdc.resolve(selection)
    assert emulator.requests["files"] - before <= 2  # one listing of the project, in big pages
    expected = Manifest.build(
        [
            expected_leaf(catalogue, f, case)
            for f in latest(catalogue)
            for case in f.case_ids
            if f.experimental_strategy in ("RNA-Seq", "WXS")
            and case != excluded
            and f.workflow_type != "STAR 2-Pass Genome"
        ]
        + [expected_leaf(catalogue, clinical, excluded)]
    )
    assert manifest == expected

    everything = gdc.resolve(Selection.of(gdc.pointer()))
    assert everything == Manifest.build(
        expected_leaf(catalogue, f, c) for f in latest(catalogue) for c in f.case_ids
    )
    cases = sorted(catalogue.cases)[:3]
    some = gdc.resolve(Selection.of(*(gdc.pointer(*LUAD, c, access="open") for c in cases)))
    assert some == Manifest.build(
        expected_leaf(catalogue, f, c) for c in cases for f in catalogue.files_of(c) if f.access == "open"
    )
    assert len(gdc.resolve(Selection())) == 0
    with pytest.raises(ValidationError, match="cannot filter"):
        gdc.resolve(Selection.of(gdc.pointer("TCGA", Modality="CT")))


def test_ten_thousand_files_resolve_in_three_requests_and_three_cpu_seconds() -> None:
    catalogue = synthetic_catalogue(10_000)
    with GdcEmulator(catalogue) as emulator:
        source = GdcSource("gdc", emulator.url)
        # CPU time of this process (the client and the emulator's threads): what the resolution
        # costs, which a loaded machine does not stretch as it stretches the wall clock.
        started = time.process_time()
        manifest = source.resolve(Selection.of(source.pointer("TCGA")))
        seconds = time.process_time() - started
    assert len(manifest) == 10_000
    assert seconds <= 3.0, f"{seconds:.2f} s of CPU"
    assert emulator.requests["files"] <= 3  # a few large pages, not a request per case or file


def test_shared_names_are_disambiguated_and_shared_files_appear_under_each_case() -> None:
    catalogue = catalogue_from_idc(("tcga_luad",), max_cases=4)
    first, second = sorted(catalogue.cases)[:2]
    with GdcEmulator(catalogue) as emulator:
        source = GdcSource("gdc", emulator.url, backoff=0.01)
        clinical = next(f for f in catalogue.files_of(first) if f.data_type == "Clinical Supplement")
        twin = emulator.add_file(first, kind="clinical", file_name=clinical.file_name)
        shared = emulator.add_file(first, case_ids=(first, second), file_name="shared.maf.gz", kind="maf")
        manifest = source.resolve(Selection.of(source.pointer(*LUAD)))
        keys = {leaf.path[2:]: leaf.fingerprint.version for leaf in manifest}
        name = clinical.file_name
        assert keys[(first, disambiguated(name, clinical.file_id))] == clinical.file_id
        assert keys[(first, disambiguated(name, twin.file_id))] == twin.file_id
        assert (first, name) not in keys
        assert keys[(first, "shared.maf.gz")] == keys[(second, "shared.maf.gz")] == shared.file_id
        # The same keys from a resolution of the case alone and from browsing it.
        alone = source.resolve(Selection.of(source.pointer(*LUAD, first)))
        assert {leaf.path[2:] for leaf in alone} == {k for k in keys if k[0] == first}
        assert {i.key for i in source.browse((*LUAD, first)).items} == {k[1] for k in keys if k[0] == first}
        twin_leaf = next(leaf for leaf in manifest if leaf.fingerprint.version == twin.file_id)
        assert twin_leaf.path[-1].endswith(".xml") and twin.file_id[:8] in twin_leaf.path[-1]
        assert original_name(twin_leaf.path[-1], twin.file_id) == name
        assert source.plan(twin_leaf).files[0].name == twin_leaf.path[-1]
        # A GDC manifest of the set holds the shared file once, under its real name.
        text = manifest_file(manifest)
        rows = [line.split("\t") for line in text.splitlines()[1:]]
        assert sum(r[0] == shared.file_id for r in rows) == 1
        assert next(r for r in rows if r[0] == twin.file_id)[1] == name


# -- downloads -------------------------------------------------------------------------------------------
def leaves_of(gdc: GdcSource, case: str, **filters: str) -> list[Leaf]:
    return list(gdc.resolve(Selection.of(gdc.pointer(*LUAD, case, **filters))))


def test_download_verifies_md5_and_places_files_per_case(
    gdc: GdcSource, catalogue: GdcCatalogue, tmp_path: Path
) -> None:
    cases = sorted(catalogue.cases)[:2]
    leaves = [leaf for case in cases for leaf in leaves_of(gdc, case, access="open")][:6]
    report = download(gdc, leaves, tmp_path / "dest", layout="{patient}")
    assert report.ok, report
    assert files_under(tmp_path / "dest") == sorted(f"{leaf.path[2]}/{leaf.path[3]}" for leaf in leaves)
    for leaf in leaves:
        data = (tmp_path / "dest" / leaf.path[2] / leaf.path[3]).read_bytes()
        f = catalogue.files[leaf.fingerprint.version or ""]
        assert len(data) == f.file_size and hashlib.md5(data).hexdigest() == f.md5sum


def test_plan_gives_the_data_url_token_and_layout_fields(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator
) -> None:
    case = a_case(catalogue, strategy="RNA-Seq")
    leaf = next(leaf for leaf in leaves_of(gdc, case) if "augmented_star_gene_counts" in leaf.path[3])
    f = catalogue.files[leaf.fingerprint.version or ""]
    with_token = GdcSource("gdc", emulator.url, token=f" {TOKEN}\n")
    plan = with_token.plan(leaf)
    (remote,) = plan.files
    assert remote.url == f"{emulator.url}data/{f.file_id}"
    assert (remote.name, remote.size, remote.md5) == (f.file_name, f.file_size, f.md5sum)
    assert remote.headers == (("X-Auth-Token", TOKEN),)
    assert plan.count == 1
    assert dict(plan.fields) == {
        "patient": case,
        "case": case,
        "project": "TCGA-LUAD",
        "program": "TCGA",
        "collection": "TCGA-LUAD",
        "series": f.file_name,
        "study": "Transcriptome Profiling",
        "modality": "RNA-Seq",
        "data_category": "Transcriptome Profiling",
        "data_type": "Gene Expression Quantification",
        "experimental_strategy": "RNA-Seq",
        "data_format": "TSV",
    }
    assert gdc.plan(leaf).files[0].headers == ()


def test_a_part_file_resumes_with_a_range_request(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator, tmp_path: Path
) -> None:
    case = sorted(catalogue.cases)[5]
    leaf = max(leaves_of(gdc, case, access="open"), key=lambda leaf: leaf.fingerprint.size or 0)
    f = catalogue.files[leaf.fingerprint.version or ""]
    dest = tmp_path / "dest"
    stage = dest / STATE_DIR / "partial" / _stage_name(leaf.key, leaf.fingerprint.encode())
    stage.mkdir(parents=True)
    half = f.file_size // 2
    (stage / f"{leaf.path[3]}.part").write_bytes(content(f)[:half])
    before = emulator.data_bytes
    report = download(gdc, [leaf], dest, layout="{patient}")
    assert report.ok, report
    assert emulator.data_bytes - before == f.file_size - half  # only the rest was sent
    assert (dest / case / leaf.path[3]).read_bytes() == content(f)


def test_a_truncated_download_resumes_and_a_flipped_byte_is_refused(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator, tmp_path: Path
) -> None:
    case = sorted(catalogue.cases)[6]
    first, second = sorted(leaves_of(gdc, case, access="open"), key=lambda leaf: leaf.key)[:2]
    emulator.corrupt(first.fingerprint.version or "", "truncate")
    before = emulator.data_bytes
    report = download(gdc, [first], tmp_path / "a", layout="{patient}")
    assert report.ok, report
    assert emulator.data_bytes - before == first.fingerprint.size  # half, then the other half
    emulator.corrupt(second.fingerprint.version or "", "flip")
    with downloader(gdc, attempts=1) as engine:
        report = engine.download(Manifest.build([second]), tmp_path / "b", layout="{patient}")
    (failure,) = report.failed
    assert failure.key == second.key and "does not match its MD5" in failure.reason
    assert files_under(tmp_path / "b") == []
    emulator.corrupt(second.fingerprint.version or "", "flip")
    assert download(gdc, [second], tmp_path / "b", layout="{patient}").ok  # fetched again, whole


def test_controlled_files_need_a_token_and_fail_alone(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator, tmp_path: Path
) -> None:
    case = a_case(catalogue, access="controlled")
    leaves = leaves_of(gdc, case)
    controlled = [
        leaf for leaf in leaves if catalogue.files[leaf.fingerprint.version or ""].access == "controlled"
    ]
    before = emulator.requests["data"]
    report = download(gdc, leaves, tmp_path / "anonymous", layout="{patient}")
    assert {f.key for f in report.failed} == {leaf.key for leaf in controlled}
    assert len(report.fetched) == len(leaves) - len(controlled)
    assert all(
        f.reason.startswith(
            "controlled access: dbGaP phs000178 needed: store a GDC token with `mediator sources secret gdc`"
        )
        for f in report.failed
    )
    assert emulator.requests["data"] - before == len(report.fetched)  # none asked for without a token

    with_token = GdcSource("gdc", emulator.url, token=TOKEN)
    assert download(with_token, controlled, tmp_path / "anonymous", layout="{patient}").ok
    wrong = GdcSource("gdc", emulator.url, token="expired")
    report = download(wrong, controlled[:1], tmp_path / "wrong", layout="{patient}")
    (failure,) = report.failed
    assert "403" in failure.reason


# -- faults ----------------------------------------------------------------------------------------------
def test_5xx_and_429_are_retried_for_posted_searches(gdc: GdcSource, emulator: GdcEmulator) -> None:
    case = sorted(emulator.catalogue.cases)[0]
    selection = Selection.of(gdc.pointer(*LUAD, case))
    expected = gdc.resolve(selection)
    before = emulator.requests["files"]
    emulator.fail("files", 503, times=2)
    assert gdc.resolve(selection) == expected
    assert emulator.requests["files"] - before == 3
    old = next(f for f in emulator.catalogue.files.values() if f.state == "superseded")
    emulator.fail("files", 429, retry_after=0)
    emulator.fail("files/versions", 502)
    pointers, missing = gdc.locate("gdc_file_id", [old.file_id])
    assert pointers and not missing
    emulator.fail("files", 503, times=gdc.retries + 1)
    with pytest.raises(SourceError, match=r"answered 503 .* 5 times; try later"):
        gdc.resolve(selection)


def test_html_a_rejected_filter_and_an_unreachable_host_are_clear_errors(
    gdc: GdcSource, emulator: GdcEmulator
) -> None:
    emulator.fail(
        "projects", 200, body=b"<html><body>Down for maintenance</body></html>", content_type="text/html"
    )
    with pytest.raises(SourceError, match=r"not JSON \(text/html: '<html><body>Down for maintenance"):
        GdcSource("gdc", emulator.url).browse()
    rejected = json.dumps({"message": "Invalid filters: unrecognized field 'cases.colour' for files"})
    emulator.fail("files", 400, body=rejected.encode())
    with pytest.raises(
        SourceError, match=r"refused the query .*: Invalid filters: unrecognized field 'cases.colour'"
    ):
        gdc.resolve(Selection.of(gdc.pointer("TCGA")))
    with pytest.raises(SourceError, match=r"unrecognized field 'colour'"):  # the emulator's own refusal
        gdc._search(
            "files",
            {"op": "=", "content": {"field": "colour", "value": "red"}},
            ["file_id"],
            "a test",
            sort="file_id:asc",
        )
    with pytest.raises(ArchiveUnreachable, match=r"\(127\.0\.0\.1:9\) cannot be reached"):
        GdcSource("gdc", "http://127.0.0.1:9/", backoff=0.01).browse()


# -- manifests, locating ---------------------------------------------------------------------------------
def test_locate_finds_current_and_superseded_uuids(
    gdc: GdcSource, catalogue: GdcCatalogue, tmp_path: Path
) -> None:
    current = sorted(latest(catalogue), key=lambda f: f.file_id)[:3]
    old = next(f for f in catalogue.files.values() if f.state == "superseded")
    newest = catalogue.versions(old.file_id)[-1]
    unknown = "00000000-0000-4000-8000-000000000000"
    ids = [f.file_id for f in current] + [old.file_id.upper(), unknown]
    pointers, missing = gdc.locate("gdc_file_id", ids)
    assert missing == [unknown]
    assert set(pointers) == {
        Pointer("gdc", expected_leaf(catalogue, f, c).path) for f in [*current, newest] for c in f.case_ids
    }
    assert gdc.replaced == {old.file_id: newest.file_id}
    assert gdc.locate("series_uid", ids) == ([], ids)


def test_manifest_file_round_trips_through_the_import_reader(
    gdc: GdcSource, catalogue: GdcCatalogue, tmp_path: Path
) -> None:
    case = sorted(catalogue.cases)[1]
    leaves = leaves_of(gdc, case)
    assert gdc.manifest_format == "gdc"
    text = gdc.manifest_file(iter(leaves))
    lines = text.splitlines()
    assert lines[0] == "id\tfilename\tmd5\tsize\tstate"
    for line, leaf in zip(lines[1:], leaves, strict=True):
        f = catalogue.files[leaf.fingerprint.version or ""]
        assert line == f"{f.file_id}\t{f.file_name}\t{f.md5sum}\t{f.file_size}\treleased"
    path = tmp_path / "gdc_manifest.txt"
    path.write_text(text)
    imported = read_manifest_file(path)
    assert (imported.kind, imported.identifier_kind) == ("gdc", "gdc_file_id")
    assert imported.identifiers == tuple(leaf.fingerprint.version for leaf in leaves)
    pointers, missing = gdc.locate(imported.identifier_kind, list(imported.identifiers))
    assert missing == [] and gdc.resolve(Selection.of(*pointers)) == Manifest.build(leaves)


# -- joins and kinds of data -----------------------------------------------------------------------------
def test_join_patients_finds_cases_in_one_request_and_leaves_out_the_others(
    gdc: GdcSource, catalogue: GdcCatalogue, emulator: GdcEmulator
) -> None:
    present = sorted(catalogue.cases)[::3]
    patients = [*present, *catalogue.absent, "NOT-A-CASE"]
    assert catalogue.absent
    before = emulator.requests["cases"]
    found = gdc.join_patients(gdc.pointer(), patients)
    assert emulator.requests["cases"] - before == 1
    assert found == {c: [(*LUAD, c)] for c in present}
    assert gdc.join_patients(gdc.pointer("TCGA"), present) == found
    assert gdc.join_patients(gdc.pointer("CPTAC"), present) == {}
    slides = gdc.join_patients(gdc.pointer(*LUAD, experimental_strategy="Diagnostic Slide"), present)
    assert set(slides) == {
        c
        for c in present
        if any(f.experimental_strategy == "Diagnostic Slide" for f in catalogue.files_of(c))
    }
    assert gdc.patient_level == "case"
    with pytest.raises(ValidationError, match="above its cases"):
        gdc.join_patients(gdc.pointer(*LUAD, present[0]), present)


def test_data_kinds_group_files_by_strategy_or_type(gdc: GdcSource, catalogue: GdcCatalogue) -> None:
    patients = sorted(catalogue.cases)[:40]
    kinds = {k.label: k for k in gdc.data_kinds(gdc.pointer(*LUAD), [*patients, *catalogue.absent])}
    expected: dict[str, tuple[set[str], int, int]] = {}
    for case in patients:
        for f in catalogue.files_of(case):
            label = f.experimental_strategy or f.data_type
            who, count, size = expected.get(label, (set(), 0, 0))
            expected[label] = (who | {case}, count + 1, size + f.file_size)
    assert {k: (set(v.patients), v.leaves, v.size) for k, v in kinds.items()} == expected
    assert kinds["RNA-Seq"].category == "genomics" and kinds["RNA-Seq"].filter == (
        "experimental_strategy",
        "RNA-Seq",
    )
    assert kinds["Diagnostic Slide"].category == "pathology"
    assert kinds["Clinical Supplement"].category == "clinical"
    assert kinds["Clinical Supplement"].filter == ("data_type", "Clinical Supplement")
    assert kinds["Biospecimen Supplement"].category == "other"
    assert kinds["Methylation Array"].category == "genomics"
    # A kind's filter selects exactly its files.
    kind = kinds["Clinical Supplement"]
    assert kind.filter is not None
    selected = gdc.resolve(Selection.of(Pointer.of("gdc", *LUAD, **{kind.filter[0]: kind.filter[1]})))
    assert {leaf.path[2] for leaf in selected} >= kind.patients
    controlled = gdc.data_kinds(gdc.pointer(*LUAD, access="controlled"), patients)
    assert {k.label for k in controlled} == {"RNA-Seq", "WXS"}


# -- the kind of source ----------------------------------------------------------------------------------
def test_create_reads_the_options_and_the_kind_describes_them(tmp_path: Path) -> None:
    source = create(
        "lab-gdc",
        {"base_url": "http://127.0.0.1:1", "projects": "TCGA-LUAD, TCGA-LUSC", "connections": "3"},
        " tok ",
        tmp_path,
    )
    assert (source.base_url, source.projects, source.connections, source.token) == (
        "http://127.0.0.1:1/",
        ("TCGA-LUAD", "TCGA-LUSC"),
        3,
        "tok",
    )
    plain = create("gdc", {}, None, tmp_path)
    assert (plain.base_url, plain.projects, plain.connections, plain.token) == (
        gdc_module.DEFAULT_URL,
        None,
        8,
        None,
    )
    KIND.check({"base_url": "https://api.gdc.cancer.gov/", "projects": "", "connections": 8})
    with pytest.raises(ValidationError, match="no option 'bucket'"):
        KIND.check({"bucket": "x"})
    with pytest.raises(ValidationError, match="connections"):
        create("gdc", {"connections": "many"}, None, tmp_path)
    assert KIND.secret == "token" and "Download Token" in KIND.secret_help


def test_the_projects_option_restricts_what_is_shown() -> None:
    catalogue = catalogue_from_idc(("tcga_luad", "tcga_lusc"), max_cases=3)
    with GdcEmulator(catalogue) as emulator:
        source = GdcSource("gdc", emulator.url, projects=["TCGA-LUSC"])
        assert [p.key for p in source.browse(("TCGA",)).items] == ["TCGA-LUSC"]
        everything = source.resolve(Selection.of(source.pointer()))
        assert {leaf.path[1] for leaf in everything} == {"TCGA-LUSC"}
        # An explicit pointer to another project is still honoured.
        other = source.resolve(Selection.of(source.pointer("TCGA", "TCGA-LUAD")))
        assert {leaf.path[1] for leaf in other} == {"TCGA-LUAD"}
        assert source.check() == "GDC data release 42.0"
