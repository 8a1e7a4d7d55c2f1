"""The replicated state machine, driven directly: rules, attacks and determinism."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from mediator_desktop.core.commands import MAGIC, MAX_COMMAND_BYTES, MAX_DEPTH, OPS, canonical_json, parse
from mediator_desktop.core.errors import (
    ConflictError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from mediator_desktop.core.events import Event, SetChanged, TableAdded, VersionCommitted
from mediator_desktop.core.manifest import ManifestBuilder
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.state import MAX_TABLE_UPLOADS, StoreState
from mediator_desktop.core.store import ImmutableError, ReplayError, unwrap
from tests.helpers.actors import EMPTY, SELECTION, Actor


class Harness:
    """A state plus the log of commands applied to it, so determinism can be checked."""

    def __init__(self) -> None:
        self.state = StoreState()
        self.log: list[bytes] = []
        self.events: list[Event] = []
        self.state.listener = self.events.append

    def raw(self, command: bytes) -> tuple[Any, ...]:
        self.log.append(command)
        return self.state.apply(command)

    def do(self, command: bytes) -> Any:
        return unwrap(self.raw(command))

    def do_all(self, commands: list[bytes]) -> list[Any]:
        return [self.do(c) for c in commands]


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def alice(h: Harness) -> Actor:
    a = Actor("alice")
    h.do(a.register())
    h.do_all(a.manifest_commands())
    return a


@pytest.fixture
def bob(h: Harness) -> Actor:
    b = Actor("bob")
    h.do(b.register())
    return b


def test_create_commit_and_history(h: Harness, alice: Actor) -> None:
    set_id, cmd = alice.create("LIDC subset")
    h.do(cmd)
    assert h.do(alice.commit(set_id, None, message="first")) == {"set_id": set_id, "version": 1}
    assert h.do(alice.commit(set_id, 1, message="second"))["version"] == 2
    rs = h.state.sets[set_id]
    assert rs.head == 2 and rs.owner == alice.key_id
    assert [v.message for v in h.state.versions[set_id]] == ["first", "second"]
    assert h.state.versions[set_id][1].parent == 1
    assert VersionCommitted(set_id, 2) in h.events


def test_owner_and_editors_rename_a_set_and_readers_may_not(h: Harness, alice: Actor, bob: Actor) -> None:
    carol = Actor("carol")
    h.do(carol.register())
    set_id, cmd = alice.create("scans", visibility="cluster")
    h.do(cmd)
    h.do(alice.cmd("grant_editor", set_id=set_id, key_id=bob.key_id))
    h.events.clear()
    assert h.do(alice.cmd("rename_set", set_id=set_id, name="CT scans", description="from the lab")) == {
        "name": "CT scans"
    }
    assert (h.state.sets[set_id].name, h.state.sets[set_id].description) == ("CT scans", "from the lab")
    assert h.events == [SetChanged(set_id)]
    h.do(bob.cmd("rename_set", set_id=set_id, name="CT scans, cleaned"))  # an editor may
    rs = h.state.sets[set_id]
    assert (rs.name, rs.description) == ("CT scans, cleaned", "from the lab")  # description kept
    h.do(bob.cmd("rename_set", set_id=set_id, name="CT", description=""))  # and cleared
    assert (h.state.sets[set_id].name, h.state.sets[set_id].description) == ("CT", "")
    # carol reads the set (cluster visibility) but does not edit it.
    with pytest.raises(PermissionDenied, match="not an editor"):
        h.do(carol.cmd("rename_set", set_id=set_id, name="mine now"))
    h.do(alice.cmd("set_visibility", set_id=set_id, visibility="private"))
    with pytest.raises(NotFound):  # a set carol cannot see is not there for her
        h.do(carol.cmd("rename_set", set_id=set_id, name="mine now"))
    assert h.state.sets[set_id].name == "CT"


@pytest.mark.parametrize("name", ["", "   ", "x" * 1000, None, 7])
def test_a_set_is_not_renamed_to_a_blank_or_malformed_name(h: Harness, alice: Actor, name: object) -> None:
    set_id, cmd = alice.create("scans")
    h.do(cmd)
    h.events.clear()
    args = {"set_id": set_id} if name is None else {"set_id": set_id, "name": name}
    with pytest.raises(ValidationError, match="name must be text"):
        h.do(alice.cmd("rename_set", **args))
    with pytest.raises(ValidationError, match="description must be text"):
        h.do(alice.cmd("rename_set", set_id=set_id, name="ok", description=3))
    assert h.state.sets[set_id].name == "scans" and h.events == []


def test_commit_on_a_stale_head_is_a_conflict_with_the_current_head(
    h: Harness, alice: Actor, bob: Actor
) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    h.do(alice.cmd("grant_editor", set_id=set_id, key_id=bob.key_id))
    h.do(alice.commit(set_id, None))
    h.do(bob.commit(set_id, 1))
    with pytest.raises(ConflictError, match="at version 2, not 1") as info:
        h.do(alice.commit(set_id, 1))
    assert info.value.current_head == 2
    assert h.state.sets[set_id].head == 2


def test_permissions(h: Harness, alice: Actor, bob: Actor) -> None:
    carol = Actor("carol")
    h.do(carol.register())
    set_id, cmd = alice.create("private one")
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    # Private: others cannot even see it.
    with pytest.raises(NotFound):
        h.do(bob.commit(set_id, 1))
    with pytest.raises(NotFound):
        h.do(bob.cmd("follow", set_id=set_id))
    # Editors may commit, nothing more.
    h.do(alice.cmd("grant_editor", set_id=set_id, key_id=bob.key_id))
    h.do(bob.commit(set_id, 1))
    for op, args, what in [
        ("delete_set", {}, "delete"),
        ("set_visibility", {"visibility": "public"}, "change who can see"),
        ("grant_editor", {"key_id": carol.key_id}, "manage its editors"),
        ("publish_version", {"version": 1, "title": "t"}, "publish"),
    ]:
        with pytest.raises(PermissionDenied, match=f"only the owner .* may {what}"):
            h.do(bob.cmd(op, set_id=set_id, **args))
    # Cluster visibility: everyone reads and follows; only public sets are forked by others.
    h.do(alice.cmd("set_visibility", set_id=set_id, visibility="cluster"))
    h.do(carol.cmd("follow", set_id=set_id))
    assert carol.key_id in h.state.sets[set_id].followers
    with pytest.raises(PermissionDenied, match="not public"):
        h.do(carol.cmd("duplicate_set", source_id=set_id, set_id="c" * 32, name=""))
    with pytest.raises(PermissionDenied, match="not an editor"):
        h.do(carol.commit(set_id, 2))
    h.do(alice.cmd("revoke_editor", set_id=set_id, key_id=bob.key_id))
    with pytest.raises(PermissionDenied):
        h.do(bob.commit(set_id, 2))


def test_fork_records_provenance(h: Harness, alice: Actor, bob: Actor) -> None:
    set_id, cmd = alice.create("public one", visibility="public")
    h.do(cmd)
    h.do(alice.commit(set_id, None, message="v1"))
    h.do(alice.commit(set_id, 1, message="v2"))
    fork_id = "f" * 32
    assert h.do(bob.cmd("duplicate_set", source_id=set_id, version=1, set_id=fork_id, name="")) == {
        "set_id": fork_id,
        "version": 1,
    }
    fork = h.state.sets[fork_id]
    assert fork.owner == bob.key_id and fork.forked_from == (set_id, 1) and fork.name == "public one (fork)"
    (first,) = h.state.versions[fork_id]
    original = h.state.versions[set_id][0]
    assert first.selection == original.selection and first.manifest_id == original.manifest_id
    assert first.author == bob.key_id and "forked from" in first.message
    with pytest.raises(ConflictError, match="exists already"):
        h.do(bob.cmd("duplicate_set", source_id=set_id, set_id=fork_id, name="x"))


def test_published_versions_never_change_and_block_deletion(h: Harness, alice: Actor) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    h.do(alice.cmd("publish_version", set_id=set_id, version=1, title="LIDC CT", creators=["A. Author"]))
    record = h.state.published[(set_id, 1)]
    assert record.title == "LIDC CT" and record.creators == ("A. Author",)
    with pytest.raises(ImmutableError, match="published and can never change"):
        h.do(alice.cmd("publish_version", set_id=set_id, version=1, title="Other title"))
    with pytest.raises(PermissionDenied, match="can never be deleted; make it private"):
        h.do(alice.cmd("delete_set", set_id=set_id))
    # The set goes on with new versions; the published one stays as it was.
    h.do(alice.commit(set_id, 1, message="after publication"))
    assert h.state.published[(set_id, 1)] == record
    assert h.state.versions[set_id][0].message == ""
    with pytest.raises(NotFound):
        h.do(alice.cmd("publish_version", set_id=set_id, version=9, title="t"))


METADATA = {
    "title": "LIDC CT subset",
    "creators": [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0097"}],
    "publisher": "Lab of Imaging",
    "year": 2026,
}


def test_a_doi_is_queued_with_its_metadata_and_minted_once_by_its_publisher(
    h: Harness, alice: Actor, bob: Actor
) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    bad = {**METADATA, "creators": [{"name": "Doe, Jane", "orcid": "0000-0002-1825-0098"}], "year": 1200}
    with pytest.raises(ValidationError, match=r"orcid.*check digit.*year"):
        h.do(alice.cmd("publish_version", set_id=set_id, version=1, metadata=bad, service="datacite"))
    with pytest.raises(ValidationError, match=r"a DOI needs its metadata"):
        h.do(alice.cmd("publish_version", set_id=set_id, version=1, title="t", service="zenodo"))
    h.do(alice.cmd("publish_version", set_id=set_id, version=1, metadata=METADATA, service="zenodo"))
    record = h.state.published[(set_id, 1)]
    assert (record.title, record.creators, record.doi_state, record.minting) == (
        "LIDC CT subset", ("Doe, Jane",), "queued", True
    )  # fmt: skip
    # Steps survive for the next try; only the publisher's node records them.
    h.do(
        alice.cmd(
            "record_mint", set_id=set_id, version=1, steps={"deposition": "7"}, error="503 (next try in 30 s)"
        )
    )
    with pytest.raises(PermissionDenied, match=r"only its publisher"):
        h.do(bob.cmd("record_mint", set_id=set_id, version=1, state="findable", doi="10.5281/zenodo.8"))
    record = h.state.published[(set_id, 1)]
    assert (
        dict(record.steps) == {"deposition": "7"} and record.attempts == 1 and "publishing" in record.status()
    )
    doi = "10.5281/zenodo.8"
    h.do(
        alice.cmd(
            "record_mint", set_id=set_id, version=1, steps={"doi": doi}, state="findable", doi=doi, error=""
        )
    )
    record = h.state.published[(set_id, 1)]
    assert record.status() == "DOI 10.5281/zenodo.8" and dict(record.steps) == {
        "deposition": "7",
        "doi": "10.5281/zenodo.8",
    }
    with pytest.raises(ImmutableError, match=r"has its DOI"):
        h.do(alice.cmd("record_mint", set_id=set_id, version=1, state="findable", doi="10.5281/zenodo.9"))


def test_delete_and_drift(h: Harness, alice: Actor) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    h.do(alice.cmd("record_drift", set_id=set_id, version=1, manifest_id=EMPTY.id, summary="+5 series"))
    assert h.state.drift[(set_id, 1)].summary == "+5 series"
    assert h.state.checks[set_id].ok_time > 0
    h.do(alice.cmd("delete_set", set_id=set_id))
    assert set_id not in h.state.sets
    with pytest.raises(NotFound):
        h.do(alice.commit(set_id, 1))


def test_checks_drift_and_declines_from_any_member(h: Harness, alice: Actor, bob: Actor) -> None:
    """The member that checks for the cluster records what it found, even for a private set it
    may not read; declining is per user; a failure keeps the last good check's time."""
    set_id, cmd = alice.create()  # private
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    h.do(bob.cmd("record_checks", checks=[[set_id, 1, ""], ["f" * 32, 1, ""], [set_id, 9, ""]]))
    ok = h.state.checks[set_id]
    assert ok.by == bob.key_id and ok.error == "" and ok.ok_time == ok.time
    h.do(bob.cmd("record_checks", checks=[[set_id, 1, "TCIA: 503 Service Unavailable"]]))
    failed = h.state.checks[set_id]
    assert failed.error.startswith("TCIA") and failed.ok_time == ok.ok_time
    for bad in ([[set_id, "1", ""]], [[set_id, 1]], "x", [[set_id, 1, ""]] * 201):
        with pytest.raises(ValidationError):
            h.do(bob.cmd("record_checks", checks=bad))
    h.do(bob.cmd("record_drift", set_id=set_id, version=1, manifest_id=EMPTY.id, summary="+1 series"))
    assert h.state.drift[(set_id, 1)].by == bob.key_id
    with pytest.raises(NotFound):  # bob may record, not decline, what he cannot read
        h.do(bob.cmd("dismiss_drift", set_id=set_id, version=1, manifest_id=EMPTY.id))
    with pytest.raises(ConflictError, match="no such update"):
        h.do(alice.cmd("dismiss_drift", set_id=set_id, version=1, manifest_id="0" * 64))
    h.do(alice.cmd("dismiss_drift", set_id=set_id, version=1, manifest_id=EMPTY.id))
    assert h.state.drift[(set_id, 1)].dismissed == {alice.key_id}
    with pytest.raises(NotFound, match="not in the store"):
        h.do(bob.cmd("record_drift", set_id=set_id, version=1, manifest_id="0" * 64, summary=""))


