"""Update tracking of the S3 source against moto: new, overwritten and deleted objects become drift,
with notes on whether the pinned versions stay downloadable."""

from __future__ import annotations

import re
import time

from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.s3 import S3Source
from tests.helpers.s3 import MotoServer

STATE = re.compile(r"S3 as of \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def bucket(moto: MotoServer, name: str, *, versioned: bool) -> str:
    s3 = moto.client()
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for key in ("d/a", "d/b", "d/c", "d/sub/x", "e/solo"):
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def source(moto: MotoServer, *buckets: str) -> S3Source:
    return S3Source("s3", buckets, endpoint_url=moto.url, secret="test:test")


def test_a_versioned_bucket_reports_added_overwritten_deleted_and_versions_kept(moto: MotoServer) -> None:
    name = bucket(moto, "tracked-versioned", versioned=True)
    s3 = source(moto, name)
    selection = Selection.of(s3.pointer(name, "d"), s3.pointer(name, "e", "solo"))
    base = s3.resolve(selection)
    assert len(base) == 5
    unchanged = s3.track(selection, base, time.time())
    assert unchanged.manifest == base and unchanged.notes == () and STATE.fullmatch(unchanged.state)

    client = moto.client()
    client.put_object(Bucket=name, Key="d/new", Body=b"new")
    client.put_object(Bucket=name, Key="d/a", Body=b"overwritten")
    client.delete_object(Bucket=name, Key="d/b")
    client.put_object(Bucket=name, Key="e/solo", Body=b"overwritten too")
    client.put_object(Bucket=name, Key="outside/x", Body=b"not in the set")
    tracked = s3.track(selection, base, time.time())
    assert tracked.manifest == s3.resolve(selection)
    drift = ManifestDiff.between(base, tracked.manifest)
    assert [leaf.path[1:] for leaf in drift.added] == [("d", "new")]
    assert sorted(pair[0].path[1:] for pair in drift.changed) == [("d", "a"), ("e", "solo")]
    assert [leaf.path[1:] for leaf in drift.removed] == [("d", "b")]
    assert tracked.notes == (
        f"3 objects overwritten or deleted in bucket {name}: the pinned versions stay downloadable "
        "(the bucket keeps versions)",
    )

    # A pinned version deleted for good is said to be lost (the listing, or a HEAD for an object
    # the set names by its full key, shows it is gone).
    pinned = {leaf.path[1:]: leaf.fingerprint.version for leaf in base}
    client.delete_object(Bucket=name, Key="d/c", VersionId=pinned[("d", "c")])
    client.delete_object(Bucket=name, Key="e/solo", VersionId=pinned[("e", "solo")])
    tracked = s3.track(selection, base, None)
    assert tracked.notes == (
        f"2 objects overwritten or deleted in bucket {name}: the pinned versions stay downloadable "
        "(the bucket keeps versions)",
        f"2 pinned versions deleted for good from bucket {name}: they can no longer be downloaded",
    )


def test_an_unversioned_bucket_says_the_pinned_objects_are_gone(moto: MotoServer) -> None:
    name = bucket(moto, "tracked-plain", versioned=False)
    s3 = source(moto, name)
    selection = Selection.of(s3.pointer(name))
    base = s3.resolve(selection)
    client = moto.client()
    client.put_object(Bucket=name, Key="d/a", Body=b"overwritten")
    client.delete_object(Bucket=name, Key="d/sub/x")
    client.put_object(Bucket=name, Key="f/added", Body=b"added")
    tracked = s3.track(selection, base, time.time())
    drift = ManifestDiff.between(base, tracked.manifest)
    assert len(drift.added) == 1 and len(drift.changed) == 1 and len(drift.removed) == 1
    assert tracked.notes == (
        f"2 objects overwritten or deleted in bucket {name}: the bucket keeps no versions, so the pinned "
        "ones can no longer be downloaded; update the set to download the current ones",
    )
