"""Advisory, exclusive, non-blocking file locks: one download per folder, one node per data folder.

The lock goes with the open file: it is dropped when the holder closes it or its process dies,
so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO


class FileLock:
    """Hold ``path`` locked until ``release``; ``BlockingIOError`` when another holder has it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a+")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; the app itself serialises its users
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise

    def release(self) -> None:
        self._file.close()  # closing drops the lock