def test_manifest_upload_checks_order_and_hash(h: Harness, alice: Actor) -> None:
    b = ManifestBuilder()
    for i in range(3000):
        b.add("idc", ("c", f"p{i}", "s", f"1.2.{i}"), size=i + 1, version=f"v{i:040d}")
    manifest = b.build()
    commands = alice.manifest_commands(manifest, max_bytes=2000)
    assert len(commands) > 5
    # A commit before all chunks arrived is refused.
    h.do_all(commands[:3])
    with pytest.raises(ConflictError, match="incomplete"):
        h.do(alice.cmd("commit_manifest", manifest_id=manifest.id))
    # Out of order (a fresh envelope: a refused one stays refused when sent again).
    early = parse(commands[4])
    with pytest.raises(ConflictError, match="expected chunk 3"):
        h.do(alice.cmd("put_manifest_chunk", early.payload, **early.args))
    h.do_all(commands[3:])
    assert manifest.id in h.state.manifests
    # A second upload of the same manifest is a no-op.
    assert h.do_all(alice.manifest_commands(manifest, max_bytes=2000))[-1] == {
        "manifest_id": manifest.id,
        "new": False,
    }
    # Chunks that do not make the claimed manifest.
    other = ManifestBuilder().build()
    lying = alice.manifest_commands(manifest, max_bytes=2000)
    forged = [
        alice.cmd(
            "put_manifest_chunk",
            parse(c).payload,
            manifest_id=other.id.replace("a", "b"),
            index=i,
            total=len(lying) - 1,
        )
        for i, c in enumerate(lying[:-1])
    ]
    h.do_all(forged)
    with pytest.raises(IntegrityError, match="do not make manifest"):
        h.do(alice.cmd("commit_manifest", manifest_id=other.id.replace("a", "b")))
    set_id, cmd = alice.create()
    h.do(cmd)
    with pytest.raises(NotFound, match="upload it first"):
        h.do(alice.commit(set_id, None, manifest_id="0" * 64))


