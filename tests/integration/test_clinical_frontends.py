"""Clinical tables and cohort joins through every frontend of a real node: the local API (and
schemathesis over its clinical routes), the Python SDK and the `mediator` command. A CSV of a few
patients is written here; the node has the small IDC and a local DICOM folder ``lab`` holding
two of them, so a cohort's warnings must say which patients have no data."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis

from mediator_desktop import Mediator
from mediator_desktop.cli import EXIT_NOT_FOUND, EXIT_USAGE, EXIT_USER_ERROR
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.node import Node
from mediator_desktop.sdk import MediatorWarning
from tests.helpers.dicom import make_series
from tests.helpers.idc_world import IdcWorld
from tests.integration.test_cli import HeadlessNode, as_json, mediator
from tests.integration.test_local_api import fuzz, url

pytestmark = pytest.mark.timeout(180)

#: Five patients: P1 and P2 have series in ``lab``, pa1 in IDC's lung_a; P3 is too young; P4 has
#: no data anywhere.
CSV = """PatientID,age,stage,smoking
P1,64,III,yes
P2,71,IIIA,
P3,58,II,no
P4,66,III,yes
pa1,80,IV,yes
"""
OLD = {"P1", "P2", "P4", "pa1"}  # age>=60


def lab_folder(root: Path) -> Path:
    folder = root / "scanner"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", pixels=8)
    return folder


def with_lab(world: IdcWorld, home: Path, folder: Path) -> Any:
    """Settings of a node in ``home`` with the small IDC and the folder as archive ``lab``; no
    scheduled update checks."""
    lab = {"kind": "local", "id": "lab", "options": {"folder": str(folder)}}
    base = world.settings(home)
    return world.settings(home, sources=(*base.sources, lab), update_check_minutes=0)


def write_csv(folder: Path, name: str = "trial.csv", text: str = CSV) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the local API -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node(world: IdcWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("clinical")
    home = root / "home"
    settings = with_lab(world, home, lab_folder(root))
    with Node(settings, settings_path=home / "settings.json", api=True) as started:
        yield started


def test_a_table_is_previewed_added_and_queried_over_the_api(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path)
    preview = http.post(url(node, "/v1/tables/preview"), json={"path": str(path)})
    assert preview.status_code == 200, preview.text
    seen = preview.json()
    assert (seen["filename"], seen["rows"], seen["key_guess"], seen["problems"]) == (
        "trial.csv",
        5,
        "PatientID",
        [],
    )
    kinds = {c["name"]: c["kind"] for c in seen["columns"]}
    assert kinds == {"PatientID": "text", "age": "number", "stage": "text", "smoking": "text"}
    assert seen["head"][0] == ["P1", "64", "III", "yes"]
    assert "trial" not in [t["name"] for t in http.get(url(node, "/v1/tables")).json()]  # nothing stored

    added = http.post(url(node, "/v1/tables"), json={"path": str(path), "name": "trial"})
    assert added.status_code == 200, added.text
    table = added.json()
    assert (table["name"], table["number"], table["key_column"], table["rows"]) == (
        "trial",
        1,
        "PatientID",
        5,
    )
    assert table["columns"] == ["PatientID", "age", "stage", "smoking"] and table["filename"] == "trial.csv"
    assert table["author"] == node.service.key_id and table["author_name"] == node.service.display_name
    again = http.post(url(node, "/v1/tables"), json={"path": str(path), "name": "trial"}).json()
    assert (again["number"], again["table_id"]) == (1, table["table_id"])  # the same content: no new version
    assert "trial" in [t["name"] for t in http.get(url(node, "/v1/tables")).json()]
    shown = http.get(url(node, "/v1/tables/trial")).json()
    assert shown["table"] == table and shown["history"] == [table]

    columns = {c["name"]: c for c in http.get(url(node, "/v1/tables/trial/columns")).json()}
    assert columns["age"]["kind"] == "number" and columns["age"]["blanks"] == 0
    assert float(columns["age"]["low"]) == 58 and float(columns["age"]["high"]) == 80
    assert columns["smoking"]["blanks"] == 1 and columns["PatientID"]["distinct"] == 5
    values = http.get(url(node, "/v1/tables/trial/columns/stage/values")).json()
    assert {v["value"]: v["count"] for v in values} == {"III": 2, "IIIA": 1, "II": 1, "IV": 1}
    assert len(http.get(url(node, "/v1/tables/trial/columns/stage/values"), params={"limit": 1}).json()) == 1

    selected = http.post(url(node, "/v1/tables/trial/select"), json={"conditions": ["age>=60"]}).json()
    assert set(selected["patients"]) == OLD and selected["count"] == 4
    narrow = {"conditions": ["age=60..70", "stage=III,IIIA", "smoking=*"]}
    assert http.post(url(node, "/v1/tables/trial/select"), json=narrow).json()["patients"] == ["P1", "P4"]
    everyone = http.post(url(node, "/v1/tables/trial/select"), json={}).json()
    assert everyone["count"] == 5
    rows = http.get(url(node, "/v1/tables/trial/rows"), params={"keys": ["P3", "P1"]}).json()
    assert rows["columns"] == ["PatientID", "age", "stage", "smoking"]
    assert sorted(rows["rows"]) == [["P1", "64", "III", "yes"], ["P3", "58", "II", "no"]]
    assert len(http.get(url(node, "/v1/tables/trial/rows"), params={"limit": 2}).json()["rows"]) == 2


def test_a_cohort_join_is_previewed_and_held_by_a_set_whose_warnings_name_the_missing(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path)
    assert http.post(url(node, "/v1/tables"), json={"path": str(path), "name": "cohort"}).status_code == 200
    body = {"table": "cohort", "conditions": ["age>=60"], "targets": ["lab", "idc/lung_a"]}
    answer = http.post(url(node, "/v1/joins/preview"), json=body)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert set(preview["patients"]) == OLD
    by_target = {t["target"]: t for t in preview["targets"]}
    assert set(by_target) == {"lab", "idc/lung_a"}
    assert (by_target["lab"]["patients"], by_target["lab"]["found"]) == (4, 2)
    assert sorted(by_target["lab"]["missing"]) == ["P4", "pa1"]
    assert by_target["idc/lung_a"]["found"] == 1 and sorted(by_target["idc/lung_a"]["missing"]) == [
        "P1",
        "P2",
        "P4",
    ]
    pointer = Pointer.parse(preview["pointer"])
    assert pointer.source_id == "clinical" and pointer.path == ("cohort",)

    # The pointer goes through the set routes unchanged; what the join leaves out is a warning.
    created = http.post(url(node, "/v1/sets"), json={"name": "old patients", "add": [pointer.to_json()]})
    assert created.status_code == 201, created.text
    rs = created.json()
    # The four rows of the table, lab's series of P1 and P2, and pa1's CT and MR in idc/lung_a.
    assert rs["head"] == 1 and rs["leaves"] == 4 + 2 + 2
    [lab] = [w for w in rs["warnings"] if "have data in lab" in w]
    assert lab.startswith("2 of 4 patients of clinical/cohort have data in lab; none for ")
    assert "P4" in lab and "pa1" in lab
    assert any(
        w.startswith("1 of 4 patients of clinical/cohort have data in idc/lung_a") for w in rs["warnings"]
    )
    # Adding the same cohort to an existing set: nothing changes, the notes come again.
    same = http.post(url(node, f"/v1/sets/{rs['id']}/versions"), json={"add": [pointer.to_json()]}).json()
    assert same["version"] is None and any("have data in lab" in w for w in same["warnings"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "said"),
    [
        ("POST", "/v1/tables", {"path": "relative/trial.csv"}, 400, "absolute"),
        ("POST", "/v1/tables", {"path": "/nonexistent/trial.csv"}, 404, "no file"),
        ("POST", "/v1/tables", {"path": "/"}, 400, "folder"),
        ("POST", "/v1/tables", {"path": "/dev/null"}, 400, "not a regular file"),
        ("POST", "/v1/tables", {"path": "/tmp/x\u0000.csv"}, 400, "cannot read"),
        ("POST", "/v1/tables", {"path": "/x.csv", "colour": "teal"}, 422, ""),
        ("POST", "/v1/tables/preview", {"path": ""}, 422, ""),
        ("GET", "/v1/tables/nothing-like-it", None, 404, "nothing-like-it"),
        ("GET", "/v1/tables/nothing-like-it/columns", None, 404, "nothing-like-it"),
        ("GET", "/v1/tables/nothing-like-it/rows", None, 404, "nothing-like-it"),
        ("GET", "/v1/tables/trial/columns/stage/values?limit=0", None, 422, ""),
        ("POST", "/v1/tables/nothing-like-it/select", {"conditions": ["age>=60"]}, 404, "nothing-like-it"),
        ("POST", "/v1/joins/preview", {"table": "trial", "targets": []}, 422, ""),
        (
            "POST",
            "/v1/joins/preview",
            {"table": "nothing-like-it", "targets": ["lab"]},
            404,
            "nothing-like-it",
        ),
    ],
)
def test_bad_table_requests_get_a_clear_typed_answer(
    node: Node, http: requests.Session, method: str, path: str, body: Any, status: int, said: str
) -> None:
    answer = http.request(method, url(node, path), json=body)
    assert answer.status_code == status, answer.text
    data = answer.json()
    assert data["error"] and data["code"] and data["message"]
    assert said in data["message"]


def test_bad_files_and_conditions_on_a_real_table_are_refused(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path)
    assert http.post(url(node, "/v1/tables"), json={"path": str(path), "name": "trial"}).status_code == 200
    garbage = tmp_path / "scan.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    refused = http.post(url(node, "/v1/tables"), json={"path": str(garbage)})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "validation" and "scan.csv" in refused.json()["message"]
    no_key = http.post(url(node, "/v1/tables"), json={"path": str(path), "key_column": "Nope"})
    assert no_key.status_code == 400 and "Nope" in no_key.json()["message"]
    for condition in ("age", "nope>=3", "age>=old"):
        bad = http.post(url(node, "/v1/tables/trial/select"), json={"conditions": [condition]})
        assert bad.status_code == 400, (condition, bad.text)
        assert bad.json()["code"] == "validation"
    no_archive = {"table": "trial", "conditions": [], "targets": ["tcia/LIDC-IDRI"]}
    missing = http.post(url(node, "/v1/joins/preview"), json=no_archive)
    assert missing.status_code == 404 and "tcia" in missing.json()["message"]
    too_deep = {"table": "trial", "conditions": [], "targets": ["lab/P1/1.2.1"]}
    assert http.post(url(node, "/v1/joins/preview"), json=too_deep).status_code == 400


def test_the_clinical_routes_keep_their_openapi_promises(
    node: Node, http: requests.Session, tmp_path: Path
) -> None:
    """Generated requests against the table and join routes (with a table present): documented
    answers only, never a server error."""
    assert http.post(url(node, "/v1/tables"), json={"path": str(write_csv(tmp_path)), "name": "trial"}).ok
    assert node.api is not None
    schema = schemathesis.openapi.from_url(url(node, "/openapi.json"))
    labels = fuzz(schema.include(path_regex=r"^/v1/(tables|joins)"), node.api.token, examples=25)
    assert "POST /v1/joins/preview" in labels and "GET /v1/tables/{name}/rows" in labels
    assert len(labels) == 9


# -- the SDK -------------------------------------------------------------------------------------
@pytest.fixture
def m(world: IdcWorld, mediator_home: Path, tmp_path: Path) -> Iterator[Mediator]:
    with_lab(world, mediator_home, lab_folder(tmp_path)).save(mediator_home / "config" / "settings.json")
    with Mediator() as client:
        yield client


def test_the_sdk_adds_a_table_selects_patients_and_builds_a_cohort_set(m: Mediator, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "tables")
    preview = m.preview_table(path)
    assert (preview.key_guess, preview.rows, preview.problems) == ("PatientID", 5, [])
    table = m.add_table(path, name="trial")
    assert (table.name, table.number, table.key_column, table.rows) == ("trial", 1, "PatientID", 5)
    assert [t.name for t in m.tables()] == ["trial"]
    assert m.table("trial").table == table
    kinds = {c.name: c.kind for c in m.table_columns("trial")}
    assert kinds["age"] == "number" and kinds["stage"] == "text"
    assert {v.value: v.count for v in m.table_values("trial", "stage")}["III"] == 2
    assert set(m.select_patients("trial", "age>=60")) == OLD
    assert m.select_patients("trial", "age>=60", "smoking=!") == ["P2"]
    rows = m.table_rows("trial", keys=["P2"])
    assert rows.rows == [["P2", "71", "IIIA", ""]]
    # A column name may hold any character, "/" too.
    m.add_table(write_csv(tmp_path / "units", text="PatientID,weight/kg,a%b?\nP1,64,x\n"), name="units")
    assert [(v.value, v.count) for v in m.table_values("units", "weight/kg")] == [("64", 1)]
    assert [v.value for v in m.table_values("units", "a%b?")] == ["x"]
    # A new file under the same name is version 2.
    m.add_table(write_csv(tmp_path / "v2", text=CSV + "P5,90,IV,no\n"), name="trial")
    assert [v.number for v in m.table("trial").history] == [1, 2]

    cohort = m.cohort("trial", "age>=60", into=["lab"])
    assert Pointer.parse(cohort).path == ("trial",)
    joined = m.preview_join("trial", "age>=60", into=["lab"])
    assert joined.pointer == cohort
    [lab] = joined.targets
    assert (lab.target, lab.patients, lab.found, sorted(lab.missing)) == ("lab", 5, 2, ["P4", "P5", "pa1"])
    with pytest.warns(
        MediatorWarning, match=r"^2 of 5 patients of clinical/trial have data in lab; none for "
    ):
        rs = m.create_set("cohort", add=[cohort])
    assert rs.leaves == 5 + 2 and any("none for P4, P5, pa1" in w for w in rs.warnings)  # rows, series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MediatorWarning)
        more = m.add(rs.id, m.cohort("trial", "stage=IV", into=["idc/lung_a"]))
    assert more.version == 2 and more.set.leaves == 5 + 2 + 2  # and pa1's two series in lung_a
    # A new version of the table is an update of the set: one patient (and row) more.
    m.add_table(write_csv(tmp_path / "v3", text=CSV + "P5,90,IV,no\nP6,61,II,no\n"), name="trial")
    [check] = m.check(rs.id)
    assert check.drift is not None and check.line.startswith("cohort v2: update found: +1 patient")
    assert m.drift_diff(rs.id).added_leaves == ["clinical/trial/P6"]


def test_the_sdk_raises_typed_errors_for_bad_files_and_conditions(m: Mediator, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"no file .*missing\.csv"):
        m.add_table(tmp_path / "missing.csv")
    garbage = tmp_path / "scan.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ValidationError, match=r"scan\.csv"):
        m.add_table(garbage)
    with pytest.raises(ValidationError, match=r"folder"):
        m.preview_table(tmp_path)
    m.add_table(write_csv(tmp_path / "tables"), name="trial")
    with pytest.raises(NotFound):
        m.table("nothing-like-it")
    with pytest.raises(ValidationError):
        m.select_patients("trial", "age")
    with pytest.raises(ValidationError):
        m.cohort("trial", "age", into=["lab"])
    with pytest.raises(ValidationError, match=r"into="):
        m.cohort("trial", "age>=60", into=[])


# -- the command ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_tables_and_cohort_sets_from_a_terminal(world: IdcWorld, mediator_home: Path, tmp_path: Path) -> None:
    with_lab(world, mediator_home, lab_folder(tmp_path)).save(mediator_home / "config" / "settings.json")
    path = write_csv(tmp_path / "tables")
    node = HeadlessNode(mediator_home)
    try:
        previewed = mediator(mediator_home, "tables", "preview", str(path)).stdout.splitlines()
        assert previewed[0] == "trial.csv: 5 rows, key column PatientID (guessed; another with --key COLUMN)"
        assert as_json(mediator(mediator_home, "--json", "tables", "list")) == []
        added = mediator(mediator_home, "tables", "add", str(path), "--name", "trial", "--key", "PatientID")
        lines = added.stdout.splitlines()
        assert lines[0] == "trial v1: 5 rows, key column PatientID, from trial.csv"
        assert lines[1].split() == ["column", "kind", "blanks", "distinct", "range"]
        assert lines[2].split()[:3] == ["PatientID", "(key)", "text"]
        assert lines[3].split() == ["age", "number", "0", "5", "58", "..", "80"]
        assert "first 5 rows:" in lines and lines[-5].split() == ["P1", "64", "III", "yes"]
        assert "mediator sets create NAME --cohort trial" in added.stderr
        same = mediator(mediator_home, "tables", "add", str(path), "--name", "trial").stdout
        assert same.startswith("trial v1: 5 rows") and "(unchanged" in same.splitlines()[0]
        [listed] = mediator(mediator_home, "tables", "list").stdout.splitlines()
        assert listed.startswith("trial\tv1\t5 rows\tkey PatientID\t4 columns\t")
        shown = mediator(mediator_home, "tables", "show", "trial").stdout.splitlines()
        assert shown[0] == "trial v1: 5 rows, key column PatientID, from trial.csv"
        assert any(line.split()[:2] == ["smoking", "text"] and line.split()[2] == "1" for line in shown)
        values = mediator(mediator_home, "tables", "values", "trial", "stage").stdout.splitlines()
        assert "III\t2" in values and len(values) == 4
        selected = mediator(mediator_home, "tables", "select", "trial", "age>=60")
        assert set(selected.stdout.split()) == OLD and "(4 patients)" in selected.stderr
        counted = mediator(mediator_home, "tables", "select", "trial", "age>=60", "stage=III", "--count")
        assert counted.stdout.strip() == "2"
        rows = mediator(mediator_home, "tables", "rows", "trial", "P3").stdout.splitlines()
        assert [r.split() for r in rows] == [
            ["PatientID", "age", "stage", "smoking"],
            ["P3", "58", "II", "no"],
        ]
        joined = mediator(
            mediator_home, "tables", "join", "trial", "age>=60", "--in", "lab"
        ).stdout.splitlines()
        assert joined[0] == "trial: 4 patients where age>=60"
        assert joined[1].startswith("lab: 2 of 4 patients found; missing: ")
        assert set(joined[1].split("missing: ")[1].split(", ")) == {"P4", "pa1"}
        assert joined[2].startswith("pointer: clinical/trial?")

        # A set of the cohort: the coverage notes come as the set commands' warnings.
        created = mediator(
            mediator_home, "sets", "create", "Old", "--cohort", "trial", "--where", "age>=60", "--in", "lab"
        )
        assert created.stdout.startswith("Old  [") and "  6 leaves, " in created.stdout  # 4 rows, 2 series
        assert "warning: 2 of 4 patients of clinical/trial have data in lab; none for " in created.stderr
        added_to = as_json(
            mediator(
                mediator_home,
                "--json",
                "sets",
                "add",
                "Old",
                "--cohort",
                "trial",
                "--where",
                "stage=IV",
                "--in",
                "idc/lung_a",
            )
        )
        assert added_to["version"] == 2 and added_to["set"]["leaves"] == 6 + 2  # and pa1's two series
        # Every cohort of the set is joined again: lab still lacks two; lung_a holds pa1, the one of stage IV.
        assert [w for w in added_to["warnings"] if "clinical/trial" in w] == [
            w for w in added_to["warnings"] if "have data in lab; none for " in w
        ]
        assert any("have data in lab" in w for w in added_to["warnings"])
        shown_set = mediator(mediator_home, "sets", "show", "Old").stdout
        assert "clinical/trial" in shown_set

        # Errors: exit codes and messages that say what to do.
        missing = mediator(mediator_home, "tables", "add", str(tmp_path / "nope.csv"), code=EXIT_NOT_FOUND)
        assert "no file" in missing.stderr and "nope.csv" in missing.stderr
        failed = as_json(
            mediator(mediator_home, "--json", "tables", "add", str(tmp_path), code=EXIT_USER_ERROR)
        )
        assert failed["error"] == "ValidationError" and "folder" in failed["message"]
        no_in = mediator(mediator_home, "sets", "create", "X", "--cohort", "trial", code=EXIT_USER_ERROR)
        assert "needs --in TARGET" in no_in.stderr
        stray = mediator(mediator_home, "sets", "create", "X", "--in", "lab", code=EXIT_USER_ERROR)
        assert "go with --cohort" in stray.stderr
        nothing = mediator(mediator_home, "sets", "add", "Old", code=EXIT_USER_ERROR)
        assert "say what to add" in nothing.stderr
        bad = mediator(mediator_home, "tables", "select", "trial", "age", code=EXIT_USER_ERROR)
        assert bad.stderr.startswith("mediator: ")
        mediator(mediator_home, "tables", "show", "nothing-like-it", code=EXIT_NOT_FOUND)
        mediator(mediator_home, "tables", "join", "trial", "age>=60", code=EXIT_USAGE)  # --in is required
        assert [s["name"] for s in json.loads(mediator(mediator_home, "--json", "sets", "list").stdout)] == [
            "Old"
        ]
    finally:
        node.stop()
