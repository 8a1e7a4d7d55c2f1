"""Clinical tables: CSV, TSV or Excel tables of patients, kept in the replicated store and filtered.

A table is read on the node that adds it (``TableEngine``, pandas and pyarrow in
``sources/clinical.py``), stored once in the replicated store as a Parquet file (chunked like a
manifest, hashed: the sha256 is the table id) and recorded as a numbered version of its name
(``TableVersion``). Every member then reads it from the store, without the file; a node keeps the
few tables it used last decoded (``Clinical``).

Filters are pointer filters (``core.pointer.Filters``): the name is a column, the values are
*expressions*, OR'd within a column, columns AND'd:

==============  ==========================================================================
``60``          equal (numbers compare as numbers: ``60`` matches ``60.0``; dates as dates)
``=60..70``     equal to the literal text (for values that would read as something else)
``>=60``        at least (also ``<=``, ``>``, ``<``); numbers and dates only
``60..70``      between, both ends included; either end may be open (``60..``, ``..70``)
``*``           present (not blank)
``!``           absent (blank)
==============  ==========================================================================

People write conditions (``parse_condition``): ``age>=60``, ``age=60..70``,
``stage=II,IIA,IIB``, ``smoking=*``, ``smoking=!``, ``diagnosis="Adenocarcinoma, NOS"``.

The reserved filter ``@in`` (``JOIN_FILTER``) is no column: it names the pointers of other
archives a rule joins its patients to (the Integrator reads it); filtering ignores it.

``ClinicalSource`` shows the tables as the built-in source ``clinical``: ``table > patient``, one
leaf per row, fingerprinted by the row's text, so a row changed in a new table version is revised
and the others stay equal.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

from mediator_desktop.core.errors import IntegrityError, NotFound, ValidationError
from mediator_desktop.core.manifest import MAX_CHUNK_BYTES, Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.paths import private_dir, safe_component
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer, make_filters
from mediator_desktop.core.replica import (
    MAX_NAME,
    MAX_TABLE_BLOB_BYTES,
    MAX_TABLE_COLUMNS,
    TableVersion,
    check_table_name,
)
from mediator_desktop.core.selection import JOIN_EVERY as JOIN_EVERY
from mediator_desktop.core.selection import JOIN_FILTER as JOIN_FILTER  # its home; named here too
from mediator_desktop.core.selection import Rule, Selection
from mediator_desktop.core.source import BrowseItem, BrowsePage, LeafPlan, RemoteFile
from mediator_desktop.core.store import Store, submit_upload

log = logging.getLogger(__name__)

SOURCE_ID: Final = "clinical"
#: Largest file read as a table; a bigger one is refused before it is read.
MAX_TABLE_BYTES: Final = 256 * 1024**2
#: Rows a preview shows.
HEAD_ROWS: Final = 20
#: How ``Clinical.values`` names the blank cells of a column.
BLANK: Final = "(blank)"
#: Bytes the column names may take in one ``commit_table`` command (it must fit in 60,000).
MAX_COLUMN_BYTES: Final = 50_000
#: Key column names recognised, in order of preference, compared without case and punctuation.
KEY_NAMES: Final = (
    "PatientID",
    "Case ID",
    "case_submitter_id",
    "bcr_patient_barcode",
    "Subject ID",
    "patient_id",
    "Patient ID",
    "submitter_id",
    "participant_id",
    "Patient",
    "Subject",
    "Case",
)

ColumnKind = Literal["text", "number", "date"]


def _squash(name: str) -> str:
    return re.sub(r"[\W_]+", "", name).casefold()


_KEY_RANK: Final = {squashed: rank for rank, squashed in reversed(list(enumerate(map(_squash, KEY_NAMES))))}


# -- what a table holds -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table and what it holds.

    Attributes:
        kind: ``number`` when every non-blank value is a number, ``date`` when every one is a
            date, else ``text`` (a column of numbers with a few words among them is text).
        blanks: blank cells.
        distinct: distinct non-blank values.
        low, high: the smallest and largest value of a number or date column, as text
            (None for text, or when every cell is blank).
    """

    name: str
    kind: ColumnKind
    blanks: int
    distinct: int
    low: str | None = None
    high: str | None = None


@dataclass(frozen=True, slots=True)
class TablePreview:
    """What a file holds, shown before it is added, so the user can confirm the key column.

    Attributes:
        rows: rows of data (the header not counted).
        key_guess: the key column guessed from the usual names (``PatientID``, ``Case ID``...),
            or the one asked for; None when no column looks like one.
        head: the first rows as display text (blank cells are "").
        problems: what the user should know or fix: a key column with blanks or repeats, a
            column of numbers read as text, skipped empty rows, other sheets of a workbook.
    """

    filename: str
    rows: int
    columns: tuple[Column, ...]
    key_guess: str | None
    head: tuple[tuple[str, ...], ...]
    problems: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


