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

An expansion and the resolution after it are one **pass**, which reads each archive as it was
when the pass first asked for it (``PinnedArchives``): a clinical table gives the cohort and then
its rows from one version, even when a colleague's new version reaches the node in between (that
version is the next pass's, whole). ``Expanded.source`` and ``Expanded.resolve`` resolve with the
archives the expansion read.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mediator_desktop.core.clinical import join_targets
from mediator_desktop.core.errors import NotFound, SourceError, ValidationError
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.selection import JOIN_EVERY, JOIN_FILTER, Rule, Selection
from mediator_desktop.core.source import CATEGORIES, PATIENT_LEVELS, DataKind, DataSource

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
    """One joined rule joined to one archive.

    Attributes:
        rule: the joined rule (a pointer into a table or an archive, with its ``@in`` filter).
        target: the archive (scope) joined to, with its filters.
        patients: the patients the rule selects now, sorted.
        paths: for each patient the archive holds (and, with ``every``, every other target
            archive too), its paths there.
        every: the rule keeps only the patients every target archive holds (``@every``).
    """

    rule: Pointer
    target: Pointer
    patients: tuple[str, ...]
    paths: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    every: bool = False

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
        return _note(self.rule, self.patients, set(self.covered(manifest)), f"have data in {self.target}")


def _note(rule: Pointer, patients: Sequence[str], have: set[str], where: str) -> str | None:
    lacking = [p for p in patients if p not in have]
    if not lacking:
        return None
    shown = ", ".join(lacking[:SHOWN])
    more = f" (+{len(lacking) - SHOWN:,} more)" if len(lacking) > SHOWN else ""
    return f"{len(have):,} of {len(patients):,} patients of {_named(rule)} {where}; none for {shown}{more}"


def _named(rule: Pointer) -> str:
    return "/".join((rule.source_id, *rule.path))


def pinned(source: DataSource) -> DataSource:
    """``source`` fixed as it is now when it keeps versions of its own data (its ``pinned()``:
    the clinical tables), else ``source`` itself."""
    pin: Callable[[], DataSource] | None = getattr(source, "pinned", None)
    return pin() if callable(pin) else source


class PinnedArchives:
    """The archives of one pass (an expansion and the resolution of what it expanded to): each
    found by ``source`` once, at its first use, and fixed then (``pinned``), so every read of the
    pass sees one version of each clinical table. A lookup function, as ``expand`` takes one;
    ``NotFound`` for an archive that is not configured, as ``source`` says it.

    Thread-safe: the parts of a pass may resolve on worker threads.
    """

    def __init__(self, source: Callable[[str], DataSource]) -> None:
        self._source = source
        self._pinned: dict[str, DataSource] = {}
        self._lock = threading.Lock()

    def __call__(self, source_id: str) -> DataSource:
        with self._lock:  # a lookup and a snapshot of tables in memory: no I/O under the lock
            found = self._pinned.get(source_id)
            if found is None:
                found = self._pinned[source_id] = pinned(self._source(source_id))
            return found

    @classmethod
    def of(cls, source: Callable[[str], DataSource]) -> PinnedArchives:
        """``source`` if it is the archives of a pass already, else a new pass over it."""
        return source if isinstance(source, PinnedArchives) else cls(source)


@dataclass(frozen=True, slots=True)
class Expanded:
    """A selection with its joined rules expanded: what the archives resolve.

    Attributes:
        archives: the archives the expansion read (``PinnedArchives``): resolve with them
            (``source``, ``resolve``) so a table's rows come from the version its cohorts came
            from. None only for an ``Expanded`` made by hand, which resolves nothing.
    """

    selection: Selection
    joins: tuple[Join, ...] = ()
    archives: Callable[[str], DataSource] | None = field(default=None, compare=False, repr=False)

    def source(self, source_id: str) -> DataSource:
        """The archive that resolves the part of ``source_id``, as the expansion read it.

        Raises ``NotFound`` when it is not configured here.
        """
        if self.archives is None:
            raise TypeError("this expansion was made without its archives: make it with expand()")
        return self.archives(source_id)

    def resolve(self) -> Manifest:
        """The leaves the expanded selection selects now, every archive's part resolved by the
        archive as the expansion read it. Raises what the archives raise."""
        parts = [self.source(sid).resolve(self.selection.for_source(sid)) for sid in self.selection.sources]
        if len(parts) == 1:
            return parts[0]
        return Manifest._from_sorted_lines(sorted(line for part in parts for line in part.lines()))

    def notes(self, manifest: Manifest) -> list[str]:
        """One line per join that left patients out (per rule for ``@every``): what the user
        should hear."""
        out: list[str] = []
        every: dict[Pointer, list[Join]] = defaultdict(list)
        for join in self.joins:
            if join.every:
                every[join.rule].append(join)
            elif (note := join.note(manifest)) is not None:
                out.append(note)
        for rule, joins in every.items():
            have: dict[str, set[str]] = defaultdict(set)
            for join in joins:
                have[join.target.source_id].update(join.covered(manifest))
            common = set.intersection(*have.values())
            archives = ", ".join(sorted(have))
            where = f"have data in every archive joined ({archives})"
            if (note := _note(rule, joins[0].patients, common, where)) is not None:
                out.append(note)
        return out


