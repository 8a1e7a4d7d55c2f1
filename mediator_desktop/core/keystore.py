"""Secrets of a node (its user's private key, the cluster secret): OS keyring first, else a 0600 file.

Where no keyring backend exists (headless servers, CI), secrets live in files readable only by
their owner, under the data folder, and a warning says so once per secret.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keyring
import keyring.errors

from mediator_desktop.core.errors import ValidationError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "mediator-desktop"


def read_secret(account: str, fallback: Path) -> str | None:
    """The secret stored for ``account`` in the keyring, or in ``fallback``; None if neither has it."""
    try:
        value = keyring.get_password(KEYRING_SERVICE, account)
    except keyring.errors.KeyringError:
        value = None
    if value:
        return value
    try:
        text = fallback.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if fallback.stat().st_mode & 0o077:
        log.warning("%s is readable by others; making it private", fallback)
        fallback.chmod(0o600)
    if not text:
        raise ValidationError(f"the secret file {fallback} is empty; restore it from a backup")
    return text


def write_secret(account: str, fallback: Path, value: str, *, replace: bool = False) -> None:
    """Store a new secret in the keyring or, without one, in ``fallback`` (0600).

    A fallback file is never overwritten unless ``replace`` (a cluster secret after a join or a
    leave); then it is swapped atomically, so a crash leaves the old secret or the new one.
    """
    try:
        keyring.set_password(KEYRING_SERVICE, account, value)
        return
    except keyring.errors.KeyringError:
        pass
    log.warning(
        "no OS keyring available: %s is kept in %s (readable only by you)", account.split(":")[0], fallback
    )
    fallback.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = fallback.with_name(fallback.name + ".new") if replace else fallback
    if replace:
        target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    if replace:
        os.replace(target, fallback)


def source_secret(data_dir: Path, source_id: str) -> str | None:
    """The password or token stored for a source of the node on ``data_dir``, if any."""
    return read_secret(
        f"source:{source_id}:{data_dir.resolve()}", data_dir / "secrets" / f"{source_id}.secret"
    )


def store_source_secret(data_dir: Path, source_id: str, value: str) -> None:
    """Keep the password or token of a source (keyring, else a 0600 file); never in settings."""
    write_secret(
        f"source:{source_id}:{data_dir.resolve()}",
        data_dir / "secrets" / f"{source_id}.secret",
        value,
        replace=True,
    )
