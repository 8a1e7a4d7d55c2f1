"""Hypothesis strategies for the domain model."""

from __future__ import annotations

from hypothesis import strategies as st

from mediator_desktop.core.manifest import Fingerprint, Leaf
from mediator_desktop.core.pointer import Pointer, make_filters
from mediator_desktop.core.selection import Rule

#: Small domains, so that generated rules overlap often and the interesting cases show up.
SOURCES = ("s", "t")
KEYS = ("a", "b")
MODALITIES = ("CT", "MR", "PT")
DEPTH = 3

pointers = st.builds(
    lambda source, path, modalities: Pointer(
        source, tuple(path), make_filters({"Modality": sorted(modalities)} if modalities else None)
    ),
    st.sampled_from(SOURCES),
    st.lists(st.sampled_from(KEYS), max_size=DEPTH),
    st.sets(st.sampled_from(MODALITIES), max_size=2),
)

rule_sets = st.dictionaries(pointers, st.booleans(), max_size=8).map(
    lambda d: frozenset(Rule(p, inc) for p, inc in d.items())
)

#: Any text a key may hold, control characters, %, tabs and non-ASCII included.
key_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)

fingerprints = st.builds(
    Fingerprint,
    size=st.integers(0, 10**13),
    count=st.none() | st.integers(0, 10**5),
    checksum=st.none() | key_text,
    version=st.none() | key_text,
    released=st.none() | key_text,
)

leaves = st.builds(
    Leaf,
    st.sampled_from(("idc", "tcia", "s3")) | key_text,
    st.lists(st.sampled_from(("c1", "c2", "p1", "p2")) | key_text, min_size=1, max_size=4).map(tuple),
    fingerprints,
)

leaf_lists = st.lists(leaves, max_size=40, unique_by=lambda leaf: (leaf.source_id, leaf.path))