def test_upload_survives_a_dump_and_restore_midway(h: Harness, alice: Actor) -> None:
    b = ManifestBuilder()
    for i in range(2000):
        b.add("idc", ("c", f"p{i}", "s", f"1.2.{i}"), size=i + 1)
    manifest = b.build()
    commands = alice.manifest_commands(manifest, max_bytes=1500)
    h.do_all(commands[:4])
    restored = StoreState.from_dump(pickle.loads(pickle.dumps(h.state.to_dump())))
    for command in commands[4:]:
        unwrap(restored.apply(command))
    assert manifest.id in restored.manifests


def test_a_selection_too_large_for_one_command_is_committed_from_chunks(h: Harness, alice: Actor) -> None:
    """An imported manifest of thousands of files: its selection goes in chunks, named by its hash."""
    selection = Selection.of(
        *(Pointer.of("gdc", "TCGA", "TCGA-LUAD", f"case-{i}", f"{i:08x}.tsv") for i in range(3000))
    )
    data = canonical_json(selection.to_json())
    assert len(data) > MAX_COMMAND_BYTES
    selection_id = hashlib.sha256(data).hexdigest()
    packed = zstandard.ZstdCompressor().compress(data)
    chunks = [packed[i : i + 8000] for i in range(0, len(packed), 8000)]
    set_id, cmd = alice.create()
    h.do(cmd)

    def commit() -> bytes:
        return alice.cmd(
            "commit_version",
            set_id=set_id,
            expected_head=None,
            selection_id=selection_id,
            manifest_id=EMPTY.id,
        )

    def put(selection_id: str) -> list[bytes]:
        return [
            alice.cmd("put_selection_chunk", c, selection_id=selection_id, index=i, total=len(chunks))
            for i, c in enumerate(chunks)
        ]

    h.do_all(put(selection_id)[:-1])
    with pytest.raises(ConflictError, match=r"incomplete"):
        h.do(commit())
    h.do_all(put(selection_id))
    restored = StoreState.from_dump(pickle.loads(pickle.dumps(h.state.to_dump())))  # midway uploads survive
    assert unwrap(restored.apply(commit())) == {"set_id": set_id, "version": 1}
    assert restored.versions[set_id][0].selection == selection
    # Chunks that are not what the id names are refused, and nothing is committed.
    forged = hashlib.sha256(b"other").hexdigest()
    h.do_all(put(forged))
    with pytest.raises(ValidationError, match=r"does not match its id"):
        h.do(
            alice.cmd(
                "commit_version", set_id=set_id, expected_head=None, selection_id=forged, manifest_id=EMPTY.id
            )
        )
    assert h.state.sets[set_id].head is None


