"""Clinical tables read with pandas and pyarrow: CSV, TSV and Excel files, bad input, the stored
form, and filtering a decoded table."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from mediator_desktop.core.clinical import LoadedTable, csv_line, parse_conditions
from mediator_desktop.core.errors import IntegrityError, NotFound, ValidationError
from mediator_desktop.sources.clinical import MAX_TABLE_BYTES, PandasTables
from tests.unit.core.test_clinical import TRIAL


@pytest.fixture(scope="module")
def engine() -> PandasTables:
    return PandasTables()


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def kinds(engine: PandasTables, path: Path) -> dict[str, str]:
    return {c.name: c.kind for c in engine.preview(path).columns}


# -- reading -----------------------------------------------------------------------------------------
def test_a_csv_is_previewed_with_kinds_figures_and_the_key_guessed(
    engine: PandasTables, tmp_path: Path
) -> None:
    preview = engine.preview(write(tmp_path, "trial.csv", TRIAL))
    assert (preview.filename, preview.rows, preview.key_guess, preview.problems) == (
        "trial.csv",
        5,
        "PatientID",
        (),
    )
    columns = {c.name: c for c in preview.columns}
    assert {n: c.kind for n, c in columns.items()} == {
        "PatientID": "text",
        "age": "number",
        "stage": "text",
        "smoking": "text",
        "diagnosed": "date",
    }
    assert (columns["age"].low, columns["age"].high, columns["age"].blanks) == ("45", "71", 0)
    assert (columns["diagnosed"].low, columns["diagnosed"].high, columns["diagnosed"].blanks) == (
        "2001-01-30",
        "2010-07-15",
        1,
    )
    assert (columns["smoking"].blanks, columns["smoking"].distinct) == (2, 2)  # "" and NA are blank
    assert preview.head[1] == ("P2", "58", "II", "", "2006-11-02")
    assert preview.head[3][1] == "60.0"  # the text the file holds


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("semi.csv", "Case ID;age;note\nC1;60;a, b\nC2;61;c\n"),
        ("tabs.txt", "Case ID\tage\tnote\nC1\t60\ta, b\nC2\t61\tc\n"),
        ("table.tsv", "Case ID\tage\tnote\nC1\t60\ta, b\nC2\t61\tc\n"),
        ("quoted.csv", 'Case ID,age,note\nC1,60,"a, b"\n"C2",61,c\n'),
        ("windows.csv", '\ufeffCase ID,age,note\r\nC1,60,"a, b"\r\nC2,61,c\r\n'),
        ("bars.csv", "Case ID|age|note\nC1|60|a, b\nC2|61|c\n"),
    ],
)
def test_delimiters_quotes_and_line_ends_are_sniffed(
    engine: PandasTables, tmp_path: Path, name: str, text: str
) -> None:
    preview = engine.preview(write(tmp_path, name, text))
    assert preview.names == ("Case ID", "age", "note")
    assert preview.head == (("C1", "60", "a, b"), ("C2", "61", "c"))
    assert preview.key_guess == "Case ID"


def test_a_windows_spreadsheet_export_in_cp1252_is_read(engine: PandasTables, tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "Subject ID;Lésion;Größe\nS1;côte;12\nS2;foie;7\n", "cp1252")
    preview = engine.preview(path)
    assert preview.names == ("Subject ID", "Lésion", "Größe") and preview.head[0] == ("S1", "côte", "12")


def test_placeholders_for_missing_values_are_blank_and_numbers_stay_numbers(
    engine: PandasTables, tmp_path: Path
) -> None:
    text = (
        "bcr_patient_barcode,age,grade\nTCGA-1,[Not Available],G1\nTCGA-2, 61 ,--\nTCGA-3,N/A,  \n"
        "TCGA-4,59,G2\n"
    )
    preview = engine.preview(write(tmp_path, "tcga.csv", text))
    columns = {c.name: c for c in preview.columns}
    assert (columns["age"].kind, columns["age"].blanks, columns["grade"].blanks) == ("number", 2, 2)
    assert preview.head[1] == ("TCGA-2", "61", "")


def test_a_mostly_numeric_column_is_text_and_says_which_cells_are_not_numbers(
    engine: PandasTables, tmp_path: Path
) -> None:
    rows = "".join(f"P{i},{50 + i}\n" for i in range(20))
    path = write(tmp_path, "mixed.csv", "PatientID,age\n" + rows + "P20,unknown\nP21,>90\nP22,>90\n")
    preview = engine.preview(path)
    assert kinds(engine, path)["age"] == "text"
    assert preview.problems == (
        "column 'age' is read as text: 3 of its values are not numbers ('unknown' in row 22, "
        "'>90' in rows 23 and 24)",
    )


def test_dates_in_one_other_format_are_dates(engine: PandasTables, tmp_path: Path) -> None:
    path = write(
        tmp_path, "us.csv", "PatientID,seen,mixed\nP1,03/12/2004,2004-03-12\nP2,12/31/2005,12/31/2005\n"
    )
    assert kinds(engine, path) == {"PatientID": "text", "seen": "date", "mixed": "text"}
    table = engine.load(engine.read(path)[0])
    assert table.select_keys(parse_conditions(["seen>=2005-01-01"])) == ["P2"]
    assert table.select_keys(parse_conditions(["seen=2004-03-12"])) == ["P1"]
    assert table.describe()[1].low == "2004-03-12"


def test_an_excel_workbook_is_read_as_a_person_sees_it(engine: PandasTables, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Clinical"
    sheet.append([])  # an empty first row: the header is the first row with something in it
    sheet.append(["Patient ID", "Age at diagnosis", "Diagnosed", "Stage", "Smoker", None])
    sheet.append(["0012", 64, dt.datetime(2004, 3, 12), "III", True, None])
    sheet.append(["0013", 58.5, dt.datetime(2006, 11, 2, 14, 30), "II", False, None])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["0014", 71.0, None, "IIA", None, None])
    book.create_sheet("Dictionary").append(["column", "meaning"])
    path = tmp_path / "TCIA_clinical.xlsx"
    book.save(path)
    preview = engine.preview(path)
    assert preview.key_guess == "Patient ID"
    assert preview.head == (
        ("0012", "64", "2004-03-12", "III", "TRUE"),
        ("0013", "58.5", "2006-11-02 14:30:00", "II", "FALSE"),
        ("0014", "71", "", "IIA", ""),
    )
    assert {c.name: c.kind for c in preview.columns} == {
        "Patient ID": "text",
        "Age at diagnosis": "number",
        "Diagnosed": "text",  # a date and a time: two formats
        "Stage": "text",
        "Smoker": "text",
    }
    assert preview.problems == (
        "the workbook has 2 sheets; the first with data, 'Clinical', was read",
        "row 5: empty, left out",
    )
    # Row numbers are the sheet's: the header is row 2 here, the blank row 5 is counted.
    sheet.cell(6, 1).value = "0012"
    book.save(path)
    with pytest.raises(ValidationError, match=r"'Patient ID' repeats values: '0012' in rows 3 and 6"):
        engine.read(path)


def test_the_same_file_always_gives_the_same_stored_form(engine: PandasTables, tmp_path: Path) -> None:
    path = write(tmp_path, "trial.csv", TRIAL)
    blob, preview = engine.read(path)
    assert engine.read(path)[0] == blob
    assert PandasTables().read(write(tmp_path, "copy.csv", TRIAL))[0] == blob  # the file name is no part
    assert engine.read(path, "stage")[0] != blob  # the key is
    table = PandasTables().load(blob)
    assert (table.columns, len(table), table.key_column) == (preview.names, 5, "PatientID")
    assert table.describe() == preview.columns
    assert table.rows(limit=20) == list(preview.head)
    assert table.row_number(0) == 2


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("scan.csv", bytes(range(256)) * 40, r"scan\.csv is not a table: it holds binary data"),
        ("notes.txt", b"Just some notes\nabout the patients\n", r"no comma, tab or semicolon"),
        ("empty.csv", b"", r"empty\.csv is empty"),
        ("header.csv", b"PatientID,age\n", r"has a header but no rows"),
        ("twice.csv", b"PatientID,age,age\nP1,1,2\n", r"'age' appears twice \(columns 2 and 3\)"),
        ("unnamed.csv", b"PatientID,,stage\nP1,1,II\n", r"column 2 has values but no name"),
        ("ragged.csv", b"PatientID,age\nP1,1\nP2,2,3\n", r"ragged\.csv is not a table that can be read: .*"),
        (
            "old.xls",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
            r"old Excel workbook \(\.xls\).*\.xlsx",
        ),
        ("broken.xlsx", b"PK\x03\x04 not really a zip", r"broken\.xlsx is not an Excel workbook"),
        ("reserved.csv", b"PatientID,@in\nP1,x\n", r"'@in' is reserved"),
    ],
)
def test_what_is_not_a_table_is_refused_clearly(
    engine: PandasTables, tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValidationError, match=message):
        engine.preview(path)
    with pytest.raises(ValidationError, match=message):
        engine.read(path)


def test_a_list_of_patients_is_a_table_of_one_column(engine: PandasTables, tmp_path: Path) -> None:
    preview = engine.preview(write(tmp_path, "cohort.csv", "PatientID\nP1\nP2\n"))
    assert (preview.names, preview.rows, preview.key_guess) == (("PatientID",), 2, "PatientID")


def test_a_trailing_delimiter_is_no_column(engine: PandasTables, tmp_path: Path) -> None:
    preview = engine.preview(write(tmp_path, "trail.csv", "PatientID,age,\nP1,1,\nP2,2,\n"))
    assert preview.names == ("PatientID", "age")


def test_a_huge_file_is_refused_before_it_is_read(engine: PandasTables, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.truncate(2 * 1024**3)  # sparse: 2 GB that take no room
    start = time.process_time()  # CPU, not wall time: "not read" is about work, not a busy machine
    with pytest.raises(ValidationError, match=r"^huge\.csv is 2 GB; tables of up to 256 MB are read"):
        engine.read(path)
    assert time.process_time() - start < 0.5  # reading 2 GB of zeros would take seconds
    assert MAX_TABLE_BYTES == 256 * 1024**2
    with pytest.raises(NotFound, match=r"there is no file .*missing\.csv"):
        engine.preview(tmp_path / "missing.csv")
    with pytest.raises(ValidationError, match=r"is a folder"):
        engine.preview(tmp_path)


def test_the_key_column_is_checked_with_rows_as_a_spreadsheet_counts_them(
    engine: PandasTables, tmp_path: Path
) -> None:
    text = "PatientID,age\nP1,1\nP2,2\n,3\nP1,4\nP5,5\n,6\nP2,7\n"
    path = write(tmp_path, "bad.csv", text)
    preview = engine.preview(path)  # a preview shows the problems...
    blanks = "the key column 'PatientID' is blank in rows 4 and 7: every row needs its patient's key"
    repeats = (
        "the key column 'PatientID' repeats values: 'P1' in rows 2 and 5, 'P2' in rows 3 and 8; "
        "each patient needs one row"
    )
    assert preview.problems == (blanks, repeats)
    with pytest.raises(ValidationError) as info:  # ...reading for the store refuses them
        engine.read(path)
    assert str(info.value) == f"bad.csv: {blanks}; {repeats}"
    with pytest.raises(
        ValidationError, match=r"bad\.csv has no column 'Case'; its columns: 'PatientID', 'age'"
    ):
        engine.read(path, "Case")
    assert engine.read(path, "age")[1].key_guess == "age"  # any column will do if it is sound


def test_a_table_without_a_key_like_column_needs_one_named(engine: PandasTables, tmp_path: Path) -> None:
    path = write(tmp_path, "plain.csv", "who,age\nA,1\nB,2\n")
    assert engine.preview(path).key_guess is None
    with pytest.raises(
        ValidationError, match=r"no column of plain\.csv looks like a patient key .*'who', 'age'"
    ):
        engine.read(path)
    assert engine.read(path, "who")[1].key_guess == "who"


def test_the_key_guess_prefers_a_sound_column(engine: PandasTables, tmp_path: Path) -> None:
    path = write(tmp_path, "two.csv", "PatientID,case_submitter_id,age\nP1,C1,1\nP1,C2,2\n")
    assert engine.preview(path).key_guess == "case_submitter_id"  # PatientID repeats
    assert engine.read(path)[1].key_guess == "case_submitter_id"


# -- filtering ---------------------------------------------------------------------------------------
def loaded(engine: PandasTables, folder: Path, text: str = TRIAL) -> LoadedTable:
    return engine.load(engine.read(write(folder, "t.csv", text))[0])


@pytest.mark.parametrize(
    ("conditions", "keys"),
    [
        (["age=60"], ["P4"]),  # 60.0 is 60
        (["age=60,64"], ["P1", "P4"]),
        (["age>=60"], ["P1", "P3", "P4"]),
        (["age>60"], ["P1", "P3"]),
        (["age<58"], ["P5"]),
        (["age=58..64"], ["P1", "P2", "P4"]),
        (["age=..58"], ["P2", "P5"]),
        (["age>=60", "age<=70"], ["P1", "P4"]),
        (["stage=II,IIA,IIB"], ["P2", "P3", "P5"]),
        (["stage=ii"], []),
        (["smoking=*"], ["P1", "P3", "P4"]),
        (["smoking=!"], ["P2", "P5"]),
        (["smoking=!,no"], ["P2", "P3", "P5"]),
        (["diagnosed>=2004-01-01", "smoking=yes"], ["P1"]),
        (["diagnosed=2005-01-01..2010-12-31"], ["P2", "P5"]),
        (["diagnosed<2004"], ["P3"]),
        (["diagnosed=2006-11-02"], ["P2"]),
        (["diagnosed=!"], ["P4"]),
        ([], ["P1", "P2", "P3", "P4", "P5"]),
    ],
)
def test_filters_select_rows(
    engine: PandasTables, tmp_path: Path, conditions: list[str], keys: list[str]
) -> None:
    table = loaded(engine, tmp_path)
    filters = parse_conditions(conditions)
    assert table.select_keys(filters) == keys
    assert [table.keys()[i] for i in table.match(filters)] == keys
    assert table.select_keys((*filters, ("@in", ("idc/nlst",)))) == keys  # the join is no column


def test_bad_filters_say_what_is_wrong(engine: PandasTables, tmp_path: Path) -> None:
    table = loaded(engine, tmp_path)
    with pytest.raises(ValidationError, match=r"no column 'weight'; the columns are 'PatientID', 'age', "):
        table.select_keys(parse_conditions(["weight>=60"]))
    with pytest.raises(ValidationError, match=r"age>=old: column 'age' holds numbers; 'old' is not one"):
        table.select_keys((("age", (">=old",)),))
    with pytest.raises(ValidationError, match=r"stage>=II: a range takes numbers or dates; 'II' is neither"):
        table.select_keys(parse_conditions(["stage>=II"]))
    with pytest.raises(ValidationError, match=r"holds dates; '12' is not one"):
        table.select_keys(parse_conditions(["diagnosed>=12"]))
    with pytest.raises(
        ValidationError, match=r"stage=60\.\.2004-01-01: a range takes two numbers or two dates"
    ):
        table.select_keys((("stage", ("60..2004-01-01",)),))


def test_a_range_over_a_column_with_words_names_them_and_their_rows(
    engine: PandasTables, tmp_path: Path
) -> None:
    table = loaded(engine, tmp_path, "PatientID,age\nP1,64\nP2,unknown\nP3,58\nP4,>90\nP5,>90\nP6,\n")
    assert table.describe()[1].kind == "text"
    with pytest.raises(
        ValidationError,
        match=r"^age>=60 needs numbers, but column 'age' holds values that are not: 'unknown' in row 3, "
        r"'>90' in rows 5 and 6; fix those cells, or select them with age=<value>$",
    ):
        table.select_keys(parse_conditions(["age>=60"]))
    assert table.select_keys(parse_conditions(["age=unknown,64"])) == ["P1", "P2"]
    assert table.select_keys(parse_conditions(["age=!"])) == ["P6"]


def test_values_are_counted_most_frequent_first(engine: PandasTables, tmp_path: Path) -> None:
    table = loaded(engine, tmp_path)
    assert table.values("smoking") == [("yes", 2), (None, 2), ("no", 1)]
    assert table.values("stage", limit=2) == [("II", 1), ("IIA", 1)]


def test_lines_are_the_canonical_csv_of_each_row(engine: PandasTables, tmp_path: Path) -> None:
    text = 'PatientID,note,other\nP1,"a, b",x\nP2,"say ""hi""",\nP3,"two\nlines",y\nP4,plain,"tab\there"\n'
    table = loaded(engine, tmp_path, text)
    assert table.lines() == [csv_line(row) for row in table.rows()]
    assert table.lines([2, 0]) == ['P3,"two\nlines",y', 'P1,"a, b",x']
    assert table.lines([1]) == ['P2,"say ""hi""",']


