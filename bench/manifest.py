"""Manifest benchmark: build, encode, decode and diff of synthetic manifests shaped like imaging data.

Prints progress lines, then one JSON object as the last line:
``leaves, build_s, id_s (streaming encode + sha256), encode_s, hash_s, decode_s, diff_s, encoded_mb,
compressed_mb, chunks, peak_rss_mb`` and ``goals_missed`` (exit status 1 when one is missed).
Goals (``GOALS``) at 1,000,000 leaves on 2 cores: build + encode + hash <= 8 s, diff <= 3 s, peak
RSS <= 1,500 MB.

Usage: ``python bench/manifest.py [--leaves N]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._goals import Goals, finish
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Hierarchy

IDC_LEVELS = Hierarchy(("collection", "patient", "study", "series"))

Row = tuple[tuple[str, str, str, str], int, int, str]


def _uid(rng: random.Random) -> str:
    # DICOM UIDs: dotted digits up to 64 characters; TCIA's root plus a 128-bit number is typical.
    return f"1.3.6.1.4.1.14519.5.2.1.{rng.getrandbits(128)}.{rng.getrandbits(40)}"


def synthetic_rows(n: int, seed: int = 7) -> Iterator[Row]:
    """``n`` series in collections > patients > studies > series, with IDC-like fingerprints."""
    rng = random.Random(seed)
    made = 0
    collection = 0
    while True:
        name = f"collection-{collection:03d}"
        for p in range(2_000):
            patient = f"{name.upper()}-{p:06d}"
            for _ in range(rng.randint(1, 4)):
                study = _uid(rng)
                for _ in range(rng.randint(1, 6)):
                    count = rng.randint(1, 600)
                    version = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    yield (name, patient, study, _uid(rng)), count * 525_000, count, version
                    made += 1
                    if made == n:
                        return
        collection += 1


def changed_rows(n: int, fraction: float, seed: int = 7) -> Iterator[Row]:
    """The rows of ``synthetic_rows(n, seed)`` with ``fraction`` of them changed: a third each
    re-versioned, removed, or joined by a new series."""
    rng = random.Random(seed + 1)
    for path, size, count, version in synthetic_rows(n, seed):
        r = rng.random() * 3 / fraction
        if r >= 3:
            yield path, size, count, version
        elif r < 1:
            yield path, size + 525_000, count + 1, str(uuid.UUID(int=rng.getrandbits(128), version=4))
        elif r >= 2:
            yield path, size, count, version
            yield ("collection-new", f"NEW-{path[1]}", path[2], _uid(rng)), 1_050_000, 2, _uid(rng)


def build(rows: Iterator[Row]) -> tuple[Manifest, float]:
    """Build a manifest; returns it and the seconds spent in our code (not in making rows)."""
    builder = ManifestBuilder()
    add = builder.add
    spent = 0.0
    while batch := list(islice(rows, 20_000)):
        t = time.perf_counter()
        for path, size, count, version in batch:
            add("idc", path, size=size, count=count, version=version)
        spent += time.perf_counter() - t
    t = time.perf_counter()
    manifest = builder.build()
    return manifest, spent + time.perf_counter() - t


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.leaves
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    manifest, build_s = build(synthetic_rows(n))
    log(f"built {n} leaves in {build_s:.2f}s; rss {peak_rss_mb():.0f} MB")
    t = time.perf_counter()
    manifest_id = manifest.id  # encodes and hashes in one streaming pass
    id_s = time.perf_counter() - t
    t = time.perf_counter()
    data = manifest.encode()
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    hash_s = time.perf_counter() - t
    encoded_mb = len(data) / 1e6
    del data
    t = time.perf_counter()
    chunks = manifest.chunks()
    chunk_s = time.perf_counter() - t
    log(f"id {id_s:.2f}s encode {encode_s:.2f}s hash {hash_s:.2f}s chunks {chunk_s:.2f}s")

    t = time.perf_counter()
    decoded = Manifest.from_chunks(chunks, manifest_id)
    decode_s = time.perf_counter() - t
    assert decoded == manifest
    compressed_mb = sum(map(len, chunks)) / 1e6
    chunk_count = len(chunks)
    del chunks, decoded
    gc.collect()

    # The second manifest is built apart from the first, as two versions decoded from the store are.
    other, _ = build(changed_rows(n, 0.01))
    t = time.perf_counter()
    diff = ManifestDiff.between(manifest, other)
    diff_s = time.perf_counter() - t
    summary = diff.summary({"idc": IDC_LEVELS})
    log(f"decode {decode_s:.2f}s diff {diff_s:.2f}s: {summary}")

    finish(
        {
            "leaves": n,
            "build_s": round(build_s, 3),
            "encode_s": round(encode_s, 3),
            "hash_s": round(hash_s, 3),
            "id_s": round(id_s, 3),
            "build_encode_hash_s": round(build_s + id_s, 3),
            "chunk_s": round(chunk_s, 3),
            "decode_s": round(decode_s, 3),
            "diff_s": round(diff_s, 3),
            "encoded_mb": round(encoded_mb, 1),
            "compressed_mb": round(compressed_mb, 1),
            "chunks": chunk_count,
            "diff_added": len(diff.added),
            "diff_removed": len(diff.removed),
            "diff_changed": len(diff.changed),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
        GOALS,
    )


#: Each goal: the part that measures it (one part here), and the test of the figures.
GOALS: Goals = {
    "build_encode_hash_s": ("manifest", lambda f: f["build_encode_hash_s"] <= 8),
    "diff_s": ("manifest", lambda f: f["diff_s"] <= 3),
    "peak_rss_mb": ("manifest", lambda f: f["peak_rss_mb"] <= 1500),
}


if __name__ == "__main__":
    main()
