"""A node on the small IDC world for the window's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.node import Node
from tests.helpers.idc_world import IdcWorld


@pytest.fixture
def node(world: IdcWorld, mediator_home: Path) -> Iterator[Node]:
    world.install(mediator_home)
    with Node() as started:
        yield started
