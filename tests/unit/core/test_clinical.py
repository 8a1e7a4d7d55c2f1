"""Clinical tables: the filter language, tables in a real one-node store, and the built-in source
``clinical`` (browse, resolve, cohorts, downloads)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from mediator_desktop.core.clinical import (
    JOIN_FILTER,
    Clinical,
    ClinicalSource,
    csv_line,
    describe_filters,
    guess_key,
    join_pointer,
    join_targets,
    parse_condition,
    parse_conditions,
    parse_test,
    row_text,
    rows_text,
)
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import IntegrityError, NotFound, ValidationError
from mediator_desktop.core.events import TableAdded
from mediator_desktop.core.manifest import Fingerprint, Leaf
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.clinical import PandasTables
from tests.helpers.service import World, recording, world

TRIAL = """PatientID,age,stage,smoking,diagnosed
P1,64,III,yes,2004-03-12
P2,58,II,,2006-11-02
P3,71,IIA,no,2001-01-30
P4,60.0,IV,yes,
P5,45,IIB,NA,2010-07-15
"""


# -- the filter language ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age>=60", ("age", (">=60",))),
        ("age <= 70", ("age", ("<=70",))),
        ("age>60", ("age", (">60",))),
        ("age<60", ("age", ("<60",))),
        ("age=60..70", ("age", ("60..70",))),
        ("age=60..", ("age", (">=60",))),
        ("age=..70", ("age", ("<=70",))),
        ("age==60", ("age", ("60",))),
        ("stage=II,IIA,IIB", ("stage", ("II", "IIA", "IIB"))),
        ("stage = II, IIA", ("stage", ("II", "IIA"))),
        ("smoking=*", ("smoking", ("*",))),
        ("smoking=!", ("smoking", ("!",))),
        ('smoking=""', ("smoking", ("!",))),
        ("Case ID=TCGA-02-0001", ("Case ID", ("TCGA-02-0001",))),
        ("diagnosed=2004-01-01..2004-12-31", ("diagnosed", ("2004-01-01..2004-12-31",))),
        ('diagnosis="Adenocarcinoma, NOS",Other', ("diagnosis", ("Adenocarcinoma, NOS", "Other"))),
        ('note="say ""hi"""', ("note", ('say "hi"',))),
        ('note="*"', ("note", ("=*",))),
        ('note="1..2", ">5"', ("note", ("=1..2", "=>5"))),
    ],
)
def test_conditions_read_as_columns_and_expressions(text: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age", r"'age' is no condition: a condition is COLUMN=VALUE"),
        ("=60", r"'=60' is no condition"),
        ("age>=", r"'age>=': >= takes one number or date, e\.g\. age>=60"),
        ("age>=60,70", r"takes one number or date"),
        ("stage=II,,III", r"has an empty value: write stage=! for blank cells, stage=\* for any"),
        ("stage=", r"has an empty value"),
        ('note="open', r"a quote is not closed"),
        ('note="a"b', r"after a quoted value comes a comma"),
        ("age=..", r"a range needs at least one end"),
    ],
)
def test_malformed_conditions_are_refused_with_the_syntax(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_condition(text)


def test_expressions_read_back() -> None:
    assert parse_test("60") == parse_test(" 60 ")
    assert parse_test("=*").value == "*" and parse_test("=*").kind == "equal"
    assert (parse_test(">60").low, parse_test(">60").low_strict) == ("60", True)
    assert (parse_test("60..70").low, parse_test("60..70").high) == ("60", "70")
    assert str(parse_test(" 60 .. 70 ")) == "60..70"
    assert parse_test("= padded ").value == " padded " and str(parse_test("= padded ")) == "= padded "
    assert parse_test(" =x").value == "x"
    with pytest.raises(ValidationError, match="empty filter value"):
        parse_test(" ")


def test_conditions_are_anded_and_two_bounds_make_a_range() -> None:
    assert parse_conditions(["stage=II,III", "age>=60", "age<=70"]) == (
        ("age", ("60..70",)),
        ("stage", ("II", "III")),
    )
    assert parse_conditions("age>=60") == (("age", (">=60",)),)
    assert parse_conditions([]) == ()
    with pytest.raises(ValidationError, match=r"cannot be combined; .* e\.g\. age=60\.\.70"):
        parse_conditions(["age>60", "age<70"])
    with pytest.raises(ValidationError, match=r"column 'stage' has 2 conditions: give its values in one"):
        parse_conditions(["stage=II", "stage=III"])


@pytest.mark.parametrize(
    "conditions",
    [
        ["age>=60", "stage=II,IIA"],
        ["age=60..70", "smoking=!"],
        ['diagnosis="Adenocarcinoma, NOS",x', "note=*"],
        ['note="*"', 'q="say ""hi"""'],
        ["diagnosed<2004-01-01"],
    ],
)
def test_filters_are_described_as_conditions_that_read_back(conditions: list[str]) -> None:
    filters = parse_conditions(conditions)
    assert parse_conditions(describe_filters(filters)) == filters
    assert describe_filters((*filters, (JOIN_FILTER, ("idc/nlst",)))) == describe_filters(filters)


def test_a_join_pointer_carries_its_targets_and_reads_back() -> None:
    targets = [Pointer.of("idc", "nlst", Modality=["CT", "MR"]), Pointer.of("tcia", "TCGA-LUAD")]
    filters = parse_conditions(["age>=60", "stage=II,III"])
    pointer = join_pointer("trial", filters, targets)
    assert pointer.source_id == "clinical" and pointer.path == ("trial",)
    assert dict(pointer.filters)[JOIN_FILTER] == ("idc/nlst?Modality=CT,MR", "tcia/TCGA-LUAD")
    assert join_targets(pointer) == sorted(targets, key=str)
    again = Pointer.parse(str(pointer))  # through text (a set's rules, the CLI, the API)
    assert again == pointer and join_targets(again) == join_targets(pointer)
    assert join_pointer("trial", {"age": ">=60"}, targets[:1]).filters[0] == (
        "@in",
        ("idc/nlst?Modality=CT,MR",),
    )
    assert join_pointer("trial", pointer.filters, targets[1:]) == join_pointer("trial", filters, targets[1:])
    assert join_targets(Pointer.of("clinical", "trial")) == []
    with pytest.raises(ValidationError, match="at least one pointer"):
        join_pointer("trial", filters, [])


def test_the_key_column_is_guessed_from_the_usual_names() -> None:
    assert guess_key(["age", "patient_id", "stage"]) == "patient_id"
    assert guess_key(["Subject-ID", "Case ID"]) == "Case ID"  # the better name first
    assert guess_key(["BCR Patient Barcode", "submitter_id"]) == "BCR Patient Barcode"
    assert guess_key(["PATIENTID"]) == "PATIENTID"
    assert guess_key(["age", "stage"]) is None
    assert guess_key(["PatientID", "case_submitter_id"], lambda c: c != "PatientID") == "case_submitter_id"
    assert guess_key(["PatientID"], lambda c: False) == "PatientID"  # unusable, but the only one


def test_rows_and_csv_lines_are_written_plainly() -> None:
    assert rows_text([5]) == "row 5"
    assert rows_text([3, 7, 9]) == "rows 3, 7 and 9"
    assert rows_text(list(range(2, 14)), 3) == "rows 2, 3, 4 and 9 more"
    assert csv_line(["a", "b, c", 'say "hi"', "", "two\nlines"]) == 'a,"b, c","say ""hi""",,"two\nlines"'
    assert row_text(["id", "x"], ["P1", ""]) == "id,x\nP1,\n"


# -- tables in the store ---------------------------------------------------------------------------
@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path) as w:
        yield w


