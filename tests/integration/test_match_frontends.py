"""Radiogenomic cohorts and manifest files through every frontend of a real node: the local API
(and schemathesis over its match, import and export routes), the Python SDK and the `mediator`
command. The node has the small IDC (``lung_a``: pa1 with a CT and an MR, pa2 with a CT; ``lung_b``:
pb1 with two CTs) and a local DICOM folder ``lab`` holding pa1 and pb1 (as IDC names them) and P1
(only there), so a match says per archive which patients it holds and which kinds of data."""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from mediator_desktop import Mediator
from mediator_desktop.cli import (
    EXIT_ARCHIVE_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_USER_ERROR,
    main,
)
from mediator_desktop.core.clinical import parse_conditions
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.sdk import MediatorWarning
from tests.helpers.dicom import make_series
from tests.helpers.idc_world import IdcWorld
from tests.integration.test_clinical_frontends import with_lab
from tests.integration.test_local_api import fuzz, url

pytestmark = pytest.mark.timeout(180)

#: What IDC's ``lung_a`` and ``lung_b`` hold of the lab's patients, by modality: patients, series.
IDC_KINDS = {"CT": (["pa1", "pb1"], 3), "MR": (["pa1"], 1)}
EVERY = "2 of 3 patients of lab have data in every archive joined (idc); none for P1"


