"""Previews of series and readable labels, on real data: pydicom's bundled CT and JPEG 2000 files
in a local folder (``LocalFolderSource``), and IDC's installed index for study and series names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from mediator_desktop.core.errors import NotFound, SourceError
from mediator_desktop.core.labels import human_age, patient_label, readable, series_label, study_label
from mediator_desktop.core.previews import PreviewCache
from mediator_desktop.core.source import BrowseItem
from mediator_desktop.sources.local import LocalFolderSource
from mediator_desktop.sources.thumbnail import render

pytestmark = pytest.mark.timeout(60)


def real(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return Path(str(path))


def test_labels_read_as_imaging_people_read_them() -> None:
    assert study_label("20040312", "CT CHEST W CONTRAST") == "2004-03-12 CT CHEST W CONTRAST"
    assert series_label("CT", "3", "1.25mm lung", 245) == "CT 3: 1.25mm lung, 245 images"
    assert series_label("SM", None, None, "1") == "SM, 1 image"
    assert patient_label("LIDC-IDRI-0001", "067Y", "F") == "LIDC-IDRI-0001 (67 y, F)"
    assert human_age("006M") == "6 mo"
    item = BrowseItem("1.2.3.4.5", "series", "CT series", 1, 10, (("Modality", "CT"), ("ImageCount", "2")))
    assert readable(item) == "CT, 2 images"
    assert readable(BrowseItem("1.2.3", "study", "")) == "1.2.3"  # nothing known: the UID


def test_idc_browse_names_studies_and_series_from_the_index() -> None:
    import duckdb
    import idc_index_data

    from mediator_desktop.sources.idc import IdcSource

    row = duckdb.sql(
        f"select collection_id, PatientID, StudyInstanceUID, SeriesInstanceUID, StudyDate, "
        f"StudyDescription, Modality, SeriesNumber, SeriesDescription, instanceCount "
        f"from '{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}' where collection_id = 'qin_lung_ct' "
        f"and Modality = 'CT' and StudyDescription is not null and SeriesDescription is not null "
        f"order by SeriesInstanceUID limit 1"
    ).fetchone()
    assert row is not None
    collection, patient, study, series, date, study_text, modality, number, text, count = row
    source = IdcSource()
    studies = {i.key: readable(i) for i in source.browse((collection, patient)).items}
    assert studies[study] == study_label(date, study_text)
    assert studies[study].startswith(date)
    items = {i.key: readable(i) for i in source.browse((collection, patient, study)).items}
    assert items[series] == series_label(modality, number, text, count)
    assert items[series].startswith(f"CT {number}: ")


@pytest.fixture
def folder(tmp_path: Path) -> LocalFolderSource:
    root = tmp_path / "dicom"
    (root / "ct").mkdir(parents=True)
    shutil.copy(real("CT_small.dcm"), root / "ct" / "1.dcm")
    (root / "j2k").mkdir()
    shutil.copy(real("JPEG2000.dcm"), root / "j2k" / "1.dcm")
    source = LocalFolderSource("lab", root, tmp_path / "index.sqlite")
    source.rescan()
    return source


def series_paths(source: LocalFolderSource) -> dict[str, tuple[str, ...]]:
    """Series path by the first letters of its folder's modality (CT, the JPEG 2000 one)."""
    out = {}
    for patient in source.browse().items:
        for study in source.browse((patient.key,)).items:
            for series in source.browse((patient.key, study.key)).items:
                files = source.files_of((patient.key, study.key, series.key))
                out[files[0].parent.name] = (patient.key, study.key, series.key)
    return out


def test_a_ct_series_previews_as_a_windowed_png(folder: LocalFolderSource) -> None:
    data = folder.preview(series_paths(folder)["ct"])
    assert data is not None and data.startswith(b"\x89PNG")
    assert render(real("CT_small.dcm")) == data


def test_an_undecodable_series_says_why(folder: LocalFolderSource) -> None:
    with pytest.raises(SourceError, match=r"cannot decode JPEG 2000"):
        folder.preview(series_paths(folder)["j2k"])


def test_a_removed_series_says_it_is_gone(folder: LocalFolderSource) -> None:
    path = series_paths(folder)["ct"]
    shutil.rmtree(folder.root / "ct")
    with pytest.raises(NotFound, match=r"removed from the folder"):
        folder.preview(path)


def test_the_cache_keeps_previews_within_its_bound(tmp_path: Path) -> None:
    cache = PreviewCache(tmp_path / "previews", max_bytes=10_000)
    for i in range(30):
        cache.put("lab", ("p", "s", str(i)), bytes(1000))
    assert cache.size <= 10_000
    assert cache.get("lab", ("p", "s", "29")) == bytes(1000)  # the newest stay
    assert cache.get("lab", ("p", "s", "0")) is None  # the oldest went
