"""What a stranger advertises never crashes the browser: fields are parsed strictly or ignored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.raft.discovery import parse_properties

GOOD = {
    b"cluster": b"c1", b"node": b"n1", b"name": "Ana\u00efs".encode(), b"raft": b"10.0.0.2:4100",
    b"api": b"0", b"pair": b"4101", b"version": b"0.1.0", b"proto": b"1",
}  # fmt: skip


def test_a_good_advertisement_parses() -> None:
    fields = parse_properties(GOOD)
    assert fields is not None and fields["name"] == "Ana\u00efs" and fields["raft"] == "10.0.0.2:4100"


def test_missing_broken_or_oversized_fields_are_ignored() -> None:
    for key in GOOD:
        assert parse_properties({k: v for k, v in GOOD.items() if k != key}) is None
    for key, bad in ((b"raft", b"nohost"), (b"raft", b"h:port"), (b"pair", b"x"), (b"proto", b"1.0"),
                     (b"name", b"\xff\xfe"), (b"name", b"x" * 500), (b"node", None)):  # fmt: skip
        assert parse_properties({**GOOD, key: bad}) is None


@given(st.dictionaries(st.binary(max_size=12), st.one_of(st.none(), st.binary(max_size=300))))
def test_random_properties_never_crash(properties: dict[bytes, bytes | None]) -> None:
    parse_properties({**properties})
    parse_properties({**GOOD, **properties})