def lab_folder(root: Path) -> Path:
    folder = root / "scanner"
    make_series(folder, "pa1", "9.1", "9.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "pb1", "9.2", "9.2.1", 1, modality="PT", pixels=8)
    make_series(folder, "P1", "9.3", "9.3.1", 1, modality="MR", pixels=8)
    return folder


def tcia_manifest(folder: Path, name: str = "lung.tcia") -> Path:
    """A TCIA manifest of two of the small IDC's series and one no archive here holds."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet\n"
        "includeAnnotation=true\nnoOfrRetry=4\ndatabasedSeriesFromFile=true\n"
        "ListOfSeriesToDownload=\n1.1\n2.2\n9.9.9.9\n",
        encoding="utf-8",
    )
    return path


def _kinds(archive: dict[str, Any]) -> dict[str, tuple[list[str], int]]:
    return {k["label"]: (k["patients"], k["leaves"]) for k in archive["kinds"]}


# -- the local API -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node(world: IdcWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("matches")
    home = root / "home"
    settings = with_lab(world, home, lab_folder(root))
    with Node(settings, settings_path=home / "settings.json", api=True) as started:
        yield started


def test_a_match_says_per_archive_which_patients_it_holds_and_what_data(
    node: Node, http: requests.Session
) -> None:
    answer = http.post(url(node, "/v1/matches"), json={"origin": ["lab"]})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["origin"] == ["lab"] and found["patients"] == ["P1", "pa1", "pb1"]
    [idc] = found["archives"]  # every other archive with patients; the clinical tables are none
    assert (idc["source"], idc["target"], idc["title"], idc["error"]) == (
        "idc",
        "idc",
        "NCI Imaging Data Commons",
        None,
    )
    assert (idc["found"], idc["missing"]) == (["pa1", "pb1"], ["P1"])
    assert _kinds(idc) == IDC_KINDS
    ct = idc["kinds"][0]  # the kind most patients have first
    assert (ct["label"], ct["category"], ct["filter"]) == (
        "CT",
        "radiology",
        {"name": "Modality", "value": "CT"},
    )
    assert ct["size"] > 0

    # A filter on the origin counts; the lab's kinds are its series.
    mr = http.post(
        url(node, "/v1/matches"), json={"origin": ["idc/lung_a?Modality=MR"], "into": ["lab"]}
    ).json()
    assert mr["patients"] == ["pa1"]
    [lab] = mr["archives"]
    assert (lab["target"], lab["found"], lab["missing"]) == ("lab", ["pa1"], [])
    assert [(k["label"], k["category"], k["filter"], k["leaves"]) for k in lab["kinds"]] == [
        ("series", "other", None, 1)
    ]
    # Patients named, searched in part of an archive.
    named = http.post(url(node, "/v1/matches"), json={"patients": ["pb1", "nobody"], "into": ["idc/lung_b"]})
    assert named.status_code == 200, named.text
    [lung_b] = named.json()["archives"]
    assert (lung_b["target"], lung_b["found"], lung_b["missing"]) == ("idc/lung_b", ["pb1"], ["nobody"])


def test_a_clinical_filter_is_an_origin_too(node: Node, http: requests.Session, tmp_path: Path) -> None:
    table = tmp_path / "ages.csv"
    table.write_text("PatientID,age\npa1,70\npb1,50\nP1,80\npz,90\n", encoding="utf-8")
    assert http.post(url(node, "/v1/tables"), json={"path": str(table), "name": "ages"}).status_code == 200
    old = str(Pointer("clinical", ("ages",), make_filters(parse_conditions(["age>=60"]))))

    found = http.post(url(node, "/v1/matches"), json={"origin": [old], "into": ["idc", "lab"]}).json()
    assert found["patients"] == ["P1", "pa1", "pz"]
    idc, lab = found["archives"]
    assert (idc["found"], lab["found"], lab["missing"]) == (["pa1"], ["P1", "pa1"], ["pz"])
    cohort = http.post(
        url(node, "/v1/matches/cohort"), json={"origin": [old], "chosen": {"idc": ["MR"], "lab": None}}
    ).json()
    assert cohort["patients"] == ["pa1"]
    [rule] = cohort["pointers"]
    created = http.post(
        url(node, "/v1/sets"), json={"name": "60+ with an MR", "add": [Pointer.parse(rule).to_json()]}
    )
    assert created.status_code == 201, created.text
    # pa1's row, its MR in IDC and its series in the lab: P1 and pz have no MR, so not their rows either.
    assert created.json()["leaves"] == 1 + 1 + 1


def test_an_archive_that_fails_is_reported_and_the_others_still_answer(
    node: Node, http: requests.Session
) -> None:
    """A TCIA that cannot be reached (nothing listens on the port): its error is in the answer."""
    added = http.post(
        url(node, "/v1/sources"),
        json={"kind": "tcia", "id": "tcia", "options": {"base_url": "http://127.0.0.1:9/"}},
    )
    assert added.status_code == 201, added.text
    try:
        answer = http.post(url(node, "/v1/matches"), json={"origin": ["lab"], "into": ["idc", "tcia"]})
        assert answer.status_code == 200, answer.text
        idc, tcia = answer.json()["archives"]
        assert idc["found"] == ["pa1", "pb1"] and idc["error"] is None
        assert tcia["found"] == [] and tcia["kinds"] == [] and "cannot be reached" in tcia["error"]
        refused = http.post(
            url(node, "/v1/matches/cohort"), json={"origin": ["lab"], "chosen": {"tcia": None}}
        )
        assert refused.status_code == 502 and refused.json()["code"] == "source"
        assert "tcia could not be searched" in refused.json()["message"]
        # A target below the patients cannot be searched for patients: that archive says so.
        deep = http.post(
            url(node, "/v1/matches"), json={"origin": ["lab"], "into": ["idc/lung_a/pa1"]}
        ).json()
        assert "reaches down to a patient" in deep["archives"][0]["error"]
    finally:
        assert http.delete(url(node, "/v1/sources/tcia")).status_code == 204


def test_a_cohort_of_the_chosen_kinds_is_held_by_a_set_that_names_who_is_missing(
    node: Node, http: requests.Session
) -> None:
    body = {"origin": ["lab"], "chosen": {"idc": ["CT"]}, "every": True}
    answer = http.post(url(node, "/v1/matches/cohort"), json=body)
    assert answer.status_code == 200, answer.text
    cohort = answer.json()
    assert (cohort["patients"], cohort["count"]) == (["pa1", "pb1"], 2)
    [text] = cohort["pointers"]
    rule = Pointer.parse(text)
    assert (rule.source_id, rule.path) == ("lab", ())
    assert dict(rule.filters) == {"@every": ("yes",), "@in": ("idc?Modality=CT",)}

    created = http.post(url(node, "/v1/sets"), json={"name": "lab and IDC CT", "add": [rule.to_json()]})
    assert created.status_code == 201, created.text
    rs = created.json()
    # pa1's and pb1's series in the lab, and their CTs in IDC (pa1 one, pb1 two); P1 nowhere.
    assert rs["head"] == 1 and rs["leaves"] == 2 + 3
    assert rs["warnings"] == [EVERY]

    # Without every, the lab keeps all its patients; every kind of IDC: one target, no filter.
    anyone = http.post(
        url(node, "/v1/matches/cohort"), json={**body, "chosen": {"idc": None}, "every": False}
    )
    assert anyone.json()["pointers"] == ["lab?%40in=idc"] and anyone.json()["count"] == 2
    both = http.post(url(node, "/v1/matches/cohort"), json={**body, "chosen": {"idc": ["CT", "MR"]}}).json()
    assert [dict(Pointer.parse(p).filters)["@in"] for p in both["pointers"]] == [("idc?Modality=CT,MR",)]


@pytest.mark.parametrize(
    ("path", "body", "status", "said"),
    [
        ("/v1/matches", {"origin": ["nowhere/x"]}, 404, "nowhere"),
        ("/v1/matches", {"origin": ["lab", "idc/lung_a"]}, 400, "one archive"),
        ("/v1/matches", {"origin": ["lab?Modality=US"]}, 400, "no patients to match"),
        ("/v1/matches", {}, 400, "no patients to match"),
        ("/v1/matches", {"origin": ["lab"], "colour": "teal"}, 422, "colour"),
        ("/v1/matches/cohort", {"origin": ["lab"], "chosen": {}}, 422, "chosen"),
        ("/v1/matches/cohort", {"patients": ["pa1"], "chosen": {"idc": None}}, 400, "give origin"),
        ("/v1/matches/cohort", {"origin": ["lab"], "chosen": {"idc": ["RNA-Seq"]}}, 400, "no RNA-Seq"),
        ("/v1/matches/cohort", {"origin": ["lab"], "chosen": {"idc": []}}, 422, "chosen"),
        (
            "/v1/matches/cohort",
            {"origin": ["lab"], "into": ["idc/lung_a"], "chosen": {"tcia": None}},
            400,
            "into leaves out",
        ),
        ("/v1/matches/cohort", {"origin": ["lab"], "chosen": {"tcia": None}}, 404, "tcia"),
    ],
)
def test_bad_matches_get_a_clear_typed_answer(
    node: Node, http: requests.Session, path: str, body: Any, status: int, said: str
) -> None:
    answer = http.post(url(node, path), json=body)
    assert answer.status_code == status, answer.text
    data = answer.json()
    assert data["error"] and data["code"] and said in data["message"]


def test_a_set_is_exported_and_imported_again_as_a_file(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    rule = {"source": "idc", "path": ["lung_a"], "filters": {"Modality": ["CT"]}}
    rs = http.post(url(node, "/v1/sets"), json={"name": "lung CT", "add": [rule]}).json()

    exported = http.get(url(node, f"/v1/sets/{rs['id']}/export"), params={"format": "mediator"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/json"
    assert exported.headers["content-disposition"] == 'attachment; filename="lung_CT_v1.json"'
    document = exported.json()
    assert (document["format"], document["version"], document["name"]) == ("mediator-set", 1, "lung CT")
    assert document["selection"] == [{"include": True, **rule}]
    assert document["exported_from"] == {"set_id": rs["id"], "version": 1}
    assert http.get(url(node, f"/v1/sets/{rs['id']}/export")).json() == document  # the default format

    # No GDC file in the set: no GDC manifest, and the answer says why.
    gdc = http.get(url(node, f"/v1/sets/{rs['id']}/export"), params={"format": "gdc", "version": 1})
    assert gdc.status_code == 400 and "holds nothing a gdc manifest lists" in gdc.json()["message"]
    assert http.get(url(node, f"/v1/sets/{rs['id']}/export"), params={"version": 7}).status_code == 404

    # Back in: the export as JSON text, under its file's name.
    text = {"name": "lung CT.json", "text": exported.text}
    back = http.post(url(node, "/v1/sets/import"), json=text)
    assert back.status_code == 201, back.text
    imported = back.json()
    assert (imported["version"], imported["count"], imported["missing"]) == (1, 1, [])
    assert imported["set"]["name"] == "lung CT 2" and imported["set"]["leaves"] == rs["leaves"]
    # A .tcia as the raw file: its series found in IDC, the one no archive holds reported.
    raw = tcia_manifest(tmp_path).read_bytes()
    answer = http.post(
        url(node, "/v1/sets/import"),
        params={"name": "lung.tcia", "visibility": "cluster"},
        data=raw,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 201, answer.text
    tcia = answer.json()
    assert (tcia["count"], tcia["missing"]) == (2, ["9.9.9.9"])
    assert (tcia["set"]["name"], tcia["set"]["visibility"], tcia["set"]["leaves"]) == ("lung", "cluster", 2)
    # And as a file on this machine.
    by_path = http.post(url(node, "/v1/sets/import"), json={"path": str(tmp_path / "lung.tcia")}).json()
    assert by_path["set"]["name"] == "lung 2" and by_path["count"] == 2


@pytest.mark.parametrize(
    ("fmt", "folder"), [("rocrate", "CT_rocrate_v1.crate"), ("bdbag", "CT_bdbag_v1.bag")]
)
def test_a_crate_or_bag_comes_back_zipped_or_as_its_folder(
    node: Node, http: requests.Session, tmp_path: Path, fmt: str, folder: str
) -> None:
    rule = {"source": "idc", "path": ["lung_a"], "filters": {"Modality": ["CT"]}}
    rs = http.post(url(node, "/v1/sets"), json={"name": f"CT {fmt}", "add": [rule]}).json()
    zipped = http.get(url(node, f"/v1/sets/{rs['id']}/export"), params={"format": fmt})
    assert zipped.status_code == 200, zipped.text
    assert zipped.headers["content-disposition"] == f'attachment; filename="{folder}.zip"'

    raw = http.post(
        url(node, "/v1/sets/import"),
        params={"name": f"{folder}.zip"},
        data=zipped.content,
        headers={"Content-Type": "application/zip"},
    )
    assert raw.status_code == 201, raw.text
    assert raw.json()["set"]["leaves"] == rs["leaves"] and raw.json()["missing"] == []
    assert raw.json()["set"]["name"] == f"CT {fmt} 2"

    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        archive.extractall(tmp_path)
    by_folder = http.post(url(node, "/v1/sets/import"), json={"path": str(tmp_path / folder)})
    assert by_folder.status_code == 201, by_folder.text
    assert by_folder.json()["set"]["leaves"] == rs["leaves"]

    # Edited by hand: refused as the user's file at fault (400), naming what changed.
    if fmt == "bdbag":
        with (tmp_path / folder / "fetch.txt").open("a") as fetch:
            fetch.write("https://example.org/extra\t1\tdata/extra\n")
    else:
        crate = tmp_path / folder / "ro-crate-metadata.json"
        lines = crate.read_text().splitlines()
        hashed = next(i for i, line in enumerate(lines) if '"#selection-sha256"' in line)
        lines[hashed] = re.sub(r"[0-9a-f]{64}", "0" * 64, lines[hashed])
        crate.write_text("\n".join(lines) + "\n")
    edited = http.post(url(node, "/v1/sets/import"), json={"path": str(tmp_path / folder)})
    assert edited.status_code == 400 and edited.json()["code"] == "edited_export", edited.text
    assert "changed by hand" in edited.json()["message"]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        ({"x.crate/../../evil": b"{}", "x.crate/ro-crate-metadata.json": b"{}"}, "outside its folder"),
        ({"a/notes.txt": b"hi", "b/notes.txt": b"hi"}, "2 top-level entries"),
        ({"photos/cat.jpg": b"\xff\xd8"}, "not of an RO-Crate or bag"),
        ({"x.crate/ro-crate-metadata.json": b"{broken"}, "not an RO-Crate written by MEDIator"),
    ],
)
def test_bad_zipped_exports_are_refused_and_make_no_set(
    node: Node, http: requests.Session, entries: dict[str, bytes], said: str
) -> None:
    before = len(http.get(url(node, "/v1/sets")).json())
    answer = http.post(
        url(node, "/v1/sets/import"),
        params={"name": "upload.zip"},
        data=_zip(entries),
        headers={"Content-Type": "application/zip"},
    )
    assert answer.status_code == 400, answer.text
    assert said in answer.json()["message"]
    assert len(http.get(url(node, "/v1/sets")).json()) == before


@pytest.mark.parametrize(
    ("params", "body", "content_type", "status", "said"),
    [
        ({}, b"ListOfSeriesToDownload=\n1.1\n", "text/plain", 400, "?name="),
        ({"name": "../x.tcia"}, b"ListOfSeriesToDownload=\n1.1\n", "text/plain", 400, "not a file name"),
        ({"name": "x.tcia"}, b"ListOfSeriesToDownload=\n8.8\n", "text/plain", 404, "none of the 1 items"),
        ({"name": "x.txt"}, b"hello", "application/octet-stream", 400, "none of the manifests"),
        ({"name": "x.tcia"}, b"\xff\xfe\x00", "application/octet-stream", 400, "not a text file"),
        ({}, {"name": "x.tcia"}, "application/json", 400, "and text"),
        ({}, {"path": "/x.tcia", "text": "a"}, "application/json", 400, "not both"),
        ({}, {"path": "relative.tcia"}, "application/json", 400, "absolute"),
        ({}, {"path": "/nonexistent/x.tcia"}, "application/json", 404, "no file"),
        ({}, {"path": "/"}, "application/json", 400, "folder"),
        ({}, {"name": "x\ud800.tcia", "text": "a"}, "application/json", 422, "valid string"),
        ({"name": "x.tcia"}, {"path": "/x.tcia"}, "application/json", 400, "JSON body"),
        ({}, {"path": "/x.tcia", "colour": "teal"}, "application/json", 422, "colour"),
        ({}, b"{not json", "application/json", 422, ""),
    ],
)
def test_bad_imports_get_a_clear_typed_answer(
    node: Node,
    http: requests.Session,
    params: dict[str, str],
    body: Any,
    content_type: str,
    status: int,
    said: str,
) -> None:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    answer = http.post(
        url(node, "/v1/sets/import"), params=params, data=data, headers={"Content-Type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] and said in answer.json()["message"]


def test_the_match_and_manifest_routes_keep_their_openapi_promises(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    """Generated requests against the match, import and export routes: documented answers only,
    never a server error; and answers that worked (generated requests seldom name a real archive,
    set or manifest) match the document too."""
    rule = {"source": "idc", "path": ["lung_b"]}
    rs = http.post(url(node, "/v1/sets"), json={"name": "for schemathesis", "add": [rule]}).json()
    assert node.api is not None
    token = node.api.token
    schema = schemathesis.openapi.from_url(url(node, "/openapi.json"))
    routes = schema.include(path_regex=r"^/v1/(matches|sets/import$|sets/\{set_id\}/export$)")
    labels = fuzz(routes, token, examples=25)
    assert sorted(labels) == [
        "GET /v1/sets/{set_id}/export",
        "POST /v1/matches",
        "POST /v1/matches/cohort",
        "POST /v1/sets/import",
    ]

    def call(method: str, path: str, status: int, **parts: Any) -> None:
        case = routes[path][method].Case(**parts)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text

    call("POST", "/v1/matches", 200, body={"origin": ["lab"], "into": ["idc", "lab/nothing-like-it"]})
    call("POST", "/v1/matches/cohort", 200, body={"origin": ["lab"], "chosen": {"idc": ["MR"]}})
    export = {"path_parameters": {"set_id": rs["id"]}}
    call("GET", "/v1/sets/{set_id}/export", 200, **export, query={"format": "mediator"})
    call("GET", "/v1/sets/{set_id}/export", 400, **export, query={"format": "gdc"})
    manifest = tcia_manifest(tmp_path).read_text(encoding="utf-8")
    text = {"name": "fuzz.tcia", "text": manifest}
    call("POST", "/v1/sets/import", 201, body=text, media_type="application/json")
    call("POST", "/v1/sets/import", 201, body=manifest, query={"name": "raw.tcia"}, media_type="text/plain")


# -- the SDK -------------------------------------------------------------------------------------
@pytest.fixture
def m(world: IdcWorld, mediator_home: Path, tmp_path: Path) -> Iterator[Mediator]:
    with_lab(world, mediator_home, lab_folder(tmp_path)).save(mediator_home / "config" / "settings.json")
    with Mediator() as client:
        yield client


def test_the_sdk_matches_a_cohort_and_holds_it_in_a_set(m: Mediator) -> None:
    found = m.match("lab")
    assert found.patients == ["P1", "pa1", "pb1"]
    idc = found.archive("idc")
    assert (idc.found, idc.missing, idc.error) == (["pa1", "pb1"], ["P1"], None)
    assert {k.label: (k.patients, k.leaves) for k in idc.kinds} == IDC_KINDS
    assert idc.kinds[0].filter is not None and idc.kinds[0].filter.name == "Modality"
    assert found.common({"idc": ["MR"]}) == ["pa1"] and found.common({"idc": None}) == ["pa1", "pb1"]
    with pytest.raises(KeyError):
        found.archive("tcia")
    assert m.match(["idc/lung_b"], into=["lab"]).archive("lab").found == ["pb1"]
    assert m.match(patients=["pa1"], into=["lab"]).archive("lab").found == ["pa1"]

    rules = m.match_cohort("lab", chosen={"idc": ["CT"]})
    assert len(rules) == 1 and dict(Pointer.parse(rules[0]).filters)["@every"] == ("yes",)
    with pytest.warns(MediatorWarning, match=r"^2 of 3 patients of lab have data in every archive joined"):
        rs = m.create_set("lab with IDC CT", add=rules)
    assert rs.leaves == 2 + 3 and rs.warnings == [EVERY]
    # Targets as given, built here: the same rule.
    assert m.match_cohort(["lab"], into=["idc?Modality=CT"]) == rules
    anyone = m.match_cohort("lab", into=["idc/lung_a"], every=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MediatorWarning)
        more = m.add(rs.id, *anyone)
    assert more.version == 2 and any("have data in idc/lung_a" in w for w in more.warnings)


def test_the_sdk_refuses_matches_it_cannot_make(m: Mediator) -> None:
    with pytest.raises(ValidationError, match=r"no patients to match"):
        m.match()
    with pytest.raises(NotFound, match=r"nowhere"):
        m.match("nowhere")
    with pytest.raises(ValidationError, match=r"no RNA-Seq"):
        m.match_cohort("lab", chosen={"idc": ["RNA-Seq"]})
    with pytest.raises(ValidationError, match=r"into="):
        m.match_cohort("lab")
    with pytest.raises(ValidationError, match=r"origin="):
        m.match_cohort([], into=["idc"])
    with pytest.raises(ValidationError, match=r"not to itself"):
        m.match_cohort("lab", into=["lab"])


def test_the_sdk_exports_a_set_and_imports_manifest_files(m: Mediator, tmp_path: Path) -> None:
    rs = m.create_set("lung B", add=["idc/lung_b"])
    text = m.export_set(rs.id)
    document = json.loads(text)
    assert document["format"] == "mediator-set" and document["name"] == "lung B"
    assert json.loads(m.export_set(rs.id, "mediator", version=1)) == document
    with pytest.raises(ValidationError, match=r"holds nothing a gdc manifest lists"):
        m.export_set(rs.id, "gdc")
    with pytest.raises(ValidationError):
        m.export_set(rs.id, "zip")  # type: ignore[call-overload]

    path = tmp_path / "lung B.json"
    path.write_text(text, encoding="utf-8")
    again = m.import_manifest(path)
    assert (again.set.name, again.count, again.missing, again.set.leaves) == ("lung B 2", 1, [], rs.leaves)
    with pytest.warns(MediatorWarning, match=r"^lung\.tcia: 1 item not in any archive configured here: 9"):
        tcia = m.import_manifest(tcia_manifest(tmp_path), visibility="cluster")
    assert (tcia.set.name, tcia.set.visibility, tcia.count, tcia.missing) == (
        "lung",
        "cluster",
        2,
        ["9.9.9.9"],
    )
    assert [leaf.path[-1] for leaf in m.leaves(tcia.set_id)] == ["1.1", "2.2"]
    with pytest.raises(NotFound, match=r"no file"):
        m.import_manifest(tmp_path / "missing.tcia")


# -- the command ---------------------------------------------------------------------------------
def mediator(capsys: pytest.CaptureFixture[str], *args: str, code: int = EXIT_OK) -> tuple[str, str]:
    """``mediator ARGS`` in this process, talking to the node of the ``m`` fixture; its output."""
    handlers = list(logging.getLogger().handlers)
    try:
        with warnings.catch_warnings():
            try:
                said = main(list(args))
            except SystemExit as exit:  # argparse refused the arguments
                said = int(exit.code or 0)
            assert said == code, capsys.readouterr()
    finally:
        for handler in set(logging.getLogger().handlers) - set(handlers):  # the command's log file
            logging.getLogger().removeHandler(handler)
            handler.close()
    out = capsys.readouterr()
    return out.out, out.err


def test_match_sets_and_manifest_files_from_a_terminal(
    m: Mediator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, err = mediator(capsys, "match", "lab")
    assert out.splitlines() == [
        "3 patients of lab",
        "idc (NCI Imaging Data Commons): 2 of 3 patients",
        "  radiology: CT 2, MR 1",
        "  none for P1",
    ]
    assert (
        "`mediator sets create NAME --match lab --in idc --every`\n  (some kinds only: --kind idc=CT)" in err
    )
    out, _ = mediator(capsys, "match", "idc/lung_a", "--patient", "pb1", "--in", "lab", "--in", "idc/lung_b")
    assert out.splitlines() == [
        "3 patients of idc/lung_a and 1 named",
        f"lab (Local folder {tmp_path / 'scanner'}): 2 of 3 patients",
        "  other: series 2",
        "  none for pa2",
        "idc/lung_b (NCI Imaging Data Commons): 1 of 3 patients",
        "  radiology: CT 1",
        "  none for pa1, pa2",
        "with data in every archive (lab, idc): 1 of 3 patients",
    ]
    as_json = json.loads(mediator(capsys, "--json", "match", "--patient", "pa1", "--in", "lab")[0])
    assert as_json["patients"] == ["pa1"] and as_json["archives"][0]["found"] == ["pa1"]
    _, err = mediator(capsys, "match", code=EXIT_USER_ERROR)
    assert "say whose data to find" in err
    mediator(capsys, "match", "nowhere", code=EXIT_NOT_FOUND)
    m.add_source("tcia", id="tcia", base_url="http://127.0.0.1:9/")
    out, _ = mediator(capsys, "match", "lab", "--in", "tcia", code=EXIT_ARCHIVE_ERROR)
    assert out.splitlines()[1].startswith("tcia (The Cancer Imaging Archive): could not be searched: ")

    # The match held in a set, joined: the warning names who is missing.
    out, err = mediator(
        capsys, "sets", "create", "Joined", "--match", "lab", "--in", "idc?Modality=CT", "--every"
    )
    assert out.startswith("Joined  [") and "  5 leaves, " in out
    assert f"warning: {EVERY}" in err
    shown, _ = mediator(capsys, "sets", "show", "Joined")
    assert "  + cohort lab in idc?Modality=CT (only patients every archive holds)" in shown.splitlines()
    added = json.loads(
        mediator(capsys, "--json", "sets", "add", "Joined", "--match", "idc/lung_a", "--in", "lab")[0]
    )
    assert added["version"] == 2 and added["set"]["leaves"] == 5 + 2  # and pa1's MR, pa2's CT
    assert "1 of 2 patients of idc/lung_a have data in lab; none for pa2" in added["warnings"]
    _, err = mediator(capsys, "sets", "create", "X", "--match", "lab", code=EXIT_USER_ERROR)
    assert "needs --in TARGET" in err
    _, err = mediator(capsys, "sets", "create", "X", "--match", "lab", "--cohort", "t", "--in", "idc", code=1)
    assert "give one at a time" in err
    _, err = mediator(capsys, "sets", "create", "X", "--add", "lab", "--every", code=EXIT_USER_ERROR)
    assert "--every goes with --match" in err
    # Kinds as `match` names them: the node finds their filters.
    kinds = ("--match", "lab", "--in", "idc", "--kind", "idc=CT", "--every")
    out, err = mediator(capsys, "sets", "create", "Kinds", *kinds)
    assert "  5 leaves, " in out and f"warning: {EVERY}" in err
    assert (
        "  + cohort lab in idc?Modality=CT (only patients every archive holds)"
        in mediator(capsys, "sets", "show", "Kinds")[0].splitlines()
    )
    for bad, said in (
        (("--kind", "idc=CT"), "--kind goes with --match"),
        (("--match", "lab", "--in", "idc", "--kind", "tcia=CT"), "tcia is not an archive of --in (idc)"),
        (("--match", "lab", "--in", "idc", "--kind", "CT"), "must be ARCHIVE=KIND"),
        (("--match", "lab", "--in", "idc", "--kind", "idc=RNA-Seq"), "idc holds no RNA-Seq here"),
    ):
        _, err = mediator(capsys, "sets", "create", "X", *bad, code=EXIT_USER_ERROR)
        assert said in err, (bad, err)

    # Export to standard output and to a file; import that file and a .tcia.
    out, _ = mediator(capsys, "sets", "export", "Joined", "--format", "mediator", "--version", "1")
    assert json.loads(out)["name"] == "Joined" and len(json.loads(out)["selection"]) == 1
    target = tmp_path / "joined.json"
    out, _ = mediator(capsys, "sets", "export", "Joined", "--format", "mediator", "-o", str(target))
    assert out == f"wrote a set export of Joined v2 (2 rules) to {target}\n"
    _, err = mediator(capsys, "sets", "export", "Joined", "--format", "gdc", code=EXIT_USER_ERROR)
    assert "holds nothing a gdc manifest lists" in err
    mediator(capsys, "sets", "export", "Joined", code=EXIT_USAGE)  # --format is required
    mediator(capsys, "sets", "create", "Empty")
    _, err = mediator(capsys, "sets", "export", "Empty", "--format", "mediator", code=EXIT_NOT_FOUND)
    assert "'Empty' has no versions yet" in err
    out, _ = mediator(capsys, "sets", "import", str(target))
    assert out.startswith("Joined 2  [") and "  imported from joined.json: 2 items found" in out
    out, err = mediator(capsys, "sets", "import", str(tcia_manifest(tmp_path)), "--visibility", "cluster")
    assert out.startswith("lung  [") and "visibility: cluster" in out and "2 items found" in out
    assert "warning: lung.tcia: 1 item not in any archive configured here" in err
    assert err.rstrip().endswith(": 9.9.9.9")
    failed = json.loads(mediator(capsys, "--json", "sets", "import", str(tmp_path), code=EXIT_USER_ERROR)[0])
    assert failed["error"] == "ValidationError" and "folder" in failed["message"]


# -- with the GDC (its emulator) -----------------------------------------------------------------
@pytest.fixture
def with_gdc(mediator_home: Path, tmp_path: Path) -> Iterator[Mediator]:
    """A node with a lab folder of two TCGA patients (and one of its own) and the GDC of six
    TCGA-LUAD cases."""
    from tests.helpers.gdc_emulator import GdcEmulator, catalogue_from_idc

    folder = tmp_path / "scanner"
    make_series(folder, "TCGA-05-4244", "8.1", "8.1.1", 1, modality="CT", pixels=8)
    make_series(folder, "TCGA-05-4249", "8.2", "8.2.1", 1, modality="CT", pixels=8)
    make_series(folder, "P1", "8.3", "8.3.1", 1, modality="CT", pixels=8)
    with GdcEmulator(catalogue_from_idc(("tcga_luad",), max_cases=6)) as gdc:
        sources = (
            {"kind": "local", "id": "lab", "options": {"folder": str(folder)}},
            {"kind": "gdc", "id": "gdc", "options": {"base_url": gdc.url}},
        )
        settings = Settings(
            data_dir=mediator_home / "data",
            download_dir=mediator_home / "downloads",
            sources=sources,
            discovery=False,
            update_check_minutes=0,
        )
        settings.save(mediator_home / "config" / "settings.json")
        with Mediator() as client:
            yield client


def test_gdc_files_of_a_match_go_out_as_a_gdc_manifest_and_come_back_as_a_set(
    with_gdc: Mediator, tmp_path: Path
) -> None:
    m = with_gdc
    found = m.match("lab", into=["gdc"])
    gdc = found.archive("gdc")
    assert (gdc.found, gdc.missing, gdc.error) == (["TCGA-05-4244", "TCGA-05-4249"], ["P1"], None)
    kinds = {k.label: k for k in gdc.kinds}
    assert "genomics" in {k.category for k in gdc.kinds} and "clinical" in {k.category for k in gdc.kinds}
    [strategy] = {k.filter.name for k in gdc.kinds if k.category == "genomics" and k.filter is not None}
    assert strategy == "experimental_strategy"
    label = max((k for k in gdc.kinds if k.category == "genomics"), key=lambda k: len(k.patients)).label
    chosen = kinds[label]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MediatorWarning)
        rs = m.create_set("lab and GDC", add=m.match_cohort("lab", chosen={"gdc": [label]}))
    assert rs.leaves == len(chosen.patients) + chosen.leaves  # a CT each in the lab, their files in GDC

    text = m.export_set(rs.id, "gdc")
    header, *rows = text.splitlines()
    assert header.split("\t") == ["id", "filename", "md5", "size", "state"] and len(rows) == chosen.leaves
    path = tmp_path / "gdc_manifest.txt"
    path.write_text(text, encoding="utf-8")
    back = m.import_manifest(path)
    assert (back.set.name, back.count, back.missing, back.set.leaves) == (
        "gdc_manifest",
        chosen.leaves,
        [],
        chosen.leaves,
    )
    # The same files, found again by their ids.
    gdc_files = {leaf.key: leaf.fingerprint for leaf in m.leaves(rs.id) if leaf.source == "gdc"}
    assert {leaf.key: leaf.fingerprint for leaf in m.leaves(back.set_id)} == gdc_files