class LoadedTable(Protocol):
    """One table version, decoded and ready to filter (made by ``TableEngine.load``).

    Rows are numbered from 0 in the file's order; ``row_number`` gives the row a spreadsheet
    shows (the header is row 1). Filters may use the expressions of this module; an unknown
    column or a range over values that are not numbers (or dates) is a ``ValidationError``.
    """

    @property
    def key_column(self) -> str: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    def __len__(self) -> int: ...

    def describe(self) -> tuple[Column, ...]:
        """Every column, in order, with its kind and figures."""
        ...

    def keys(self) -> Sequence[str]:
        """The key of each row, in row order."""
        ...

    def index(self, key: str) -> int | None:
        """The row of ``key``, or None."""
        ...

    def row_number(self, index: int) -> int:
        """The spreadsheet row of row ``index`` (the header is row 1; skipped empty rows count)."""
        ...

    def match(self, filters: Filters) -> list[int]:
        """The rows ``filters`` select, ascending (``@in`` ignored)."""
        ...

    def select_keys(self, filters: Filters) -> list[str]:
        """The keys of the rows ``filters`` select, sorted."""
        ...

    def values(self, column: str, limit: int | None = None) -> list[tuple[str | None, int]]:
        """The values of ``column`` with their counts, most frequent first (None: blank)."""
        ...

    def rows(self, indices: Iterable[int] | None = None, limit: int | None = None) -> list[tuple[str, ...]]:
        """Rows as display text (blank cells are ""), all of them or those at ``indices``."""
        ...

    def lines(self, indices: Sequence[int] | None = None) -> list[str]:
        """Rows (all, or those at ``indices``) as ``csv_line`` writes them: what fingerprints hash."""
        ...


class TableEngine(Protocol):
    """Reads table files and decodes stored tables (``sources.clinical.PandasTables``)."""

    def preview(self, path: Path, key_column: str | None = None) -> TablePreview:
        """What ``path`` holds. Raises ``NotFound`` when there is no such file, ``ValidationError``
        when it is no table (too big, binary, no header, no rows, unnamed or repeated columns, no
        column ``key_column``); problems of the key column are reported in ``problems``."""
        ...

    def read(self, path: Path, key_column: str | None = None) -> tuple[bytes, TablePreview]:
        """The table's stored form (Parquet; the same file always gives the same bytes) and its
        preview, whose ``key_guess`` is the key column used: ``key_column``, else the guess.

        Raises ``ValidationError`` as ``preview`` does, and also when no key column is given or
        guessed (naming the columns) or the key column has blanks or repeats (naming the rows).
        """
        ...

    def load(self, blob: bytes) -> LoadedTable:
        """Decode a stored form. Raises ``IntegrityError`` when it is not one this app wrote."""
        ...


# -- the filter language --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Test:
    """One filter expression, parsed (see the module's table)."""

    __test__: ClassVar[bool] = False  # not a test class, whatever pytest thinks of the name

    kind: Literal["equal", "range", "present", "absent"]
    value: str = ""
    low: str | None = None
    high: str | None = None
    low_strict: bool = False
    high_strict: bool = False

    def __str__(self) -> str:
        """The canonical expression."""
        if self.kind == "present":
            return "*"
        if self.kind == "absent":
            return "!"
        if self.kind == "equal":
            return f"={self.value}" if _needs_literal(self.value) else self.value
        if self.low is not None and self.high is not None:
            return f"{self.low}..{self.high}"
        if self.low is not None:
            return f"{'>' if self.low_strict else '>='}{self.low}"
        return f"{'<' if self.high_strict else '<='}{self.high}"


def _needs_literal(value: str) -> bool:
    return value[:1] in ("*", "!", "<", ">", "=") or ".." in value or value != value.strip()


_SYNTAX: Final = (
    "a condition is COLUMN=VALUE[,VALUE...], COLUMN>=X, COLUMN<=X, COLUMN>X, COLUMN<X, "
    "COLUMN=LOW..HIGH, COLUMN=* (present) or COLUMN=! (blank); e.g. age>=60, stage=II,IIA,IIB"
)


