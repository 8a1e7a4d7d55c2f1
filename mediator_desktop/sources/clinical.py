"""Clinical tables read with pandas and pyarrow (``core.clinical.TableEngine``).

Files: CSV (the delimiter sniffed: comma, tab, semicolon or bar), TSV, and Excel workbooks
(.xlsx through openpyxl; TCIA ships its clinical data so). A file over ``MAX_TABLE_BYTES`` is
refused before it is read. Every cell is kept as the text the file holds (trimmed); blank cells,
and the usual placeholders for them (``NA``, ``N/A``, ``null``, ``--``, ``[Not Available]``...),
are null. A column is a number column when every non-blank value is a number, a date column when
every one is a date (one format for the column: ISO ``2004-03-12`` or a common other one), else
text; the key column is always text.

The stored form is a Parquet file (zstd) of those texts, with the key, the kinds and the row
numbering in its metadata: the same file always gives the same bytes (with the same pyarrow).
Decoded tables filter with pyarrow and numpy: a few milliseconds for three columns of 100,000 rows.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from mediator_desktop.core.clinical import (
    HEAD_ROWS,
    JOIN_EVERY,
    JOIN_FILTER,
    MAX_TABLE_BYTES,
    Column,
    ColumnKind,
    TablePreview,
    Test,
    columns_text,
    condition_text,
    guess_key,
    is_key_name,
    parse_test,
    rows_text,
)
from mediator_desktop.core.errors import IntegrityError, NotFound, ValidationError
from mediator_desktop.core.pointer import Filters
from mediator_desktop.core.replica import MAX_COLUMN_NAME, MAX_TABLE_COLUMNS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

__all__ = ["MAX_TABLE_BYTES", "PandasTables"]

#: Cells that mean "no value" (pandas' own list, and what TCGA and GDC write), after trimming.
NA_TEXTS: Final = frozenset(
    {
        "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
        "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "--", "'--",
        "[Not Available]", "[Not Applicable]", "[Not Evaluated]", "[Unknown]", "[Discrepancy]",
    }
)  # fmt: skip
_NUMBER: Final = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_IS_NUMBER = re.compile(_NUMBER).match
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]").findall
#: Formats a whole column of dates may have (one for the column), in the order tried.
DATE_FORMATS: Final = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d-%b-%Y",
    "%Y-%m",
)
#: Formats of a date in a filter (``diagnosis_date>=2004`` is from the first of January 2004).
_BOUND_FORMATS: Final = (*DATE_FORMATS[:3], "%Y")
_SAMPLE_BYTES: Final = 256 * 1024
_SAMPLE_VALUES: Final = 200
#: Largest decoded table a stored form may claim (its Parquet pages are compressed).
MAX_DECODED_BYTES: Final = 2 * 1024**3
_FORMAT: Final = 1
_META_KEY: Final = b"mediator.table"
_ZIP: Final = b"PK\x03\x04"
_OLE: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True, slots=True)
class _Meta:
    """What the stored form says about its table besides the texts."""

    key: str
    kinds: tuple[ColumnKind, ...]
    formats: dict[str, str] = field(default_factory=dict)
    first: int = 2  # the spreadsheet row of the first row of data
    skipped: tuple[int, ...] = ()  # spreadsheet rows of empty rows left out

    def to_bytes(self) -> bytes:
        data = {
            "format": _FORMAT,
            "key": self.key,
            "kinds": list(self.kinds),
            "formats": self.formats,
            "first": self.first,
            "skipped": list(self.skipped),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> _Meta:
        try:
            raw = json.loads(data or b"")
            if raw.get("format") != _FORMAT:
                raise IntegrityError(
                    f"a stored table of format {raw.get('format')!r}; this app reads format {_FORMAT}"
                )
            kinds = tuple(raw["kinds"])
            if not all(k in ("text", "number", "date") for k in kinds):
                raise ValueError(f"unknown column kinds {kinds!r}")
            return cls(
                str(raw["key"]),
                kinds,
                {str(k): str(v) for k, v in raw["formats"].items()},
                int(raw["first"]),
                tuple(sorted(int(s) for s in raw["skipped"])),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"not a clinical table this app stored ({exc})") from None


@dataclass
class _Frame:
    """A file's table as read: column names and their texts (null: blank)."""

    filename: str
    names: list[str]
    arrays: list[pa.Array]
    first: int = 2
    skipped: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- reading files --------------------------------------------------------------------------------
