"""A set's uncommitted edits: adding and removing, undo and redo, and rebasing on a newer version."""

from __future__ import annotations

from mediator_desktop.core.draft import Draft, Edit
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Rule, Selection

NLST = Pointer.of("idc", "nlst")
PATIENT = Pointer.of("idc", "nlst", "100002")
STUDY = Pointer.of("idc", "nlst", "100002", "1.2")
LIDC = Pointer.of("tcia", "LIDC-IDRI")
CT = Pointer.of("idc", "nlst", Modality="CT")
RIDER = Pointer.of("tcia", "RIDER")


def empty() -> Draft:
    return Draft("set-1", Selection(), None)


def test_a_new_draft_is_its_base() -> None:
    base = Selection.of(NLST)
    draft = Draft("set-1", base, 3)
    assert (draft.set_id, draft.base_version) == ("set-1", 3)
    assert draft.selection == base
    assert not draft.changed and not draft.can_undo and not draft.can_redo
    assert draft.edits == []
    assert not draft.diff()
    assert draft.undo() is None and draft.redo() is None


def test_add_and_remove_record_one_edit_each() -> None:
    draft = empty()
    assert draft.add([NLST, LIDC])
    assert draft.remove([PATIENT])
    assert draft.selection == Selection.of(NLST, LIDC).remove(PATIENT)
    assert draft.changed and draft.can_undo and not draft.can_redo
    assert draft.edits == [Edit(add=(NLST, LIDC)), Edit(remove=(PATIENT,))]
    diff = draft.diff()
    assert diff.added == {Rule(NLST), Rule(LIDC), Rule(PATIENT, include=False)}
    assert not diff.removed


def test_an_edit_that_changes_nothing_is_not_recorded() -> None:
    draft = Draft("set-1", Selection.of(NLST), 1)
    assert not draft.add([NLST])
    assert not draft.add([PATIENT])  # already inside the collection
    assert not draft.remove([LIDC])  # never in
    assert not draft.apply(Edit())
    assert draft.edits == [] and not draft.can_undo and not draft.changed


def test_one_edit_adds_and_removes_at_once() -> None:
    draft = empty()
    assert draft.apply(Edit(add=(NLST,), remove=(PATIENT,)))
    assert draft.selection == Selection.of(NLST).remove(PATIENT)
    assert len(draft.edits) == 1


def test_undo_and_redo_walk_the_edits() -> None:
    draft = empty()
    draft.add([NLST])
    draft.remove([PATIENT])
    after_both = draft.selection

    assert draft.undo() == Edit(remove=(PATIENT,))
    assert draft.selection == Selection.of(NLST)
    assert draft.can_undo and draft.can_redo
    assert draft.undo() == Edit(add=(NLST,))
    assert draft.selection == Selection() and not draft.changed
    assert not draft.can_undo and draft.undo() is None

    assert draft.redo() == Edit(add=(NLST,))
    assert draft.can_redo  # redoing one keeps the rest redoable
    assert draft.redo() == Edit(remove=(PATIENT,))
    assert draft.selection == after_both
    assert not draft.can_redo and draft.redo() is None
    assert draft.edits == [Edit(add=(NLST,)), Edit(remove=(PATIENT,))]


def test_a_new_edit_drops_what_could_be_redone() -> None:
    draft = empty()
    draft.add([NLST])
    draft.add([LIDC])
    draft.undo()
    assert draft.can_redo
    assert draft.add([RIDER])
    assert not draft.can_redo and draft.redo() is None
    assert draft.edits == [Edit(add=(NLST,)), Edit(add=(RIDER,))]


def test_an_edit_that_changes_nothing_keeps_what_could_be_redone() -> None:
    draft = empty()
    draft.add([NLST])
    draft.add([LIDC])
    draft.undo()
    assert not draft.add([PATIENT])  # inside NLST: nothing changes
    assert draft.can_redo
    assert draft.redo() == Edit(add=(LIDC,))


def test_undo_back_to_the_base_is_unchanged() -> None:
    base = Selection.of(NLST)
    draft = Draft("set-1", base, 2)
    draft.remove([NLST])
    assert draft.changed and not draft.selection
    draft.add([NLST])
    assert not draft.changed  # two edits that cancel out
    assert draft.can_undo  # but both are on the stack
    draft.undo()
    draft.undo()
    assert draft.selection == base


def test_rebase_replays_the_edits_on_a_newer_version() -> None:
    draft = Draft("set-1", Selection.of(NLST), 1)
    draft.remove([PATIENT])
    draft.add([LIDC])
    draft.add([CT])
    draft.undo()  # redo history is dropped by a rebase
    theirs = Selection.of(NLST, RIDER)
    draft.rebase(theirs, 2)
    assert (draft.base, draft.base_version) == (theirs, 2)
    assert draft.selection == theirs.remove(PATIENT).add(LIDC)
    assert draft.edits == [Edit(remove=(PATIENT,)), Edit(add=(LIDC,))]
    assert not draft.can_redo
    assert draft.diff().added == {Rule(PATIENT, include=False), Rule(LIDC)}


def test_rebase_drops_edits_the_newer_version_already_holds() -> None:
    draft = Draft("set-1", Selection(), None)
    draft.add([NLST])
    draft.add([LIDC])
    draft.rebase(Selection.of(NLST), 1)  # someone added NLST first
    assert draft.edits == [Edit(add=(LIDC,))]
    assert draft.selection == Selection.of(NLST, LIDC)
    draft.undo()
    assert draft.selection == draft.base


def test_describe() -> None:
    assert Edit(add=(NLST,)).describe() == "add idc/nlst"
    assert Edit(add=(NLST,), remove=(PATIENT,)).describe() == "add idc/nlst; remove idc/nlst/100002"
    many = Edit(add=(NLST, LIDC), remove=(STUDY,))
    assert many.describe() == "add idc/nlst and 2 more"
    assert Edit().describe() == ""
