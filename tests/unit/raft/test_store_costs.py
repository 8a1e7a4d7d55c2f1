"""What the store's cost cuts (issue 22) must not change: the cipher's tokens and the state's answers.

* ``raft.cipher`` calls libsodium directly instead of through PyNaCl's wrappers: the tokens are the
  same format, so each way opens the other's, and a changed byte is still refused.
* ``StoreState`` lets a version share its parent's selection object when the rules are equal:
  equal values, different identity only; a changed selection is never shared, and a replica that
  applied the same log gives the same answers and dump either way.
"""

from __future__ import annotations

import os
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.state import StoreState
from mediator_desktop.raft.cipher import ClusterCipher, InvalidToken
from tests.helpers.actors import EMPTY, SELECTION, Actor

pytestmark = pytest.mark.timeout(60)


@given(st.binary(max_size=2048), st.integers(0, 2**63))
def test_tokens_open_with_pynacl_and_pynacl_tokens_open_here(data: bytes, stamp: int) -> None:
    cipher = ClusterCipher("a-cluster-secret")
    key = cipher._key
    token = cipher.encrypt_at_time(data, stamp)
    assert crypto_aead_xchacha20poly1305_ietf_decrypt(token[32:], token[:8], token[8:32], key) == data
    nonce = os.urandom(24)
    theirs = token[:8] + nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(data, token[:8], nonce, key)
    assert cipher.decrypt(theirs) == data
    assert cipher.extract_timestamp(theirs) == stamp


def test_an_empty_message_and_a_changed_tag_or_timestamp() -> None:
    cipher = ClusterCipher("a-cluster-secret")
    token = cipher.encrypt_at_time(b"", 7)
    assert len(token) == 8 + 24 + 16
    assert cipher.decrypt(token) == b""
    for position in (3, len(token) - 1):
        changed = bytearray(token)
        changed[position] ^= 0x80
        with pytest.raises(InvalidToken, match="not sealed with this cluster's secret"):
            cipher.decrypt(bytes(changed))


def _replica(log: list[bytes]) -> tuple[StoreState, list[tuple[object, ...]]]:
    state = StoreState()
    return state, [state.apply(command) for command in log]


def test_a_version_that_keeps_its_parents_rules_shares_its_selection() -> None:
    alice = Actor("alice")
    set_id, create = alice.create()
    log = [alice.register(), create, *alice.manifest_commands()]
    log += [alice.commit(set_id, None), alice.commit(set_id, 1), alice.commit(set_id, 2)]
    other = Selection.of(Pointer.of("idc", "nlst", Modality="MR")).to_json()
    log.append(
        alice.cmd(
            "commit_version",
            set_id=set_id,
            expected_head=3,
            selection=other,
            manifest_id=EMPTY.id,
        )
    )
    state, results = _replica(log)
    assert [r[0] for r in results] == ["ok"] * len(results)
    v1, v2, v3, v4 = state.versions[set_id]
    assert v1.selection == Selection.from_json(SELECTION)
    assert v2.selection is v1.selection and v3.selection is v1.selection  # one object, not a copy each
    assert v4.selection != v1.selection and v4.selection == Selection.from_json(other)
    # A dump keeps the sharing and the values; another replica of the same log says the same.
    again, their_results = _replica(log)
    assert their_results == results
    restored = StoreState.from_dump(pickle.loads(pickle.dumps(state.to_dump())))
    assert restored.versions[set_id] == again.versions[set_id] == state.versions[set_id]
    assert restored.versions[set_id][2].selection is restored.versions[set_id][0].selection
