"""Selections: what a replica set version points at, as normalised include/exclude rules.

Meaning of a rule set ("deepest wins"): for a leaf, take the rules whose pointer matches it; the
rules with the longest path win; among those, the most specific (not covering another match)
win; if one of the winners excludes, the leaf is out, else it is in. No rule: out.

Normal form: every rule that does not change the meaning of the set is dropped, so the same
selection built in any order has one representation, and equal selections compare and hash equal.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Pointer


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    """One pointer of a selection, either included or excluded."""

    pointer: Pointer
    include: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"include": self.include, **self.pointer.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Rule:
        if not isinstance(data, dict) or not isinstance(data.get("include"), bool):
            raise ValidationError(f"not a selection rule: {data!r}")
        rest = {k: v for k, v in data.items() if k != "include"}
        return cls(Pointer.from_json(rest), data["include"])


def _ranked_below(q: Pointer, r: Pointer) -> bool:
    """True when ``q`` does not outrank ``r`` on the leaves both match."""
    return q.depth < r.depth or (q.depth == r.depth and not r.covers(q))


class _Index:
    """Rules grouped by (source, path) so that the ancestors of a pointer are found in O(depth)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_path: dict[tuple[str, tuple[str, ...]], set[Rule]] = defaultdict(set)
        for rule in rules:
            self.by_path[(rule.pointer.source_id, rule.pointer.path)].add(rule)

    def discard(self, rule: Rule) -> None:
        self.by_path[(rule.pointer.source_id, rule.pointer.path)].discard(rule)

    def at_or_above(self, pointer: Pointer) -> Iterable[Rule]:
        for n in range(pointer.depth + 1):
            yield from self.by_path.get((pointer.source_id, pointer.path[:n]), ())


#: The filter of a clinical rule that names the archives it joins to (``core.integrator``).
JOIN_FILTER = "@in"
#: With ``@every=yes`` a joined rule keeps only the patients that have data in every archive it
#: joins to (a radiogenomic cohort: CT in IDC *and* RNA-Seq in GDC *and* a slide).
JOIN_EVERY = "@every"


def joined_sources(rules: Iterable[Rule]) -> set[str]:
    """Archives that clinical rules join to: they get include rules when the set is resolved,
    so an exclusion there is not redundant though no rule of the selection includes it."""
    out: set[str] = set()
    for rule in rules:
        for name, values in rule.pointer.filters:
            if name == JOIN_FILTER and rule.include:
                for text in values:
                    with contextlib.suppress(ValidationError):  # a bad target: the join says so
                        out.add(Pointer.parse(text).source_id)
    return out


def _redundant(rule: Rule, index: _Index, joined: set[str]) -> bool:
    """Whether dropping ``rule`` keeps the meaning of the set (a sound, conservative test)."""
    r = rule.pointer
    # An exclusion needs no backing (no match also means "out"), unless a join includes there.
    guaranteed = not rule.include and r.source_id not in joined
    for other in index.at_or_above(r):
        q = other.pointer
        if other is rule or other == rule or not _ranked_below(q, r) or not q.intersects(r):
            continue
        if other.include != rule.include:
            return False
        if q.covers(r):
            guaranteed = True
    return guaranteed


def normalise(rules: Iterable[Rule]) -> frozenset[Rule]:
    """Drop rules that do not change the meaning, until none is left to drop."""
    current = set(rules)
    index = _Index(current)
    joined = joined_sources(current)
    changed = True
    while changed:
        changed = False
        # Most specific first, in a fixed order, so the result does not depend on input order.
        for rule in sorted(current, key=lambda x: (-x.pointer.depth, x)):
            if _redundant(rule, index, joined):
                current.discard(rule)
                index.discard(rule)
                changed = True
    return frozenset(current)


def decide(rules: Iterable[Rule], source_id: str, path: tuple[str, ...], metadata: Mapping[str, Any]) -> bool:
    """Whether ``rules`` (normalised or not) select the leaf at ``path`` with ``metadata``."""
    matching = [r for r in rules if r.pointer.matches(source_id, path, metadata)]
    if not matching:
        return False
    deepest = max(r.pointer.depth for r in matching)
    top = [r for r in matching if r.pointer.depth == deepest]
    winners = [r for r in top if not any(o.pointer != r.pointer and r.pointer.covers(o.pointer) for o in top)]
    return all(r.include for r in winners)


