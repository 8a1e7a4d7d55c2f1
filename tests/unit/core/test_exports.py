"""Exports of a set version (``core.exports`` through ``Sets.export_file``), each read back or
validated by the format's own tool: RO-Crate by ``rocrate`` and roc-validator, BDBag by ``bdbag``,
s5cmd lines as idc-index parses them, ``.tcia`` by our importer; and imports of our crates and bags,
refused when edited by hand. A real one-node store, a local DICOM archive and IDC's real index."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb
import idc_index_data
import pytest

from mediator_desktop.core import exports
from mediator_desktop.core.errors import IntegrityError, ValidationError
from mediator_desktop.core.imports import read_manifest_file
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.publishing import Creator, DoiMetadata
from mediator_desktop.core.service import Service
from mediator_desktop.sources.idc import IdcSource
from tests.helpers import rocrate_offline
from tests.helpers.service import SOURCE, World

pytestmark = pytest.mark.timeout(120)

LUAD_CT = Pointer.of("idc", "tcga_luad", Modality="CT")


@pytest.fixture(scope="module")
def idc() -> IdcSource:
    source = IdcSource()
    source.load()
    return source


@pytest.fixture
def service(tmp_path: Path, idc: IdcSource) -> Iterator[Service]:
    with ExitStack() as stack:
        yield World(tmp_path, stack).service("ann", downloads=False, archives={"idc": idc})


@pytest.fixture
def set_id(service: Service) -> str:
    return service.sets.create("LUAD CT", "CT of TCGA-LUAD", add=[LUAD_CT, Pointer.of(SOURCE, "P1")])


def _luad_ct_series() -> list[tuple[str, str, str]]:
    index = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    rows = duckdb.sql(
        f"SELECT SeriesInstanceUID, aws_bucket, crdc_series_uuid FROM '{index}' "
        "WHERE collection_id = 'tcga_luad' AND Modality = 'CT'"
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


METADATA = DoiMetadata(
    title="CT of TCGA-LUAD, as used in our paper",
    creators=(Creator("Doe, Ann", orcid="0000-0002-1825-0097", affiliation="Lab"),),
    publisher="Lab",
    year=2024,
    license="CC-BY-4.0",
    subjects=("lung", "CT"),
)


# -- RO-Crate ---------------------------------------------------------------------------------------------
def test_rocrate_is_read_by_rocrate_and_valid_by_roc_validator(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    from rocrate.rocrate import ROCrate

    crate_dir = service.sets.export_file(set_id, None, "rocrate", tmp_path / "luad.crate", METADATA)
    assert sorted(p.name for p in crate_dir.iterdir()) == [exports.CRATE_FILE, exports.PREVIEW_FILE]

    crate = ROCrate(crate_dir)
    series = _luad_ct_series()
    ids = {e.id for e in crate.get_entities()}
    for _, bucket, uuid in series:
        assert f"s3://{bucket}/{uuid}/" in ids
    assert any(i.startswith("mediator:lab/P1/") for i in ids)
    assert crate.root_dataset["name"] == METADATA.title
    assert crate.root_dataset["license"].id == "https://spdx.org/licenses/CC-BY-4.0"
    assert crate.get("https://orcid.org/0000-0002-1825-0097")["name"] == "Doe, Ann"
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    assert crate.get("#manifest")["value"] == manifest.id
    assert len(crate.root_dataset["hasPart"]) == len(manifest)

    assert rocrate_offline.validate(crate_dir) == []
    preview = (crate_dir / exports.PREVIEW_FILE).read_text()
    assert METADATA.title in preview and "idc/tcga_luad?Modality=CT" in preview

    # the validator can say no: a crate whose root has no datePublished is refused
    document = json.loads((crate_dir / exports.CRATE_FILE).read_text())
    root = next(e for e in document["@graph"] if e["@id"] == "./")
    del root["datePublished"]
    (crate_dir / exports.CRATE_FILE).write_text(json.dumps(document))
    assert any("datePublished" in problem for problem in rocrate_offline.validate(crate_dir))


def test_rocrate_import_makes_the_same_set(service: Service, set_id: str, tmp_path: Path) -> None:
    crate_dir = service.sets.export_file(set_id, None, "rocrate", tmp_path / "luad.crate")
    before = service.sets.version(set_id)
    for given in (crate_dir, crate_dir / exports.CRATE_FILE):
        result = service.sets.import_file(given)
        again = service.sets.version(result.set_id)
        assert again.selection == before.selection
        assert again.manifest_id == before.manifest_id
    assert service.sets.get(result.set_id).name.startswith("LUAD CT")


def test_hand_edited_crate_is_refused_naming_the_mismatch(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    crate_dir = service.sets.export_file(set_id, None, "rocrate", tmp_path / "luad.crate")
    path = crate_dir / exports.CRATE_FILE
    text = path.read_text()
    edited = text.replace('"value": "idc/tcga_luad?Modality=CT"', '"value": "idc/tcga_luad?Modality=MR"')
    assert edited != text
    path.write_text(edited)
    with pytest.raises(IntegrityError, match=r"rules disagree with its selection \(include idc/tcga_luad"):
        read_manifest_file(crate_dir)
    selection_edited = text.replace(r"\"Modality\":[\"CT\"]", r"\"Modality\":[\"MR\"]")
    assert selection_edited != text
    path.write_text(selection_edited)
    with pytest.raises(IntegrityError, match=r"changed by hand: the selection hashes to .*#selection-sha256"):
        service.sets.import_file(crate_dir)
    assert [rs.name for rs in service.sets.list("mine")] == ["LUAD CT"]


# -- BDBag ---------------------------------------------------------------------------------------------------
def test_bdbag_is_valid_by_bdbag(service: Service, set_id: str, tmp_path: Path) -> None:
    from bdbag import bdbag_api

    bag = service.sets.export_file(set_id, None, "bdbag", tmp_path / "luad.bag")
    bdbag_api.validate_bag_structure(str(bag), skip_remote=True)
    # No leaf here has an MD5 (series are folders): fetch.txt is empty, the leaves are listed in
    # the tag file of unverified pointers, and a full validation checks every tag file offline.
    bdbag_api.validate_bag(str(bag), fast=False)
    assert (bag / "fetch.txt").read_text() == ""
    fetch = [line.split("\t") for line in (bag / exports.BAG_REMOTE_FILE).read_text().splitlines()]
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    assert len(fetch) == len(manifest)
    by_url = {url: (size, path) for url, size, path in fetch}
    for uid, bucket, uuid in _luad_ct_series():
        size, path = by_url[f"s3://{bucket}/{uuid}/"]
        assert path.startswith("data/idc/tcga_luad/") and path.endswith(uid) and int(size) > 0
    document = json.loads((bag / exports.BAG_SET_FILE).read_text())
    assert document["format"] == "mediator-set"


def test_bag_with_md5_leaves_lists_them_and_validates_all_but_the_unfetched_payload(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    from bdbag import bdbag_api, bdbagit

    export = service.sets.export_of(set_id)
    leaves = list(export.manifest)
    md5 = "0123456789abcdef0123456789abcdef"

    def located() -> Iterator[exports.Located]:
        for i, leaf in enumerate(leaves[:3]):
            fingerprint = type(leaf.fingerprint)(size=10 + i, checksum=f"md5:{md5}")
            yield type(leaf)(leaf.source_id, leaf.path, fingerprint), f"https://example.org/f{i}"

    bag = exports.write(
        exports.SetExport(**{**_fields(export), "located": located}), "bdbag", tmp_path / "b.bag"
    )
    assert len((bag / "manifest-md5.txt").read_text().splitlines()) == 3
    assert len((bag / "fetch.txt").read_text().splitlines()) == 3
    bdbag_api.validate_bag_structure(str(bag), skip_remote=True)
    with pytest.raises(bdbagit.BagValidationError) as caught:
        bdbag_api.validate_bag(str(bag), fast=False)
    paths = {getattr(e, "path", "") for e in caught.value.details}
    assert paths and all(p.startswith("data/") for p in paths)  # only the payload, not yet fetched


def _fields(export: exports.SetExport) -> dict[str, Any]:
    return {name: getattr(export, name) for name in exports.SetExport.__slots__}


def test_bdbag_import_makes_the_same_set_and_an_edited_bag_is_refused(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    bag = service.sets.export_file(set_id, None, "bdbag", tmp_path / "luad.bag")
    before = service.sets.version(set_id)
    result = service.sets.import_file(bag / "bag-info.txt")
    assert service.sets.version(result.set_id).selection == before.selection
    assert read_manifest_file(bag).kind == "bdbag"

    fetch = bag / exports.BAG_REMOTE_FILE
    lines = fetch.read_text().splitlines()
    fetch.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(
        IntegrityError, match=r"changed by hand: metadata/fetch-unverified\.txt has sha256 \w+, tagmanifest"
    ):
        service.sets.import_file(bag)


# -- flat files ------------------------------------------------------------------------------------------
def test_s5cmd_lines_parse_as_idc_index_reads_them(service: Service, set_id: str, tmp_path: Path) -> None:
    path = service.sets.export_file(set_id, None, "s5cmd", tmp_path)
    assert path.name == "LUAD_CT_v1.s5cmd"
    index = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    # idc-index's own manifest reading (IDCClient._validate_update_manifest_and_get_download_size):
    # comment lines skipped, the URL and the series uuid extracted by these expressions.
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    rows = duckdb.sql(
        f"""
        WITH manifest AS (SELECT unnest(?::VARCHAR[]) AS manifest_cp_cmd),
        parsed AS (SELECT
            REGEXP_EXTRACT(manifest_cp_cmd, '(?:.*?\\/){{3}}([^\\/?#]+)', 1) AS uuid,
            REGEXP_EXTRACT(manifest_cp_cmd, 's3://\\S+') AS s3_url FROM manifest)
        SELECT parsed.uuid, s3_url = CONCAT('s3://', aws_bucket, '/', crdc_series_uuid, '/*')
        FROM parsed LEFT JOIN '{index}' i ON i.crdc_series_uuid = parsed.uuid
        """.replace("{{3}}", "{3}"),
        params=[lines],
    ).fetchall()
    assert len(rows) == len(_luad_ct_series()) == len(lines)
    assert all(match for _, match in rows)
    assert {uuid for uuid, _ in rows} == {uuid for _, _, uuid in _luad_ct_series()}
    assert read_manifest_file(path).identifiers  # and our own importer reads it


def test_tcia_manifest_is_read_back(service: Service, set_id: str, tmp_path: Path) -> None:
    path = service.sets.export_file(set_id, None, "tcia", tmp_path / "luad.tcia")
    imported = read_manifest_file(path)
    assert imported.kind == "tcia"
    assert set(imported.identifiers) == {uid for uid, _, _ in _luad_ct_series()}


def test_csv_has_a_row_per_leaf(service: Service, set_id: str, tmp_path: Path) -> None:
    import csv

    path = service.sets.export_file(set_id, None, "csv", tmp_path / "luad.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    assert len(rows) == len(manifest)
    lab = [r for r in rows if r["source"] == SOURCE]
    assert lab and lab[0]["url"].startswith("mediator:lab/P1/") and lab[0]["checksum"]
    idc_row = next(r for r in rows if r["source"] == "idc")
    assert idc_row["url"] == f"s3://idc-open-data/{idc_row['version']}/" and int(idc_row["size"]) > 0


def test_mediator_export_imports_again(service: Service, set_id: str, tmp_path: Path) -> None:
    path = service.sets.export_file(set_id, None, "mediator", tmp_path / "luad.json")
    assert read_manifest_file(path).selection == service.sets.version(set_id).selection


# -- refusals and atomic writes ----------------------------------------------------------------------
def test_formats_without_their_data_are_refused_and_leave_nothing(service: Service, tmp_path: Path) -> None:
    lab_only = service.sets.create("lab only", add=[Pointer.of(SOURCE, "P1")])
    tmp_path = tmp_path / "out"
    for fmt, what in (
        ("s5cmd", "no IDC series"),
        ("tcia", "no TCIA or IDC series"),
        ("gdc", "nothing a gdc"),
    ):
        with pytest.raises(ValidationError, match=what):
            service.sets.export_file(lab_only, None, fmt, tmp_path / f"x.{fmt}")
    with pytest.raises(ValidationError, match=r"unknown export format 'zip'"):
        service.sets.export_file(lab_only, None, "zip", tmp_path / "x.zip")
    assert list(tmp_path.glob("x.*")) == [] and list(tmp_path.glob(".x.*")) == []


def test_an_export_into_a_folder_of_the_users_never_touches_its_files(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine\n")
    (home / "data").mkdir()
    for fmt in ("rocrate", "bdbag", "csv"):
        written = service.sets.export_file(set_id, None, fmt, home)
        assert written.parent == home and written.name.startswith("LUAD_CT_v1")
    assert (home / "notes.txt").read_text() == "mine\n" and (home / "data").is_dir()
    assert sorted(p.name for p in home.iterdir()) == [
        "LUAD_CT_v1.bag", "LUAD_CT_v1.crate", "LUAD_CT_v1.csv", "data", "notes.txt"
    ]  # fmt: skip
    # a crate written again over its own folder replaces it; a user's folder is never the target
    again = service.sets.export_file(set_id, None, "rocrate", home / "LUAD_CT_v1.crate")
    assert again == home / "LUAD_CT_v1.crate"
    with pytest.raises(ValidationError, match=r"is not an RO-Crate or bag; nothing was written"):
        exports.write(service.sets.export_of(set_id), "rocrate", home)
    assert (home / "notes.txt").read_text() == "mine\n"


def test_a_failed_export_leaves_no_partial_file_and_keeps_the_old_one(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    export = service.sets.export_of(set_id)

    def failing() -> Iterator[exports.Located]:
        for i, pair in enumerate(export.located()):
            if i == 100:
                raise OSError("disk full")
            yield pair

    broken = exports.SetExport(**{**_fields(export), "located": failing})
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    (tmp_path / "old.csv").write_text("old\n")
    exports.write(export, "rocrate", tmp_path / "old.crate")  # an earlier export
    (tmp_path / "old.crate" / "keep").write_text("old")
    for fmt, name in (
        ("csv", "old.csv"),
        ("rocrate", "old.crate"),
        ("bdbag", "new.bag"),
        ("tcia", "new.tcia"),
    ):
        with pytest.raises(OSError, match="disk full"):
            exports.write(broken, fmt, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.crate", "old.csv"]
    assert (tmp_path / "old.csv").read_text() == "old\n"
    assert (tmp_path / "old.crate" / "keep").read_text() == "old"
    exports.write(export, "rocrate", tmp_path / "old.crate")  # replaced only when complete
    assert not (tmp_path / "old.crate" / "keep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.crate", "old.csv"]


def test_leaves_of_reads_what_under_reads() -> None:
    from mediator_desktop.core.manifest import ManifestBuilder

    builder = ManifestBuilder()
    builder.add("a%x", ("k\x01", "p%"), size=3, checksum="md5:%ab", released="2020\t1")
    builder.add("a", ("z",), count=2, version="v")
    builder.add("b", ("z", "y"), size=0)
    manifest = builder.build()
    for source_id in manifest.sources:
        assert list(exports.leaves_of(manifest, source_id)) == list(manifest.under(source_id))


# -- a bag of files (files=True): each leaf's plan, offline here -----------------------------------------
def test_bag_files_accepts_only_plans_a_bag_fetches_and_verifies() -> None:
    from mediator_desktop.core.source import LeafPlan, RemoteFile

    md5 = "0123456789abcdef0123456789abcdef"
    good = RemoteFile("https://s3.example/b/k1", "k1", 3, md5)
    assert exports.bag_files(LeafPlan((good, RemoteFile("http://h/k2", "k2", None, md5)))) == (
        good,
        RemoteFile("http://h/k2", "k2", None, md5),
    )
    for plan in (
        None,
        LeafPlan(()),
        LeafPlan((good,), finish=lambda staged, folder: None),  # what arrives is not the leaf's files
        LeafPlan((good, RemoteFile("https://h/k3", "k3", 3, None))),  # no MD5
        LeafPlan((RemoteFile("file:///data/k1", "k1", 3, md5),)),
        LeafPlan((RemoteFile("https://h/k1", "k1", 3, md5, headers=(("X-Auth-Token", "t"),)),)),
        LeafPlan((good, RemoteFile("https://h/other", "k1", 3, md5))),  # two files, one name
    ):
        assert exports.bag_files(plan) is None, plan


def test_bag_with_plans_lists_each_file_and_keeps_the_rest_pointers(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    from bdbag import bdbag_api

    from mediator_desktop.core.manifest import Leaf
    from mediator_desktop.core.source import LeafPlan, RemoteFile

    export = service.sets.export_of(set_id)
    asked: list[Leaf] = []

    def plan(leaf: Leaf) -> LeafPlan | None:
        asked.append(leaf)
        if leaf.source_id != "idc":
            return None  # an archive not configured here
        uid = leaf.path[-1]
        files = tuple(
            RemoteFile(f"https://s3.example/{uid}/{n}", n, 10, hashlib.md5(n.encode()).hexdigest())
            for n in ("a b.dcm", "..", "c%d.dcm")
        )
        return LeafPlan(files)

    bag = exports.write(exports.SetExport(**{**_fields(export), "plan": plan}), "bdbag", tmp_path / "f.bag")
    manifest = service.sets.manifest(service.sets.version(set_id).manifest_id)
    assert sorted(asked, key=lambda leaf: (leaf.source_id, leaf.path)) == sorted(
        manifest, key=lambda leaf: (leaf.source_id, leaf.path)
    )
    series = len(_luad_ct_series())
    fetch = [line.split("\t") for line in (bag / "fetch.txt").read_text().splitlines()]
    assert len(fetch) == 3 * series
    url, size, path = fetch[0]
    assert url.startswith("https://s3.example/") and url.endswith("/a%20b.dcm") and size == "10"
    assert path.startswith("data/idc/tcga_luad/") and path.endswith("/a b.dcm")
    assert {p.rsplit("/", 1)[1] for _, _, p in fetch} == {"a b.dcm", "_", "c_d.dcm"}
    md5s = dict(reversed(line.split("  ", 1)) for line in (bag / "manifest-md5.txt").read_text().splitlines())
    assert md5s[path] == hashlib.md5(b"a b.dcm").hexdigest() and len(md5s) == 3 * series
    remote = (bag / exports.BAG_REMOTE_FILE).read_text().splitlines()
    assert remote and all(line.startswith("mediator:lab/P1/") for line in remote)
    assert f"MEDIator-Files-Listed: {3 * series}\n" in (bag / "bag-info.txt").read_text()
    bdbag_api.validate_bag_structure(str(bag), skip_remote=True)


def test_a_plan_that_fails_leaves_no_bag_and_files_is_only_for_bags(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    from mediator_desktop.core.errors import ArchiveUnreachable
    from mediator_desktop.core.manifest import Leaf

    export = service.sets.export_of(set_id)
    seen: list[int] = []

    def plan(leaf: Leaf) -> None:
        seen.append(1)
        if len(seen) == 20:
            raise ArchiveUnreachable("IDC: s3.example did not answer; try again later")

    out = tmp_path / "out"
    with pytest.raises(ArchiveUnreachable, match=r"did not answer"):
        exports.write(exports.SetExport(**{**_fields(export), "plan": plan}), "bdbag", out / "f.bag")
    assert list(out.iterdir()) == []
    for fmt in ("csv", "s5cmd", "rocrate"):
        with pytest.raises(ValidationError, match=r"only a bdbag export lists the files themselves"):
            service.sets.export_file(set_id, None, fmt, out / f"x.{fmt}", files=True)
    assert list(out.iterdir()) == []
    assert service.sets.export_of(set_id).plan is None  # the default asks no archive
    assert service.sets.export_of(set_id, files=True).plan is not None
