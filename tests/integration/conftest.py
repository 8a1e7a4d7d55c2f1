"""Fixtures shared by the end-to-end tests of the SDK, the CLI and the local API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.idc_world import IdcWorld, idc_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdcWorld]:
    """A small IDC in moto's S3, one per test module."""
    with idc_world(tmp_path_factory.mktemp("idc")) as started:
        yield started
