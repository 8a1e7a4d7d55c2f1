from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.identity import KEY_FILE, Identity, key_id_of, verify


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps secrets in memory (as a desktop's would, minus the disk)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.secrets[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_signatures_verify_and_forgeries_do_not() -> None:
    alice, bob = Identity.generate("alice"), Identity.generate("bob")
    sig = alice.sign(b"hello")
    assert verify(alice.public_key, sig, b"hello")
    assert not verify(alice.public_key, sig, b"hellO")
    assert not verify(bob.public_key, sig, b"hello")
    assert not verify(alice.public_key, b"\0" * 64, b"hello")
    assert not verify(b"short", sig, b"hello")
    assert alice.key_id == key_id_of(alice.public_key) and len(alice.key_id) == 32
    assert alice.key_id != bob.key_id


def test_without_keyring_the_key_goes_to_a_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        first = Identity.load_or_create(tmp_path, "alice")
    assert "no OS keyring available" in caplog.text
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = Identity.load_or_create(tmp_path, "alice")
    assert again.key_id == first.key_id


def test_with_a_keyring_no_file_is_written(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    first = Identity.load_or_create(tmp_path, "alice")
    assert not (tmp_path / KEY_FILE).exists()
    assert len(memory_keyring.secrets) == 1
    assert Identity.load_or_create(tmp_path, "alice").key_id == first.key_id
    other = Identity.load_or_create(tmp_path / "other-node", "alice")
    assert other.key_id != first.key_id


def test_damaged_or_exposed_key_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    identity = Identity.load_or_create(tmp_path, "alice")
    key_file = tmp_path / KEY_FILE
    key_file.chmod(0o644)
    assert Identity.load_or_create(tmp_path, "alice").key_id == identity.key_id
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text
    key_file.write_text("not hex")
    with pytest.raises(ValidationError, match="damaged"):
        Identity.load_or_create(tmp_path, "alice")
