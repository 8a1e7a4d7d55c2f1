from __future__ import annotations

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import (
    PublishedRecord,
    ReplicaSet,
    Version,
    Visibility,
    check_set_id,
    new_set_id,
)
from mediator_desktop.core.selection import Selection

MANIFEST_ID = "ab" * 32


def test_set_ids_are_128_bit_random_hex() -> None:
    ids = {new_set_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and check_set_id(i) == i for i in ids)
    for bad in ("", "xyz", "A" * 32, 5):
        with pytest.raises(ValidationError, match="not a replica set id"):
            check_set_id(bad)


def test_replica_set_access() -> None:
    rs = ReplicaSet(new_set_id(), "LIDC subset", owner="alice", editors=frozenset({"bob"}))
    assert rs.visibility is Visibility.PRIVATE
    assert rs.can_read("alice")
    assert rs.can_read("bob")
    assert not rs.can_read("carol")
    assert rs.can_edit("bob")
    assert not rs.can_edit("carol")
    public = ReplicaSet(rs.id, rs.name, owner="alice", visibility=Visibility.PUBLIC)
    assert public.can_read("carol")
    assert not public.can_edit("carol")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "  "}, "name is empty"),
        ({"name": "x" * 201}, "at most 200"),
        ({"owner": ""}, "owner key id is empty"),
        ({"visibility": "world"}, "visibility"),
        ({"forked_from": ("nope", 1)}, "not a replica set id"),
    ],
)
def test_replica_set_validation(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"id": new_set_id(), "name": "n", "owner": "alice", **kwargs}
    with pytest.raises(ValidationError, match=message):
        ReplicaSet(**args)  # type: ignore[arg-type]


def test_version_is_immutable_and_round_trips() -> None:
    sel = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))
    v = Version(2, 1, "alice", 1700000000.5, "add CT", sel, MANIFEST_ID)
    assert Version.from_json(v.to_json()) == v
    with pytest.raises(AttributeError):
        v.message = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="start at 1"):
        Version(0, None, "alice", 0.0, "", sel, MANIFEST_ID)
    with pytest.raises(ValidationError, match="cannot have parent"):
        Version(2, 2, "alice", 0.0, "", sel, MANIFEST_ID)
    with pytest.raises(ValidationError, match="not a manifest id"):
        Version(1, None, "alice", 0.0, "", sel, "abc")
    with pytest.raises(ValidationError, match="malformed version"):
        Version.from_json({"number": 1})


def test_published_record_needs_a_title() -> None:
    rec = PublishedRecord(new_set_id(), 3, "alice", 0.0, "LIDC CT subset", creators=("A. Author",))
    assert rec.doi is None
    assert rec.doi_state == "none"
    with pytest.raises(ValidationError, match="title is empty"):
        PublishedRecord(new_set_id(), 3, "alice", 0.0, "")
