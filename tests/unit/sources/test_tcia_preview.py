"""TCIA previews against the NBIA emulator (real IDC rows of LIDC-IDRI, images made with pydicom):
one image of the series by ``getSOPInstanceUIDs`` and ``getSingleImage``, and the emulator's two
endpoints answering as NBIA's code does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from mediator_desktop.core.errors import NotFound, SourceError
from mediator_desktop.sources.tcia import TciaSource, _uid_order
from mediator_desktop.sources.thumbnail import render
from tests.helpers.tcia_emulator import Series, TciaEmulator, catalogue_from_idc

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def emulator() -> Iterator[TciaEmulator]:
    with TciaEmulator(catalogue_from_idc(("lidc_idri",), patients=1, max_images=5)) as e:
        yield e


@pytest.fixture
def tcia(emulator: TciaEmulator) -> TciaSource:
    return TciaSource(base_url=emulator.v4, backoff=0.01, timeout=(2.0, 5.0))


def a_series(emulator: TciaEmulator) -> Series:
    """A series of several images (the middle one is not the first)."""
    return max(emulator.series, key=lambda s: (s.image_count, s.uid))


def path_of(s: Series) -> tuple[str, ...]:
    return (s.collection, s.patient, s.study, s.uid)


def test_a_series_previews_as_its_middle_image(tcia: TciaSource, emulator: TciaEmulator) -> None:
    s = a_series(emulator)
    assert s.image_count >= 3
    emulator.reset_requests()
    data = tcia.preview(path_of(s))
    assert data is not None and data.startswith(b"\x89PNG")
    files = dict(s.files())
    middle = sorted(files, key=_uid_order)[len(files) // 2]
    assert data == render(files[middle])
    # Two requests, one image: never the series' zip.
    assert emulator.requests == {"getSOPInstanceUIDs": 1, "getSingleImage": 1}
    version, endpoint, params = emulator.queries[-1]
    assert (version, endpoint) == ("v4", "getSingleImage")
    assert params == {"SeriesInstanceUID": s.uid, "SOPInstanceUID": middle}
    assert tcia.preview(path_of(s)[:3]) is None  # a study: nothing to picture


def test_a_removed_series_is_not_found(tcia: TciaSource, emulator: TciaEmulator) -> None:
    s = a_series(emulator)
    emulator.delete_series(s.uid)
    with pytest.raises(NotFound, match=rf"TCIA no longer holds series {s.uid}"):
        tcia.preview(path_of(s))


def test_garbage_instead_of_an_image_says_why(tcia: TciaSource, emulator: TciaEmulator) -> None:
    s = a_series(emulator)
    emulator.faults.add("getSingleImage", "garbage")
    with pytest.raises(SourceError, match=r"cannot be pictured: not readable as DICOM") as caught:
        tcia.preview(path_of(s))
    assert s.uid in str(caught.value)


def test_a_maintenance_page_says_what_was_sent(tcia: TciaSource, emulator: TciaEmulator) -> None:
    emulator.faults.add("getSingleImage", "html")
    with pytest.raises(SourceError, match=r"not readable as DICOM .*\(it sent text/html\)"):
        tcia.preview(path_of(a_series(emulator)))


def test_an_image_refused_while_the_series_is_listed_is_a_source_error(
    tcia: TciaSource, emulator: TciaEmulator
) -> None:
    emulator.faults.add("getSingleImage", "500", "500", "500", "500")
    with pytest.raises(SourceError, match=r"answered 500 .* restricted collections without a token"):
        tcia.preview(path_of(a_series(emulator)))


def test_the_emulator_answers_both_endpoints_as_nbia_does(emulator: TciaEmulator) -> None:
    s = a_series(emulator)
    listed = requests.get(emulator.v4 + "getSOPInstanceUIDs", {"SeriesInstanceUID": s.uid}, timeout=10)
    assert listed.status_code == 200 and listed.headers["Content-Type"] == "application/json"
    assert listed.json() == [{"SOPInstanceUID": sop} for sop, _ in s.files()]
    assert "\\/" not in listed.text and " " not in listed.text  # Jettison: compact
    gone = requests.get(emulator.v4 + "getSOPInstanceUIDs", {"SeriesInstanceUID": "1.2.3"}, timeout=10)
    assert (gone.status_code, gone.content, gone.headers.get("Content-Type")) == (200, b"", None)
    missing = requests.get(emulator.v4 + "getSOPInstanceUIDs", timeout=10)
    assert missing.status_code == 400
    assert missing.text == "A parameter, SeriesInstanceUID is required for this API call."

    sop, data = s.files()[0]
    image = requests.get(
        emulator.v4 + "getSingleImage", {"SeriesInstanceUID": s.uid, "SOPInstanceUID": sop}, timeout=10
    )
    assert image.status_code == 200 and image.content == data
    assert image.headers["Content-Type"] == "application/dicom"
    assert image.headers["Content-Disposition"] == f"attachment; filename={sop}.dcm"  # unquoted
    unknown = requests.get(
        emulator.v4 + "getSingleImage", {"SeriesInstanceUID": s.uid, "SOPInstanceUID": "1.2.3"}, timeout=10
    )
    assert unknown.status_code == 500 and unknown.headers["Content-Type"] == "text/plain"
    assert unknown.text.startswith("Server was not able to process your request\n")
    empty = requests.get(
        emulator.v4 + "getSingleImage", {"SeriesInstanceUID": s.uid, "SOPInstanceUID": ""}, timeout=10
    )
    assert empty.status_code == 500  # present but empty is not "missing" to NBIA
    only_series = requests.get(emulator.v4 + "getSingleImage", {"SeriesInstanceUID": s.uid}, timeout=10)
    assert only_series.status_code == 400
    assert (
        only_series.text
        == "A parameter, SeriesInstanceUID and SOPInstanceUID, are required for this API call."
    )
    extra = requests.get(
        emulator.v4 + "getSingleImage",
        {"SeriesInstanceUID": s.uid, "SOPInstanceUID": sop, "format": "json"},
        timeout=10,
    )
    assert extra.status_code == 400 and extra.text.startswith("Invalid query parameter: 'format'.")
    v1 = requests.get(
        emulator.url + "v1/getSingleImage", {"SeriesInstanceUID": s.uid, "SOPInstanceUID": sop}, timeout=10
    )
    assert v1.status_code == 200 and v1.content == data
