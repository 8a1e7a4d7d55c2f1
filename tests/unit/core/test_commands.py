"""Signed envelopes: what ``seal`` remembers for this process is exactly what ``parse`` reads from
the same bytes, so skipping the parse and the signature check here is deterministic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediator_desktop.core.commands import OPS, SEALED_HERE, _SealedHere, parse, seal
from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.identity import Identity, verify

ALICE = Identity.generate("alice")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)  # a tuple goes out as a JSON list: parse reads a list
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(OPS)),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    st.integers(1, 2**63),
    st.floats(0, 2e9, allow_nan=False),
    st.binary(max_size=64),
)
def test_what_seal_remembers_is_what_parse_reads(
    op: str, args: dict[str, Any], seq: int, when: float, payload: bytes
) -> None:
    data = seal(ALICE, op, args, seq, when, payload)
    remembered = SEALED_HERE.get(data)
    parsed = parse(data)
    assert remembered == parsed
    assert type(remembered.args) is dict and remembered.args == parsed.args
    assert verify(ALICE.public_key, parsed.signature, parsed.signed)
    assert SEALED_HERE.get(bytes(data)) is remembered  # found by value, as after the Raft log


def test_seal_refuses_what_parse_would() -> None:
    with pytest.raises(ValidationError, match="canonical JSON"):
        seal(ALICE, "follow", {"x": float("nan")}, 1, 1.0)
    with pytest.raises(ValidationError, match="unknown operation"):
        seal(ALICE, "drop_everything", {}, 1, 1.0)
    with pytest.raises(ValidationError, match="seq must be a positive"):
        seal(ALICE, "follow", {}, 0, 1.0)
    with pytest.raises(ValidationError, match="at most"):
        seal(ALICE, "put_manifest_chunk", {}, 1, 1.0, b"x" * 70_000)
    # Keys that are not text would sort one way here and another way where the bytes are parsed
    # (2 < 10, but "10" < "2"): the node that signed it would apply what every other node refuses.
    for args in ({"x": {2: 0, 10: 0}}, {"x": {True: 1, 2: 3}}, {"x": {1: 0, "a": 0}}):
        with pytest.raises(ValidationError, match="canonical JSON"):
            seal(ALICE, "follow", args, 1, 1.0)


def test_the_remembered_envelopes_are_bounded_by_count_and_bytes() -> None:
    remembered = _SealedHere(size=3, max_bytes=2400)  # counts each command twice (bytes and envelope)
    sealed = [seal(ALICE, "follow", {"set_id": str(i)}, i + 1, 1.0) for i in range(4)]
    for data in sealed:
        remembered.add(data, parse(data))
    assert remembered.get(sealed[0]) is None and remembered.get(sealed[3]) is not None
    assert 2 * 3 * len(sealed[0]) < 2400
    big = seal(ALICE, "put_manifest_chunk", {}, 9, 1.0, b"z" * 900)
    assert 2 * (len(big) + len(sealed[0])) > 2400 > 2 * len(big)
    remembered.add(big, parse(big))
    assert remembered.get(big) is not None
    assert [remembered.get(d) for d in sealed[1:]] == [None, None, None]
