"""Start at login: the freedesktop autostart entry (``~/.config/autostart/mediator-desktop.desktop``)
that the "Start at login" setting writes and removes. The entry starts the app minimised to the
tray (``MEDIATOR_MINIMISED=1``). No Qt here: the window calls ``apply`` when the settings change."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: Set to 1 (by the autostart entry) to start with the window hidden, in the tray.
MINIMISED_ENV = "MEDIATOR_MINIMISED"
FILE_NAME = "mediator-desktop.desktop"


def entry_path() -> Path:
    """Where the desktop looks for autostart entries (XDG Autostart)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / FILE_NAME


def command() -> str:
    """The installed ``mediator-desktop`` (or this Python running the app's module)."""
    found = shutil.which("mediator-desktop")
    return found if found else f"{sys.executable} -m mediator_desktop.ui.app"


def entry_text() -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=MEDIator Desktop\n"
        "Comment=Replica sets of medical imaging data, in the tray\n"
        f"Exec=env {MINIMISED_ENV}=1 {command()}\n"
        "Icon=mediator-desktop\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def apply(enabled: bool) -> Path:
    """Write (``enabled``) or remove the autostart entry; returns its path. Raises OSError when the
    folder cannot be written."""
    path = entry_path()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry_text(), encoding="utf-8")
        log.info("start at login: wrote %s", path)
    elif path.exists():
        path.unlink()
        log.info("start at login: removed %s", path)
    return path


def enabled() -> bool:
    return entry_path().is_file()
