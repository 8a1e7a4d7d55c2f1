"""Clinical tables and cohort joins: ``/v1/tables`` and ``/v1/joins/preview``.

A table file (CSV, TSV, Excel) is named by its path on this machine: the local API serves only this
user, on this machine, so the node reads the file itself and stores its rows in the cluster's
store (``core.clinical``), where every member resolves them without the file. A cohort ("the
patients of this table with age>=60, in these archives") is one pointer (``join_pointer``) that a
set holds like any other; ``/v1/joins/preview`` shows what it finds in each archive before that.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import (
    ColumnModel,
    JoinPreviewBody,
    JoinPreviewModel,
    JoinTargetModel,
    NewTable,
    PatientsModel,
    RowsModel,
    SelectBody,
    TableModel,
    TablePreviewBody,
    TablePreviewModel,
    TableVersionModel,
    ValueCountModel,
)
from mediator_desktop.core import errors
from mediator_desktop.core.clinical import Column, TablePreview, join_pointer, parse_conditions
from mediator_desktop.core.integrator import describe
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import TableVersion
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service

router = APIRouter(tags=["clinical"])

TableParam = Annotated[str, PathParam(min_length=1, max_length=100, description="a clinical table's name")]
ColumnParam = Annotated[str, PathParam(min_length=1, max_length=200, description="a column of the table")]

T = TypeVar("T")


def version_model(service: Service, version: TableVersion) -> TableVersionModel:
    return TableVersionModel(
        name=version.name,
        number=version.number,
        table_id=version.table_id,
        key_column=version.key_column,
        columns=list(version.columns),
        rows=version.rows,
        filename=version.filename,
        author=version.author,
        author_name=service.users().get(version.author, ""),
        time=version.time,
    )


def column_model(column: Column) -> ColumnModel:
    return ColumnModel(
        name=column.name,
        kind=column.kind,
        blanks=column.blanks,
        distinct=column.distinct,
        low=column.low,
        high=column.high,
    )


def preview_model(preview: TablePreview) -> TablePreviewModel:
    return TablePreviewModel(
        filename=preview.filename,
        rows=preview.rows,
        columns=[column_model(c) for c in preview.columns],
        key_guess=preview.key_guess,
        head=[list(row) for row in preview.head],
        problems=list(preview.problems),
    )


def table_file(text: str) -> Path:
    """``text`` as the path of a readable file on this machine, or a typed error that says what is
    wrong with it (never an unread device, FIFO or folder)."""
    path = Path(text)
    if not path.is_absolute():
        raise errors.ValidationError(f"{text!r} is not an absolute path; name the file from the root (/...)")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise errors.NotFound(f"no file {text}") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a folder we may not enter
        raise errors.ValidationError(f"cannot read {text!r}: {_reason(exc)}") from None
    if path.is_dir():
        raise errors.ValidationError(f"{text} is a folder; name a table file (CSV, TSV or Excel) in it")
    if not path.is_file():
        raise errors.ValidationError(f"{text} is not a regular file; name a table file (CSV, TSV or Excel)")
    if not os.access(path, os.R_OK):
        raise errors.ValidationError(f"cannot read {text}: permission denied")
    if stat.st_size == 0:
        raise errors.ValidationError(f"{text} is empty; a table file starts with a row of column names")
    return path


def _reading(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of a table file, with what can go wrong reading it as typed errors."""
    try:
        return read()
    except errors.MediatorError:
        raise
    except UnicodeError:
        raise errors.ValidationError(
            f"{path} is not text (UTF-8); save the table as CSV (UTF-8) and add that file"
        ) from None
    except csv.Error as exc:
        raise errors.ValidationError(f"{path} is not a table file CSV can read: {exc}") from None
    except OSError as exc:
        raise errors.ValidationError(f"cannot read {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# -- tables --------------------------------------------------------------------------------------
@router.get("/v1/tables")
def get_tables(service: ServiceDep) -> list[TableVersionModel]:
    """Every clinical table of the cluster, at its latest version."""
    return [version_model(service, v) for v in service.clinical.tables()]


@router.post("/v1/tables")
def post_table(body: NewTable, service: ServiceDep) -> TableVersionModel:
    """Read a table file on this machine into the cluster's store: a new table, or a new version of
    the table of that name. The same content again answers the version that holds it."""
    path = table_file(body.path)
    version = _reading(path, lambda: service.clinical.add(path, name=body.name, key_column=body.key_column))
    return version_model(service, version)


@router.post("/v1/tables/preview")
def post_preview(body: TablePreviewBody, service: ServiceDep) -> TablePreviewModel:
    """What adding a table file would read: its columns with their kinds, the patient key column
    it would take, the first rows and any problem. Nothing is stored."""
    path = table_file(body.path)
    return preview_model(_reading(path, lambda: service.clinical.preview(path, key_column=body.key_column)))


@router.get("/v1/tables/{name}")
def get_table(name: TableParam, service: ServiceDep) -> TableModel:
    """A table's latest version and its history, oldest first."""
    history = service.clinical.history(name)
    latest = service.clinical.get(name)
    return TableModel(
        table=version_model(service, latest), history=[version_model(service, v) for v in history]
    )


@router.get("/v1/tables/{name}/columns")
def get_columns(name: TableParam, service: ServiceDep) -> list[ColumnModel]:
    """A table's columns: kind, blanks, distinct values and range."""
    return [column_model(c) for c in service.clinical.columns(name)]


@router.get("/v1/tables/{name}/columns/{column:path}/values")
def get_values(
    name: TableParam,
    column: ColumnParam,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=100_000, description="at most this many values")] = 500,
) -> list[ValueCountModel]:
    """The values a column takes, each with the number of rows that have it."""
    return [ValueCountModel(value=v, count=n) for v, n in service.clinical.values(name, column, limit=limit)]


