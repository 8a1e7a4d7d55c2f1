"""TCIA update tracking (``TciaSource.track``) against the NBIA emulator as the archive changes."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from mediator_desktop.core.errors import SourceError
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources import tcia as tcia_module
from mediator_desktop.sources.tcia import REMOVALS_NOTE, TciaSource, released_param, since_param
from tests.helpers.tcia_emulator import UPDATED_V1, Series, TciaEmulator, synthetic_catalogue

#: Two collections of five patients, each with two studies of three series.
COLLECTIONS = ("SYNTHETIC-1", "SYNTHETIC-2")


@pytest.fixture
def emulator() -> Iterator[TciaEmulator]:
    with TciaEmulator(synthetic_catalogue(60, 2, studies_per_patient=2, series_per_study=3)) as e:
        yield e


def source(emulator: TciaEmulator, version: str = "v4", token: str | None = None) -> TciaSource:
    return TciaSource(base_url=f"{emulator.url}{version}/", token=token, backoff=0.01, timeout=(2.0, 5.0))


@pytest.fixture
def tcia(emulator: TciaEmulator) -> TciaSource:
    return source(emulator)


def everything(tcia: TciaSource) -> Selection:
    return Selection.of(*(tcia.pointer(c) for c in COLLECTIONS))


def pin(tcia: TciaSource, emulator: TciaEmulator, selection: Selection) -> tuple[Manifest, float]:
    """The set as resolved now, and when; then the archive's clock moves on two days."""
    base = tcia.resolve(selection)
    since = emulator.now()
    emulator.advance(days=2)
    emulator.reset_requests()
    return base, since


def diff(old: Manifest, new: Manifest) -> tuple[set[str], set[str], set[str]]:
    """Series UIDs added, revised (same path, other fingerprint) and removed, as the tracker diffs."""
    before = {leaf.path: leaf.fingerprint for leaf in old}
    after = {leaf.path: leaf.fingerprint for leaf in new}
    return (
        {p[3] for p in after.keys() - before.keys()},
        {p[3] for p in after.keys() & before.keys() if after[p] != before[p]},
        {p[3] for p in before.keys() - after.keys()},
    )


def of(emulator: TciaEmulator, patient: str) -> list[Series]:
    return [s for s in emulator.series if s.patient == patient]


@pytest.mark.timeout(30)
def test_nothing_changed_costs_one_request_a_collection_and_one(
    tcia: TciaSource, emulator: TciaEmulator
) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    tracked = tcia.track(selection, base, since)
    assert tracked.manifest == base
    assert dict(emulator.requests) == {"getUpdatedSeries": 1, "NewPatientsInCollection": len(COLLECTIONS)}
    assert re.fullmatch(r"TCIA as of \d{4}-\d\d-\d\d \d\d:\d\d UTC", tracked.state)
    assert tracked.notes == (REMOVALS_NOTE,)


@pytest.mark.timeout(30)
def test_the_day_of_overlap_is_no_change(tcia: TciaSource, emulator: TciaEmulator) -> None:
    """Pinned the day after everything was released: the overlap lists every series again, and
    none is taken for a change, since each fingerprint equals the pinned one."""
    selection = everything(tcia)
    base = tcia.resolve(selection)
    emulator.reset_requests()
    answer = requests.get(
        emulator.v4 + "getUpdatedSeries", params=[since_param(dt.date(2024, 1, 1), emulator.v4)], timeout=5
    )
    assert len(answer.json()) == len(emulator.series)
    emulator.reset_requests()
    assert tcia.track(selection, base, emulator.now()).manifest == base
    assert emulator.requests["getSeries"] == 0