# -- attacks ---------------------------------------------------------------------------------------
def test_forged_signature_is_rejected(h: Harness, alice: Actor, bob: Actor) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    good = alice.cmd("delete_set", set_id=set_id)
    forged = good[:4] + bytes(64) + good[68:]
    with pytest.raises(PermissionDenied, match="signature does not match"):
        h.do(forged)
    # Bob signs a command that claims Alice as its author.
    claims = bob.cmd("delete_set", set_id=set_id).replace(bob.key_id.encode(), alice.key_id.encode())
    with pytest.raises(PermissionDenied, match="signature does not match"):
        h.do(claims)
    tampered = bytearray(good)
    tampered[-3] ^= 1  # "time": 1700000000.0 becomes ...0.1: well formed, only the signature tells
    with pytest.raises(PermissionDenied, match=r"^the signature does not match the command"):
        h.do(bytes(tampered))
    assert set_id in h.state.sets


def test_replayed_envelope_is_applied_once(h: Harness, alice: Actor, bob: Actor) -> None:
    set_id, cmd = alice.create(visibility="cluster")
    h.do(cmd)
    commit = alice.commit(set_id, None)
    assert h.do(commit) == {"set_id": set_id, "version": 1}
    # The very same envelope again (a client's retry, or an attacker's replay): same answer, no effect.
    assert h.do(commit) == {"set_id": set_id, "version": 1}
    assert len(h.state.versions[set_id]) == 1
    # Another command under a used sequence number.
    seq = parse(commit).seq
    from mediator_desktop.core.commands import seal

    reused = seal(alice.identity, "follow", {"set_id": set_id}, seq, alice.when)
    with pytest.raises(ReplayError, match="used before"):
        h.do(reused)
    too_old = seal(alice.identity, "follow", {"set_id": set_id}, seq - 700 * 10**9, alice.when)
    with pytest.raises(ReplayError, match="too old"):
        h.do(too_old)


