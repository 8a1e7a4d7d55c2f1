"""Exports fetched by the formats' own tools from a fake S3 (nginx serving IDC-like buckets):
``s5cmd run`` on the IDC manifest, idc-index's own manifest reader, ``bdbag --resolve-fetch all``
then ``bdbag --validate full`` on a bag of files (``files=True``), and the offline bag of pointers.

A real one-node store and a local DICOM archive (``tests.helpers.service.World``); the IDC source
reads an index of the fake buckets and fetches from nginx (``tests.helpers.nginx_s3``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mediator_desktop import Mediator
from mediator_desktop.cli import EXIT_OK, EXIT_USER_ERROR, main
from mediator_desktop.core import exports
from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from tests.helpers import nginx_s3
from tests.helpers.service import SOURCE
from tests.helpers.service import World as ServiceWorld

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(nginx_s3.nginx_binary() is None, reason="needs nginx (Debian: nginx-light)"),
]

BIN = Path(sys.executable).parent
BUCKET = "idc-fake-open"
#: Six series in one collection: P0 has series 0-3, P1 has 4-5. The set takes P0 and series 5.
UUIDS = [f"{i:08x}-1111-4222-8333-{hashlib.sha1(bytes([i])).hexdigest()[:12]}" for i in range(6)]
CHOSEN = UUIDS[:4] + UUIDS[5:]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[nginx_s3.World, nginx_s3.Nginx]]:
    """The fake S3: six series of 2 to 5 instances (1-20 KB each), served by nginx."""
    root = tmp_path_factory.mktemp("fake-s3")
    world = nginx_s3.World(root / "data")
    rng = random.Random(20)
    for i, uuid in enumerate(UUIDS):
        blobs = [rng.randbytes(rng.randint(1_000, 20_000)) for _ in range(2 + i % 4)]
        world.add_series(BUCKET, uuid, blobs, modality="CT" if i % 2 else "MR")
    world.finish()
    with nginx_s3.Nginx(world.www, root / "nginx") as nginx:
        yield world, nginx


@pytest.fixture
def service(tmp_path: Path, s3: tuple[nginx_s3.World, nginx_s3.Nginx]) -> Iterator[Service]:
    world, nginx = s3
    idc = world.source(nginx.url, name=f"index-{tmp_path.name}")
    with ExitStack() as stack:
        yield ServiceWorld(tmp_path, stack).service("ann", downloads=False, archives={"idc": idc})


@pytest.fixture
def set_id(service: Service) -> str:
    """P0's series, series 5 of P1 (not the rest of P1), and a patient of the local archive."""
    return service.sets.create(
        "fake IDC",
        add=[
            Pointer.of("idc", BUCKET, "P0"),
            Pointer.of("idc", BUCKET, "P1", "1.2.2", UUIDS[5]),
            Pointer.of(SOURCE, "P1"),
        ],
    )


def _env(tmp_path: Path) -> dict[str, str]:
    """The tools' environment: loopback never through a proxy, a home of their own (bdbag writes
    its configuration there)."""
    home = tmp_path / "tool-home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _tool(argv: list[str], tmp_path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )


def _bucket_files(world: nginx_s3.World, uuids: list[str]) -> dict[str, bytes]:
    """Name -> bytes of the objects of ``uuids`` (the names are unique across series)."""
    wanted = set(uuids)
    return {
        key.rsplit("/", 1)[1]: world.object_path(BUCKET, key).read_bytes()
        for key, _, _ in world.files[BUCKET]
        if key.split("/", 1)[0] in wanted
    }


