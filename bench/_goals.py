"""A benchmark's parts and goals: each part runs in one scratch folder, a part that fails is said
out loud (and misses its goals), and every benchmark ends with one JSON line of its figures and
``goals_missed``, exiting 1 when a goal was missed."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn

#: Each goal's figure name -> (the part of the benchmark that measures it, the test of the figures).
Goals = Mapping[str, tuple[str, Callable[[dict[str, Any]], bool]]]
#: A part of a benchmark: given a scratch folder, its number of rounds and the figures to fill.
Part = Callable[[Path, int, dict[str, Any]], None]


def run_parts(
    name: str,
    parts: Mapping[str, Callable[[Path, dict[str, Any]], None]],
    skip: Collection[str],
    out: dict[str, Any],
) -> dict[str, str]:
    """Run the parts not in ``skip``, in order, each given one scratch folder (readable by nginx's
    unprivileged workers) and ``out`` for its figures; returns the errors of the parts that failed."""
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=f"mediator-bench-{name}-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        for part_name, part in parts.items():
            if part_name in skip:
                continue
            started = time.perf_counter()
            try:
                part(work, out)
            except Exception as exc:  # noqa: BLE001  (a part that fails misses its goals, said out loud)
                errors[part_name] = f"{type(exc).__name__}: {exc}"
                print(f"{part_name}: failed: {errors[part_name]}", file=sys.stderr, flush=True)
            print(f"-- {part_name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        shutil.rmtree(work, ignore_errors=True)  # files nginx's workers wrote included
    return errors


def finish(
    out: dict[str, Any], goals: Goals, skip: Collection[str] = (), errors: Mapping[str, str] | None = None
) -> NoReturn:
    """Print the last line (``out`` with ``errors`` and ``goals_missed``) and exit: 1 when a goal
    of a part that ran was missed or not measured, else 0."""
    missed = sorted(
        name for name, (part, met) in goals.items() if part not in skip and (name not in out or not met(out))
    )
    if errors:
        out["errors"] = dict(errors)
    out["goals_missed"] = missed
    print(json.dumps(out))
    sys.exit(1 if missed else 0)


def arguments(
    doc: str, parts: Collection[str], configure: Callable[[argparse.ArgumentParser], None] | None = None
) -> tuple[argparse.Namespace, set[str]]:
    """A benchmark's command line: ``--rounds N``, ``--skip PART,...`` (checked against ``parts``)
    and whatever ``configure`` adds; returns the arguments and the parts to skip."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the timed parts (default 3)")
    parser.add_argument("--skip", default="", help="comma-separated parts: " + ", ".join(parts))
    if configure is not None:
        configure(parser)
    args = parser.parse_args()
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    unknown = skip - set(parts)
    if unknown:
        parser.error(f"no part {', '.join(sorted(unknown))}; the parts: {', '.join(parts)}")
    return args, skip


def main(
    name: str,
    doc: str,
    parts: Mapping[str, Part],
    goals: Goals,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
    rounds: Callable[[argparse.Namespace, str], int] = lambda args, part: int(args.rounds),
) -> NoReturn:
    """A benchmark's whole run: its command line, each part in order with its rounds (``rounds``
    per part; default ``--rounds``), then the last line with ``goals_missed`` and the exit status."""
    args, skip = arguments(doc, parts, configure)
    out: dict[str, Any] = {}
    runs = {
        part_name: functools.partial(
            lambda part, n, work, out: part(work, n, out), part, rounds(args, part_name)
        )
        for part_name, part in parts.items()
    }
    failed = run_parts(name, runs, skip, out)
    finish(out, goals, skip, failed)
