"""File and folder names from archive metadata, safe on Linux, macOS and Windows alike."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

from mediator_desktop.core.errors import ValidationError

#: Characters Windows refuses in names (and ``/`` everywhere), replaced by ``_``.
_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)} | {"\x7f"}
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
#: Bytes of UTF-8 one component may take (file systems allow 255; leave room for ``.part``).
MAX_COMPONENT_BYTES = 120


def safe_component(text: str) -> str:
    """``text`` as one path component: no separators, no ``..``, no reserved or trailing-dot names.

    Different texts may map to the same component only when they differ in forbidden characters;
    names cut for length keep a short hash of the whole text so that they stay distinct.
    """
    name = unicodedata.normalize("NFC", text)
    name = "".join("_" if ch in _FORBIDDEN else ch for ch in name).strip(" ").rstrip(". ")
    if not name or set(name) <= {"."}:
        name = "_" + name.replace(".", "_") if name else "_"
    if name.split(".", 1)[0].upper() in _RESERVED:
        name = "_" + name
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_COMPONENT_BYTES:
        tag = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        cut = encoded[: MAX_COMPONENT_BYTES - 11].decode("utf-8", "ignore").rstrip(". ")
        name = f"{cut}~{tag}"
    return name


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``."""
    if not relative or os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise ValidationError(f"{relative!r} is not a relative path")
    base = root.resolve()
    target = (base / relative).resolve()
    if target == base or base not in target.parents:
        raise ValidationError(f"{relative!r} would land outside {root}")
    return target


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents readable by this user only (0700); make ``path``
    itself so if it exists with wider rights. The data folder holds logs, summaries of private
    sets and local indexes with patient identifiers."""
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path
