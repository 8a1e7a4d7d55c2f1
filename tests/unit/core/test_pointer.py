from __future__ import annotations

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Hierarchy, Pointer, make_filters

TCIA = Hierarchy(("collection", "patient", "study", "series"))


def test_pointer_of_builds_canonical_filters() -> None:
    p = Pointer.of("tcia", "LIDC-IDRI", Modality=["MR", "CT", "CT"])
    assert p.path == ("LIDC-IDRI",)
    assert p.filters == (("Modality", ("CT", "MR")),)
    assert str(p) == "tcia/LIDC-IDRI?Modality=CT,MR"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("LIDC", ""), "empty"),
        (("LIDC", 5), "must be text"),
    ],
)
def test_bad_path_keys_are_validation_errors(path: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Pointer("tcia", path)  # type: ignore[arg-type]


def test_empty_source_and_non_canonical_filters_are_refused() -> None:
    with pytest.raises(ValidationError, match="source id"):
        Pointer("", ("x",))
    with pytest.raises(ValidationError, match="canonical"):
        Pointer("tcia", (), (("Modality", ("MR", "CT")),))
    with pytest.raises(ValidationError, match="no value"):
        make_filters({"Modality": []})


def test_hierarchy_validates_depth_and_level_names() -> None:
    assert TCIA.pointer("tcia", {"collection": "LIDC", "patient": "P1"}).path == ("LIDC", "P1")
    with pytest.raises(ValidationError, match="has only 4 levels"):
        TCIA.validate(Pointer("tcia", ("a", "b", "c", "d", "e")))
    with pytest.raises(ValidationError, match="unknown level 'instance'"):
        TCIA.pointer("tcia", {"collection": "LIDC", "instance": "1.2"})
    with pytest.raises(ValidationError, match="level 'patient' is missing"):
        TCIA.pointer("tcia", {"collection": "LIDC", "study": "1.2"})
    with pytest.raises(ValidationError, match="empty"):
        TCIA.pointer("tcia", {"collection": ""})
    with pytest.raises(ValidationError, match="repeat"):
        Hierarchy(("a", "a"))
    assert TCIA.leaf_level == "series"
    assert TCIA.level_of(2) == "patient"


def test_covers_and_intersects() -> None:
    coll = Pointer.of("tcia", "LIDC")
    coll_ct = Pointer.of("tcia", "LIDC", Modality="CT")
    series = Pointer.of("tcia", "LIDC", "P1", "S1", "SE1")
    series_ct_mr = Pointer.of("tcia", "LIDC", "P1", Modality=["CT", "MR"])
    assert coll.covers(series)
    assert coll.covers(coll_ct)
    assert not coll_ct.covers(coll)
    assert not coll_ct.covers(series)  # the series may not be CT
    assert not coll_ct.covers(series_ct_mr)
    assert Pointer.of("tcia", "LIDC", Modality=["CT", "MR"]).covers(series_ct_mr)
    assert coll_ct.intersects(series)
    assert coll_ct.intersects(series_ct_mr)
    assert not coll_ct.intersects(Pointer.of("tcia", "LIDC", Modality="MR"))
    assert not coll.intersects(Pointer.of("idc", "LIDC"))
    assert not series.intersects(Pointer.of("tcia", "LIDC", "P2"))


def test_matches_uses_metadata() -> None:
    p = Pointer.of("tcia", "LIDC", Modality="CT")
    assert p.matches("tcia", ("LIDC", "P1", "S", "SE"), {"Modality": "CT"})
    assert not p.matches("tcia", ("LIDC", "P1", "S", "SE"), {"Modality": "MR"})
    assert not p.matches("tcia", ("LIDC", "P1", "S", "SE"), {})
    assert not p.matches("tcia", ("OTHER",), {"Modality": "CT"})


def test_json_round_trip_and_bad_json() -> None:
    p = Pointer.of("idc", "nlst", "100002", Modality="CT", BodyPartExamined="CHEST")
    assert Pointer.from_json(p.to_json()) == p
    with pytest.raises(ValidationError):
        Pointer.from_json({"source": "idc", "path": "nlst"})
    with pytest.raises(ValidationError):
        Pointer.from_json({"source": 3, "path": []})
    with pytest.raises(ValidationError):
        Pointer.from_json(["idc"])