def test_damaged_or_foreign_stored_forms_are_refused(engine: PandasTables, tmp_path: Path) -> None:
    blob = engine.read(write(tmp_path, "t.csv", TRIAL))[0]
    fresh = PandasTables()  # no memory of having read it
    with pytest.raises(IntegrityError, match="damaged"):
        fresh.load(blob[:-100])
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"a": ["x"]}), sink)
    with pytest.raises(IntegrityError, match="not a clinical table this app stored"):
        fresh.load(sink.getvalue().to_pybytes())


# -- speed -------------------------------------------------------------------------------------------
def big_csv(path: Path, rows: int = 100_000) -> Path:
    """A table like a consortium's clinical export: ids, numbers, codes, dates and free text."""
    rng = np.random.default_rng(7)
    columns: dict[str, list[str]] = {
        "case_submitter_id": [f"TCGA-{i // 1000:02d}-{i:06d}" for i in range(rows)]
    }
    for j in range(12):
        columns[f"lab_{j}"] = [f"{v:.2f}" for v in rng.normal(60, 12, rows)]
    for j in range(6):
        columns[f"count_{j}"] = [str(v) for v in rng.integers(0, 200, rows)]
    stages = np.array(["I", "II", "IIA", "IIB", "III", "IV", ""])
    for j in range(10):
        columns[f"code_{j}"] = list(stages[rng.integers(0, len(stages), rows)])
    days = rng.integers(0, 8000, rows)
    for j in range(6):
        columns[f"date_{j}"] = [str(np.datetime64("2000-01-01") + int(d + j)) for d in days]
    notes = np.array(
        ['"Adenocarcinoma, NOS"', "Squamous cell carcinoma", "never smoker", "former smoker", ""]
    )
    for j in range(5):
        columns[f"note_{j}"] = list(notes[rng.integers(0, len(notes), rows)])
    names = list(columns)
    with path.open("w") as file:
        file.write(",".join(names) + "\n")
        for values in zip(*(columns[n] for n in names), strict=True):
            file.write(",".join(values) + "\n")
    return path


@pytest.mark.timeout(120)
def test_a_table_of_100000_rows_and_40_columns_reads_and_filters_quickly(
    engine: PandasTables, tmp_path: Path
) -> None:
    path = big_csv(tmp_path / "big.csv")
    engine.read(write(tmp_path, "warm.csv", TRIAL))  # imports
    start = time.perf_counter()
    blob, preview = engine.read(path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    table = PandasTables().load(blob)
    load = time.perf_counter() - start
    filters = parse_conditions(["lab_0>=60", "code_0=II,IIA", "date_0=2004-01-01..2010-12-31"])
    table.select_keys(filters)  # parses the numbers and dates once
    start = time.perf_counter()
    keys = table.select_keys(filters)
    select = time.perf_counter() - start
    print(
        f"\n100000 x 40: read {read:.3f} s ({len(blob) / 1e6:.1f} MB stored), load {load:.3f} s, "
        f"three-column filter {select * 1000:.1f} ms ({len(keys)} rows)"
    )
    assert (preview.rows, len(preview.columns), preview.key_guess) == (100_000, 40, "case_submitter_id")
    assert {c.kind for c in preview.columns} == {"text", "number", "date"}
    assert 0 < len(keys) < 100_000