def is_joined(pointer: Pointer) -> bool:
    """Whether ``pointer`` is a rule that joins its patients to other archives (``@in``)."""
    return any(name == JOIN_FILTER for name, _ in pointer.filters)


def needs_every(pointer: Pointer) -> bool:
    """Whether a joined rule keeps only the patients found in every archive it joins to."""
    return any(name == JOIN_EVERY for name, _ in pointer.filters)


def plain(pointer: Pointer) -> Pointer:
    """``pointer`` without its join filters: what its own archive resolves."""
    kept = tuple(f for f in pointer.filters if f[0] not in (JOIN_FILTER, JOIN_EVERY))
    return Pointer(pointer.source_id, pointer.path, kept)


def patient_paths(
    source: DataSource, pointer: Pointer, excluded: Iterable[Rule] = ()
) -> dict[str, set[tuple[str, ...]]]:
    """The patients ``pointer`` selects in ``source`` (with the rules ``excluded`` applied), each
    with its paths down to the patient level: the patients of its leaves, so a filter counts
    (``Modality=CT``: the patients that have a CT)."""
    depth = _depth(source)
    pointer = plain(pointer)
    if pointer.depth >= depth:
        return {pointer.path[depth - 1]: {pointer.path[:depth]}}
    manifest = source.resolve(Selection(frozenset({Rule(pointer, True), *excluded})))
    out: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for leaf in manifest:
        if len(leaf.path) >= depth:
            out[leaf.path[depth - 1]].add(leaf.path[:depth])
    return dict(out)


def _depth(source: DataSource) -> int:
    depth = patient_depth(source)
    if depth is None:
        raise ValidationError(
            f"{source.title} ({source.source_id}) has no patient level to join on "
            f"(its levels: {' > '.join(source.hierarchy.levels)})"
        )
    return depth


def _cohorts(
    holder: DataSource, part: Selection
) -> list[tuple[Pointer, list[str], dict[str, set[tuple[str, ...]]]]]:
    """The joined rules of one archive's part of a selection, each with its patients (and, for an
    archive, their paths there): a clinical table says itself (``cohorts``), an archive resolves."""
    cohorts: Callable[[Selection], Sequence[tuple[Pointer, Sequence[str]]]] | None = getattr(
        holder, "cohorts", None
    )
    if callable(cohorts):
        return [(rule, list(patients), {}) for rule, patients in cohorts(part)]
    excluded = [r for r in part.rules if not r.include]
    out = []
    for rule in part.rules:
        if rule.include and is_joined(rule.pointer):
            paths = patient_paths(holder, rule.pointer, excluded)
            out.append((rule.pointer, sorted(paths), paths))
    return out


def expand(selection: Selection, source: Callable[[str], DataSource]) -> Expanded:
    """``selection`` with each joined rule's patients added as rules of its join targets.

    A joined rule is a clinical rule (``core.clinical.join_pointer``) or a rule of an archive with
    an ``@in`` filter (``cohort``): its patients are those of its leaves. With ``@every`` only the
    patients that every joined archive holds are kept, in the targets and, for an archive rule, in
    its own archive too. ``source`` finds an archive by id (``NotFound`` when it is not configured
    here). A source holding clinical tables has ``cohorts(selection) -> [(rule, patients)]``.

    The expansion reads the archives of one pass (``source`` made a ``PinnedArchives`` unless it
    is one) and the result carries them: resolve it with ``Expanded.source`` or ``resolve``.
    """
    source = PinnedArchives.of(source)
    rules = set(selection.rules)
    joins: list[Join] = []
    for source_id in selection.sources:
        try:
            holder = source(source_id)
        except NotFound:  # not an archive here: whoever resolves the set says so in its own words
            continue
        for rule, patients, own in _cohorts(holder, selection.for_source(source_id)):
            found_in = [(target, *_found(source, target, patients)) for target in join_targets(rule)]
            kept = set(patients)
            if needs_every(rule):
                by_archive: dict[str, set[str]] = defaultdict(set)
                for target, _, found in found_in:
                    by_archive[target.source_id].update(p for p, paths in found.items() if paths)
                for have in by_archive.values():
                    kept &= have
            for _, archive_target, found in found_in:
                join = Join(
                    rule,
                    archive_target,
                    tuple(sorted(patients)),
                    {p: tuple(sorted(set(found[p]))) for p in sorted(found) if found[p] and p in kept},
                    every=needs_every(rule),
                )
                joins.append(join)
                for pointer in join.pointers():
                    if Rule(pointer, False) not in rules:  # the user took this one out
                        rules.add(Rule(pointer, True))
            if callable(getattr(holder, "cohorts", None)):
                if needs_every(rule) and rule.depth == (patient_depth(holder) or 0) - 1:
                    # A table's rows of the patients some archive lacks leave the set too.
                    for patient in sorted(set(patients) - kept):
                        rules.add(Rule(Pointer(rule.source_id, (*rule.path, patient)), False))
            else:
                # An archive's own joined rule: resolved there without its join filters.
                rules.discard(Rule(rule, True))
                if needs_every(rule):
                    bare = plain(rule)
                    for patient in sorted(kept):
                        for path in sorted(own.get(patient, ())):
                            pointer = Pointer(bare.source_id, path, bare.filters)
                            if Rule(pointer, False) not in rules:
                                rules.add(Rule(pointer, True))
                else:
                    rules.add(Rule(plain(rule), True))
    if not joins:
        return Expanded(selection, archives=source)
    return Expanded(Selection(frozenset(rules)), tuple(joins), source)


