"""DOI minting: the DataCite and Zenodo emulators proved by the services' own clients (invenio's
``datacite`` package; plain ``requests`` as Zenodo's docs show), then the minters against them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import pytest
import requests
from datacite import DataCiteRESTClient
from datacite.errors import (
    DataCiteForbiddenError,
    DataCiteNotFoundError,
    DataCiteServerError,
    DataCiteUnauthorizedError,
)

from mediator_desktop.core.errors import (
    ArchiveUnreachable,
    PermissionDenied,
    SourceError,
    ValidationError,
)
from mediator_desktop.core.publishing import Creator, DoiMetadata, Related
from mediator_desktop.sources.doi import (
    DATACITE_URL,
    DataCiteMinter,
    ZenodoMinter,
    create_minter,
    datacite_suffix,
)
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.helpers.net import free_ports
from tests.helpers.zenodo_emulator import ZenodoEmulator

PREFIX = "10.80000"
USER, PASSWORD = "MEDIATOR.TEST", "secret"
TOKEN = "zenodo-token"
LANDING = "https://lab.example.org/sets/luad-ct/v1"
METADATA = DoiMetadata(
    title="MEDIator replica set: TCGA-LUAD CT subset",
    creators=(
        Creator("Doe, Jane", given="Jane", family="Doe", orcid="0000-0002-1825-0097", affiliation="Lab"),
    ),
    publisher="MEDIator Lab",
    year=2026,
    description="CT series of TCGA-LUAD patients.",
    subjects=("lung cancer", "CT"),
    license="CC-BY-4.0",
    related=(Related("10.7937/K9/TCIA.2016.JGNIHEP5"),),
    version="1",
)
FINDABLE = {
    "creators": [{"name": "Doe, Jane", "nameType": "Personal"}],
    "titles": [{"title": "A test record"}],
    "publisher": "MEDIator",
    "publicationYear": 2026,
    "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Replica set"},
    "schemaVersion": "http://datacite.org/schema/kernel-4",
}


class Steps:
    """What a minter records, merged as the store would keep it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def __call__(self, steps: Mapping[str, str]) -> None:
        self.calls.append(dict(steps))

    @property
    def merged(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for call in self.calls:
            out.update(call)
        return out


@pytest.fixture
def datacite() -> Iterator[DataCiteEmulator]:
    with DataCiteEmulator(prefix=PREFIX, username=USER, password=PASSWORD) as emulator:
        yield emulator


@pytest.fixture
def zenodo() -> Iterator[ZenodoEmulator]:
    with ZenodoEmulator(token=TOKEN) as emulator:
        yield emulator


def invenio(emulator: DataCiteEmulator, password: str = PASSWORD) -> DataCiteRESTClient:
    # test_mode=True would send it to api.test.datacite.org whatever url says: url= is the way in.
    return DataCiteRESTClient(USER, password, PREFIX, url=emulator.url, timeout=5)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}/"


# -- the DataCite emulator, as invenio's client sees it ------------------------------------------------
def test_invenio_client_drafts_publishes_reads_and_deletes(datacite: DataCiteEmulator) -> None:
    client = invenio(datacite)
    draft = client.draft_doi(doi=f"{PREFIX}/draft-1")
    assert draft == f"{PREFIX}/draft-1"
    assert datacite.state(draft) == "draft"
    assert client.get_metadata(draft)["state"] == "draft"
    assert client.update_url(draft, "https://example.org/one") == "https://example.org/one"
    client.delete_doi(draft)
    assert datacite.state(draft) is None

    doi = client.public_doi(dict(FINDABLE), "https://example.org/two")
    assert doi.startswith(f"{PREFIX}/") and len(doi.split("/")[1]) == 9  # DataCite's xxxx-xxxx
    assert client.get_doi(doi) == "https://example.org/two"
    attributes = client.get_metadata(doi)
    assert attributes["state"] == "findable" and attributes["titles"] == FINDABLE["titles"]
    assert attributes["registered"] and attributes["publicationYear"] == 2026
    hidden = client.hide_doi(doi)
    assert hidden["state"] == "registered"
    assert client.show_doi(doi)["state"] == "findable"
    with pytest.raises(DataCiteServerError, match=r"405"):  # invenio's factory calls any other code "server"
        client.delete_doi(doi)
    assert datacite.state(doi) == "findable"