@router.post("/v1/tables/{name}/select")
def post_select(name: TableParam, body: SelectBody, service: ServiceDep) -> PatientsModel:
    """The patients whose rows meet every condition (``age>=60``, ``stage=II,IIA``, ``smoking=*``)."""
    patients = service.clinical.select(name, parse_conditions(body.conditions))
    return PatientsModel(patients=list(patients), count=len(patients))


@router.get("/v1/tables/{name}/rows")
def get_rows(
    name: TableParam,
    service: ServiceDep,
    keys: Annotated[
        list[str] | None,
        Query(max_length=10_000, description="only the rows of these patients (default: all)"),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description="at most this many rows")] = None,
) -> RowsModel:
    """Rows of a table, as text: every row, or those of some patients."""
    columns, rows = service.clinical.rows(name, keys=keys or None, limit=limit)
    return RowsModel(columns=list(columns), rows=[list(row) for row in rows])


# -- cohort joins --------------------------------------------------------------------------------
@router.post("/v1/joins/preview")
def post_join_preview(body: JoinPreviewBody, service: ServiceDep) -> JoinPreviewModel:
    """A cohort before a set holds it: the patients the conditions select, what each archive holds
    of them, and the pointer to add to a set (``POST /v1/sets``, ``.../versions``). Nothing is
    resolved down to the series, so it answers quickly."""
    filters = parse_conditions(body.conditions)
    targets = [Pointer.parse(text) for text in body.targets]
    pointer = join_pointer(body.table, filters, targets)
    expanded = service.archives.expand(Selection.of(pointer))
    # The patients of the expansion itself: a table version that lands meanwhile is not half-read.
    patients = expanded.joins[0].patients if expanded.joins else service.clinical.select(body.table, filters)
    return JoinPreviewModel(
        pointer=str(pointer),
        patients=list(patients),
        targets=[
            JoinTargetModel(
                target=join["target"], patients=join["patients"], found=join["found"], missing=join["missing"]
            )
            for join in describe(expanded.joins)
        ],
    )
