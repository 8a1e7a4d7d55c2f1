"""IDC update tracking on real releases: a set pinned at IDC v22 (rebuilt from the installed index)
checked against the installed v25, pinned versions downloaded after they were replaced, and a
newer index fetched from IDC's published files (a loopback Google Cloud Storage).

Expectations come from SQL over the installed Parquet files (DuckDB), never from the code under test.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import idc_index_data
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.manifest import Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.idc import (
    COLUMNS,
    INDEX_URL,
    PATH_COLUMNS,
    IdcSource,
    create,
    index_at_release,
    index_release,
)
from tests.helpers.idc import series_row, small_index, upload_series
from tests.helpers.idc_releases import IndexHost, next_release, write_index
from tests.helpers.net import free_ports
from tests.helpers.s3 import MotoServer
from tests.helpers.transfer import download, files_under

INDEX = Path(str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH))
PRIOR = Path(str(idc_index_data.PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH))
RELEASE = 22
#: From v22 to v25: htan_ohsu gained, revised and lost series; htan_hms gained and lost some;
#: tcga_chol had one revised; rider_breast_mri did not change.
COLLECTIONS = ("htan_ohsu", "htan_hms", "tcga_chol", "rider_breast_mri")


def sql(query: str) -> list[tuple[Any, ...]]:
    """``query`` over the installed files, named ``idx`` and ``prior``."""
    return duckdb.sql(
        f"with idx as (select * from '{INDEX}'), prior as (select * from '{PRIOR}') {query}"
    ).fetchall()


def within(collections: tuple[str, ...], column: str = "collection_id") -> str:
    return f"{column} in (" + ", ".join(f"'{c}'" for c in collections) + ")"


@pytest.fixture(scope="module")
def installed() -> IdcSource:
    source = IdcSource()  # no data folder: it never fetches
    source.load()
    return source


@pytest.fixture(scope="module")
def v22(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_at_release(
        RELEASE, tmp_path_factory.mktemp("v22") / "idc_v22.parquet", collections=COLLECTIONS
    )


def selection_of(source: IdcSource, collections: tuple[str, ...]) -> Selection:
    return Selection.of(*(source.pointer(c) for c in collections))


# -- IDC as it was at v22 --------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_v22_is_rebuilt_as_the_parquet_files_say(v22: Path) -> None:
    rebuilt = pq.read_table(v22)
    assert rebuilt.schema.names == pq.read_schema(INDEX).names and set(COLUMNS) <= set(rebuilt.schema.names)
    assert index_release(v22) == RELEASE and IdcSource(v22).state == "IDC v22"
    expected = sql(
        f"""select SeriesInstanceUID, crdc_series_uuid from idx where {within(COLLECTIONS)}
              and series_init_idc_version <= {RELEASE} and series_revised_idc_version <= {RELEASE}
            union all
            select distinct SeriesInstanceUID, crdc_series_uuid from prior where {within(COLLECTIONS)}
              and min_idc_version <= {RELEASE} and {RELEASE} <= max_idc_version"""
    )
    got = list(
        zip(*(rebuilt.column(c).to_pylist() for c in ("SeriesInstanceUID", "crdc_series_uuid")), strict=True)
    )
    assert sorted(got) == sorted(expected) and len(got) == len({s for s, _ in got})
    keys = list(zip(*(rebuilt.column(c).to_pylist() for c in PATH_COLUMNS), strict=True))
    assert keys == sorted(keys)  # key order, as IDC's own index
    # A version replaced since: first served when its prior row says, instance count unknown.
    earlier: dict[str, int] = dict(
        sql(
            f"""select crdc_series_uuid, min(min_idc_version) from prior where crdc_series_uuid in
                (select crdc_series_uuid from prior where {within(COLLECTIONS)}
                 and min_idc_version <= {RELEASE} and {RELEASE} <= max_idc_version) group by 1"""
        )
    )
    rows = {r["crdc_series_uuid"]: r for r in rebuilt.to_pylist() if r["crdc_series_uuid"] in earlier}
    assert rows and all(
        r["series_revised_idc_version"] == earlier[uuid] and r["instanceCount"] is None
        for uuid, r in rows.items()
    )
    assert all(r["series_init_idc_version"] <= RELEASE for r in rebuilt.to_pylist())


@pytest.mark.timeout(60)
def test_only_releases_up_to_the_index_own_can_be_rebuilt(tmp_path: Path) -> None:
    for release in (0, 26):
        with pytest.raises(ValidationError, match=f"IDC release {release} cannot be rebuilt"):
            index_at_release(release, tmp_path / "x.parquet", collections=("tcga_chol",))
    assert list(tmp_path.iterdir()) == []


# -- a set pinned at v22, checked against v25 ------------------------------------------------------
@pytest.mark.timeout(120)
def test_a_set_pinned_at_v22_finds_exactly_what_changed_since(installed: IdcSource, v22: Path) -> None:
    old = IdcSource(v22)
    selection = selection_of(old, COLLECTIONS)
    pinned = old.resolve(selection)
    tracked = installed.track(selection, pinned, since=None)
    diff = ManifestDiff.between(pinned, tracked.manifest)

    added = {s for (s,) in sql(f"select SeriesInstanceUID from idx where {within(COLLECTIONS)} "
                              f"and series_init_idc_version > {RELEASE}")}  # fmt: skip
    revised: dict[str, str] = dict(
        sql(
            f"""select p.SeriesInstanceUID, p.crdc_series_uuid || ' -> ' || i.crdc_series_uuid
                from prior p join idx i using (SeriesInstanceUID)
                where {within(COLLECTIONS, "i.collection_id")}
                and i.series_init_idc_version <= {RELEASE} and i.series_revised_idc_version > {RELEASE}
                and p.min_idc_version <= {RELEASE} and {RELEASE} <= p.max_idc_version"""
        )
    )
    removed = {s for (s,) in sql(
        f"""select distinct SeriesInstanceUID from prior where {within(COLLECTIONS)}
            and min_idc_version <= {RELEASE} and {RELEASE} <= max_idc_version
            and SeriesInstanceUID not in (select SeriesInstanceUID from idx)"""
    )}  # fmt: skip
    assert added and revised and removed
    assert {leaf.path[-1] for leaf in diff.added} == added
    assert {
        a.path[-1]: f"{a.fingerprint.version} -> {b.fingerprint.version}" for a, b in diff.changed
    } == revised
    assert {leaf.path[-1] for leaf in diff.removed} == removed
    changed = {leaf.path[0] for leaf in (*diff.added, *diff.removed, *(a for a, _ in diff.changed))}
    assert changed == {"htan_ohsu", "htan_hms", "tcga_chol"}  # rider_breast_mri: no change

    assert tracked.state == "IDC v25"
    ((first, last),) = sql(
        f"""select min(min_idc_version), max(max_idc_version) from prior where crdc_series_uuid in
            (select crdc_series_uuid from prior where {within(COLLECTIONS)}
             and min_idc_version <= {RELEASE} and {RELEASE} <= max_idc_version)"""
    )
    assert tracked.notes == (
        f"{len(revised)} revised and {len(removed)} removed series: their pinned versions stay "
        f"downloadable (served from IDC v{first} to v{last})",
    )


@pytest.mark.timeout(60)
def test_notes_say_which_pinned_versions_idc_still_serves(installed: IdcSource, v22: Path) -> None:
    old = IdcSource(v22)
    selection = selection_of(old, ("tcga_chol", "rider_breast_mri"))
    pinned = old.resolve(selection)
    ((first, last),) = sql(
        f"""select min(min_idc_version), max(max_idc_version) from prior where crdc_series_uuid in
            (select crdc_series_uuid from prior where collection_id = 'tcga_chol'
             and min_idc_version <= {RELEASE} and {RELEASE} <= max_idc_version)"""
    )
    when = f"served in IDC v{first}" if first == last else f"served from IDC v{first} to v{last}"
    assert installed.track(selection, pinned, None).notes == (
        f"1 revised series: its pinned version stays downloadable ({when})",
    )
    # A version nobody knows any more: IDC no longer serves it.
    builder = ManifestBuilder()
    for leaf in pinned:
        builder.add_leaf(leaf)
    builder.add("idc", ("rider_breast_mri", "P-X", "1.2.3", "1.2.3.4"), size=10, version="no-such-version")
    with_unknown = builder.build()
    assert installed.track(selection, with_unknown, None).notes == (
        f"1 revised and 1 removed series: 1 pinned version stays downloadable ({when}); "
        "1 pinned version is no longer served by IDC",
    )
    only_gone = Manifest.build(with_unknown.under("idc", ("rider_breast_mri", "P-X")))
    assert installed.track(selection, only_gone, None).notes == (
        "1 removed series: 1 pinned version is no longer served by IDC",
    )
    assert installed.track(selection, installed.resolve(selection), None).notes == ()


# -- downloading a pinned version that a newer index replaced --------------------------------------
@pytest.mark.timeout(120)
def test_a_replaced_version_downloads_while_idc_serves_it(tmp_path: Path, moto: MotoServer) -> None:
    moto.public_bucket("idc-open-data")
    s3 = moto.client()
    old_blobs, new_blobs = [b"old-%d" % i * 300 for i in range(3)], [b"new-%d" % i * 300 for i in range(2)]
    old_uuid, new_uuid = "0ld00000-1111-4222-8333-444455556666", "5e500000-1111-4222-8333-444455556666"
    gone_uuid = "90e00000-1111-4222-8333-444455556666"  # known to the prior index, no longer in the bucket
    upload_series(s3, "idc-open-data", old_uuid, old_blobs)
    upload_series(s3, "idc-open-data", new_uuid, new_blobs)
    path = ("c", "P1", "1.2.9", "1.2.9.1")
    folder = tmp_path / "index"
    folder.mkdir()
    small_index(folder / "idc_index.parquet", [series_row(path, new_uuid, new_blobs)])
    prior = [
        {"collection_id": "c", "PatientID": "P1", "StudyInstanceUID": "1.2.9", "SeriesInstanceUID": s,
         "Modality": "MR", "crdc_series_uuid": u, "aws_bucket": "idc-open-data", "series_size_MB": 0.001,
         "series_aws_url": f"s3://idc-open-data/{u}/*", "min_idc_version": 20, "max_idc_version": 24}
        for s, u in (("1.2.9.1", old_uuid), ("1.2.9.2", gone_uuid))
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(prior), folder / "prior_versions_index.parquet")
    source = IdcSource(folder / "idc_index.parquet", endpoint_url=moto.url)

    def pinned(series: str, uuid: str, count: int) -> Leaf:
        builder = ManifestBuilder()
        builder.add("idc", (*path[:3], series), size=count * 1500, count=count, version=uuid)  # 1,500 B each
        return next(iter(builder.build()))

    leaf = pinned("1.2.9.1", old_uuid, 3)
    plan = source.plan(leaf)
    assert [f.url.rsplit("/", 2)[-2] for f in plan.files] == [old_uuid] * 3 and plan.fields == {
        "modality": "MR"
    }
    report = download(source, [leaf], tmp_path / "dest")
    assert report.fetched == (leaf.key,) and not report.failed
    fetched = sorted((tmp_path / "dest" / p).read_bytes() for p in files_under(tmp_path / "dest"))
    assert fetched == sorted(old_blobs)
    for series, uuid in (("1.2.9.2", gone_uuid), ("1.2.9.3", "never-heard-of")):
        with pytest.raises(SourceError, match=rf"IDC no longer serves version {uuid} of series {series}: "
                           r"accept the set's update .* \(mediator sets accept NAME\)"):  # fmt: skip
            source.plan(pinned(series, uuid, 1))


# -- a newer index, fetched from IDC's published files ----------------------------------------------
@pytest.fixture(scope="module")
def release26(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("release26")
    index, prior, changes = next_release(("tcga_chol", "rider_breast_mri"))
    return {
        "index": write_index(folder / "idc_index.parquet", index, "26.0.0-0-gabcdef0"),
        "prior": write_index(folder / "prior_versions_index.parquet", prior, "26.0.0-0-gabcdef0"),
        **changes,
    }


@pytest.fixture
def host(tmp_path: Path, release26: dict[str, Any]) -> Iterator[IndexHost]:
    with IndexHost(tmp_path / "gcs") as h:
        h.publish(
            "26.0.0",
            {"idc_index.parquet": release26["index"], "prior_versions_index.parquet": release26["prior"]},
        )
        yield h


def site_packages() -> dict[str, int]:
    folder = INDEX.parent
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def written(tmp_path: Path) -> list[str]:
    """Files written under ``tmp_path`` outside the emulated bucket."""
    return sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and "gcs" not in p.parts
    )


@pytest.mark.timeout(120)
def test_a_newer_release_is_fetched_into_the_data_folder_and_used(
    tmp_path: Path, host: IndexHost, release26: dict[str, Any], installed: IdcSource
) -> None:
    before = site_packages()
    source = create("idc", {"index_url": host.url}, None, tmp_path / "data")
    assert source.state == "IDC v25"
    selection = selection_of(source, ("tcga_chol", "rider_breast_mri"))
    pinned = source.resolve(selection)
    tracked = source.track(selection, pinned, None)

    assert tracked.state == "IDC v26" and source.check().startswith("IDC index (release v26)")
    diff = ManifestDiff.between(pinned, tracked.manifest)
    revised, removed, added = (release26[k] for k in ("revised", "removed", "added"))
    assert [leaf.path[-1] for leaf in diff.added] == [added["SeriesInstanceUID"]]
    assert [leaf.path[-1] for leaf in diff.removed] == [removed["SeriesInstanceUID"]]
    assert [(a.fingerprint.version, b.fingerprint.version) for a, b in diff.changed] == [
        (revised["crdc_series_uuid"], release26["new_uuid"])
    ]
    first = min(revised["series_revised_idc_version"], removed["series_revised_idc_version"])
    when = "served in IDC v25" if first == 25 else f"served from IDC v{first} to v25"
    assert tracked.notes == (
        f"1 revised and 1 removed series: their pinned versions stay downloadable ({when})",
    )
    # The files, checked and in place; nothing else written, site-packages untouched.
    data = tmp_path / "data" / "idc"
    for name in ("idc_index.parquet", "prior_versions_index.parquet"):
        published = (
            (tmp_path / "gcs" / "current" / "release_artifacts" / f"{name}.sha256").read_text().split()[0]
        )
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == published
    assert written(tmp_path) == [
        "data/idc/idc_index.parquet",
        "data/idc/prior_versions_index.parquet",
        "data/idc/refresh.json",
    ]
    assert site_packages() == before
    assert dict(host.requests) == {
        "idc_index.parquet.sha256": 1,
        "idc_index.parquet": 1,
        "prior_versions_index.parquet.sha256": 1,
        "prior_versions_index.parquet": 1,
    }
    # Within the interval nothing is asked; after it, the checksum says nothing is new.
    now = time.time()
    assert source.refresh(now + 60) is None and sum(host.requests.values()) == 4
    assert source.refresh(now + source.refresh_seconds + 1) is None
    assert host.requests["idc_index.parquet.sha256"] == 2 and host.requests["idc_index.parquet"] == 1
    # A restart uses the fetched index, the newest it has, without asking.
    again = create("idc", {"index_url": "http://127.0.0.1:9/nowhere"}, None, tmp_path / "data")
    assert again.state == "IDC v26" and again.refresh(now + source.refresh_seconds + 60) is None
    # The fetched prior versions index says which releases served the pinned versions.
    (change,) = [c for c in again.changes(pinned) if not c.withdrawn]
    assert change.current_version == release26["new_uuid"]
    assert change.served_in == (revised["series_revised_idc_version"], 25)


@pytest.mark.timeout(60)
def test_a_published_index_no_newer_than_the_one_in_use_is_not_kept(
    tmp_path: Path, host: IndexHost, v22: Path
) -> None:
    source = IdcSource(data_dir=tmp_path / "data" / "idc", index_url=host.url, backoff=0.01)
    host.publish("25.0.5", {"idc_index.parquet": INDEX})  # the installed release: only its checksum is read
    assert source.refresh(1000.0) is None
    assert dict(host.requests) == {"idc_index.parquet.sha256": 1}
    host.publish("22.0.0", {"idc_index.parquet": v22})  # older: fetched once, then never again
    assert source.refresh(1000.0 + source.refresh_seconds) is None
    assert host.requests["idc_index.parquet"] == 1
    assert source.refresh(1000.0 + 2 * source.refresh_seconds) is None
    assert host.requests["idc_index.parquet"] == 1 and host.requests["idc_index.parquet.sha256"] == 3
    assert written(tmp_path) == ["data/idc/refresh.json"] and source.state == "IDC v25"


def garbage_parquet(folder: Path) -> Path:
    return write_index(folder / "lacking.parquet", pa.table({"collection_id": ["c"]}), "26.0.0")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("error", "IDC answered 503 for idc_index.parquet.sha256"),
        ("garbage", "IDC published no valid checksum for idc_index.parquet"),
        ("damaged", "the published idc_index.parquet does not match its checksum"),
        ("cut", "the download of idc_index.parquet broke off"),
        ("hang", "no answer in time"),
        ("offline", "offline?"),
        ("not parquet", "the published index is not a Parquet file"),
        (
            "lacking columns",
            "the published index lacks PatientID, StudyInstanceUID, SeriesInstanceUID and more",
        ),
        ("no release", "the published index names no release"),
    ],
)
def test_when_the_index_cannot_be_fetched_the_one_in_use_stays_and_a_note_says_so(
    tmp_path: Path, host: IndexHost, fault: str, reason: str
) -> None:
    before = site_packages()
    url = host.url
    if fault == "offline":
        url = f"http://127.0.0.1:{free_ports(1)[0]}/idc-index-data-artifacts/current/release_artifacts"
    elif fault == "not parquet":
        host.publish("26.0.1", {"idc_index.parquet": b"PAR1 but not really" * 100})
    elif fault == "lacking columns":
        host.publish("26.0.1", {"idc_index.parquet": garbage_parquet(tmp_path)})
        (tmp_path / "lacking.parquet").unlink()
    elif fault == "no release":
        table = pq.read_table(INDEX, filters=[("collection_id", "=", "tcga_chol")]).replace_schema_metadata()
        pq.write_table(table, tmp_path / "anonymous.parquet")
        host.publish("26.0.1", {"idc_index.parquet": tmp_path / "anonymous.parquet"})
        (tmp_path / "anonymous.parquet").unlink()
    else:
        host.fault = fault
    source = IdcSource(
        data_dir=tmp_path / "data" / "idc", index_url=url, index_timeout=(2.0, 0.3), backoff=0.01
    )
    note = source.refresh(5000.0)
    assert note == f"IDC's newest index could not be fetched ({reason}): checked against the installed v25"
    assert source.refresh(5000.0 + 60) == note  # the failure is remembered, not retried at once
    assert written(tmp_path) == ["data/idc/refresh.json"]  # no partial file left
    assert site_packages() == before


@pytest.mark.timeout(60)
def test_a_check_that_cannot_fetch_checks_against_the_installed_index(
    tmp_path: Path, host: IndexHost, installed: IdcSource
) -> None:
    host.fault = "error"
    source = IdcSource(data_dir=tmp_path / "data" / "idc", index_url=host.url, backoff=0.01)
    selection = selection_of(installed, ("tcga_chol",))
    pinned = installed.resolve(selection)
    tracked = source.track(selection, pinned, None)
    assert tracked.manifest == pinned and tracked.state == "IDC v25"
    assert tracked.notes == (
        "IDC's newest index could not be fetched (IDC answered 503 for idc_index.parquet.sha256): "
        "checked against the installed v25",
    )


@pytest.mark.timeout(60)
def test_an_index_given_is_used_exactly_and_never_fetched(
    tmp_path: Path, host: IndexHost, v22: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = create("idc", {"index": str(v22), "index_url": host.url}, None, tmp_path / "data")
    assert source.refresh() is None and source.state == "IDC v22"
    selection = selection_of(source, ("tcga_chol",))
    assert source.track(selection, source.resolve(selection), None).notes == ()
    assert not host.requests and not (tmp_path / "data").exists()
    monkeypatch.delenv("MEDIATOR_IDC_INDEX_URL")  # tests keep IDC on loopback (tests/conftest.py)
    assert create("idc", {}, None, tmp_path / "data").index_url == INDEX_URL
    monkeypatch.setenv("MEDIATOR_IDC_INDEX_URL", host.url)
    assert create("idc", {}, None, tmp_path / "data").index_url == host.url
