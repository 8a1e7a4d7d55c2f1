"""The event bridge: typed core events, emitted on any thread, arrive on the GUI thread, chosen by
type; after ``detach`` none arrives."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from mediator_desktop.core.events import (
    ClusterEvent,
    DownloadFinished,
    Event,
    EventBus,
    MemberJoined,
    SetChanged,
    SetEvent,
    StateReloaded,
    VersionCommitted,
)
from mediator_desktop.ui.bridge import EventBridge

pytestmark = pytest.mark.timeout(30)


def emit_on_a_thread(bus: EventBus, *events: Event) -> None:
    def emit() -> None:
        for event in events:
            bus.emit(event)

    worker = threading.Thread(target=emit, name="raft-like")
    worker.start()
    worker.join()


def test_events_from_another_thread_arrive_on_the_gui_thread_in_order(qtbot: QtBot) -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    received: list[tuple[Event, QThread]] = []
    bridge.event_received.connect(lambda e: received.append((e, QThread.currentThread())))
    emit_on_a_thread(bus, SetChanged("s1"), VersionCommitted("s1", 1), StateReloaded())
    qtbot.waitUntil(lambda: len(received) == 3, timeout=5000)
    assert [type(e) for e, _ in received] == [SetChanged, VersionCommitted, StateReloaded]
    assert [e.seq for e, _ in received] == [1, 2, 3]
    gui = QApplication.instance()
    assert gui is not None and all(thread is gui.thread() for _, thread in received)


def test_subscribers_choose_events_by_type_or_group(qtbot: QtBot) -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    sets: list[Event] = []
    cluster: list[Event] = []
    everything: list[Event] = []
    threads: list[QThread] = []
    bridge.subscribe(sets.append, SetEvent, StateReloaded)

    def on_cluster(event: ClusterEvent) -> None:
        cluster.append(event)
        threads.append(QThread.currentThread())

    bridge.subscribe(on_cluster, ClusterEvent)
    bridge.subscribe(everything.append)
    emit_on_a_thread(
        bus, SetChanged("s1"), MemberJoined("127.0.0.1:4000"), DownloadFinished("j1", "s1"), StateReloaded()
    )
    qtbot.waitUntil(lambda: len(everything) == 4, timeout=5000)
    assert [type(e) for e in sets] == [SetChanged, StateReloaded]
    assert cluster == [MemberJoined("127.0.0.1:4000", seq=2)]
    gui = QApplication.instance()
    assert gui is not None and threads == [gui.thread()]  # a plain function too runs on the GUI thread


def test_after_detach_no_event_arrives(qtbot: QtBot) -> None:
    bus = EventBus()
    bridge = EventBridge(bus)
    received: list[Event] = []
    bridge.event_received.connect(received.append)
    bus.emit(SetChanged("queued before"))  # on the GUI thread: delivered at once
    assert len(received) == 1
    bridge.detach()
    emit_on_a_thread(bus, SetChanged("after"))
    bus.emit(SetChanged("after, here"))
    QApplication.processEvents()  # delivers what the thread queued, if anything was
    assert [e.set_id for e in received if isinstance(e, SetChanged)] == ["queued before"]
