"""The cluster's AEAD on pysyncobj's connections: what one secret seals, only that secret opens,
and nothing changed on the way (timestamp included) gets through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.raft.cipher import ClusterCipher, InvalidToken


@given(st.binary(max_size=4096), st.integers(0, 2**63))
def test_round_trip_and_timestamp(data: bytes, stamp: int) -> None:
    cipher = ClusterCipher("a-cluster-secret")
    token = cipher.encrypt_at_time(data, stamp)
    assert cipher.extract_timestamp(token) == stamp
    assert cipher.decrypt(token) == data
    assert cipher.encrypt_at_time(data, stamp) != token  # a fresh nonce each time


def test_another_secret_a_changed_byte_or_a_cut_token_is_refused() -> None:
    cipher, other = ClusterCipher("a-cluster-secret"), ClusterCipher("another-secret")
    token = cipher.encrypt_at_time(b"append entries", 1234)
    with pytest.raises(InvalidToken, match="not sealed with this cluster's secret"):
        other.decrypt(token)
    for position in (0, 7, 8, 31, 32, len(token) - 1):  # timestamp, nonce, ciphertext, tag
        changed = bytearray(token)
        changed[position] ^= 0x01
        with pytest.raises(InvalidToken):
            cipher.decrypt(bytes(changed))
    with pytest.raises(InvalidToken, match="too short"):
        cipher.decrypt(token[:40])
    with pytest.raises(InvalidToken, match="too short"):
        cipher.extract_timestamp(b"")
