"""Update tracking against a real PACS: instances uploaded to Orthanc during the test become an
archive update of a set that points into it (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.sources.dicomweb import DicomWebSource
from tests.helpers.dicom import make_series
from tests.helpers.orthanc import Orthanc
from tests.helpers.service import World, world

pytestmark = [
    pytest.mark.skipif(not Orthanc.available(), reason="Orthanc is not installed (make test installs it)"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        server.upload(make_series(tmp_path / "first", "P1", "1.2.1", "1.2.1.1", 3, modality="CT"))
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path / "lab") as w:
        yield w


def test_instances_uploaded_to_the_pacs_become_an_update(pacs: Orthanc, lab: World, tmp_path: Path) -> None:
    source = DicomWebSource("pacs", pacs.dicomweb, auth=pacs.auth)
    service = Service(
        lab.store, Identity.generate("rad"), sources={"pacs": source}, settings=lab.settings_file("rad")
    )
    try:
        service.register()
        set_id = service.sets.create("PACS cohort", add=[Pointer.of("pacs", "P1")])
        [unchanged] = service.tracking.check([set_id])
        assert unchanged.drift is None and unchanged.error == ""
        # A new series in the study and one more instance of the first series.
        pacs.upload(
            [
                *make_series(tmp_path / "later", "P1", "1.2.1", "1.2.1.2", 2, modality="SEG", body_part=None),
                *make_series(tmp_path / "more", "P1", "1.2.1", "1.2.1.1", 4, modality="CT")[3:],
            ]
        )
        [found] = service.tracking.check([set_id])
        assert found.new and found.drift is not None
        assert (found.drift.added, found.drift.revised, found.drift.removed) == (1, 1, 0)
        _, diff = service.tracking.diff(set_id)
        assert [leaf.path[-1] for leaf in diff.added] == ["1.2.1.2"]
        assert [(old.fingerprint.count, new.fingerprint.count) for old, new in diff.changed] == [(3, 4)]
        # Orthanc down: the check fails, says so, and the update found before stays as it was.
        pacs.stop()
        [failed] = service.tracking.check([set_id])
        assert failed.error and failed.drift == found.drift
        assert "(last check failed: DICOMweb" in service.tracking.status(set_id).line
    finally:
        service.close()