def test_unknown_author_is_rejected(h: Harness, alice: Actor) -> None:
    stranger = Actor("stranger")
    _, cmd = stranger.create()
    with pytest.raises(PermissionDenied, match="unknown author"):
        h.do(cmd)
    assert not h.state.sets
    # Registering someone else's key under your own signature fails too.
    fake = stranger.cmd("register_user", public_key=alice.identity.public_key.hex(), display_name="me")
    with pytest.raises(PermissionDenied, match="does not match the public key"):
        h.do(fake)


def test_a_ten_megabyte_command_is_refused(h: Harness, alice: Actor) -> None:
    with pytest.raises(ValidationError, match="fit in one replicated command"):
        alice.cmd("put_manifest_chunk", b"x" * 10_000_000, manifest_id="a" * 64, index=0, total=1)
    raw = MAGIC + bytes(64) + canonical_json({}) + b"\n" + b"x" * 10_000_000
    with pytest.raises(ValidationError, match="at most 60000"):
        h.do(raw)


@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_cleanly(data: bytes) -> None:
    state = StoreState()
    for command in (data, MAGIC + data, MAGIC + bytes(64) + data):
        result = state.apply(command)
        assert result[0] == "err"
    assert not state.sets and not state.users


header_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "op": st.sampled_from(["create_set", "commit_version", "nope", "register_user"]) | header_values,
            "args": st.dictionaries(
                st.sampled_from(["set_id", "name", "visibility", "public_key"]), header_values
            ),
            "author": st.text(alphabet="0123456789abcdef", min_size=32, max_size=32) | header_values,
            "seq": st.integers(-5, 10**20) | header_values,
            "time": st.floats(allow_nan=False) | header_values,
        },
    )
)
def test_malformed_envelopes_are_rejected_on_every_node(header: dict[str, Any]) -> None:
    alice = Actor("alice")
    states = [StoreState(), StoreState()]
    for state in states:
        unwrap(state.apply(alice.register()))
    try:
        body = canonical_json(header)
    except ValueError:
        body = json.dumps(header).encode()
    signed = body + b"\n"
    command = MAGIC + alice.identity.sign(signed) + signed
    results = [state.apply(command) for state in states]
    assert results[0] == results[1]
    assert results[0][0] == "err"
    assert all(not s.sets for s in states)


def test_apply_is_deterministic(h: Harness, alice: Actor, bob: Actor) -> None:
    set_id, cmd = alice.create(visibility="public")
    h.do(cmd)
    for head in (None, 1, 2):
        h.do(alice.commit(set_id, head))
    h.raw(bob.commit(set_id, 3))  # refused: not an editor
    h.do(bob.cmd("duplicate_set", source_id=set_id, set_id="e" * 32, name="mine"))
    replica = StoreState()
    results = [replica.apply(c) for c in h.log]
    assert replica.to_dump() == h.state.to_dump()
    assert results[-1] == ("ok", {"set_id": "e" * 32, "version": 1})


