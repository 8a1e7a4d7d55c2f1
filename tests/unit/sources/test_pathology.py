"""The pathology source (TCIA PathDB) against the PathDB emulator, and the emulator against TCIA's
own client (tcia_utils.pathdb)."""

from __future__ import annotations

import copy
import math
import re
import socket
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tifffile

from mediator_desktop.core.errors import (
    ArchiveUnreachable,
    IntegrityError,
    SourceError,
    ValidationError,
    by_code,
)
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.pathology import (
    DEFAULT_URL,
    KIND,
    NotInPathDb,
    PathologySource,
    _tiff_problem,
    create,
)
from mediator_desktop.sources.registry import build_one, describe
from tests.helpers.pathdb_emulator import (
    PAGE_SIZE,
    Catalogue,
    PathDbEmulator,
    catalogue_from_idc,
    slide_bytes,
    slide_levels,
)
from tests.helpers.transfer import download, files_under

LUAD, CPTAC = "TCGA-LUAD", "CPTAC-LUAD"
TCIA_PATHDB = "https://pathdb.cancerimagingarchive.net/"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """Real subjects of two collections with slides (IDC's SM series), a few left out."""
    return catalogue_from_idc(("tcga_luad", "cptac_luad"), seed=7)


@pytest.fixture(scope="module")
def emulator(catalogue: Catalogue) -> Iterator[PathDbEmulator]:
    """A PathDB that the tests only read (those that change the archive get their own)."""
    with PathDbEmulator(catalogue) as e:
        yield e


@pytest.fixture
def fresh(catalogue: Catalogue) -> Iterator[PathDbEmulator]:
    """A PathDB of its own, to change."""
    with PathDbEmulator(copy.deepcopy(catalogue)) as e:
        yield e


def source_of(emulator: PathDbEmulator, **options: object) -> PathologySource:
    return PathologySource(base_url=emulator.url, backoff=0.01, timeout=(2.0, 5.0), **options)  # type: ignore[arg-type]


@pytest.fixture
def pathdb(emulator: PathDbEmulator) -> Iterator[PathologySource]:
    source = source_of(emulator)
    yield source
    source.close()


def paths_of(manifest: Manifest) -> set[tuple[str, ...]]:
    return {leaf.path for leaf in manifest}