def parse_test(expression: str) -> Test:
    """Read one filter expression (a value of a pointer filter)."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError("an empty filter value: use ! for blank cells and * for any value")
    text = expression.strip()
    if text == "*":
        return Test("present")
    if text == "!":
        return Test("absent")
    if text.startswith("="):  # literal text, kept as it is (spaces too)
        literal = expression[1:] if expression.startswith("=") else text[1:]
        if not literal:
            raise ValidationError("'=' needs the text to compare with after it")
        return Test("equal", literal)
    for op, low, strict in ((">=", True, False), ("<=", False, False), (">", True, True), ("<", False, True)):
        if text.startswith(op):
            bound = text[len(op) :].strip()
            if not bound:
                raise ValidationError(f"{text!r} needs a number or a date after {op}")
            return (
                Test("range", low=bound, low_strict=strict)
                if low
                else Test("range", high=bound, high_strict=strict)
            )
    if ".." in text:
        first, _, second = text.partition("..")
        first, second = first.strip(), second.strip()
        if not first and not second:
            raise ValidationError("a range needs at least one end: 60..70, 60.. or ..70")
        return Test("range", low=first or None, high=second or None)
    return Test("equal", text)


def _split_values(text: str) -> list[tuple[str, bool]]:
    """Comma-separated values; a value in double quotes is taken as it is (``""`` is a quote)."""
    values: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == '"':
            chars, i = [], i + 1
            while True:
                if i >= n:
                    raise ValidationError(f"a quote is not closed in {text!r}")
                if text[i] == '"':
                    if text[i + 1 : i + 2] == '"':
                        chars.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            while i < n and text[i] == " ":
                i += 1
            if i < n and text[i] != ",":
                raise ValidationError(f"after a quoted value comes a comma, not {text[i:]!r}")
            values.append(("".join(chars), True))
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            values.append((text[i:end].strip(), False))
            i = end
        if i >= n:
            return values
        i += 1  # the comma


def parse_condition(text: str) -> tuple[str, tuple[str, ...]]:
    """Read one condition (``age>=60``, ``stage=II,IIA``) as a column and its filter expressions."""
    if not isinstance(text, str):
        raise ValidationError(f"a condition is text, not {type(text).__name__}")
    found = re.search(r"[<>=]", text)
    column = text[: found.start()].strip() if found else ""
    if found is None or not column:
        raise ValidationError(f"{text.strip()!r} is no condition: {_SYNTAX}")
    rest = text[found.start() :]
    if rest[0] in "<>":
        op = rest[:2] if rest[1:2] == "=" else rest[:1]
        bound = rest[len(op) :].strip()
        if not bound or "," in bound:
            raise ValidationError(f"{text.strip()!r}: {op} takes one number or date, e.g. {column}{op}60")
        return column, (str(parse_test(op + bound)),)
    rest = rest[2:] if rest.startswith("==") else rest[1:]
    expressions: list[str] = []
    for value, quoted in _split_values(rest):
        if not value and not quoted:
            raise ValidationError(
                f"{text.strip()!r} has an empty value: write {column}=! for blank cells, {column}=* for any"
            )
        if quoted and not value:
            test = Test("absent")  # x="" asks for blank cells
        else:
            test = Test("equal", value) if quoted else parse_test(value)
        expressions.append(str(test))
    return column, tuple(dict.fromkeys(expressions))


def parse_conditions(texts: Iterable[str] | str) -> Filters:
    """Conditions AND'd: ``["age>=60", "stage=II,III"]``. Two one-sided bounds of one column
    (``age>=60``, ``age<=70``) make one range (``60..70``); other repeats of a column are refused."""
    by_column: dict[str, list[tuple[str, ...]]] = {}
    for text in [texts] if isinstance(texts, str) else texts:
        column, values = parse_condition(text)
        by_column.setdefault(column, []).append(values)
    merged: dict[str, tuple[str, ...]] = {}
    for column, given in by_column.items():
        if len(given) == 1:
            merged[column] = given[0]
            continue
        tests = [parse_test(v[0]) for v in given if len(v) == 1]
        lows = [t for t in tests if t.kind == "range" and t.high is None]
        highs = [t for t in tests if t.kind == "range" and t.low is None]
        if len(given) == 2 and len(lows) == 1 and len(highs) == 1:
            if lows[0].low_strict or highs[0].high_strict:
                raise ValidationError(
                    f"{column!r}: a range with > or < cannot be combined; write one range with both ends "
                    f"included, e.g. {column}={lows[0].low}..{highs[0].high}"
                )
            merged[column] = (str(Test("range", low=lows[0].low, high=highs[0].high)),)
            continue
        raise ValidationError(
            f"column {column!r} has {len(given)} conditions: give its values in one, e.g. "
            f"{column}=II,III (either value) or {column}=60..70 (a range)"
        )
    return make_filters(merged)


def describe_filters(filters: Filters) -> list[str]:
    """Filters as conditions people read (what ``parse_conditions`` reads back), ``@in`` left out."""
    return [condition_text(name, values) for name, values in without_join(filters)]


def condition_text(name: str, expressions: Iterable[str] | str) -> str:
    """One column's expressions as the condition people write: ``age>=60``, ``stage=II,III``."""
    tests = [parse_test(e) for e in ([expressions] if isinstance(expressions, str) else expressions)]
    if len(tests) == 1 and tests[0].kind == "range" and (tests[0].low is None or tests[0].high is None):
        return f"{name}{tests[0]}"
    return f"{name}=" + ",".join(_quoted(str(t)) for t in tests)