#: Arguments each operation accepts; the property test below changes one or two of them.
VALID_ARGS: dict[str, dict[str, Any]] = {
    "register_user": {"public_key": "KEY", "display_name": "alice"},
    "create_set": {"set_id": "NEW", "name": "n", "visibility": "private"},
    "commit_version": {
        "set_id": "SET", "expected_head": 1, "selection": "RULES", "manifest_id": "MANIFEST", "message": "",
    },
    "rename_set": {"set_id": "SET", "name": "renamed", "description": ""},
    "delete_set": {"set_id": "SET"},
    "duplicate_set": {"source_id": "SET", "set_id": "NEW", "name": "fork"},
    "set_visibility": {"set_id": "SET", "visibility": "cluster"},
    "grant_editor": {"set_id": "SET", "key_id": "USER"},
    "revoke_editor": {"set_id": "SET", "key_id": "USER"},
    "follow": {"set_id": "SET"},
    "unfollow": {"set_id": "SET"},
    "put_manifest_chunk": {"manifest_id": "MANIFEST", "index": 0, "total": 1},
    "commit_manifest": {"manifest_id": "MANIFEST"},
    "publish_version": {"set_id": "SET", "version": 1, "title": "t", "creators": ["a"], "description": ""},
    "record_drift": {
        "set_id": "SET", "version": 1, "manifest_id": "MANIFEST", "summary": "", "state": "IDC v25",
        "notes": ["n"], "added": 1, "revised": 0, "removed": 0, "removed_id": "MANIFEST",
    },
    "record_checks": {"checks": [["SET", 1, ""]]},
    "dismiss_drift": {"set_id": "SET", "version": 1, "manifest_id": "MANIFEST"},
    "put_table_chunk": {"table_id": "TABLE", "index": 0, "total": 1},
    "put_selection_chunk": {"selection_id": "TABLE", "index": 0, "total": 1},
    "record_mint": {"set_id": "SET", "version": 1, "steps": {"doi": "10.80000/x"}, "state": "queued"},
    "commit_table": {
        "name": "clinical", "table_id": "TABLE", "key_column": "PatientID", "columns": ["PatientID", "age"],
        "rows": 2, "filename": "clinical.csv",
    },
}  # fmt: skip
rules = st.lists(
    st.fixed_dictionaries(
        {"include": st.booleans()},
        optional={
            "source": st.sampled_from(["idc", ""]) | header_values,
            "path": st.lists(st.sampled_from(["nlst", ""]) | header_values, max_size=3) | header_values,
            "filters": st.dictionaries(st.sampled_from(["Modality", ""]), header_values, max_size=2)
            | header_values,
        },
    ),
    max_size=3,
)
special = st.sampled_from(["SET", "NEW", "USER", "MANIFEST", " ", "", "x" * 300, 1, -1, 2**63, 1.5, [], {}])
arg_values = special | special | header_values | rules


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=100)
@given(data=st.data(), payload=st.binary(max_size=64))
def test_any_signed_command_gets_an_answer_the_same_on_every_node(
    op: str, data: st.DataObject, payload: bytes
) -> None:
    """Whatever its arguments, a signed command is applied or refused, never raises: an exception
    out of apply would stop the log at that entry on every node, for good."""
    names = st.sampled_from(sorted(VALID_ARGS[op])) | st.sampled_from(
        sorted({k for a in VALID_ARGS.values() for k in a})
    )
    changed = data.draw(st.dictionaries(names, arg_values | st.none(), min_size=1, max_size=2))
    alice, bob = Actor("alice"), Actor("bob")
    set_id, create = alice.create(visibility="public")
    setup = [alice.register(), bob.register(), *alice.manifest_commands(), create, alice.commit(set_id, None)]
    named: dict[str, Any] = {
        "SET": set_id, "NEW": "f" * 32, "USER": bob.key_id, "MANIFEST": EMPTY.id, "RULES": SELECTION,
        "KEY": alice.identity.public_key.hex(), "TABLE": hashlib.sha256(payload).hexdigest(),
    }  # fmt: skip
    args = {
        k: named.get(v, v) if isinstance(v, str) else v
        for k, v in {**VALID_ARGS[op], **changed}.items()
        if v is not None or k not in changed  # None drops an argument
    }
    try:
        command = alice.cmd(op, payload, **args)
    except ValidationError:
        return  # refused before signing
    states = [StoreState(), StoreState()]
    for state in states:
        for c in setup:
            unwrap(state.apply(c))
    results = [state.apply(command) for state in states]
    assert results[0] == results[1]
    assert results[0][0] in ("ok", "err")
    assert pickle.dumps(states[0].to_dump()) == pickle.dumps(states[1].to_dump())


def test_a_blank_fork_name_takes_the_source_name(h: Harness, alice: Actor, bob: Actor) -> None:
    set_id, cmd = alice.create("scans", visibility="public")
    h.do(cmd)
    h.do(alice.commit(set_id, None))
    fork = h.do(bob.cmd("duplicate_set", source_id=set_id, set_id="f" * 32, name=" "))
    assert h.state.sets[fork["set_id"]].name == "scans (fork)"


def test_a_filter_value_that_is_not_text_is_refused(h: Harness, alice: Actor) -> None:
    set_id, cmd = alice.create()
    h.do(cmd)
    rule = {"include": True, "source": "idc", "filters": {"Modality": 1}}
    with pytest.raises(ValidationError, match="filter 'Modality' takes text"):
        h.do(
            alice.cmd(
                "commit_version",
                set_id=set_id,
                expected_head=None,
                selection=[rule],
                manifest_id=EMPTY.id,
                message="",
            )
        )


