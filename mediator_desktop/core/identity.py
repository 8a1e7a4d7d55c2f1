"""Who signs: an Ed25519 key pair per user of a node, created on first start.

The private key lives in the OS keyring (``keyring``). Where no keyring backend exists (headless
servers, CI), it lives in a file readable only by its owner (0600) under the data folder, and a
warning says so. The key id, a fingerprint of the public key, names the user everywhere.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.keystore import read_secret, write_secret

log = logging.getLogger(__name__)

KEY_FILE = "identity.key"


def key_id_of(public_key: bytes) -> str:
    """The fingerprint that names a public key: 128 bits of its sha256, as 32 hex digits."""
    return hashlib.sha256(b"mediator-key-v1:" + public_key).hexdigest()[:32]


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``.

    libsodium (PyNaCl) verifies in about two thirds of OpenSSL's time; every node verifies every
    command, so this is on the store's hot path.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A user's key pair. ``sign`` is safe to call from any thread."""

    private_key: SigningKey
    display_name: str
    public_key: bytes = field(init=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        public = bytes(self.private_key.verify_key)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", key_id_of(public))

    def sign(self, message: bytes) -> bytes:
        return bytes(self.private_key.sign(message).signature)

    @classmethod
    def generate(cls, display_name: str) -> Identity:
        return cls(SigningKey.generate(), display_name)

    @classmethod
    def from_seed(cls, seed: bytes, display_name: str) -> Identity:
        if len(seed) != 32:
            raise ValidationError("an Ed25519 private key is 32 bytes")
        return cls(SigningKey(seed), display_name)

    def seed(self) -> bytes:
        return bytes(self.private_key)

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