def _quoted(expression: str) -> str:
    if expression.startswith("=") or "," in expression or '"' in expression:
        literal = expression[1:] if expression.startswith("=") else expression
        return '"' + literal.replace('"', '""') + '"'
    return expression


def join_pointer(
    table: str,
    filters: Filters | Mapping[str, str | Iterable[str]],
    targets: Iterable[Pointer],
    *,
    source_id: str = SOURCE_ID,
) -> Pointer:
    """The rule pointer "the patients of ``table`` that ``filters`` select, in ``targets``"."""
    given = dict(make_filters(filters))
    given.pop(JOIN_FILTER, None)
    texts = tuple(str(t) for t in targets)
    if not texts:
        raise ValidationError("a join needs at least one pointer into another archive")
    return Pointer(source_id, (table,), make_filters({**given, JOIN_FILTER: texts}))


def join_targets(pointer: Pointer) -> list[Pointer]:
    """The pointers a rule joins its patients to (none when it joins nothing)."""
    return [Pointer.parse(text) for text in dict(pointer.filters).get(JOIN_FILTER, ())]


def without_join(filters: Filters) -> Filters:
    """``filters`` without the join's own (``@in``, ``@every``): the column conditions."""
    return tuple(f for f in filters if f[0] not in (JOIN_FILTER, JOIN_EVERY))


# -- helpers the engines share ----------------------------------------------------------------------
def guess_key(columns: Iterable[str], usable: Callable[[str], bool] | None = None) -> str | None:
    """The column that most looks like a patient key, by name; among several, the first
    ``usable`` one (no blanks, no repeats), else the best-named one."""
    named = sorted(
        (rank, i, name)
        for i, name in enumerate(columns)
        if (rank := _KEY_RANK.get(_squash(name))) is not None
    )
    if not named:
        return None
    if usable is not None:
        for _, _, name in named:
            if usable(name):
                return name
    return named[0][2]


def is_key_name(name: str) -> bool:
    return _squash(name) in _KEY_RANK


def rows_text(rows: Sequence[int], limit: int = 8) -> str:
    """``row 5``, ``rows 3, 7 and 9``, ``rows 3, 7, ... and 12 more``."""
    shown = [str(r) for r in rows[:limit]]
    if len(rows) == 1:
        return f"row {shown[0]}"
    if len(rows) <= limit:
        return f"rows {', '.join(shown[:-1])} and {shown[-1]}"
    return f"rows {', '.join(shown)} and {len(rows) - limit} more"


def columns_text(columns: Iterable[str], limit: int = 40) -> str:
    names = [repr(c) for c in columns]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


_QUOTE: Final = re.compile(r'[,"\r\n]').search


def csv_line(values: Iterable[str]) -> str:
    """One CSV line (no line end) in the canonical form rows are fingerprinted in: fields joined
    by commas; a field with a comma, a quote or a line break in quotes, its quotes doubled.

    Fixed here rather than taken from the ``csv`` module, whose quoting has changed between
    Python versions: every member must compute the same fingerprint for the same row.
    """
    return ",".join(f'"{v.replace(chr(34), chr(34) * 2)}"' if _QUOTE(v) else v for v in values)


def row_text(columns: Sequence[str], values: Sequence[str]) -> str:
    """A row as a two-line CSV (header and values): what its fingerprint hashes and what a
    download writes."""
    return f"{csv_line(columns)}\n{csv_line(values)}\n"


def _fingerprint(text: str) -> tuple[int, str]:
    data = text.encode()
    return len(data), "sha256:" + hashlib.sha256(data).hexdigest()[:32]


# -- the service part ------------------------------------------------------------------------------
class Signs(Protocol):
    """What ``Clinical`` needs of the service's signer (``core.service._Signer``)."""

    timeout: float

    def seal(self, op: str, payload: bytes = b"", **args: Any) -> bytes: ...


