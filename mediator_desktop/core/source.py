"""The Interface API: what every archive adapter offers (``DataSource``) and what it hands back.

A source declares its levels (``Hierarchy``); the last is the leaf level. It browses the children
of a path, page by page, with counts and sizes where the archive gives them; lists the values a
metadata filter can take; and resolves a selection into a manifest of leaves with fingerprints.
It fetches a leaf's files, verified; the transfer engine (a later issue) schedules, resumes and
tracks those fetches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mediator_desktop.core.manifest import Leaf, Manifest
from mediator_desktop.core.pointer import Filters, Hierarchy
from mediator_desktop.core.selection import Selection


@dataclass(frozen=True, slots=True)
class BrowseItem:
    """One child of a path: a collection, a patient, a study, a series..."""

    key: str
    level: str
    label: str = ""
    leaves: int | None = None  # leaves below it (series, objects, files), if known
    size: int | None = None  # bytes below it, if known
    details: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class BrowsePage:
    items: tuple[BrowseItem, ...]
    offset: int
    total: int  # children in all, for paging

    @property
    def more(self) -> bool:
        return self.offset + len(self.items) < self.total


class DataSource(Protocol):
    """An archive, as the rest of the app sees it. Methods may block on I/O: call them off the GUI thread."""

    source_id: str
    title: str
    hierarchy: Hierarchy
    #: Metadata names ``filters`` may use (``Modality``, ``BodyPartExamined``...).
    filterable: tuple[str, ...]

    def browse(
        self, path: tuple[str, ...] = (), *, filters: Filters = (), offset: int = 0, limit: int = 200
    ) -> BrowsePage:
        """Children of ``path`` (the root: the first level), sorted by key."""
        ...

    def filter_values(self, name: str, path: tuple[str, ...] = ()) -> list[str]:
        """The values metadata ``name`` takes below ``path``, sorted."""
        ...

    def resolve(self, selection: Selection) -> Manifest:
        """The leaves of this source that ``selection`` selects, with their fingerprints."""
        ...

    def fetch(self, leaf: Leaf, destination: Path) -> list[Path]:
        """Put the files of ``leaf`` into ``destination / <leaf key>``, verified against its
        fingerprint; nothing outside ``destination``, nothing partial left behind as complete."""
        ...
