"""A collaborator's change while a set is open (issue 23): the open set follows a colleague's new
version when nothing is pending here, else says "Version N by Bob is available — show it"; the
sidebar keeps its groups as the user left them and chooses the set a notice opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from mediator_desktop.core.identity import Identity
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.node import Node
from mediator_desktop.ui.main_window import GROUPS, MainWindow
from tests.helpers.windows import shown_window

pytestmark = pytest.mark.timeout(120)

LUNG_A, LUNG_B, LUNG_C = (Pointer.of("idc", c) for c in ("lung_a", "lung_b", "other_c"))


@pytest.fixture
def window(qtbot: QtBot, node: Node) -> Iterator[MainWindow]:
    yield from shown_window(qtbot, node)


def colleague(node: Node) -> Service:
    """Bob, another identity on the same store (his node, as the cluster replicates it here)."""
    bob = Service(
        node.store, Identity.generate("bob"), sources={s.source_id: s for s in node.service.archives.all()}
    )
    bob.register()
    return bob


def commit(service: Service, set_id: str, selection: Selection, message: str) -> None:
    service.sets.commit(set_id, selection, service.archives.resolve(selection), message)


def test_the_open_set_follows_or_offers_a_colleagues_version(
    window: MainWindow, qtbot: QtBot, node: Node
) -> None:
    me, bob = node.service, colleague(node)
    set_id = me.sets.create("RIDER CT")
    commit(me, set_id, Selection.of(LUNG_A), "v1")
    me.sets.grant_editor(set_id, bob.key_id)
    window.open_set(set_id)
    assert window.set_view.shown_version == 1
    # Nothing pending here: the view follows Bob's version 2.
    commit(bob, set_id, Selection.of(LUNG_A).add(LUNG_B), "bob's v2")
    qtbot.waitUntil(lambda: window.set_view.shown_version == 2, timeout=10000)
    assert window.stale.isHidden()
    assert "version 2" in window.set_view.title.text()
    # With pending edits, Bob's version 3 is offered, not forced.
    window.set_view.add([LUNG_C])
    commit(bob, set_id, Selection.of(LUNG_B), "bob's v3")
    qtbot.waitUntil(lambda: window.stale.isVisible(), timeout=10000)
    assert window.stale.text().startswith("Version 3 by bob is available — <a href='show'>show it</a>")
    assert window.set_view.shown_version == 2
    window.stale.linkActivated.emit("show")
    assert window.set_view.shown_version == 3 and "version 3" in window.set_view.title.text()
    draft = window.set_view.draft
    assert draft is not None and draft.changed  # the pending edit now builds on version 3
    assert draft.selection == Selection.of(LUNG_B).add(LUNG_C)
    assert window.stale.isHidden()


def test_sidebar_groups_keep_their_state_and_an_opened_set_is_chosen(
    window: MainWindow, qtbot: QtBot, node: Node
) -> None:
    scopes = [scope for scope, _ in GROUPS]
    me = node.service
    first = me.sets.create("RIDER Lung CT with a rather long name to read in full")
    qtbot.waitUntil(lambda: len(window.set_items("mine")) == 1, timeout=10000)
    mine = window.sidebar.topLevelItem(scopes.index("mine"))
    following = window.sidebar.topLevelItem(scopes.index("following"))
    assert mine is not None and following is not None
    following.setExpanded(True)  # empty groups stay shut: remembered for when it fills
    mine.setExpanded(False)
    me.sets.create("Second")
    qtbot.waitUntil(lambda: len(window.set_items("mine")) == 2, timeout=10000)
    mine = window.sidebar.topLevelItem(scopes.index("mine"))
    assert mine is not None and not mine.isExpanded()
    # Opening a set (as a notice's click does) chooses it in the sidebar and opens its group.
    window.open_set(first)
    current = window.sidebar.currentItem()
    assert current is not None and current.text(0).startswith("RIDER Lung CT")
    mine = window.sidebar.topLevelItem(scopes.index("mine"))
    assert mine is not None and mine.isExpanded()
    assert current.toolTip(0).splitlines()[0] == "RIDER Lung CT with a rather long name to read in full"
    me.sets.rename(first, "RIDER Lung CT")
    qtbot.waitUntil(lambda: window.set_items("mine")[0].text(0).startswith("RIDER Lung CT  ·"), timeout=10000)
    mine = window.sidebar.topLevelItem(scopes.index("mine"))
    assert mine is not None and mine.isExpanded()
