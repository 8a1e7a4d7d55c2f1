"""Publishing with a DOI through every frontend of a real node: the local API (and schemathesis over
its publishing routes), the Python SDK and the `mediator` command, against the DataCite and Zenodo
emulators. The node has IDC's installed index (offline), so a set of ``rider_pilot`` cites that
collection's DOI. Minting retries every 0.2 s (``MEDIATOR_MINT_RETRY_SECONDS``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from mediator_desktop import Mediator
from mediator_desktop.cli import EXIT_USAGE, EXIT_USER_ERROR
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.settings import HOME_ENV
from mediator_desktop.node import Node
from mediator_desktop.sdk import CreatorModel, MetadataProblems
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.helpers.service import home_node
from tests.helpers.zenodo_emulator import ZenodoEmulator
from tests.integration.test_local_api import fuzz, url
from tests.integration.test_match_frontends import mediator

pytestmark = pytest.mark.timeout(120)

ORCID = "0000-0002-1825-0097"  # ORCID's own example iD (valid check digit)
RIDER = {"source": "idc", "path": ["rider_pilot"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MEDIATOR_HOME of the module: the SDK and the command find the node through it."""
    home = tmp_path_factory.mktemp("publish") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(HOME_ENV, str(home))
        patch.setenv("MEDIATOR_MINT_RETRY_SECONDS", "0.2")
        yield home


