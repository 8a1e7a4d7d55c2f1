"""Issue 21: a cohort and its clinical rows come from one version of their table.

Resolving a set whose clinical rule joins archives takes two steps: the expansion asks the table
which patients the rule selects and the archives where they are; then each archive resolves its
part, the table its rows. A colleague's new version of the table may reach this node between the
two. Here it lands exactly there, through the public API: TCIA (the NBIA emulator, over HTTP, with
the real ``TciaSource``) takes the colleague's upload before it answers the join's lookup of the
cohort's patients. The pass records the version it started with, whole (cohort and rows); the next
pass the new one, whole. Real one-node store, real services, real table engine.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mediator_desktop.core.clinical import Clinical, ClinicalSource, join_pointer, parse_conditions
from mediator_desktop.core.errors import NotFound
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.sources.clinical import PandasTables
from mediator_desktop.sources.tcia import TciaSource
from tests.helpers.service import World
from tests.helpers.tcia_emulator import Series, TciaEmulator

pytestmark = pytest.mark.timeout(120)

COLLECTION = "TRIAL-CT"
#: Version 1: P1 smokes. Version 2: P1 gave up, P2 took it up.
V1 = "PatientID,age,smoking\nP1,61,current\nP2,55,never\n"
V2 = "PatientID,age,smoking\nP1,61,former\nP2,55,current\n"
SMOKERS = join_pointer("trial", parse_conditions(["smoking=current"]), [Pointer.of("tcia", COLLECTION)])
#: The patients a set of the smokers holds, per archive, when one table version made it whole.
WHOLE = {
    1: {"clinical": ["P1"], "tcia": ["P1"]},
    2: {"clinical": ["P2"], "tcia": ["P2"]},
}


def _catalogue() -> list[Series]:
    """One CT series for each of P1 and P2 (sizes given: no DICOM is made)."""
    return [
        Series(
            COLLECTION,
            patient,
            f"1.2.{n}",
            f"1.2.{n}.1",
            "CT",
            "CHEST",
            "ACME",
            dt.date(2020, 1, n),
            None,
            dt.date(2024, 1, 2),
            2,
            file_size=20_000 + n,
        )
        for n, patient in ((1, "P1"), (2, "P2"))
    ]


class LandingTcia(TciaEmulator):
    """NBIA whose next listing of a whole collection (the join's lookup of a cohort's patients:
    ``getSeries`` without a ``PatientID``) waits, before it answers, for an upload to land."""

    def __init__(self, series: list[Series]) -> None:
        self._uploads: list[Callable[[], object]] = []
        self._uploads_lock = threading.Lock()
        self.landed = 0
        self.failures: list[Exception] = []
        super().__init__(series)

    def land_next(self, upload: Callable[[], object]) -> None:
        """Run ``upload`` (to its end) when the next collection listing comes, then answer it."""
        with self._uploads_lock:
            self._uploads.append(upload)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        if parts.path.endswith("/getSeries") and "PatientID" not in parse_qs(parts.query):
            with self._uploads_lock:
                upload = self._uploads.pop(0) if self._uploads else None
            if upload is not None:
                try:
                    upload()
                    self.landed += 1
                except Exception as exc:  # seen by the test, not lost on the server's thread
                    self.failures.append(exc)
                    raise
        super()._handle(request)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(tmp_path, stack)


@pytest.fixture
def tcia() -> Iterator[LandingTcia]:
    with LandingTcia(_catalogue()) as emulator:
        yield emulator
    assert not emulator.failures, emulator.failures


def _service(world: World, name: str, tcia: LandingTcia) -> Service:
    service = Service(
        world.store,
        Identity.generate(name),
        sources={"tcia": TciaSource(base_url=tcia.v4, backoff=0.01)},
        settings=world.settings_file(name),
        table_engine=PandasTables(),
    )
    world._stack.callback(service.close)
    service.register()
    return service


@pytest.fixture
def ann(world: World, tcia: LandingTcia) -> Service:
    return _service(world, "ann", tcia)


@pytest.fixture
def bob(world: World, tcia: LandingTcia) -> Service:
    """Ann's colleague, who uploads the table's new version (to the same store)."""
    return _service(world, "bob", tcia)


def _upload(service: Service, folder: Path, text: str) -> Callable[[], object]:
    """A new version of table ``trial`` with ``text``, added by ``service``'s user, when called."""

    def upload() -> object:
        path = Path(tempfile.mkdtemp(dir=folder)) / "trial.csv"
        path.write_text(text)
        return service.clinical.add(path, "trial")

    return upload


def _patients(manifest: Manifest) -> dict[str, list[str]]:
    """The patients of a set's leaves, per archive (the patient is the second key of both)."""
    out: dict[str, list[str]] = {}
    for leaf in manifest:
        out.setdefault(leaf.source_id, []).append(leaf.path[1])
    return {source_id: sorted(set(patients)) for source_id, patients in out.items()}


def _head(service: Service, set_id: str) -> Manifest:
    return service.sets.manifest(service.sets.version(set_id).manifest_id)


def _smokers_at_v1(ann: Service, folder: Path) -> str:
    _upload(ann, folder, V1)()
    set_id = ann.sets.create_from("smokers", add=[SMOKERS]).set_id
    assert _patients(_head(ann, set_id)) == WHOLE[1]
    return set_id