def test_datacite_refuses_wrong_credentials_other_prefixes_and_duplicates(datacite: DataCiteEmulator) -> None:
    with pytest.raises(DataCiteUnauthorizedError, match=r"Bad credentials"):
        invenio(datacite, password="wrong").draft_doi(doi=f"{PREFIX}/x")
    datacite.add_repository("OTHER.REPO", "pw", "10.80001")
    other = DataCiteRESTClient("OTHER.REPO", "pw", "10.80001", url=datacite.url)
    with pytest.raises(DataCiteForbiddenError, match=r"not authorized"):
        other.post_doi({"attributes": {"doi": f"{PREFIX}/theirs"}})
    client = invenio(datacite)
    client.draft_doi(doi=f"{PREFIX}/once")
    second = requests.post(
        datacite.url + "dois",
        json={"data": {"type": "dois", "attributes": {"doi": f"{PREFIX}/ONCE"}}},
        auth=(USER, PASSWORD),
        headers={"Content-Type": "application/vnd.api+json"},
        timeout=5,
    )
    assert second.status_code == 422
    assert second.headers["Content-Type"].startswith("application/vnd.api+json")
    assert second.json() == {
        "errors": [{"source": "doi", "uid": f"{PREFIX}/once", "title": "This DOI has already been taken"}]
    }
    assert len(datacite.records) == 1
    anonymous = requests.get(datacite.url + f"dois/{PREFIX}/once", timeout=5)  # a draft is not public
    assert anonymous.status_code == 404
    assert anonymous.json()["errors"][0]["title"] == "The resource you are looking for doesn't exist."
    with pytest.raises(DataCiteNotFoundError):
        client.get_doi(f"{PREFIX}/never-made")


def test_datacite_lists_mandatory_fields_a_findable_doi_lacks(datacite: DataCiteEmulator) -> None:
    answer = requests.post(
        datacite.url + "dois",
        json={"data": {"type": "dois", "attributes": {"prefix": PREFIX, "event": "publish"}}},
        auth=(USER, PASSWORD),
        timeout=5,
    )
    assert answer.status_code == 422
    sources = [e["source"] for e in answer.json()["errors"]]
    assert sources == ["creators", "titles", "publisher", "publicationYear", "types", "url"]
    assert not datacite.records
    listing = requests.get(datacite.url + "dois", params={"client-id": USER.lower()}, timeout=5).json()
    assert listing["data"] == [] and listing["meta"]["total"] == 0


def test_datacite_lists_findable_dois_by_client(datacite: DataCiteEmulator) -> None:
    client = invenio(datacite)
    client.draft_doi(doi=f"{PREFIX}/hidden-draft")
    public = [client.public_doi(dict(FINDABLE), f"https://example.org/{i}") for i in range(3)]
    anonymous = requests.get(
        datacite.url + "dois", params={"client-id": "mediator.test", "page[size]": "2"}, timeout=5
    ).json()
    assert anonymous["meta"] == {"total": 3, "totalPages": 2, "page": 1}
    assert {d["id"] for d in anonymous["data"]} <= set(public)
    assert all(d["relationships"]["client"]["data"]["id"] == "mediator.test" for d in anonymous["data"])
    mine = requests.get(
        datacite.url + "dois", params={"client-id": "mediator.test"}, auth=(USER, PASSWORD), timeout=5
    )
    assert mine.json()["meta"]["total"] == 4