@pytest.mark.timeout(30)
def test_without_since_it_resolves_in_full(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    emulator.add_patient("SYNTHETIC-1")
    tracked = tcia.track(selection, ManifestBuilder().build(), None)
    assert tracked.manifest == tcia.resolve(selection) and len(tracked.manifest) == len(emulator.series)
    assert tracked.notes == ()


@pytest.mark.timeout(30)
def test_added_series_studies_and_patients_are_found(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    series = emulator.add_series(of(emulator, "SYN1-00000")[0].study, modality="MR")
    study = emulator.add_study("SYNTHETIC-1", "SYN1-00001", series=2)
    patient = emulator.add_patient("SYNTHETIC-2", studies=2, series=2)
    tracked = tcia.track(selection, base, since)
    assert emulator.requests["getSeries"] == 3  # the three patients, nothing else
    assert emulator.total_requests == 1 + len(COLLECTIONS) + 3
    added, revised, removed = diff(base, tracked.manifest)
    assert added == {series.uid} | {s.uid for s in study} | {s.uid for s in patient}
    assert not revised and not removed
    assert tracked.manifest == tcia.resolve(selection)


@pytest.mark.timeout(30)
def test_resubmitted_images_are_a_revision(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    series = of(emulator, "SYN2-00003")[4]
    before = base.get("tcia", (series.collection, series.patient, series.study, series.uid))
    assert before is not None
    emulator.resubmit(series.uid)
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == (set(), {series.uid}, set())
    after = tracked.manifest.get("tcia", before.path)
    assert after is not None and before.fingerprint.count is not None
    assert after.fingerprint.count == before.fingerprint.count + 1
    assert after.fingerprint.size == series.size != before.fingerprint.size
    assert after.fingerprint.released == f"{emulator.clock:%m-%d-%Y}/{emulator.clock:%m-%d-%Y}"
    assert emulator.requests["getSeries"] == 1


@pytest.mark.timeout(30)
def test_changes_the_set_does_not_hold_cost_no_listing(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = Selection.of(tcia.pointer("SYNTHETIC-1", Modality="ct")).remove(
        tcia.pointer("SYNTHETIC-1", "SYN1-00002")
    )
    base, since = pin(tcia, emulator, selection)
    emulator.add_series(of(emulator, "SYN1-00000")[0].study, modality="MR")  # filtered out
    emulator.resubmit(of(emulator, "SYN1-00002")[0].uid)  # an excluded patient
    emulator.add_patient("SYNTHETIC-2")  # a collection the set does not hold
    tracked = tcia.track(selection, base, since)
    assert tracked.manifest == base
    assert dict(emulator.requests) == {"getUpdatedSeries": 1, "NewPatientsInCollection": 1}
    ct = emulator.add_series(of(emulator, "SYN1-00004")[0].study, modality="CT")
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == ({ct.uid}, set(), set())
    assert tracked.manifest == tcia.resolve(selection)


@pytest.mark.timeout(30)
def test_a_deletion_shows_only_when_its_patient_changes(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    alone = emulator.delete_series(of(emulator, "SYN1-00000")[1].uid)
    deleted, revised = of(emulator, "SYN1-00001")[:2]
    emulator.delete_series(deleted.uid)
    emulator.resubmit(revised.uid)
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == (set(), {revised.uid}, {deleted.uid})
    # TCIA's change queries never mention ``alone``: it stays, and the notes say why.
    assert tracked.manifest.get("tcia", (alone.collection, alone.patient, alone.study, alone.uid))
    assert tracked.notes == (REMOVALS_NOTE,)
    assert diff(base, tcia.resolve(selection))[2] == {alone.uid, deleted.uid}  # a full check finds it


@pytest.mark.timeout(30)
def test_a_set_of_all_tcia_finds_a_new_collection(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = Selection.of(tcia.pointer())
    base, since = pin(tcia, emulator, selection)
    assert tcia.track(selection, base, since).manifest == base
    assert emulator.total_requests == len(COLLECTIONS) + 1  # the collections come from the set
    emulator.reset_requests()
    new = emulator.add_patient("BRAND-NEW", series=2)
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == ({s.uid for s in new}, set(), set())
    assert emulator.requests["NewPatientsInCollection"] == len(COLLECTIONS) + 1
    assert emulator.requests["getSeries"] == 1


@pytest.mark.timeout(60)
def test_request_goals_on_a_larger_set() -> None:
    """The benchmark's goals on 2,000 series: nothing changed <= collections + 1 requests; 10
    changed series <= 2 x (collections + 10)."""
    with TciaEmulator(synthetic_catalogue(2_000, 4)) as emulator:
        tcia = source(emulator)
        collections = sorted({s.collection for s in emulator.series})
        selection = Selection.of(*(tcia.pointer(c) for c in collections))
        base, since = pin(tcia, emulator, selection)
        assert tcia.track(selection, base, since).manifest == base
        assert emulator.total_requests <= len(collections) + 1
        picks = emulator.series[::199][:10]
        for series in picks[:4]:
            emulator.resubmit(series.uid)
        for series in picks[4:7]:
            emulator.add_series(series.study)
        for series in picks[7:9]:
            emulator.add_study(series.collection, series.patient)
        emulator.add_patient(picks[9].collection)
        emulator.reset_requests()
        tracked = tcia.track(selection, base, since)
        assert emulator.total_requests <= 2 * (len(collections) + 10)
        added, revised, removed = diff(base, tracked.manifest)
        assert (len(added), len(revised), len(removed)) == (6, 4, 0)
        assert tracked.manifest == tcia.resolve(selection)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("version", "updated", "released"),
    [
        ("v4", ("fromDate", "01-21-2024"), ("fromDate", "01-22-2024")),
        ("v2", ("fromDate", "21/01/2024"), ("Date", "2024/01/21")),
        ("v1", ("fromDate", "21/01/2024"), ("Date", "2024/01/21")),
    ],
)
def test_each_api_version_gets_its_date_forms(
    emulator: TciaEmulator, version: str, updated: tuple[str, str], released: tuple[str, str]
) -> None:
    tcia = source(emulator, version)
    selection = everything(tcia)
    emulator.advance(days=20)  # pinned on 2024-01-23 09:00 UTC: day and month differ
    base, since = pin(tcia, emulator, selection)
    changed = emulator.resubmit(of(emulator, "SYN1-00003")[2].uid)
    new = emulator.add_study("SYNTHETIC-2", "SYN2-00000")
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == ({s.uid for s in new}, {changed.uid}, set())
    assert tracked.manifest == tcia.resolve(selection)
    asked = {(v, e): p for v, e, p in emulator.queries}
    assert asked[(version, "getUpdatedSeries")] == dict([updated])
    name, value = released
    assert asked[(version, "NewPatientsInCollection")] == {"Collection": "SYNTHETIC-2", name: value}
    assert since_param(dt.date(2024, 1, 21), tcia.base_url) == updated
    assert released_param(dt.date(2024, 1, 22), tcia.base_url) == released


@pytest.mark.timeout(30)
def test_the_emulator_answers_change_queries_as_nbia(emulator: TciaEmulator) -> None:
    emulator.clock = dt.datetime(2024, 2, 1)  # released at midnight: > and >= differ
    new = emulator.add_patient("SYNTHETIC-1", "P-NEW", studies=2)
    day = emulator.clock.date()

    def get(version: str, endpoint: str, **params: str) -> requests.Response:
        return requests.get(f"{emulator.url}{version}/{endpoint}", params=params, timeout=5)

    v4 = get("v4", "NewPatientsInCollection", Collection="SYNTHETIC-1", fromDate=f"{day:%m-%d-%Y}")
    assert [p["PatientId"] for p in v4.json()] == ["P-NEW"]  # v4 compares with >=
    assert list(v4.json()[0]) == [
        "PatientId", "PatientName", "PatientSex", "Collection", "Phantom", "SpeciesCode",
        "SpeciesDescription", "Authorized",
    ]  # fmt: skip
    v1 = get("v1", "NewPatientsInCollection", Collection="SYNTHETIC-1", Date=f"{day:%Y/%m/%d}")
    assert v1.status_code == 200 and v1.content == b""  # v1 compares with >: an empty 200
    earlier = get(
        "v1", "NewPatientsInCollection", Collection="SYNTHETIC-1", Date=f"{day - dt.timedelta(1):%Y/%m/%d}"
    )
    assert [p["PatientId"] for p in earlier.json()] == ["P-NEW"]
    studies = get(
        "v4", "NewStudiesInPatientCollection", Collection="SYNTHETIC-1", PatientID="P-NEW",
        fromDate=f"{day:%m-%d-%Y}",
    )  # fmt: skip
    assert sorted(s["StudyInstanceUID"] for s in studies.json()) == sorted({s.study for s in new})
    assert all(s["SeriesCount"] == 1 and s["Authorized"] == 1 for s in studies.json())
    missing = get("v4", "NewStudiesInPatientCollection", Collection="SYNTHETIC-1")
    assert missing.status_code == 400
    assert missing.text == "A parameter, Collection and Date are required for this API call."
    wrong = get("v4", "NewStudiesInPatientCollection", Collection="SYNTHETIC-1", Date="2024/01/01")
    assert wrong.status_code == 400 and wrong.text.startswith("Invalid query parameter: 'Date'")
    v1_missing = get("v1", "NewStudiesInPatientCollection", Collection="SYNTHETIC-1", fromDate="x")
    assert v1_missing.status_code == 400  # v1 wants Date
    before = day - dt.timedelta(days=1)
    updated = get("v1", "getUpdatedSeries", fromDate=f"{before:%d/%m/%Y}").json()
    assert {r["SeriesInstanceUID"] for r in updated} == {s.uid for s in new}
    assert list(updated[0]) == [c for c in UPDATED_V1 if updated[0].get(c) is not None]
    assert updated[0]["DateReleased"] == "2024-02-01 00:00:00.0"
    v4_row = get("v4", "getUpdatedSeries", fromDate=f"{before:%m-%d-%Y}").json()[0]  # getSeries' columns
    assert v4_row == get("v4", "getSeries", SeriesInstanceUID=v4_row["SeriesInstanceUID"]).json()[0]


@pytest.mark.timeout(30)
def test_collections_a_token_opens_come_through_new_patients_and_new_studies(emulator: TciaEmulator) -> None:
    """v4's getUpdatedSeries lists public collections only: a restricted one's changes are found
    by NewPatientsInCollection, and by NewStudiesInPatientCollection where the set picks studies."""
    emulator.restricted, emulator.token = {"SYNTHETIC-2"}, "secret"
    tcia = source(emulator, token="secret")
    picked = of(emulator, "SYN2-00001")[0].study
    selection = Selection.of(
        tcia.pointer("SYNTHETIC-2", "SYN2-00000"), tcia.pointer("SYNTHETIC-2", "SYN2-00001", picked)
    )
    base, since = pin(tcia, emulator, selection)
    assert len(base) == 6 + 3
    revised = emulator.resubmit(of(emulator, "SYN2-00000")[5].uid)
    added = emulator.add_series(picked)
    emulator.add_study("SYNTHETIC-2", "SYN2-00001")  # a study the set does not pick
    public = source(emulator).updated_since(dt.date(2024, 1, 1))
    assert public and {revised.uid, added.uid}.isdisjoint(public)
    emulator.reset_requests()
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == ({added.uid}, {revised.uid}, set())
    assert dict(emulator.requests) == {
        "getUpdatedSeries": 1,
        "NewPatientsInCollection": 1,
        "NewStudiesInPatientCollection": 1,  # for SYN2-00001 only
        "getSeries": 2,  # the patient SYN2-00000 and the picked study
    }
    assert tracked.manifest == tcia.resolve(selection)
    emulator.faults.add("NewStudiesInPatientCollection", "wrongrows")
    with pytest.raises(SourceError, match="not a study"):
        tcia.track(selection, base, since)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("endpoint", "fault", "message"),
    [
        ("getUpdatedSeries", "500", "500 .*after retries"),
        ("getUpdatedSeries", "429", "429 .*after retries"),
        ("getUpdatedSeries", "html", "not JSON"),
        ("getUpdatedSeries", "wrongrows", "not a series"),
        ("NewPatientsInCollection", "503", "503 .*after retries"),
        ("NewPatientsInCollection", "badjson", "not JSON"),
        ("NewPatientsInCollection", "wrongrows", "not a patient"),
        ("getSeries", "500", "500 .*after retries"),
        ("getSeries", "html", "not JSON"),
        ("getSeries", "wrongrows", "not a series"),
        ("getSeries", "empty", "gave no series"),
    ],
)
def test_an_archive_that_fails_or_answers_garbage_gives_a_source_error(
    tcia: TciaSource, emulator: TciaEmulator, endpoint: str, fault: str, message: str
) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    emulator.resubmit(of(emulator, "SYN1-00002")[0].uid)  # so that a patient is listed again
    emulator.faults.add(endpoint, *([fault] * 4))
    with pytest.raises(SourceError, match=message):
        tcia.track(selection, base, since)
    while emulator.faults.next(endpoint):
        pass
    assert len(diff(base, tcia.track(selection, base, since).manifest)[1]) == 1  # the fault has passed


@pytest.mark.timeout(30)
def test_a_passing_fault_is_retried(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    emulator.faults.add("getUpdatedSeries", "500")
    emulator.faults.add("NewPatientsInCollection", "503", "429")
    assert tcia.track(selection, base, since).manifest == base
    assert emulator.requests["getUpdatedSeries"] == 2
    assert emulator.requests["NewPatientsInCollection"] == len(COLLECTIONS) + 2


@pytest.mark.timeout(30)
def test_a_429_waits_as_long_as_retry_after_says(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    emulator.faults.add("getUpdatedSeries", "429:1")
    start = time.monotonic()
    assert tcia.track(selection, base, since).manifest == base
    assert time.monotonic() - start >= 1.0  # the backoff alone is 0.01 s
    assert emulator.requests["getUpdatedSeries"] == 2


@pytest.mark.timeout(30)
def test_an_archive_that_is_down_gives_a_source_error(tcia: TciaSource, emulator: TciaEmulator) -> None:
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = TciaSource(base_url=f"http://127.0.0.1:{port}/nbia-api/services/v4/", backoff=0.01)
    with pytest.raises(SourceError, match="cannot be reached"):
        down.track(selection, base, since)


@pytest.mark.timeout(30)
def test_many_changed_patients_are_listed_with_their_collection(
    tcia: TciaSource, emulator: TciaEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcia_module, "WHOLE_COLLECTION_AFTER", 2)
    selection = everything(tcia)
    base, since = pin(tcia, emulator, selection)
    changed = {emulator.resubmit(of(emulator, f"SYN1-0000{i}")[0].uid).uid for i in range(3)}
    tracked = tcia.track(selection, base, since)
    assert diff(base, tracked.manifest) == (set(), changed, set())
    assert [(e, p) for _, e, p in emulator.queries if e == "getSeries"] == [
        ("getSeries", {"Collection": "SYNTHETIC-1"})
    ]
