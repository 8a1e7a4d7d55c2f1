"""Who signs: an Ed25519 key pair per user of a node, created on first start.

The private key lives in the OS keyring (``keyring``). Where no keyring backend exists (headless
servers, CI), it lives in a file readable only by its owner (0600) under the data folder, and a
warning says so. The key id, a fingerprint of the public key, names the user everywhere.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.keystore import read_secret, write_secret

log = logging.getLogger(__name__)

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
        stored = read_secret(account, data_dir / KEY_FILE)
        if stored is not None:
            try:
                return cls.from_seed(bytes.fromhex(stored), display_name)
            except ValueError:
                raise ValidationError(
                    f"the stored private key of this node is damaged ({data_dir / KEY_FILE} or the "
                    "keyring); restore it from a backup"
                ) from None
        identity = cls.generate(display_name)
        write_secret(account, data_dir / KEY_FILE, identity.seed().hex())
        log.info("created identity %s (%s)", identity.key_id, display_name)
        return identity
