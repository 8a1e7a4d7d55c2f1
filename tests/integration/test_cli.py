"""The `mediator` command as a new user meets it in a terminal: a headless node, then every step of
the walkthrough (browse IDC, a set of two collections' CT series, share, diff, download), seen by an
SDK script in a second terminal; exit codes; a second machine joining with a code; SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mediator_desktop.cli import (
    EXIT_ARCHIVE_ERROR,
    EXIT_DOWNLOAD_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PERMISSION_DENIED,
    EXIT_USAGE,
    EXIT_USER_ERROR,
)
from mediator_desktop.core.endpoint import Endpoint
from mediator_desktop.core.layout import DEFAULT_LAYOUT
from mediator_desktop.core.settings import HOME_ENV
from mediator_desktop.sdk import Mediator
from tests.helpers.dicom import make_series
from tests.helpers.idc_world import IdcWorld
from tests.helpers.net import free_ports
from tests.helpers.proc import read_line, stop_process

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

#: How long a download may take, by its own clock, to fail on an archive whose port refuses.
GONE_ARCHIVE_S = 2.0
#: How long the CLI may take from Ctrl-C to its exit during a download.
CTRL_C_S = 3.0


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "MEDIATOR_HOME": str(home)}


def mediator(home: Path, *args: str, code: int = EXIT_OK) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "mediator_desktop.cli", *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == code, (
        f"mediator {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    )
    return out


def as_json(out: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(out.stdout)


class HeadlessNode:
    """`mediator node run` in its own process."""

    def __init__(self, home: Path, *args: str, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediator_desktop.cli", "--json", "node", "run", *args],
            env=env_for(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready: dict[str, Any] = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> dict[str, Any]:
        try:
            self.ready = json.loads(read_line(self.proc, 60))
        except BaseException:
            self.stop()
            raise
        assert self.ready.get("state") == "ready", self.ready
        return self.ready

    def stop(self) -> int:
        stop_process(self.proc, 20)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def test_walkthrough_from_a_terminal(world: IdcWorld, mediator_home: Path, tmp_path: Path) -> None:
    world.install(mediator_home)
    node = HeadlessNode(mediator_home)
    try:
        assert node.ready["state"] == "ready" and node.ready["api"].startswith("http://127.0.0.1:")
        # Browse IDC.
        assert "idc" in mediator(mediator_home, "sources", "list").stdout
        collections = as_json(mediator(mediator_home, "--json", "sources", "browse", "idc"))["items"]
        assert [c["key"] for c in collections] == ["lung_a", "lung_b", "other_c"]
        assert [
            c["key"] for c in as_json(mediator(mediator_home, "--json", "sources", "search", "idc", "lung"))
        ] == [
            "lung_a",
            "lung_b",
        ]
        patients = mediator(
            mediator_home, "sources", "browse", "idc", "lung_a", "--filter", "Modality=CT"
        ).stdout
        assert patients.split()[0] == "pa1"
        # the same written as a pointer, as `sets create --add` takes one
        assert mediator(mediator_home, "sources", "browse", "idc/lung_a?Modality=CT").stdout == patients
        # A set of two collections' CT series, shared with the cluster.
        created = as_json(
            mediator(
                mediator_home,
                "--json",
                "sets",
                "create",
                "Lung CT",
                "--add",
                "idc/lung_a?Modality=CT",
                "--add",
                "idc/lung_b?Modality=CT",
                "-m",
                "two collections",
            )
        )
        set_id = created["id"]
        assert created["head"] == 1 and created["leaves"] == 4
        mediator(mediator_home, "sets", "remove", "Lung CT", "idc/lung_b/pb1/pb1.st/2.2", "-m", "drop one")
        shared = as_json(
            mediator(mediator_home, "--json", "sets", "share", "Lung CT", "--visibility", "cluster")
        )
        assert shared["visibility"] == "cluster"
        # Diff two versions.
        diff = mediator(mediator_home, "sets", "diff", "Lung CT", "1", "2").stdout.splitlines()
        assert diff[0].startswith("-1 series") and "- idc/lung_b/pb1/pb1.st/2.2" in diff
        history = mediator(mediator_home, "sets", "history", set_id).stdout
        assert "two collections" in history and "drop one" in history
        # Download it.
        out = mediator(mediator_home, "download", "Lung CT", str(tmp_path / "data")).stdout
        assert "3 fetched" in out
        files = sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*.dcm"))
        assert len(files) == 3 + 2 + 2 and str(files[0]).startswith("lung_a/pa1/")
        again = as_json(mediator(mediator_home, "--json", "download", "Lung CT", str(tmp_path / "data")))
        assert again["report"]["fetched"] == [] and again["report"]["unchanged"] == 3
        # A second terminal's SDK script sees the same set.
        script = textwrap.dedent(
            """
            import json
            from mediator_desktop import Mediator
            with Mediator(start=False) as m:
                rs = m.find_set("Lung CT")
                print(json.dumps({"id": rs.id, "head": rs.head, "visibility": rs.visibility,
                                  "diff": m.diff(rs.id, 1, 2).summary}))
            """
        )
        seen = subprocess.run(
            [sys.executable, "-c", script],
            env=env_for(mediator_home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert seen.returncode == 0, seen.stderr
        view = json.loads(seen.stdout)
        assert (view["id"], view["head"], view["visibility"]) == (set_id, 2, "cluster")
        assert view["diff"].startswith("-1 series")
        # Exit codes that say what went wrong.
        missing = mediator(mediator_home, "sets", "show", "no such set", code=EXIT_NOT_FOUND)
        assert "no set named 'no such set'" in missing.stderr
        assert "invalid choice" in mediator(mediator_home, "sets", "frobnicate", code=EXIT_USAGE).stderr
        refused = mediator(mediator_home, "sets", "delete", "Lung CT", code=EXIT_USER_ERROR)
        assert "--yes" in refused.stderr
        failed = as_json(
            mediator(mediator_home, "--json", "sets", "add", "Lung CT", "idc/a/b/c/d/e", code=EXIT_USER_ERROR)
        )
        assert failed["error"] == "ValidationError" and failed["exit"] == EXIT_USER_ERROR
    finally:
        code = node.stop()
    # SIGTERM: a clean stop, the log kept, the endpoint marked as no longer served.
    assert code == 0
    log = Path(node.ready["log_file"]).read_text()
    assert "stopping on a signal" in log and "node stopped" in log
    endpoint = Endpoint.read(mediator_home / "data")
    assert endpoint is not None and endpoint.pid == 0
    assert mediator(
        mediator_home, "--json", "sets", "list", "--scope", "mine"
    ).stdout  # runs a node for itself
    listed = as_json(mediator(mediator_home, "--json", "sets", "list"))
    assert [s["name"] for s in listed] == ["Lung CT"]


def test_rename_a_set_and_change_settings_from_a_terminal(
    world: IdcWorld, mediator_home: Path, tmp_path: Path
) -> None:
    world.install(mediator_home)
    node = HeadlessNode(mediator_home)
    try:
        created = as_json(
            mediator(mediator_home, "--json", "sets", "create", "Old name", "--add", "idc/lung_b")
        )
        renamed = as_json(
            mediator(mediator_home, "--json", "sets", "rename", "Old name", "New name", "--description", "d")
        )
        assert (renamed["id"], renamed["name"], renamed["description"]) == (created["id"], "New name", "d")
        assert renamed["head"] == 1
        assert "Newest name" in mediator(mediator_home, "sets", "rename", created["id"], "Newest name").stdout
        missing = mediator(mediator_home, "sets", "rename", "Old name", "x", code=EXIT_NOT_FOUND)
        assert "no set named 'Old name'" in missing.stderr
        # Settings: what each one is, and whether a change waits for a restart.
        listed = mediator(mediator_home, "settings").stdout
        assert f'download_layout = "{DEFAULT_LAYOUT}"' in listed and "node starts next" in listed
        assert (
            as_json(mediator(mediator_home, "--json", "settings"))["values"]["download_layout"]
            == DEFAULT_LAYOUT
        )
        change = as_json(
            mediator(
                mediator_home,
                "--json",
                "settings",
                "--set",
                "download_layout={patient}/{series}",
                "--set",
                "update_check_minutes=30",
                "--set",
                "peers=127.0.0.1:9,127.0.0.1:10",
            )
        )
        assert sorted(change["changed"]) == ["download_layout", "peers", "update_check_minutes"]
        assert change["restart"] == ["peers"]
        assert change["settings"]["peers"] == ["127.0.0.1:9", "127.0.0.1:10"]
        said = mediator(mediator_home, "settings", "--set", "update_check_minutes=31")
        assert "changed: update_check_minutes" in said.stdout
        refused = mediator(mediator_home, "settings", "--set", "discovery=maybe", code=EXIT_USER_ERROR)
        assert "true or false" in refused.stderr
        bad = mediator(mediator_home, "settings", "--set", "download_layout={nope", code=EXIT_USER_ERROR)
        assert "mediator:" in bad.stderr
        mediator(mediator_home, "settings", "--set", "nothing=1", code=EXIT_USER_ERROR)
        # Without --layout, a download follows the node's setting, as the app's and the SDK's do.
        assert DEFAULT_LAYOUT in mediator(mediator_home, "download", "--help").stdout
        mediator(mediator_home, "download", "Newest name", str(tmp_path / "out"))
        folders = {str(p.parent.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.dcm")}
        assert folders == {"pb1/2.1", "pb1/2.2"}
    finally:
        node.stop()


def test_a_lab_server_and_a_workstation_pair_with_a_join_code(world: IdcWorld, tmp_path: Path) -> None:
    server_home, desk_home = tmp_path / "server", tmp_path / "desk"
    world.install(server_home)
    world.install(desk_home)
    server = HeadlessNode(server_home)
    desk: HeadlessNode | None = None
    try:
        rs = as_json(
            mediator(
                server_home,
                "--json",
                "sets",
                "create",
                "Server set",
                "--add",
                "idc/other_c",
                "--visibility",
                "cluster",
            )
        )
        code = mediator(server_home, "join-code").stdout.strip()
        desk = HeadlessNode(desk_home, "--join", code)
        status = as_json(mediator(desk_home, "--json", "status"))
        assert len(status["cluster"]["members"]) == 2
        assert [s["id"] for s in as_json(mediator(desk_home, "--json", "sets", "list"))] == [rs["id"]]
        used = mediator(desk_home, "join", code, code=EXIT_USER_ERROR)
        assert "already a member of a cluster of 2" in used.stderr
        left = as_json(mediator(desk_home, "--json", "leave"))
        assert len(left["members"]) == 1
        assert as_json(mediator(desk_home, "--json", "sets", "list")) == []
    finally:
        if desk is not None:
            desk.stop()
        server.stop()


@pytest.mark.timeout(240)
def test_archive_updates_from_a_terminal_for_the_owner_and_a_reader(world: IdcWorld, tmp_path: Path) -> None:
    """The owner's lab server holds the scanner folder; a reader's workstation joined the cluster
    without it. The owner checks, looks, accepts and downloads only the changes; the reader's check
    fails for want of the archive, and the reader may only take the update into a copy, or decline it."""
    folder = tmp_path / "scanner"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT", pixels=8)
    make_series(folder, "P2", "1.2.2", "1.2.2.1", 3, modality="MR", pixels=8)
    owner_home, reader_home = tmp_path / "owner", tmp_path / "reader"
    lab = {"kind": "local", "id": "lab", "options": {"folder": str(folder)}}
    # No scheduled checks: only the commands below check.
    world.settings(owner_home, sources=(lab,), update_check_minutes=0).save(
        owner_home / "config" / "settings.json"
    )
    world.install(reader_home)
    owner = HeadlessNode(owner_home)
    reader: HeadlessNode | None = None
    try:
        mediator(
            owner_home,
            "sets",
            "create",
            "Scans",
            "--add",
            "lab/P1",
            "--add",
            "lab/P2",
            "--visibility",
            "public",
        )
        first = as_json(mediator(owner_home, "--json", "download", "Scans", str(tmp_path / "out")))
        assert len(first["report"]["fetched"]) == 2
        assert mediator(owner_home, "sets", "check").stdout.splitlines() == ["Scans v1: up to date"]
        nothing = mediator(owner_home, "sets", "accept", "Scans", code=EXIT_NOT_FOUND)
        assert "no archive update" in nothing.stderr
        # The scanner adds a series and more images to another one.
        make_series(folder, "P1", "1.2.1", "1.2.1.9", 4, modality="CT", pixels=8)
        make_series(folder, "P2", "1.2.2", "1.2.2.1", 5, modality="MR", pixels=8)
        mediator(owner_home, "sources", "rescan", "lab")
        found = mediator(owner_home, "sets", "check", "Scans")
        assert found.stdout.startswith("Scans v1: update found: +1 series") and "1 revised" in found.stdout
        assert "mediator sets drift" in found.stderr
        [listed] = mediator(owner_home, "sets", "list").stdout.splitlines()
        assert "\tv1\t2 leaves\t" in listed and "\tupdate: +1 series (" in listed
        assert listed.endswith("), 1 revised")
        shown = mediator(owner_home, "sets", "show", "Scans").stdout
        assert "  archive update: +1 series (" in shown and "(see `mediator sets drift Scans`)" in shown
        drift = mediator(owner_home, "sets", "drift", "Scans").stdout.splitlines()
        assert drift[0].startswith("Scans v1: archive update: +1 series")
        assert "+ lab/P1/1.2.1/1.2.1.9" in drift and "~ lab/P2/1.2.2/1.2.2.1" in drift
        assert any(line.startswith("  last check: ") and line.endswith("worked") for line in drift)
        as_data = as_json(mediator(owner_home, "--json", "sets", "drift", "Scans"))
        assert (as_data["track"]["drift"]["added"], as_data["track"]["drift"]["revised"]) == (1, 1)
        assert as_data["diff"]["changed_leaves"] == ["lab/P2/1.2.2/1.2.2.1"]
        # A reader joins; their node has no such archive, so their check fails and says why.
        code = mediator(owner_home, "join-code").stdout.strip()
        reader = HeadlessNode(reader_home, "--join", code)
        failed = mediator(reader_home, "sets", "check", "Scans", code=EXIT_ARCHIVE_ERROR)
        assert failed.stdout.startswith(
            "Scans v1: check failed: archive 'lab' is not configured on this node"
        )
        failed_json = as_json(
            mediator(reader_home, "--json", "sets", "check", "Scans", code=EXIT_ARCHIVE_ERROR)
        )
        assert "not configured" in failed_json[0]["error"] and failed_json[0]["drift"]["added"] == 1
        assert "update: +1 series" in mediator(reader_home, "sets", "list").stdout
        refused = mediator(reader_home, "sets", "accept", "Scans", code=EXIT_PERMISSION_DENIED)
        assert "only the owner and editors" in refused.stderr and "--fork" in refused.stderr
        unnamed = mediator(reader_home, "sets", "accept", "Scans", "--name", "x", code=EXIT_USER_ERROR)
        assert "use it with --fork" in unnamed.stderr
        copy = mediator(reader_home, "sets", "accept", "Scans", "--fork", "--name", "My scans")
        assert copy.stdout.startswith(
            "My scans (a new set of yours, with the update of Scans): version 2, 3 leaves"
        )
        declined = mediator(reader_home, "sets", "decline", "Scans")
        assert declined.stdout.startswith("Scans: declined the archive update (+1 series")
        assert "update:" not in mediator(reader_home, "sets", "list").stdout
        # The owner still sees it, takes it, and downloads only what changed into the same folder.
        assert "update: +1 series" in mediator(owner_home, "sets", "list").stdout
        seen = mediator(owner_home, "sets", "drift", "Scans").stdout
        assert seen.startswith("Scans v1: archive update: +1 series")  # whatever the last check said
        assert mediator(reader_home, "sets", "drift", "Scans").stdout.startswith(
            "Scans v1: archive update (declined): +1 series"
        )
        accepted = mediator(owner_home, "sets", "accept", "Scans")
        assert accepted.stdout.startswith("Scans: version 2, 3 leaves")
        assert "mediator download Scans FOLDER" in accepted.stderr
        assert "update:" not in mediator(owner_home, "sets", "list").stdout
        again = as_json(mediator(owner_home, "--json", "download", "Scans", str(tmp_path / "out")))
        assert sorted(again["report"]["fetched"]) == ["lab/P1/1.2.1/1.2.1.9", "lab/P2/1.2.2/1.2.2.1"]
        assert again["report"]["unchanged"] == 1 and again["version"] == 2
        assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2 + 4 + 5
    finally:
        if reader is not None:
            reader.stop()
        owner.stop()


def test_without_a_node_the_sdk_can_be_told_not_to_start_one(mediator_home: Path) -> None:
    script = "from mediator_desktop import Mediator\nMediator(start=False)"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env_for(mediator_home), capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "NodeUnreachable" in out.stderr and "mediator node run" in out.stderr


def test_lab_servers_configured_with_a_shared_secret_file_and_peers(world: IdcWorld, tmp_path: Path) -> None:
    short = tmp_path / "short.secret"
    short.write_text("tiny\n")
    refused = mediator(tmp_path / "x", "node", "run", "--secret-file", str(short), code=EXIT_USER_ERROR)
    assert "shorter than 16" in refused.stderr
    secret = tmp_path / "cluster.secret"
    secret.write_text("a-secret-both-servers-share-0123456789\n")
    a_port, b_port = free_ports(2)
    homes = [tmp_path / "a", tmp_path / "b"]
    addresses = [f"127.0.0.1:{a_port}", f"127.0.0.1:{b_port}"]
    nodes: list[HeadlessNode] = []
    try:
        for home, me, other in zip(homes, addresses, reversed(addresses), strict=True):
            world.install(home)
            args = ("--data-dir", str(home / "elsewhere"), "--listen", me, "--peer", other)
            nodes.append(HeadlessNode(home, *args, "--secret-file", str(secret), wait=False))
        for node in nodes:  # each waits for the other: a member alone has no quorum
            node.wait_ready()
        assert nodes[0].ready["data_dir"] == str(homes[0] / "elsewhere")
        created = as_json(mediator(homes[0], "--json", "sets", "create", "Both", "--visibility", "cluster"))
        listed = as_json(mediator(homes[1], "--json", "sets", "list"))
        assert [s["id"] for s in listed] == [created["id"]]
        status = as_json(mediator(homes[1], "--json", "status"))["cluster"]
        assert sorted(m["address"] for m in status["members"]) == sorted(addresses) and status["has_quorum"]
    finally:
        for node in nodes:
            node.stop()


def test_an_archive_that_went_away_fails_the_download_fast_with_one_message(tmp_path: Path) -> None:
    from tests.helpers.tcia_emulator import TciaEmulator

    home = tmp_path / "home"
    with TciaEmulator() as emulator:
        mediator(home, "sources", "add", "tcia", "--base-url", emulator.v4)
        mediator(home, "sets", "create", "Sarcoma", "--add", "tcia/SOFT-TISSUE-SARCOMA")
    # the archive is gone (its port refuses): one message naming it, not one line per series
    out = mediator(home, "download", "Sarcoma", str(tmp_path / "dl"), code=EXIT_DOWNLOAD_INCOMPLETE)
    assert out.stderr.count("cannot reach") == 1, out.stderr
    assert "check the network, a proxy or VPN" in out.stderr and "127.0.0.1" in out.stderr
    # Fast: the download's own clock (the summary's "in X s", from the engine's start to its report),
    # not the command's, whose Python and node start-up on a loaded machine say nothing about the
    # archive. A refused port fails in milliseconds and the rest of its series are given up on;
    # one series retried with backoff (0.5 + 1 + 2 s) would miss the bound.
    summary = re.search(r"\d+ failed in (\d+\.\d) s", out.stdout)
    assert summary, out.stdout
    took = float(summary[1])
    print(f"timing: the download of an archive that went away took {took} s by its own clock")
    assert took <= GONE_ARCHIVE_S, f"the download took {took} s: {out.stdout}"


def test_ctrl_c_stops_a_download_at_once(tmp_path: Path) -> None:
    from tests.helpers.tcia_emulator import TciaEmulator

    home = tmp_path / "home"
    node = HeadlessNode(home)
    try:
        with TciaEmulator() as emulator:
            mediator(home, "sources", "add", "tcia", "--base-url", emulator.v4)
            mediator(home, "sets", "create", "Lung", "--add", "tcia/LIDC-IDRI")
            emulator.image_delay = 120.0  # every series hangs: the archive is slow, not gone
            proc = subprocess.Popen(
                [sys.executable, "-m", "mediator_desktop.cli", "download", "Lung", str(tmp_path / "dl")],
                env=env_for(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # As typed in a terminal: Ctrl-C on. A test run started in the background by a
                # script inherits SIGINT ignored (POSIX, for asynchronous lists), and so would the CLI.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            try:
                deadline = time.monotonic() + 60
                while not emulator.image_requests and time.monotonic() < deadline:
                    assert proc.poll() is None, proc.communicate()
                    time.sleep(0.05)
                assert emulator.image_requests, "the download never asked for a series"
                # The user is not kept waiting: wall time, but only what follows the key press (the
                # CLI's start-up is behind it): the CLI cancels the node's job, waits for it to end
                # and exits. CTRL_C_S holds on a loaded machine; a Ctrl-C ignored, or a cancel that
                # waits for the series in flight (120 s) or for the job's 10 s long poll, misses it.
                started = time.monotonic()
                proc.send_signal(signal.SIGINT)
                try:
                    _, err = proc.communicate(timeout=CTRL_C_S + 30)
                except subprocess.TimeoutExpired:
                    stop_process(proc)
                    _, err = proc.communicate()
                    log = Path(node.ready["log_file"]).read_text()[-3000:]  # the node's side of it
                    pytest.fail(f"Ctrl-C did not stop the download in {CTRL_C_S + 30} s: {err}\n{log}")
                took = time.monotonic() - started
            finally:
                stop_process(proc)
            assert proc.returncode == EXIT_INTERRUPTED, err
            assert "cancelled" in err and "run the same command again to resume" in err
            print(f"timing: Ctrl-C stopped the download {took:.3f} s after the signal")
            assert took <= CTRL_C_S, f"Ctrl-C took {took:.2f} s to stop the download"
            os.environ[HOME_ENV] = str(home)
            try:
                with Mediator(start=False) as m:  # the node's job was cancelled, not left running
                    assert [j.state for j in m.downloads()] == ["cancelled"]
            finally:
                del os.environ[HOME_ENV]
    finally:
        node.stop()