def _found(
    source: Callable[[str], DataSource], target: Pointer, patients: Collection[str]
) -> tuple[Pointer, dict[str, list[tuple[str, ...]]]]:
    archive = source(target.source_id)
    target = archive.hierarchy.validate(target)
    return target, find_patients(archive, target, patients)


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


# -- "matching data in other archives": what a cohort finds before a set holds it ----------------
@dataclass(frozen=True, slots=True)
class ArchiveMatch:
    """What one archive holds for a cohort's patients.

    Attributes:
        target: the archive (scope) searched.
        title: the archive's name for people.
        paths: for each patient it holds, the paths to it there.
        kinds: the kinds of data those patients have there (CT, RNA-Seq, slide...).
        error: why the archive could not be searched (it is down, refused the query), or None.
    """

    target: Pointer
    title: str
    paths: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    kinds: tuple[DataKind, ...] = ()
    error: str | None = None

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(sorted(self.paths))

    def having(self, labels: Collection[str] | None = None) -> set[str]:
        """The patients with any of the kinds ``labels`` here (None: any data at all)."""
        if labels is None:
            return set().union(*(k.patients for k in self.kinds)) if self.kinds else set(self.paths)
        return set().union(*(k.patients for k in self.kinds if k.label in labels))

    def targets(self, labels: Collection[str] | None = None) -> list[Pointer]:
        """Join targets selecting the kinds ``labels`` here (None: everything): one pointer per
        filter name (``experimental_strategy=RNA-Seq,WXS``), the archive's scope when a kind
        needs no filter."""
        if labels is None:
            return [self.target]
        chosen = [k for k in self.kinds if k.label in labels]
        unknown = sorted(set(labels) - {k.label for k in chosen})
        if unknown:
            known = ", ".join(k.label for k in self.kinds) or "none"
            raise ValidationError(
                f"{self.target.source_id} holds no {', '.join(unknown)} here; its kinds: {known}"
            )
        if any(k.filter is None for k in chosen):
            return [self.target]
        by_name: dict[str, set[str]] = defaultdict(set)
        for kind in chosen:
            assert kind.filter is not None
            by_name[kind.filter[0]].add(kind.filter[1])
        base = dict(self.target.filters)
        return [
            Pointer(self.target.source_id, self.target.path, make_filters({**base, name: sorted(values)}))
            for name, values in sorted(by_name.items())
        ]


@dataclass(frozen=True, slots=True)
class Matching:
    """A cohort's patients and what each other archive holds for them."""

    origin: tuple[Pointer, ...]
    patients: tuple[str, ...]
    archives: tuple[ArchiveMatch, ...]

    def archive(self, source_id: str) -> ArchiveMatch:
        for match in self.archives:
            if match.target.source_id == source_id:
                return match
        raise NotFound(f"archive {source_id!r} was not searched; searched: {', '.join(self.searched)}")

    @property
    def searched(self) -> list[str]:
        return [m.target.source_id for m in self.archives]

    def common(self, chosen: Mapping[str, Collection[str] | None]) -> list[str]:
        """The patients that have, in every archive of ``chosen``, one of its chosen kinds
        (``{"gdc": ["RNA-Seq"], "pathology": None}``: RNA-Seq in GDC and any slide)."""
        keep = set(self.patients)
        for source_id, labels in chosen.items():
            keep &= self.archive(source_id).having(labels)
        return sorted(keep)

    def cohort(self, chosen: Mapping[str, Collection[str] | None], *, every: bool = True) -> list[Pointer]:
        """The rules that keep this match joined in a set: each origin pointer with the chosen
        archives' kinds as ``@in`` targets (with ``every``, only patients that all of them hold).
        A new matching file in a joined archive later is drift, not silence."""
        if not chosen:
            raise ValidationError("choose at least one archive to join to")
        targets = [t for source_id, labels in chosen.items() for t in self.archive(source_id).targets(labels)]
        return [cohort(origin, targets, every=every) for origin in self.origin]