# -- the Zenodo emulator, as Zenodo's docs call it -------------------------------------------------------
def test_zenodo_deposit_upload_publish_and_new_version(zenodo: ZenodoEmulator) -> None:
    api, params = zenodo.url, {"access_token": TOKEN}
    r = requests.post(f"{api}/deposit/depositions", params=params, json={}, timeout=5)
    assert r.status_code == 201
    deposition = r.json()
    assert deposition["state"] == "unsubmitted" and deposition["submitted"] is False
    bucket = deposition["links"]["bucket"]
    data = {"metadata": METADATA.zenodo_metadata()}
    r = requests.put(f"{api}/deposit/depositions/{deposition['id']}", params=params, json=data, timeout=5)
    assert r.status_code == 200 and r.json()["title"] == METADATA.title
    r = requests.post(deposition["links"]["publish"], params=params, timeout=5)
    assert r.status_code == 400 and r.json()["errors"] == [
        {"message": "Minimum one file must be provided.", "code": 10}
    ]
    r = requests.put(f"{bucket}/crate.json", data=b'{"a": 1}', params=params, timeout=5)
    assert r.status_code == 201
    assert r.json()["checksum"] == "md5:" + hashlib.md5(b'{"a": 1}', usedforsecurity=False).hexdigest()
    r = requests.post(deposition["links"]["publish"], params=params, timeout=5)
    assert r.status_code == 202
    first = r.json()
    assert first["doi"] == f"10.5281/zenodo.{deposition['id']}"
    assert first["conceptdoi"] == f"10.5281/zenodo.{deposition['conceptrecid']}"
    assert requests.get(first["links"]["record"], timeout=5).json()["doi"] == first["doi"]

    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(first["links"]["newversion"], headers=headers, timeout=5)
    assert r.status_code == 201
    draft_url = r.json()["links"]["latest_draft"]
    again = requests.post(first["links"]["newversion"], headers=headers, timeout=5).json()
    assert again["links"]["latest_draft"] == draft_url  # the open draft, not another
    draft = requests.get(draft_url, headers=headers, timeout=5).json()
    assert draft["id"] != first["id"] and draft["conceptrecid"] == first["conceptrecid"]
    r = requests.post(draft["links"]["publish"], headers=headers, timeout=5)
    assert r.status_code == 400 and "must differ" in r.text
    requests.put(f"{draft['links']['bucket']}/crate.json", data=b'{"a": 2}', headers=headers, timeout=5)
    second = requests.post(draft["links"]["publish"], headers=headers, timeout=5).json()
    assert second["conceptdoi"] == first["conceptdoi"] and second["doi"] != first["doi"]
    assert len(zenodo.published()) == 2


def test_zenodo_refuses_bad_tokens_and_metadata(zenodo: ZenodoEmulator) -> None:
    api = zenodo.url
    r = requests.post(f"{api}/deposit/depositions", json={}, timeout=5)
    assert r.status_code == 401 and r.json()["status"] == 401
    r = requests.post(f"{api}/deposit/depositions", params={"access_token": "nope"}, json={}, timeout=5)
    assert r.status_code == 401
    zenodo.add_token("read-only", owner="1", scopes=frozenset({"deposit:write"}))
    r = requests.post(f"{api}/deposit/depositions", params={"access_token": "read-only"}, json={}, timeout=5)
    assert r.status_code == 403
    bad = {"metadata": {"title": "x", "upload_type": "spreadsheet", "publication_date": "someday"}}
    r = requests.post(f"{api}/deposit/depositions", params={"access_token": TOKEN}, json=bad, timeout=5)
    assert r.status_code == 400 and r.json()["message"] == "Validation error."
    assert {e["field"] for e in r.json()["errors"]} == {"metadata.upload_type", "metadata.publication_date"}
    zenodo.add_token("someone-else", owner="2")
    mine = requests.post(
        f"{api}/deposit/depositions", params={"access_token": TOKEN}, json={}, timeout=5
    ).json()
    r = requests.get(mine["links"]["self"], params={"access_token": "someone-else"}, timeout=5)
    assert r.status_code == 403


# -- DataCite minter -------------------------------------------------------------------------------
def datacite_minter(emulator: DataCiteEmulator, password: str = PASSWORD, **kwargs: object) -> DataCiteMinter:
    return DataCiteMinter(emulator.url, USER, password, PREFIX, **kwargs)  # type: ignore[arg-type]


