"""Update-tracking benchmark (issue 17): real IDC releases, a TCIA emulator that counts requests,
"download changes" over a static S3 endpoint, and the alert between two node processes.

- ``idc_check_nlst_s``: the service's check of a set of all of nlst (about 592,600 series) pinned
  at IDC v22 (rebuilt from the installed index with ``sources.idc.index_at_release``), run against
  the installed index in a fresh process, as an app started after an index update does: the
  pinned manifest read from the store, the selection resolved again, the diff, and the drift
  record written (with the manifest of "now"). ``idc_check_nlst_rss_mb`` is that process's peak
  RSS. Goals: <= 2 s, <= 1,500 MB. ``idc_check_nlst_find_s`` is the part before the write.
- ``tcia_check_requests``: requests to the NBIA emulator for a check of a 10,000-series set in 5
  collections after 10 series changed (goal <= 2 x (collections + changed series));
  ``tcia_check_requests_unchanged`` with nothing changed (goal <= collections + 1).
- ``changes_bytes_ratio``: a 1,000-series IDC set downloaded at v22, the v22 -> v25 update
  accepted, then "download changes" into the same folder: bytes the S3 endpoint (nginx, its
  access log) sent as object data divided by the bytes of the added and revised series (goal
  exactly 1.0; listings are metadata, counted in the requests);
  ``changes_requests`` against the goal of one listing and one GET per file of those series.
- ``alert_latency_s``: the drift record applied on the checking node to the notice raised on a
  second node process (median of 5 rounds, ``alert_latency_max_s`` the worst); goal <= 2 s.

Last line: one JSON object with the figures and ``goals_missed``; the exit code is 1 when a goal
is missed. Usage: ``python bench/tracking.py [--skip nlst,tcia,changes,alert]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._goals import Goals, finish, run_parts  # noqa: E402
from mediator_desktop.core.identity import Identity  # noqa: E402
from mediator_desktop.core.pointer import Pointer  # noqa: E402
from mediator_desktop.core.service import Service  # noqa: E402
from mediator_desktop.core.settings import Settings, SettingsFile  # noqa: E402
from mediator_desktop.raft.membership import LONE_TIMEOUTS, free_loopback_address  # noqa: E402
from mediator_desktop.raft.store import RaftStore  # noqa: E402
from mediator_desktop.sources.idc import IdcSource, index_at_release  # noqa: E402

SECRET = "bench-tracking-secret"
OLD_RELEASE = 22


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def service_on(
    store_dir: Path, address: str, sources: dict[str, Any], downloader: Any = None, user: str = "bench"
) -> Iterator[Service]:
    """A one-node store (reopened with its data when it exists) and a service of one user."""
    store = RaftStore(address, [], store_dir, SECRET, election_timeout=LONE_TIMEOUTS)
    try:
        store.wait_ready(30)
        home = store_dir.parent / user
        identity_dir = home / "identity"
        identity_dir.mkdir(parents=True, exist_ok=True)
        identity = Identity.load_or_create(identity_dir, user)
        settings = SettingsFile(
            Settings(
                data_dir=home / "data", download_dir=home / "downloads", display_name=user, discovery=False
            ),
            home / "settings.json",
        )
        service = Service(
            store, identity, sources=sources, downloader=downloader, settings=settings, check_interval=0
        )
        try:
            service.register()
            yield service
        finally:
            service.close()
    finally:
        store.close()


# -- IDC: all of nlst ------------------------------------------------------------------------------
def bench_nlst(work: Path, out: dict[str, Any]) -> None:
    old_index = index_at_release(OLD_RELEASE, work / f"idc-v{OLD_RELEASE}.parquet")
    address = free_loopback_address()
    store_dir = work / "nlst-store"
    with service_on(store_dir, address, {"idc": IdcSource(old_index)}) as service:
        set_id = service.sets.create("All of NLST", add=[Pointer.of("idc", "nlst")])
        out["idc_nlst_series_pinned"] = len(service.sets.manifest(service.sets.version(set_id).manifest_id))
    done = subprocess.run(
        [sys.executable, __file__, "--nlst-check", str(store_dir), address, set_id],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the nlst check failed: {done.stderr[-2000:]}")
    out.update(json.loads(done.stdout.strip().splitlines()[-1]))


def nlst_check(store_dir: Path, address: str, set_id: str) -> None:
    """In a fresh process: reopen the store, check the set against the installed index."""
    source = IdcSource()
    source.load()  # the app loads its index at start, before any check
    with service_on(store_dir, address, {"idc": source}) as service:
        start = time.perf_counter()
        [outcome] = service.tracking.check([set_id])
        elapsed = time.perf_counter() - start
        if outcome.error or outcome.drift is None:
            raise RuntimeError(f"the nlst check found no update: {outcome.line()}")
        rss = peak_rss_mb()
        # The finding alone (what the archive holds now, and the diff), without the store's write.
        from mediator_desktop.core.diff import ManifestDiff

        version = service.sets.version(set_id)
        pinned = service.sets.manifest(version.manifest_id)
        start = time.perf_counter()
        now = source.track(version.selection, pinned, version.time).manifest
        ManifestDiff.between(pinned, now)
        find = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "idc_check_nlst_s": round(elapsed, 3),
                    "idc_check_nlst_find_s": round(find, 3),
                    "idc_check_nlst_rss_mb": round(rss),
                    "idc_nlst_update": outcome.drift.summary,
                }
            )
        )


# -- TCIA: requests per check ----------------------------------------------------------------------
def bench_tcia(work: Path, out: dict[str, Any]) -> None:
    import datetime as dt

    from mediator_desktop.sources.tcia import TciaSource
    from tests.helpers.tcia_emulator import TciaEmulator, synthetic_catalogue

    collections, series = 5, 10_000
    # Released three days ago; the archive's clock is the real one, as the service's checks are.
    catalogue = synthetic_catalogue(series, collections, released=dt.date.today() - dt.timedelta(days=3))
    with TciaEmulator(catalogue) as emulator:
        source = TciaSource(base_url=emulator.v4)
        names = sorted({s.collection for s in emulator.series})
        with service_on(work / "tcia-store", free_loopback_address(), {"tcia": source}) as service:
            set_id = service.sets.create("TCIA cohort", add=[Pointer.of("tcia", name) for name in names])
            if len(service.sets.manifest(service.sets.version(set_id).manifest_id)) != series:
                raise RuntimeError("the TCIA set does not hold every series of the catalogue")
            emulator.reset_requests()
            [unchanged] = service.tracking.check([set_id])
            out["tcia_check_requests_unchanged"] = emulator.total_requests
            if unchanged.error or unchanged.drift is not None:
                raise RuntimeError(f"the unchanged TCIA check found something: {unchanged.line()}")
            emulator.clock = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            studies = sorted({s.study for s in emulator.series})
            for uid in [s.uid for s in emulator.series[::2500]]:  # 4 re-submitted
                emulator.resubmit(uid)
            for study in studies[100:103]:  # 3 series added to studies
                emulator.add_series(study)
            first = emulator.series[0]
            emulator.add_study(first.collection, first.patient, series=1)  # 2 new studies
            emulator.add_study(names[1], emulator.series[3000].patient, series=1)
            emulator.add_patient(names[2], series=1)  # 1 new patient
            changed = 10
            emulator.reset_requests()
            [outcome] = service.tracking.check([set_id])
            out["tcia_check_requests"] = emulator.total_requests
            if outcome.error or outcome.drift is None:
                raise RuntimeError(f"the TCIA check missed the changes: {outcome.line()}")
            out["tcia_update"] = outcome.drift.summary
            out["tcia_check_requests_goal"] = 2 * (collections + changed)
            out["tcia_check_requests_unchanged_goal"] = collections + 1


# -- IDC: download only the changes ----------------------------------------------------------------
def bench_changes(work: Path, out: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    from mediator_desktop.core.downloads import DownloadRequest
    from mediator_desktop.core.transfer import Downloader
    from mediator_desktop.sources.transport import CurlTransport
    from tests.helpers.nginx_s3 import Nginx, list_xml, s3_etag

    old_index = work / f"idc-v{OLD_RELEASE}.parquet"
    if not old_index.exists():
        index_at_release(OLD_RELEASE, old_index)
    old_source = IdcSource(old_index)
    new_source = IdcSource()
    pointers = _patients_with_changes(old_source, new_source, 1000)
    www = work / "www"
    objects: dict[str, list[tuple[str, int, str]]] = {}

    def serve(source: IdcSource) -> None:
        """Objects for every series version the set names in ``source``'s index (2 KB each)."""
        from mediator_desktop.core.selection import Selection

        manifest = source.resolve(Selection.of(*pointers))
        rows = pq.read_table(source._index_path or _installed(), columns=["crdc_series_uuid", "aws_bucket"])
        bucket_of = dict(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))
        for leaf in manifest:
            uuid = leaf.fingerprint.version
            assert uuid is not None
            bucket = bucket_of[uuid]
            if uuid in objects:
                continue
            listing = []
            for i in range(leaf.fingerprint.count or 1):
                blob = (f"{uuid}-{i}".encode() * 128)[:2048]
                key = f"{uuid}/{i:05d}.dcm"
                (www / bucket / uuid).mkdir(parents=True, exist_ok=True)
                (www / bucket / key).write_bytes(blob)
                listing.append((key, len(blob), s3_etag(blob)))
            objects[uuid] = listing
            path = www / "_list" / bucket / f"{uuid}%2Flist.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(list_xml(bucket, f"{uuid}/", listing))

    serve(old_source)
    serve(new_source)
    nginx_root = work / "nginx"
    nginx_root.mkdir()
    server = Nginx(www, nginx_root)
    log = nginx_root / "access.log"
    server.conf.write_text(  # its own config, logging what each request sent
        server.conf.read_text().replace(
            "access_log off;", f"log_format sent '$request_uri $body_bytes_sent';\n  access_log {log} sent;"
        )
    )
    old_source.endpoint_url = new_source.endpoint_url = server.url
    folder = work / "cohort"
    store_dir, address = work / "changes-store", free_loopback_address()
    with server:
        transport = CurlTransport()
        try:
            engine = Downloader({"idc": old_source}, transport)
            with service_on(store_dir, address, {"idc": old_source}, engine) as service:
                set_id = service.sets.create("Changes", add=pointers)
                job = service.downloads.start(DownloadRequest(set_id, folder))
                _wait(job)
                if job.state != "done":
                    raise RuntimeError(f"the v{OLD_RELEASE} download failed: {job.error}")
            log.write_text("")
            engine.close()
            engine = Downloader({"idc": new_source}, transport)
            with service_on(store_dir, address, {"idc": new_source}, engine) as service:
                [outcome] = service.tracking.check([set_id])
                if outcome.drift is None:
                    raise RuntimeError(f"no update found for the 1,000-series set: {outcome.line()}")
                _, diff = service.tracking.diff(set_id)
                service.tracking.accept(set_id)
                server_bytes_before = _sent(log)
                job = service.downloads.start(DownloadRequest(set_id, folder))
                _wait(job)
                if job.state != "done":
                    raise RuntimeError(f"downloading the changes failed: {job.error}")
            engine.close()
        finally:
            transport.close()
    changed = [*diff.added, *(new for _, new in diff.changed)]
    expected_bytes = sum(len(objects[leaf.fingerprint.version or ""]) * 2048 for leaf in changed)
    files = sum(len(objects[leaf.fingerprint.version or ""]) for leaf in changed)
    sent_now, requests_now = _sent(log)
    sent, requests = sent_now - server_bytes_before[0], requests_now - server_bytes_before[1]
    out["changes_set_series"] = sum(1 for _ in old_source.resolve(_selection(pointers)))
    out["changes_update"] = outcome.drift.summary
    out["changes_bytes_ratio"] = round(sent / expected_bytes, 4) if expected_bytes else None
    out["changes_requests"] = requests
    out["changes_requests_goal"] = len(changed) + files


