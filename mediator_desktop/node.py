"""Composition root: builds a running node from Settings.

Later issues add the replicated store, the sources, the transfer engine and tracking here; the
frontends (Qt app, CLI, SDK) only ever talk to what this module hands them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mediator_desktop.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Node:
    """One running MEDIator node (desktop app or headless)."""

    settings: Settings = field(default_factory=Settings.load)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def start(self) -> Node:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log.info("node started; data in %s", self.data_dir)
        return self

    def stop(self) -> None:
        log.info("node stopped")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
