"""The GDC emulator answers as GDC's API docs show, called the way their examples call it (plain
``requests``); its catalogue holds IDC's real patients (checked with duckdb against IDC's Parquet)."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import json
import math
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers.gdc_emulator import (
    BAD_TOKEN,
    NO_ACCESS,
    NO_TOKEN,
    GdcCatalogue,
    GdcEmulator,
    GdcFile,
    catalogue_from_idc,
    content,
    synthetic_catalogue,
)

COLLECTIONS = ("tcga_luad", "cptac_luad")


@pytest.fixture(scope="module")
def catalogue() -> GdcCatalogue:
    return catalogue_from_idc(COLLECTIONS)


@pytest.fixture(scope="module")
def emulator(catalogue: GdcCatalogue) -> Iterator[GdcEmulator]:
    with GdcEmulator(catalogue) as e:
        yield e


@pytest.fixture
def fresh() -> Iterator[GdcEmulator]:
    """An emulator of its own, for tests that change the archive."""
    with GdcEmulator(catalogue_from_idc(("tcga_luad",), max_cases=40)) as e:
        yield e


def search(url: str, endpoint: str = "files", method: str = "GET", **params: Any) -> dict[str, Any]:
    if method == "GET":
        if isinstance(params.get("filters"), dict):
            params["filters"] = json.dumps(params["filters"])
        response = requests.get(url + endpoint, params=params, timeout=10)
    else:
        response = requests.post(url + endpoint, json=params, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def start_at(n: int) -> dict[str, Any]:
    return {"from": n}


def one(emulator: GdcEmulator, **wanted: Any) -> GdcFile:
    return next(f for f in emulator.catalogue.latest() if all(getattr(f, k) == v for k, v in wanted.items()))


def test_catalogue_holds_idcs_patients_minus_a_few(catalogue: GdcCatalogue) -> None:
    import duckdb
    import idc_index_data

    rows = duckdb.sql(
        f"SELECT collection_id, PatientID FROM '{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}' "
        f"WHERE collection_id IN {COLLECTIONS} GROUP BY ALL"
    ).fetchall()
    idc = {patient: collection for collection, patient in rows}
    assert set(catalogue.cases) | set(catalogue.absent) == set(idc)
    assert not set(catalogue.cases) & set(catalogue.absent)
    assert 0.02 < len(catalogue.absent) / len(idc) < 0.09
    for case in catalogue.cases.values():
        assert case.project_id == ("TCGA-LUAD" if idc[case.submitter_id] == "tcga_luad" else "CPTAC-3")
    assert catalogue.projects["TCGA-LUAD"].program == "TCGA"
    assert catalogue.projects["CPTAC-3"].program == "CPTAC"
    strategies = {c: {f.experimental_strategy for f in catalogue.files_of(c)} for c in catalogue.cases}
    without_rna = [c for c, s in strategies.items() if "RNA-Seq" not in s]
    assert 0.05 < len(without_rna) / len(strategies) < 0.25
    few = catalogue_from_idc(("tcga_luad",), max_cases=5)  # the same cases and files: drawn per patient
    assert few.cases.keys() <= catalogue.cases.keys()
    assert {f.file_id: f.md5sum for f in few.files.values()} == {
        f.file_id: f.md5sum for c in few.cases for f in catalogue.files.values() if c in f.case_ids
    }
    with pytest.raises(ValueError, match=r"no GDC project"):
        catalogue_from_idc(("lidc_idri",))


def test_files_are_realistic(catalogue: GdcCatalogue) -> None:
    latest = catalogue.latest()
    counts = next(f for f in latest if f.data_type == "Gene Expression Quantification")
    assert counts.file_name.endswith(".rna_seq.augmented_star_gene_counts.tsv")
    assert (counts.workflow_type, counts.data_format, counts.access) == ("STAR - Counts", "TSV", "open")
    bam = next(f for f in latest if f.data_format == "BAM" and f.project_id == "TCGA-LUAD")
    assert (bam.access, bam.acl) == ("controlled", ("phs000178",))
    cptac_bam = next(f for f in latest if f.data_format == "BAM" and f.project_id == "CPTAC-3")
    assert cptac_bam.acl == ("phs001287",)
    clinical = next(f for f in latest if f.data_type == "Clinical Supplement")
    assert clinical.file_name == f"nationwidechildrens.org_clinical.{clinical.case_ids[0]}.xml"
    assert clinical.experimental_strategy is None
    slides = {f.experimental_strategy for f in latest if f.data_format == "SVS"}
    assert slides == {"Diagnostic Slide", "Tissue Slide"}

    def mean(fmt: str) -> float:
        sizes = [f.file_size for f in latest if f.data_format == fmt]
        return sum(sizes) / len(sizes)

    assert mean("BAM") > mean("SVS") > mean("TSV") > mean("BCR XML")
    assert max(f.file_size for f in latest) <= 200_000
    assert any(f.version == "2" for f in latest), "a few files were re-harmonized"


def test_status(emulator: GdcEmulator) -> None:
    status = requests.get(emulator.url + "status", timeout=5).json()
    assert status["status"] == "OK" and status["version"] == 1
    assert status["data_release"] == "Data Release 42.0 - January 30, 2025"
    assert requests.get(emulator.url + "v0/status", timeout=5).json() == status


def test_search_get_and_post_as_the_docs_do(emulator: GdcEmulator) -> None:
    cases = sorted(c for c in emulator.catalogue.cases if c.startswith("TCGA-"))[:4]
    filters = {
        "op": "and",
        "content": [
            {"op": "in", "content": {"field": "cases.submitter_id", "value": cases}},
            {"op": "=", "content": {"field": "files.data_type", "value": "Gene Expression Quantification"}},
        ],
    }
    fields = (
        "file_id,file_name,cases.submitter_id,cases.case_id,cases.project.project_id,analysis.workflow_type"
    )
    got = search(emulator.url, filters=filters, fields=fields, size="1000")
    post = search(emulator.url, method="POST", filters=filters, fields=fields, size="1000")
    form = requests.post(
        emulator.url + "files",
        data={"filters": json.dumps(filters), "fields": fields, "size": "1000"},
        timeout=10,
    ).json()
    assert got == post == form
    expected = {
        f.file_id
        for f in emulator.catalogue.latest()
        if f.case_ids[0] in cases and f.data_type == "Gene Expression Quantification"
    }
    hits = got["data"]["hits"]
    assert {h["id"] for h in hits} == expected and expected
    hit = hits[0]
    assert set(hit) == {"id", "file_id", "file_name", "cases", "analysis"}
    (case,) = hit["cases"]
    assert set(case) == {"submitter_id", "case_id", "project"} and case["project"] == {
        "project_id": "TCGA-LUAD"
    }
    assert hit["analysis"] == {"workflow_type": "STAR - Counts"}
    assert got["warnings"] == {}
    assert got["data"]["pagination"] == {
        "count": len(hits), "total": len(hits), "size": 1000, "from": 0, "sort": "", "page": 1, "pages": 1,
    }  # fmt: skip


def test_default_fields_and_single_entities(emulator: GdcEmulator) -> None:
    hit = search(emulator.url, size=1)["data"]["hits"][0]
    assert {"id", "file_id", "file_name", "md5sum", "file_size", "access", "acl", "data_release"} <= set(hit)
    assert "cases" not in hit
    single = requests.get(emulator.url + f"files/{hit['id']}", timeout=5).json()
    assert set(single) == {"data", "warnings"} and "hits" not in single["data"]
    assert single["data"]["file_id"] == hit["id"]
    expanded = requests.get(emulator.url + f"v0/files/{hit['id']}?expand=cases.project", timeout=5).json()
    assert expanded["data"]["cases"][0]["project"]["dbgap_accession_number"]
    case = next(iter(emulator.catalogue.cases.values()))
    got = requests.get(emulator.url + f"cases/{case.case_id}", timeout=5).json()["data"]
    assert got["submitter_id"] == case.submitter_id and got["id"] == case.case_id
    project = requests.get(emulator.url + "projects/TCGA-LUAD?expand=summary", timeout=5).json()["data"]
    assert project["name"] == "Lung Adenocarcinoma" and project["summary"]["case_count"] > 400
    for path in ("files/00000000-0000-4000-8000-000000000000", f"cases/{case.submitter_id}", "nothing"):
        response = requests.get(emulator.url + path, timeout=5)
        assert response.status_code == 404 and response.json()["message"]


def test_paging_to_total(emulator: GdcEmulator) -> None:
    filters = {"op": "=", "content": {"field": "cases.project.project_id", "value": "TCGA-LUAD"}}
    seen: list[str] = []
    start, total = 0, None
    while total is None or start < total:
        page = search(
            emulator.url, method="POST", filters=filters, fields="file_id", size=500, **start_at(start)
        )
        pagination = page["data"]["pagination"]
        total = pagination["total"]
        assert pagination["page"] == start // 500 + 1 and pagination["pages"] == math.ceil(total / 500)
        seen += [h["id"] for h in page["data"]["hits"]]
        start += 500
    luad = {f.file_id for f in emulator.catalogue.latest() if f.project_id == "TCGA-LUAD"}
    assert len(seen) == len(set(seen)) == total and set(seen) == luad
    past = search(emulator.url, filters=filters, size=10, **start_at(total + 5))["data"]
    assert past["hits"] == [] and past["pagination"]["count"] == 0


def test_sort(emulator: GdcEmulator) -> None:
    hits = search(emulator.url, fields="file_size", sort="file_size:desc", size=20)["data"]
    sizes = [h["file_size"] for h in hits["hits"]]
    assert sizes == sorted(sizes, reverse=True) and hits["pagination"]["sort"] == "None"
    names = search(emulator.url, "cases", fields="submitter_id", sort="submitter_id:asc", size=5)
    submitters = [h["submitter_id"] for h in names["data"]["hits"]]
    assert submitters == sorted(emulator.catalogue.cases)[:5]
    assert requests.get(emulator.url + "files?sort=colour:asc", timeout=5).status_code == 400


def test_facets(emulator: GdcEmulator) -> None:
    latest = emulator.catalogue.latest()
    answer = search(emulator.url, facets="data_category,experimental_strategy,nonsense,file_size", size=0)
    aggregations = answer["data"]["aggregations"]
    buckets = aggregations["data_category"]["buckets"]
    assert sum(b["doc_count"] for b in buckets) == len(latest) == answer["data"]["pagination"]["total"]
    assert [b["doc_count"] for b in buckets] == sorted((b["doc_count"] for b in buckets), reverse=True)
    missing = [b for b in aggregations["experimental_strategy"]["buckets"] if b["key"] == "_missing"]
    assert missing == [
        {"doc_count": sum(1 for f in latest if f.experimental_strategy is None), "key": "_missing"}
    ]
    assert aggregations["file_size"]["stats"]["count"] == len(latest)
    assert answer["warnings"] == {"facets": "unrecognized values: [nonsense]"}
    assert answer["data"]["hits"] == []
    # A facet disregards the filters on its own field (GDC's docs), not the others.
    filters = {
        "op": "and",
        "content": [
            {"op": "=", "content": {"field": "data_category", "value": "Clinical"}},
            {"op": "=", "content": {"field": "cases.project.project_id", "value": "TCGA-LUAD"}},
        ],
    }
    answer = search(emulator.url, method="POST", filters=filters, facets="data_category", size=0)
    keys = {b["key"] for b in answer["data"]["aggregations"]["data_category"]["buckets"]}
    assert "Sequencing Reads" in keys and answer["data"]["pagination"]["total"] < len(latest)
    projects = search(emulator.url, "projects", facets="program.name", size=0)
    assert {b["key"] for b in projects["data"]["aggregations"]["program.name"]["buckets"]} == {
        "TCGA",
        "CPTAC",
    }


def test_filter_operators(emulator: GdcEmulator) -> None:
    latest = emulator.catalogue.latest()

    def total(filters: dict[str, Any], endpoint: str = "files") -> int:
        return int(search(emulator.url, endpoint, filters=filters, size=0)["data"]["pagination"]["total"])

    def leaf(op: str, field: str, value: Any) -> dict[str, Any]:
        return {"op": op, "content": {"field": field, "value": value}}

    assert total(leaf("!=", "access", "open")) == sum(1 for f in latest if f.access != "open")
    assert total(leaf("in", "data_format", ["BAM", "svs"])) == sum(
        1 for f in latest if f.data_format in ("BAM", "SVS")
    )
    assert total(leaf("=", "file_name", "*.maf.gz")) == sum(
        1 for f in latest if f.file_name.endswith(".maf.gz")
    )
    assert total(leaf(">=", "file_size", 100_000)) == sum(1 for f in latest if f.file_size >= 100_000)
    assert total(leaf("is", "experimental_strategy", "missing")) == sum(
        1 for f in latest if f.experimental_strategy is None
    )
    assert total(leaf("not", "experimental_strategy", "missing")) == sum(
        1 for f in latest if f.experimental_strategy is not None
    )
    either = {"op": "or", "content": [leaf("=", "data_format", "MAF"), leaf("=", "data_format", "SVS")]}
    assert total(either) == sum(1 for f in latest if f.data_format in ("MAF", "SVS"))
    # exclude drops a case only when every one of its files matches; excludeifany when any does.
    cases = len(emulator.catalogue.cases)
    types = {c: {f.data_type for f in emulator.catalogue.files_of(c)} for c in emulator.catalogue.cases}
    clinical = ["Clinical Supplement"]
    assert total(leaf("exclude", "files.data_type", clinical), "cases") == cases - sum(
        1 for t in types.values() if t and t <= set(clinical)
    )
    assert total(leaf("excludeifany", "files.data_type", clinical), "cases") == sum(
        1 for t in types.values() if "Clinical Supplement" not in t
    )
    assert total(leaf("in", "cases.files.data_type", clinical), "cases") == sum(
        1 for t in types.values() if "Clinical Supplement" in t
    )


def test_bad_filters_are_400_unknown_fields_a_warning(emulator: GdcEmulator) -> None:
    for filters in (
        "{not json",
        json.dumps({"op": "like", "content": {"field": "file_name", "value": "x"}}),
        json.dumps({"op": "=", "content": {"field": "colour", "value": "blue"}}),
        json.dumps({"op": "and", "content": {"field": "file_name"}}),
        json.dumps({"op": ">", "content": {"field": "updated_datetime", "value": "yesterday"}}),
    ):
        response = requests.get(emulator.url + "files", params={"filters": filters}, timeout=5)
        assert response.status_code == 400, filters
        assert response.json()["message"].startswith("Invalid filters")
    response = requests.post(
        emulator.url + "files", data=b"{}", headers={"Content-Type": "text/xml"}, timeout=5
    )
    assert response.status_code == 400 and "Content-Type" in response.json()["message"]
    answer = search(emulator.url, fields="file_name,shoe_size", size=1)
    assert answer["warnings"] == {"fields": "unrecognized values: [shoe_size]"}
    assert set(answer["data"]["hits"][0]) == {"id", "file_name"}


def test_formats_and_manifests(emulator: GdcEmulator) -> None:
    filters = {"op": "=", "content": {"field": "data_format", "value": "MAF"}}
    mafs = [f for f in emulator.catalogue.latest() if f.data_format == "MAF"]
    response = requests.get(
        emulator.url + "files",
        params={
            "filters": json.dumps(filters),
            "fields": "file_name,cases.submitter_id",
            "format": "TSV",
            "size": "3",
        },
        timeout=5,
    )
    assert response.headers["Content-Type"] == "text/tab-separated-values"
    rows = list(csv.reader(io.StringIO(response.text), delimiter="\t"))
    assert rows[0] == ["cases.0.submitter_id", "file_name", "id"] and len(rows) == 4
    manifest = requests.get(
        emulator.url + "files",
        params={"filters": json.dumps(filters), "return_type": "manifest", "size": "3"},
        timeout=5,
    )
    assert manifest.headers["Content-Disposition"].startswith("attachment; filename=gdc_manifest")
    lines = manifest.text.splitlines()
    assert lines[0] == "id\tfilename\tmd5\tsize\tstate" and len(lines) == len(mafs) + 1  # size is ignored
    by_id = {f.file_id: f for f in mafs}
    for line in lines[1:]:
        file_id, name, md5, size, state = line.split("\t")
        f = by_id[file_id]
        assert (name, md5, int(size), state) == (f.file_name, f.md5sum, f.file_size, "released")
    two = requests.get(emulator.url + f"manifest/{mafs[1].file_id},{mafs[0].file_id}", timeout=5)
    assert two.text.splitlines() == [
        lines[0],
        *(f"{f.file_id}\t{f.file_name}\t{f.md5sum}\t{f.file_size}\treleased" for f in (mafs[1], mafs[0])),
    ]
    xml = requests.get(emulator.url + "projects", params={"format": "XML", "size": "1"}, timeout=5)
    assert xml.text.startswith('<?xml version="1.0" ?><response><data><hits><item>')
    pretty = requests.get(emulator.url + "projects?pretty=true&size=1", timeout=5).text
    assert pretty.startswith('{\n  "data": {')


def test_mapping(emulator: GdcEmulator) -> None:
    mapping = requests.get(emulator.url + "files/_mapping", timeout=5).json()
    assert {"cases.project.project_id", "file_name", "md5sum"} <= set(mapping["fields"])
    assert "cases" in mapping["expand"] and "cases" in mapping["nested"]
    assert mapping["_mapping"]["files.updated_datetime"]["type"] == "date"


def test_data_single_file_ranges_and_resume(emulator: GdcEmulator) -> None:
    f = one(emulator, data_type="Gene Expression Quantification")
    response = requests.get(emulator.url + f"data/{f.file_id}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f"attachment; filename={f.file_name}"
    assert int(response.headers["Content-Length"]) == f.file_size == len(response.content)
    assert hashlib.md5(response.content, usedforsecurity=False).hexdigest() == f.md5sum
    whole = response.content
    part = requests.get(emulator.url + f"data/{f.file_id}", headers={"Range": "bytes=100-199"}, timeout=5)
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{f.file_size}"
    # Resume: the first half, then the rest from where it stopped.
    half = f.file_size // 2
    first = requests.get(
        emulator.url + f"data/{f.file_id}", headers={"Range": f"bytes=0-{half - 1}"}, timeout=5
    )
    rest = requests.get(emulator.url + f"v0/data/{f.file_id}", headers={"Range": f"bytes={half}-"}, timeout=5)
    assert first.content + rest.content == whole
    assert (
        requests.get(emulator.url + f"data/{f.file_id}", headers={"Range": "bytes=-10"}, timeout=5).content
        == whole[-10:]
    )
    beyond = requests.get(
        emulator.url + f"data/{f.file_id}", headers={"Range": f"bytes={f.file_size}-"}, timeout=5
    )
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{f.file_size}"
    assert requests.head(emulator.url + f"data/{f.file_id}", timeout=5).headers["Content-Length"] == str(
        f.file_size
    )
    missing = requests.get(emulator.url + "data/00000000-0000-4000-8000-000000000000", timeout=5)
    assert missing.status_code == 404


def members(body: bytes, gz: bool) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz" if gz else "r:") as tar:
        for member in tar.getmembers():
            reader = tar.extractfile(member)
            assert reader is not None
            out[member.name] = reader.read()
    return out


def test_data_archives(emulator: GdcEmulator) -> None:
    a = one(emulator, data_format="MAF")
    b = one(emulator, data_type="Clinical Supplement")
    expected = {f"{a.file_id}/{a.file_name}": content(a), f"{b.file_id}/{b.file_name}": content(b)}
    response = requests.get(emulator.url + f"data/{a.file_id},{b.file_id}", timeout=10)
    assert response.headers["Content-Disposition"].endswith(".tar.gz")
    assert "Content-Length" not in response.headers  # streamed, as GDC does
    got = members(response.content, gz=True)
    manifest = got.pop("MANIFEST.txt").decode().splitlines()
    assert got == expected
    assert manifest[0] == "id\tfilename\tmd5\tsize\tstate" and len(manifest) == 3
    posted = requests.post(emulator.url + "data", json={"ids": [a.file_id, b.file_id]}, timeout=10)
    form = requests.post(emulator.url + "data", data={"ids": [a.file_id, b.file_id]}, timeout=10)
    plain = requests.post(emulator.url + "data?tarfile", json={"ids": [a.file_id, b.file_id]}, timeout=10)
    assert posted.headers["Content-Disposition"].endswith(".tar.gz")
    assert plain.headers["Content-Disposition"].endswith(".tar")
    for body, gz in ((posted.content, True), (form.content, True), (plain.content, False)):
        got = members(body, gz)
        got.pop("MANIFEST.txt")
        assert got == expected


def test_controlled_files_want_a_token_with_their_acl(emulator: GdcEmulator) -> None:
    bam = one(emulator, data_format="BAM", project_id="TCGA-LUAD")
    cptac = one(emulator, data_format="BAM", project_id="CPTAC-3")
    url = emulator.url + f"data/{bam.file_id}"
    refusals: list[tuple[dict[str, str], str]] = [({}, NO_TOKEN), ({"X-Auth-Token": "stolen"}, BAD_TOKEN)]
    for headers, message in refusals:
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 403 and response.json() == {"message": message}
    token = {"X-Auth-Token": "gdc-token"}
    refused = requests.get(emulator.url + f"data/{cptac.file_id}", headers=token, timeout=5)
    assert refused.status_code == 403 and refused.json() == {"message": NO_ACCESS}  # phs001287 not granted
    allowed = requests.get(url, headers=token, timeout=5)
    assert (
        allowed.status_code == 200
        and hashlib.md5(allowed.content, usedforsecurity=False).hexdigest() == bam.md5sum
    )
    open_file = one(emulator, access="open")
    assert requests.get(
        emulator.url + f"data/{open_file.file_id}", headers={"X-Auth-Token": "x"}, timeout=5
    ).ok
    mixed = requests.post(emulator.url + "data", json={"ids": [open_file.file_id, bam.file_id]}, timeout=5)
    assert mixed.status_code == 403


def test_revise_versions_history(fresh: GdcEmulator) -> None:
    url = fresh.url
    old = one(fresh, data_type="Gene Expression Quantification")
    before = fresh.now()
    fresh.advance(3600)
    new_id = fresh.revise(old.file_id)
    new = fresh.catalogue.files[new_id]
    assert new.file_name == old.file_name and new.version == "2" and new.md5sum != old.md5sum
    assert new.updated_datetime == fresh.now() > before
    assert requests.get(url + f"files/{old.file_id}", timeout=5).status_code == 404
    assert requests.get(url + f"files/{new_id}", timeout=5).json()["data"]["version"] == "2"
    # The change shows to an incremental query on updated_datetime, whatever the offset's notation.
    since = {"op": ">", "content": {"field": "updated_datetime", "value": before}}
    hits = search(url, filters=since, fields="file_id")["data"]["hits"]
    assert [h["id"] for h in hits] == [new_id]
    utc = {"op": ">=", "content": {"field": "files.updated_datetime", "value": "2025-02-03T17:00:00Z"}}
    assert [h["id"] for h in search(url, filters=utc)["data"]["hits"]] == [new_id]
    # /files/versions: GET and POST, the old id points to the new one.
    (row,) = requests.get(url + f"files/versions/{old.file_id}", timeout=5).json()
    assert row["id"] == old.file_id and row["latest_id"] == new_id
    assert (row["md5"], row["size"], row["version"]) == (old.md5sum, old.file_size, "1")
    assert (row["latest_md5"], row["latest_size"], row["latest_version"]) == (new.md5sum, new.file_size, "2")
    assert row["latest_release"] == ["42.0"] and row["state"] == row["latest_state"] == "validated"
    rows = requests.post(url + "files/versions", json={"ids": [old.file_id, new_id]}, timeout=5).json()
    assert [r["latest_id"] for r in rows] == [new_id, new_id]
    manifest = f"id\tfilename\tmd5\tsize\tstate\n{old.file_id}\t{old.file_name}\t{old.md5sum}\t1\treleased\n"
    posted = requests.post(
        url + "files/versions/manifest", data=manifest, headers={"Content-Type": "text/tsv"}, timeout=5
    )
    assert [r["latest_id"] for r in posted.json()] == [new_id]
    history = requests.get(url + f"history/{new_id}", timeout=5).json()
    assert [(h["uuid"], h["version"], h["file_change"]) for h in history] == [
        (old.file_id, "1", "superseded"),
        (new_id, "2", "released"),
    ]
    assert history[1]["data_release"] == "42.0" and history[1]["release_date"] == "2025-01-30"
    assert requests.get(url + f"history/{old.file_id}", timeout=5).json() == history
    # The old version can still be downloaded, as GDC keeps it.
    assert requests.get(url + f"data/{old.file_id}", timeout=5).content == content(old)
    renamed = fresh.catalogue.files[fresh.revise(new_id, same_name=False)]
    assert renamed.file_name != old.file_name and renamed.version == "3"


def test_remove_add_and_new_release(fresh: GdcEmulator) -> None:
    url = fresh.url
    gone = one(fresh, data_format="MAF")
    fresh.remove(gone.file_id)
    assert requests.get(url + f"files/{gone.file_id}", timeout=5).status_code == 404
    assert requests.get(url + f"data/{gone.file_id}", timeout=5).status_code == 404
    (row,) = requests.get(url + f"files/versions/{gone.file_id}", timeout=5).json()
    assert row["latest_id"] == gone.file_id and row["latest_state"] == "redacted"
    assert requests.get(url + f"history/{gone.file_id}", timeout=5).json()[-1]["file_change"] == "redacted"
    case = next(iter(fresh.catalogue.cases))
    fresh.advance(60)
    added = fresh.add_file(case, kind="clinical", file_size=1234)
    assert (
        added.file_size == 1234
        and added.md5sum == hashlib.md5(content(added), usedforsecurity=False).hexdigest()
    )
    hit = requests.get(
        url + f"files/{added.file_id}", params={"fields": "cases.submitter_id,updated_datetime"}, timeout=5
    )
    assert (
        hit.json()["data"]["cases"] == [{"submitter_id": case}]
        and hit.json()["data"]["updated_datetime"] == fresh.now()
    )
    assert fresh.new_release() == "43.0"
    assert (
        requests.get(url + "status", timeout=5).json()["data_release"] == "Data Release 43.0 - May 07, 2025"
    )
    assert fresh.catalogue.files[added.file_id].data_release == "42.0 - 43.0"
    assert requests.get(url + "history/00000000-0000-4000-8000-000000000000", timeout=5).json() == []


def test_faults_and_counters(fresh: GdcEmulator) -> None:
    url = fresh.url
    before = fresh.requests["files"]
    fresh.fail("files", 503, retry_after=2)
    busy = requests.get(url + "files", timeout=5)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert requests.get(url + "files", timeout=5).status_code == 200
    fresh.fail("files", 200, body=b"<html>Maintenance</html>", content_type="text/html", times=2)
    for _ in range(2):
        page = requests.get(url + "v0/files", timeout=5)
        assert page.headers["Content-Type"] == "text/html" and page.text.startswith("<html>")
    assert fresh.requests["files"] == before + 4
    fresh.fail("status", 500)
    assert requests.get(url + "status", timeout=5).json() == {"message": "Internal Server Error"}
    assert fresh.requests["status"] == 1
    f = one(fresh, data_format="BCR XML")
    served = fresh.data_bytes
    requests.get(url + f"data/{f.file_id}", timeout=5)
    assert fresh.data_bytes == served + f.file_size and fresh.requests["data"] == 1


def test_corrupt_downloads(fresh: GdcEmulator) -> None:
    f = one(fresh, data_format="SVS")
    fresh.corrupt(f.file_id, "flip")
    flipped = requests.get(fresh.url + f"data/{f.file_id}", timeout=5).content
    assert len(flipped) == f.file_size and flipped != content(f)
    fresh.corrupt(f.file_id, "truncate")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(fresh.url + f"data/{f.file_id}", timeout=5)
    assert requests.get(fresh.url + f"data/{f.file_id}", timeout=5).content == content(f)  # once only


def test_big_catalogue_pages_and_parallel_downloads() -> None:
    # CPU time, not wall time: the goal is the work of building it, not how busy the machine is.
    started = time.thread_time()
    catalogue = synthetic_catalogue(10_000, file_size=1_000_000)
    assert time.thread_time() - started < 1.5
    assert len(catalogue.latest()) == 10_000 and len(catalogue.cases) == 500
    with GdcEmulator(catalogue) as emulator, requests.Session() as session:
        filters = json.dumps(
            {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-LUAD"]}}
        )
        seen = 0
        for start in (0, 5000):
            # The emulator answers from a thread of this process: its CPU time is the page's cost.
            started = time.process_time()
            response = session.post(
                emulator.url + "files",
                json={
                    "filters": filters,
                    "fields": "file_id,file_name,md5sum,file_size",
                    "size": 5000,
                    "from": start,
                },
                timeout=30,
            )
            assert time.process_time() - started < 1.5
            seen += len(response.json()["data"]["hits"])
        assert seen == 10_000
        wanted = [f for f in catalogue.latest() if f.access == "open"][:500]

        def fetch(f: GdcFile) -> bool:
            body = requests.get(emulator.url + f"data/{f.file_id}", timeout=30).content
            return hashlib.md5(body, usedforsecurity=False).hexdigest() == f.md5sum

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert all(pool.map(fetch, wanted))
        assert emulator.data_bytes == 500 * 1_000_000