def _selection(pointers: list[Pointer]) -> Any:
    from mediator_desktop.core.selection import Selection

    return Selection.of(*pointers)


def _installed() -> Path:
    from mediator_desktop.sources.idc import default_index_path

    return default_index_path()


def _wait(job: Any) -> None:
    seen = -1
    while not job.finished:
        seen = job.wait(seen, timeout=5)


def _sent(log: Path) -> tuple[int, int]:
    """Bytes of object data the endpoint sent (listings are metadata: counted as requests only),
    and the requests."""
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return sum(int(p[-1]) for p in lines if "list-type=" not in p[0]), len(lines)


def _patients_with_changes(old: IdcSource, new: IdcSource, series: int) -> list[Pointer]:
    """Patient pointers of one collection, about ``series`` series at v22, taking first the
    patients whose series were added, revised or removed by v25."""
    import pyarrow.compute as pc

    from mediator_desktop.core.diff import ManifestDiff
    from mediator_desktop.core.selection import Selection

    table = old._loaded()
    counts = pc.value_counts(table.column("collection_id").cast("string")).to_pylist()
    for entry in sorted(counts, key=lambda e: -e["counts"])[:40]:
        collection = entry["values"]
        if entry["counts"] < series:
            continue
        selection = Selection.of(Pointer.of("idc", collection))
        pinned = old.resolve(selection)
        diff = ManifestDiff.between(pinned, new.resolve(selection))
        if not (diff.added and diff.changed):
            continue
        touched = {leaf.path[1] for leaf in (*diff.added, *(b for _, b in diff.changed), *diff.removed)}
        per_patient: dict[str, int] = {}
        for leaf in pinned:
            per_patient[leaf.path[1]] = per_patient.get(leaf.path[1], 0) + 1
        chosen: list[Pointer] = []
        total = 0
        for patient in [*sorted(touched), *(p for p in per_patient if p not in touched)]:
            if total >= series:
                break
            chosen.append(Pointer.of("idc", collection, patient))
            total += per_patient.get(patient, 0)
        return chosen
    raise RuntimeError("no IDC collection of that size changed between the two releases")