def test_datacite_minter_mints_a_findable_doi_from_the_key(datacite: DataCiteEmulator) -> None:
    steps = Steps()
    minted = datacite_minter(datacite).mint("Set-ABC/v3", METADATA, LANDING, None, {}, steps, None)
    assert minted.doi == f"{PREFIX}/mediator.set-abc-v3" == f"{PREFIX}/{datacite_suffix('Set-ABC/v3')}"
    assert minted.state == "findable" and minted.url == LANDING
    assert steps.calls == [{"doi": minted.doi}, {"state": "findable"}]
    held = datacite.records[minted.doi]
    assert held.state == "findable" and held.attributes["url"] == LANDING
    assert held.attributes["titles"] == [{"title": METADATA.title}]
    assert held.attributes["creators"][0]["nameIdentifiers"][0]["nameIdentifierScheme"] == "ORCID"
    assert datacite.requests["create"] == 1 and datacite.requests["update"] == 1


def test_datacite_retry_after_a_crash_between_create_and_publish_makes_no_second_doi(
    datacite: DataCiteEmulator,
) -> None:
    minter = datacite_minter(datacite, retries=0)
    steps = Steps()
    datacite.faults.add("update", "drop")
    with pytest.raises(ArchiveUnreachable, match=r"cannot be reached"):
        minter.mint("set-1-v1", METADATA, LANDING, None, {}, steps, None)
    assert steps.merged == {"doi": f"{PREFIX}/mediator.set-1-v1"}
    assert datacite.state(f"{PREFIX}/mediator.set-1-v1") == "draft"
    again = Steps()
    minted = datacite_minter(datacite).mint("set-1-v1", METADATA, LANDING, None, steps.merged, again, None)
    assert minted.doi == f"{PREFIX}/mediator.set-1-v1" and minted.state == "findable"
    assert again.calls == [{"state": "findable"}]
    assert len(datacite.records) == 1 and datacite.requests["create"] == 1
    # done says findable: nothing is sent
    datacite.reset_requests()
    datacite_minter(datacite).mint(
        "set-1-v1", METADATA, LANDING, None, {**steps.merged, **again.merged}, again, None
    )
    assert datacite.total_requests == 0


def test_datacite_retry_when_the_create_answer_was_lost_finds_its_own_draft(
    datacite: DataCiteEmulator,
) -> None:
    datacite.faults.add("create", "lost")
    steps = Steps()
    with pytest.raises(ArchiveUnreachable):
        datacite_minter(datacite, retries=0).mint("set-2-v1", METADATA, LANDING, None, {}, steps, None)
    assert steps.calls == [] and len(datacite.records) == 1  # created, but the client never heard
    minted = datacite_minter(datacite).mint("set-2-v1", METADATA, LANDING, None, {}, steps, None)
    assert minted.doi == f"{PREFIX}/mediator.set-2-v1" and datacite.state(minted.doi) == "findable"
    assert len(datacite.records) == 1 and datacite.requests["create"] == 2 and datacite.requests["get"] == 1


def test_datacite_doi_taken_for_another_landing_page_is_left_alone(datacite: DataCiteEmulator) -> None:
    invenio(datacite).public_doi(
        dict(FINDABLE), "https://elsewhere.example.org/", doi=f"{PREFIX}/mediator.set-3-v1"
    )
    with pytest.raises(ValidationError, match=r"another landing page \(https://elsewhere"):
        datacite_minter(datacite).mint("set-3-v1", METADATA, LANDING, None, {}, Steps(), None)
    assert (
        datacite.records[f"{PREFIX}/mediator.set-3-v1"].attributes["url"] == "https://elsewhere.example.org/"
    )


