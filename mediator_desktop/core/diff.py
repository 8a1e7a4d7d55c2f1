"""Differences between two manifests: added, removed and changed leaves, grouped and summarised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from mediator_desktop.core.errors import IntegrityError
from mediator_desktop.core.manifest import TAB, Leaf, Manifest
from mediator_desktop.core.pointer import Hierarchy


def _key(line: str) -> str:
    return line.partition(TAB)[0]


def plural(noun: str, count: int) -> str:
    """English plural of a level name: series, studies, patients, collections, objects."""
    if count == 1 or noun.endswith(("series", "data", "s")):
        return noun
    if noun == "leaf":
        return "leaves"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def human_bytes(n: int) -> str:
    """Decimal units, as archives and disks report them: ``2.1 GB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Changes of one kind (added, removed or changed) within one source."""

    leaves: int = 0
    bytes: int = 0
    #: distinct nodes touched at each level above the leaf, coarsest first: (level name, count)
    spread: tuple[tuple[str, int], ...] = ()


def _stats(leaves: list[Leaf], hierarchy: Hierarchy | None) -> GroupStats:
    if not leaves:
        return GroupStats()
    depth = max(len(leaf.path) for leaf in leaves)
    spread = []
    for n in range(1, depth):
        name = hierarchy.level_of(n) if hierarchy and n <= len(hierarchy.levels) else f"level-{n} group"
        spread.append((name, len({leaf.path[:n] for leaf in leaves if len(leaf.path) > n})))
    return GroupStats(len(leaves), sum(leaf.fingerprint.size or 0 for leaf in leaves), tuple(spread))


@dataclass(slots=True)
class NodeChanges:
    """Leaves and bytes added, removed and changed under one node (a collection, a patient...)."""

    added: int = 0
    added_bytes: int = 0
    removed: int = 0
    removed_bytes: int = 0
    changed: int = 0
    changed_bytes: int = 0

    def add(self, kind: str, size: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        setattr(self, f"{kind}_bytes", getattr(self, f"{kind}_bytes") + size)


@dataclass(frozen=True, slots=True)
class SourceDiff:
    source_id: str
    added: GroupStats
    removed: GroupStats
    changed: GroupStats
    leaf_noun: str = "leaf"

    def summary(self) -> str:
        """``+5 series (2.1 GB) in 3 patients, -14 series (120.3 MB) in 3 studies, 3 changed``:
        additions and removals are told alike."""
        parts = [
            text
            for sign, stats in (("+", self.added), ("-", self.removed))
            if (text := self._told(sign, stats))
        ]
        if self.changed.leaves:
            parts.append(f"{self.changed.leaves} changed")
        return ", ".join(parts)

    def _told(self, sign: str, stats: GroupStats) -> str:
        """One direction: count, bytes, and the coarsest level the leaves spread over (the finest
        when they all sit in one node of every level)."""
        if not stats.leaves:
            return ""
        text = f"{sign}{stats.leaves} {plural(self.leaf_noun, stats.leaves)}"
        if stats.bytes:
            text += f" ({human_bytes(stats.bytes)})"
        spread = next(((n, c) for n, c in stats.spread if c > 1), None)
        if spread is None and stats.spread:
            spread = stats.spread[-1]
        if spread is not None:
            text += f" in {spread[1]} {plural(spread[0], spread[1])}"
        return text


@dataclass(frozen=True)
class ManifestDiff:
    """What turns manifest ``old`` into ``new``. Lines are kept; leaves are made on demand."""

    old_id: str
    new_id: str
    _added: list[str] = field(repr=False)
    _removed: list[str] = field(repr=False)
    _changed: list[tuple[str, str]] = field(repr=False)

    @classmethod
    def between(cls, old: Manifest, new: Manifest) -> ManifestDiff:
        old_lines, new_lines = old.lines(), new.lines()
        old_set = set(old_lines)
        only_new = [line for line in new_lines if line not in old_set]
        del old_set
        new_set = set(new_lines)
        only_old = [line for line in old_lines if line not in new_set]
        del new_set
        old_by_key = {_key(line): line for line in only_old}
        added: list[str] = []
        changed: list[tuple[str, str]] = []
        for line in only_new:
            before = old_by_key.pop(_key(line), None)
            if before is None:
                added.append(line)
            else:
                changed.append((before, line))
        return cls(old.id, new.id, added, list(old_by_key.values()), changed)

    def __bool__(self) -> bool:
        return bool(self._added or self._removed or self._changed)

    @property
    def added_lines(self) -> list[str]:
        """Canonical lines of the added leaves (what a manifest of them is made of)."""
        return self._added

    @property
    def removed_lines(self) -> list[str]:
        return self._removed

    @property
    def changed_lines(self) -> list[str]:
        """Canonical lines of the changed leaves as they are in the new manifest."""
        return [after for _, after in self._changed]

    @cached_property
    def added(self) -> tuple[Leaf, ...]:
        return tuple(map(Leaf.decode, self._added))

    @cached_property
    def removed(self) -> tuple[Leaf, ...]:
        return tuple(map(Leaf.decode, self._removed))

    @cached_property
    def changed(self) -> tuple[tuple[Leaf, Leaf], ...]:
        """(old leaf, new leaf) pairs with the same key and another fingerprint."""
        return tuple((Leaf.decode(a), Leaf.decode(b)) for a, b in self._changed)

    def apply(self, old: Manifest) -> Manifest:
        """``old`` with this diff applied; raises ``IntegrityError`` if ``old`` is not the base."""
        if old.id != self.old_id:
            raise IntegrityError(f"this diff applies to manifest {self.old_id[:12]}, not {old.id[:12]}")
        drop = set(self._removed)
        drop.update(before for before, _ in self._changed)
        lines = [line for line in old.lines() if line not in drop]
        lines.extend(self._added)
        lines.extend(after for _, after in self._changed)
        lines.sort()
        result = Manifest._from_sorted_lines(lines)
        if result.id != self.new_id:
            raise IntegrityError(f"applying the diff gave {result.id[:12]}, not {self.new_id[:12]}")
        return result

    def by_source(self, hierarchies: Mapping[str, Hierarchy] | None = None) -> list[SourceDiff]:
        """Counts and bytes per source, spread over each source's levels."""
        hierarchies = hierarchies or {}
        groups: dict[str, tuple[list[Leaf], list[Leaf], list[Leaf]]] = {}
        for index, leaves in enumerate((self.added, self.removed, tuple(b for _, b in self.changed))):
            for leaf in leaves:
                groups.setdefault(leaf.source_id, ([], [], []))[index].append(leaf)
        out = []
        for source_id in sorted(groups):
            hierarchy = hierarchies.get(source_id)
            added, removed, changed = groups[source_id]
            out.append(
                SourceDiff(
                    source_id,
                    _stats(added, hierarchy),
                    _stats(removed, hierarchy),
                    _stats(changed, hierarchy),
                    hierarchy.leaf_level if hierarchy else "leaf",
                )
            )
        return out

    def grouped(self, depth: int) -> dict[tuple[str, tuple[str, ...]], NodeChanges]:
        """Changes per node at one level: ``grouped(1)`` gives each collection's counts and bytes.

        Keys are (source id, path of ``depth`` keys); leaves shallower than ``depth`` are left out.
        """
        out: dict[tuple[str, tuple[str, ...]], NodeChanges] = {}
        for kind, leaves in (
            ("added", self.added),
            ("removed", self.removed),
            ("changed", tuple(new for _, new in self.changed)),
        ):
            for leaf in leaves:
                if len(leaf.path) < depth:
                    continue
                node = (leaf.source_id, leaf.path[:depth])
                counts = out.setdefault(node, NodeChanges())
                counts.add(kind, leaf.fingerprint.size or 0)
        return dict(sorted(out.items()))

    def summary(self, hierarchies: Mapping[str, Hierarchy] | None = None) -> str:
        """One line for people: ``+5 series (2.1 GB) in 3 patients, -1 series, 3 changed``."""
        per_source = self.by_source(hierarchies)
        if not per_source:
            return "no changes"
        if len(per_source) == 1:
            return per_source[0].summary()
        return "; ".join(f"{s.source_id}: {s.summary()}" for s in per_source)