@pytest.fixture(autouse=True)
def mediator_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test of the module shares its home (the suite gives each test its own)."""
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


@pytest.fixture(scope="module")
def node(home: Path) -> Iterator[Node]:
    with home_node(home, publisher="Lab of Imaging") as started:
        started.service.archives.add("idc", {}, source_id="idc")
        yield started


@pytest.fixture(scope="module")
def datacite() -> Iterator[DataCiteEmulator]:
    with DataCiteEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def zenodo() -> Iterator[ZenodoEmulator]:
    with ZenodoEmulator(token="zenodo-token") as emulator:
        yield emulator


@pytest.fixture
def m(node: Node) -> Iterator[Mediator]:
    with Mediator() as client:
        assert not client.embedded  # the module's node
        yield client


def use_datacite(m: Mediator, datacite: DataCiteEmulator) -> None:
    m.change_settings(
        doi_service="datacite", doi_url=datacite.url, doi_repository="MEDIATOR.TEST", doi_prefix="10.80000"
    )
    m.set_publishing_secret("datacite", "secret")


def metadata(title: str = "RIDER lung CT, as used in our paper", **changes: Any) -> dict[str, Any]:
    return {
        "title": title,
        "creators": [{"name": "Doe, Jane", "family": "Doe", "given": "Jane", "orcid": ORCID}],
        "publisher": "Lab of Imaging",
        "year": 2026,
        **changes,
    }


# -- the local API -------------------------------------------------------------------------------
def test_the_api_refuses_metadata_with_every_problem_by_field(
    node: Node, http: requests.Session, datacite: DataCiteEmulator
) -> None:
    rs = http.post(url(node, "/v1/sets"), json={"name": "api rider", "add": [RIDER]}).json()
    version = f"/v1/sets/{rs['id']}/versions/1"
    suggested = http.get(url(node, f"{version}/publication/suggested"))
    assert suggested.status_code == 200, suggested.text
    form = suggested.json()
    assert (form["title"], form["creators"][0]["name"], form["publisher"]) == (
        "api rider",
        "Ann",
        "Lab of Imaging",
    )
    assert form["related"] and form["related"][0]["identifier"].startswith("10.7937/")

    bad = metadata("", creators=[{"name": "Doe, Jane", "orcid": "0000-0002-1825-0098"}], year=1800)
    answer = http.post(url(node, f"{version}/publish"), json={"metadata": bad, "service": "none"})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["error"], body["code"]) == ("MetadataProblems", "metadata")
    assert set(body["detail"]) == {"title", "creators.0.orcid", "year"}
    assert "ORCID" in body["detail"]["creators.0.orcid"] and "1900" in body["detail"]["year"]
    long = http.post(
        url(node, f"{version}/publish"), json={"metadata": metadata("x" * 10_000), "service": "none"}
    ).json()
    assert long["detail"] == {"title": "at most 500 characters (this one has 10,000)"}
    no_page = http.post(url(node, f"{version}/publish"), json={"metadata": metadata(), "service": "datacite"})
    assert no_page.status_code == 400 and set(no_page.json()["detail"]) == {"landing_url"}
    assert http.get(url(node, f"{version}/publication")).status_code == 404  # nothing was published

    secret = http.put(url(node, "/v1/publishing/secret"), json={"service": "zenodo", "secret": "s3cret"})
    assert secret.status_code == 204 and not secret.content  # stored, never echoed
    unknown = http.put(url(node, "/v1/publishing/secret"), json={"service": "orcid", "secret": "x"})
    assert unknown.status_code == 422

    published = http.post(url(node, f"{version}/publish"), json={"metadata": metadata(), "service": "none"})
    assert published.status_code == 200, published.text
    record = published.json()
    assert (record["doi_state"], record["status"], record["doi"]) == ("none", "published (no DOI)", None)
    assert record["metadata"]["creators"][0]["orcid"] == ORCID
    again = http.post(url(node, f"{version}/publish"), json={"metadata": metadata(), "service": "none"})
    assert again.status_code == 403 and again.json()["code"] == "immutable"
    retry = http.post(url(node, f"{version}/publication/retry"))
    assert retry.status_code == 400 and "nothing to mint" in retry.json()["message"]
    citation = http.get(url(node, f"{version}/citation")).json()
    assert "(DOI pending)" in citation["text"] and citation["bibtex"].startswith("@misc{Doe2026_v1")


def test_the_publishing_routes_keep_their_openapi_promises(node: Node, http: requests.Session) -> None:
    rs = http.post(url(node, "/v1/sets"), json={"name": "fuzzed rider", "add": [RIDER]}).json()
    assert node.api is not None
    token = node.api.token
    schema = schemathesis.openapi.from_url(url(node, "/openapi.json"))
    routes = schema.include(path_regex=r"^/v1/(publishing/|sets/\{set_id\}/versions/\{number\}/(publi|cit))")
    labels = fuzz(routes, token, examples=15)
    assert sorted(labels) == [
        "GET /v1/sets/{set_id}/versions/{number}/citation",
        "GET /v1/sets/{set_id}/versions/{number}/publication",
        "GET /v1/sets/{set_id}/versions/{number}/publication/suggested",
        "POST /v1/sets/{set_id}/versions/{number}/publication/retry",
        "POST /v1/sets/{set_id}/versions/{number}/publish",
        "PUT /v1/publishing/secret",
    ]

    def call(method: str, path: str, status: int, **parts: Any) -> None:
        case = routes[path][method].Case(**parts)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text

    where = {"path_parameters": {"set_id": rs["id"], "number": 1}}
    call("GET", "/v1/sets/{set_id}/versions/{number}/publication/suggested", 200, **where)
    call("POST", "/v1/sets/{set_id}/versions/{number}/publish", 400, **where, body={"metadata": {}})
    call("GET", "/v1/sets/{set_id}/versions/{number}/publication", 404, **where)
    body = {"metadata": metadata(), "service": "none"}
    call("POST", "/v1/sets/{set_id}/versions/{number}/publish", 200, **where, body=body)
    call("GET", "/v1/sets/{set_id}/versions/{number}/publication", 200, **where)
    call("GET", "/v1/sets/{set_id}/versions/{number}/citation", 200, **where)


# -- the SDK -------------------------------------------------------------------------------------
def test_the_sdk_publishes_with_datacite_and_waits_for_the_doi(
    m: Mediator, datacite: DataCiteEmulator
) -> None:
    use_datacite(m, datacite)
    rs = m.create_set("sdk rider", add=["idc/rider_pilot"])
    meta = m.suggest_publication(rs.id)
    assert meta.title == "sdk rider" and meta.version == "1"
    meta.title = "RIDER lung CT, as used in our paper"
    meta.creators = [CreatorModel(name="Doe, Jane", family="Doe", given="Jane", orcid=ORCID)]
    datacite.faults.add("create", "503")  # down at first: the queue tries again

    record = m.publish(rs.id, 1, meta, landing_url="https://lab.example/rider", wait=True, timeout=30)

    assert record.doi_state == "findable", record
    assert record.doi is not None and record.doi.startswith("10.80000/")
    assert record.status == f"DOI {record.doi}" and record.doi_url == f"https://doi.org/{record.doi}"
    assert record.attempts >= 1 and m.get_set(rs.id).published == [1]
    (minted,) = [r for r in datacite.records.values() if r.doi.lower() == record.doi.lower()]
    assert minted.state == "findable"
    assert m.publication(rs.id) == record  # the latest published version
    citation = m.citation(rs.id)
    assert citation.text.startswith("Doe, Jane (2026). RIDER lung CT, as used in our paper (Version 1)")
    assert f"https://doi.org/{record.doi}" in citation.text
    assert citation.bibtex.startswith("@misc{Doe2026_v1") and f"doi = {{{record.doi}}}" in citation.bibtex
    assert "rider_pilot (https://doi.org/10.7937/" in citation.availability


def test_the_sdk_names_every_problem_by_field(m: Mediator) -> None:
    rs = m.create_set("sdk problems", add=["idc/rider_pilot"])
    bad = metadata("", creators=["Doe, Jane"], year=99)
    bad["creators"][0] = {"name": "Doe, Jane", "orcid": "1234"}
    with pytest.raises(MetadataProblems) as caught:
        m.publish(rs.id, 1, bad, service="none")
    assert set(caught.value.problems) == {"title", "creators.0.orcid", "year"}
    assert isinstance(caught.value, ValidationError) and "title: a title is required" in str(caught.value)
    with pytest.raises(MetadataProblems, match=r"at most 500 characters") as long:
        m.publish(rs.id, 1, metadata("t" * 10_000), service="none")
    assert list(long.value.problems) == ["title"]
    with pytest.raises(NotFound, match=r"not published"):
        m.publication(rs.id, 1)
    with pytest.raises(NotFound, match=r"no version .* is published"):
        m.citation(rs.id)
    # A creator given as a plain name is a creator without ORCID; the suggestion fills nothing in.
    record = m.publish(rs.id, 1, metadata(creators=["Lab of Imaging"]), service="none")
    assert record.doi_state == "none" and record.creators == ["Lab of Imaging"]


def test_the_sdk_retries_with_zenodo_after_wrong_credentials(m: Mediator, zenodo: ZenodoEmulator) -> None:
    m.change_settings(doi_service="zenodo", doi_url=zenodo.url)
    m.set_publishing_secret("zenodo", "wrong-token")
    rs = m.create_set("zenodo rider", add=["idc/rider_pilot"])

    failed = m.publish(rs.id, metadata=metadata(), wait=True, timeout=30)
    assert failed.doi_state == "failed" and "token" in failed.error.lower()
    assert failed.status.startswith("failed: ")

    m.set_publishing_secret("zenodo", "zenodo-token")
    record = m.retry_publication(rs.id, wait=True, timeout=30)
    assert record.doi_state == "findable" and record.doi is not None and record.service == "zenodo"
    assert record.landing_url.startswith(zenodo.root)  # Zenodo's record page
    assert f"https://doi.org/{record.doi}" in m.citation(rs.id, 1).text


# -- the command ---------------------------------------------------------------------------------
def test_publish_and_cite_from_a_terminal(
    m: Mediator, datacite: DataCiteEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("", "zenodo"):  # none, then Zenodo
        out, _ = mediator(capsys, "settings", "--set", f"doi_service={value}")
        assert out == "changed: doi_service\n" and m.settings().values.doi_service == value
    use_datacite(m, datacite)
    m.create_set("cli rider", add=["idc/rider_pilot"])

    # Every problem, named by the option that fixes it; nothing published.
    _, err = mediator(
        capsys,
        "sets", "publish", "cli rider", "--title", "", "--creator", "Doe, Jane",
        "--orcid", "0000-0002-1825-0098", "--year", "1800", "--service", "none",
        code=EXIT_USER_ERROR,
    )  # fmt: skip
    assert "nothing was published" in err
    assert "--title: a title is required" in err and "--year: a publication year between 1900" in err
    assert "--orcid (creator 1 'Doe, Jane'): '0000-0002-1825-0098' is no valid ORCID iD" in err
    out, _ = mediator(
        capsys, "--json", "sets", "publish", "cli rider", "--title", "y" * 10_000, code=EXIT_USER_ERROR
    )
    problems = json.loads(out)["problems"]
    assert problems["title"].startswith("at most 500") and "landing_url" in problems
    mediator(capsys, "sets", "publish", "cli rider", "--orcid", ORCID, "--orcid", ORCID, code=EXIT_USER_ERROR)
    mediator(capsys, "sets", "publish", "cli rider", "--service", "crossref", code=EXIT_USAGE)

    out, _ = mediator(
        capsys,
        "sets", "publish", "cli rider", "--title", "RIDER pilot, for the paper",
        "--creator", f"Doe, Jane;{ORCID};Lab of Imaging", "--creator", "Roe, Rick",
        "--keyword", "lung", "--license", "CC-BY-4.0", "--landing-url", "https://lab.example/rider",
        "--wait", "--timeout", "30",
    )  # fmt: skip
    assert out.startswith("cli rider v1: DOI 10.80000/")
    out, _ = mediator(capsys, "sets", "publication", "cli rider")
    assert "RIDER pilot, for the paper (" in out and "Doe, Jane; Roe, Rick" in out
    set_id = m.find_set("cli rider").id
    record = m.publication(set_id, 1)
    assert record.metadata is not None and record.metadata.creators[0].affiliation == "Lab of Imaging"
    assert record.metadata.publisher == "Lab of Imaging" and record.metadata.subjects == ["lung"]
    assert record.metadata.related  # the suggested source DOIs stay

    done = m.publication(set_id, 1)
    assert done.doi is not None and done.doi.startswith("10.80000/")
    out, _ = mediator(capsys, "sets", "publication", "cli rider")
    assert f"cli rider v1: DOI {done.doi}" in out
    out, _ = mediator(capsys, "sets", "publish", "cli rider", "--retry")  # minted: it says so, no error
    assert out.startswith(f"cli rider v1: DOI {done.doi}"), out
    assert m.publication(set_id, 1).doi == done.doi  # and mints nothing again
    out, _ = mediator(capsys, "sets", "citation", "cli rider")
    assert out.startswith("Doe, Jane; Roe, Rick (") and f"https://doi.org/{done.doi}" in out
    out, _ = mediator(capsys, "sets", "citation", "cli rider", "--bibtex")
    assert out.startswith("@misc{Doe") and f"doi = {{{done.doi}}}" in out
    out, _ = mediator(capsys, "sets", "citation", "cli rider", "--availability")
    assert "rider_pilot (https://doi.org/10.7937/" in out
    out, _ = mediator(capsys, "--json", "sets", "citation", "cli rider", "--version", "1")
    assert set(json.loads(out)) >= {"text", "bibtex", "availability"}


def test_the_publishing_secret_is_read_from_standard_input(
    m: Mediator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("zenodo-token\n"))
    out, _ = mediator(capsys, "publishing", "secret", "zenodo")
    assert "stored the Zenodo token" in out and "zenodo-token" not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    _, err = mediator(capsys, "publishing", "secret", "datacite", code=EXIT_USER_ERROR)
    assert "no DataCite repository password was given" in err
