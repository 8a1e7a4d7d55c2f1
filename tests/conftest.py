"""Fixtures for the whole suite: every test runs with its own MEDIATOR_HOME and Qt offscreen."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


#: Tests a CI runner (root, ``CI=true``) must run: there a missing prerequisite (network namespaces,
#: a tmpfs mount) fails them instead of skipping them.
MUST_RUN_IN_CI = (
    "tests/integration/test_netns_cluster.py::",
    "tests/integration/test_transfer.py::test_a_full_disk_fails_the_leaf_clearly_and_leaves_no_partial_file",
)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and os.environ.get("CI") == "true"
        and os.geteuid() == 0
        and item.nodeid.startswith(MUST_RUN_IN_CI)
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} would have skipped ({_skip_reason(report)}), but under CI=true as root "
            "its prerequisite must be there: install or allow it on the runner"
        )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # the outermost wrapper: after pytest's own summary
def pytest_terminal_summary(terminalreporter: Any) -> Iterator[None]:
    """One line at the end: how many tests skipped, and why."""
    yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if isinstance(r, pytest.TestReport)]
    reasons = Counter(_skip_reason(r) for r in skipped)
    said = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common())
    terminalreporter.write_line(f"skipped: {len(skipped)}" + (f" ({said})" if said else ""))
