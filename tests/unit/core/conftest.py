"""Fixtures of the service's tests: a lab (``tests.helpers.service.World``) and its first user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.service import Service
from tests.helpers.service import World, world


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    """A one-node store, the local archive ``lab`` and a downloader, stopped after the test."""
    with world(tmp_path, downloads=True) as w:
        yield w


@pytest.fixture
def alice(lab: World) -> Service:
    return lab.service("alice")