def _size_text(size: float) -> str:
    """``2.0 GB``, ``256 MB`` (binary units, as file managers show them)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" or size.is_integer() else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _open(path: Path) -> tuple[int, bytes]:
    """The file's size and first bytes; refuses what is too big before reading any of it."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ValidationError(f"{path} is a folder, not a table file")
        if size > MAX_TABLE_BYTES:
            raise ValidationError(
                f"{path.name} is {_size_text(size)}; tables of up to {_size_text(MAX_TABLE_BYTES)} are "
                "read: keep the columns and rows you need"
            )
        with path.open("rb") as file:
            head = file.read(_SAMPLE_BYTES)
    except FileNotFoundError:
        raise NotFound(f"there is no file {path}") from None
    except PermissionError:
        raise ValidationError(f"{path} cannot be read (permission denied)") from None
    if not head:
        raise ValidationError(f"{path.name} is empty: not a table")
    return size, head


def _read_file(path: Path) -> _Frame:
    size, head = _open(path)
    suffix = path.suffix.lower()
    if head.startswith(_OLE):
        raise ValidationError(
            f"{path.name} is an old Excel workbook (.xls), which is not read here: open it in Excel or "
            "LibreOffice and save it as .xlsx or CSV"
        )
    if head.startswith(_ZIP) or suffix in (".xlsx", ".xlsm"):
        frame = _read_excel(path)
    else:
        frame = _read_text(path, head, size, tab=suffix in (".tsv", ".tab"))
    return _tidy(frame)


def _encoding(head: bytes, complete: bool) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252" if _decodes(head, "cp1252") else "latin-1"  # Excel's CSV on Windows


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _not_a_table(name: str, why: str) -> ValidationError:
    return ValidationError(f"{name} is not a table: {why}")


