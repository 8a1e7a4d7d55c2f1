"""Fixtures for the whole suite: every test runs with its own MEDIATOR_HOME and Qt offscreen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.idc_world import IdcWorld, idc_world
from tests.helpers.s3 import MotoServer

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never touch the developer's real keyring; tests that need one install their own backend.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
# Nodes do not advertise themselves over mDNS unless a test asks for it.
os.environ["MEDIATOR_DISCOVERY"] = "off"
# IDC sources never look for a newer index on the internet from a test (nor from the nodes tests
# start): a closed loopback port answers "offline" at once.
os.environ["MEDIATOR_IDC_INDEX_URL"] = "http://127.0.0.1:9/"

settings.register_profile(
    "default", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("stress", parent=settings.get_profile("default"), max_examples=5000)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=False, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def mediator_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private home for settings, data and downloads, so tests never touch the user's."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDIATOR_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdcWorld]:
    """A small IDC in moto's S3 behind the fault-injecting proxy, one per test module."""
    with idc_world(tmp_path_factory.mktemp("idc")) as started:
        yield started


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """moto's S3 server on loopback, one per test module."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
