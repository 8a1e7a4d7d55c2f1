"""Fixtures of the sources' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.s3 import MotoServer


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """moto's S3 server on loopback, one per test module."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
