"""Writing a leaf's files safely: names that cannot escape, and a folder that appears only whole."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mediator_desktop.core.errors import ValidationError


def safe_name(name: str) -> str:
    """``name`` reduced to letters, digits, ``.``, ``-`` and ``_``: never a path, never ``..``."""
    cleaned = "".join(ch for ch in name if ch.isalnum() or ch in ".-_")
    if not cleaned or cleaned in (".", ".."):
        raise ValidationError(f"{name!r} cannot name a file")
    return cleaned


@contextmanager
def staged(destination: Path, name: str) -> Iterator[Path]:
    """A staging folder inside ``destination``; on success it replaces ``destination / name``.

    On any failure the staging folder is removed: nothing partial is left that looks complete.
    """
    destination.mkdir(parents=True, exist_ok=True)
    final = destination / safe_name(name)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=destination))
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
