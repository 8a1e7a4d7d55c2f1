"""Edits of a replica set before they become a version: add and remove pointers, undo and redo.

A draft starts from a version's selection (or an empty one). Each edit is one step on an undo
stack; ``commit`` hands the result to the service, which resolves it and makes the version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection, SelectionDiff


@dataclass(frozen=True, slots=True)
class Edit:
    """One user action: pointers added, or pointers removed (several at once for a multi-drag)."""

    add: tuple[Pointer, ...] = ()
    remove: tuple[Pointer, ...] = ()

    def describe(self) -> str:
        parts = [f"add {p}" for p in self.add] + [f"remove {p}" for p in self.remove]
        return "; ".join(parts) if len(parts) <= 2 else f"{parts[0]} and {len(parts) - 1} more"


class Draft:
    """Uncommitted edits of one set, on top of version ``base_version`` (None: no version yet)."""

    def __init__(self, set_id: str, base: Selection, base_version: int | None) -> None:
        self.set_id = set_id
        self.base = base
        self.base_version = base_version
        self._done: list[tuple[Edit, Selection]] = []  # each edit with the selection it produced
        self._undone: list[Edit] = []

    @property
    def selection(self) -> Selection:
        return self._done[-1][1] if self._done else self.base

    @property
    def changed(self) -> bool:
        return self.selection != self.base

    @property
    def edits(self) -> list[Edit]:
        return [edit for edit, _ in self._done]

    def diff(self) -> SelectionDiff:
        return SelectionDiff.between(self.base, self.selection)

    def apply(self, edit: Edit) -> bool:
        """Do an edit; False (and nothing recorded) when it changes nothing."""
        selection = self.selection
        for pointer in edit.add:
            selection = selection.add(pointer)
        for pointer in edit.remove:
            selection = selection.remove(pointer)
        if selection == self.selection:
            return False
        self._done.append((edit, selection))
        self._undone.clear()
        return True

    def add(self, pointers: Iterable[Pointer]) -> bool:
        return self.apply(Edit(add=tuple(pointers)))

    def remove(self, pointers: Iterable[Pointer]) -> bool:
        return self.apply(Edit(remove=tuple(pointers)))

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def undo(self) -> Edit | None:
        if not self._done:
            return None
        edit, _ = self._done.pop()
        self._undone.append(edit)
        return edit

    def redo(self) -> Edit | None:
        if not self._undone:
            return None
        edit = self._undone.pop()
        undone = self._undone[:]
        self.apply(edit)
        self._undone = undone
        return edit

    def rebase(self, base: Selection, base_version: int | None) -> None:
        """Put the edits on top of another version (someone committed first): the same additions
        and removals, replayed in order; redo history is dropped."""
        edits = self.edits
        self.base, self.base_version = base, base_version
        self._done, self._undone = [], []
        for edit in edits:
            self.apply(edit)