class Clinical:
    """The clinical tables of the cluster: add, list, describe and filter them (``service.clinical``).

    Reads come from the local replica; a node keeps the tables it used last decoded. ``pinned``
    gives the tables as they are at one moment, for work that reads a table more than once.
    """

    def __init__(
        self, signer: Signs, store: Store, engine: TableEngine, data_dir: Path | None, *, cached: int = 4
    ) -> None:
        self._signer = signer
        self._store = store
        self._engine = engine
        self.data_dir = data_dir
        self._cached = max(1, cached)
        self._loaded: OrderedDict[str, LoadedTable] = OrderedDict()
        self._lock = threading.Lock()
        #: The versions of every table at the moment of a pinned view (``pinned``); None: the store's.
        self._moment: Mapping[str, tuple[TableVersion, ...]] | None = None

    def pinned(self) -> Clinical:
        """The tables as they are now, fixed: a view whose reads (``tables``, ``history``, ``get``
        and what uses them) answer this moment's versions, whatever version or table reaches the
        node later, so two reads of one piece of work agree. It shares the decoded tables; adding
        through it adds to the store as ever. A pinned view's own ``pinned`` is itself.

        Thread-safe: the moment is a copy, never changed; called on any thread.
        """
        if self._moment is not None:
            return self
        # The raft thread adds names to this dict and appends to its lists: each is copied in one
        # call (C code, under the GIL), so no copy holds half a change. A command changes one
        # table, and a resolution reads each table on its own: one moment per table suffices.
        tables = list(self._store.state.tables.items())
        moment = {name: tuple(versions) for name, versions in tables if versions}
        view = copy.copy(self)  # the same store, engine, decoded tables and their lock
        view._moment = moment
        return view

    # -- adding ------------------------------------------------------------------------------------
    def preview(self, path: Path | str, key_column: str | None = None) -> TablePreview:
        """What a file holds, for the user to confirm (the key column above all)."""
        return self._engine.preview(Path(path), key_column)

    def add(self, path: Path | str, name: str | None = None, key_column: str | None = None) -> TableVersion:
        """Read a table file and store it as a new version of ``name`` (default: the file's name
        without its extension). The same content as the latest version adds nothing and returns
        that version. Nothing is recorded unless the whole table was stored.

        Raises ``ValidationError`` for a file that is no table, a key column that cannot be
        guessed or has blanks or repeats, or a bad name; ``ClusterUnavailable`` when the store
        cannot take it now.
        """
        path = Path(path)
        name = check_table_name((path.stem if name is None else name).strip())
        blob, preview = self._engine.read(path, key_column)
        key = key_column or preview.key_guess
        if key is None:  # the engine refuses this already; a defect if it did not
            raise ValidationError(
                f"no key column given for {path.name}; its columns: {columns_text(preview.names)}"
            )
        columns = list(preview.names)
        if len(columns) > MAX_TABLE_COLUMNS or sum(len(c.encode()) + 3 for c in columns) > MAX_COLUMN_BYTES:
            raise ValidationError(
                f"{path.name} has {len(columns)} columns whose names are too many or too long to store "
                f"(at most {MAX_TABLE_COLUMNS} columns, {MAX_COLUMN_BYTES:,} bytes of names): keep the "
                "columns you need"
            )
        if len(blob) > MAX_TABLE_BLOB_BYTES:
            raise ValidationError(
                f"{path.name} packs to {len(blob) / 2**20:.0f} MB; the store takes tables of up to "
                f"{MAX_TABLE_BLOB_BYTES >> 20} MB packed: keep the columns and rows you need"
            )
        table_id = hashlib.sha256(blob).hexdigest()
        state = self._store.state
        versions = state.tables.get(name)
        if versions and versions[-1].table_id == table_id:
            return versions[-1]
        seal = self._signer.seal
        chunks = (
            [blob[i : i + MAX_CHUNK_BYTES] for i in range(0, len(blob), MAX_CHUNK_BYTES)]
            if table_id not in state.table_blobs
            else []
        )

        def commands() -> list[bytes]:  # sealed anew for a restart (``submit_upload``)
            return [
                *(
                    seal("put_table_chunk", chunk, table_id=table_id, index=i, total=len(chunks))
                    for i, chunk in enumerate(chunks)
                ),
                seal(
                    "commit_table",
                    name=name,
                    table_id=table_id,
                    key_column=key,
                    columns=columns,
                    rows=preview.rows,
                    filename=path.name[:MAX_NAME],
                ),
            ]

        results = submit_upload(self._store, commands, self._signer.timeout + (len(chunks) + 1) * 0.05)
        value: Any = results[-1]
        added: TableVersion = self._store.state.tables[name][value["version"] - 1]
        return added

    # -- reading -----------------------------------------------------------------------------------
    def _versions(self) -> Mapping[str, Sequence[TableVersion]]:
        return self._store.state.tables if self._moment is None else self._moment

    def tables(self) -> list[TableVersion]:
        """The latest version of every table, by name."""
        return [versions[-1] for _, versions in sorted(self._versions().items()) if versions]

    def history(self, name: str) -> list[TableVersion]:
        """Every version of table ``name``, oldest first."""
        versions = self._versions().get(name)
        if not versions:
            raise NotFound(f"there is no clinical table {name!r} ({self._known()})")
        return list(versions)

    def get(self, name: str, version: int | None = None) -> TableVersion:
        """Version ``version`` of table ``name`` (default: the latest)."""
        versions = self.history(name)
        if version is None:
            return versions[-1]
        if type(version) is not int or not 1 <= version <= len(versions):
            raise NotFound(f"table {name!r} has no version {version!r} (it has 1 to {len(versions)})")
        return versions[version - 1]

    def _known(self) -> str:
        names = sorted(n for n, v in self._versions().items() if v)
        return f"the tables: {', '.join(map(repr, names))}" if names else "there are no tables yet"

    def load(self, version: TableVersion) -> LoadedTable:
        """A table version, decoded (kept for the next use)."""
        with self._lock:
            table = self._loaded.get(version.table_id)
            if table is not None:
                self._loaded.move_to_end(version.table_id)
                return table
            chunks = self._store.state.table_blobs.get(version.table_id)
            if chunks is None:
                raise IntegrityError(
                    f"the content of table {version.name!r} version {version.number} is not in the store"
                )
            table = self._engine.load(b"".join(chunks))
            if (
                table.columns != version.columns
                or table.key_column != version.key_column
                or len(table) != (version.rows)
            ):
                raise IntegrityError(
                    f"table {version.name!r} version {version.number}: the stored content does not match "
                    "its record (columns, key or rows differ)"
                )
            self._loaded[version.table_id] = table
            while len(self._loaded) > self._cached:
                self._loaded.popitem(last=False)
            return table

    def table(self, name: str, version: int | None = None) -> LoadedTable:
        """Table ``name`` (a version of it), decoded."""
        return self.load(self.get(name, version))

    def columns(self, name: str, version: int | None = None) -> list[Column]:
        """The columns of a table with their kinds and figures."""
        return list(self.table(name, version).describe())

    def values(
        self, name: str, column: str, limit: int = 500, version: int | None = None
    ) -> list[tuple[str, int]]:
        """The values of ``column`` with how many rows hold each, most frequent first; blank
        cells count as ``(blank)``."""
        table = self.table(name, version)
        if column not in table.columns:
            raise ValidationError(
                f"table {name!r} has no column {column!r}; its columns: {columns_text(table.columns)}"
            )
        return [(BLANK if value is None else value, n) for value, n in table.values(column, limit)]

    def select(
        self,
        name: str,
        filters: Filters | Mapping[str, str | Iterable[str]],
        version: int | None = None,
    ) -> list[str]:
        """The keys of the rows ``filters`` select, sorted.

        Raises ``ValidationError`` for a column the table does not have (naming its columns), or
        a range over a column with values that are not numbers or dates (naming them and their rows).
        """
        table = self.table(name, version)
        try:
            return table.select_keys(make_filters(filters))
        except ValidationError as exc:
            raise ValidationError(f"table {name!r}: {exc}") from None

    def rows(
        self,
        name: str,
        keys: Collection[str] | None = None,
        limit: int | None = None,
        version: int | None = None,
    ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """The columns, and the rows (of ``keys``, in the table's order; keys it lacks are left
        out) as display text."""
        table = self.table(name, version)
        if keys is None:
            return table.columns, table.rows(limit=limit)
        indices = sorted(i for i in map(table.index, set(keys)) if i is not None)
        return table.columns, table.rows(indices, limit)


# -- the built-in source ---------------------------------------------------------------------------
class ClinicalSource:
    """The clinical tables as a source: ``table > patient``, a leaf per row.

    Rules select rows: ``clinical/<table>?age=>=60`` the rows that match, ``clinical/<table>/<key>``
    one row, ``clinical`` every row of every table; the deepest rule wins and an exclusion wins a
    tie, as everywhere (``core.selection``); ``@in`` plays no part in which rows are selected.
    Tables are resolved at their latest version: a new version is drift for the sets that use it.
    Work that reads the tables more than once (a cohort's expansion, then the resolution of its
    rows) reads them through ``pinned``: one moment's versions throughout.
    """

    title = "Clinical tables"
    hierarchy = Hierarchy(("table", "patient"))
    connections = 4

    def __init__(self, clinical: Clinical, source_id: str = SOURCE_ID) -> None:
        self.source_id = source_id
        self._clinical = clinical
        self._fingerprints: OrderedDict[str, dict[int, tuple[int, str]]] = OrderedDict()
        self._scratch: Path | None = None
        self._lock = threading.Lock()

    def pinned(self) -> ClinicalSource:
        """This source with its tables fixed as they are now (``Clinical.pinned``): its cohorts,
        rows and browsing answer this moment's versions, whatever version reaches the node later.
        One resolution pass uses one such view (``core.integrator.PinnedArchives``), so the rows
        of a cohort come from the version its patients came from. It shares the remembered
        fingerprints (per table version, so any view may use them). A pinned source's own
        ``pinned`` is itself.

        Thread-safe; called on any thread (passes run on workers).
        """
        tables = self._clinical.pinned()
        if tables is self._clinical:
            return self
        view = copy.copy(self)  # the same fingerprints and their lock
        view._clinical = tables
        return view

    @property
    def filterable(self) -> tuple[str, ...]:
        """The columns of the current tables."""
        return tuple(sorted({c for t in self._clinical.tables() for c in t.columns}))

    # -- browsing ----------------------------------------------------------------------------------
    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        filters = without_join(make_filters(filters))
        if not path:
            items = []
            for version in self._clinical.tables():
                leaves = version.rows
                if filters:
                    if not {n for n, _ in filters} <= set(version.columns):
                        continue
                    leaves = len(self._clinical.load(version).match(filters))
                label = (
                    f"{version.filename or version.name} · v{version.number} · {len(version.columns)} columns"
                )
                items.append(BrowseItem(version.name, "table", label, leaves))
            return BrowsePage(tuple(items[offset : offset + limit]), offset, len(items))
        if len(path) > 1:
            raise ValidationError(f"{'/'.join(path)} is one row of a table: it has nothing below it")
        version = self._clinical.get(path[0])
        table = self._clinical.load(version)
        try:
            keys = table.select_keys(filters)
        except ValidationError as exc:
            raise ValidationError(f"table {version.name!r}: {exc}") from None
        page = keys[offset : offset + limit]
        indices = [table.index(k) for k in page]
        rows = table.rows([i for i in indices if i is not None])
        key_at = table.columns.index(table.key_column)
        items = []
        for key, row in zip(page, rows, strict=True):
            details = tuple(
                (c, v) for i, (c, v) in enumerate(zip(table.columns, row, strict=True)) if i != key_at
            )
            short = [v for _, v in details if v and len(v) <= 24][:3]
            items.append(BrowseItem(key, "patient", " · ".join(short) or key, 1, None, details))
        return BrowsePage(tuple(items), offset, len(keys))

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        """The values column ``name`` takes (in table ``path[0]``, or in every table that has it)."""
        versions = [self._clinical.get(path[0])] if path else self._clinical.tables()
        values: set[str] = set()
        for version in versions:
            if name not in version.columns:
                if path:
                    raise ValidationError(
                        f"table {version.name!r} has no column {name!r}; its columns: "
                        f"{columns_text(version.columns)}"
                    )
                continue
            values.update(v for v, _ in self._clinical.load(version).values(name) if v is not None)
        return sorted(values)

    # -- resolution --------------------------------------------------------------------------------
    def resolve(self, selection: Selection) -> Manifest:
        builder = ManifestBuilder()
        for version, table, kept in self._kept(selection):
            prints = self._prints(version, table, kept)
            keys = table.keys()
            for i in kept:
                size, checksum = prints[i]
                builder.add(self.source_id, (version.name, keys[i]), size=size, count=1, checksum=checksum)
        return builder.build()

    def cohorts(self, selection: Selection) -> list[tuple[Pointer, list[str]]]:
        """For each rule that joins (has ``@in``), its pointer and the keys of the rows it selects
        that the selection as a whole keeps (a row excluded elsewhere is in no cohort), sorted."""
        joins = [
            r.pointer
            for r in selection.sorted_rules()
            if r.include and r.pointer.source_id == self.source_id and JOIN_FILTER in dict(r.pointer.filters)
        ]
        if not joins:
            return []
        kept = self._kept(selection)
        out = []
        for pointer in joins:
            keys: set[str] = set()
            for version, table, rows in kept:
                if pointer.path and pointer.path[0] != version.name:
                    continue
                chosen = set(self._rows_of(version, table, pointer)).intersection(rows)
                all_keys = table.keys()
                keys.update(all_keys[i] for i in chosen)
            out.append((pointer, sorted(keys)))
        return out

    def _kept(self, selection: Selection) -> list[tuple[TableVersion, LoadedTable, list[int]]]:
        """Per table the rules touch, its latest version and the rows the selection keeps."""
        rules = [r for r in selection.rules if r.pointer.source_id == self.source_id]
        for rule in rules:
            self.hierarchy.validate(rule.pointer)
        if not any(r.include for r in rules):
            return []
        if any(r.pointer.depth == 0 for r in rules):
            names = [t.name for t in self._clinical.tables()]
        else:
            names = sorted({r.pointer.path[0] for r in rules if r.include})
        out = []
        for name in names:
            version = self._clinical.get(name)
            table = self._clinical.load(version)
            mine = [r for r in rules if not r.pointer.path or r.pointer.path[0] == name]
            out.append((version, table, self._decide(version, table, mine)))
        return out

    def _rows_of(self, version: TableVersion, table: LoadedTable, pointer: Pointer) -> list[int]:
        """The rows a rule's pointer matches (its ``@in`` ignored)."""
        filters = without_join(pointer.filters)
        if pointer.depth == 0 and not {n for n, _ in filters} <= set(table.columns):
            return []  # a rule over every table: a table without the column has no such rows
        try:
            matched = table.match(filters) if filters or pointer.depth < 2 else None
        except ValidationError as exc:
            raise ValidationError(f"table {version.name!r} (version {version.number}): {exc}") from None
        if pointer.depth < 2:
            return matched or []
        row = table.index(pointer.path[1])
        if row is None or (matched is not None and row not in set(matched)):
            return []
        return [row]

    def _decide(self, version: TableVersion, table: LoadedTable, rules: list[Rule]) -> list[int]:
        """Rows kept by ``rules``, by the rules of ``core.selection.decide``: the deepest matching
        rules win, the most specific of those; one exclusion among the winners excludes."""
        if len(rules) == 1 and rules[0].include:
            return self._rows_of(version, table, rules[0].pointer)
        matching: dict[int, list[int]] = {}
        for n, rule in enumerate(rules):
            for row in self._rows_of(version, table, rule.pointer):
                matching.setdefault(row, []).append(n)
        verdicts: dict[tuple[int, ...], bool] = {}
        kept = []
        for row, numbers in matching.items():
            key = tuple(numbers)
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = verdicts[key] = _wins([rules[n] for n in numbers])
            if verdict:
                kept.append(row)
        kept.sort()
        return kept

    def _prints(
        self, version: TableVersion, table: LoadedTable, rows: list[int]
    ) -> dict[int, tuple[int, str]]:
        """(size, checksum) of rows, remembered per table version."""
        with self._lock:
            known = self._fingerprints.get(version.table_id)
            if known is None:
                known = self._fingerprints[version.table_id] = {}
                while len(self._fingerprints) > 4:
                    self._fingerprints.popitem(last=False)
            else:
                self._fingerprints.move_to_end(version.table_id)
        missing = [i for i in rows if i not in known]
        if missing:
            header = csv_line(table.columns) + "\n"
            lines = table.lines(None if len(missing) == len(table) else missing)
            for i, line in zip(missing, lines, strict=True):
                known[i] = _fingerprint(f"{header}{line}\n")
        return known

    # -- downloads ---------------------------------------------------------------------------------
    def plan(self, leaf: Leaf) -> LeafPlan:
        """The row as a small CSV file (header and row), from the table version that holds it as
        the set pinned it (the latest one that does)."""
        if len(leaf.path) != 2:
            raise ValidationError(f"a clinical leaf is table/patient, not {'/'.join(leaf.path)}")
        name, key = leaf.path
        versions = self._clinical.history(name)
        present = False
        for version in reversed(versions):
            table = self._clinical.load(version)
            i = table.index(key)
            if i is None:
                continue
            present = True
            text = f"{csv_line(table.columns)}\n{table.lines([i])[0]}\n"
            size, checksum = _fingerprint(text)
            if leaf.fingerprint.checksum in (None, checksum):
                path = self._write(version, key, text)
                remote = RemoteFile(
                    path.as_uri(),
                    f"clinical-{name}.csv",
                    size=size,
                    md5=hashlib.md5(text.encode()).hexdigest(),
                )
                fields = {
                    "collection": name,
                    "patient": key,
                    "study": "clinical",
                    "modality": "TABLE",
                    "series": name,
                }
                return LeafPlan((remote,), fields, count=1)
        if present:
            raise IntegrityError(
                f"table {name!r}: the row of {key!r} differs in every stored version from the one the set "
                "pinned; resolve the set again"
            )
        raise NotFound(f"table {name!r} has no row {key!r} in any of its {len(versions)} versions")

    def _write(self, version: TableVersion, key: str, text: str) -> Path:
        root = self._clinical.data_dir
        if root is not None:
            base = root / "cache" / "clinical"
        else:  # no data folder (a script's service): a folder of this process, readable by us alone
            with self._lock:
                if self._scratch is None:
                    self._scratch = Path(tempfile.mkdtemp(prefix="mediator-clinical-"))
                base = self._scratch
        folder = private_dir(base / version.table_id[:16])
        safe = safe_component(key)
        if safe != key:
            safe = f"{safe}~{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        path = folder / f"{safe}.csv"
        data = text.encode()
        if not (path.is_file() and path.read_bytes() == data):
            part = path.with_name(path.name + f".{threading.get_ident()}.tmp")
            part.write_bytes(data)
            os.replace(part, path)
        return path


def _wins(matching: list[Rule]) -> bool:
    deepest = max(r.pointer.depth for r in matching)
    top = [r for r in matching if r.pointer.depth == deepest]
    winners = [r for r in top if not any(o.pointer != r.pointer and r.pointer.covers(o.pointer) for o in top)]
    return all(r.include for r in winners)
