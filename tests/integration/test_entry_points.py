"""The installed commands, run as a user runs them: in their own processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mediator_desktop
from mediator_desktop import __version__
from mediator_desktop.core.manifest import Fingerprint, Leaf, Manifest

BIN = Path(sys.executable).parent


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )


def test_mediator_version_and_info(mediator_home: Path) -> None:
    done = run(str(BIN / "mediator"), "--version")
    assert done.returncode == 0
    assert __version__ in done.stdout
    done = run(str(BIN / "mediator"), "--json", "info")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data_dir"] == str(mediator_home / "data")


def test_mediator_manifest_diff(tmp_path: Path) -> None:
    a = Manifest.build([Leaf("idc", ("c", "p", "s", "1"), Fingerprint(size=5))])
    b = Manifest.build([Leaf("idc", ("c", "p", "s", "2"), Fingerprint(size=7))])
    (tmp_path / "a").write_bytes(a.encode())
    (tmp_path / "b").write_bytes(b.encode())
    done = run(str(BIN / "mediator"), "manifest", "diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "+1 leaf (7 B) in 1 level-3 group, -1 leaf (5 B) in 1 level-3 group"
    (tmp_path / "bad").write_bytes(b"garbage\n")
    done = run(str(BIN / "mediator"), "manifest", "diff", str(tmp_path / "a"), str(tmp_path / "bad"))
    assert done.returncode == 1
    assert "not a manifest" in done.stderr
    assert "Traceback" not in done.stderr


def test_desktop_app_starts_and_quits(mediator_home: Path) -> None:
    done = run(
        str(BIN / "mediator-desktop"), "--quit-after", "0.3", env={"QT_QPA_PLATFORM": "offscreen"}, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert "MEDIator Desktop" in done.stderr
    assert "started" in done.stderr
    assert (mediator_home / "data").is_dir()


def test_desktop_app_without_a_display_runs_offscreen_with_a_warning() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run(
        [str(BIN / "mediator-desktop"), "--quit-after", "0.2"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "no display found" in done.stderr


BLOCK_QT = """
import sys
class BlockQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PySide6", "shiboken6"):
            raise ImportError("PySide6 is not installed here")
sys.meta_path.insert(0, BlockQt())
"""


def python_prints(code: str) -> str:
    """What ``code`` printed, run by a Python of its own (nothing imported yet); it must succeed."""
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sdk_imports_without_pyside6() -> None:
    code = BLOCK_QT + (
        "import mediator_desktop as m\n"
        "s = m.Selection.of(m.Pointer.of('idc', 'nlst', Modality='CT'))\n"
        "b = m.ManifestBuilder(); b.add('idc', ('nlst', 'p', 's', 'se'), size=1); mf = b.build()\n"
        "import mediator_desktop.node, mediator_desktop.cli\n"
        "assert not any(k.startswith('PySide6') for k in sys.modules)\n"
        "try:\n"
        "    import PySide6\n"
        "except ImportError:\n"
        "    print('blocked', len(mf), len(s))\n"
    )
    assert python_prints(code) == "blocked 1 1"


def test_package_names_load_on_first_use() -> None:
    """``import mediator_desktop`` (paid by every command before it does anything) loads none of
    the domain modules; each public name still resolves to its class."""
    code = (
        "import sys, mediator_desktop as m\n"
        "loaded = [k for k in sys.modules if k.startswith('mediator_desktop.')]\n"
        "assert loaded == ['mediator_desktop._version'], loaded\n"
        "from mediator_desktop.core import diff, errors, manifest, pointer, replica, selection\n"
        "from mediator_desktop import sdk\n"
        "homes = [diff, errors, manifest, pointer, replica, selection, sdk]\n"
        "for name in m.__all__:\n"
        "    if name != '__version__':\n"
        "        assert any(getattr(h, name, None) is getattr(m, name) for h in homes), name\n"
        "assert set(m.__all__) <= set(dir(m))\n"
        "print(len(m.__all__))\n"
    )
    assert python_prints(code) == str(len(mediator_desktop.__all__))
    with pytest.raises(AttributeError, match="module 'mediator_desktop' has no attribute 'Nothing'"):
        _ = mediator_desktop.Nothing
