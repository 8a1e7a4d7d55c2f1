"""The Debian package as a lab installs it: ``dpkg -i`` (as root), the desktop integration files in
place and valid, ``/usr/bin/mediator-desktop`` started on a private Xvfb display shows its window
(found by ``xdotool search --name MEDIator``), its local API answers ``/usr/bin/mediator``, a
``.tcia`` file opened as a file manager opens it reaches the running app (a set appears, no second
app starts), Ctrl+Q quits it cleanly; then ``dpkg -r``.

Run by ``make package-test`` (which builds the package once and names it in MEDIATOR_PACKAGE_DEB;
``.ci/run`` runs it after ``make test``); skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import idc_index_data
import pyarrow.parquet as pq
import pytest

from mediator_desktop import __version__
from mediator_desktop.core.endpoint import Endpoint
from tests.helpers.installed_app import BIN, Desktop, InstalledApp, windows

DEB_ENV = "MEDIATOR_PACKAGE_DEB"
APP_ID = "io.github.mediator.MediatorDesktop"
MIME_TYPES = (
    "application/x-tcia-manifest",
    "application/x-idc-s5cmd-manifest",
    "application/x-mediator-set+json",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not os.environ.get(DEB_ENV), reason=f"no {DEB_ENV}: make package-test"),
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="dpkg -i needs root on Debian"),
]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    deb = Path(os.environ[DEB_ENV]).resolve()
    assert deb.is_file(), f"{deb} is not there: make package builds it"
    info = run("dpkg-deb", "--field", str(deb), "Package", "Version")
    assert info.stdout.split() == ["Package:", "mediator-desktop", "Version:", __version__], info.stdout
    done = run("dpkg", "-i", str(deb))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    try:
        yield deb
    finally:
        removed = run("dpkg", "-r", "mediator-desktop")
        assert removed.returncode == 0, removed.stderr[-2000:]
        assert not (BIN / "mediator-desktop").exists() and not Path("/opt/mediator-desktop").exists()


def test_the_package_installs_the_commands_and_the_desktop_integration(installed: Path) -> None:
    for command in ("mediator", "mediator-desktop"):
        assert (BIN / command).resolve().is_relative_to(Path("/opt/mediator-desktop"))
        done = run(str(BIN / command), "--version", timeout=60)
        assert done.returncode == 0 and __version__ in done.stdout, done.stderr
    share = Path("/usr/share")
    desktop = share / "applications" / "mediator-desktop.desktop"
    metainfo = share / "metainfo" / f"{APP_ID}.metainfo.xml"
    assert "Exec=mediator-desktop %F" in desktop.read_text()
    if shutil.which("desktop-file-validate"):
        done = run("desktop-file-validate", str(desktop))
        assert done.returncode == 0, done.stdout + done.stderr
    done = run("appstreamcli", "validate", "--no-net", str(metainfo))
    assert done.returncode == 0, done.stdout + done.stderr
    icons = share / "icons" / "hicolor"
    assert (icons / "scalable" / "apps" / "mediator-desktop.svg").is_file()
    for size in (16, 32, 48, 64, 128, 256):
        assert (icons / f"{size}x{size}" / "apps" / "mediator-desktop.png").is_file()
    # dpkg's triggers ran shared-mime-info and desktop-file-utils: the types are known, and the
    # file manager's "open with" for them is the app.
    cache = (share / "applications" / "mimeinfo.cache").read_text()
    for mime in MIME_TYPES:
        assert (share / "mime" / f"{mime}.xml").is_file()
        assert f"{mime}=mediator-desktop.desktop;" in cache


def test_files_are_recognised_by_the_shared_mime_database(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "cohort.tcia").write_text("downloadServerUrl=x\nListOfSeriesToDownload=\n1.2.3\n")
    (tmp_path / "cohort.s5cmd").write_text("cp s3://idc-open-data/abc/* .\n")
    export = {"format": "mediator-set", "version": 1, "name": "Lung CT", "description": "", "selection": []}
    (tmp_path / "Lung_CT_v3.json").write_text(json.dumps(export, indent=2))  # as the app writes it
    (tmp_path / "compact_v3.json").write_text(json.dumps(export, separators=(",", ":")))  # the local API
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    # Qt reads the system's shared-mime-info database as a file manager does (a new process: fresh cache).
    probe = (
        "import sys; from PySide6.QtCore import QMimeDatabase; db = QMimeDatabase(); "
        "print(' '.join(db.mimeTypeForFile(p).name() for p in sys.argv[1:]))"
    )
    names = ["cohort.tcia", "cohort.s5cmd", "Lung_CT_v3.json", "compact_v3.json", "other.json"]
    done = run(sys.executable, "-c", probe, *(str(tmp_path / n) for n in names), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [*MIME_TYPES, MIME_TYPES[2], "application/json"]
    if shutil.which("gio"):  # GLib's answer: what GNOME's, Xfce's and most file managers use
        types = [run("gio", "info", "-a", "standard::content-type", str(tmp_path / n)).stdout for n in names]
        assert [t.split("content-type:")[1].strip() for t in types] == done.stdout.split()


def idc_series(count: int) -> list[str]:
    table = pq.read_table(
        str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH),
        columns=["SeriesInstanceUID"],
        filters=[("collection_id", "=", "rider_pilot"), ("Modality", "=", "CT")],
    )
    return sorted(table.column("SeriesInstanceUID").to_pylist())[:count]


def test_the_installed_app_runs_once_takes_opened_files_and_quits(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    manifest = tmp_path / "rider.tcia"
    manifest.write_text("manifestVersion=3.0\nListOfSeriesToDownload=\n" + "\n".join(idc_series(3)) + "\n")
    with Desktop() as desktop:
        app = InstalledApp(desktop, home)
        try:
            shown = app.wait_for_window(120)
            print(f"main window shown {shown:.2f} s after the start")
            assert windows(app.env)  # what the issue names: xdotool search --name MEDIator
            app.wait_for(lambda: app.command("--json", "status").returncode == 0, "the local API", 120)
            status = json.loads(app.command("--json", "status").stdout)
            assert status["node"]["data_dir"] == str(home / "data")
            served = Endpoint.read(home / "data")
            assert served is not None and served.pid == app.process.pid
            # Double-clicked in a file manager: Exec=mediator-desktop %F, from some other folder.
            second = subprocess.run(
                [str(BIN / "mediator-desktop"), manifest.name],
                cwd=tmp_path,
                env=app.env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert second.returncode == 0, second.stderr[-3000:]
            assert "handed it 1 file(s)" in second.stderr and "node " not in second.stderr

            def imported() -> bool:
                listed = app.command("--json", "sets", "list")
                return listed.returncode == 0 and "rider" in [s["name"] for s in json.loads(listed.stdout)]

            app.wait_for(imported, "the set imported from rider.tcia", 120)
            shown_sets = json.loads(app.command("--json", "sets", "show", "rider").stdout)
            assert "rider_pilot" in json.dumps(shown_sets)  # found in IDC's index, inside the bundle
            code, err = app.quit(60)
            assert code == 0, err[-3000:]
            assert "node stopped" in err and "Traceback" not in err
            # The file stays, no longer naming the process, with the token the next start serves again.
            left = Endpoint.read(home / "data")
            assert left is not None, "local-api.json is gone: the next start would serve another token"
            assert left == Endpoint(served.url, served.token, 0, served.version), left
        finally:
            app.kill()
