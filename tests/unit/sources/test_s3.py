"""The S3 source against moto's real S3 server: configuration, browsing, resolution, joins, errors,
and downloads through the real transfer engine (pinned versions, If-Match drift, multipart ETags)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from mediator_desktop.core.errors import ArchiveUnreachable, IntegrityError, SourceError, ValidationError
from mediator_desktop.core.integrator import find_patients
from mediator_desktop.core.manifest import Manifest
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.registry import build_one, describe, kinds
from mediator_desktop.sources.s3 import LEVELS, S3Source, create, parse_secret, parse_template
from mediator_desktop.sources.tcia import TciaSource
from mediator_desktop.sources.transport import unreachable
from tests.helpers.net import free_ports
from tests.helpers.s3 import MotoServer
from tests.helpers.transfer import download, downloader, files_under

_names = itertools.count()
BIG = 2_500


def new_bucket(moto: MotoServer, *, versioned: bool = False, public: bool = False) -> str:
    name = f"bucket-{next(_names):03d}"
    if public:
        moto.public_bucket(name)
    else:
        moto.client().create_bucket(Bucket=name)
    if versioned:
        moto.client().put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def put(moto: MotoServer, bucket: str, objects: dict[str, bytes]) -> dict[str, str]:
    """Upload ``objects``; returns their VersionIds (in a versioned bucket)."""
    s3 = moto.client()
    return {
        key: s3.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId", "")
        for key, body in objects.items()
    }


def source(moto: MotoServer, *buckets: str, **options: Any) -> S3Source:
    options.setdefault("secret", None if options.get("anonymous") else "test:test")
    return S3Source("s3", buckets, endpoint_url=moto.url, **options)


def paths(manifest: Manifest) -> list[tuple[str, ...]]:
    return [leaf.path for leaf in manifest]


@pytest.fixture(scope="module")
def big(moto: MotoServer) -> str:
    """A versioned bucket with ``BIG`` objects in one folder (more than two listing pages)."""
    bucket = new_bucket(moto, versioned=True)

    def one(i: int) -> None:  # a plain PUT: moto without auth takes it, and boto3 would cost more
        requests.put(f"{moto.url}/{bucket}/many/o{i:05d}", data=b"x", timeout=30).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(BIG)))
    return bucket


# -- configuration -------------------------------------------------------------------------------------
def test_the_kind_its_options_and_the_factory(tmp_path: Path) -> None:
    assert kinds()["s3"] is create
    kind = describe()["s3"]
    options = {o.name: o for o in kind.options}
    assert set(options) == {"buckets", "endpoint_url", "region", "anonymous", "key_template", "connections"}
    assert options["buckets"].required and options["anonymous"].kind == "bool"
    assert options["connections"].default == 16 and options["region"].default == "us-east-1"
    assert kind.secret == "access key" and "SESSION_TOKEN" in kind.secret_help

    built = build_one(
        {
            "kind": "s3",
            "id": "lab",
            "options": {
                "buckets": "genomics, scans,genomics",
                "endpoint_url": "http://127.0.0.1:1/",
                "anonymous": "true",
                "key_template": "{patient}/{kind}/...",
                "connections": "8",
            },
        },
        tmp_path,
        None,
    )
    assert isinstance(built, S3Source)
    assert built.buckets == ("genomics", "scans") and built.anonymous and built.connections == 8
    assert built.endpoint_url == "http://127.0.0.1:1" and built.source_id == "lab"
    levels = built.hierarchy.levels
    assert len(levels) == LEVELS and levels[:4] == ("bucket", "patient", "kind", "folder 3")
    assert levels[-2:] == ("folder 30", "object") and built.patient_level == "patient"
    plain = create("plain", {"buckets": "data"}, "AKIA:shh:token", tmp_path)
    assert plain.patient_level is None and plain.hierarchy.levels[1] == "folder 1"
    assert plain.title == "S3 data" and not plain.anonymous

    with pytest.raises(ValidationError, match=r"must read ACCESS_KEY_ID:SECRET_ACCESS_KEY") as refused:
        create("lab", {"buckets": "data"}, "no-colon-secret", tmp_path)
    assert "no-colon-secret" not in str(refused.value)
    assert parse_secret(" id : key : tok ", "x") == ("id", "key", "tok")
    assert parse_secret("id:key", "x") == ("id", "key", None)
    with pytest.raises(ValidationError, match=r"at least one bucket"):
        create("lab", {"buckets": " , "}, None, tmp_path)
    with pytest.raises(ValidationError, match=r"'a b' is not a bucket name"):
        create("lab", {"buckets": "a b"}, None, tmp_path)
    with pytest.raises(ValidationError, match=r"must be an http\(s\) address"):
        create("lab", {"buckets": "data", "endpoint_url": "minio:9000"}, None, tmp_path)


def test_anonymous_urls_on_aws_need_no_request() -> None:
    aws = S3Source("idc", ["idc-open-data", "my.dotted.bucket"], anonymous=True)
    assert aws.object_url("idc-open-data", "a/b c+é.dcm") == (
        "https://idc-open-data.s3.us-east-1.amazonaws.com/a/b%20c%2B%C3%A9.dcm"
    )
    assert aws.object_url("my.dotted.bucket", "k", "v 1") == (
        "https://s3.us-east-1.amazonaws.com/my.dotted.bucket/k?versionId=v%201"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{patient}/.../x", r"'\.\.\.' may only end it"),
        ("a//{patient}", r"has an empty segment"),
        ("case-{patient}/...", r"write a field alone in its segment"),
        ("{patient}/{patient}", r"names \{patient\} twice"),
        ("{bucket}/...", r"\{bucket\} is a level of its own"),
        ("/".join(["x"] * 31), r"more than 30 folder levels"),
    ],
)
def test_bad_key_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_template(template)


def test_literal_template_segments_get_folder_names() -> None:
    s3 = S3Source("s3", ["data"], key_template="cases/{patient}/...")
    assert s3.hierarchy.levels[:4] == ("bucket", "folder 1", "patient", "folder 3")


# -- browsing ------------------------------------------------------------------------------------------
def test_browsing_levels_objects_folder_markers_and_odd_keys(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    put(
        moto,
        bucket,
        {
            "TCGA-01/rna/counts.tsv": b"counts",
            "TCGA-01/rna/deep/x.bin": b"x",
            "TCGA-01/notes.txt": b"notes",
            "TCGA-01/": b"",  # a folder marker
            "TCGA-02/wsi/slide 1 é.svs": b"slide",
            "empty//b": b"",  # an empty segment
            "README": b"hello",
        },
    )
    s3 = source(moto, bucket, key_template="{patient}/{kind}/...")
    assert [i.key for i in s3.browse().items] == [bucket]
    top = s3.browse((bucket,))
    assert [(i.key, i.level) for i in top.items] == [
        ("README", "object"),
        ("TCGA-01", "patient"),
        ("TCGA-02", "patient"),
        ("empty", "patient"),
    ]
    assert [(i.key, i.level) for i in s3.browse((bucket, "TCGA-01")).items] == [
        ("notes.txt", "object"),
        ("rna", "kind"),
    ]
    rna = s3.browse((bucket, "TCGA-01", "rna")).items
    assert [(i.key, i.level) for i in rna] == [("counts.tsv", "object"), ("deep", "folder 3")]
    counts = rna[0]
    assert counts.size == 6 and counts.leaves == 1 and counts.label == "counts.tsv"
    details = dict(counts.details)
    assert details["ETag"] == hashlib.md5(b"counts").hexdigest() and details["Last modified"].endswith(" UTC")
    assert "Version" not in details
    assert [i.key for i in s3.browse((bucket, "TCGA-02", "wsi")).items] == ["slide 1 é.svs"]
    assert s3.browse((bucket, "empty")).total == 0

    with pytest.raises(ValidationError, match=r"has no bucket 'nope'; its buckets: bucket-"):
        s3.browse(("nope",))
    with pytest.raises(ValidationError, match=r"no metadata to filter on"):
        s3.browse((bucket,), filters=(("Modality", ("CT",)),))
    with pytest.raises(ValidationError, match=r"at most 32 keys deep"):
        s3.browse((bucket, *["x"] * 31))
    with pytest.raises(ValidationError, match=r"cannot filter on 'Modality'"):
        s3.filter_values("Modality")
    assert s3.check().startswith("reachable at 127.0.0.1:") and "not versioned" in s3.check()


def test_browse_and_resolve_page_through_2500_objects(moto: MotoServer, big: str) -> None:
    s3 = source(moto, big)
    assert [(i.key, i.level) for i in s3.browse((big,)).items] == [("many", "folder 1")]
    page = s3.browse((big, "many"), offset=1000, limit=1000)
    assert page.total == BIG and len(page.items) == 1000 and page.more
    assert page.items[0].key == "o01000" and page.items[0].level == "object"
    assert "Version" in dict(page.items[0].details)
    last = s3.browse((big, "many"), offset=2000, limit=1000)
    assert len(last.items) == 500 and not last.more and last.items[-1].key == f"o{BIG - 1:05d}"

    manifest = s3.resolve(Selection.of(s3.pointer(big)))
    assert len(manifest) == BIG
    leaf = next(iter(manifest))
    assert leaf.path == (big, "many", "o00000")
    assert leaf.fingerprint.version and leaf.fingerprint.checksum == f"etag:{hashlib.md5(b'x').hexdigest()}"


# -- resolution ----------------------------------------------------------------------------------------
def test_a_pointer_selects_its_object_and_its_folder_never_sibling_keys(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    put(moto, bucket, {k: k.encode() for k in ("a", "a/x", "a/y/z", "ab/x", "a-b", "b/x", "a/y/")})
    s3 = source(moto, bucket)
    chosen = Selection.of(s3.pointer(bucket, "a"))
    assert paths(s3.resolve(chosen)) == [(bucket, "a"), (bucket, "a", "x"), (bucket, "a", "y", "z")]
    without = chosen.remove(s3.pointer(bucket, "a", "y"))
    assert paths(s3.resolve(without)) == [(bucket, "a"), (bucket, "a", "x")]
    everything = s3.resolve(Selection.of(s3.pointer(bucket)))
    assert len(everything) == 6  # the folder marker a/y/ is no object of the hierarchy
    fingerprint = everything.get("s3", (bucket, "a", "x"))
    assert fingerprint is not None
    fp = fingerprint.fingerprint
    assert fp.size == 3 and fp.checksum == f"etag:{hashlib.md5(b'a/x').hexdigest()}" and fp.version is None
    assert fp.released is not None and fp.released.endswith("Z") and len(fp.released) == 20
    assert len(s3.resolve(Selection.of(s3.pointer(bucket, "nothing")))) == 0
    assert s3.resolve(Selection.of(Pointer("s3", ()))) == everything
    with pytest.raises(ValidationError, match=r"not one folder or object name"):
        s3.resolve(Selection.of(Pointer("s3", (bucket, "a/x"))))


def test_a_versioned_bucket_pins_versions_and_leaves_deleted_objects_out(moto: MotoServer) -> None:
    bucket = new_bucket(moto, versioned=True)
    put(moto, bucket, {"d/x": b"one", "d/gone": b"g", "d/keep": b"k"})
    versions = put(moto, bucket, {"d/x": b"two"})
    moto.client().delete_object(Bucket=bucket, Key="d/gone")
    s3 = source(moto, bucket)
    manifest = s3.resolve(Selection.of(s3.pointer(bucket, "d")))
    assert paths(manifest) == [(bucket, "d", "keep"), (bucket, "d", "x")]
    x = manifest.get("s3", (bucket, "d", "x"))
    assert x is not None and x.fingerprint.version == versions["d/x"]
    # The object alone (a HEAD request) has the fingerprint its folder's listing gives it.
    alone = s3.resolve(Selection.of(s3.pointer(bucket, "d", "x")))
    assert list(alone) == [x]
    assert len(s3.resolve(Selection.of(s3.pointer(bucket, "d", "gone")))) == 0
    assert dict(s3.browse((bucket, "d")).items[1].details)["Version"] == versions["d/x"]


# -- downloads -----------------------------------------------------------------------------------------
def test_anonymous_download_from_a_public_bucket_with_an_odd_key(moto: MotoServer, tmp_path: Path) -> None:
    bucket = new_bucket(moto, public=True, versioned=True)
    key = "scans/slide 1 é+#?.bin"
    body = os.urandom(50_000)
    version = put(moto, bucket, {key: body})[key]
    s3 = source(moto, bucket, anonymous=True)
    assert [i.key for i in s3.browse((bucket, "scans")).items] == ["slide 1 é+#?.bin"]
    manifest = s3.resolve(Selection.of(s3.pointer(bucket)))
    (leaf,) = manifest
    assert leaf.path == (bucket, "scans", "slide 1 é+#?.bin")
    plan = s3.plan(leaf)
    (file,) = plan.files
    assert file.url == f"{moto.url}/{bucket}/{quote(key)}?versionId={version}" and "%2B%23%3F" in file.url
    assert file.md5 == hashlib.md5(body).hexdigest() and file.size == len(body)
    assert file.headers == (("If-Match", f'"{file.md5}"'),)
    assert plan.fields == {
        "collection": bucket,
        "modality": "S3",
        "series": "slide 1 é+#?.bin",
        "study": "scans",
    }
    put(moto, bucket, {key: b"overwritten"})
    report = download(s3, manifest, tmp_path / "out", layout="{collection}")
    assert report.ok, report.failed
    (name,) = files_under(tmp_path / "out")
    assert name.startswith(f"{bucket}/slide 1 é+#") and (tmp_path / "out" / name).read_bytes() == body


def test_a_pinned_version_downloads_after_an_overwrite_and_a_delete(moto: MotoServer, tmp_path: Path) -> None:
    bucket = new_bucket(moto, versioned=True)
    scan = os.urandom(30_000)
    put(moto, bucket, {"P1/rna/counts.tsv": b"old counts", "P1/img/scan.bin": scan, "P1/about.txt": b"a"})
    s3 = source(moto, bucket, key_template="{patient}/{kind}/...")
    manifest = s3.resolve(Selection.of(s3.pointer(bucket, "P1")))
    put(moto, bucket, {"P1/rna/counts.tsv": b"new counts, longer"})
    moto.client().delete_object(Bucket=bucket, Key="P1/img/scan.bin")
    leaf = manifest.get("s3", (bucket, "P1", "rna", "counts.tsv"))
    assert leaf is not None
    plan = s3.plan(leaf)
    assert "versionId=" in plan.files[0].url and "X-Amz-Signature=" in plan.files[0].url
    assert plan.files[0].md5 == hashlib.md5(b"old counts").hexdigest()  # no KMS: the ETag is an MD5
    assert plan.fields["patient"] == "P1" and plan.fields["study"] == "rna"
    assert s3.plan(next(iter(manifest))).fields["study"] == "objects"  # P1/about.txt

    # With TCIA configured too, as in a lab's node, the default layout's fields are known.
    with downloader(s3, TciaSource("tcia", "http://127.0.0.1:1/")) as engine:
        report = engine.download(manifest, tmp_path / "out")
    assert report.ok, report.failed
    out = tmp_path / "out" / bucket / "P1"
    assert (out / "rna" / "S3_counts.tsv" / "counts.tsv").read_bytes() == b"old counts"
    assert (out / "img" / "S3_scan.bin" / "scan.bin").read_bytes() == scan
    assert (out / "objects" / "S3_about.txt" / "about.txt").read_bytes() == b"a"


def test_an_object_overwritten_in_an_unversioned_bucket_fails_as_changed(
    moto: MotoServer, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    put(moto, bucket, {"d/changed.bin": os.urandom(20_000), "d/same.bin": b"same"})
    s3 = source(moto, bucket)
    manifest = s3.resolve(Selection.of(s3.pointer(bucket)))
    put(moto, bucket, {"d/changed.bin": os.urandom(20_000)})
    changed = manifest.get("s3", (bucket, "d", "changed.bin"))
    assert changed is not None
    report = download(s3, [changed], tmp_path / "out", layout="{collection}")
    (failure,) = report.failed
    assert "changed since the set was resolved" in failure.reason
    assert "check the set for updates" in failure.reason
    assert files_under(tmp_path / "out") == []
    assert not list((tmp_path / "out").rglob("*.part"))
    rest = download(s3, manifest, tmp_path / "other", layout="{collection}")
    assert len(rest.fetched) == 1 and len(rest.failed) == 1
    assert files_under(tmp_path / "other") == [f"{bucket}/same.bin"]


def test_etags_of_a_bucket_that_encrypts_with_kms_are_no_md5s(moto: MotoServer) -> None:
    bucket = new_bucket(moto)
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}
    moto.client().put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
    put(moto, bucket, {"k": b"v"})
    s3 = source(moto, bucket)
    (leaf,) = s3.resolve(Selection.of(s3.pointer(bucket)))
    (file,) = s3.plan(leaf).files
    etag = str(leaf.fingerprint.checksum).removeprefix("etag:")
    assert file.md5 is None and file.size == 1 and file.headers == (("If-Match", f'"{etag}"'),)


def multipart(moto: MotoServer, bucket: str, key: str, parts: list[bytes]) -> str:
    s3 = moto.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [
        {"ETag": s3.upload_part(Bucket=bucket, Key=key, PartNumber=n, UploadId=upload, Body=body)["ETag"],
         "PartNumber": n}
        for n, body in enumerate(parts, start=1)
    ]  # fmt: skip
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def test_a_multipart_object_downloads_checked_against_its_recomputed_etag(
    moto: MotoServer, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    five = 5 * 1024 * 1024
    parts = [os.urandom(five), os.urandom(five), os.urandom(70_000)]
    etag = multipart(moto, bucket, "big.bin", parts)
    assert etag.endswith("-3")
    s3 = source(moto, bucket)
    (leaf,) = s3.resolve(Selection.of(s3.pointer(bucket)))
    assert leaf.fingerprint.checksum == f"etag:{etag}"
    plan = s3.plan(leaf)
    assert plan.files[0].md5 is None and plan.finish is not None and plan.heavy
    report = download(s3, [leaf], tmp_path / "out", layout="{collection}")
    assert report.ok, report.failed
    assert (tmp_path / "out" / bucket / "big.bin").read_bytes() == b"".join(parts)

    damaged = tmp_path / "damaged.bin"
    damaged.write_bytes(b"".join(parts)[:-1] + b"!")
    with pytest.raises(IntegrityError, match=r"does not match its multipart ETag"):
        plan.finish(tmp_path, [damaged])

    # Parts of several sizes cannot be recomputed from one part size: the size alone is checked.
    uneven = multipart(moto, bucket, "uneven.bin", [os.urandom(five), os.urandom(five + 1000), b"end"])
    leaf = next(x for x in s3.resolve(Selection.of(s3.pointer(bucket, "uneven.bin"))))
    assert leaf.fingerprint.checksum == f"etag:{uneven}" and s3.plan(leaf).finish is None


# -- joins ------------------------------------------------------------------------------------------------
def test_join_patients_lists_the_patient_level_once_per_folder_above_it(moto: MotoServer) -> None:
    genomics, more, projects = new_bucket(moto), new_bucket(moto), new_bucket(moto)
    put(moto, genomics, {"TCGA-01/rna/x": b"1", "TCGA-02/rna/y": b"2", "TCGA-03/img/z": b"3", "README": b""})
    put(moto, more, {"TCGA-01/wsi/a.svs": b"1"})
    s3 = source(moto, genomics, more, key_template="{patient}/{kind}/...")
    wanted = ["TCGA-01", "TCGA-03", "TCGA-99", "README"]
    assert s3.join_patients(Pointer("s3", (genomics,)), wanted) == {
        "TCGA-01": [(genomics, "TCGA-01")],
        "TCGA-03": [(genomics, "TCGA-03")],
    }
    assert s3.join_patients(Pointer("s3", ()), wanted)["TCGA-01"] == [
        (genomics, "TCGA-01"),
        (more, "TCGA-01"),
    ]
    assert find_patients(s3, Pointer("s3", (more,)), wanted) == {"TCGA-01": [(more, "TCGA-01")]}
    with pytest.raises(ValidationError, match=r"above its patient level \(bucket > patient\)"):
        s3.join_patients(Pointer("s3", (genomics, "TCGA-01")), wanted)

    put(moto, projects, {"projA/P1/x": b"", "projB/P1/y": b"", "projB/P2/z": b"", "cases/P9/w": b""})
    nested = source(moto, projects, key_template="{project}/{patient}/...")
    assert nested.join_patients(Pointer("s3", (projects,)), ["P1", "P2"]) == {
        "P1": [(projects, "projA", "P1"), (projects, "projB", "P1")],
        "P2": [(projects, "projB", "P2")],
    }
    assert nested.join_patients(Pointer("s3", (projects, "projA")), ["P1", "P2"]) == {
        "P1": [(projects, "projA", "P1")]
    }
    literal = source(moto, projects, key_template="cases/{patient}/...")
    assert literal.join_patients(Pointer("s3", (projects,)), ["P1", "P9"]) == {
        "P9": [(projects, "cases", "P9")]
    }

    plain = source(moto, genomics)
    with pytest.raises(ValidationError, match=r"key template naming \{patient\}"):
        plain.join_patients(Pointer("s3", (genomics,)), wanted)


# -- errors --------------------------------------------------------------------------------------------
def test_a_bucket_that_does_not_exist_is_named(moto: MotoServer) -> None:
    s3 = source(moto, "no-such-bucket")
    pattern = r"S3 bucket 'no-such-bucket' does not exist at 127\.0\.0\.1:\d+; check the buckets"
    with pytest.raises(SourceError, match=pattern):
        s3.browse(("no-such-bucket",))
    with pytest.raises(SourceError, match=pattern):
        s3.resolve(Selection.of(s3.pointer("no-such-bucket", "a")))
    with pytest.raises(SourceError, match=pattern):
        s3.check()


def test_an_endpoint_out_of_reach_is_an_unreachable_archive() -> None:
    (port,) = free_ports(1)
    s3 = S3Source("lab", ["data"], endpoint_url=f"http://127.0.0.1:{port}", secret="a:b", attempts=1)
    with pytest.raises(
        ArchiveUnreachable, match=rf"cannot reach the S3 endpoint 127\.0\.0\.1:{port} for bucket 'data'"
    ) as caught:
        s3.browse(("data",))
    assert "botocore" not in str(caught.value) and "object at 0x" not in str(caught.value)
    assert caught.value.host == f"127.0.0.1:{port}" and unreachable(caught.value) is caught.value


@pytest.fixture(scope="module")
def signing() -> Iterator[MotoServer]:
    """moto checking signatures, with a private bucket."""
    server = MotoServer(auth=True).start()
    try:
        server.client().create_bucket(Bucket="private")
        server.client().put_object(Bucket="private", Key="k", Body=b"v")
        yield server
    finally:
        server.stop()


def test_wrong_credentials_on_a_private_bucket_say_what_to_do(signing: MotoServer) -> None:
    key_id, secret = signing.access_key
    good = S3Source("lab", ["private"], endpoint_url=signing.url, secret=f"{key_id}:{secret}")
    assert "private (not versioned)" in good.check()
    assert paths(good.resolve(Selection.of(good.pointer("private")))) == [("private", "k")]

    wrong = S3Source("lab", ["private"], endpoint_url=signing.url, secret=f"{key_id}:not-the-secret")
    with pytest.raises(
        SourceError, match=r"refused the secret access key of archive 'lab' for bucket 'private'"
    ) as caught:
        wrong.browse(("private",))
    assert "mediator sources secret lab" in str(caught.value) and "not-the-secret" not in str(caught.value)
    unknown = S3Source("lab", ["private"], endpoint_url=signing.url, secret="AKIAUNKNOWN:x")
    with pytest.raises(
        SourceError, match=r"does not know the access key ID of archive 'lab' \(bucket 'private'\)"
    ):
        unknown.check()


def test_refusals_of_the_store_become_messages_that_say_what_to_do() -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    def refusal(code: str, status: int, anonymous: bool = False, **extra: str) -> str:
        s3 = S3Source("lab", ["data"], anonymous=anonymous)
        response = {
            "Error": {"Code": code, "Message": "m", **extra},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return str(s3._refusal(ClientError(response, "ListObjectsV2"), "data", "the listing"))

    assert "refused anonymous access to the listing (403 AccessDenied): it is not public" in refusal(
        "AccessDenied", 403, anonymous=True
    )
    assert "refused the listing to the access key of archive 'lab' (403 AccessDenied)" in refusal(
        "AccessDenied", 403
    )
    assert "set the region of archive 'lab'" in refusal("PermanentRedirect", 301, Region="eu-west-1")
    assert "its region is eu-west-1" in refusal("AuthorizationHeaderMalformed", 400, Region="eu-west-1")
    assert "has expired" in refusal("ExpiredToken", 400)
    assert refusal("SlowDown", 503).endswith("try later")
    assert "changed since the set was resolved" in refusal("PreconditionFailed", 412)
