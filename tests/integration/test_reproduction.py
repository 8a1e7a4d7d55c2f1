"""A published version downloaded again, after its archive changed: a real node (local API on), a
versioned bucket in moto's S3 server, the Zenodo emulator minting the DOI. The files that arrive
are the published ones, and the download says which leaves changed in their archive since and
whether the pinned data is still fetchable, through the SDK and the ``mediator download`` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop import Mediator
from mediator_desktop.cli import EXIT_DOWNLOAD_INCOMPLETE
from mediator_desktop.core.settings import HOME_ENV
from mediator_desktop.node import Node
from tests.helpers.s3 import MotoServer
from tests.helpers.service import home_node
from tests.helpers.zenodo_emulator import ZenodoEmulator
from tests.integration.test_match_frontends import mediator

pytestmark = pytest.mark.timeout(120)

BUCKET = "lab-scans"
OBJECTS = {"p1/ct/a.dcm": b"a" * 1000, "p1/ct/b.dcm": b"b" * 2000, "p2/mr/c.dcm": b"c" * 3000}
METADATA = {
    "title": "Lab scans, as used in our paper",
    "creators": [{"name": "Doe, Jane"}],
    "publisher": "Lab of Imaging",
    "year": 2026,
}


@pytest.fixture
def lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> Iterator[tuple[Node, MotoServer, ZenodoEmulator]]:
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv("MEDIATOR_MINT_RETRY_SECONDS", "0.2")
    s3 = moto.client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key, body in OBJECTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    with ZenodoEmulator(token="zenodo-token") as zenodo, home_node(home) as node:
        node.service.archives.add(
            "s3", {"buckets": BUCKET, "endpoint_url": moto.url}, source_id="lab", secret="test:test"
        )
        yield node, moto, zenodo


def test_a_published_version_downloads_as_published_and_says_what_changed_since(
    lab: tuple[Node, MotoServer, ZenodoEmulator], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, moto, zenodo = lab
    with Mediator() as m:
        m.change_settings(doi_service="zenodo", doi_url=zenodo.url)
        m.set_publishing_secret("zenodo", "zenodo-token")
        made = m.create_set("Lab scans", add=[{"source": "lab", "path": [BUCKET]}])
        published = m.publish(made.id, 1, METADATA, wait=True)
        assert published.doi_state == "findable"

        first = m.download(made.id, tmp_path / "first", version=1)
        assert first.reproduction is not None and first.reproduction.identical
        assert first.reproduction.summary == "all 3 leaves of v1 are as published"

        # The archive changes: one object overwritten (its old version kept by the bucket), one
        # deleted for good (its pinned version too), one new.
        s3 = moto.client()
        pinned = {v["Key"]: v["VersionId"] for v in s3.list_object_versions(Bucket=BUCKET)["Versions"]}
        s3.put_object(Bucket=BUCKET, Key="p1/ct/a.dcm", Body=b"A" * 1000)
        s3.delete_object(Bucket=BUCKET, Key="p2/mr/c.dcm", VersionId=pinned["p2/mr/c.dcm"])
        s3.put_object(Bucket=BUCKET, Key="p2/mr/d.dcm", Body=b"d")

        again = m.download(made.id, tmp_path / "again", version=1)
        reproduction = again.reproduction
        assert reproduction is not None and not reproduction.identical and reproduction.added == 1
        changes = {"/".join(c.path): c for c in reproduction.changes}
        assert sorted(changes) == [f"{BUCKET}/p1/ct/a.dcm", f"{BUCKET}/p2/mr/c.dcm"]
        revised, removed = changes[f"{BUCKET}/p1/ct/a.dcm"], changes[f"{BUCKET}/p2/mr/c.dcm"]
        assert revised.change == "revised" and revised.fetched is True
        assert removed.change == "removed" and removed.fetched is False and removed.reason
        assert reproduction.summary == (
            "2 leaves of v1 changed in their archives; 1 still fetchable as published (fetched and "
            "verified); 1 no longer fetchable"
        )
        # what arrived is what was published: the overwritten object's pinned bytes
        arrived = {p.name: p.read_bytes() for p in (tmp_path / "again").rglob("*.dcm") if p.is_file()}
        assert arrived == {"a.dcm": OBJECTS["p1/ct/a.dcm"], "b.dcm": OBJECTS["p1/ct/b.dcm"]}

    # the same from a terminal
    cli = str(tmp_path / "cli")
    out, _ = mediator(capsys, "download", "Lab scans", cli, "--version", "1", code=EXIT_DOWNLOAD_INCOMPLETE)
    assert "published version: 2 leaves of v1 changed in their archives" in out
    assert f"  lab/{BUCKET}/p1/ct/a.dcm: revised in its archive since; the pinned data is still " in out
    assert f"  lab/{BUCKET}/p2/mr/c.dcm: removed in its archive since; the pinned data is no longer " in out
    out, _ = mediator(
        capsys,
        "download",
        "Lab scans",
        str(tmp_path / "cli"),
        "--version",
        "1",
        "--json",
        code=EXIT_DOWNLOAD_INCOMPLETE,
    )
    answer = json.loads(out)
    assert answer["reproduction"]["identical"] is False and len(answer["reproduction"]["changes"]) == 2