@pytest.fixture
def clinical(lab: World, tmp_path: Path) -> Clinical:
    service = lab.service("alice")
    return Clinical(service._signer, lab.store, PandasTables(), tmp_path / "alice-data")


def write(folder: Path, name: str, text: str = TRIAL) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_table_is_added_versioned_and_listed(clinical: Clinical, lab: World, tmp_path: Path) -> None:
    path = write(tmp_path, "trial.csv")
    assert clinical.preview(path).key_guess == "PatientID"
    assert clinical.tables() == []  # a preview stores nothing
    v1 = clinical.add(path)
    assert (v1.name, v1.number, v1.key_column, v1.rows, v1.filename) == (
        "trial",
        1,
        "PatientID",
        5,
        "trial.csv",
    )
    assert v1.columns == ("PatientID", "age", "stage", "smoking", "diagnosed")
    assert lab.store.state.tables["trial"] == [v1]
    # The same content again makes no version, and sends nothing.
    applied = lab.store.state.applied
    assert clinical.add(path) == v1
    assert lab.store.state.applied == applied
    # A changed file under the same name is version 2; other names are other tables.
    changed = write(tmp_path, "trial-2.csv", TRIAL.replace("P2,58", "P2,59"))
    v2 = clinical.add(changed, name="trial")
    assert (v2.number, v2.filename) == (2, "trial-2.csv")
    other = clinical.add(changed, name="Lung trial (2024)", key_column="PatientID")
    assert [t.name for t in clinical.tables()] == ["Lung trial (2024)", "trial"]
    assert [v.number for v in clinical.history("trial")] == [1, 2]
    assert clinical.get("trial") == v2 and clinical.get("trial", 1) == v1
    assert other.table_id == v2.table_id and len(lab.store.state.table_blobs) == 2
    with pytest.raises(
        NotFound, match=r"no clinical table 'trail' \(the tables: 'Lung trial \(2024\)', 'trial'\)"
    ):
        clinical.get("trail")
    with pytest.raises(NotFound, match=r"table 'trial' has no version 3 \(it has 1 to 2\)"):
        clinical.get("trial", 3)


