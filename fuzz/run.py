"""Run fuzz targets.

    python -m fuzz.run TARGET [libFuzzer options] [CORPUS...]   one target (atheris/libFuzzer)
    python -m fuzz.run --all [--seconds N]                       each target in turn (make fuzz)
    python -m fuzz.run --list

With ``--all``, new inputs go to ``.fuzz/<target>/`` (not committed) and crashes to ``.fuzz/``;
the committed seeds in ``fuzz/corpus/<target>/`` are read, never written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def main(argv: list[str]) -> int:
    from fuzz.targets import TARGETS

    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "--list":
        print("\n".join(TARGETS))
        return 0
    if argv[0] == "--all":
        seconds = int(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 300
        failed = []
        for name in TARGETS:
            work = ROOT / ".fuzz" / name
            work.mkdir(parents=True, exist_ok=True)
            print(f"== {name}: {seconds} s", flush=True)
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "fuzz.run",
                    name,
                    f"-max_total_time={seconds}",
                    "-print_final_stats=1",
                    f"-artifact_prefix={ROOT / '.fuzz'}/{name}-",
                    str(work),
                    str(CORPUS / name),
                ],
                cwd=ROOT,
            )
            if code:
                failed.append(name)
        print("crashed: " + (", ".join(failed) or "none"))
        return 1 if failed else 0
    import atheris

    from fuzz.targets import guarded

    name, options = argv[0], argv[1:]
    target = TARGETS.get(name)
    if target is None:
        print(f"unknown target {name!r}; one of {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    one = guarded(target, target.factory())
    atheris.Setup([sys.argv[0], *options], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