def test_datacite_minter_failures_are_typed(datacite: DataCiteEmulator) -> None:
    with pytest.raises(PermissionDenied, match=r"repository ID and password in Settings"):
        datacite_minter(datacite, password="wrong").mint("k", METADATA, LANDING, None, {}, Steps(), None)
    datacite.add_repository("OTHER.REPO", "pw", "10.80001")
    other = DataCiteMinter(datacite.url, "OTHER.REPO", "pw", PREFIX)
    with pytest.raises(PermissionDenied, match=r"refused access \(403"):
        other.mint("k", METADATA, LANDING, None, {}, Steps(), None)
    with pytest.raises(ValidationError, match=r"DataCite rejected the record .*url: URL is not valid"):
        datacite_minter(datacite).mint("k", METADATA, "lab page", None, {}, Steps(), None)
    assert datacite.records == {}
    datacite.faults.add("create", "503")
    with pytest.raises(SourceError, match=r"answered 503 .*retry later") as failure:
        datacite_minter(datacite).mint("k", METADATA, LANDING, None, {}, Steps(), None)
    assert not isinstance(failure.value, ArchiveUnreachable)
    with pytest.raises(ValidationError, match=r"landing page"):
        datacite_minter(datacite).mint("k", METADATA, None, None, {}, Steps(), None)
    with pytest.raises(ValidationError, match=r"title"):
        datacite_minter(datacite).mint("k", DoiMetadata("", (), "", 2026), LANDING, None, {}, Steps(), None)
    assert datacite.records == {}


def test_datacite_unreachable_or_silent_is_archive_unreachable(datacite: DataCiteEmulator) -> None:
    dead = DataCiteMinter(dead_url(), USER, PASSWORD, PREFIX, retries=0)
    with pytest.raises(ArchiveUnreachable, match=r"cannot be reached") as failure:
        dead.mint("k", METADATA, LANDING, None, {}, Steps(), None)
    assert failure.value.host.startswith("127.0.0.1:")
    datacite.faults.add("create", "delay:1.5")
    slow = datacite_minter(datacite, timeout=(2.0, 0.3), retries=0)
    with pytest.raises(ArchiveUnreachable, match=r"did not answer in time"):
        slow.mint("k", METADATA, LANDING, None, {}, Steps(), None)


# -- Zenodo minter ---------------------------------------------------------------------------------
def test_zenodo_minter_deposits_publishes_and_records_each_step(zenodo: ZenodoEmulator) -> None:
    steps = Steps()
    minter = ZenodoMinter(zenodo.url, TOKEN)
    minted = minter.mint("set-9-v1", METADATA, None, ("ro-crate-metadata.json", b"{}"), {}, steps, None)
    (published,) = zenodo.published()
    assert minted.doi == f"10.5281/zenodo.{published.id}" and minted.state == "findable"
    assert minted.url == f"{zenodo.root}/records/{published.id}"
    assert steps.calls[0] == {
        "deposition": str(published.id),
        "bucket": f"{zenodo.url}/files/{published.bucket}",
    }
    assert steps.calls[1] == {"doi": minted.doi, "concept": published.conceptdoi, "url": minted.url}
    assert published.metadata["title"] == METADATA.title and list(published.files) == [
        "ro-crate-metadata.json"
    ]
    assert dict(minted.steps) == steps.merged


def test_zenodo_second_version_shares_the_concept_doi(zenodo: ZenodoEmulator) -> None:
    minter = ZenodoMinter(zenodo.url, TOKEN)
    first = minter.mint("s-v1", METADATA, None, ("ro-crate-metadata.json", b'{"v": 1}'), {}, Steps(), None)
    second = minter.mint(
        "s-v2", METADATA, None, ("ro-crate-metadata.json", b'{"v": 2}'), {}, Steps(), first.steps
    )
    assert second.doi != first.doi
    assert second.steps["concept"] == first.steps["concept"]
    assert second.steps["deposition"] != first.steps["deposition"]
    assert zenodo.requests["newversion"] == 1 and zenodo.requests["create"] == 1
    assert len(zenodo.published()) == 2
    third = minter.mint("s-v3", METADATA, None, ("crate-v3.json", b'{"v": 3}'), {}, Steps(), second.steps)
    assert third.steps["concept"] == first.steps["concept"]
    newest = zenodo.records[int(third.steps["deposition"])]
    assert list(newest.files) == ["crate-v3.json"]  # the copied crate of v2 is gone
    assert zenodo.requests["delete_file"] == 1


