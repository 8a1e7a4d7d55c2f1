"""The Python SDK against real nodes: embedded when none runs, connected when one does, typed errors,
downloads with progress, pause and cancel, and usable without PySide6."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mediator_desktop import Mediator
from mediator_desktop.core.endpoint import Endpoint
from mediator_desktop.core.errors import ConflictError, NodeUnreachable, NotFound, ValidationError
from mediator_desktop.core.layout import DEFAULT_LAYOUT
from mediator_desktop.sdk import ProgressModel
from tests.helpers.dicom import make_series
from tests.helpers.idc_world import SERIES, IdcWorld

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def m(world: IdcWorld, mediator_home: Path) -> Iterator[Mediator]:
    world.install(mediator_home)
    with Mediator() as client:
        yield client


def test_without_a_node_it_starts_one_and_a_second_client_connects_to_it(
    world: IdcWorld, mediator_home: Path
) -> None:
    world.install(mediator_home)
    with pytest.raises(NodeUnreachable, match="mediator node run"):
        Mediator(start=False)
    with Mediator() as first:
        assert first.embedded
        rs = first.create_set("shared", add=["idc/lung_a?Modality=CT"], visibility="cluster")
        with Mediator(start=False) as second:  # finds the running node through local-api.json
            assert not second.embedded and second.url == first.url
            assert [s.id for s in second.sets()] == [rs.id]
    endpoint = Endpoint.read(mediator_home / "data")
    assert endpoint is not None and not endpoint.alive()  # stopped with the first client
    with pytest.raises(NodeUnreachable, match="no node runs"):
        Mediator(start=False)


def test_browse_search_and_build_a_set_at_every_granularity(m: Mediator) -> None:
    assert [s.id for s in m.sources()] == ["idc", "clinical"]  # clinical: built in
    page = m.browse("idc")
    assert [i.key for i in page.items] == ["lung_a", "lung_b", "other_c"] and page.total == 3
    assert page.items[0].leaves == 3
    assert [i.key for i in m.browse("idc", "lung_a", filters={"Modality": "MR"}).items] == ["pa1"]
    assert [i.key for i in m.search("idc", "LUNG")] == ["lung_a", "lung_b"]
    assert m.values("idc", "Modality") == ["CT", "MR"]
    assert [i.key for i in m.browse_all("idc", "lung_b", "pb1", "pb1.st")] == ["2.1", "2.2"]

    rs = m.create_set("lungs", add=["idc/lung_a?Modality=CT", "idc/lung_b"], message="first")
    assert rs.head == 1 and rs.leaves == 2 + 2
    v2 = m.remove(rs.id, "idc/lung_b/pb1/pb1.st/2.2", message="one series less")
    assert v2.version == 2 and v2.set.leaves == 3
    assert m.add(rs.id, "idc/lung_a?Modality=CT").version is None  # nothing changed, nothing committed
    v3 = m.update(rs.id, add=["idc/other_c"], remove=["idc/lung_a/pa2"], message="swap")
    assert v3.version == 3
    diff = m.diff(rs.id, 1)
    assert (diff.added, diff.removed) == (1, 2)
    assert diff.summary.startswith("+1 series")
    assert "idc/other_c/pc1/pc1.st/3.1" in diff.added_leaves
    history = m.history(rs.id)
    assert [v.message for v in history] == ["first", "one series less", "swap"]
    assert {r.include for r in history[1].rules} == {True, False}  # a removal under a coarser pointer
    assert sorted(leaf.path[-1] for leaf in m.leaves(rs.id)) == ["1.1", "2.1", "3.1"]
    assert sorted(leaf.path[-1] for leaf in m.leaves(rs.id, 1, page=1)) == ["1.1", "1.3", "2.1", "2.2"]


def test_errors_come_back_typed_with_what_to_do(m: Mediator) -> None:
    rs = m.create_set("conflicts", add=["idc/lung_a"])
    m.update(rs.id, add=["idc/lung_b"], expected_head=1)
    with pytest.raises(ConflictError) as conflict:
        m.update(rs.id, add=["idc/other_c"], expected_head=1)
    assert conflict.value.current_head == 2
    with pytest.raises(NotFound, match="no source 'tcia'"):
        m.add(rs.id, "tcia/LIDC-IDRI")
    with pytest.raises(NotFound, match="no set named"):
        m.find_set("nothing like it")
    with pytest.raises(ValidationError, match="4 levels"):
        m.add(rs.id, "idc/a/b/c/d/e")
    with pytest.raises(ValidationError, match="32 hex digits"):
        m.get_set("../../etc")
    should_be = r"^visibility input should be 'private', 'cluster' or 'public'$"
    with pytest.raises(ValidationError, match=should_be):
        m.share(rs.id, visibility="secret")


def test_share_fork_follow_and_delete(m: Mediator) -> None:
    rs = m.create_set("original", add=["idc/lung_b"])
    me = m.node().key_id
    shared = m.share(rs.id, visibility="public")
    assert shared.visibility == "public"
    assert [s.id for s in m.sets("public")] == [rs.id]
    fork = m.duplicate(rs.id, name="my fork")
    assert fork.forked_from is not None and fork.forked_from.set_id == rs.id and fork.owner == me
    assert m.follow(rs.id).following and not m.unfollow(rs.id).following
    m.delete_set(fork.id)
    with pytest.raises(NotFound):
        m.get_set(fork.id)


def test_download_with_progress_then_only_what_changed(m: Mediator, world: IdcWorld, tmp_path: Path) -> None:
    rs = m.create_set("to disk", add=["idc/lung_a?Modality=CT"])
    seen: list[ProgressModel] = []
    job = m.download(rs.id, tmp_path / "out", progress=seen.append)
    assert job.state == "done" and job.report is not None
    assert len(job.report.fetched) == 2 and not job.report.failed
    assert job.report["fetched"] == job.report.fetched  # as scripts read it when reports were dicts
    files = sorted(p for p in (tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 3 + 2
    assert sorted(p.read_bytes() for p in files) == sorted(world.blobs["1.1"] + world.blobs["1.3"])
    assert seen and seen[-1].items_done == 2
    m.add(rs.id, "idc/lung_b/pb1/pb1.st/2.1")
    again = m.download(rs.id, tmp_path / "out")
    assert again.report is not None
    assert (len(again.report.fetched), again.report.unchanged) == (1, 2)
    assert again.summary is not None and "1 fetched" in again.summary
    assert any(j.id == again.id for j in m.downloads())


@pytest.mark.timeout(120)
def test_an_archive_update_is_found_accepted_and_only_the_changes_are_downloaded(
    m: Mediator, tmp_path: Path
) -> None:
    m.change_settings(update_check_minutes=0)  # only the checks this test asks for
    folder = tmp_path / "scanner"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", pixels=8)
    m.add_source("local", id="lab", folder=str(folder))
    rs = m.create_set("scans", add=["lab/P1", "lab/P2"])
    first = m.download(rs.id, tmp_path / "out")
    assert first.state == "done" and first.report is not None and len(first.report.fetched) == 2
    [same] = m.check(rs.id)
    assert (same.set_id, same.version, same.new, same.error, same.drift) == (rs.id, 1, False, "", None)
    assert same.line == "scans v1: up to date"
    track = m.drift(rs.id)
    assert track.drift is None and track.last_check is not None and track.last_check.error == ""
    with pytest.raises(NotFound, match="no archive update"):
        m.accept(rs.id)
    with pytest.raises(NotFound, match="no archive update"):
        m.drift_diff(rs.id)
    # The archive gets a new series and a revised one (two more images).
    make_series(folder, "P1", "1.2.1", "1.2.1.9", 4, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 5, modality="MR", pixels=8)
    m.rescan("lab")
    [found] = m.check()  # every set you follow or own: this one
    assert found.set_id == rs.id and found.new and found.drift is not None and not found.error
    assert (found.drift.added, found.drift.revised, found.drift.removed) == (1, 1, 0)
    assert found.line.startswith("scans v1: update found: +1 series") and "1 revised" in found.line
    track = m.drift(rs.id)
    assert track.drift == found.drift and not track.declined and track.line.startswith("archive update: +1")
    assert m.get_set(rs.id).update == found.drift.summary
    assert [(u.set.id, u.drift.summary) for u in m.updates()] == [(rs.id, found.drift.summary)]
    diff = m.drift_diff(rs.id)
    assert diff.added_leaves == ["lab/P1/1.2.1/1.2.1.9"] and diff.changed_leaves == ["lab/P2/1.2.2/1.2.2.1"]
    assert (diff.added, diff.changed, diff.removed) == (1, 1, 0)
    # Accepting makes version 2; downloading it into the same folder fetches only the changes.
    accepted = m.accept(rs.id)
    assert accepted.version == 2 and accepted.set.id == rs.id and accepted.set.head == 2
    assert accepted.set.leaves == 3 and accepted.set.update is None
    assert m.history(rs.id)[-1].message.startswith("archive update accepted: +1 series")
    assert m.drift(rs.id).drift is None and m.updates() == []
    again = m.download(rs.id, tmp_path / "out")
    assert again.state == "done" and again.report is not None
    assert sorted(again.report.fetched) == ["lab/P1/1.2.1/1.2.1.9", "lab/P2/1.2.2/1.2.2.1"]
    assert again.report.unchanged == 1 and again.report.failed == []
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2 + 4 + 5
    # A series goes away; declining keeps version 2 and silences the update (accept still takes it).
    shutil.rmtree(folder / "P1" / "1.2.1.1")
    m.rescan("lab")
    [gone] = m.check(rs.id)
    assert gone.new and gone.drift is not None and (gone.drift.version, gone.drift.removed) == (2, 1)
    declined = m.dismiss(rs.id)
    assert (
        declined.declined
        and declined.drift == gone.drift
        and declined.line.startswith("declined archive update")
    )
    assert m.updates() == [] and m.get_set(rs.id).update is None
    [still] = m.check(rs.id)
    assert not still.new and still.drift == gone.drift  # the same update: not news
    assert m.get_set(rs.id).head == 2


def test_a_set_is_renamed_and_keeps_its_versions(m: Mediator) -> None:
    rs = m.create_set("old name", add=["idc/lung_b"], description="kept")
    renamed = m.rename(rs.id, "new name")
    assert (renamed.id, renamed.name, renamed.description, renamed.head) == (rs.id, "new name", "kept", 1)
    assert m.find_set("new name").id == rs.id
    described = m.rename(rs.id, "newer name", description="")
    assert (described.name, described.description) == ("newer name", "")
    with pytest.raises(NotFound, match="no set named"):
        m.find_set("old name")
    with pytest.raises(ValidationError, match=r"^name is empty$"):  # one line, not a pydantic dump
        m.rename(rs.id, "")
    with pytest.raises(ValidationError, match=r"^name has at most 200 characters \(got 201\)$"):
        m.rename(rs.id, "x" * 201)
    with pytest.raises(ValidationError, match="control characters"):
        m.rename(rs.id, "two\nlines")
    with pytest.raises(NotFound):
        m.rename("0" * 32, "x")


def test_settings_are_read_and_changed_and_downloads_follow_the_layout_setting(
    m: Mediator, tmp_path: Path
) -> None:
    settings = m.settings()
    live = {f.name: f.live for f in settings.fields}
    assert live["download_layout"] and not live["data_dir"]
    assert settings.values.download_layout == DEFAULT_LAYOUT
    change = m.change_settings(download_layout="{patient}/{series}", download_dir=tmp_path / "dl")
    assert sorted(change.changed) == ["download_dir", "download_layout"] and change.restart == []
    assert m.settings().values.download_dir == str(tmp_path / "dl") == m.node().download_dir
    with pytest.raises(ValidationError):
        m.change_settings(download_layout="{nope")
    with pytest.raises(ValidationError, match=r"^colour is not a field this request takes$"):
        m.change_settings(colour="teal")
    assert m.settings().values.download_layout == "{patient}/{series}"
    # A download that names no layout gets the node's setting, as in the app and the CLI.
    rs = m.create_set("by patient", add=["idc/lung_b/pb1"])
    job = m.download(rs.id, tmp_path / "out")
    assert job.state == "done", job.error
    folders = sorted(str(p.parent.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.dcm"))
    assert folders and all(f.startswith("pb1/") and f.count("/") == 1 for f in folders)


def test_a_download_can_be_paused_resumed_and_cancelled(m: Mediator, world: IdcWorld, tmp_path: Path) -> None:
    rs = m.create_set("held", add=["idc/lung_a", "idc/lung_b"])
    total = sum(1 for s in SERIES if s[0] in ("lung_a", "lung_b"))
    world.proxy.gate.clear()  # object GETs wait: nothing can arrive until the job is seen cancelled
    try:
        handle = m.start_download(rs.id, tmp_path / "held", workers=1)
        assert handle.pause().state == "paused"
        assert handle.resume().state == "running"
        cancel = threading.Event()
        cancel.set()
        job = handle.wait(cancel=cancel, timeout=30)  # the cancel lands while the archive is held
    finally:
        world.proxy.gate.set()
    assert job.state == "cancelled", job.summary or job.error
    assert job.report is not None and job.report.cancelled
    assert (job.report.fetched, job.report.failed, job.report.pending) == ([], [], total), job.summary
    assert not [p for p in (tmp_path / "held").rglob("*") if p.is_file() and ".mediator" not in p.parts]
    rerun = m.download(rs.id, tmp_path / "held")
    assert rerun.state == "done" and rerun.report is not None
    assert (len(rerun.report.fetched), rerun.report.unchanged) == (total, 0)


def test_download_failures_stop_with_a_typed_error_and_write_nothing(m: Mediator, tmp_path: Path) -> None:
    rs = m.create_set("nowhere", add=["idc/lung_a"])
    with pytest.raises(ValidationError, match="absolute"):
        m._call("POST", "/v1/downloads", {"set_id": rs.id, "destination": "relative"})
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    job = m.download(rs.id, blocker / "below")
    assert job.state == "failed" and job.error
    assert blocker.read_text() == "not a folder"


def test_the_sdk_works_where_pyside6_cannot_be_imported(world: IdcWorld, mediator_home: Path) -> None:
    world.install(mediator_home)
    script = textwrap.dedent(
        """
        import sys
        sys.modules["PySide6"] = None  # as in a Python without it: importing it fails
        from mediator_desktop import Mediator
        with Mediator() as m:
            rs = m.create_set("no Qt", add=["idc/lung_b"])
            print(rs.leaves, m.diff(rs.id, 1).summary)
        assert not any(name.startswith(("PySide6.", "shiboken6")) for name in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "no", "changes"]


def test_the_token_is_not_sent_to_whatever_took_a_stopped_nodes_port(mediator_home: Path) -> None:
    """local-api.json outlives a crashed node; another user may listen on its old port. The SDK
    asks for proof that the listener holds the token before it sends it."""
    seen: list[dict[str, str]] = []

    class Squatter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            body = b'{"proof": "0000"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Squatter)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        data = mediator_home / "data"
        data.mkdir(parents=True)
        token = "t" * 43
        # a pid that runs (this test's own): the file looks as fresh as after a crash and reboot
        Endpoint(f"http://127.0.0.1:{server.server_address[1]}", token, os.getpid(), "0").write(data)
        with pytest.raises(NodeUnreachable, match=r"not the MEDIator node .* the token was not sent"):
            Mediator(start=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert seen and all(token not in str(headers) for headers in seen)