@pytest.mark.parametrize("depth", [33, 999, 1000, 5000])
def test_a_deeply_nested_header_is_refused_before_decoding(depth: int) -> None:
    """json.loads would recurse to the interpreter's limit, which depends on the stack, not on
    the command: a depth near it could pass on one node and fail on another."""
    header = b'{"args":' + b"[" * depth + b"]" * depth + b"}"
    result = StoreState().apply(MAGIC + bytes(64) + header + b"\n")
    assert result[:3] == ("err", "validation", f"command header nests more than {MAX_DEPTH} levels deep")


def test_seal_refuses_arguments_nested_too_deeply() -> None:
    nested: list[Any] = []
    for _ in range(MAX_DEPTH):
        nested = [nested]
    with pytest.raises(ValidationError, match="nest more than"):
        Actor("alice").cmd("create_set", set_id="a" * 32, name="x", visibility="private", deep=nested)


def test_a_decompression_bomb_is_refused_at_once(h: Harness, bob: Actor) -> None:
    """32 KB that unpack to 1 GiB: refused after at most 16 MiB of work, not after all of it."""
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(1 << 30))
    start = time.process_time()
    with pytest.raises(ValidationError, match="a chunk unpacks to more than 16777216 bytes"):
        h.do(bob.cmd("put_manifest_chunk", bomb[:40_000], manifest_id="ab" * 32, index=0, total=2))
    assert time.process_time() - start < 1.0  # the whole bomb takes about 10 s here
    assert not h.state._uploads


def test_a_chunk_asking_for_a_huge_window_is_refused(h: Harness, bob: Actor) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=27)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()  # size unknown: window kept
    data = stream.compress(os.urandom(1 << 20)) + stream.flush()
    with pytest.raises(IntegrityError, match=r"not zstd data we read .*too much memory"):
        h.do(bob.cmd("put_manifest_chunk", data[:40_000], manifest_id="ab" * 32, index=0, total=30))


# -- clinical tables -------------------------------------------------------------------------------
def table_commands(
    actor: Actor,
    blob: bytes,
    name: str = "clinical",
    *,
    size: int = 1000,
    columns: tuple[str, ...] = ("PatientID", "age"),
    **args: Any,
) -> list[bytes]:
    """What ``Clinical.add`` sends: the stored form in chunks, then the commit."""
    table_id = hashlib.sha256(blob).hexdigest()
    chunks = [blob[i : i + size] for i in range(0, len(blob), size)]
    out = [
        actor.cmd("put_table_chunk", chunk, table_id=table_id, index=i, total=len(chunks))
        for i, chunk in enumerate(chunks)
    ]
    commit = {
        "name": name, "table_id": table_id, "key_column": columns[0], "columns": list(columns), "rows": 3,
        "filename": f"{name}.csv", **args,
    }  # fmt: skip
    out.append(actor.cmd("commit_table", **commit))
    return out


def test_a_table_is_stored_in_chunks_and_versioned_by_name(h: Harness, alice: Actor, bob: Actor) -> None:
    first, second = os.urandom(5000), os.urandom(3500)
    h.events.clear()
    assert h.do_all(table_commands(alice, first))[-1] == {
        "name": "clinical",
        "version": 1,
        "table_id": hashlib.sha256(first).hexdigest(),
        "new": True,
    }
    v1 = h.state.tables["clinical"][0]
    assert (v1.number, v1.key_column, v1.columns, v1.rows, v1.filename, v1.author, v1.time) == (
        1, "PatientID", ("PatientID", "age"), 3, "clinical.csv", alice.key_id, alice.when,
    )  # fmt: skip
    assert b"".join(h.state.table_blobs[v1.table_id]) == first
    assert len(h.state.table_blobs[v1.table_id]) == 5
    assert h.events == [TableAdded("clinical", 1)]
    # The same content again, by anyone: no new version, the latest one answers.
    h.events.clear()
    assert h.do_all(table_commands(bob, first))[-1]["new"] is False
    assert len(h.state.tables["clinical"]) == 1 and h.events == [] and not h.state._table_uploads
    # Other content under the same name: version 2, by any member.
    assert h.do_all(table_commands(bob, second, columns=("Case ID", "stage", "age")))[-1]["version"] == 2
    assert [v.author for v in h.state.tables["clinical"]] == [alice.key_id, bob.key_id]
    assert h.events == [TableAdded("clinical", 2)]
    # Content the store holds already needs no chunks, under another name too; going back to
    # version 1's content is a new version, not a no-op (only the latest counts).
    commit = table_commands(alice, first, name="trial")[-1]
    assert h.do(commit) == {"name": "trial", "version": 1, "table_id": v1.table_id, "new": True}
    assert h.do(table_commands(alice, first)[-1])["version"] == 3
    assert len(h.state.table_blobs) == 2