def _read_text(path: Path, head: bytes, size: int, *, tab: bool) -> _Frame:
    import pandas as pd  # type: ignore[import-untyped]
    import pyarrow as pa

    encoding = _encoding(head, complete=size <= len(head))
    text = head.decode(encoding, errors="ignore")
    controls = len(_CONTROLS(text))
    if controls > max(2, len(text) // 200):
        raise _not_a_table(path.name, "it holds binary data, not text (CSV, TSV) or an Excel workbook")
    if size > len(head):  # the sample may end inside a record: leave that one out
        text = text[: text.rfind("\n") + 1] or text
    delimiter, header = _sniff(text, tab=tab)
    if delimiter is None:
        if len(header) == 1 and is_key_name(header[0]):
            delimiter = ","  # one column of patient keys: a list of patients is a table too
        else:
            raise _not_a_table(
                path.name, "no comma, tab or semicolon separates column names in its first line"
            )
    names = [n.strip() for n in header]
    if len(names) > MAX_TABLE_COLUMNS:
        raise ValidationError(f"{path.name} has {len(names)} columns; at most {MAX_TABLE_COLUMNS} are read")
    try:
        frame = pd.read_csv(
            path,
            engine="pyarrow",
            sep=delimiter,
            header=0,
            names=[f"c{i}" for i in range(len(names))],
            dtype="string[pyarrow]",
            keep_default_na=False,
            encoding=encoding,
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (ValueError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path.name} is not a table that can be read: {_first_line(exc)}") from None
    arrays = [table.column(i).combine_chunks().cast(pa.string()) for i in range(table.num_columns)]
    return _Frame(path.name, names, arrays)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _sniff(text: str, *, tab: bool) -> tuple[str | None, list[str]]:
    """The delimiter of a CSV sample (None when its first line has none) and its header."""
    candidates = ("\t",) if tab else (",", "\t", ";", "|")
    chosen: str | None = None
    best: tuple[bool, int, int] | None = None
    for rank, delimiter in enumerate(candidates):
        counts = []
        for record in csv.reader(io.StringIO(text), delimiter=delimiter):
            if record:
                counts.append(len(record))
            if len(counts) >= 50:
                break
        if not counts or counts[0] < 2:
            continue
        # Records that agree with the header beat more fields (a comma inside text, say).
        score = (all(n == counts[0] for n in counts), counts[0], -rank)
        if best is None or score > best:
            chosen, best = delimiter, score
    header: list[str] = []
    for record in csv.reader(io.StringIO(text), delimiter=chosen or ","):
        if record:
            header = record
            break
    if chosen is None:
        first = text.lstrip("\ufeff").splitlines()
        header = [first[0]] if first else []
    return chosen, header


def _read_excel(path: Path) -> _Frame:
    import pandas as pd
    import pyarrow as pa
    from openpyxl.utils.exceptions import InvalidFileException  # type: ignore[import-untyped]

    try:
        with pd.ExcelFile(path, engine="openpyxl") as book:
            sheets = [str(s) for s in book.sheet_names]
            frame = None
            for sheet in sheets:
                frame = pd.read_excel(book, sheet_name=sheet, header=None, dtype=object)
                if frame.size and not frame.isna().all(axis=None):
                    break
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError, OSError) as exc:
        raise ValidationError(
            f"{path.name} is not an Excel workbook that can be read: {_first_line(exc)}"
        ) from None
    if frame is None or not frame.size or frame.isna().all(axis=None):
        raise _not_a_table(path.name, "its sheets are empty")
    notes = []
    if len(sheets) > 1:
        notes.append(f"the workbook has {len(sheets)} sheets; the first with data, {sheet!r}, was read")
    cells = [[_cell_text(v, pd.NaT) for v in frame[c].tolist()] for c in frame.columns]
    top = 0  # leading empty rows: the header is the first row with something in it
    while all(column[top] is None for column in cells):
        top += 1
    names = [column[top] or "" for column in cells]
    arrays = [pa.array(column[top + 1 :], type=pa.string()) for column in cells]
    return _Frame(path.name, names, arrays, first=top + 2, notes=notes)


def _cell_text(value: Any, nat: object) -> str | None:
    """An Excel cell as the text a person reads in it (``nat``: pandas' missing time)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is nat:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip() or None


def _number_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _tidy(frame: _Frame) -> _Frame:
    """Blank cells as null; empty rows and unnamed empty columns out; the header checked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = pa.array(sorted(NA_TEXTS | {""}), type=pa.string())
    none = pa.scalar(None, pa.string())

    def tidy(array: pa.Array) -> pa.Array:
        trimmed = pc.utf8_trim_whitespace(array)
        missing = pc.is_in(trimmed, value_set=blank)
        return pc.if_else(missing, none, trimmed) if pc.any(missing).as_py() else trimmed

    arrays = _each(tidy, frame.arrays)
    names: list[str] = []
    kept: list[pa.Array] = []
    for i, (name, array) in enumerate(zip(frame.names, arrays, strict=True)):
        if not name.strip():
            if array.null_count == len(array):
                continue  # an empty column after the last (a trailing delimiter, spreadsheet formatting)
            raise _not_a_table(frame.filename, f"column {i + 1} has values but no name in the header row")
        if name in names:
            raise _not_a_table(
                frame.filename,
                f"the column name {name!r} appears twice (columns {names.index(name) + 1} and {i + 1}): "
                "every column needs a name of its own",
            )
        if len(name) > MAX_COLUMN_NAME:
            raise ValidationError(
                f"{frame.filename}: column {i + 1} has a name of {len(name)} characters; at most "
                f"{MAX_COLUMN_NAME} are allowed"
            )
        if name in (JOIN_FILTER, JOIN_EVERY):
            raise ValidationError(f"{frame.filename}: the column name {name!r} is reserved: rename it")
        names.append(name)
        kept.append(array)
    if not names:
        raise _not_a_table(frame.filename, "it has no named columns")
    rows = len(kept[0])
    if rows:
        filled = pc.is_valid(kept[0])
        for array in kept[1:]:
            filled = pc.or_(filled, pc.is_valid(array))
        empty = pc.invert(filled)
        if pc.any(empty).as_py():
            import numpy as np

            frame.skipped = (np.flatnonzero(empty.to_numpy(zero_copy_only=False)) + frame.first).tolist()
            kept = [pc.filter(a, filled) for a in kept]
            frame.notes.append(f"{rows_text(frame.skipped)}: empty, left out")
    if not len(kept[0]):
        raise _not_a_table(frame.filename, "it has a header but no rows")
    frame.names, frame.arrays = names, kept
    return frame


# -- kinds of columns ------------------------------------------------------------------------------
def _sample(array: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.drop_null(array.slice(0, 50 * _SAMPLE_VALUES))[:_SAMPLE_VALUES]


def _kind(
    name: str, array: pa.Array, notes: list[str], row_number: Callable[[int], int]
) -> tuple[ColumnKind, str | None]:
    """The kind of a column (and its date format), with a note when numbers mix with text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.null_count == len(array):
        return "text", None
    sample = _sample(array)
    numbers = pc.match_substring_regex(sample, _NUMBER)
    if pc.all(numbers).as_py():  # a failed cast takes long: try only what looks like numbers
        try:
            pc.cast(array, pa.float64())
            return "number", None
        except pa.ArrowInvalid:
            pass
    for form in DATE_FORMATS:
        if pc.strptime(sample, format=form, unit="s", error_is_null=True).null_count:
            continue
        parsed = pc.strptime(array, format=form, unit="s", error_is_null=True)
        if parsed.null_count == array.null_count:
            return "date", form
    if pc.sum(numbers).as_py() * 2 >= len(sample):  # mostly numbers: say which cells are not
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        ok = pc.match_substring_regex(array, _NUMBER).fill_null(False).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(valid & ~ok)
        notes.append(
            f"column {name!r} is read as text: {len(bad)} of its values are not numbers "
            f"({_offenders(array, bad, row_number)})"
        )
    return "text", None


def _offenders(
    array: pa.Array, bad: Sequence[int] | npt.NDArray[Any], row_number: Callable[[int], int], limit: int = 5
) -> str:
    """``'unknown' in rows 5 and 9, '>90' in row 30 and 2 more values``."""
    import pyarrow.compute as pc

    first = [int(i) for i in bad[:2000]]
    by_value: dict[str, list[int]] = {}
    for i, value in zip(first, array.take(first).to_pylist(), strict=True):
        by_value.setdefault(value, []).append(row_number(i))
    shown = list(by_value.items())[:limit]
    more = pc.count_distinct(array.take(list(map(int, bad)))).as_py() - len(shown)
    parts = [f"{value!r} in {rows_text(rows, 3)}" for value, rows in shown]
    return ", ".join(parts) + (f" and {more} more values" if more > 0 else "")


def _row_number(first: int, skipped: Sequence[int]) -> Callable[[int], int]:
    """The spreadsheet row of a row of data, counting the empty rows left out."""

    def number(index: int) -> int:
        row = first + index
        for s in skipped:
            if s <= row:
                row += 1
        return row

    return number


_T = TypeVar("_T")
_R = TypeVar("_R")
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="clinical"))
        return _POOL[0]


def _each(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``work`` on each item, on a few threads (pyarrow's kernels run without the GIL)."""
    if len(items) < 4:
        return [work(item) for item in items]
    return list(_pool().map(work, items))


# -- the engine ------------------------------------------------------------------------------------
class PandasTables:
    """The ``TableEngine`` of the app: reads with pandas (pyarrow's CSV reader, openpyxl), stores
    Parquet, filters with pyarrow and numpy."""

    def __init__(self) -> None:
        #: The table read last, by the sha256 of its stored form: what ``load`` would decode.
        self._last: tuple[str, _Loaded] | None = None

    def warm(self) -> None:
        """Import pandas and pyarrow on a background thread, so the first table reads at full speed."""
        threading.Thread(target=_import_all, name="clinical-warm", daemon=True).start()

    def preview(self, path: Path, key_column: str | None = None) -> TablePreview:
        return self._prepare(Path(path), key_column, encode=False)[0]

    def read(self, path: Path, key_column: str | None = None) -> tuple[bytes, TablePreview]:
        path = Path(path)
        preview, blob, key_problems = self._prepare(path, key_column, encode=True)
        if not preview.key_guess:
            raise ValidationError(
                f"no column of {path.name} looks like a patient key (PatientID, Case ID, case_submitter_id, "
                f"Subject ID...): choose the key column among its columns: {columns_text(preview.names)}"
            )
        if key_problems or blob is None:
            raise ValidationError(f"{path.name}: " + "; ".join(key_problems))
        return blob, preview

    def load(self, blob: bytes) -> _Loaded:
        import pyarrow as pa
        import pyarrow.parquet as pq

        last = self._last
        if last is not None and last[0] == hashlib.sha256(blob).hexdigest():
            return last[1]  # the node that added a table need not decode it

        try:
            stored = pq.ParquetFile(pa.BufferReader(blob))
            info = stored.metadata
            claimed = sum(info.row_group(i).total_byte_size for i in range(info.num_row_groups))
            if claimed > MAX_DECODED_BYTES or info.num_columns > MAX_TABLE_COLUMNS:
                raise IntegrityError(
                    f"a stored table claims {claimed} bytes in {info.num_columns} columns: too big, refused"
                )
            meta = _Meta.from_bytes((stored.schema_arrow.metadata or {}).get(_META_KEY))
            table = stored.read()
        except (pa.ArrowException, OSError) as exc:
            raise IntegrityError(f"a stored table is damaged: {_first_line(exc)}") from None
        if len(meta.kinds) != table.num_columns or meta.key not in table.column_names:
            raise IntegrityError("a stored table's description does not match its columns")
        return _Loaded(table, meta, checked=True)

    def _prepare(
        self, path: Path, key_column: str | None, *, encode: bool
    ) -> tuple[TablePreview, bytes | None, list[str]]:
        """The preview, the stored form (when asked for and the key is sound) and the key's problems."""
        import pyarrow as pa
        import pyarrow.compute as pc

        frame = _read_file(path)
        if key_column is not None and key_column not in frame.names:
            raise ValidationError(
                f"{path.name} has no column {key_column!r}; its columns: {columns_text(frame.names)}"
            )
        number = _row_number(frame.first, frame.skipped)
        count = len(frame.arrays[0])

        def usable(name: str) -> bool:
            array = frame.arrays[frame.names.index(name)]
            return bool(array.null_count == 0 and pc.count_distinct(array).as_py() == count)

        key = key_column or guess_key(frame.names, usable)

        def kind_of(column: tuple[str, pa.Array]) -> tuple[ColumnKind, str | None, list[str]]:
            said: list[str] = []
            if column[0] == key:
                return "text", None, said
            return (*_kind(column[0], column[1], said, number), said)

        kinds: list[ColumnKind] = []
        formats: dict[str, str] = {}
        notes = list(frame.notes)
        found = _each(kind_of, list(zip(frame.names, frame.arrays, strict=True)))
        for name, (kind, form, said) in zip(frame.names, found, strict=True):
            kinds.append(kind)
            notes.extend(said)
            if form:
                formats[name] = form
        problems = []
        if key is None:
            problems.append(
                "no column looks like a patient key (PatientID, Case ID, case_submitter_id...): choose one"
            )
        else:
            problems.extend(_key_problems(key, frame.arrays[frame.names.index(key)], number))
        table = pa.table(frame.arrays, names=frame.names)
        meta = _Meta(key or frame.names[0], tuple(kinds), formats, frame.first, tuple(frame.skipped))
        encoding = _pool().submit(_encode, table, meta) if encode and key and not problems else None
        loaded = _Loaded(table, meta, checked=False)
        preview = TablePreview(
            frame.filename,
            count,
            loaded.describe(),
            key,
            tuple(loaded.rows(limit=HEAD_ROWS)),
            tuple(problems + notes),
        )
        blob = encoding.result() if encoding else None
        if blob is not None:
            loaded.checked = True  # the key has neither blanks nor repeats
            self._last = (hashlib.sha256(blob).hexdigest(), loaded)
        return preview, blob, problems


def _import_all() -> None:
    import pandas  # noqa: F401
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401


def _key_problems(key: str, array: pa.Array, number: Callable[[int], int]) -> list[str]:
    import numpy as np
    import pyarrow.compute as pc

    problems = []
    if array.null_count:
        blanks = np.flatnonzero(pc.is_null(array).to_numpy(zero_copy_only=False))
        problems.append(
            f"the key column {key!r} is blank in {rows_text([number(int(i)) for i in blanks])}: "
            "every row needs its patient's key"
        )
    counts = pc.value_counts(pc.drop_null(array))
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        parts = []
        for value in repeated[:5].to_pylist():
            rows = np.flatnonzero(pc.equal(array, value).fill_null(False).to_numpy(zero_copy_only=False))
            parts.append(f"{value!r} in {rows_text([number(int(i)) for i in rows], 4)}")
        more = f" and {len(repeated) - 5} more repeated values" if len(repeated) > 5 else ""
        problems.append(
            f"the key column {key!r} repeats values: {', '.join(parts)}{more}; each patient needs one row"
        )
    return problems


def _encode(table: pa.Table, meta: _Meta) -> bytes:
    """The stored form: Parquet, zstd, the same bytes for the same table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(
        table.replace_schema_metadata({_META_KEY: meta.to_bytes()}),
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=False,
        row_group_size=1 << 20,
    )
    return bytes(sink.getvalue().to_pybytes())


# -- decoded tables --------------------------------------------------------------------------------
class _Loaded:
    """A table, decoded: texts per column, with numbers and dates parsed when a filter needs them.

    Caches fill on first use; filling twice on two threads gives the same values, so no lock.
    """

    def __init__(self, table: pa.Table, meta: _Meta, *, checked: bool) -> None:
        import pyarrow as pa

        self._columns: tuple[str, ...] = tuple(table.column_names)
        self._key = meta.key
        self._kinds: dict[str, ColumnKind] = dict(zip(self._columns, meta.kinds, strict=True))
        self._formats = meta.formats
        self._row_number = _row_number(meta.first, meta.skipped)
        self._arrays: dict[str, pa.Array] = {
            name: table.column(name).combine_chunks().cast(pa.string()) for name in self._columns
        }
        self._length = table.num_rows
        keys = self._arrays[self._key]
        self._keys: list[str] = keys.to_pylist()
        if checked and (keys.null_count or len(set(self._keys)) != len(self._keys)):
            raise IntegrityError("a stored table has blank or repeated keys: it was not stored by this app")
        self.checked = checked
        self._where: dict[str, int] | None = None
        self._order: npt.NDArray[np.intp] | None = None
        self._key_array: npt.NDArray[np.object_] | None = None
        self._numbers: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]] = {}
        self._dates: dict[str, tuple[npt.NDArray[np.datetime64], npt.NDArray[np.intp]]] = {}
        self._described: tuple[Column, ...] | None = None
        self._csv: pa.Array | None = None

    @property
    def key_column(self) -> str:
        return self._key

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    def __len__(self) -> int:
        return int(self._length)

    def keys(self) -> Sequence[str]:
        return self._keys

    def row_number(self, index: int) -> int:
        return self._row_number(index)

    def index(self, key: str) -> int | None:
        if self._where is None:
            self._where = {k: i for i, k in enumerate(self._keys)}
        return self._where.get(key)

    # -- describing --------------------------------------------------------------------------------
    def describe(self) -> tuple[Column, ...]:
        if self._described is None:
            self._described = tuple(_each(self._describe, self._columns))
        return self._described

    def _describe(self, name: str) -> Column:
        import numpy as np
        import pyarrow.compute as pc

        array = self._arrays[name]
        kind = self._kinds[name]
        low = high = None
        if kind == "number" and array.null_count < len(array):
            numbers, _ = self._as_numbers(name)
            low, high = _number_text(float(np.nanmin(numbers))), _number_text(float(np.nanmax(numbers)))
        elif kind == "date" and array.null_count < len(array):
            dates, _ = self._as_dates(name)
            valid = dates[~np.isnat(dates)]
            low, high = _date_text(valid.min()), _date_text(valid.max())
        distinct = pc.count_distinct(array, mode="only_valid").as_py()
        return Column(name, kind, array.null_count, distinct, low, high)

    def values(self, column: str, limit: int | None = None) -> list[tuple[str | None, int]]:
        import pyarrow.compute as pc

        counts = pc.value_counts(self._column(column))
        pairs: list[tuple[str | None, int]] = list(
            zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        )
        pairs.sort(key=lambda p: (-p[1], p[0] is None, p[0] or ""))  # blanks after their equals
        return pairs if limit is None else pairs[:limit]

    def rows(self, indices: Iterable[int] | None = None, limit: int | None = None) -> list[tuple[str, ...]]:
        import pyarrow.compute as pc

        if indices is None:
            stop = self._length if limit is None else min(limit, self._length)
            parts = [self._arrays[c].slice(0, stop) for c in self._columns]
        else:
            chosen = list(indices)[:limit] if limit is not None else list(indices)
            parts = [self._arrays[c].take(chosen) for c in self._columns]
        columns = [pc.fill_null(part, "").to_pylist() for part in parts]
        return list(zip(*columns, strict=True))

    def lines(self, indices: Sequence[int] | None = None) -> list[str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self._csv is None:
            self._csv = pc.binary_join_element_wise(*_each(_csv_field, list(self._arrays.values())), ",")
            if len(self._columns) == 1:  # a join of one column gives it back: make sure of its type
                self._csv = self._csv.cast(pa.string())
        chosen = self._csv if indices is None else self._csv.take(list(indices))
        lines: list[str] = chosen.to_pylist()
        return lines

    # -- filtering ---------------------------------------------------------------------------------
    def match(self, filters: Filters) -> list[int]:
        import numpy as np

        return [int(i) for i in np.flatnonzero(self._mask(filters))]

    def select_keys(self, filters: Filters) -> list[str]:
        import numpy as np
        import pyarrow.compute as pc

        mask = self._mask(filters)
        if self._order is None:
            self._order = pc.sort_indices(self._arrays[self._key]).to_numpy()
            self._key_array = np.array(self._keys, dtype=object)
        assert self._key_array is not None
        order = self._order
        chosen: list[str] = self._key_array[order[mask[order]]].tolist()
        return chosen

    def _column(self, name: str) -> pa.Array:
        array = self._arrays.get(name)
        if array is None:
            raise ValidationError(
                f"there is no column {name!r}; the columns are {columns_text(self._columns)}"
            )
        return array

    def _mask(self, filters: Filters) -> npt.NDArray[np.bool_]:
        import numpy as np

        mask = np.ones(self._length, dtype=bool)
        for name, expressions in filters:
            if name in (JOIN_FILTER, JOIN_EVERY):
                continue
            self._column(name)
            either = np.zeros(self._length, dtype=bool)
            for expression in expressions:
                either |= self._test(name, expression)
            mask &= either
        return mask

    def _test(self, name: str, expression: str) -> npt.NDArray[np.bool_]:
        import numpy as np
        import pyarrow.compute as pc

        array = self._arrays[name]
        test = parse_test(expression)
        kind = self._kinds[name]
        if test.kind == "present":
            return _bools(pc.is_valid(array))
        if test.kind == "absent":
            return _bools(pc.is_null(array))
        if test.kind == "equal":
            if kind == "number" and _IS_NUMBER(test.value):
                numbers, _ = self._as_numbers(name)
                return np.asarray(numbers == float(test.value), dtype=bool)
            when = _date(test.value, self._formats.get(name)) if kind == "date" else None
            if when is not None:
                dates, _ = self._as_dates(name)
                return np.asarray(dates == when, dtype=bool)
            return _bools(pc.equal(array, test.value).fill_null(False))
        return self._range(name, kind, test, expression)

    def _range(self, name: str, kind: ColumnKind, test: Test, expression: str) -> npt.NDArray[np.bool_]:
        import numpy as np

        said = condition_text(name, expression)
        bounds = [b for b in (test.low, test.high) if b is not None]
        numeric = all(_IS_NUMBER(b) for b in bounds)
        form = self._formats.get(name)
        dated = all(_date(b, form) is not None for b in bounds)
        if kind == "number" or (kind == "text" and numeric):
            bad_bound = next((b for b in bounds if not _IS_NUMBER(b)), None)
            if bad_bound is not None:
                raise ValidationError(f"{said}: column {name!r} holds numbers; {bad_bound!r} is not one")
            values: npt.NDArray[Any]
            values, bad = self._as_numbers(name)
            if len(bad):
                raise self._not_all(name, expression, "numbers", bad)
            low: Any = float(test.low) if test.low is not None else None
            high: Any = float(test.high) if test.high is not None else None
        elif kind == "date" or (kind == "text" and dated):
            bad_bound = next((b for b in bounds if _date(b, form) is None), None)
            if bad_bound is not None:
                raise ValidationError(
                    f"{said}: column {name!r} holds dates; {bad_bound!r} is not one (write 2004-03-12)"
                )
            values, bad = self._as_dates(name)
            if len(bad):
                raise self._not_all(name, expression, "dates", bad)
            low = _date(test.low, form) if test.low is not None else None
            high = _date(test.high, form) if test.high is not None else None
        else:
            bad_bound = next((b for b in bounds if not _IS_NUMBER(b) and _date(b, form) is None), None)
            if bad_bound is None:
                raise ValidationError(f"{said}: a range takes two numbers or two dates, not one of each")
            raise ValidationError(
                f"{said}: a range takes numbers or dates; {bad_bound!r} is neither "
                f'(for text with ".." in it, write {name}="{expression}")'
            )
        mask = np.ones(self._length, dtype=bool)
        with np.errstate(invalid="ignore"):
            if low is not None:
                mask &= (values > low) if test.low_strict else (values >= low)
            if high is not None:
                mask &= (values < high) if test.high_strict else (values <= high)
        return mask

    def _not_all(self, name: str, expression: str, what: str, bad: npt.NDArray[np.intp]) -> ValidationError:
        """The error of a range over a column whose values are not all numbers (or dates)."""
        said = condition_text(name, expression)
        array = self._arrays[name]
        offenders = _offenders(array, bad, self.row_number)
        if len(bad) == len(array) - array.null_count:
            return ValidationError(
                f"{said}: column {name!r} holds text, not {what} ({offenders}); a range "
                f"needs a column of numbers or dates"
            )
        return ValidationError(
            f"{said} needs {what}, but column {name!r} holds values that are not: {offenders}; "
            f"fix those cells, or select them with {name}=<value>"
        )

    def _as_numbers(self, name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """The column as numbers (NaN: blank or no number) and the rows that are no number."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        known = self._numbers.get(name)
        if known is None:
            array = self._arrays[name]
            if self._kinds[name] == "number":
                numbers = pc.cast(array, pa.float64())
                bad = np.zeros(0, dtype=np.intp)
            else:
                ok = pc.match_substring_regex(array, _NUMBER).fill_null(False)
                numbers = pc.cast(pc.if_else(ok, array, pa.scalar(None, pa.string())), pa.float64())
                valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
                bad = np.flatnonzero(valid & ~ok.to_numpy(zero_copy_only=False))
            values = numbers.to_numpy(zero_copy_only=False).astype(np.float64)
            known = self._numbers[name] = (values, bad)
        return known

    def _as_dates(self, name: str) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.intp]]:
        """The column as dates (NaT: blank or no date) and the rows that are no date."""
        import numpy as np
        import pyarrow.compute as pc

        known = self._dates.get(name)
        if known is None:
            array = self._arrays[name]
            form = self._formats.get(name)
            forms = [form] if form else list(DATE_FORMATS)
            parsed = pc.strptime(array, format=forms[0], unit="s", error_is_null=True)
            for other in forms[1:]:
                parsed = pc.coalesce(parsed, pc.strptime(array, format=other, unit="s", error_is_null=True))
            values = parsed.to_numpy(zero_copy_only=False).astype("datetime64[s]")
            valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(valid & np.isnat(values))
            known = self._dates[name] = (values, bad)
        return known


def _date(text: str, form: str | None = None) -> np.datetime64 | None:
    import numpy as np

    for candidate in (*_BOUND_FORMATS, *((form,) if form else ())):
        try:
            return np.datetime64(dt.datetime.strptime(text.strip(), candidate), "s")
        except ValueError:
            continue
    return None


def _date_text(value: np.datetime64) -> str:
    import numpy as np

    text = str(np.datetime_as_string(value, unit="s"))
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")


def _bools(array: pa.Array) -> npt.NDArray[np.bool_]:
    import numpy as np

    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _csv_field(array: pa.Array) -> pa.Array:
    """Texts as ``core.clinical.csv_line`` writes fields (blank: empty)."""
    import pyarrow.compute as pc

    text = pc.fill_null(array, "")
    needs = pc.match_substring_regex(text, r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)
