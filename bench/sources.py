"""Sources benchmark: the real IDC index beside idc-index, the TCIA, GDC and PathDB clients against
their emulators, and the three-archive radiogenomic join, in one run.

Figures (last line, one JSON object): ``idc_load_s`` (open the index), ``idc_collections_ms``,
``idc_resolve_collection_s`` (nlst, 592,600 series), ``idc_resolve_all_s`` (every series),
``idc_manifest_nlst_s`` (the s5cmd manifest of nlst), ``peak_rss_mb``, ``idcindex_manifest_nlst_s``
(idc-index's ``IDCClient.sql_query``, as its users write that manifest) and
``ratio_manifest_vs_idcindex``; ``tcia_emulator_series_per_s``: series resolved per second through
our TCIA client from the NBIA emulator; ``gdc_resolve_10k_files_s`` (a project of 10,000 files
from the GDC emulator, paged), ``gdc_download_s`` and ``curl_gdc_download_s`` (500 x 1 MB files from
the emulator's ``/data/{uuid}``: our engine in-process against ``curl --parallel``, cleanup outside
both clocks, rounds alternating) and their ratio ``gdc_download_vs_curl``; ``cohort_join_ms``: the
TCGA-LUAD cases with CT in IDC matched in GDC and PathDB, with RNA-Seq and a slide (median of
rounds, after the sources are loaded).

The last line also carries ``goals_missed`` (the goals missed; a part that fails misses its goals
and is named under ``errors``). Goals (checked here; the run exits 1 on a miss): load <= 1 s,
collections <= 20 ms, resolve nlst <= 1 s, resolve all <= 3 s, RSS <= 1,000 MB, ratio to idc-index
<= 0.25, GDC resolve <= 3 s, GDC download <= 1.5 x curl, cohort join <= 500 ms.

Usage: ``python bench/sources.py [--skip idcindex,gdc] [--rounds 3]`` (``pip install -e '.[bench]'``
brings idc-index).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, Part
from bench._goals import main as run_bench
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.idc import IdcSource

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


IDCINDEX = """
import time, json
from idc_index import IDCClient
client = IDCClient()
t = time.perf_counter()
urls = client.sql_query("SELECT series_aws_url FROM index WHERE collection_id = 'nlst'")["series_aws_url"]
text = "".join(f"cp {u} .\\n" for u in urls)
print(json.dumps({"s": time.perf_counter() - t, "lines": text.count("\\n")}))
"""


def tcia_series_per_s() -> float:
    """Series resolved per second through the TCIA client from the NBIA emulator (loopback)."""
    from mediator_desktop.sources.tcia import TciaSource
    from tests.helpers.tcia_emulator import TciaEmulator, catalogue_from_idc

    series = catalogue_from_idc(("lidc_idri", "soft_tissue_sarcoma", "tcga_kirc"), patients=40)
    with TciaEmulator(series) as emulator:
        source = TciaSource(base_url=emulator.v4)
        t = time.perf_counter()
        manifest = source.resolve(Selection.of(source.pointer()))
        elapsed = time.perf_counter() - t
    assert len(manifest) == len(series)
    return round(len(series) / elapsed, 1)


def bench_idc(work: Path, rounds: int, out: dict[str, Any]) -> None:
    source = IdcSource()
    t = time.perf_counter()
    source.load()
    out["idc_load_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    collections = source.browse(limit=10_000)
    out["idc_collections_ms"] = round((time.perf_counter() - t) * 1000, 3)
    t = time.perf_counter()
    nlst = source.resolve(Selection.of(source.pointer("nlst")))
    out["idc_resolve_collection_s"] = round(time.perf_counter() - t, 3)
    out["nlst_series"] = len(nlst)
    del nlst
    t = time.perf_counter()
    everything = source.resolve(Selection.of(*(source.pointer(c.key) for c in collections.items)))
    out["idc_resolve_all_s"] = round(time.perf_counter() - t, 3)
    out["all_series"] = len(everything)
    del everything
    t = time.perf_counter()
    manifest = source.s5cmd_manifest(Selection.of(source.pointer("nlst")))
    out["idc_manifest_nlst_s"] = round(time.perf_counter() - t, 3)
    out["manifest_lines"] = manifest.count("\ncp ") + manifest.startswith("cp ")
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)


def bench_idcindex(work: Path, rounds: int, out: dict[str, Any]) -> None:
    """idc-index writing the same manifest; a failure to run is an error, never a silent null."""
    done = subprocess.run([sys.executable, "-c", IDCINDEX], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"idc-index did not run: {done.stderr.strip()[-500:]}")
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    out["idcindex_manifest_nlst_s"] = round(theirs["s"], 3)
    if "idc_manifest_nlst_s" in out:
        out["ratio_manifest_vs_idcindex"] = round(out["idc_manifest_nlst_s"] / theirs["s"], 3)


def bench_tcia(work: Path, rounds: int, out: dict[str, Any]) -> None:
    out["tcia_emulator_series_per_s"] = tcia_series_per_s()


def _source(kind: str, url: str, work: Path, secret: str | None = None) -> Any:
    from mediator_desktop.sources.registry import build_one

    return build_one({"kind": kind, "id": kind, "options": {"base_url": url}}, work / kind, secret)


def bench_gdc(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from bench.transfer import run
    from mediator_desktop.core.transfer import Downloader
    from mediator_desktop.sources.transport import CurlTransport
    from tests.helpers.gdc_emulator import GdcEmulator, synthetic_catalogue
    from tests.helpers.net import free_ports

    with GdcEmulator(synthetic_catalogue(10_000, file_size=2_000, cases=500)) as gdc:
        source = _source("gdc", gdc.url, work)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            manifest = source.resolve(Selection.of(Pointer.of("gdc", "TCGA", "TCGA-LUAD")))
            times.append(time.perf_counter() - t)
            if len(manifest) != 10_000:
                raise RuntimeError(f"resolved {len(manifest):,} files, not 10,000")
        out["gdc_resolve_10k_files_s"] = round(statistics.median(times), 3)
        out["gdc_resolve_10k_files_max_s"] = round(max(times), 3)

    # The emulator serves from its own process, so neither client shares the GIL with it.
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.gdc_emulator", "--port", str(port), "--synthetic", "500",
         "--file-size", "1000000", "--cases", "50"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "GDC emulator at ...": it serves
        url = f"http://127.0.0.1:{port}/"
        source = _source("gdc", url, work, secret="gdc-token")
        manifest = source.resolve(Selection.of(Pointer.of("gdc", "TCGA", "TCGA-LUAD")))
        uuids = [leaf.fingerprint.version for leaf in manifest]
        config = work / "curl.txt"
        config.write_text("".join(f'url = "{url}data/{u}"\noutput = "{work}/curl/{u}"\n' for u in uuids))

        def ours() -> float:
            transport = CurlTransport()
            try:
                t = time.perf_counter()
                report = Downloader({"gdc": source}, transport).download(
                    manifest, work / "ours", layout="{case}"
                )
                elapsed = time.perf_counter() - t
            finally:
                transport.close()
            if not report.ok:
                raise RuntimeError(f"our download failed: {report.summary()}")
            return elapsed

        def theirs() -> float:
            t = time.perf_counter()
            run(["curl", "--silent", "--fail", "--parallel", "--parallel-max", "8", "--create-dirs",
                 "-H", "X-Auth-Token: gdc-token", "--config", str(config)])  # fmt: skip
            return time.perf_counter() - t

        mine, curls = [], []
        for _ in range(rounds):
            for folder in ("ours", "curl"):  # cleanup outside both clocks
                shutil.rmtree(work / folder, ignore_errors=True)
            mine.append(ours())
            curls.append(theirs())
        for folder in ("ours", "curl"):
            got = sum(
                p.stat().st_size
                for p in (work / folder).rglob("*")
                if p.is_file() and ".mediator" not in p.parts
            )
            if got < 500 * 1_000_000:
                raise RuntimeError(f"{folder} wrote {got:,} bytes, not 500 MB")
    finally:
        server.terminate()
        server.wait(10)
    out["gdc_download_s"] = round(statistics.median(mine), 3)
    out["curl_gdc_download_s"] = round(statistics.median(curls), 3)
    out["gdc_download_vs_curl"] = round(out["gdc_download_s"] / out["curl_gdc_download_s"], 3)


def bench_cohort(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from mediator_desktop.core.integrator import match, patient_paths
    from tests.helpers.gdc_emulator import GdcEmulator
    from tests.helpers.gdc_emulator import catalogue_from_idc as gdc_catalogue
    from tests.helpers.pathdb_emulator import PathDbEmulator
    from tests.helpers.pathdb_emulator import catalogue_from_idc as pathdb_catalogue

    idc = IdcSource()
    idc.load()
    with (
        GdcEmulator(gdc_catalogue(("tcga_luad",))) as gdc_server,
        PathDbEmulator(pathdb_catalogue(("tcga_luad",))) as pathdb_server,
    ):
        gdc, pathology = _source("gdc", gdc_server.url, work), _source("pathology", pathdb_server.url, work)
        origin = Pointer.of("idc", "tcga_luad", Modality="CT")

        def join() -> tuple[float, int]:
            t = time.perf_counter()
            patients = patient_paths(idc, origin)
            matching = match([origin], patients, [(gdc, Pointer("gdc")), (pathology, Pointer("pathology"))])
            common = matching.common({"gdc": ["RNA-Seq"], "pathology": None})
            return time.perf_counter() - t, len(common)

        join()  # the sources loaded (IDC's index read, connections open)
        times = []
        for _ in range(max(rounds, 5)):
            elapsed, cases = join()
            times.append(elapsed)
    out["cohort_join_ms"] = round(statistics.median(times) * 1000, 1)
    out["cohort_join_max_ms"] = round(max(times) * 1000, 1)
    out["cohort_cases"] = cases


GOALS: Goals = {
    "idc_load_s": ("idc", lambda f: f["idc_load_s"] <= 1.0),
    "idc_collections_ms": ("idc", lambda f: f["idc_collections_ms"] <= 20),
    "idc_resolve_collection_s": ("idc", lambda f: f["idc_resolve_collection_s"] <= 1.0),
    "idc_resolve_all_s": ("idc", lambda f: f["idc_resolve_all_s"] <= 3.0),
    "peak_rss_mb": ("idc", lambda f: f["peak_rss_mb"] <= 1000),
    "ratio_manifest_vs_idcindex": ("idcindex", lambda f: f["ratio_manifest_vs_idcindex"] <= 0.25),
    "gdc_resolve_10k_files_s": ("gdc", lambda f: f["gdc_resolve_10k_files_s"] <= 3.0),
    "gdc_download_vs_curl": ("gdc", lambda f: f["gdc_download_vs_curl"] <= 1.5),
    "cohort_join_ms": ("cohort", lambda f: f["cohort_join_ms"] <= 500),
}
PARTS: dict[str, Part] = {
    "idc": bench_idc,
    "idcindex": bench_idcindex,
    "tcia": bench_tcia,
    "gdc": bench_gdc,
    "cohort": bench_cohort,
}


def main() -> None:
    run_bench("sources", __doc__, PARTS, GOALS)


if __name__ == "__main__":
    main()