def test_every_member_reads_a_table_from_the_store(clinical: Clinical, lab: World, tmp_path: Path) -> None:
    path = write(tmp_path, "trial.csv")
    bob = lab.service("bob")
    with recording(bob, TableAdded) as seen:
        clinical.add(path)
    path.unlink()  # the file is gone: the store has the table
    theirs = Clinical(bob._signer, lab.store, PandasTables(), None)
    assert theirs.select("trial", parse_conditions(["age>=60"])) == ["P1", "P3", "P4"]
    assert seen == [TableAdded("trial", 1, seq=seen[0].seq)]


def test_bad_input_registers_nothing(clinical: Clinical, lab: World, tmp_path: Path) -> None:
    dupes = write(tmp_path, "dupes.csv", "PatientID,age\nP1,1\nP1,2\n")
    with pytest.raises(ValidationError, match=r"'P1' in rows 2 and 3"):
        clinical.add(dupes)
    with pytest.raises(ValidationError, match=r"the table name 'a/b' holds a '/'"):
        clinical.add(write(tmp_path, "ok.csv"), name="a/b")
    with pytest.raises(ValidationError, match=r"table name is empty"):
        clinical.add(write(tmp_path, "ok.csv"), name="  ")
    with pytest.raises(ValidationError, match=r"no column of plain\.csv looks like a patient key"):
        clinical.add(write(tmp_path, "plain.csv", "who,age\nA,1\n"))
    with pytest.raises(NotFound, match=r"no file"):
        clinical.add(tmp_path / "missing.csv")
    assert clinical.tables() == [] and not lab.store.state.table_blobs and not lab.store.state._table_uploads


def test_columns_values_selections_and_rows(clinical: Clinical, tmp_path: Path) -> None:
    clinical.add(write(tmp_path, "trial.csv"))
    columns = {c.name: c for c in clinical.columns("trial")}
    assert (columns["age"].kind, columns["age"].low, columns["age"].high) == ("number", "45", "71")
    assert clinical.values("trial", "smoking") == [("yes", 2), ("(blank)", 2), ("no", 1)]
    assert clinical.values("trial", "stage", limit=1) == [("II", 1)]
    assert clinical.select("trial", {"age": ">=60", "smoking": "yes"}) == ["P1", "P4"]
    assert clinical.select("trial", parse_conditions(["stage=II,IIA,IIB", "age=50..60"])) == ["P2"]
    assert clinical.select("trial", {}) == ["P1", "P2", "P3", "P4", "P5"]
    header, rows = clinical.rows("trial", keys={"P4", "P2", "nobody"})
    assert header == ("PatientID", "age", "stage", "smoking", "diagnosed")
    assert rows == [("P2", "58", "II", "", "2006-11-02"), ("P4", "60.0", "IV", "yes", "")]
    assert len(clinical.rows("trial", limit=3)[1]) == 3
    with pytest.raises(ValidationError, match=r"table 'trial': there is no column 'weight'; the columns are"):
        clinical.select("trial", {"weight": ">=60"})
    with pytest.raises(
        ValidationError, match=r"table 'trial' has no column 'weight'; its columns: 'PatientID'"
    ):
        clinical.values("trial", "weight")
    with pytest.raises(
        ValidationError,
        match=r"stage>=2: column 'stage' holds text, not numbers \('III' in row 2, .*\); a range needs",
    ):
        clinical.select("trial", {"stage": ">=2"})


def test_a_range_over_a_text_column_names_the_values_that_are_not_numbers(
    clinical: Clinical, tmp_path: Path
) -> None:
    clinical.add(write(tmp_path, "ages.csv", "PatientID,age\nP1,64\nP2,unknown\nP3,58\n"))
    with pytest.raises(ValidationError, match=r"^table 'ages': age>=60 needs numbers, .*'unknown' in row 3"):
        clinical.select("ages", parse_conditions(["age>=60"]))


