"""Sources benchmark on the real IDC index, side by side with idc-index in the same run.

Figures (last line, one JSON object): ``idc_load_s`` (open the index), ``idc_collections_ms``,
``idc_resolve_collection_s`` (nlst, 592,600 series), ``idc_resolve_all_s`` (every series),
``idc_manifest_nlst_s`` (the s5cmd manifest of nlst), ``peak_rss_mb``, ``idcindex_manifest_nlst_s``
(idc-index's ``IDCClient.sql_query``, as its users write that manifest) and
``ratio_manifest_vs_idcindex``. Goals: load <= 1 s, collections <= 20 ms, resolve nlst <= 1 s,
resolve all <= 3 s, RSS <= 1,000 MB, ratio <= 0.25. ``tcia_emulator_series_per_s``: series resolved
per second through our TCIA client from the NBIA emulator.

Usage: ``python bench/sources.py`` (``pip install -e '.[bench]'`` brings idc-index).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.idc import IdcSource


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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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


def main() -> None:
    out: dict[str, float | int | None] = {}
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
    out["tcia_emulator_series_per_s"] = tcia_series_per_s()
    print(json.dumps(out), file=sys.stderr)
    try:
        done = subprocess.run(
            [sys.executable, "-c", IDCINDEX], capture_output=True, text=True, timeout=600, check=True
        )
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        out["idcindex_manifest_nlst_s"] = round(theirs["s"], 3)
        out["ratio_manifest_vs_idcindex"] = round(out["idc_manifest_nlst_s"] / theirs["s"], 3)  # type: ignore[operator]
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        print(f"idc-index did not run: {exc}", file=sys.stderr)
        out["idcindex_manifest_nlst_s"] = None
        out["ratio_manifest_vs_idcindex"] = None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
