"""The Integrator: a clinical rule ("patients of this filter, in these archives") joined to the
archives that hold those patients.

A replica set keeps the rule itself, a pointer into a clinical table with column filters and the
join targets in its ``@in`` filter (``core.clinical.join_pointer``). Each time the set is resolved
(created, changed, checked for updates) the rule is expanded: the table gives the patients it
selects now (``cohorts`` of the source holding the table), each target archive the paths of the
ones it holds (``Joining.join_patients``, or browsing down to its patient level), and every path
becomes an include rule of that archive, with the target's filters (``Modality=CT``). Resolving the
expanded selection gives the leaves; a new table version changes a set only through a new version.

What a join leaves out is said per archive ("31 of 40 patients have data in tcia/NSCLC..."), never
dropped silently. Rules the user wrote stay as they are: excluding a patient, a study or a series
of a joined archive still removes it (the deepest rule wins, ``core.selection``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mediator_desktop.core.clinical import join_targets
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Rule, Selection
from mediator_desktop.core.source import PATIENT_LEVELS, DataSource

#: Patients named in a note before "and N more".
SHOWN = 8


def patient_depth(source: DataSource) -> int | None:
    """How many keys lead to a patient in ``source`` (2 for ``collection > patient``), or None
    when it has no patient level: its own ``patient_level``, else the first of ``PATIENT_LEVELS``."""
    levels = source.hierarchy.levels
    named = getattr(source, "patient_level", ...)
    if named is not ...:
        return levels.index(named) + 1 if isinstance(named, str) and named in levels else None
    for name in PATIENT_LEVELS:
        if name in levels:
            return levels.index(name) + 1
    return None


def find_patients(
    source: DataSource, scope: Pointer, patients: Collection[str]
) -> dict[str, list[tuple[str, ...]]]:
    """The paths, down to the patient level, of each of ``patients`` that ``source`` holds below
    ``scope``; patients it lacks are left out. Raises ``ValidationError`` for a source without a
    patient level or a scope that reaches below it."""
    depth = patient_depth(source)
    if depth is None:
        raise ValidationError(
            f"{source.title} ({source.source_id}) has no patient level to join on "
            f"(its levels: {' > '.join(source.hierarchy.levels)})"
        )
    if scope.depth >= depth:
        level = source.hierarchy.levels[depth - 1]
        raise ValidationError(
            f"join target {scope} reaches down to a {level}: a join target names the archive or the "
            f"levels above its {level}s (e.g. {Pointer(scope.source_id, scope.path[: depth - 1])})"
        )
    join: Callable[[Pointer, Collection[str]], dict[str, list[tuple[str, ...]]]] | None = getattr(
        source, "join_patients", None
    )
    if callable(join):
        return join(scope, patients)
    wanted = set(patients)
    found: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    frontier = [scope.path]
    for reached in range(scope.depth + 1, depth + 1):
        below = []
        for path in frontier:
            for key in _children(source, path, scope):
                if reached == depth:
                    if key in wanted:
                        found[key].append((*path, key))
                else:
                    below.append((*path, key))
        frontier = below
    return dict(found)


def _children(source: DataSource, path: tuple[str, ...], scope: Pointer) -> Iterable[str]:
    offset = 0
    while True:
        page = source.browse(path, filters=scope.filters, offset=offset, limit=1000)
        yield from (item.key for item in page.items)
        if not page.more or not page.items:
            return
        offset += len(page.items)


@dataclass(frozen=True, slots=True)
class Join:
    """One clinical rule joined to one archive.

    Attributes:
        rule: the clinical rule (a pointer into a table, with its ``@in`` filter).
        target: the archive (scope) joined to, with its filters.
        patients: the patients the rule selects now, sorted.
        paths: for each patient the archive holds, its paths there.
    """

    rule: Pointer
    target: Pointer
    patients: tuple[str, ...]
    paths: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    def pointers(self) -> list[Pointer]:
        source_id, filters = self.target.source_id, self.target.filters
        return [Pointer(source_id, path, filters) for paths in self.paths.values() for path in paths]

    def covered(self, manifest: Manifest) -> list[str]:
        """The patients that have at least one leaf in ``manifest`` (data, not only a folder)."""
        source_id = self.target.source_id
        return [
            patient
            for patient, paths in self.paths.items()
            if any(next(manifest.under(source_id, path), None) is not None for path in paths)
        ]

    def note(self, manifest: Manifest) -> str | None:
        """``31 of 40 patients of clinical/trial have data in tcia/...; none for A, B (+27 more)``,
        or None when every patient has data there."""
        have = set(self.covered(manifest))
        lacking = [p for p in self.patients if p not in have]
        if not lacking:
            return None
        table = "/".join((self.rule.source_id, *self.rule.path))
        shown = ", ".join(lacking[:SHOWN])
        more = f" (+{len(lacking) - SHOWN:,} more)" if len(lacking) > SHOWN else ""
        return (
            f"{len(have):,} of {len(self.patients):,} patients of {table} have data in {self.target}; "
            f"none for {shown}{more}"
        )


@dataclass(frozen=True, slots=True)
class Expanded:
    """A selection with its clinical rules joined: what the archives resolve."""

    selection: Selection
    joins: tuple[Join, ...] = ()

    def notes(self, manifest: Manifest) -> list[str]:
        """One line per join that left patients out: what the user should hear."""
        return [note for join in self.joins if (note := join.note(manifest)) is not None]


def expand(selection: Selection, source: Callable[[str], DataSource]) -> Expanded:
    """``selection`` with each clinical rule's patients added as rules of its join targets.

    ``source`` finds an archive by id (``NotFound`` when it is not configured here). A source
    holding clinical tables has ``cohorts(selection) -> [(rule, patients)]``.
    """
    rules = set(selection.rules)
    joins: list[Join] = []
    for source_id in selection.sources:
        try:
            holder = source(source_id)
        except NotFound:  # not an archive here: whoever resolves the set says so in its own words
            continue
        cohorts: Callable[[Selection], Sequence[tuple[Pointer, Sequence[str]]]] | None = getattr(
            holder, "cohorts", None
        )
        if not callable(cohorts):
            continue
        for rule, patients in cohorts(selection.for_source(source_id)):
            for target in join_targets(rule):
                archive = source(target.source_id)
                target = archive.hierarchy.validate(target)
                found = find_patients(archive, target, patients)
                join = Join(
                    rule,
                    target,
                    tuple(sorted(patients)),
                    {p: tuple(sorted(set(found[p]))) for p in sorted(found) if found[p]},
                )
                joins.append(join)
                for pointer in join.pointers():
                    if Rule(pointer, False) not in rules:  # the user took this one out
                        rules.add(Rule(pointer, True))
    if not joins:
        return Expanded(selection)
    return Expanded(Selection(frozenset(rules)), tuple(joins))


def describe(joins: Iterable[Join]) -> list[dict[str, Any]]:
    """The joins as plain values (for the local API and the CLI)."""
    return [
        {
            "rule": str(j.rule),
            "target": str(j.target),
            "patients": len(j.patients),
            "found": len(j.paths),
            "missing": [p for p in j.patients if p not in j.paths],
        }
        for j in joins
    ]
