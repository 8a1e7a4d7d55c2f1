"""ManifestTree against a brute-force grouping of the same leaves."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.tree import ManifestTree

KEYS = st.sampled_from(["a", "b", "a b", "a%", "a\x1fz", "é", "a.1", "b/2", "z"])
LEAVES = st.lists(
    st.tuples(
        st.sampled_from(["idc", "tcia", "id"]),
        st.tuples(KEYS, KEYS, KEYS),
        st.one_of(st.none(), st.integers(0, 10**12)),
    ),
    max_size=60,
)


def build(leaves: list[tuple[str, tuple[str, str, str], int | None]]) -> Manifest:
    b = ManifestBuilder()
    seen = set()
    for source, path, size in leaves:
        if (source, path) not in seen:
            seen.add((source, path))
            b.add(source, path, size=size, count=1)
    return b.build()


@given(LEAVES)
def test_counts_and_sizes_match_a_brute_force_grouping(
    leaves: list[tuple[str, tuple[str, str, str], int | None]],
) -> None:
    manifest = build(leaves)
    tree = ManifestTree(manifest)
    assert len(tree) == len(manifest) and tree.total_size == manifest.total_size
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
    for leaf in manifest:
        for depth in range(len(leaf.path) + 1):
            groups[(leaf.source_id, leaf.path[:depth])].append(leaf.fingerprint.size or 0)
    assert [(n.source_id, n.leaves, n.size) for n in tree.sources()] == sorted(
        (s, len(v), sum(v)) for (s, p), v in groups.items() if p == ()
    )

    def walk(source: str, path: tuple[str, ...]) -> None:
        node = tree.node(source, path)
        sizes = groups[(source, path)]
        assert (node.leaves, node.size, node.is_leaf) == (len(sizes), sum(sizes), len(path) == 3)
        children = list(tree.children(source, path))
        expected = sorted(
            {
                p[len(path)]
                for (s, p) in groups
                if s == source and len(p) == len(path) + 1 and p[: len(path)] == path
            }
        )
        assert sorted(c.key for c in children) == expected
        for child in children:
            walk(source, child.path)

    for source in {s for s, _ in groups}:
        walk(source, ())


def test_children_page_on_from_where_the_last_page_ended() -> None:
    b = ManifestBuilder()
    for i in range(30):
        b.add("idc", ("c", f"p{i:02d}", "st", "se"), size=i, count=1)
    tree = ManifestTree(b.build())
    first = list(zip(range(10), tree.children("idc", ("c",)), strict=False))
    start = tree.after(first[-1][1])
    rest = list(tree.children("idc", ("c",), start))
    assert [n.key for _, n in first] + [n.key for n in rest] == [f"p{i:02d}" for i in range(30)]
    assert list(tree.children("idc", ("nope",))) == [] and tree.node("idc", ("nope",)).leaves == 0


@given(LEAVES)
def test_the_summary_is_the_top_of_the_tree_and_survives_the_cache(
    leaves: list[tuple[str, tuple[str, str, str], int | None]],
) -> None:
    import tempfile
    from pathlib import Path

    from mediator_desktop.core.tree import TreeCache, summarize

    manifest = build(leaves)
    tree = ManifestTree(manifest)
    summary = summarize(manifest)
    assert summary.sources() == tree.sources()
    for source in tree.sources():
        assert summary.children(source.source_id) == list(tree.children(source.source_id))
    with tempfile.TemporaryDirectory() as folder:
        cache = TreeCache(Path(folder))
        assert cache.get(manifest.id) is None
        cache.ensure(manifest)
        assert cache.get(manifest.id) == summary
        assert TreeCache(Path(folder)).get(manifest.id) == summary  # read back from its file
        (Path(folder) / f"{manifest.id}.json").write_text("{not json")
        assert TreeCache(Path(folder)).get(manifest.id) is None  # damaged: made again on the next ensure