@dataclass(frozen=True, slots=True)
class Selection:
    """The normalised rules of one replica set version. Immutable; edits return a new selection."""

    rules: frozenset[Rule] = frozenset()

    def __post_init__(self) -> None:
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise ValidationError(f"a selection holds rules, not {rule!r}")
        pointers = [r.pointer for r in self.rules]
        if len(set(pointers)) != len(pointers):
            both = sorted(p for p in set(pointers) if pointers.count(p) > 1)[0]
            raise ValidationError(f"pointer {both} is both included and excluded; keep one rule")
        object.__setattr__(self, "rules", normalise(self.rules))

    @classmethod
    def of(cls, *pointers: Pointer) -> Selection:
        """A selection that includes each of ``pointers`` (normalised once: an imported manifest
        of thousands of series is one pass, not one per pointer)."""
        return cls(frozenset(Rule(pointer, True) for pointer in pointers))

    # -- edits ---------------------------------------------------------------------------------
    def add(self, pointer: Pointer) -> Selection:
        """Include everything ``pointer`` means (rules inside it are replaced by it)."""
        return self._set(pointer, True)

    def remove(self, pointer: Pointer) -> Selection:
        """Exclude everything ``pointer`` means; under an included ancestor it becomes an exclusion."""
        return self._set(pointer, False)

    def _set(self, pointer: Pointer, include: bool) -> Selection:
        kept = {r for r in self.rules if not pointer.covers(r.pointer)}
        new = {Rule(pointer, include)}
        # A deeper (or equally deep, unrelated) rule that overlaps the pointer only in part would
        # still win there; the overlap gets its own rule, more specific than that one.
        for rule in kept:
            q = rule.pointer
            if rule.include != include and q.path[: pointer.depth] == pointer.path and q.intersects(pointer):
                new.add(Rule(q.meet(pointer), include))
        return Selection(frozenset(kept | new))

    # -- queries -------------------------------------------------------------------------------
    @property
    def includes(self) -> list[Pointer]:
        return [r.pointer for r in self.sorted_rules() if r.include]

    @property
    def excludes(self) -> list[Pointer]:
        return [r.pointer for r in self.sorted_rules() if not r.include]

    @property
    def sources(self) -> list[str]:
        return sorted({r.pointer.source_id for r in self.rules})

    def sorted_rules(self) -> list[Rule]:
        return sorted(self.rules)

    def for_source(self, source_id: str) -> Selection:
        return Selection(frozenset(r for r in self.rules if r.pointer.source_id == source_id))

    def selects(
        self, source_id: str, path: tuple[str, ...], metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Whether the leaf at ``path`` (with its ``metadata``) belongs to this selection."""
        return decide(self.rules, source_id, path, metadata or {})

    def __bool__(self) -> bool:
        return any(r.include for r in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    # -- encoding ------------------------------------------------------------------------------
    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.sorted_rules()]

    @classmethod
    def from_json(cls, data: Any) -> Selection:
        if not isinstance(data, list):
            raise ValidationError(f"a selection is a list of rules, not {type(data).__name__}")
        return cls(frozenset(Rule.from_json(item) for item in data))


@dataclass(frozen=True, slots=True)
class SelectionDiff:
    """Rules only in the new selection (``added``) and only in the old one (``removed``)."""

    added: frozenset[Rule]
    removed: frozenset[Rule]

    @classmethod
    def between(cls, old: Selection, new: Selection) -> SelectionDiff:
        return cls(new.rules - old.rules, old.rules - new.rules)

    def apply(self, old: Selection) -> Selection:
        return Selection((old.rules - self.removed) | self.added)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def summary(self) -> str:
        if not self:
            return "no changes"
        parts = []
        for rule in sorted(self.added):
            parts.append(f"{'+' if rule.include else '-'}{rule.pointer}")
        for rule in sorted(self.removed):
            parts.append(f"(dropped {'include' if rule.include else 'exclude'} {rule.pointer})")
        return ", ".join(parts)
