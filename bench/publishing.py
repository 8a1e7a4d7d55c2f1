"""Publishing benchmark: exports of a million-leaf set and the time to a findable DOI.

Figures (last line, one JSON object): ``export_rocrate_1m_s`` and ``export_bdbag_1m_s`` (every IDC
series, 1,044,191 leaves from the real index, each written to a fresh folder: the median of the
rounds, cleanup outside the clock), ``export_leaves``, ``peak_rss_mb`` (the whole process, index and
manifest included), ``publish_to_doi_s`` (from ``Publishing.publish`` on a real node to a findable
DOI on the DataCite emulator: the median of the rounds), ``validate_rocrate_100k_s`` (roc-validator's
own time to validate a crate of the first 100,000 IDC series by the RO-Crate 1.1 profile, once: its
cost, not ours, recorded without a goal; ``validate_rocrate_passed`` says whether it passed).

The last line also carries ``goals_missed`` (the goals missed; a part that fails misses its goals
and is named under ``errors``). Goals (checked here; the run exits 1 on a miss): each export <= 10
s, peak RSS <= 1,500 MB, a findable DOI <= 2 s.

Usage: ``python bench/publishing.py [--skip export,publish,validate] [--rounds 3]``.
"""

from __future__ import annotations

import itertools
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, Part
from bench._goals import main as run_bench
from mediator_desktop.core import exports
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.idc import IdcSource


def idc_export(leaves: int | None = None) -> tuple[IdcSource, exports.SetExport]:
    """An export of every IDC series of the real index (or of its first ``leaves``)."""
    idc = IdcSource()
    collections = [item.key for item in idc.browse(limit=10_000).items]
    selection = Selection.of(*(idc.pointer(c) for c in collections))
    manifest = idc.resolve(selection)
    if leaves is not None:
        manifest = Manifest.build(itertools.islice(exports.leaves_of(manifest, "idc"), leaves))
    export = exports.SetExport(
        set_id="0" * 32,
        name="All of IDC",
        description="every series of the index",
        version=1,
        time=time.time(),
        author="bench",
        selection=selection,
        manifest=manifest,
        located=lambda: idc.leaf_urls(exports.leaves_of(manifest, "idc")),
        document={"format": "mediator-set", "name": "All of IDC", "selection": []},
    )
    return idc, export


def bench_export(work: Path, rounds: int, out: dict[str, Any]) -> None:
    idc, export = idc_export()
    manifest = export.manifest
    next(iter(idc.leaf_urls(exports.leaves_of(manifest, "idc"))))  # the URL lookup is built once per index
    for fmt in ("rocrate", "bdbag"):
        times = []
        for _ in range(rounds):
            target = work / f"all{exports.FOLDERS[fmt]}"
            shutil.rmtree(target, ignore_errors=True)  # outside the clock
            t = time.perf_counter()
            exports.write(export, fmt, target)
            times.append(time.perf_counter() - t)
            print(f"  {fmt}: {times[-1]:.2f} s", file=sys.stderr, flush=True)
        out[f"export_{fmt}_1m_s"] = round(statistics.median(times), 3)
        out[f"export_{fmt}_1m_max_s"] = round(max(times), 3)
        shutil.rmtree(work / f"all{exports.FOLDERS[fmt]}", ignore_errors=True)
    out["export_leaves"] = len(manifest)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_validate(work: Path, rounds: int, out: dict[str, Any]) -> None:
    """roc-validator on a 100,000-leaf crate, once (minutes: its SHACL checks cost ~5 ms a leaf)."""
    from tests.helpers.rocrate_offline import validate

    _, export = idc_export(100_000)
    crate = exports.write(export, "rocrate", work / "validate.crate")
    t = time.perf_counter()
    problems = validate(crate)
    out["validate_rocrate_100k_s"] = round(time.perf_counter() - t, 1)
    out["validate_rocrate_passed"] = not problems
    if problems:
        raise RuntimeError(f"roc-validator refused the crate: {problems[:3]}")
    shutil.rmtree(crate, ignore_errors=True)


def bench_publish(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from mediator_desktop.core.pointer import Pointer
    from mediator_desktop.core.publishing import Creator, DoiMetadata
    from tests.helpers.datacite_emulator import DataCiteEmulator
    from tests.helpers.service import make_node

    metadata = DoiMetadata("RIDER Pilot, as used", (Creator("Doe, Jane"),), "Lab of Imaging", 2026)
    times = []
    with (
        DataCiteEmulator() as datacite,
        tempfile.TemporaryDirectory(dir=work) as home,
        make_node(Path(home), "ann", update_check_minutes=0) as node,
    ):
        service = node.service
        service.archives.add("idc", {}, source_id="idc")
        service.settings.change(
            doi_service="datacite",
            doi_url=datacite.url,
            doi_repository="MEDIATOR.TEST",
            doi_prefix="10.80000",
        )
        service.publishing.set_secret("datacite", "secret")
        for i in range(rounds):
            made = service.sets.create_from(f"rider {i}", add=[Pointer.of("idc", "rider_pilot")])
            t = time.perf_counter()
            service.publishing.publish(made.set_id, 1, metadata, landing_url="https://lab.example/rider")
            while service.publishing.get(made.set_id, 1).doi_state == "queued":
                if time.perf_counter() - t > 60:
                    raise RuntimeError("no DOI within a minute")
                time.sleep(0.005)
            times.append(time.perf_counter() - t)
            if service.publishing.get(made.set_id, 1).doi_state != "findable":
                raise RuntimeError(f"minting failed: {service.publishing.get(made.set_id, 1).error}")
    out["publish_to_doi_s"] = round(statistics.median(times), 3)
    out["publish_to_doi_max_s"] = round(max(times), 3)


GOALS: Goals = {
    "export_rocrate_1m_s": ("export", lambda f: f["export_rocrate_1m_s"] <= 10),
    "export_bdbag_1m_s": ("export", lambda f: f["export_bdbag_1m_s"] <= 10),
    "peak_rss_mb": ("export", lambda f: f["peak_rss_mb"] <= 1500),
    "publish_to_doi_s": ("publish", lambda f: f["publish_to_doi_s"] <= 2),
}
PARTS: dict[str, Part] = {
    "export": bench_export,
    "publish": bench_publish,
    "validate": bench_validate,
}


def main() -> None:
    run_bench("publishing", __doc__, PARTS, GOALS)


if __name__ == "__main__":
    main()