# -- the source --------------------------------------------------------------------------------------
@pytest.fixture
def source(clinical: Clinical, tmp_path: Path) -> ClinicalSource:
    clinical.add(write(tmp_path, "trial.csv"))
    clinical.add(write(tmp_path, "other.csv", "Case ID,age,site\nC1,70,lung\nC2,50,breast\n"))
    return ClinicalSource(clinical)


def keys_of(manifest_source: ClinicalSource, selection: Selection) -> list[tuple[str, ...]]:
    return [leaf.path for leaf in manifest_source.resolve(selection)]


def test_tables_are_browsed_as_tables_and_patients(source: ClinicalSource) -> None:
    assert (source.source_id, source.title, source.hierarchy.levels) == (
        "clinical",
        "Clinical tables",
        ("table", "patient"),
    )
    assert source.filterable == ("Case ID", "PatientID", "age", "diagnosed", "site", "smoking", "stage")
    root = source.browse()
    assert [(i.key, i.level, i.label, i.leaves) for i in root.items] == [
        ("other", "table", "other.csv · v1 · 3 columns", 2),
        ("trial", "table", "trial.csv · v1 · 5 columns", 5),
    ]
    assert [(i.key, i.leaves) for i in source.browse(filters=make_filters({"age": ">=60"})).items] == [
        ("other", 1),
        ("trial", 3),
    ]
    assert [i.key for i in source.browse(filters=make_filters({"stage": "II"})).items] == ["trial"]
    page = source.browse(("trial",), filters=make_filters({"age": ">=60"}), offset=1, limit=1)
    assert (page.total, page.offset, [i.key for i in page.items]) == (3, 1, ["P3"])
    p3 = page.items[0]
    assert (p3.level, p3.label, p3.leaves) == ("patient", "71 · IIA · no", 1)
    assert p3.details == (("age", "71"), ("stage", "IIA"), ("smoking", "no"), ("diagnosed", "2001-01-30"))
    assert source.browse(("trial",), filters=((JOIN_FILTER, ("idc/x",)),)).total == 5
    assert source.filter_values("stage", ("trial",)) == ["II", "IIA", "IIB", "III", "IV"]
    assert source.filter_values("age") == ["45", "50", "58", "60.0", "64", "70", "71"]
    with pytest.raises(ValidationError, match="one row of a table"):
        source.browse(("trial", "P1"))
    with pytest.raises(NotFound, match="no clinical table 'nope'"):
        source.browse(("nope",))
    with pytest.raises(ValidationError, match="table 'other' has no column 'stage'"):
        source.filter_values("stage", ("other",))


def test_rules_select_rows_deepest_wins_and_exclusions_win_ties(source: ClinicalSource) -> None:
    table = Pointer.of("clinical", "trial", age=">=60")
    assert keys_of(source, Selection.of(table)) == [("trial", "P1"), ("trial", "P3"), ("trial", "P4")]
    assert keys_of(source, Selection.of(table).remove(Pointer.of("clinical", "trial", "P3"))) == [
        ("trial", "P1"),
        ("trial", "P4"),
    ]
    # A patient rule adds one row whatever the table's filters say.
    assert ("trial", "P5") in keys_of(source, Selection.of(table, Pointer.of("clinical", "trial", "P5")))
    # An exclusion as deep as the inclusion wins where both match.
    both = Selection.of(table).remove(Pointer.of("clinical", "trial", smoking="yes"))
    assert keys_of(source, both) == [("trial", "P3")]
    # The whole source: every table; a filter on a column a table lacks leaves that table out.
    assert len(keys_of(source, Selection.of(Pointer.of("clinical")))) == 7
    assert keys_of(source, Selection.of(Pointer.of("clinical", site="lung"))) == [("other", "C1")]
    assert keys_of(source, Selection.of(Pointer.of("idc", "nlst"))) == []  # not ours
    with pytest.raises(ValidationError, match=r"table 'other' \(version 1\): there is no column 'stage'"):
        source.resolve(Selection.of(Pointer.of("clinical", "other", stage="II")))
    with pytest.raises(NotFound, match="no clinical table 'gone'"):
        source.resolve(Selection.of(Pointer.of("clinical", "gone")))


