"""A radiogenomic cohort across three archives, end to end on a real node: "TCGA-LUAD cases with CT
in IDC, a slide in pathology (PathDB) and RNA-Seq gene expression in GDC".

The archives: IDC's real index (its TCGA-LUAD patients), the GDC emulator (the real TCGA-LUAD case
IDs from IDC's index, synthetic files) and the PathDB emulator (the subjects of IDC's slide
microscopy, generated slides). The number of cases the app finds must equal the intersection
computed here, apart from the code, from IDC's Parquet and the emulators' catalogues. Then the same
cohort from TCIA (the NBIA emulator serving TCGA-LUAD's CT as IDC lists it) is kept in a set as a
joined rule and downloaded into one folder per case; a new RNA-Seq file in GDC later is drift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import duckdb
import idc_index_data
import pytest
import tifffile

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.integrator import cohort
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.node import Node
from tests.helpers.gdc_emulator import GdcCatalogue, GdcEmulator
from tests.helpers.gdc_emulator import catalogue_from_idc as gdc_catalogue
from tests.helpers.pathdb_emulator import Catalogue, PathDbEmulator
from tests.helpers.pathdb_emulator import catalogue_from_idc as pathdb_catalogue
from tests.helpers.service import make_node
from tests.helpers.tcia_emulator import TciaEmulator
from tests.helpers.tcia_emulator import catalogue_from_idc as tcia_catalogue

pytestmark = pytest.mark.timeout(240)

RNA_SEQ = "RNA-Seq"


def _rna_seq_cases(catalogue: GdcCatalogue) -> set[str]:
    return {
        case
        for f in catalogue.latest()
        if f.experimental_strategy == RNA_SEQ and f.project_id == "TCGA-LUAD"
        for case in f.case_ids
    }


def _slide_subjects(catalogue: Catalogue) -> set[str]:
    return {s.subject for s in catalogue.slides if s.collection == "TCGA-LUAD"}


@pytest.fixture
def catalogues() -> tuple[GdcCatalogue, Catalogue]:
    return gdc_catalogue(("tcga_luad",)), pathdb_catalogue(("tcga_luad",))


@pytest.fixture
def node(tmp_path: Path, catalogues: tuple[GdcCatalogue, Catalogue]) -> Iterator[tuple[Node, GdcEmulator]]:
    gdc_cat, pathdb_cat = catalogues
    with ExitStack() as stack:
        gdc = stack.enter_context(GdcEmulator(gdc_cat))
        pathdb = stack.enter_context(PathDbEmulator(pathdb_cat))
        node = stack.enter_context(make_node(tmp_path, "ann", update_check_minutes=0))
        node.service.archives.add("idc", {}, source_id="idc")
        node.service.archives.add("gdc", {"base_url": gdc.url}, source_id="gdc")
        node.service.archives.add("pathology", {"base_url": pathdb.url}, source_id="pathology")
        yield node, gdc


def test_ct_in_idc_a_slide_and_rna_seq_are_the_cases_all_three_archives_hold(
    node: tuple[Node, GdcEmulator], catalogues: tuple[GdcCatalogue, Catalogue]
) -> None:
    service = node[0].service
    gdc_cat, pathdb_cat = catalogues

    matching = service.archives.match([Pointer.of("idc", "tcga_luad", Modality="CT")])
    found = matching.common({"gdc": [RNA_SEQ], "pathology": None})

    with_ct = {
        row[0]
        for row in duckdb.sql(
            f"select distinct PatientID from '{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}' "
            "where collection_id = 'tcga_luad' and Modality = 'CT'"
        ).fetchall()
    }
    expected = with_ct & _rna_seq_cases(gdc_cat) & _slide_subjects(pathdb_cat)
    assert found == sorted(expected) and 10 < len(found) < len(with_ct)
    assert set(matching.patients) == with_ct
    assert matching.searched == ["gdc", "pathology"]
    gdc = matching.archive("gdc")
    assert {k.label: k.category for k in gdc.kinds}[RNA_SEQ] == "genomics"
    assert set(gdc.found) == with_ct & set(gdc_cat.cases)  # the cases GDC lacks are reported missing
    assert [(k.label, k.category) for k in matching.archive("pathology").kinds] == [("slide", "pathology")]

    # In a set, the rule keeps the cohort: its leaves are exactly those cases' CT, RNA-Seq and slides.
    (rule,) = matching.cohort({"gdc": [RNA_SEQ], "pathology": None}, every=True)
    made = service.sets.create_from("TCGA-LUAD radiogenomics", add=[rule])
    manifest = service.sets.manifest(service.sets.version(made.set_id).manifest_id)
    cases = {source: {leaf.path[patient] for leaf in manifest.under(source)} for source, patient in
             (("idc", 1), ("gdc", 2), ("pathology", 1))}  # fmt: skip
    assert cases == {"idc": expected, "gdc": expected, "pathology": expected}
    assert made.warnings and made.warnings[0].startswith(
        f"{len(expected)} of {len(with_ct)} patients of idc/tcga_luad"
    )


def test_the_cohort_from_tcia_downloads_into_one_folder_per_case_and_follows_gdc(
    node: tuple[Node, GdcEmulator], catalogues: tuple[GdcCatalogue, Catalogue], tmp_path: Path
) -> None:
    service, gdc = node[0].service, node[1]
    gdc_cat, pathdb_cat = catalogues
    both = _rna_seq_cases(gdc_cat) & _slide_subjects(pathdb_cat)
    ct = [s for s in tcia_catalogue(("tcga_luad",), patients=10_000, max_images=2) if s.modality == "CT"]
    cases = sorted({s.patient for s in ct if s.patient in both})[:3]
    ct = [s for s in ct if s.patient in cases]
    assert len(cases) == 3
    tcia = TciaEmulator(ct)
    with tcia:
        service.archives.add("tcia", {"base_url": tcia.v4}, source_id="tcia")
        rule = cohort(
            Pointer.of("tcia", "TCGA-LUAD", Modality="CT"),
            [Pointer.of("gdc", "TCGA", "TCGA-LUAD", experimental_strategy=RNA_SEQ), Pointer.of("pathology")],
            every=True,
        )
        made = service.sets.create_from("TCGA-LUAD from TCIA", add=[rule])
        assert made.warnings == ()  # every CT case of this TCIA has RNA-Seq and a slide

        folder = tmp_path / "cohort"
        report = service.downloads.run(
            DownloadRequest(made.set_id, folder, layout="{patient}/{source}/{series}")
        )

        # RNA-Seq includes controlled-access BAMs: without a token each fails on its own, saying
        # what it needs, and everything else arrives.
        assert len(report.failed) == len(cases) and report.fetched, report.summary()
        assert all("controlled access: dbGaP phs000178 needed" in f.reason for f in report.failed)
        assert all(f.path[-1].endswith(".bam") for f in report.failed)
        service.archives.set_secret("gdc", "gdc-token")
        report = service.downloads.run(
            DownloadRequest(made.set_id, folder, layout="{patient}/{source}/{series}")
        )
        assert report.ok and len(report.fetched) == len(cases), report.summary()
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == cases
        for case in cases:
            assert {p.name for p in (folder / case).iterdir()} == {"tcia", "gdc", "pathology"}
            slides = list((folder / case / "pathology").rglob("*.svs"))
            assert slides and all(tifffile.TiffFile(s).is_svs for s in slides)
            genomics = [p for p in (folder / case / "gdc").rglob("*") if p.is_file()]
            assert {p.suffix for p in genomics} == {".tsv", ".bam"}
            for path in genomics:
                (f,) = [f for f in gdc_cat.latest() if f.file_name == path.name]
                assert hashlib.md5(path.read_bytes()).hexdigest() == f.md5sum
                assert f.experimental_strategy == RNA_SEQ and case in f.case_ids

        # GDC publishes a new RNA-Seq file for the first case: the followed set drifts.
        gdc.advance(3600)
        added = gdc.add_file(cases[0], experimental_strategy=RNA_SEQ)
        service.sets.follow(made.set_id)
        (outcome,) = service.tracking.check([made.set_id])
        assert outcome.new and not outcome.error, outcome.line()
        drift = service.tracking.drift(made.set_id)
        assert drift is not None and (drift.added, drift.revised, drift.removed) == (1, 0, 0), drift.summary
        before = service.sets.manifest(service.sets.version(made.set_id).manifest_id)
        (new,) = set(service.tracking.now(made.set_id)) - set(before)
        assert new.source_id == "gdc" and new.path[2] == cases[0] and new.fingerprint.version == added.file_id


def test_a_gdc_manifest_of_thousands_of_files_round_trips_through_export_and_import(
    node: tuple[Node, GdcEmulator], tmp_path: Path
) -> None:
    service = node[0].service
    made = service.sets.create_from("all of TCGA-LUAD", add=[Pointer.of("gdc", "TCGA", "TCGA-LUAD")])
    version = service.sets.version(made.set_id)
    files = [leaf for leaf in service.sets.manifest(version.manifest_id) if leaf.source_id == "gdc"]
    assert len(files) > 3000

    manifest = tmp_path / "gdc_manifest.2026-12-06.txt"
    manifest.write_text(service.sets.export_manifest(made.set_id, fmt="gdc"))
    imported = service.sets.import_file(manifest)

    # One pointer per file: too large for one replicated command, so it went in chunks.
    assert imported.pointers == len(files) and not imported.missing
    again = service.sets.manifest(service.sets.version(imported.set_id).manifest_id)
    assert list(again) == files
    assert manifest.read_text().splitlines()[0] == "id\tfilename\tmd5\tsize\tstate"
