"""Archives added, tested, rescanned and removed live through the service, and pointers that
select nothing caught before anything is committed (issue 16)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.errors import NotFound, SourceError, ValidationError
from mediator_desktop.core.events import SourceIndexing, SourcesChanged, UserRegistered
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import default_display_name
from tests.helpers.dicom import make_series
from tests.helpers.service import SOURCE, World, recording


@pytest.fixture
def bob(lab: World) -> Service:
    return lab.service("bob")


@pytest.fixture
def node_service(lab: World) -> Service:
    """A service as a node builds it: its archives built from the settings, added live."""
    return lab.node_service("carol")


def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    make_series(folder, "PAT-1", "1.9.1", "1.9.1.1", 3, modality="CT", pixels=8)
    make_series(folder, "PAT-2", "1.9.2", "1.9.2.1", 2, modality="MR", pixels=8)
    return folder


def test_a_local_folder_is_added_live_indexes_itself_and_is_removed(
    node_service: Service, tmp_path: Path
) -> None:
    archives = node_service.archives
    assert {"idc", "tcia", "dicomweb", "local"} <= {k.name for k in archives.kinds()}
    folder = scans(tmp_path)
    assert f"{folder}" in archives.test(kind="local", options={"folder": str(folder)})
    finished = threading.Event()
    node_service.events.subscribe(lambda e: e.finished and finished.set(), SourceIndexing)
    with recording(node_service, SourcesChanged) as changed:
        source_id = archives.add("local", {"folder": str(folder)})
    assert source_id == "local" and changed == [SourcesChanged(("local",), (), seq=changed[0].seq)]
    saved = json.loads(node_service.settings.path.read_text())
    assert saved["sources"] == [{"kind": "local", "id": "local", "options": {"folder": str(folder)}}]
    # first use: browsing waits for the first index instead of answering "(none of 0)"
    page = archives.browse("local")
    assert [i.key for i in page.items] == ["PAT-1", "PAT-2"]
    assert finished.wait(10)
    # the set resolves through it, and a second archive of the kind gets a numbered id
    outcome = node_service.sets.create_from("Scans", add=[Pointer.of("local", "PAT-1")])
    assert outcome.leaves == 1 and outcome.warnings == ()
    assert archives.add("local", {"folder": str(folder)}) == "local-2"
    with pytest.raises(ValidationError, match="exists already"):
        archives.add("local", {"folder": str(folder)}, source_id="local")
    make_series(folder, "PAT-3", "1.9.3", "1.9.3.1", 1, modality="CT", pixels=8)
    report = archives.rescan("local")
    assert report.files == 6 and "indexed 6 files" in report.summary()
    assert archives.indexes("local")
    with recording(node_service, SourcesChanged) as changed:
        archives.remove("local-2")
    assert [e.removed for e in changed] == [("local-2",)]
    assert archives.ids() == ["local"]
    with pytest.raises(NotFound, match="local-2"):
        archives.remove("local-2")


def test_a_bad_archive_is_refused_before_anything_is_saved(node_service: Service, tmp_path: Path) -> None:
    archives = node_service.archives
    with pytest.raises(ValidationError, match=r"no option 'folders'.*folder"):
        archives.add("local", {"folders": "/x"})
    with pytest.raises(ValidationError, match="needs folder"):
        archives.add("local", {})
    with pytest.raises(ValidationError, match=r"unknown kind of archive 'pacs'.*dicomweb"):
        archives.add("pacs", {})
    with pytest.raises(ValidationError, match="archive id"):
        archives.add("local", {"folder": str(tmp_path)}, source_id="a/b")
    assert archives.ids() == [] and not node_service.settings.path.exists()
    with pytest.raises(SourceError, match="not a folder"):
        archives.test(kind="local", options={"folder": str(tmp_path / "nowhere")})


def test_a_path_that_does_not_exist_names_the_closest_keys(lab: World, alice: Service) -> None:
    with pytest.raises(NotFound, match=r"no patient 'p1' in lab; did you mean 'P1'\?"):
        alice.sets.create_from("Typo", add=[Pointer.of(SOURCE, "p1")])
    with pytest.raises(NotFound, match=r"no study '9.9' in lab/P1; see `mediator sources browse lab P1`"):
        alice.sets.create_from("Typo", add=[Pointer.of(SOURCE, "P1", "9.9")])
    assert alice.sets.list("mine") == []  # nothing was created


def test_a_filter_that_matches_nothing_warns_or_with_strict_refuses(lab: World, alice: Service) -> None:
    outcome = alice.sets.create_from("Nothing", add=[Pointer.of(SOURCE, Modality="XX")])
    assert outcome.leaves == 0
    assert "no series there has Modality=XX; values there: CT, MR" in outcome.warnings[0]
    assert "selects no data (0 leaves)" in outcome.warnings[1]
    with pytest.raises(ValidationError, match=r"Modality=XX.*--strict"):
        alice.sets.change(outcome.set_id, add=[Pointer.of(SOURCE, Modality="XX")], strict=True)
    # downloading it says so instead of "succeeding" with 0 files
    with pytest.raises(ValidationError, match="selects no data"):
        alice.downloads.start(DownloadRequest(outcome.set_id, lab.root / "out"))
    fine = alice.sets.change(outcome.set_id, add=[Pointer.of(SOURCE, "P1")])
    assert fine.version == 2 and fine.leaves == 1 and fine.warnings == ()


def test_set_names_are_checked_in_one_line(alice: Service, bob: Service) -> None:
    set_id = alice.sets.create("Lung CT")
    with pytest.raises(ValidationError, match="you already have a set named 'Lung CT'"):
        alice.sets.create("lung ct")
    bob.sets.create("Lung CT")  # another owner's set may have the name
    for bad, why in (("", "empty"), ("a\tb", "control characters"), ("x" * 201, "at most 200")):
        with pytest.raises(ValidationError, match=why):
            alice.sets.create(bad)
    other = alice.sets.create("Other")
    with pytest.raises(ValidationError, match="already have"):
        alice.sets.rename(other, "Lung CT")
    alice.sets.rename(set_id, "Lung CT")  # its own name again is fine
    alice.sets.update(set_id, add=[Pointer.of(SOURCE, "P1")])
    assert alice.sets.get(alice.sets.duplicate(set_id)).name == "Lung CT (fork)"
    assert alice.sets.get(alice.sets.duplicate(set_id)).name == "Lung CT (fork) 2"
    with pytest.raises(NotFound, match="'Other' has no versions yet"):
        alice.sets.version(other)


def test_display_names_tell_members_apart(alice: Service, bob: Service) -> None:
    with pytest.raises(ValidationError, match="is called 'alice'"):
        bob.settings.change(display_name="Alice")
    assert bob.display_name == "bob"
    with recording(alice, UserRegistered) as renamed:  # the peers panel redraws on it
        bob.settings.change(display_name="Bob Marley (lab-ws-2)")
    assert alice.users()[bob.key_id] == "Bob Marley (lab-ws-2)"
    assert [e.key_id for e in renamed] == [bob.key_id]
    default = default_display_name()
    assert default.endswith(")") and " (" in default
