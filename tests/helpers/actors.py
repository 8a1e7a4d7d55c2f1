"""Users that sign commands, for tests that drive the store's state machine or a cluster."""

from __future__ import annotations

from typing import Any

from mediator_desktop.core.commands import SeqClock, seal
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import new_set_id
from mediator_desktop.core.selection import Selection

EMPTY = ManifestBuilder().build()
SELECTION = Selection.of(Pointer.of("idc", "nlst", Modality="CT")).to_json()


class Actor:
    """One user: seals commands with increasing sequence numbers and a fixed clock."""

    def __init__(self, name: str, when: float = 1_700_000_000.0) -> None:
        self.identity = Identity.generate(name)
        self.name = name
        self.when = when
        self._seq = SeqClock()

    @property
    def key_id(self) -> str:
        return self.identity.key_id

    def cmd(self, op: str, payload: bytes = b"", **args: Any) -> bytes:
        return seal(self.identity, op, args, self._seq.next(), self.when, payload)

    def register(self) -> bytes:
        return self.cmd("register_user", public_key=self.identity.public_key.hex(), display_name=self.name)

    def create(
        self, name: str = "set", visibility: str = "private", set_id: str | None = None
    ) -> tuple[str, bytes]:
        set_id = set_id or new_set_id()
        return set_id, self.cmd("create_set", set_id=set_id, name=name, visibility=visibility)

    def manifest_commands(self, manifest: Manifest = EMPTY, max_bytes: int = 48 * 1024) -> list[bytes]:
        chunks = manifest.chunks(max_bytes)
        out = [
            self.cmd("put_manifest_chunk", chunk, manifest_id=manifest.id, index=i, total=len(chunks))
            for i, chunk in enumerate(chunks)
        ]
        out.append(self.cmd("commit_manifest", manifest_id=manifest.id))
        return out

    def commit(self, set_id: str, head: int | None, manifest_id: str = EMPTY.id, message: str = "") -> bytes:
        return self.cmd(
            "commit_version",
            set_id=set_id,
            expected_head=head,
            selection=SELECTION,
            manifest_id=manifest_id,
            message=message,
        )
