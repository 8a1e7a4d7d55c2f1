"""IDC's published index files, served as Google Cloud Storage serves idc-index-data's release
artifacts, and a next IDC release made from the installed one.

idc-index-data's release workflow uploads every release's files to the public bucket
``idc-index-data-artifacts`` under ``<version>/release_artifacts/`` and copies the newest release to
``current/release_artifacts/``; each ``.parquet`` has a ``.parquet.sha256`` sidecar written like
``sha256sum`` (``<hex>  <name>``), and the version in its schema metadata
(``idc_index_data_version``). ``IndexHost`` answers like ``https://storage.googleapis.com/<bucket>/<object>``
for anonymous reads: 200 with ``Content-Length``, an MD5 ``ETag``, ``x-goog-*`` headers,
``Accept-Ranges: bytes`` and 206 for a byte range, and a 404 ``NoSuchKey`` XML error for a missing
object. Faults: ``error`` (503 for every object), ``garbage`` (random bytes for every object),
``damaged`` (the Parquet files' bytes changed, their sidecars not), ``cut`` (the connection closes
halfway through a Parquet file) and ``hang`` (no answer until the host stops). Requests are counted
per object.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Sequence
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import idc_index_data
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BUCKET = "idc-index-data-artifacts"
FOLDER = "release_artifacts"


def write_index(path: Path, table: pa.Table, version: str) -> Path:
    """A Parquet file as idc-index-data's release workflow writes it: zstd, the version in the
    schema metadata."""
    metadata = {**(table.schema.metadata or {}), b"idc_index_data_version": version.encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")
    return path


def next_release(
    collections: Sequence[str], version: str = "26.0.0-0-gabcdef0"
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """IDC release 26 of ``collections``, made from the installed release 25: the first series of
    the first collection revised (a new ``crdc_series_uuid``), its last series removed, and one
    series added to it. Returns the index, its prior_versions_index (the installed rows of those
    collections, plus the versions 26 no longer serves) and what changed."""
    only = [("collection_id", "in", list(collections))]
    now = pq.read_table(idc_index_data.IDC_INDEX_PARQUET_FILEPATH, filters=only).replace_schema_metadata()
    prior = pq.read_table(idc_index_data.PRIOR_VERSIONS_INDEX_PARQUET_FILEPATH, filters=only)
    first = now.filter(pc.equal(now.column("collection_id"), collections[0]))
    revised, removed = first.slice(0, 1).to_pylist()[0], first.slice(first.num_rows - 1, 1).to_pylist()[0]
    new_uuid = "26262626-0000-4000-8000-000000000001"
    added = {
        **revised,
        "SeriesInstanceUID": revised["SeriesInstanceUID"] + ".26",
        "crdc_series_uuid": "26262626-0000-4000-8000-000000000002",
        "series_init_idc_version": 26,
        "series_revised_idc_version": 26,
    }
    rows = []
    for row in now.to_pylist():
        if row["SeriesInstanceUID"] == removed["SeriesInstanceUID"]:
            continue
        if row["SeriesInstanceUID"] == revised["SeriesInstanceUID"]:
            row = {**row, "crdc_series_uuid": new_uuid, "series_revised_idc_version": 26}
        rows.append(row)
    rows.append(added)
    rows.sort(
        key=lambda r: (r["collection_id"], r["PatientID"], r["StudyInstanceUID"], r["SeriesInstanceUID"])
    )
    index = pa.Table.from_pylist(rows, schema=now.schema)
    gone = [
        {
            **{c: row[c] for c in prior.column_names if c in row},
            "gcs_bucket": "public-datasets-idc",
            "min_idc_version": row["series_revised_idc_version"],
            "max_idc_version": 25,
        }
        for row in (revised, removed)
    ]
    prior = pa.concat_tables([prior, pa.Table.from_pylist(gone, schema=prior.schema)])
    changes = {"revised": revised, "removed": removed, "added": added, "new_uuid": new_uuid}
    return index, prior, changes


class IndexHost:
    """A loopback Google Cloud Storage holding idc-index-data's release artifacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fault: str | None = None
        self.requests: Counter[str] = Counter()  # by file name
        self.released = threading.Event()  # ends ``hang``
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                host._answer(self, body=True)

            def do_HEAD(self) -> None:
                host._answer(self, body=False)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """What ``index_url`` points at: the newest release's files."""
        return f"{self.base}/{BUCKET}/current/{FOLDER}"

    def publish(self, version: str, files: dict[str, bytes | Path], *, current: bool = True) -> None:
        """Upload a release's files (with their sidecars) and, like the workflow, make it current."""
        folders = [self.root / version / FOLDER] + ([self.root / "current" / FOLDER] if current else [])
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                data = content.read_bytes() if isinstance(content, Path) else content
                (folder / name).write_bytes(data)
                if name.endswith(".parquet"):
                    digest = hashlib.sha256(data).hexdigest()
                    (folder / f"{name}.sha256").write_text(f"{digest}  {name}\n")

    def start(self) -> IndexHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> IndexHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers ---------------------------------------------------------------------------------
    def _answer(self, request: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(request.path).path)
        name = path.rsplit("/", 1)[-1]
        self.requests[name] += 1
        if self.fault == "hang":
            self.released.wait()
            return
        if self.fault == "error":
            self._send(
                request,
                503,
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
                b"<Message>We encountered an internal error. Please try again.</Message></Error>",
                "application/xml; charset=UTF-8",
                body=body,
            )
            return
        bucket, _, key = path.lstrip("/").partition("/")
        file = (self.root / key).resolve()
        if bucket != BUCKET or not key or self.root.resolve() not in file.parents or not file.is_file():
            details = f"No such object: {bucket}/{key}"
            self._send(
                request,
                404,
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The "
                b"specified key does not exist.</Message><Details>"
                + details.encode()
                + b"</Details></Error>",
                "application/xml; charset=UTF-8",
                body=body,
            )
            return
        data = file.read_bytes()
        if self.fault == "garbage":
            data = os.urandom(len(data) or 64)
        elif self.fault == "damaged" and name.endswith(".parquet"):
            data = (
                data[: len(data) // 2]
                + bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 64])
                + data[len(data) // 2 + 64 :]
            )
        kind = "text/plain" if name.endswith(".sha256") else "application/octet-stream"
        self._send(request, 200, data, kind, body=body, cut=self.fault == "cut" and name.endswith(".parquet"))

    def _send(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        kind: str,
        *,
        body: bool,
        cut: bool = False,
    ) -> None:
        md5 = hashlib.md5(data)
        headers = {
            "Content-Type": kind,
            "Date": formatdate(usegmt=True),
            "Server": "UploadServer",
        }
        if status == 200:
            headers.update(
                {
                    "ETag": f'"{md5.hexdigest()}"',
                    "Last-Modified": formatdate(usegmt=True),
                    "Cache-Control": "public, max-age=3600",
                    "Accept-Ranges": "bytes",
                    "x-goog-generation": "1767225600000000",
                    "x-goog-metageneration": "1",
                    "x-goog-stored-content-encoding": "identity",
                    "x-goog-stored-content-length": str(len(data)),
                    "x-goog-hash": f"md5={base64.b64encode(md5.digest()).decode()}",
                    "x-goog-storage-class": "STANDARD",
                }
            )
            wanted = request.headers.get("Range", "")
            if wanted.startswith("bytes=") and data:
                first_text, _, last_text = wanted[6:].partition("-")
                if first_text:
                    first, last = int(first_text), min(int(last_text or len(data) - 1), len(data) - 1)
                else:  # the last N bytes
                    first, last = max(len(data) - int(last_text), 0), len(data) - 1
                headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
                status, data = 206, data[first : last + 1]
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if not body:
            return
        if cut:
            request.wfile.write(data[: len(data) // 2])
            request.wfile.flush()
            request.close_connection = True
            request.connection.shutdown(2)
            return
        request.wfile.write(data)
