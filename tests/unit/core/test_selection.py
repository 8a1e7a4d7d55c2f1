from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Rule, Selection, SelectionDiff, decide, normalise
from tests.helpers.strategies import DEPTH, KEYS, MODALITIES, SOURCES, pointers, rule_sets

COLL = Pointer.of("tcia", "LIDC")
SERIES = Pointer.of("tcia", "LIDC", "P1", "ST1", "SE1")

#: Every leaf of the small generated domain, with each modality.
ALL_LEAVES = [
    (source, path, {"Modality": modality})
    for source in SOURCES
    for path in itertools.product(KEYS, repeat=DEPTH)
    for modality in MODALITIES
]


def meaning(rules: frozenset[Rule]) -> list[bool]:
    return [decide(rules, source, path, meta) for source, path, meta in ALL_LEAVES]


def test_pointer_under_included_ancestor_is_redundant() -> None:
    assert Selection.of(COLL, SERIES) == Selection.of(COLL)
    assert Selection.of(SERIES, COLL) == Selection.of(COLL)
    assert Selection.of(COLL).includes == [COLL]


def test_removing_a_series_from_an_included_collection_becomes_an_exclusion() -> None:
    s = Selection.of(COLL).remove(SERIES)
    assert s.includes == [COLL]
    assert s.excludes == [SERIES]
    assert not s.selects("tcia", SERIES.path)
    assert s.selects("tcia", ("LIDC", "P1", "ST1", "SE2"))


def test_removing_what_was_never_selected_changes_nothing() -> None:
    assert Selection.of(COLL).remove(Pointer.of("tcia", "OTHER")) == Selection.of(COLL)
    assert Selection().remove(SERIES) == Selection()


def test_adding_then_removing_gives_back_the_original() -> None:
    original = Selection.of(Pointer.of("tcia", "A"), Pointer.of("idc", "nlst", Modality="CT"))
    assert original.add(SERIES).remove(SERIES) == original
    with_exclusion = Selection.of(COLL).remove(SERIES)
    assert with_exclusion.add(SERIES) == Selection.of(COLL)


def test_adding_inside_an_exclusion_reincludes_only_that_part() -> None:
    patient = Pointer.of("tcia", "LIDC", "P1")
    s = Selection.of(COLL).remove(patient).add(SERIES)
    assert s.selects("tcia", SERIES.path)
    assert not s.selects("tcia", ("LIDC", "P1", "ST1", "SE2"))
    assert s.selects("tcia", ("LIDC", "P2", "ST1", "SE2"))


def test_filters_on_a_coarse_pointer() -> None:
    s = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))
    assert s.selects("idc", ("nlst", "p", "st", "se"), {"Modality": "CT"})
    assert not s.selects("idc", ("nlst", "p", "st", "se"), {"Modality": "SEG"})
    # Removing the CT of one patient from "all CT" is an exclusion under it.
    s2 = s.remove(Pointer.of("idc", "nlst", "p", Modality="CT"))
    assert not s2.selects("idc", ("nlst", "p", "st", "se"), {"Modality": "CT"})
    assert s2.selects("idc", ("nlst", "q", "st", "se"), {"Modality": "CT"})


def test_equal_selections_hash_equal() -> None:
    a = Selection.of(COLL, Pointer.of("idc", "x")).remove(SERIES)
    b = Selection.of(Pointer.of("idc", "x"), COLL).remove(SERIES)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_contradicting_rules_are_refused() -> None:
    with pytest.raises(ValidationError, match="both included and excluded"):
        Selection(frozenset({Rule(COLL, True), Rule(COLL, False)}))
    with pytest.raises(ValidationError, match="holds rules"):
        Selection(frozenset({COLL}))  # type: ignore[arg-type]


def test_json_round_trip_and_errors() -> None:
    s = Selection.of(COLL, Pointer.of("idc", "nlst", Modality="CT")).remove(SERIES)
    assert Selection.from_json(s.to_json()) == s
    with pytest.raises(ValidationError):
        Selection.from_json({"include": True})
    with pytest.raises(ValidationError):
        Selection.from_json([{"include": "yes", "source": "x", "path": []}])


@given(rule_sets)
def test_normalisation_keeps_the_meaning(rules: frozenset[Rule]) -> None:
    assert meaning(normalise(rules)) == meaning(rules)


@given(rule_sets, st.randoms(use_true_random=False))
def test_normalisation_is_idempotent_and_order_independent(
    rules: frozenset[Rule], rnd: random.Random
) -> None:
    once = normalise(rules)
    assert normalise(once) == once
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    assert normalise(shuffled) == once
    assert Selection(rules) == Selection(frozenset(shuffled))


@given(rule_sets, pointers)
def test_add_and_remove_do_what_they_say(rules: frozenset[Rule], pointer: Pointer) -> None:
    s = Selection(rules)
    added, removed = s.add(pointer), s.remove(pointer)
    for (source, path, meta), before, after_add, after_remove in zip(
        ALL_LEAVES, meaning(s.rules), meaning(added.rules), meaning(removed.rules), strict=True
    ):
        if pointer.matches(source, path, meta):
            assert after_add
            assert not after_remove
        elif not pointer.intersects(Pointer(source, path)):
            assert after_add == before == after_remove


@given(rule_sets, pointers)
def test_add_then_remove_of_a_disjoint_pointer_gives_back_the_original(
    rules: frozenset[Rule], pointer: Pointer
) -> None:
    s = Selection(rules)
    if any(r.pointer.intersects(pointer) for r in s.rules):
        return
    assert s.add(pointer).remove(pointer) == s


@given(rule_sets, rule_sets)
def test_diff_applied_to_a_gives_b(a_rules: frozenset[Rule], b_rules: frozenset[Rule]) -> None:
    a, b = Selection(a_rules), Selection(b_rules)
    diff = SelectionDiff.between(a, b)
    assert diff.apply(a) == b
    assert bool(diff) == (a != b)
    assert SelectionDiff.between(a, a).summary() == "no changes"
