"""Pointers and rules as people read them, wherever the app lists them (pending changes, the
selection's changes in a diff): an archive pointer as its path (``lab/P1?Modality=CT``), a
clinical join (a pointer into a table with an ``@in`` filter) as the cohort it means:
``Cohort of trial.csv: stage=II,IIA,IIB, smoking=current → tcia/NSCLC Radiogenomics, s3/genomics``,
and an archive's cohort (``core.integrator.cohort``) as the patients it keeps: ``Patients of
idc/tcga_luad (CT) with data in every one of: gdc (RNA-Seq), pathology``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mediator_desktop.core.clinical import JOIN_FILTER, describe_filters, join_targets
from mediator_desktop.core.clinical import SOURCE_ID as TABLES
from mediator_desktop.core.draft import Edit
from mediator_desktop.core.errors import MediatorError, ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import JOIN_EVERY, Rule, SelectionDiff
from mediator_desktop.core.service import Service

#: How a table's name is shown (its file's name, ``trial.csv``); None: the name itself.
TableLabel = Callable[[str], str] | None


def table_labels(service: Service) -> Callable[[str], str]:
    """Names tables by the file they were read from (``trial.csv``), else by their name. A local
    read of the store, so it may run on the GUI thread."""

    def label(name: str) -> str:
        try:
            return service.clinical.get(name).filename or name
        except MediatorError:  # not (or no longer) in the store: its name says enough
            return name

    return label


def condition_text(column: str, expressions: Sequence[str]) -> str:
    """One column filter as the condition a user types (what ``parse_conditions`` reads back):
    ``age>=60``, ``age=60..70``, ``stage=II,IIA,IIB``, ``smoking=*`` (any value), ``smoking=!``
    (blank)."""
    try:
        return describe_filters(((column, tuple(expressions)),))[0]
    except ValidationError:  # not an expression this app writes: shown as stored
        return f"{column}={','.join(expressions)}"


def readable(pointer: Pointer) -> str:
    """``tcia/NSCLC Radiogenomics?Modality=CT``: a pointer as people write it, nothing %-escaped
    (``str(pointer)`` is what ``Pointer.parse`` reads back)."""
    text = "/".join((pointer.source_id, *pointer.path))
    if pointer.filters:
        text += "?" + "&".join(f"{k}={','.join(v)}" for k, v in pointer.filters)
    return text


def is_join(pointer: Pointer) -> bool:
    """Whether ``pointer`` is a rule joined to other archives (it names its targets): a clinical
    cohort, or an archive's (``core.integrator.cohort``)."""
    return any(name == JOIN_FILTER for name, _ in pointer.filters)


def pointer_text(pointer: Pointer, table_label: TableLabel = None) -> str:
    """``pointer`` for people: a clinical join as its cohort, an archive's joined rule as the
    patients it keeps, anything else as its path."""
    if not is_join(pointer):
        return readable(pointer)
    every = any(name == JOIN_EVERY for name, _ in pointer.filters)
    if pointer.source_id != TABLES:
        return _archive_cohort_text(pointer, every)
    table = "/".join(pointer.path) or pointer.source_id
    label = table
    if table_label is not None and pointer.path:
        label = table_label(pointer.path[0]) or table
    conditions = [condition_text(c, e) for c, e in pointer.filters if c not in (JOIN_FILTER, JOIN_EVERY)]
    try:
        targets = ", ".join(readable(t) for t in join_targets(pointer))
    except ValidationError:  # a target that does not read as a pointer: shown as stored
        targets = _stored_targets(pointer)
    joined = f"every one of: {targets}" if every and targets else targets or "no archive"
    return f"Cohort of {label}: {', '.join(conditions) or 'every patient'} → {joined}"


def scope_text(pointer: Pointer) -> str:
    """``idc/tcga_luad (CT)``, ``gdc (RNA-Seq, WXS)``: where a pointer points, with the values
    of its filters (their names left out: the values say what they are); no join filters."""
    text = "/".join((pointer.source_id, *pointer.path))
    values = [v for name, vs in pointer.filters if name not in (JOIN_FILTER, JOIN_EVERY) for v in vs]
    return f"{text} ({', '.join(values)})" if values else text


def _archive_cohort_text(pointer: Pointer, every: bool) -> str:
    """``Patients of idc/tcga_luad (CT) with data in every one of: gdc (RNA-Seq), pathology``;
    without ``@every`` the rule keeps all its patients: ``…, with their data in: gdc (RNA-Seq)``."""
    try:
        targets = ", ".join(scope_text(t) for t in join_targets(pointer))
    except ValidationError:
        targets = _stored_targets(pointer)
    origin = scope_text(pointer)
    if every:
        return f"Patients of {origin} with data in every one of: {targets or 'no archive'}"
    return f"Patients of {origin}, with their data in: {targets or 'no archive'}"


def _stored_targets(pointer: Pointer) -> str:
    return ", ".join(v for c, e in pointer.filters if c == JOIN_FILTER for v in e)


def edit_text(edit: Edit, table_label: TableLabel = None) -> str:
    """A pending edit of a set (``add lab/P1``; several at once: ``add … and 2 more``)."""
    parts = [f"add {pointer_text(p, table_label)}" for p in edit.add]
    parts += [f"remove {pointer_text(p, table_label)}" for p in edit.remove]
    return "; ".join(parts) if len(parts) <= 2 else f"{parts[0]} and {len(parts) - 1} more"


def rule_text(rule: Rule, table_label: TableLabel = None) -> str:
    return f"{'+' if rule.include else '-'}{pointer_text(rule.pointer, table_label)}"


def selection_diff_text(diff: SelectionDiff, table_label: TableLabel = None) -> str:
    """The rules two selections differ by (a diff's "Selection:" line)."""
    if not diff:
        return "no changes"
    parts = [rule_text(rule, table_label) for rule in sorted(diff.added)]
    parts += [
        f"(dropped {'include' if rule.include else 'exclude'} {pointer_text(rule.pointer, table_label)})"
        for rule in sorted(diff.removed)
    ]
    return ", ".join(parts)