# -- IDC's s5cmd manifest ------------------------------------------------------------------------------
def test_s5cmd_run_fetches_exactly_the_sets_files(
    service: Service, set_id: str, s3: tuple[nginx_s3.World, nginx_s3.Nginx], tmp_path: Path
) -> None:
    world, nginx = s3
    manifest = service.sets.export_file(set_id, None, "s5cmd", tmp_path / "set.s5cmd")
    dest = tmp_path / "fetched"
    dest.mkdir()
    done = _tool(
        [str(BIN / "s5cmd"), "--no-sign-request", "--endpoint-url", nginx.url, "run", str(manifest)],
        tmp_path,
        cwd=dest,
    )
    assert done.returncode == 0, done.stderr
    got = {p.name: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    expected = _bucket_files(world, CHOSEN)
    assert sorted(got) == sorted(expected)  # not one file of series 4
    assert got == expected


def test_idc_index_reads_the_s5cmd_manifest(
    service: Service, set_id: str, s3: tuple[nginx_s3.World, nginx_s3.Nginx], tmp_path: Path
) -> None:
    """idc-index's own reader (``IDCClient._validate_update_manifest_and_get_download_size``, what
    ``download_from_manifest`` runs first) on our manifest, offline: ``IDCClient()`` reads the
    index idc-index-data ships (no network); its ``index`` is then swapped for the fake world's, so
    every line must match a series by ``crdc_series_uuid`` and its exact ``s3://bucket/uuid/*``."""
    import pandas as pd
    from idc_index import IDCClient

    world, _ = s3
    manifest = service.sets.export_file(set_id, None, "s5cmd", tmp_path / "set.s5cmd")
    client = IDCClient()
    client.index = pd.read_parquet(world.index(f"idc-index-{tmp_path.name}"))
    dest = tmp_path / "idc-index-dest"
    dest.mkdir()
    total_mb, endpoint, commands, _, parsed = client._validate_update_manifest_and_get_download_size(
        manifestFile=str(manifest),
        downloadDir=str(dest),
        validate_manifest=True,
        use_s5cmd_sync=False,
        dirTemplate=None,
    )
    try:
        assert endpoint == "https://s3.amazonaws.com"  # each line matched its series' AWS URL
        assert sorted(parsed["index_crdc_series_uuid"]) == sorted(CHOSEN)
        lines = Path(commands).read_text().splitlines()
        assert sorted(line.split()[1] for line in lines) == sorted(f"s3://{BUCKET}/{u}/*" for u in CHOSEN)
        sizes = {str(r["crdc_series_uuid"]): float(str(r["series_size_MB"])) for r in world.rows}
        assert total_mb == pytest.approx(round(sum(sizes[u] for u in CHOSEN), 2))
    finally:
        Path(commands).unlink()


# -- BDBag ---------------------------------------------------------------------------------------------
def test_bag_of_files_is_fetched_and_validated_by_bdbag(
    service: Service, set_id: str, s3: tuple[nginx_s3.World, nginx_s3.Nginx], tmp_path: Path
) -> None:
    world, _ = s3
    bag = service.sets.export_file(set_id, None, "bdbag", tmp_path / "set.bag", files=True)
    fetch = [line.split("\t") for line in (bag / "fetch.txt").read_text().splitlines()]
    expected = _bucket_files(world, CHOSEN)
    assert len(fetch) == len(expected)
    # the local archive's leaves (file:// plans) stay pointers; no IDC series is left there
    unverified = (bag / exports.BAG_REMOTE_FILE).read_text().splitlines()
    assert unverified and all(line.startswith(f"mediator:{SOURCE}/") for line in unverified)
    assert "MEDIator-Files-Listed: " + str(len(expected)) in (bag / "bag-info.txt").read_text()

    done = _tool([str(BIN / "bdbag"), "--resolve-fetch", "all", str(bag)], tmp_path)
    assert done.returncode == 0, done.stderr
    done = _tool([str(BIN / "bdbag"), "--validate", "full", str(bag)], tmp_path)
    assert done.returncode == 0, done.stderr
    got = {p.name: p.read_bytes() for p in (bag / "data").rglob("*") if p.is_file()}
    assert got == expected
    for _, _, path in fetch:  # each file under its series' bag path
        leaf, name = path.rsplit("/", 1)
        assert leaf.startswith(f"data/idc/{BUCKET}/P") and leaf.split("/")[-1] in CHOSEN
        assert (bag / path).read_bytes() == expected[name]


def test_a_tampered_object_fails_full_validation_naming_the_file(
    service: Service, set_id: str, s3: tuple[nginx_s3.World, nginx_s3.Nginx], tmp_path: Path
) -> None:
    world, _ = s3
    bag = service.sets.export_file(set_id, None, "bdbag", tmp_path / "set.bag", files=True)
    key = next(k for k, _, _ in world.files[BUCKET] if k.startswith(UUIDS[1]))
    name = key.rsplit("/", 1)[1]
    stored = world.object_path(BUCKET, key)
    original = stored.read_bytes()
    stored.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size, other bytes
    try:
        done = _tool([str(BIN / "bdbag"), "--resolve-fetch", "all", str(bag)], tmp_path)
    finally:
        stored.write_bytes(original)
    assert done.returncode == 0, done.stderr  # fetching checks sizes only
    done = _tool([str(BIN / "bdbag"), "--validate", "full", str(bag)], tmp_path)
    assert done.returncode != 0
    report = done.stdout + done.stderr
    assert f"{name} md5 validation failed" in report, report[-2000:]


def test_offline_bag_validates_and_lists_the_series_as_pointers(
    service: Service, set_id: str, tmp_path: Path
) -> None:
    bag = service.sets.export_file(set_id, None, "bdbag", tmp_path / "set.bag")
    done = _tool([str(BIN / "bdbag"), "--validate", "structure", str(bag)], tmp_path)
    assert done.returncode == 0, done.stderr
    done = _tool([str(BIN / "bdbag"), "--validate", "full", str(bag)], tmp_path)
    assert done.returncode == 0, done.stderr  # nothing in fetch.txt: every tag file checks out
    assert (bag / "fetch.txt").read_text() == ""
    lines = [line.split("\t") for line in (bag / exports.BAG_REMOTE_FILE).read_text().splitlines()]
    series = {url for url, _, _ in lines if url.startswith("s3://")}
    assert series == {f"s3://{BUCKET}/{u}/" for u in CHOSEN}
    assert "MEDIator-Files-Listed" not in (bag / "bag-info.txt").read_text()


def test_files_is_refused_for_other_formats(service: Service, set_id: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"only a bdbag export lists the files"):
        service.sets.export_file(set_id, None, "s5cmd", tmp_path / "x.s5cmd", files=True)
    assert list(tmp_path.glob("*x.s5cmd*")) == []


# -- the frontends -------------------------------------------------------------------------------------
def _mediator(*args: str) -> int:
    """``mediator ARGS`` in this process (talking to the node the SDK started); its exit status."""
    handlers = list(logging.getLogger().handlers)
    try:
        try:
            return main(list(args))
        except SystemExit as exit:  # argparse refused the arguments
            return int(exit.code or 0)
    finally:
        for handler in set(logging.getLogger().handlers) - set(handlers):  # the command's log file
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_sdk_api_and_command_export_a_bag_of_files(
    s3: tuple[nginx_s3.World, nginx_s3.Nginx], mediator_home: Path, tmp_path: Path
) -> None:
    world, nginx = s3
    idc = {"index": str(world.index("node-index")), "endpoint_url": nginx.url}
    Settings(
        data_dir=mediator_home / "data",
        download_dir=mediator_home / "downloads",
        sources=({"kind": "idc", "id": "idc", "options": idc},),
        discovery=False,
        update_check_minutes=0,
    ).save(mediator_home / "config" / "settings.json")
    p0 = _bucket_files(world, UUIDS[:4])
    with Mediator() as m:
        rs = m.create_set("P0", add=[f"idc/{BUCKET}/P0"])
        # the SDK (and the local API's files=true): a zip of the bag, every file in fetch.txt
        with zipfile.ZipFile(io.BytesIO(m.export_set(rs.id, "bdbag", files=True))) as bag:
            fetch = bag.read(f"{bag.namelist()[0].split('/')[0]}/fetch.txt").decode().splitlines()
        assert sorted(line.rsplit("/", 1)[1] for line in fetch) == sorted(p0)
        with pytest.raises(ValidationError, match=r"only a bdbag export lists the files"):
            m.export_set(rs.id, "s5cmd", files=True)
        pointers = m.export_set(rs.id, "bdbag")  # the default asks no archive
        with zipfile.ZipFile(io.BytesIO(pointers)) as bag:
            assert bag.read(f"{bag.namelist()[0].split('/')[0]}/fetch.txt") == b""

        # the command: a folder bdbag fetches and validates
        out = tmp_path / "cli.bag"
        assert _mediator("sets", "export", "P0", "--format", "bdbag", "--files", "-o", str(out)) == EXIT_OK
        assert _mediator("sets", "export", "P0", "--format", "csv", "--files") == EXIT_USER_ERROR
    done = _tool([str(BIN / "bdbag"), "--resolve-fetch", "all", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    done = _tool([str(BIN / "bdbag"), "--validate", "full", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (out / "data").rglob("*") if p.is_file()} == p0
