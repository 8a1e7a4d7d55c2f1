"""A small IDC for end-to-end tests: three collections of CT and MR series in moto's S3 (behind the
counting, fault-injecting proxy), an index that points at them, and settings naming that source."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from uuid import UUID

from mediator_desktop.core.settings import Settings
from tests.helpers.faulty_proxy import FaultyProxy
from tests.helpers.idc import series_row, small_index, upload_series
from tests.helpers.s3 import MotoServer

BUCKET = "idc-open-data"

#: (collection, patient, series, modality, instances)
SERIES = (
    ("lung_a", "pa1", "1.1", "CT", 3),
    ("lung_a", "pa1", "1.2", "MR", 2),
    ("lung_a", "pa2", "1.3", "CT", 2),
    ("lung_b", "pb1", "2.1", "CT", 2),
    ("lung_b", "pb1", "2.2", "CT", 4),
    ("other_c", "pc1", "3.1", "CT", 2),
)


@dataclass
class IdcWorld:
    moto: MotoServer
    proxy: FaultyProxy
    root: Path
    index: Path = field(init=False)
    blobs: dict[str, list[bytes]] = field(default_factory=dict)  # by series UID
    uuids: dict[str, str] = field(default_factory=dict)  # series UID -> crdc_series_uuid

    def __post_init__(self) -> None:
        rows = []
        s3 = self.moto.client()
        for collection, patient, series, modality, count in SERIES:
            # shaped like IDC's crdc_series_uuid values (what an s5cmd manifest names)
            uuid = str(UUID(hex=hashlib.sha1(f"{self.root}{series}".encode()).hexdigest()[:32]))
            blobs = [os.urandom(1500 + 100 * i) for i in range(count)]
            upload_series(s3, BUCKET, uuid, blobs)
            rows.append(
                series_row((collection, patient, f"{patient}.st", series), uuid, blobs, modality=modality)
            )
            self.blobs[series] = blobs
            self.uuids[series] = uuid
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = small_index(self.root / "index.parquet", rows)

    def object_keys(self, series: str) -> list[str]:
        """The bucket keys of a series' instances (for the proxy's faults)."""
        return [f"{self.uuids[series]}/inst-{i}.dcm" for i in range(len(self.blobs[series]))]

    def settings(self, home: Path, **changes: object) -> Settings:
        """Settings of a node living in ``home`` (as MEDIATOR_HOME lays it out) with this IDC."""
        base = Settings(
            data_dir=home / "data",
            download_dir=home / "downloads",
            sources=(
                {
                    "kind": "idc",
                    "id": "idc",
                    "options": {"index": str(self.index), "endpoint_url": self.proxy.url},
                },
            ),
            discovery=False,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def install(self, home: Path) -> Path:
        """Write the settings file a node started with MEDIATOR_HOME=``home`` reads."""
        return self.settings(home).save(home / "config" / "settings.json")


@contextmanager
def idc_world(root: Path) -> Iterator[IdcWorld]:
    """moto's S3 server and the proxy before it, running for the ``with`` block."""
    moto = MotoServer().start()
    try:
        moto.public_bucket(BUCKET)
        with FaultyProxy(moto.url) as proxy:
            try:
                yield IdcWorld(moto, proxy, root)
            finally:
                proxy.gate.set()  # nobody may stay held in the proxy
    finally:
        moto.stop()