def test_rows_are_fingerprinted_by_their_text_so_a_new_version_revises_only_changed_rows(
    source: ClinicalSource, clinical: Clinical, tmp_path: Path
) -> None:
    selection = Selection.of(Pointer.of("clinical", "trial"))
    before = source.resolve(selection)
    leaf = before.get("clinical", ("trial", "P2"))
    assert leaf is not None
    text = row_text(clinical.get("trial").columns, ("P2", "58", "II", "", "2006-11-02"))
    assert leaf.fingerprint == Fingerprint(
        size=len(text.encode()), count=1, checksum="sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]
    )
    assert source.resolve(selection) == before  # stable
    clinical.add(write(tmp_path, "trial.csv", TRIAL.replace("P2,58", "P2,59") + "P6,80,IV,yes,\n"))
    diff = ManifestDiff.between(before, source.resolve(selection))
    assert [leaf.path for leaf in diff.added] == [("trial", "P6")]
    assert [new.path for _, new in diff.changed] == [("trial", "P2")]
    assert diff.removed == ()


def test_cohorts_are_the_rows_of_each_joining_rule_the_selection_keeps(source: ClinicalSource) -> None:
    into = [Pointer.of("lab")]
    old = join_pointer("trial", {"age": ">=60"}, into)
    lung = join_pointer("other", {"site": "lung"}, [Pointer.of("idc", "nlst")])
    selection = Selection.of(old, lung, Pointer.of("clinical", "trial", "P5")).remove(
        Pointer.of("clinical", "trial", "P3")
    )
    assert source.cohorts(selection) == [(lung, ["C1"]), (old, ["P1", "P4"])]
    assert keys_of(source, selection) == [("other", "C1"), ("trial", "P1"), ("trial", "P4"), ("trial", "P5")]
    assert source.cohorts(Selection.of(Pointer.of("clinical", "trial"))) == []


def test_a_row_downloads_as_a_small_csv_from_the_version_the_set_pinned(
    source: ClinicalSource, clinical: Clinical, tmp_path: Path
) -> None:
    pinned = source.resolve(Selection.of(Pointer.of("clinical", "trial", "P2")))
    (leaf,) = list(pinned)
    plan = source.plan(leaf)
    (remote,) = plan.files
    path = Path(url2pathname(urlparse(remote.url).path))
    text = "PatientID,age,stage,smoking,diagnosed\nP2,58,II,,2006-11-02\n"
    assert path.read_text() == text
    assert path.is_relative_to(tmp_path / "alice-data" / "cache" / "clinical")
    assert (remote.name, remote.size, leaf.fingerprint.size) == ("clinical-trial.csv", len(text), len(text))
    assert remote.md5 == hashlib.md5(text.encode()).hexdigest()
    assert dict(plan.fields) == {
        "collection": "trial",
        "patient": "P2",
        "study": "clinical",
        "modality": "TABLE",
        "series": "trial",
    }
    assert plan.count == 1
    # A new version changes the row: the pinned one still downloads, from version 1.
    clinical.add(write(tmp_path, "trial.csv", TRIAL.replace("P2,58", "P2,59")))
    again = source.plan(leaf)
    assert Path(url2pathname(urlparse(again.files[0].url).path)).read_text() == text
    forged = Leaf("clinical", ("trial", "P2"), Fingerprint(count=1, checksum="sha256:" + "0" * 32))
    with pytest.raises(IntegrityError, match=r"row of 'P2' differs in every stored version"):
        source.plan(forged)
    with pytest.raises(NotFound, match=r"table 'trial' has no row 'P9' in any of its 2 versions"):
        source.plan(Leaf("clinical", ("trial", "P9"), leaf.fingerprint))
    with pytest.raises(NotFound, match="no clinical table 'gone'"):
        source.plan(Leaf("clinical", ("gone", "P2"), leaf.fingerprint))


def test_without_a_data_folder_rows_download_from_a_private_temporary_one(
    source: ClinicalSource, lab: World
) -> None:
    theirs = ClinicalSource(Clinical(lab.service("bob")._signer, lab.store, PandasTables(), None))
    (leaf,) = list(theirs.resolve(Selection.of(Pointer.of("clinical", "other", "C1"))))
    path = Path(url2pathname(urlparse(theirs.plan(leaf).files[0].url).path))
    try:
        assert path.read_text() == "Case ID,age,site\nC1,70,lung\n"
        assert path.parent.parent.name.startswith("mediator-clinical-")
        assert path.parent.parent.stat().st_mode & 0o077 == 0
    finally:
        shutil.rmtree(path.parent.parent)
