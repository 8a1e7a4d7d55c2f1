"""A manifest as a tree (source > levels > leaves) with counts and sizes, for views of any size.

Nothing is built per node: a manifest's lines are sorted, so the leaves below any node are one
contiguous run, found by binary search, and its bytes are a difference of prefix sums. Children are
listed page by page, so a collection of 100,000 patients costs what its first page costs.
"""

from __future__ import annotations

import json
import os
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import ValidationError
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


@dataclass(frozen=True, slots=True)
class TreeSummary:
    """The top of a manifest's tree (sources and their first level, with counts and sizes): enough
    to draw a set at once while the whole tree loads. Cached per manifest (``TreeCache``)."""

    manifest_id: str
    nodes: tuple[TreeNode, ...]  # each source, then its first-level children, in key order

    def sources(self) -> list[TreeNode]:
        return [n for n in self.nodes if not n.path]

    def children(self, source_id: str) -> list[TreeNode]:
        return [n for n in self.nodes if n.source_id == source_id and len(n.path) == 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id,
            "nodes": [[n.source_id, list(n.path), n.leaves, n.size, n.is_leaf] for n in self.nodes],
        }

    @classmethod
    def from_json(cls, data: Any) -> TreeSummary:
        try:
            nodes = tuple(
                TreeNode(str(s), tuple(map(str, p)), int(c), int(z), bool(f))
                for s, p, c, z, f in data["nodes"]
            )
            return cls(str(data["manifest_id"]), nodes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"a damaged tree summary: {exc}") from None


def summarize(manifest: Manifest) -> TreeSummary:
    """One pass over the lines (about 0.6 s for a million leaves)."""
    counts: dict[tuple[str, str | None], list[int]] = {}
    for line in manifest.lines():
        tab = line.index(TAB)
        parts = line[:tab].split(US, 2)
        end = line.find(US, tab)
        size = int(line[tab + 1 : end] or 0)
        depth_one = len(parts) == 2
        for key in ((parts[0], None), (parts[0], parts[1])):
            entry = counts.get(key)
            if entry is None:
                counts[key] = [1, size, depth_one and key[1] is not None]
            else:
                entry[0] += 1
                entry[1] += size
    nodes = []
    for (source, first), (leaves, size, is_leaf) in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
    ):
        path = () if first is None else (_unescape(first),)
        nodes.append(TreeNode(_unescape(source), path, leaves, size, bool(is_leaf)))
    return TreeSummary(manifest.id, tuple(nodes))


class TreeCache:
    """Tree summaries on disk, one small JSON file per manifest id."""

    def __init__(self, folder: Path, remembered: int = 256) -> None:
        self.folder = folder
        # Summaries are small: the recent ones stay in memory, so commits and set listings do
        # not read their files again and again.
        self._recent: OrderedDict[str, TreeSummary] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def _remember(self, summary: TreeSummary) -> TreeSummary:
        with self._lock:
            self._recent[summary.manifest_id] = summary
            self._recent.move_to_end(summary.manifest_id)
            while len(self._recent) > self._remembered:
                self._recent.popitem(last=False)
        return summary

    def _path(self, manifest_id: str) -> Path:
        if not all(c in "0123456789abcdef" for c in manifest_id) or len(manifest_id) != 64:
            raise ValidationError(f"{manifest_id!r} is not a manifest id")
        return self.folder / f"{manifest_id}.json"

    def get(self, manifest_id: str) -> TreeSummary | None:
        with self._lock:
            known = self._recent.get(manifest_id)
        if known is not None:
            return known
        try:
            summary = TreeSummary.from_json(json.loads(self._path(manifest_id).read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError):
            return None  # missing or damaged: it is made again
        return self._remember(summary) if summary.manifest_id == manifest_id else None

    def ensure(self, manifest: Manifest) -> TreeSummary:
        summary = self.get(manifest.id)
        if summary is None:
            summary = summarize(manifest)
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self._path(manifest.id)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(summary.to_json()), encoding="utf-8")
            os.replace(tmp, path)
            self._remember(summary)
        return summary
