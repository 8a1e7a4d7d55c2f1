"""Previews (thumbnails of series) on disk, bounded in bytes: the least recently used go first.

A preview is a small PNG or JPEG, keyed by the source and the leaf's path. Looking one up is a file
read (a few milliseconds); a cache that outgrows its bound is trimmed when a preview is added.
Thread-safe: previews are made on workers while the GUI thread reads others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

from mediator_desktop.core.paths import private_dir

#: The default bound of the cache (bytes).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class PreviewCache:
    """Thumbnails in ``folder``, at most ``max_bytes`` of them."""

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None  # bytes held, counted on first use

    def _file(self, source_id: str, path: tuple[str, ...]) -> Path:
        digest = hashlib.sha256("\x1f".join((source_id, *path)).encode("utf-8", "surrogatepass")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.img"

    def get(self, source_id: str, path: tuple[str, ...]) -> bytes | None:
        """The cached preview, or None; a hit counts as a use (its file's time is touched)."""
        file = self._file(source_id, path)
        try:
            data = file.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):  # trimmed meanwhile: the bytes read are still right
            os.utime(file)
        return data

    def put(self, source_id: str, path: tuple[str, ...], data: bytes) -> None:
        """Keep ``data`` as the preview of the leaf, then trim the cache to its bound."""
        file = self._file(source_id, path)
        private_dir(file.parent)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(data)
        with self._lock:
            old = file.stat().st_size if file.exists() else 0
            os.replace(tmp, file)
            self._size = self._count() if self._size is None else self._size + len(data) - old
            if self._size > self.max_bytes:
                self._trim()

    def _count(self) -> int:
        return sum(f.stat().st_size for f in self.folder.glob("*/*.img"))

    def _trim(self) -> None:
        """Drop the least recently used until at most three quarters of the bound is used (so a
        full cache is not trimmed at every addition). Called with the lock held."""
        files = []
        for f in self.folder.glob("*/*.img"):
            try:
                st = f.stat()
            except OSError:
                continue
            files.append((st.st_mtime_ns, st.st_size, f))
        files.sort()
        size = sum(s for _, s, _ in files)
        for _, s, f in files:
            if size <= self.max_bytes * 3 // 4:
                break
            f.unlink(missing_ok=True)
            size -= s
        self._size = size

    @property
    def size(self) -> int:
        """Bytes held now."""
        with self._lock:
            if self._size is None:
                self._size = self._count() if self.folder.exists() else 0
            return self._size
