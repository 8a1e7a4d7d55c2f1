"""The pure parts of the transfer engine: layouts, safe names, progress and job control."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.jobs import JobControl, Progress, ProgressMeter
from mediator_desktop.core.layout import DEFAULT_LAYOUT, Layout
from mediator_desktop.core.paths import MAX_COMPONENT_BYTES, inside, safe_component
from mediator_desktop.core.transfer import LeafFailure, Report


@given(st.text(min_size=0, max_size=400))
def test_a_safe_component_is_one_harmless_name_on_every_os(text: str) -> None:
    name = safe_component(text)
    assert name and name not in (".", "..") and not set(name) <= {"."}
    assert not any(ch in name for ch in '<>:"/\\|?*') and all(ord(ch) >= 32 and ch != "\x7f" for ch in name)
    assert not name.endswith((" ", ".")) and not name.startswith(" ")
    assert name.split(".", 1)[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9"}
    assert len(name.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert safe_component(name) == name  # stable


def test_safe_components_keep_meaningful_names() -> None:
    assert safe_component("1.2.840.113654.2.55.1") == "1.2.840.113654.2.55.1"
    assert safe_component("LIDC-IDRI-0001") == "LIDC-IDRI-0001"
    assert safe_component("Café MR") == "Café MR"
    assert safe_component("../..") == ".._"
    assert safe_component("con.txt") == "_con.txt"
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert safe_component(long_a) != safe_component(long_b)


def test_inside_refuses_what_would_escape(tmp_path: Path) -> None:
    assert inside(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    for bad in ("../x", "/etc/passwd", "a/../../x", "", "."):
        with pytest.raises(ValidationError):
            inside(tmp_path, bad)
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(ValidationError, match="outside"):
        inside(tmp_path, "link/etc")


def test_layouts_render_safe_folders_and_refuse_bad_templates() -> None:
    layout = Layout(DEFAULT_LAYOUT)
    values = {"collection": "nlst", "patient": "../p", "study": "1.2", "series": "1.2.3", "modality": "CT"}
    assert layout.render(values) == "nlst/.._p/1.2/CT_1.2.3"
    assert layout.render({"series": "9"}) == "unknown/unknown/unknown/unknown_9"
    layout.check({"collection", "patient", "study", "series", "modality"})
    with pytest.raises(ValidationError, match="uses colour"):
        Layout("{colour}/{series}").check({"series"})
    for bad in ("", "{series!r}", "{series:>4}", "a//{series}", "{1}/{series}", "{series"):
        with pytest.raises(ValidationError):
            Layout(bad)


def test_progress_rate_eta_and_line() -> None:
    meter = ProgressMeter(bytes_total=2_000_000, items_total=4)
    meter.add_bytes(1_000_000)
    meter.item_done()
    meter.item_failed()
    snap = meter.snapshot()
    assert (snap.bytes_done, snap.items_done, snap.failed) == (1_000_000, 1, 1)
    assert snap.rate > 0 and snap.eta is not None and snap.eta > 0
    line = Progress(1_000_000, 2_000_000, 1, 4, 1, 500_000.0, 2.0).line()
    assert line == "1/4 items, 1.0 MB of 2.0 MB, 500.0 KB/s, 2 s left, 1 failed"


def test_job_control_pauses_resumes_and_cancels_across_threads() -> None:
    control = JobControl()
    changes: list[bool] = []
    control.on_change(lambda: changes.append(control.paused))
    control.pause()
    assert control.paused
    went_on: list[bool] = []
    waiter = threading.Thread(target=lambda: went_on.append(control.wait_while_paused()))
    waiter.start()
    control.resume()
    waiter.join(5)
    assert went_on == [True] and changes == [True, False]
    control.pause()
    control.cancel()
    assert control.cancelled and not control.paused and control.wait_while_paused() is False


def test_a_child_control_follows_its_parent_and_can_be_cancelled_alone() -> None:
    parent = JobControl()
    parent.pause()
    child = parent.child()
    other = parent.child()
    assert child.paused
    parent.resume()
    assert not child.paused
    child.cancel()
    assert child.cancelled and not parent.cancelled and not other.cancelled
    parent.pause()
    assert other.paused and not child.paused  # a cancelled control is never paused again
    parent.cancel()
    assert other.cancelled and not other.paused


def test_report_summary_and_json() -> None:
    report = Report(Path("/d"), "m", fetched=("a", "b"), unchanged=3, bytes=2_500_000, seconds=1.25)
    assert report.ok and report.summary() == "2 fetched (2.5 MB), 3 unchanged in 1.2 s"
    assert report.to_json()["ok"] is True and report.retry_keys() == set()


def test_report_tells_an_unreachable_archive_once() -> None:
    reason = "cannot reach TCIA (tcia.example:443): Could not resolve host: tcia.example; check the network"
    failed = tuple(LeafFailure(f"tcia/s{i}", "tcia", (f"s{i}",), reason) for i in range(3))
    own = LeafFailure("idc/x", "idc", ("x",), "the archive no longer has x (HTTP 404)")
    report = Report(Path("/d"), "m", failed=(*failed, own), seconds=0.5, unreachable={"tcia": reason})
    assert report.summary() == f"0 fetched (0 B), 0 unchanged, 4 failed in 0.5 s; stopped: {reason}"
    assert report.other_failures() == (own,) and not report.ok
    assert report.to_json()["unreachable"] == {"tcia": reason}
    assert Report(Path("/d"), "m").to_json()["unreachable"] == {}