def test_forged_incomplete_or_disordered_chunks_register_nothing(h: Harness, alice: Actor) -> None:
    blob = os.urandom(4000)
    commands = table_commands(alice, blob)
    h.do_all(commands[:2])
    with pytest.raises(ConflictError, match="incomplete"):  # two chunks of four
        h.do(commands[-1])
    late = parse(commands[3])
    with pytest.raises(ConflictError, match="expected chunk 2"):
        h.do(alice.cmd("put_table_chunk", late.payload, **late.args))
    assert "clinical" not in h.state.tables and not h.state.table_blobs
    # Chunks that do not make the content their id names: refused, and the upload dropped.
    other = hashlib.sha256(b"something else").hexdigest()
    forged = [
        alice.cmd("put_table_chunk", parse(c).payload, table_id=other, index=i, total=4)
        for i, c in enumerate(commands[:4])
    ]
    h.do_all(forged)
    with pytest.raises(IntegrityError, match="do not make table"):
        h.do(alice.cmd("commit_table", **{**parse(commands[-1]).args, "table_id": other}))
    assert "clinical" not in h.state.tables and not h.state.table_blobs
    assert (alice.key_id, other) not in h.state._table_uploads
    # The honest upload, from its first chunk again, goes through.
    assert h.do_all(table_commands(alice, blob))[-1]["version"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": ""}, "table name is empty"),
        ({"name": "a/b"}, r"holds a '/' or a control character"),
        ({"name": "bad\x07name"}, r"holds a '/' or a control character"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": " padded"}, "starts or ends with a space"),
        ({"name": 5}, "must be text"),
        ({"key_column": "nope"}, "key column 'nope' is not one of the columns"),
        ({"columns": ["PatientID", "PatientID"]}, "column names repeat"),
        ({"columns": []}, "columns must be a list"),
        ({"columns": ["PatientID", ""]}, "columns must be a list"),
        ({"columns": "PatientID"}, "columns must be a list"),
        ({"rows": -1}, "rows must be a whole number"),
        ({"table_id": "abc"}, "table_id must be a sha256"),
    ],
)
def test_a_table_commit_with_bad_arguments_is_refused(
    h: Harness, alice: Actor, args: dict[str, Any], message: str
) -> None:
    commands = table_commands(alice, b"x" * 10)
    h.do_all(commands[:-1])
    with pytest.raises(ValidationError, match=message):
        h.do(alice.cmd("commit_table", **{**parse(commands[-1]).args, **args}))
    assert not h.state.tables and not h.state.table_blobs
    assert h.do(alice.cmd("commit_table", **parse(commands[-1]).args))["new"]  # the upload waited


def test_table_chunks_are_bounded(h: Harness, alice: Actor) -> None:
    table_id = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ValidationError, match="out of range"):
        h.do(alice.cmd("put_table_chunk", b"x", table_id=table_id, index=0, total=10**6))
    with pytest.raises(ValidationError, match="out of range"):
        h.do(alice.cmd("put_table_chunk", b"x", table_id=table_id, index=3, total=3))
    with pytest.raises(ValidationError, match="holds 1 to"):
        h.do(alice.cmd("put_table_chunk", b"", table_id=table_id, index=0, total=1))
    # Uploads never committed do not pile up: an author's oldest is dropped.
    ids = [hashlib.sha256(bytes([i])).hexdigest() for i in range(MAX_TABLE_UPLOADS + 2)]
    for table_id in ids:
        h.do(alice.cmd("put_table_chunk", b"x", table_id=table_id, index=0, total=2))
    assert [k[1] for k in h.state._table_uploads] == ids[-MAX_TABLE_UPLOADS:]


def test_tables_survive_a_dump_and_restore_even_midway(h: Harness, alice: Actor) -> None:
    h.do_all(table_commands(alice, os.urandom(3000)))
    pending = table_commands(alice, os.urandom(3000), name="trial")
    h.do_all(pending[:2])
    restored = StoreState.from_dump(pickle.loads(pickle.dumps(h.state.to_dump())))
    assert restored.tables == h.state.tables and restored.table_blobs == h.state.table_blobs
    for command in pending[2:]:
        unwrap(restored.apply(command))
    assert [v.number for v in restored.tables["trial"]] == [1]
    # A dump written before tables existed reads as a store without tables.
    old = {k: v for k, v in h.state.to_dump().items() if k not in ("tables", "table_blobs", "table_uploads")}
    assert StoreState.from_dump(old).tables == {}


def test_table_commands_apply_the_same_on_every_node(h: Harness, alice: Actor, bob: Actor) -> None:
    blob = os.urandom(2500)
    h.do_all(table_commands(alice, blob))
    h.raw(table_commands(bob, os.urandom(100))[-1])  # refused: no chunks
    h.do_all(table_commands(bob, blob, name="trial"))
    h.do_all(table_commands(bob, os.urandom(2000)))
    replica = StoreState()
    for command in h.log:
        replica.apply(command)
    assert pickle.dumps(replica.to_dump()) == pickle.dumps(h.state.to_dump())
