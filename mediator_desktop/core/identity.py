"""Who signs: an Ed25519 key pair per user of a node, created on first start.

The private key lives in the OS keyring (``keyring``). Where no keyring backend exists (headless
servers, CI), it lives in a file readable only by its owner (0600) under the data folder, and a
warning says so. The key id, a fingerprint of the public key, names the user everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.errors
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mediator_desktop.core.errors import ValidationError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "mediator-desktop"
KEY_FILE = "identity.key"


def key_id_of(public_key: bytes) -> str:
    """The fingerprint that names a public key: 128 bits of its sha256, as 32 hex digits."""
    return hashlib.sha256(b"mediator-key-v1:" + public_key).hexdigest()[:32]


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A user's key pair. ``sign`` is safe to call from any thread."""

    private_key: Ed25519PrivateKey
    display_name: str

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def generate(cls, display_name: str) -> Identity:
        return cls(Ed25519PrivateKey.generate(), display_name)

    @classmethod
    def from_seed(cls, seed: bytes, display_name: str) -> Identity:
        if len(seed) != 32:
            raise ValidationError("an Ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed), display_name)

    def seed(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @classmethod
    def load_or_create(cls, data_dir: Path, display_name: str) -> Identity:
        """The identity of the node whose data lives in ``data_dir``; made on first call."""
        account = f"identity:{data_dir.resolve()}"
        seed = _from_keyring(account)
        if seed is None:
            seed = _from_file(data_dir / KEY_FILE)
        if seed is not None:
            return cls.from_seed(seed, display_name)
        identity = cls.generate(display_name)
        if not _to_keyring(account, identity.seed()):
            log.warning(
                "no OS keyring available: the private key of %s is kept in %s (readable only by you)",
                display_name,
                data_dir / KEY_FILE,
            )
            _to_file(data_dir / KEY_FILE, identity.seed())
        log.info("created identity %s (%s)", identity.key_id, display_name)
        return identity


def _from_keyring(account: str) -> bytes | None:
    try:
        value = keyring.get_password(KEYRING_SERVICE, account)
    except keyring.errors.KeyringError:
        return None
    return bytes.fromhex(value) if value else None


def _to_keyring(account: str, seed: bytes) -> bool:
    try:
        keyring.set_password(KEYRING_SERVICE, account, seed.hex())
    except keyring.errors.KeyringError:
        return False
    return True


def _from_file(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others; making it private", path)
        path.chmod(0o600)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValidationError(f"the key file {path} is damaged; restore it from a backup") from None


def _to_file(path: Path, seed: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(seed.hex() + "\n")