# -- the alert between two nodes ------------------------------------------------------------------
def bench_alert(work: Path, out: dict[str, Any]) -> None:
    import os

    from tests.helpers.cluster_node import RemoteNode
    from tests.helpers.dicom import make_series

    os.environ["MEDIATOR_CHECK_SECONDS"] = "3600"  # only the checks the bench asks for
    folder = work / "nas"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 1, modality="CT", pixels=8)
    nodes: list[RemoteNode] = []
    try:
        for i in range(2):
            home = work / f"alert{i}"
            home.mkdir()
            nodes.append(
                RemoteNode([], home, free_loopback_address(), work / f"a{i}.sock", ROOT, discovery=False)
            )
        checker, member = nodes
        member.call("join", checker.call("join_code"))
        for node in nodes:
            node.call("add_source", "local", "nas", {"folder": str(folder)}, None)
        set_id = checker.call("create_tracked", "NAS cohort", "nas", "P1")
        member.call("follow", set_id)
        for node in nodes:
            node.call("watch_notices")
        latencies = []
        for round_ in range(5):
            make_series(folder, "P1", "1.2.1", f"1.2.1.{round_ + 2}", 1, modality="CT", pixels=8)
            checker.call("rescan", "nas")  # the checking node's folder watch would do the same
            checker.call("check", set_id)
            want = round_ + 1
            deadline = time.monotonic() + 30
            while len(member.call("notices")) < want or len(checker.call("notices")) < want:
                if time.monotonic() > deadline:
                    raise RuntimeError("the second node raised no notice within 30 s")
                time.sleep(0.01)
            committed = checker.call("notices")[want - 1][0]
            noticed = member.call("notices")[want - 1][0]
            latencies.append(noticed - committed)
        out["alert_latency_s"] = round(statistics.median(latencies), 3)
        out["alert_latency_max_s"] = round(max(latencies), 3)
    finally:
        for node in nodes:
            node.stop()


