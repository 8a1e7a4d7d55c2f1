"""The bundle's one executable: ``mediator-desktop`` starts the app, ``mediator`` (a link to the same
file) is the CLI. One program for both keeps the bundle to a single copy of Python and its libraries."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def main() -> int:
    # The transfer engine hashes in a "spawn" process pool: its children run this same executable.
    multiprocessing.freeze_support()
    name = Path(sys.argv[0]).name
    if name in ("mediator", "mediator-cli"):
        from mediator_desktop.cli import main as cli

        return cli()
    from mediator_desktop.ui.app import main as app

    return app()


if __name__ == "__main__":
    sys.exit(main())
