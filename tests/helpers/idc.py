"""Small IDC worlds for tests and benchmarks: an index Parquet file and series laid out in a bucket
the way IDC stores them (``<crdc_series_uuid>/<instance>.dcm``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mediator_desktop.sources.idc import COLUMNS


def small_index(path: Path, rows: list[dict[str, object]]) -> Path:
    """An index file with IDC's columns; ``rows`` give the values that matter, the rest are null."""
    if path.suffix != ".parquet":
        path = path / "index.parquet"
    base = {c: None for c in COLUMNS}
    table = pa.Table.from_pylist(
        [{**base, **r} for r in rows],
        schema=pa.schema(
            [
                (
                    c,
                    pa.int64()
                    if c in ("instanceCount", "series_revised_idc_version")
                    else pa.float64()
                    if c == "series_size_MB"
                    else pa.large_string(),
                )
                for c in COLUMNS
            ]
        ),
    )
    pq.write_table(table, path)
    return path


def series_row(
    path: Sequence[str],
    uuid: str,
    blobs: Sequence[bytes],
    *,
    modality: str = "CT",
    bucket: str = "idc-open-data",
) -> dict[str, object]:
    collection, patient, study, series = path
    return {
        "collection_id": collection, "PatientID": patient, "StudyInstanceUID": study,
        "SeriesInstanceUID": series, "instanceCount": len(blobs),
        "series_size_MB": sum(len(b) for b in blobs) / 1e6, "crdc_series_uuid": uuid, "aws_bucket": bucket,
        "series_revised_idc_version": 25, "Modality": modality,
    }  # fmt: skip


def upload_series(s3: Any, bucket: str, uuid: str, blobs: Sequence[bytes]) -> None:
    for i, blob in enumerate(blobs):
        s3.put_object(Bucket=bucket, Key=f"{uuid}/inst-{i}.dcm", Body=blob)