def test_zenodo_retry_after_an_unheard_publish_takes_the_same_doi(zenodo: ZenodoEmulator) -> None:
    minter = ZenodoMinter(zenodo.url, TOKEN, retries=0)
    steps = Steps()
    zenodo.faults.add("publish", "lost")
    with pytest.raises(ArchiveUnreachable):
        minter.mint("s-v1", METADATA, None, ("crate.json", b"{}"), {}, steps, None)
    assert set(steps.merged) == {"deposition", "bucket"} and len(zenodo.published()) == 1
    minted = minter.mint("s-v1", METADATA, None, ("crate.json", b"{}"), steps.merged, steps, None)
    assert minted.doi == zenodo.published()[0].doi
    assert zenodo.requests["publish"] == 1 and zenodo.requests["create"] == 1 and len(zenodo.records) == 1


def test_zenodo_retry_after_a_failed_upload_resumes_the_same_deposition(zenodo: ZenodoEmulator) -> None:
    minter = ZenodoMinter(zenodo.url, TOKEN)
    steps = Steps()
    zenodo.faults.add("upload", "503")
    with pytest.raises(SourceError, match=r"answered 503 while uploading crate.json"):
        minter.mint("s-v1", METADATA, None, ("crate.json", b"{}"), {}, steps, None)
    minted = minter.mint("s-v1", METADATA, None, ("crate.json", b"{}"), steps.merged, steps, None)
    assert len(zenodo.records) == 1 and minted.steps["deposition"] == steps.calls[0]["deposition"]


def test_zenodo_minter_failures_are_typed(zenodo: ZenodoEmulator) -> None:
    with pytest.raises(PermissionDenied, match=r"refused the credentials \(401.*access token"):
        ZenodoMinter(zenodo.url, "wrong").mint("k", METADATA, None, ("c.json", b"{}"), {}, Steps(), None)
    with pytest.raises(
        ValidationError, match=r"Zenodo rejected the record while publishing k: Minimum one file"
    ):
        ZenodoMinter(zenodo.url, TOKEN).mint("k", METADATA, None, None, {}, Steps(), None)
    zenodo.faults.add("create", "503")
    with pytest.raises(SourceError, match=r"answered 503"):
        ZenodoMinter(zenodo.url, TOKEN).mint("k", METADATA, None, ("c.json", b"{}"), {}, Steps(), None)
    with pytest.raises(ArchiveUnreachable):
        ZenodoMinter(dead_url() + "api", TOKEN, retries=0).mint(
            "k", METADATA, None, ("c.json", b"{}"), {}, Steps(), None
        )
    with pytest.raises(PermissionDenied, match=r"token"):
        ZenodoMinter(zenodo.url, "")


# -- the factory -----------------------------------------------------------------------------------
def test_create_minter_reads_the_settings(datacite: DataCiteEmulator, zenodo: ZenodoEmulator) -> None:
    minter = create_minter(
        "datacite", {"repository": USER, "prefix": PREFIX, "base_url": datacite.url}, PASSWORD
    )
    assert isinstance(minter, DataCiteMinter) and minter.name == "datacite"
    assert minter.mint("f-v1", METADATA, LANDING, None, {}, Steps(), None).state == "findable"
    default = create_minter("datacite", {"repository": USER, "prefix": PREFIX}, PASSWORD)
    assert isinstance(default, DataCiteMinter) and default.base_url == DATACITE_URL.rstrip("/")
    z = create_minter("zenodo", {"base_url": zenodo.url, "repository": USER, "prefix": PREFIX}, TOKEN)
    assert isinstance(z, ZenodoMinter) and z.name == "zenodo"
    assert create_minter("zenodo", {}, TOKEN).base_url == "https://zenodo.org/api"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match=r"needs repository, prefix"):
        create_minter("datacite", {}, PASSWORD)
    with pytest.raises(PermissionDenied, match=r"password"):
        create_minter("datacite", {"repository": USER, "prefix": PREFIX}, None)
    with pytest.raises(ValidationError, match=r"no DOI service 'crossref'"):
        create_minter("crossref", {}, None)
