"""The ``mediator`` command. Later issues add sets, sources, downloads and the headless node."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mediator_desktop import __version__
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.settings import Settings

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE = 0, 1, 2


def _info(args: argparse.Namespace) -> int:
    settings = Settings.load()
    data = {"version": __version__, **settings.to_json()}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for name, title, _ in Settings.describe():
            print(f"{title}: {data[name]}")
    return EXIT_OK


def _manifest_diff(args: argparse.Namespace) -> int:
    old, new = (Manifest.decode(Path(p).read_bytes()) for p in (args.old, args.new))
    diff = ManifestDiff.between(old, new)
    if args.json:
        print(
            json.dumps(
                {
                    "old": old.id,
                    "new": new.id,
                    "summary": diff.summary(),
                    "added": len(diff.added),
                    "removed": len(diff.removed),
                    "changed": len(diff.changed),
                }
            )
        )
    else:
        print(diff.summary())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediator", description="MEDIator Desktop from the terminal.")
    parser.add_argument("--version", action="version", version=f"mediator {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="show version and settings")
    info.set_defaults(run=_info)
    manifest = commands.add_parser("manifest", help="work with manifest files")
    manifest_commands = manifest.add_subparsers(dest="manifest_command", required=True)
    diff = manifest_commands.add_parser("diff", help="what changed between two manifest files")
    diff.add_argument("old", help="the older manifest (canonical encoding)")
    diff.add_argument("new", help="the newer manifest")
    diff.set_defaults(run=_manifest_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (MediatorError, OSError) as exc:
        print(f"mediator: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