#: Each figure's goal, and the part of the benchmark that measures it.
GOALS: Goals = {
    "idc_check_nlst_s": ("nlst", lambda f: f["idc_check_nlst_s"] <= 2.0),
    "idc_check_nlst_rss_mb": ("nlst", lambda f: f["idc_check_nlst_rss_mb"] <= 1500),
    "tcia_check_requests": ("tcia", lambda f: f["tcia_check_requests"] <= f["tcia_check_requests_goal"]),
    "tcia_check_requests_unchanged": (
        "tcia",
        lambda f: f["tcia_check_requests_unchanged"] <= f["tcia_check_requests_unchanged_goal"],
    ),
    "changes_bytes_ratio": ("changes", lambda f: f["changes_bytes_ratio"] == 1.0),
    "changes_requests": ("changes", lambda f: f["changes_requests"] <= f["changes_requests_goal"]),
    "alert_latency_s": ("alert", lambda f: f["alert_latency_s"] <= 2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", default="", help="comma-separated: nlst, tcia, changes, alert")
    parser.add_argument("--nlst-check", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nlst_check:
        nlst_check(Path(args.nlst_check[0]), args.nlst_check[1], args.nlst_check[2])
        return
    skip = set(filter(None, args.skip.split(",")))
    out: dict[str, Any] = {}
    parts = {"nlst": bench_nlst, "tcia": bench_tcia, "changes": bench_changes, "alert": bench_alert}
    errors = run_parts("tracking", parts, skip, out)
    finish(out, GOALS, skip, errors)


if __name__ == "__main__":
    main()
