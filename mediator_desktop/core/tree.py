"""A manifest as a tree (source > levels > leaves) with counts and sizes, for views of any size.

Nothing is built per node: a manifest's lines are sorted, so the leaves below any node are one
contiguous run, found by binary search, and its bytes are a difference of prefix sums. Children are
listed page by page, so a collection of 100,000 patients costs what its first page costs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from mediator_desktop.core.manifest import TAB, US, Manifest
from mediator_desktop.core.manifest import escape_component as _escape
from mediator_desktop.core.manifest import unescape_component as _unescape

#: The character right after the unit separator: ``prefix + _AFTER`` sorts after every key
#: that continues ``prefix`` with a separator.
_AFTER = chr(ord(US) + 1)


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A node of the tree: a source (``path == ()``), a collection, a patient... or a leaf."""

    source_id: str
    path: tuple[str, ...]
    leaves: int
    size: int
    is_leaf: bool

    @property
    def key(self) -> str:
        return self.path[-1] if self.path else self.source_id


class ManifestTree:
    """Read-only tree view of one manifest. Building it reads every line once (about 1 s for a
    million leaves): do it off the GUI thread. Queries are then O(log n) per node."""

    def __init__(self, manifest: Manifest) -> None:
        lines = manifest.lines()
        self.manifest_id = manifest.id
        self._keys = [line[: line.index(TAB)] for line in lines]
        sizes = (line[line.index(TAB) + 1 : line.index(US, line.index(TAB))] for line in lines)
        self._cum = [0, *accumulate(int(s) if s else 0 for s in sizes)]

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def total_size(self) -> int:
        return self._cum[-1]

    def _range(self, source_id: str, path: tuple[str, ...]) -> tuple[int, int, str]:
        prefix = US.join(map(_escape, (source_id, *path)))
        lo = bisect_left(self._keys, prefix)
        if lo < len(self._keys) and self._keys[lo] == prefix:  # a leaf itself
            return lo, lo + 1, prefix
        lo = bisect_left(self._keys, prefix + US, lo)
        hi = bisect_left(self._keys, prefix + _AFTER, lo)
        return lo, hi, prefix + US

    def node(self, source_id: str, path: tuple[str, ...] = ()) -> TreeNode:
        lo, hi, _ = self._range(source_id, path)
        is_leaf = hi - lo == 1 and self._keys[lo].count(US) == len(path)
        return TreeNode(source_id, path, hi - lo, self._cum[hi] - self._cum[lo], is_leaf)

    def sources(self) -> list[TreeNode]:
        out = []
        i = 0
        while i < len(self._keys):
            source = self._keys[i][: self._keys[i].index(US)]
            j = bisect_left(self._keys, source + _AFTER, i)
            out.append(TreeNode(_unescape(source), (), j - i, self._cum[j] - self._cum[i], False))
            i = j
        return out

    def children(self, source_id: str, path: tuple[str, ...] = (), start: int = 0) -> Iterator[TreeNode]:
        """Children of a node in key order; ``start`` is a line index where to go on (see ``after``)."""
        lo, hi, prefix = self._range(source_id, path)
        if hi - lo == 1 and self._keys[lo] == prefix:  # a leaf has no children
            return
        i = max(lo, start)
        cut = len(prefix)
        keys, cum = self._keys, self._cum
        while i < hi:
            rest = keys[i][cut:]
            end = rest.find(US)
            component = rest if end < 0 else rest[:end]
            j = i + 1 if end < 0 else bisect_left(keys, prefix + component + _AFTER, i, hi)
            yield TreeNode(source_id, (*path, _unescape(component)), j - i, cum[j] - cum[i], end < 0)
            i = j

    def after(self, node: TreeNode) -> int:
        """The line index just past ``node``: where its next sibling starts."""
        return self._range(node.source_id, node.path)[1]
