"""DICOMweb previews against a real Orthanc (with its DICOMweb plugin): the middle instance by
Instance Number, rendered by the server (WADO-RS ``/rendered``); behind a proxy that refuses
``/rendered`` (a server without it), the instance fetched and rendered here; a removed series is
not found; bytes that are not DICOM say why."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from PySide6.QtGui import QImage

from mediator_desktop.core.errors import NotFound, SourceError
from mediator_desktop.sources.dicomweb import PREVIEW_SIDE, DicomWebSource
from mediator_desktop.sources.thumbnail import render
from tests.helpers.dicom import make_series
from tests.helpers.net import LoopbackServer
from tests.helpers.orthanc import Orthanc

pytestmark = pytest.mark.timeout(120)

#: The series of pydicom's real CT slice (CT_small.dcm), and a made-up series of three.
CT_PATH = (
    "1CT1",
    "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
    "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
)
THREE = ("P1", "1.2.1", "1.2.1.1")
GONE = ("P9", "1.2.9", "1.2.9.1")


class Proxy(LoopbackServer):
    """Forwards to Orthanc, as a server without WADO-RS rendering would answer (404 for
    ``/rendered``); ``garbage``: an instance's body is replaced by bytes that are not DICOM."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.garbage = False
        self.paths: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.paths.append(self.path)
                if self.path.split("?")[0].endswith("/rendered"):
                    return self._answer(404, "text/plain", b"Unknown resource")
                headers = {k: v for k, v in self.headers.items() if k in ("Accept", "Authorization")}
                upstream = requests.get(proxy.target + self.path, headers=headers, timeout=30)
                body, kind = upstream.content, upstream.headers.get("Content-Type", "")
                if proxy.garbage and "/instances/" in self.path:
                    body, kind = b"<html>not DICOM</html>" + bytes(200), "application/dicom"
                self._answer(upstream.status_code, kind, body)

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not Orthanc.available():
        pytest.skip("Orthanc is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(root).start()
    ct = root / "data" / "ct.dcm"
    ct.parent.mkdir(parents=True)
    shutil.copy(str(get_testdata_file("CT_small.dcm")), ct)
    three = make_series(root / "data", *THREE, 3, modality="CT")
    for i, path in enumerate(three):  # each with a bright band of its own, so their pictures differ
        ds = pydicom.dcmread(path)
        pixels = np.zeros((ds.Rows, ds.Columns), dtype=np.uint16)
        pixels[i * 16 : (i + 1) * 16, :] = 1000
        ds.PixelData = pixels.tobytes()
        ds.save_as(path)
    files = [ct, *three]
    server.upload(files)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(orthanc: Orthanc) -> Iterator[Proxy]:
    with Proxy(orthanc.url) as started:
        yield started


def source(url: str, orthanc: Orthanc) -> DicomWebSource:
    return DicomWebSource("pacs", url, auth=orthanc.auth, backoff=0.01)


def test_the_ct_path_is_pydicoms_ct_slice() -> None:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")), stop_before_pixels=True)
    assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == CT_PATH


def test_the_server_renders_the_middle_instance(orthanc: Orthanc) -> None:
    pacs = source(orthanc.dicomweb, orthanc)
    data = pacs.preview(CT_PATH)
    assert data is not None and data.startswith((b"\x89PNG", b"\xff\xd8\xff"))
    image = QImage.fromData(data)
    assert not image.isNull() and 0 < max(image.width(), image.height()) <= PREVIEW_SIDE
    # Of three instances numbered 1, 2, 3: the server's picture of the second.
    middle = pacs.preview(THREE)
    own = requests.get(
        f"{orthanc.dicomweb}/studies/{THREE[1]}/series/{THREE[2]}/instances/{THREE[2]}.2/rendered"
        f"?viewport={PREVIEW_SIDE},{PREVIEW_SIDE}",
        headers={"Accept": "image/png"},
        auth=orthanc.auth,
        timeout=30,
    )
    assert own.ok and middle == own.content
    first = requests.get(
        own.url.replace(f"{THREE[2]}.2/rendered", f"{THREE[2]}.1/rendered"),
        headers={"Accept": "image/png"},
        auth=orthanc.auth,
        timeout=30,
    )
    assert first.ok and first.content != own.content  # the pictures tell the instances apart
    assert pacs.preview(THREE[:2]) is None  # a study: nothing to picture


def test_without_rendering_the_instance_is_rendered_here(orthanc: Orthanc, proxy: Proxy) -> None:
    pacs = source(proxy.url + "/dicom-web", orthanc)
    data = pacs.preview(CT_PATH)
    assert data is not None and data.startswith(b"\x89PNG")
    assert data == render(Path(str(get_testdata_file("CT_small.dcm"))))  # the real slice, windowed
    assert any(p.split("?")[0].endswith("/rendered") for p in proxy.paths)  # asked first
    proxy.paths.clear()
    assert pacs.preview(THREE) is not None
    fetched = [p for p in proxy.paths if "/instances/" in p and not p.split("?")[0].endswith("/rendered")]
    assert [p.rsplit("/", 1)[-1] for p in fetched] == [f"{THREE[2]}.2"]


def test_a_removed_series_is_not_found(orthanc: Orthanc, tmp_path: Path) -> None:
    orthanc.upload(make_series(tmp_path, *GONE, 2, modality="MR"))
    pacs = source(orthanc.dicomweb, orthanc)
    assert pacs.preview(GONE) is not None
    found = requests.post(f"{orthanc.url}/tools/lookup", data=GONE[2], auth=orthanc.auth, timeout=30)
    (series,) = [r for r in found.json() if r["Type"] == "Series"]
    requests.delete(f"{orthanc.url}/series/{series['ID']}", auth=orthanc.auth, timeout=30).raise_for_status()
    with pytest.raises(NotFound, match=rf"no longer holds series {GONE[2]}"):
        pacs.preview(GONE)


def test_bytes_that_are_not_dicom_say_why(orthanc: Orthanc, proxy: Proxy) -> None:
    proxy.garbage = True
    pacs = source(proxy.url + "/dicom-web", orthanc)
    with pytest.raises(SourceError, match=r"cannot be pictured: not readable as DICOM"):
        pacs.preview(CT_PATH)