# -- the emulator, as TCIA's own client reads it ------------------------------------------------------
def test_tcia_utils_lists_and_downloads_through_the_emulator(
    emulator: PathDbEmulator, catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tcia_utils.pathdb hard-codes TCIA's host (``getImages`` in a local variable): its requests
    are sent to the emulator instead, unchanged otherwise."""
    from tcia_utils import pathdb

    shim = types.SimpleNamespace(
        get=lambda url, **kw: requests.get(url.replace(TCIA_PATHDB, emulator.url), **kw)
    )
    monkeypatch.setattr(pathdb, "requests", shim)
    collections = pathdb.getCollections()
    assert [(c["collectionName"], c["collectionId"]) for c in collections] == [
        (c.name, c.tid) for c in sorted(catalogue.collections, key=lambda c: c.name)
    ]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", c["updated"]) for c in collections)
    cptac = emulator.collection(CPTAC)
    images = pathdb.getImages(query=cptac.tid)  # pages 0.. until the empty page
    expected = [s for s in catalogue.slides if s.collection == CPTAC]
    assert len(images) == len(expected) > PAGE_SIZE
    by_nid = {s.nid: s for s in expected}
    for image in images:
        slide = by_nid[image["slideId"]]
        assert image["collectionName"] == CPTAC and image["collectionId"] == cptac.tid
        assert (image["subjectId"], image["imageId"]) == (slide.subject, slide.imageid)
        assert (image["imagedWidth"], image["imageHeight"]) == (slide.width, slide.height)
        assert image["physicalPixelSizeX"] == slide.mpp and image["imageUrl"] == emulator.file_url(slide)
        assert image["changed"] == slide.changed.strftime("%Y-%m-%d %H-%M-%S")
    assert len(pathdb.getImages(query="luad")) == len(catalogue.slides)  # by name: both collections
    pathdb.downloadImages(images[:2], path=str(tmp_path / "tcia_utils"), max_workers=2)
    for image in images[:2]:
        name = image["imageUrl"].rsplit("/", 1)[1]
        with tifffile.TiffFile(tmp_path / "tcia_utils" / name) as tif:
            assert tif.is_svs and tif.series[0].levels[0].shape[:2] == (
                image["imageHeight"],
                image["imagedWidth"],
            )


def test_emulator_pages_and_errors_as_drupal_views(emulator: PathDbEmulator, catalogue: Catalogue) -> None:
    luad = emulator.collection(LUAD)
    count = sum(s.collection == LUAD for s in catalogue.slides)
    pages = math.ceil(count / PAGE_SIZE)
    url = f"{emulator.url}listofimages/{luad.tid}"
    sizes = [len(requests.get(f"{url}?_format=json&page={p}", timeout=5).json()) for p in range(pages + 1)]
    assert sizes == [PAGE_SIZE] * (pages - 1) + [count - PAGE_SIZE * (pages - 1), 0]
    first = requests.get(url, params={"_format": "json"}, timeout=5)
    assert first.headers["Content-Type"] == "application/json" and '"url":"http:\\/\\/127.0.0.1' in first.text
    rows = first.json()
    keys = [
        (r["studyid"][0]["value"], r["clinicaltrialsubjectid"][0]["value"], r["imageid"][0]["value"])
        for r in rows
    ]
    assert keys == sorted(keys)  # the view sorts by collection, study, subject, image
    assert rows[0]["field_collection"][0] == {
        "target_id": luad.tid,
        "target_type": "taxonomy_term",
        "target_uuid": rows[0]["field_collection"][0]["target_uuid"],
        "url": f"/taxonomy/term/{luad.tid}",
    }
    assert requests.get(f"{emulator.url}listofimages/tcga-luad?_format=json", timeout=5).json() == rows
    # An id that names no collection filters everything out (Views), as a page past the end.
    assert requests.get(f"{emulator.url}listofimages/999?_format=json", timeout=5).json() == []
    html = requests.get(url, timeout=5)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    missing = requests.get(f"{emulator.url}nothing?_format=json", timeout=5)
    assert missing.status_code == 404 and "No route found" in missing.json()["message"]


# -- browsing and resolving ---------------------------------------------------------------------------
def test_browse_collections_subjects_and_slides(pathdb: PathologySource, catalogue: Catalogue) -> None:
    assert [c.key for c in pathdb.browse().items] == [CPTAC, LUAD]
    subjects = pathdb.browse((LUAD,), limit=10**6)
    assert [s.key for s in subjects.items] == catalogue.subjects(LUAD)
    assert all(s.level == "subject" and s.leaves for s in subjects.items)
    page = pathdb.browse((LUAD,), offset=5, limit=7)
    assert [s.key for s in page.items] == catalogue.subjects(LUAD)[5:12] and page.more
    subject = catalogue.subjects(LUAD)[0]
    slides = pathdb.browse((LUAD, subject))
    expected = sorted(s.imageid for s in catalogue.slides if s.subject == subject)
    assert [s.key for s in slides.items] == expected
    chosen = next(s for s in catalogue.slides if s.subject == subject and s.imageid == expected[0])
    details = dict(slides.items[0].details)
    assert details["image size"] == f"{chosen.width:,} × {chosen.height:,} px"
    assert details["pixel spacing"].endswith("µm/px") and details["study"] == LUAD
    assert details["file"] == chosen.file_name and f"slideId={chosen.nid}" in details["viewer"]
    assert f"{chosen.width:,} × {chosen.height:,} px" in slides.items[0].label
    with pytest.raises(NotInPathDb, match=r"no collection 'NOPE'") as caught:
        pathdb.browse(("NOPE",))
    assert caught.value.code == "not_found" and caught.value.http_status == 404 and by_code("not_found")
    with pytest.raises(NotInPathDb, match=r"no slides of subject"):
        pathdb.browse((LUAD, "TCGA-00-0000"))
    with pytest.raises(ValidationError, match=r"no metadata to filter"):
        pathdb.browse((LUAD,), filters=(("Modality", ("SM",)),))


def test_resolve_follows_rules_at_any_depth(
    pathdb: PathologySource, emulator: PathDbEmulator, catalogue: Catalogue
) -> None:
    luad_subjects = catalogue.subjects(LUAD)
    out, one = luad_subjects[3], catalogue.subjects(CPTAC)[0]
    slide = next(s for s in catalogue.slides if s.subject == luad_subjects[4])
    selection = (
        Selection.of(pathdb.pointer(LUAD), pathdb.pointer(CPTAC, one))
        .remove(pathdb.pointer(LUAD, out))
        .remove(pathdb.pointer(LUAD, slide.subject, slide.imageid))
    )
    before = emulator.requests["listofimages"]
    manifest = pathdb.resolve(selection)
    expected = {
        (s.collection, s.subject, s.imageid)
        for s in catalogue.slides
        if (s.collection == LUAD and s.subject != out and s.nid != slide.nid) or s.subject == one
    }
    assert paths_of(manifest) == expected
    luad_pages = math.ceil(sum(s.collection == LUAD for s in catalogue.slides) / PAGE_SIZE) + 1
    cptac_pages = math.ceil(sum(s.collection == CPTAC for s in catalogue.slides) / PAGE_SIZE) + 1
    assert emulator.requests["listofimages"] - before == luad_pages + cptac_pages
    leaf = manifest.get(
        "pathology",
        (LUAD, luad_subjects[0], min(s.imageid for s in catalogue.slides if s.subject == luad_subjects[0])),
    )
    assert leaf is not None
    node = next(s for s in catalogue.slides if (s.subject, s.imageid) == leaf.path[1:])
    assert leaf.fingerprint.version == f"{node.nid}/{node.fid}"
    assert leaf.fingerprint.released == node.changed.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert leaf.fingerprint.size is None and leaf.fingerprint.checksum is None  # PathDB lists neither
    assert len(pathdb.resolve(Selection.of(pathdb.pointer()))) == len(catalogue.slides)
    with pytest.raises(NotInPathDb):
        pathdb.resolve(Selection.of(pathdb.pointer("NOPE")))
    with pytest.raises(ValidationError, match=r"no metadata"):
        pathdb.resolve(Selection.of(Pointer.of("pathology", LUAD, Modality="SM")))


def test_a_repeated_image_id_gets_a_stable_key(fresh: PathDbEmulator) -> None:
    original = fresh.slides[0]
    copy_ = fresh.add_slide(
        original.collection, original.subject, imageid=original.imageid, file_name="again.svs"
    )
    source = source_of(fresh)
    keys = [i.key for i in source.browse((original.collection, original.subject)).items]
    assert original.imageid in keys and f"{original.imageid}~{copy_.nid}" in keys
    third = fresh.add_slide(
        original.collection, original.subject, imageid=original.imageid, file_name="3.svs"
    )
    keys = [i.key for i in source.slides(original.collection, fresh=True) if i.subject == original.subject]
    assert {original.imageid, f"{original.imageid}~{copy_.nid}", f"{original.imageid}~{third.nid}"} <= set(
        keys
    )


def test_only_the_configured_collections(emulator: PathDbEmulator) -> None:
    source = source_of(emulator, collections=["cptac-luad"])
    assert [c.key for c in source.browse().items] == [CPTAC]
    assert source.check() == "1 collection"
    with pytest.raises(NotInPathDb, match=r"limited to"):
        source.browse((LUAD,))
    with pytest.raises(NotInPathDb, match=r"no collection 'NOPE'"):
        source_of(emulator, collections=["NOPE"]).check()


# -- downloads ----------------------------------------------------------------------------------------
def test_download_places_slides_that_open_as_pyramids(
    pathdb: PathologySource, emulator: PathDbEmulator, catalogue: Catalogue, tmp_path: Path
) -> None:
    subject = next(s for s in catalogue.subjects(LUAD) if sum(x.subject == s for x in catalogue.slides) >= 2)
    manifest = pathdb.resolve(Selection.of(pathdb.pointer(LUAD, subject)))
    heads = emulator.requests["head"]
    report = download(pathdb, manifest, tmp_path / "dest", layout="{collection}/{patient}/{study}/{slide}")
    assert report.ok and len(report.fetched) == len(manifest) >= 2, report
    assert emulator.requests["head"] - heads == len(manifest)  # one HEAD a slide, for its size
    files = files_under(tmp_path / "dest")
    slides = [s for s in catalogue.slides if s.subject == subject]
    assert files == sorted(f"{LUAD}/{subject}/{LUAD}/{s.imageid}/{s.file_name}" for s in slides)
    for slide in slides:
        with tifffile.TiffFile(
            tmp_path / "dest" / LUAD / subject / LUAD / slide.imageid / slide.file_name
        ) as tif:
            assert tif.is_svs
            shapes = [level.shape for level in tif.series[0].levels]
            assert shapes == [(h, w, 3) for w, h in slide_levels(slide.width, slide.height)]
            first = tif.pages[0]
            assert isinstance(first, tifffile.TiffPage) and first.is_tiled and first.tilewidth == 256
    again = download(pathdb, manifest, tmp_path / "dest", layout="{collection}/{patient}/{study}/{slide}")
    assert again.ok and not again.fetched  # nothing changed: nothing fetched


def test_download_default_layout(pathdb: PathologySource, catalogue: Catalogue, tmp_path: Path) -> None:
    slide = catalogue.slides[-1]
    manifest = pathdb.resolve(Selection.of(pathdb.pointer(slide.collection, slide.subject, slide.imageid)))
    assert download(pathdb, manifest, tmp_path).ok
    assert files_under(tmp_path) == [
        f"{slide.collection}/{slide.subject}/{slide.study}/SM_{slide.imageid}/{slide.file_name}"
    ]


def test_a_truncated_download_is_resumed_and_wrong_bytes_are_refused(
    fresh: PathDbEmulator, tmp_path: Path
) -> None:
    source = source_of(fresh)
    short, flipped = fresh.slides[0], fresh.slides[1]
    manifest = source.resolve(
        Selection.of(
            source.pointer(short.collection, short.subject, short.imageid),
            source.pointer(flipped.collection, flipped.subject, flipped.imageid),
        )
    )
    fresh.corrupt(short.nid, "truncate")
    fresh.corrupt(flipped.nid, "flip")
    report = download(source, manifest, tmp_path / "dest", layout="{slide}")
    assert [f.path[-1] for f in report.failed] == [flipped.imageid], report
    assert "damaged" in report.failed[0].reason and "not a TIFF" in report.failed[0].reason
    # The short file was noticed by its size (from HEAD) and completed with a range request.
    assert fresh.ranged[short.nid] == 1 and fresh.requests["files"] == 3
    assert (tmp_path / "dest" / short.imageid / short.file_name).read_bytes() == fresh.file_bytes(short)
    assert not (tmp_path / "dest" / flipped.imageid).exists()
    again = download(source, manifest, tmp_path / "dest", layout="{slide}", only=report.retry_keys())
    assert again.ok and (
        tmp_path / "dest" / flipped.imageid / flipped.file_name
    ).read_bytes() == fresh.file_bytes(flipped)


def test_the_head_request_of_a_plan(
    pathdb: PathologySource, emulator: PathDbEmulator, tmp_path: Path
) -> None:
    slide = emulator.slides[2]
    (leaf,) = pathdb.resolve(Selection.of(pathdb.pointer(slide.collection, slide.subject, slide.imageid)))
    plan = pathdb.plan(leaf)
    assert plan.files[0].size == len(emulator.file_bytes(slide)) and plan.files[0].name == slide.file_name
    assert plan.files[0].url == emulator.file_url(slide) and plan.count == 1
    assert dict(plan.fields) == {
        "collection": slide.collection,
        "subject": slide.subject,
        "patient": slide.subject,
        "study": slide.study,
        "modality": "SM",
        "series": slide.imageid,
    }
    emulator.fail("head", 405)
    assert pathdb.plan(leaf).files[0].size is None  # no HEAD: no size, the structure is still checked
    emulator.fail("head", 200, body=b"<html>Log in</html>")
    with pytest.raises(SourceError, match=r"web page instead of the file"):
        pathdb.plan(leaf)
    emulator.fail("head", 405)
    assert download(pathdb, [leaf], tmp_path).ok


def test_an_md5_where_pathdb_has_one_is_checked(catalogue: Catalogue, tmp_path: Path) -> None:
    small = Catalogue(copy.deepcopy(catalogue.collections), copy.deepcopy(catalogue.slides[:3]))
    with PathDbEmulator(small, md5=True) as e:
        source = source_of(e)
        slide = small.slides[0]
        manifest = source.resolve(Selection.of(source.pointer(slide.collection, slide.subject)))
        assert all(
            leaf.fingerprint.checksum and leaf.fingerprint.checksum.startswith("md5:") for leaf in manifest
        )
        e.corrupt(slide.nid, "flip")
        gets = e.requests["files"]
        report = download(source, manifest, tmp_path, layout="{slide}")
        assert report.ok and e.requests["files"] - gets == len(manifest) + 1  # the bad copy fetched again


def test_a_slide_changed_since_resolving_is_not_downloaded(fresh: PathDbEmulator, tmp_path: Path) -> None:
    source = source_of(fresh, cache_seconds=0)
    replaced, removed = fresh.slides[0], fresh.slides[1]
    manifest = source.resolve(
        Selection.of(
            source.pointer(replaced.collection, replaced.subject, replaced.imageid),
            source.pointer(removed.collection, removed.subject, removed.imageid),
        )
    )
    fresh.advance(3600)
    fresh.replace_slide(replaced.nid)
    fresh.remove_slide(removed.nid)
    leaves = {leaf.path[-1]: leaf for leaf in manifest}
    with pytest.raises(IntegrityError, match=r"replaced \(a new file\).*check the set for updates"):
        source.plan(leaves[replaced.imageid])
    with pytest.raises(SourceError, match=r"no longer lists slide"):
        source.plan(leaves[removed.imageid])
    report = download(source, manifest, tmp_path)
    assert not report.ok and len(report.failed) == 2 and files_under(tmp_path) == []


# -- tracking -----------------------------------------------------------------------------------------
def test_track_sees_new_replaced_edited_and_removed_slides(fresh: PathDbEmulator) -> None:
    source = source_of(fresh)
    cptac = sorted({s.subject for s in fresh.slides if s.collection == CPTAC})
    selection = Selection.of(source.pointer(CPTAC), source.pointer(LUAD, fresh.slides[0].subject))
    base = source.resolve(selection)
    since = fresh.now()
    unchanged = source.track(selection, base, since)
    assert unchanged.manifest == base and not unchanged.notes and "PathDB as of" in unchanged.state
    fresh.advance(86_400)
    in_cptac = [s for s in fresh.slides if s.collection == CPTAC]
    fresh.add_slide(CPTAC, cptac[0])
    fresh.add_slide(CPTAC, "C3L-99999")  # a new subject
    fresh.add_slide(LUAD, "TCGA-99-9999")  # outside the set
    fresh.replace_slide(in_cptac[0].nid)
    fresh.touch_slide(in_cptac[1].nid)
    fresh.remove_slide(in_cptac[2].nid)
    fresh.touch_collection(CPTAC)
    tracked = source.track(selection, base, since)
    assert tracked.manifest == source.resolve(selection)
    changed = {leaf.path for leaf in tracked.manifest} ^ {leaf.path for leaf in base}
    assert len(changed) == 3  # two new, one removed
    assert f"{CPTAC}: +2 slides, 1 replaced (new file), 1 edited (same file), 1 removed" in tracked.notes
    assert any("marks CPTAC-LUAD as updated" in note for note in tracked.notes)
    edited = tracked.manifest.get("pathology", (CPTAC, in_cptac[1].subject, in_cptac[1].imageid))
    before = base.get("pathology", (CPTAC, in_cptac[1].subject, in_cptac[1].imageid))
    assert edited is not None and before is not None
    assert edited.fingerprint.version == before.fingerprint.version  # the same file...
    assert edited.fingerprint.released != before.fingerprint.released  # ...edited later
    # A collection PathDB no longer lists: its slides are gone, and the check says why.
    fresh.catalogue.collections = [c for c in fresh.catalogue.collections if c.name != LUAD]
    gone = source.track(selection, tracked.manifest, fresh.now())
    assert {leaf.path[0] for leaf in gone.manifest} == {CPTAC}
    assert any("no longer lists TCGA-LUAD" in note for note in gone.notes)


# -- joins --------------------------------------------------------------------------------------------
def test_join_patients_and_data_kinds_follow_the_catalogue(
    pathdb: PathologySource, emulator: PathDbEmulator, catalogue: Catalogue
) -> None:
    import duckdb
    import idc_index_data

    idc = {
        row[0]
        for row in duckdb.sql(
            f"SELECT DISTINCT PatientID FROM '{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}' "
            "WHERE Modality = 'SM' AND collection_id = 'tcga_luad'"
        ).fetchall()
    }
    left_out = set(catalogue.missing[LUAD])
    assert left_out and left_out < idc
    cohort = [*sorted(idc), "TCGA-00-NONE"]
    lists = emulator.requests["listofimages"]
    joined = pathdb.join_patients(Pointer.of("pathology", LUAD), cohort)
    assert set(joined) == idc - left_out
    assert all(paths == [(LUAD, patient)] for patient, paths in joined.items())
    everywhere = pathdb.join_patients(Pointer.of("pathology"), cohort)
    assert set(everywhere) == set(joined)  # CPTAC's subjects are named otherwise
    (kind,) = pathdb.data_kinds(Pointer.of("pathology", LUAD), cohort)
    assert (kind.label, kind.category, kind.filter, kind.size) == ("slide", "pathology", None, None)
    assert kind.patients == frozenset(joined)
    assert kind.leaves == sum(s.collection == LUAD for s in catalogue.slides)
    assert pathdb.data_kinds(Pointer.of("pathology", LUAD), ["TCGA-00-NONE"]) == []
    pages = math.ceil(sum(s.collection == LUAD for s in catalogue.slides) / PAGE_SIZE) + 1
    cptac = math.ceil(sum(s.collection == CPTAC for s in catalogue.slides) / PAGE_SIZE) + 1
    assert emulator.requests["listofimages"] - lists == pages + cptac  # each listing once (cached)
    with pytest.raises(ValidationError, match=r"above its subjects"):
        pathdb.join_patients(Pointer.of("pathology", LUAD, "TCGA-05-4244"), cohort)
    assert pathdb.patient_level == "subject"


# -- faults -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "kind", "times", "message"),
    [
        (200, b"<html><body>Site under maintenance</body></html>", "text/html; charset=UTF-8", 1, "web page"),
        (200, b'[{"tid":', "application/json", 1, "not JSON"),
        (200, b'{"message":"Access denied"}', "application/json", 1, "refused .*Access denied"),
        (200, b'[{"name":[{"value":"X"}]}]', "application/json", 1, "not one"),
        (503, None, "text/html", 4, r"503 .*after retries"),
        (404, None, "text/html", 1, "404"),
        (403, None, "text/html", 1, "refused access"),
    ],
)
def test_faults_are_clear_errors(
    pathdb: PathologySource,
    emulator: PathDbEmulator,
    status: int,
    body: bytes | None,
    kind: str,
    times: int,
    message: str,
) -> None:
    emulator.fail("collections", status, times, body, kind)
    try:
        with pytest.raises(SourceError, match=message):
            pathdb.browse()
    finally:
        emulator.clear_faults()


def test_busy_answers_are_retried(pathdb: PathologySource, emulator: PathDbEmulator) -> None:
    before = emulator.requests["listofimages"]
    emulator.fail("listofimages", 503, 2)
    emulator.fail("listofimages", 429, 1, headers={"Retry-After": "0"})
    assert len(pathdb.slides(CPTAC, fresh=True)) == sum(s.collection == CPTAC for s in emulator.slides)
    pages = math.ceil(sum(s.collection == CPTAC for s in emulator.slides) / PAGE_SIZE) + 1
    assert emulator.requests["listofimages"] - before == pages + 3


def test_a_page_that_never_ends_is_refused(pathdb: PathologySource, emulator: PathDbEmulator) -> None:
    luad = emulator.collection(LUAD)
    repeated = requests.get(f"{emulator.url}listofimages/{luad.tid}?_format=json", timeout=5).content
    emulator.fail("listofimages", 200, 2, repeated, "application/json")
    try:
        with pytest.raises(SourceError, match=r"repeated the slides"):
            pathdb.slides(LUAD, fresh=True)
    finally:
        emulator.clear_faults()


def test_an_unreachable_pathdb_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = PathologySource(base_url=f"http://127.0.0.1:{port}/", backoff=0.01)
    with pytest.raises(ArchiveUnreachable, match=r"PathDB \(127.0.0.1:\d+\) cannot be reached") as caught:
        source.browse()
    assert caught.value.host == f"127.0.0.1:{port}"


def test_the_tiff_check(tmp_path: Path, catalogue: Catalogue) -> None:
    data = slide_bytes(catalogue.slides[0])
    good = tmp_path / "good.svs"
    good.write_bytes(data)
    assert _tiff_problem(good) is None
    short = tmp_path / "short.svs"
    short.write_bytes(data[: len(data) * 3 // 4])
    assert "before a tile or strip" in (_tiff_problem(short) or "")
    page = tmp_path / "page.svs"
    page.write_bytes(b"<!DOCTYPE html><html>Login</html>")
    assert "web page" in (_tiff_problem(page) or "")
    # A directory whose "next" points at itself.
    looped = data[:4] + (8).to_bytes(4, "little") + (0).to_bytes(2, "little") + (8).to_bytes(4, "little")
    (tmp_path / "loop.tif").write_bytes(looped)
    assert "loop" in (_tiff_problem(tmp_path / "loop.tif") or "")


# -- the kind -----------------------------------------------------------------------------------------
def test_the_kind_and_its_options(tmp_path: Path, emulator: PathDbEmulator) -> None:
    described = describe()["pathology"]
    assert described == KIND and described.secret is None
    options = {o.name: o for o in described.options}
    assert options["base_url"].default == DEFAULT_URL and options["connections"].kind == "int"
    assert all(o.title and o.help and not o.required for o in described.options)
    source = build_one(
        {
            "kind": "pathology",
            "id": "slides",
            "options": {"base_url": emulator.url, "collections": "CPTAC-LUAD, "},
        },
        tmp_path,
        None,
    )
    assert isinstance(source, PathologySource) and source.source_id == "slides"
    assert source.only == ("CPTAC-LUAD",) and source.connections == 4
    assert create("p", {"connections": "2"}, None, tmp_path).connections == 2
    with pytest.raises(ValidationError, match=r"whole number"):
        create("p", {"connections": "many"}, None, tmp_path)
    with pytest.raises(ValidationError, match=r"has no option 'token'"):
        build_one({"kind": "pathology", "options": {"token": "x"}}, tmp_path, None)
