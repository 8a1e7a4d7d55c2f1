"""The IDC source on the real index that idc-index-data ships (release 25), plus a small index
written here for the corner cases the real data does not have."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Rule, Selection, decide
from mediator_desktop.sources.idc import COLUMNS, PATH_COLUMNS, IdcSource, default_index_path
from tests.helpers.dicom import make_series
from tests.helpers.idc import small_index
from tests.helpers.s3 import MotoServer
from tests.helpers.transfer import download, files_under


@pytest.fixture(scope="module")
def idc() -> IdcSource:
    source = IdcSource()
    source.load()
    return source


@pytest.fixture(scope="module")
def lidc_rows() -> list[dict[str, object]]:
    table = pq.read_table(
        default_index_path(), columns=list(COLUMNS), filters=[("collection_id", "=", "lidc_idri")]
    )
    return table.to_pylist()


def test_browse_collections_patients_studies_series(idc: IdcSource) -> None:
    page = idc.browse(limit=500)
    assert page.total == 179 and not page.more
    keys = [item.key for item in page.items]
    assert keys == sorted(keys)
    nlst = next(item for item in page.items if item.key == "nlst")
    assert nlst.leaves == 592_600 and nlst.level == "collection" and nlst.size and nlst.size > 10**13
    patients = idc.browse(("nlst",), offset=10, limit=5)
    assert patients.total == 26_410 and len(patients.items) == 5 and patients.offset == 10 and patients.more
    patient = patients.items[0].key
    studies = idc.browse(("nlst", patient))
    assert studies.items and all(s.level == "study" for s in studies.items)
    series = idc.browse(("nlst", patient, studies.items[0].key))
    assert series.items and all(s.level == "series" and s.leaves == 1 for s in series.items)
    with pytest.raises(ValidationError, match="leaf"):
        idc.browse(("nlst", patient, studies.items[0].key, series.items[0].key))


def test_filters(idc: IdcSource) -> None:
    assert "CT" in idc.filter_values("Modality", ("lidc_idri",))
    ct_only = idc.browse(("lidc_idri",), filters=Pointer.of("idc", Modality="CT").filters, limit=2000)
    everything = idc.browse(("lidc_idri",), limit=2000)
    assert 0 < sum(i.leaves or 0 for i in ct_only.items) < sum(i.leaves or 0 for i in everything.items)
    with pytest.raises(ValidationError, match="cannot filter on 'Colour'"):
        idc.filter_values("Colour")


def test_resolution_matches_the_index_and_the_slow_builder(
    idc: IdcSource, lidc_rows: list[dict[str, object]]
) -> None:
    selection = Selection.of(idc.pointer("lidc_idri", Modality="CT")).remove(
        idc.pointer("lidc_idri", "LIDC-IDRI-0001")
    )
    manifest = idc.resolve(selection)
    expected = [r for r in lidc_rows if r["Modality"] == "CT" and r["PatientID"] != "LIDC-IDRI-0001"]
    assert len(manifest) == len(expected) > 900
    builder = ManifestBuilder()
    for r in expected:
        builder.add(
            "idc",
            [str(r[c]) for c in PATH_COLUMNS],
            size=round(float(r["series_size_MB"]) * 1e6),  # type: ignore[arg-type]
            count=r["instanceCount"],  # type: ignore[arg-type]
            version=r["crdc_series_uuid"],  # type: ignore[arg-type]
            released=f"idc_v{r['series_revised_idc_version']}",
        )
    slow = builder.build()
    assert manifest.id == slow.id
    assert Manifest.decode(manifest.encode(), manifest.id) == manifest


def test_tangled_selections_take_the_exact_path(idc: IdcSource, lidc_rows: list[dict[str, object]]) -> None:
    # Same depth, neither covers the other, opposite modes: the rule order alone cannot decide.
    rules = [
        Rule(idc.pointer("lidc_idri", Modality=["CT", "SEG"]), True),
        Rule(idc.pointer("lidc_idri", BodyPartExamined="CHEST"), False),
    ]
    manifest = idc.resolve(Selection(frozenset(rules)))
    expected = [
        r
        for r in lidc_rows
        if decide(
            rules,
            "idc",
            tuple(str(r[c]) for c in PATH_COLUMNS),
            {"Modality": r["Modality"], "BodyPartExamined": r["BodyPartExamined"]},
        )
    ]
    assert len(manifest) == len(expected)


def test_pointers_deeper_than_the_levels_are_refused(idc: IdcSource) -> None:
    with pytest.raises(ValidationError, match="only 4 levels"):
        idc.resolve(Selection.of(Pointer.of("idc", "a", "b", "c", "d", "e")))
    assert len(idc.resolve(Selection.of(Pointer.of("other-source", "x")))) == 0


def test_odd_keys_are_escaped_and_survive(tmp_path: Path) -> None:
    rows = [
        {
            "collection_id": "c",
            "PatientID": "50%\tA",
            "StudyInstanceUID": "1.2",
            "SeriesInstanceUID": "1.2.3",
            "instanceCount": 3,
            "series_size_MB": 1.5,
            "crdc_series_uuid": "u-1",
            "series_revised_idc_version": 20,
            "Modality": "CT",
        },
        {
            "collection_id": "c",
            "PatientID": "B",
            "StudyInstanceUID": "1.3",
            "SeriesInstanceUID": "1.3.4",
            "instanceCount": 1,
            "series_size_MB": None,
            "crdc_series_uuid": "u-2",
            "series_revised_idc_version": None,
            "Modality": None,
        },
    ]
    source = IdcSource(small_index(tmp_path, rows))
    manifest = source.resolve(Selection.of(source.pointer("c")))
    leaves = {leaf.path[1]: leaf for leaf in Manifest.decode(manifest.encode(), manifest.id)}
    assert set(leaves) == {"50%\tA", "B"}
    assert (
        leaves["50%\tA"].fingerprint.size == 1_500_000 and leaves["50%\tA"].fingerprint.released == "idc_v20"
    )
    assert leaves["B"].fingerprint.size is None and leaves["B"].fingerprint.count == 1
    # A modality filter never matches a series without one.
    assert len(source.resolve(Selection.of(source.pointer("c", Modality="CT")))) == 1


def test_a_missing_or_broken_index_is_a_source_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="IDC: cannot read the index"):
        IdcSource(broken).browse()
    with pytest.raises(SourceError):
        IdcSource(tmp_path / "missing.parquet").load()


def test_s5cmd_manifest_lists_each_selected_series_once(
    idc: IdcSource, lidc_rows: list[dict[str, object]]
) -> None:
    text = idc.s5cmd_manifest(Selection.of(idc.pointer("lidc_idri", Modality="CT")))
    commands = [line for line in text.splitlines() if not line.startswith("#")]
    expected = {
        f"cp s3://{r['aws_bucket']}/{r['crdc_series_uuid']}/* ." for r in lidc_rows if r["Modality"] == "CT"
    }
    assert set(commands) == expected and len(commands) == len(expected)
    assert text.startswith("# To download the files in this manifest")


def test_download_series_from_an_s3_endpoint(tmp_path: Path, moto: MotoServer) -> None:
    moto.public_bucket("idc-open-data")
    s3 = moto.client()
    files = make_series(tmp_path / "made", "P1", "1.2.9", "1.2.9.1", 3)
    uuid = "0b9c2f2a-1111-4222-8333-444455556666"
    for i, f in enumerate(files):
        s3.put_object(Bucket="idc-open-data", Key=f"{uuid}/inst-{i}.dcm", Body=f.read_bytes())
    rows = [
        {"collection_id": "c", "PatientID": "P1", "StudyInstanceUID": "1.2.9", "SeriesInstanceUID": "1.2.9.1",
         "instanceCount": 3, "series_size_MB": 0.03, "crdc_series_uuid": uuid, "aws_bucket": "idc-open-data",
         "series_revised_idc_version": 25, "Modality": "CT"},
        {"collection_id": "c", "PatientID": "P1", "StudyInstanceUID": "1.2.9", "SeriesInstanceUID": "1.2.9.2",
         "instanceCount": 5, "series_size_MB": 0.03, "crdc_series_uuid": "missing-objects",
         "aws_bucket": "idc-open-data", "series_revised_idc_version": 25, "Modality": "MR"},
    ]  # fmt: skip
    source = IdcSource(small_index(tmp_path, rows), endpoint_url=moto.url)
    source.list_page_size = 2  # three objects: the listing takes two pages
    manifest = source.resolve(Selection.of(source.pointer("c")))
    good, short = sorted(manifest, key=lambda leaf: leaf.path[-1])
    dest = tmp_path / "dest"
    report = download(source, [good, short], dest)
    assert report.fetched == (good.key,)
    assert [f.key for f in report.failed] == [short.key] and "should have 5 instances" in report.failed[
        0
    ].reason
    assert files_under(dest) == [f"c/P1/1.2.9/CT_1.2.9.1/inst-{i}.dcm" for i in range(3)]
    assert all(pydicom.dcmread(dest / f).SeriesInstanceUID == "1.2.9.1" for f in files_under(dest))


def test_pinned_versions_that_were_revised_are_changes(idc: IdcSource) -> None:
    import idc_index_data

    prior = pq.read_table(idc_index_data.PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH).slice(0, 200).to_pylist()
    current = pq.read_table(
        default_index_path(), columns=["SeriesInstanceUID", "crdc_series_uuid"]
    ).to_pylist()
    now = {r["SeriesInstanceUID"]: r["crdc_series_uuid"] for r in current}
    old = next(r for r in prior if r["SeriesInstanceUID"] in now)
    builder = ManifestBuilder()
    path = (old["collection_id"], old["PatientID"], old["StudyInstanceUID"], old["SeriesInstanceUID"])
    builder.add("idc", path, size=1, version=old["crdc_series_uuid"])
    untouched = next(r for r in current if r["SeriesInstanceUID"] != old["SeriesInstanceUID"])
    builder.add(
        "idc", ("x", "y", "z", untouched["SeriesInstanceUID"]), size=1, version=untouched["crdc_series_uuid"]
    )
    builder.add("idc", ("x", "y", "z", "9.9.9"), size=1, version="no-such-version")
    changes = idc.changes(builder.build())
    by_series = {c.leaf.path[-1]: c for c in changes}
    assert set(by_series) == {old["SeriesInstanceUID"], "9.9.9"}
    revised = by_series[old["SeriesInstanceUID"]]
    assert revised.current_version == now[old["SeriesInstanceUID"]] and not revised.withdrawn
    assert revised.served_in == (old["min_idc_version"], old["max_idc_version"])
    assert by_series["9.9.9"].withdrawn and by_series["9.9.9"].served_in is None


def test_an_index_out_of_key_order_resolves_the_same(tmp_path: Path) -> None:
    rows = [
        {"collection_id": c, "PatientID": p, "StudyInstanceUID": f"1.{s}", "SeriesInstanceUID": f"1.{s}.{n}",
         "instanceCount": n + 1, "series_size_MB": 0.5, "crdc_series_uuid": f"u-{c}{p}{s}{n}",
         "series_revised_idc_version": 3, "Modality": "CT"}
        for c in ("b", "a") for p in ("P2", "P1") for s in (2, 1) for n in (2, 1)
    ]  # fmt: skip
    source = IdcSource(small_index(tmp_path, rows))
    manifest = source.resolve(Selection.of(source.pointer("a"), source.pointer("b", "P2")))
    builder = ManifestBuilder()
    for r in rows:
        if r["collection_id"] == "a" or r["PatientID"] == "P2":
            builder.add(
                "idc",
                [str(r[c]) for c in PATH_COLUMNS],
                size=500_000,
                count=r["instanceCount"],  # type: ignore[arg-type]
                version=str(r["crdc_series_uuid"]),
                released="idc_v3",
            )
    assert manifest.id == builder.build().id and len(manifest) == 12
