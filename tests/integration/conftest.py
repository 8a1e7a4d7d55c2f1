"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from mediator_desktop.node import Node


@pytest.fixture(scope="module")
def http(node: Node) -> Iterator[requests.Session]:
    """A session with the token of the module's ``node`` (its local API)."""
    assert node.api is not None
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {node.api.token}"
    yield session
    session.close()