def cohort(origin: Pointer, targets: Iterable[Pointer], *, every: bool = False) -> Pointer:
    """The rule "the patients ``origin`` selects, also in ``targets``" (with ``every``: only the
    patients that every target archive holds, here and there)."""
    texts = sorted({str(t) for t in targets})
    if not texts:
        raise ValidationError("a cohort needs at least one pointer into another archive to join to")
    if any(Pointer.parse(t).source_id == origin.source_id for t in texts):
        raise ValidationError(f"a cohort of {origin.source_id} joins to other archives, not to itself")
    filters = dict(plain(origin).filters)
    filters[JOIN_FILTER] = tuple(texts)
    if every:
        filters[JOIN_EVERY] = ("yes",)
    return Pointer(origin.source_id, origin.path, make_filters(filters))


def kinds_of(
    source: DataSource, scope: Pointer, paths: Mapping[str, Iterable[tuple[str, ...]]]
) -> list[DataKind]:
    """The kinds of data the patients ``paths`` name have in ``source`` below ``scope``: its own
    ``data_kinds`` when it has them, else all its leaves as one kind."""
    if not paths:
        return []
    data_kinds: Callable[[Pointer, Collection[str]], list[DataKind]] | None = getattr(
        source, "data_kinds", None
    )
    if callable(data_kinds):
        return data_kinds(scope, list(paths))
    pointers = {Pointer(source.source_id, path, scope.filters) for ps in paths.values() for path in ps}
    manifest = source.resolve(Selection(frozenset(Rule(p, True) for p in pointers)))
    depth = patient_depth(source) or 1
    have = frozenset(leaf.path[depth - 1] for leaf in manifest if len(leaf.path) >= depth)
    if not have:
        return []
    level = source.hierarchy.leaf_level
    category = "clinical" if callable(getattr(source, "cohorts", None)) else "other"
    return [
        DataKind(
            f"{level}s" if not level.endswith("s") else level,
            category,
            None,
            have,
            len(manifest),
            manifest.total_size,
        )
    ]


def match(
    origin: Sequence[Pointer],
    patients: Iterable[str],
    archives: Iterable[tuple[DataSource, Pointer]],
) -> Matching:
    """What each of ``archives`` (a source and the scope to search in it) holds for ``patients``.

    An archive that fails (down, refusing the query) is reported in its ``error``, never failing
    the others. A patient none of them holds is simply not found.
    """
    wanted = tuple(sorted(set(patients)))
    found: list[ArchiveMatch] = []
    for source, scope in archives:
        try:
            scope = source.hierarchy.validate(scope)
            paths = find_patients(source, scope, wanted)
            kinds = kinds_of(source, scope, paths)
        except (SourceError, ValidationError) as exc:
            found.append(ArchiveMatch(scope, source.title, error=str(exc)))
            continue
        found.append(
            ArchiveMatch(
                scope,
                source.title,
                {p: tuple(sorted(set(ps))) for p, ps in sorted(paths.items()) if ps},
                tuple(
                    sorted(
                        kinds,
                        key=lambda k: (
                            CATEGORIES.index(k.category) if k.category in CATEGORIES else 99,
                            -len(k.patients),
                            k.label,
                        ),
                    )
                ),
            )
        )
    return Matching(tuple(origin), wanted, tuple(found))


def describe_match(matching: Matching) -> dict[str, Any]:
    """A match as plain values (for the local API and the CLI)."""
    return {
        "origin": [str(p) for p in matching.origin],
        "patients": list(matching.patients),
        "archives": [
            {
                "source": m.target.source_id,
                "target": str(m.target),
                "title": m.title,
                "found": list(m.found),
                "missing": [p for p in matching.patients if p not in m.paths],
                "error": m.error,
                "kinds": [
                    {
                        "label": k.label,
                        "category": k.category,
                        "filter": None if k.filter is None else {"name": k.filter[0], "value": k.filter[1]},
                        "patients": sorted(k.patients),
                        "leaves": k.leaves,
                        "size": k.size,
                    }
                    for k in m.kinds
                ],
            }
            for m in matching.archives
        ],
    }
