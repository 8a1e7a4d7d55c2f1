"""The event bus: numbering, choosing events by type or group, unsubscribing, failing listeners."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading

import pytest

from mediator_desktop.core import events
from mediator_desktop.core.events import (
    ClusterEvent,
    ClusterJoined,
    DownloadEvent,
    DownloadFailed,
    DownloadFinished,
    DownloadProgressed,
    Event,
    EventBus,
    LeaderChanged,
    MemberJoined,
    SetChanged,
    SetDeleted,
    SetEvent,
    SettingsChanged,
    StateReloaded,
    VersionCommitted,
)

SAMPLES: list[Event] = [
    SetChanged("s1"),
    VersionCommitted("s1", 2),
    SetDeleted("s2"),
    StateReloaded(),
    DownloadProgressed("job-1", "s1"),
    DownloadFailed("job-1", "s1", "disk full"),
    MemberJoined("10.0.0.2:4321"),
    LeaderChanged(None),
    SettingsChanged(("display_name",)),
]


def test_emit_numbers_events_in_increasing_order() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    returned = [bus.emit(event) for event in SAMPLES]
    assert seen == returned
    assert [e.seq for e in seen] == list(range(1, len(SAMPLES) + 1))
    # Numbering replaces the event; the one handed in keeps seq 0 (it is frozen).
    assert all(e.seq == 0 for e in SAMPLES)
    assert [dataclasses.replace(e, seq=0) for e in seen] == SAMPLES


def test_numbers_stay_unique_and_increasing_across_threads() -> None:
    bus = EventBus()
    seen: list[int] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            seen.append(event.seq)

    bus.subscribe(record)

    def emit_many() -> None:
        for _ in range(200):
            bus.emit(StateReloaded())

    threads = [threading.Thread(target=emit_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(seen) == list(range(1, 801))
    assert bus.emit(StateReloaded()).seq == 801


def test_each_bus_numbers_its_own_events() -> None:
    first, second = EventBus(), EventBus()
    assert first.emit(StateReloaded()).seq == 1
    assert first.emit(StateReloaded()).seq == 2
    assert second.emit(StateReloaded()).seq == 1


def test_subscribe_by_type() -> None:
    bus = EventBus()
    versions: list[Event] = []
    changes_and_deletions: list[Event] = []
    bus.subscribe(versions.append, VersionCommitted)
    bus.subscribe(changes_and_deletions.append, SetChanged, SetDeleted)
    for event in SAMPLES:
        bus.emit(event)
    assert [type(e) for e in versions] == [VersionCommitted]
    assert [type(e) for e in changes_and_deletions] == [SetChanged, SetDeleted]


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (SetEvent, [SetChanged, VersionCommitted, SetDeleted]),
        (DownloadEvent, [DownloadProgressed, DownloadFailed]),
        (ClusterEvent, [MemberJoined, LeaderChanged]),
        (Event, [type(e) for e in SAMPLES]),
    ],
)
def test_subscribe_by_group(group: type[Event], expected: list[type[Event]]) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append, group)
    for event in SAMPLES:
        bus.emit(event)
    assert [type(e) for e in seen] == expected


def test_groups_carry_what_their_listeners_read() -> None:
    assert VersionCommitted("s", 3).set_id == "s"
    assert DownloadFinished("job", "s").job == "job"
    assert DownloadFailed("job", "s").message == ""
    assert issubclass(ClusterJoined, ClusterEvent) and ClusterJoined().members == ()
    assert SettingsChanged(("peers",), ("peers",)).restart == ("peers",)


def test_unsubscribe_stops_delivery_to_that_listener_only() -> None:
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    stop_first = bus.subscribe(first.append)
    bus.subscribe(second.append, SetEvent)
    bus.emit(SetChanged("a"))
    stop_first()
    bus.emit(SetChanged("b"))
    stop_first()  # twice is harmless
    assert [e.set_id for e in first if isinstance(e, SetEvent)] == ["a"]
    assert [e.set_id for e in second if isinstance(e, SetEvent)] == ["a", "b"]


def test_the_same_listener_subscribed_twice_is_removed_once() -> None:
    bus = EventBus()
    seen: list[Event] = []
    stop = bus.subscribe(seen.append, SetChanged)
    bus.subscribe(seen.append, SetChanged)
    bus.emit(SetChanged("a"))
    stop()
    bus.emit(SetChanged("b"))
    assert [e.set_id for e in seen if isinstance(e, SetChanged)] == ["a", "a", "b"]


def test_a_listener_may_unsubscribe_while_the_bus_emits() -> None:
    bus = EventBus()
    seen: list[str] = []
    stops: list[object] = []

    def once(event: Event) -> None:
        seen.append("once")
        stop = stops[0]
        assert callable(stop)
        stop()

    stops.append(bus.subscribe(once))
    bus.subscribe(lambda e: seen.append("always"))
    bus.emit(StateReloaded())
    bus.emit(StateReloaded())
    assert seen == ["once", "always", "always"]


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(seen.append)
    bus.subscribe(broken)
    bus.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="mediator_desktop.core.events"):
        event = bus.emit(SetChanged("s"))
    assert seen == [event, event]
    assert "listener" in caplog.text and "SetChanged" in caplog.text
    assert bus.emit(SetChanged("t")).seq == event.seq + 1


def test_events_are_frozen() -> None:
    event = VersionCommitted("s", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.version = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.seq = 5  # type: ignore[misc]


def test_every_event_class_is_a_frozen_dataclass_with_a_seq() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(events, inspect.isclass)
        if issubclass(c, Event) and c.__module__ == events.__name__
    ]
    assert len(classes) > 20
    for cls in classes:
        params = getattr(cls, "__dataclass_params__", None)
        assert params is not None and params.frozen, cls
        assert "seq" in {f.name for f in dataclasses.fields(cls)}, cls
    # Frozen: equal by value and hashable, so listeners may keep them in sets.
    assert len({SetChanged("x"), SetChanged("x"), SetChanged("y")}) == 2
