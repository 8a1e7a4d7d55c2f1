"""Downloads in tests: the real engine and the real libcurl transport, with short retry pauses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mediator_desktop.core.manifest import Leaf, Manifest
from mediator_desktop.core.source import DataSource
from mediator_desktop.core.transfer import Downloader, Report
from mediator_desktop.sources.transport import CurlTransport


@contextmanager
def downloader(*sources: DataSource, processes: int = 0, **transport: Any) -> Iterator[Downloader]:
    options = {"backoff": 0.01, "attempts": 3, **transport}
    curl = CurlTransport(**options)
    engine = Downloader({s.source_id: s for s in sources}, curl, processes=processes)
    try:
        yield engine
    finally:
        curl.close()
        engine.close()


def download(
    source: DataSource, leaves: Iterable[Leaf], destination: Path, *, processes: int = 0, **options: Any
) -> Report:
    """Download ``leaves`` of one source with a fresh transport; returns the report."""
    with downloader(source, processes=processes) as d:
        return d.download(Manifest.build(leaves), destination, **options)


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` outside the download record, as sorted relative paths."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".mediator" not in p.parts
    )
