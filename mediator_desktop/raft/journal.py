"""pysyncobj's file journal, trimmed without a moment in which committed entries exist nowhere.

After each full dump pysyncobj drops the journal entries the dump covers. Its ``FileJournal``
does that in place: it marks the journal empty and writes the entries it keeps back one by one.
A node killed during that rewrite (a desktop shut down, the OOM killer) restarted with only the
entries written back so far: the changes after the dump, acknowledged to their authors, were gone.
``SafeJournal`` writes the kept entries to a new file and renames it over the journal, so a kill
leaves either the old journal or the new one, each complete. An old journal that still begins
before the dump is trimmed on start-up (``_ClusterSyncObj._align_journal``).

Relies on pysyncobj 0.3's ``FileJournal`` and ``ResizableFile`` internals (pinned in pyproject).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from pysyncobj.journal import FileJournal, ResizableFile


class SafeJournal(FileJournal):  # type: ignore[misc]
    """A ``FileJournal`` whose ``deleteEntriesTo`` replaces the file atomically."""

    def deleteEntriesTo(self, entryTo: int) -> None:
        kept: list[Any] = self._FileJournal__journal[entryTo:]  # type: ignore[has-type]
        current: ResizableFile = self._FileJournal__journalFile  # type: ignore[has-type]
        path: str = current._ResizableFile__fileName
        fresh_path = path + ".trimmed"
        with contextlib.suppress(FileNotFoundError):
            os.remove(fresh_path)  # the remains of a rewrite that was interrupted
        fresh = FileJournal(fresh_path)
        for entry in kept:
            fresh.add(*entry)
        end: int = fresh._FileJournal__currentOffset
        fresh._destroy()  # written through and closed
        os.replace(fresh_path, path)
        current._destroy()  # the old file's mapping: still the old inode, now unlinked
        self._FileJournal__journalFile = ResizableFile(path)
        self._FileJournal__journal = kept
        self._FileJournal__currentOffset = end
