"""Folders only this user may read."""

from __future__ import annotations

import stat
from pathlib import Path

from mediator_desktop.core.paths import private_dir


def test_private_dir_makes_every_missing_folder_private(tmp_path: Path) -> None:
    target = tmp_path / "home" / "data" / "logs"
    private_dir(target)
    for folder in (tmp_path / "home", tmp_path / "home" / "data", target):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_private_dir_closes_an_existing_folder_opened_by_an_older_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    private_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