# -- the race, made to happen ------------------------------------------------------------------------
def test_a_check_overtaken_by_a_new_table_version_sees_the_old_one_whole_and_the_next_the_new(
    ann: Service, bob: Service, tcia: LandingTcia, tmp_path: Path
) -> None:
    set_id = _smokers_at_v1(ann, tmp_path)
    tcia.land_next(_upload(bob, tmp_path, V2))

    (first,) = ann.tracking.check([set_id])

    assert tcia.landed == 1 and ann.clinical.get("trial").number == 2  # v2 landed mid-check
    # The check began with version 1: its cohort and its rows, so nothing changed.
    assert not first.error and not first.new and first.drift is None, first.line()
    (second,) = ann.tracking.check([set_id])
    assert second.new and not second.error, second.line()
    assert _patients(ann.tracking.now(set_id)) == WHOLE[2]
    drift = ann.tracking.drift(set_id)
    assert drift is not None and (drift.added, drift.revised, drift.removed) == (2, 0, 2)


def test_a_set_committed_while_a_new_table_version_lands_holds_one_version_whole(
    ann: Service, bob: Service, tcia: LandingTcia, tmp_path: Path
) -> None:
    _upload(ann, tmp_path, V1)()
    tcia.land_next(_upload(bob, tmp_path, V2))

    outcome = ann.sets.create_from("smokers", add=[SMOKERS])

    assert tcia.landed == 1 and ann.clinical.get("trial").number == 2
    assert _patients(_head(ann, outcome.set_id)) == WHOLE[1]
    assert outcome.warnings == ()
    # Changing the set resolves it again: the version it commits is version 2, whole.
    later = ann.sets.change(outcome.set_id, message="the table moved on", expected_head=1)
    assert later.version == 2 and _patients(_head(ann, outcome.set_id)) == WHOLE[2]


def test_a_reproduction_overtaken_by_a_new_table_version_compares_one_version_whole(
    ann: Service, bob: Service, tcia: LandingTcia, tmp_path: Path
) -> None:
    set_id = _smokers_at_v1(ann, tmp_path)
    tcia.land_next(_upload(bob, tmp_path, V2))

    first = ann.tracking.reproduction(set_id)

    assert tcia.landed == 1
    assert first.identical and first.added == 0 and not first.error, first.summary()
    again = ann.tracking.reproduction(set_id)
    assert {(c.source_id, c.path[1], c.change) for c in again.changes} == {
        ("clinical", "P1", "removed"),
        ("tcia", "P1", "removed"),
    }
    assert again.added == 2, again.summary()


# -- the pinned views ------------------------------------------------------------------------------
def test_a_pinned_view_answers_the_tables_of_its_moment_whatever_lands_later(
    ann: Service, bob: Service, tmp_path: Path
) -> None:
    _upload(ann, tmp_path, V1)()
    source = ann.archives.get("clinical")
    assert isinstance(source, ClinicalSource)
    tables: Clinical = ann.clinical.pinned()
    view = source.pinned()
    assert view.pinned() is view and tables.pinned() is tables

    _upload(bob, tmp_path, V2)()
    (tmp_path / "other.csv").write_text("PatientID,x\nQ1,1\n")
    bob.clinical.add(tmp_path / "other.csv", "other")

    # The view: version 1, and no table added after its moment.
    assert [(t.name, t.number) for t in tables.tables()] == [("trial", 1)]
    assert tables.get("trial").number == 1 and len(tables.history("trial")) == 1
    assert tables.select("trial", {"smoking": "current"}) == ["P1"]
    with pytest.raises(NotFound, match=r"table 'trial' has no version 2 \(it has 1 to 1\)"):
        tables.get("trial", 2)
    with pytest.raises(NotFound, match=r"no clinical table 'other' \(the tables: 'trial'\)"):
        tables.get("other")
    smokers = Selection.of(SMOKERS)
    assert view.cohorts(smokers) == [(SMOKERS, ["P1"])]
    assert [leaf.path for leaf in view.resolve(smokers)] == [("trial", "P1")]
    assert [(item.key, "· v1 ·" in item.label) for item in view.browse().items] == [("trial", True)]
    assert view.filter_values("smoking", ("trial",)) == ["current", "never"]
    # The source itself, and a view pinned now: the latest versions.
    assert ann.clinical.get("trial").number == 2
    assert [leaf.path for leaf in source.resolve(smokers)] == [("trial", "P2")]
    assert source.pinned().cohorts(smokers) == [(SMOKERS, ["P2"])]
    assert source.filter_values("smoking", ("trial",)) == ["current", "former"]


def test_a_pinned_view_resolves_alike_on_many_threads_while_versions_land(
    ann: Service, bob: Service, tmp_path: Path
) -> None:
    _upload(ann, tmp_path, V1)()
    source = ann.archives.get("clinical")
    assert isinstance(source, ClinicalSource)
    view = source.pinned()
    everyone = Selection.of(Pointer.of("clinical", "trial"))
    expected = view.resolve(everyone)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(view.resolve, everyone) for _ in range(32)]
        for n in range(3):  # new versions land meanwhile: each a new age for P2
            _upload(bob, tmp_path, V1.replace("P2,55,", f"P2,{56 + n},"))()
        results = [f.result(timeout=60) for f in futures]
    assert {m.id for m in results} == {expected.id}
    assert ann.clinical.get("trial").number == 4
    assert view.resolve(everyone).id == expected.id != source.resolve(everyone).id
