"""A fake S3 endpoint that real S3 tools use unchanged: nginx serving buckets laid out on disk.

``World`` writes objects the way IDC stores series (``<bucket>/<crdc_series_uuid>/<instance>.dcm``),
a static ListObjectsV2 answer per listed prefix (what ``s5cmd``, the aws CLI and our S3 clients
ask before fetching), and an IDC index whose rows point at those buckets (``World.source``: an
``IdcSource`` on the endpoint). ``Nginx`` serves a ``World`` on a loopback port: GET
``/bucket/key`` answers the object, GET ``/bucket?list-type=2&prefix=P`` the listing of ``P``.
ETags are what S3 gives for an aws-CLI upload: the MD5 of a single-part object,
``md5-of-part-md5s-N`` above ``PART`` bytes.

Used by the export tests (``s5cmd run``, ``bdbag --resolve-fetch``) and the transfer benchmark.
Needs Debian's nginx-light (``/usr/sbin/nginx``; in the Makefile's ``TEST_DEBS``).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from mediator_desktop.sources.idc import IdcSource
from tests.helpers.idc import small_index
from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process

#: The part size of a multipart upload (the aws CLI's default): larger objects get a multipart ETag.
PART = 8 << 20


def s3_etag(data: bytes) -> str:
    """The ETag S3 gives ``data`` uploaded by the aws CLI."""
    if len(data) <= PART:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    parts = [
        hashlib.md5(data[i : i + PART], usedforsecurity=False).digest() for i in range(0, len(data), PART)
    ]
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def list_xml(
    bucket: str, prefix: str, objects: list[tuple[str, int, str]], next_token: str | None = None
) -> str:
    """A ListObjectsV2 answer; with ``next_token`` a truncated page (nginx serves the next page at
    ``<prefix><token>list.xml``)."""
    contents = "".join(
        f"<Contents><Key>{key}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
        f'<ETag>"{etag}"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>'
        for key, size, etag in objects
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>{len(objects)}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if next_token else 'false'}</IsTruncated>"
        f"{f'<NextContinuationToken>{next_token}</NextContinuationToken>' if next_token else ''}"
        f"{contents}</ListBucketResult>"
    )


class World:
    """Buckets on disk (served by nginx), their listings, and an IDC index pointing at them.

    Attributes:
        www: the folder nginx serves (one subfolder per bucket, listings under ``_list/``).
        rows: the IDC index rows, one per series.
        series: bucket -> its series' uuids, in the order added.
        files: bucket -> its objects as ``(key, size, etag)``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.www = root / "www"
        self.rows: list[dict[str, object]] = []
        self.series: dict[str, list[str]] = {}
        self.files: dict[str, list[tuple[str, int, str]]] = {}

    def add_series(self, bucket: str, uuid: str, blobs: list[bytes], modality: str = "CT") -> None:
        """A series of ``blobs`` (one object each) at ``<bucket>/<uuid>/``, listed, and its index row
        (collection ``bucket``, four series a patient, two a study)."""
        objects = []
        folder = self.www / bucket / uuid
        folder.mkdir(parents=True, exist_ok=True)
        for i, blob in enumerate(blobs):
            name = f"{hashlib.sha1(f'{uuid}{i}'.encode()).hexdigest()[:8]}-{i:04d}.dcm"
            (folder / name).write_bytes(blob)
            objects.append((f"{uuid}/{name}", len(blob), s3_etag(blob)))
        self._listing(bucket, f"{uuid}/", objects)
        self.files.setdefault(bucket, []).extend(objects)
        self.series.setdefault(bucket, []).append(uuid)
        n = len(self.rows)
        self.rows.append(
            {
                "collection_id": bucket, "PatientID": f"P{n // 4}", "StudyInstanceUID": f"1.2.{n // 2}",
                "SeriesInstanceUID": uuid, "instanceCount": len(blobs),
                "series_size_MB": sum(len(b) for b in blobs) / 1e6, "crdc_series_uuid": uuid,
                "aws_bucket": bucket, "series_revised_idc_version": 25, "Modality": modality,
            }
        )  # fmt: skip

    def _listing(self, bucket: str, prefix: str, objects: list[tuple[str, int, str]]) -> None:
        # nginx looks the answer up by the raw query value: the prefix as clients encode it
        encoded = prefix.replace("/", "%2F")
        path = self.www / "_list" / bucket / f"{encoded}list.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(list_xml(bucket, prefix, objects))

    def finish(self) -> None:
        """The listings of whole buckets (call once every series is added)."""
        for bucket, objects in self.files.items():
            self._listing(bucket, "", objects)

    def object_path(self, bucket: str, key: str) -> Path:
        """Where nginx reads object ``key`` of ``bucket`` (a test may change its bytes)."""
        return self.www / bucket / key

    def index(self, name: str = "index") -> Path:
        """The IDC index (Parquet) of the series added so far."""
        return small_index(self.root / f"{name}.parquet", self.rows)

    def source(self, endpoint: str, name: str = "index") -> IdcSource:
        """An IDC source reading this world's index and fetching from ``endpoint``."""
        return IdcSource(self.index(name), endpoint_url=endpoint)


NGINX_CONF = """
{user}
worker_processes 2;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {root}/tmp;
  proxy_temp_path {root}/tmp;
  fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp;
  scgi_temp_path {root}/tmp;
  types {{ application/xml xml; }}
  default_type application/octet-stream;
  etag off;
  # the page of a listing a ListObjectsV2 continuation token asks for ("" for the first)
  map $args $page {{
    "~(?:^|&)continuation-token=(?<token>[^&]+)" $token;
    default "";
  }}
  upstream loopback {{
    server 127.0.0.1:{port};
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location ~ ^/(?<bucket>[a-z0-9-]+)/?$ {{
      default_type application/xml;
      # a bucket-level answer by its whole query (_versioning.xml), else a listing page
      try_files /_list/$bucket/_$args.xml /_list/$bucket/${{arg_prefix}}${{page}}list.xml =404;
    }}
    # The aws CLI (on ranged GETs) and the s3 source send If-Match with S3's ETag; nginx's own
    # ETag differs, so those requests loop back once without the header (kept-alive connections).
    location / {{
      if ($http_if_match) {{ rewrite ^(.*)$ /_nomatch$1 last; }}
    }}
    location /_nomatch/ {{
      internal;
      proxy_pass http://loopback/;
      proxy_set_header If-Match "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def nginx_binary() -> str | None:
    """nginx's path, or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


class Nginx:
    """nginx serving ``www`` on a loopback port (``url``); its config, pid and log under ``root``.

    A context manager; ``start()``/``stop()`` too. Started by root, its workers run as root as
    well, so they read a test's private temporary folder.
    """

    def __init__(self, www: Path, root: Path) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = root / "nginx.conf"
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        self.conf.write_text(NGINX_CONF.format(user=user, root=root, port=self.port, www=www))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Self:
        """Starts nginx and returns once it accepts connections.

        Raises:
            RuntimeError: nginx is missing, exited, or did not listen within ``timeout`` (its log
                is quoted).
        """
        if self.proc is not None:
            return self
        nginx = nginx_binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
        log = self.root / "nginx-error.log"
        self.proc = subprocess.Popen(
            [nginx, "-e", str(log), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)  # polling the port: nginx says nothing when it is ready
        self.stop()
        text = log.read_text(errors="replace")[-500:] if log.exists() else ""
        raise RuntimeError(f"nginx did not start on port {self.port}: {text}")

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
