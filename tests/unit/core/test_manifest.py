from __future__ import annotations

import hashlib

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from mediator_desktop.core.errors import IntegrityError, ValidationError
from mediator_desktop.core.manifest import (
    FORMAT_HEADER,
    MAX_CHUNK_BYTES,
    Fingerprint,
    Leaf,
    Manifest,
    ManifestBuilder,
)
from tests.helpers.strategies import leaf_lists


def leaf(*path: str, size: int = 1, source: str = "idc", **fp: object) -> Leaf:
    return Leaf(source, path, Fingerprint(size=size, **fp))  # type: ignore[arg-type]


def small() -> Manifest:
    return Manifest.build(
        [
            leaf("nlst", "p2", "st1", "se1", size=10, count=2, version="uuid-1"),
            leaf("nlst", "p1", "st1", "se1", size=20, count=3, version="uuid-2"),
            leaf("lidc", "p9", "st", "se", size=5, checksum="md5:abc"),
        ]
    )


def test_leaves_come_out_sorted_and_whole() -> None:
    m = small()
    assert [x.path[:2] for x in m] == [("lidc", "p9"), ("nlst", "p1"), ("nlst", "p2")]
    assert len(m) == 3
    assert m.total_size == 35
    assert m.sources == ["idc"]
    assert m.get("idc", ("nlst", "p1", "st1", "se1")) == leaf(
        "nlst", "p1", "st1", "se1", size=20, count=3, version="uuid-2"
    )
    assert m.get("idc", ("nlst", "p1", "st1")) is None
    assert [x.path[1] for x in m.under("idc", ("nlst",))] == ["p1", "p2"]
    assert list(m.under("idc", ("nls",))) == []


def test_canonical_encoding_is_readable_and_stable() -> None:
    data = small().encode()
    assert data.startswith(FORMAT_HEADER.encode())
    assert data.endswith(b"\n")
    assert b"idc\x1fnlst\x1fp1\x1fst1\x1fse1\t20\x1f3\x1f\x1fuuid-2\x1f\n" in data
    assert small().id == hashlib.sha256(data).hexdigest()
    reordered = Manifest.build(reversed(list(small())))
    assert reordered.id == small().id
    assert reordered == small()


def test_empty_manifest_round_trips() -> None:
    empty = ManifestBuilder().build()
    assert len(empty) == 0
    assert Manifest.decode(empty.encode(), empty.id) == empty
    assert Manifest.from_chunks(empty.chunks(), empty.id) == empty


@given(leaf_lists)
def test_encode_decode_round_trip(leaves: list[Leaf]) -> None:
    m = Manifest.build(leaves)
    back = Manifest.decode(m.encode(), m.id)
    assert back == m
    assert sorted(back, key=lambda x: (x.source_id, x.path)) == sorted(
        leaves, key=lambda x: (x.source_id, x.path)
    )
    assert set(Manifest.from_chunks(m.chunks(max_bytes=64), m.id)) == set(leaves)
    for x in leaves:
        assert m.get(x.source_id, x.path) == x


def test_chunks_are_at_most_48_kb_and_checked() -> None:
    b = ManifestBuilder()
    for i in range(30_000):
        b.add("idc", ("c", f"p{i % 300}", f"st{i}", f"1.2.840.{i * 7919}"), size=i, version=f"{i:032x}")
    m = b.build()
    chunks = m.chunks()
    assert len(chunks) > 1
    assert all(len(c) <= MAX_CHUNK_BYTES for c in chunks)
    assert Manifest.from_chunks(chunks, m.id) == m
    with pytest.raises(IntegrityError, match="truncated"):
        Manifest.from_chunks(chunks[:-1], m.id)
    with pytest.raises(IntegrityError, match="not the expected"):
        Manifest.from_chunks(chunks, "0" * 64)
    damaged = [*chunks[:1], bytes(len(chunks[1])), *chunks[2:]]
    with pytest.raises(IntegrityError):
        Manifest.from_chunks(damaged, m.id)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import mediator_desktop.core.manifest as module

    monkeypatch.setattr(module, "MAX_MANIFEST_BYTES", 1000)
    bomb = zstandard.ZstdCompressor().compress(FORMAT_HEADER.encode() + b"x" * 10_000)
    with pytest.raises(ValidationError, match="more than 1000 bytes"):
        Manifest.from_chunks([bomb], "0" * 64)


def test_duplicate_leaves_are_refused() -> None:
    b = ManifestBuilder()
    b.add("idc", ("a", "b"), size=1)
    b.add("idc", ("a", "b"), size=2)
    with pytest.raises(ValidationError, match="idc/a/b appears twice"):
        b.build()


GOOD = small().encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a manifest"),
        (b"hello\n", "not a manifest"),
        (b"mediator-manifest 2\n", "not a manifest"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\xff\xfe\n", "UTF-8"),
        (GOOD.replace(b"\t20\x1f", b"\t020\x1f"), "malformed"),
        (GOOD.replace(b"\t20\x1f", b"\t-2\x1f"), "malformed"),
        (GOOD.replace(b"\t20\x1f3\x1f", b"\t20\x1f"), "malformed"),
        (GOOD.replace(b"nlst\x1fp1", b"nlst\x1f\x1fp1"), "malformed"),
        (GOOD.replace(b"nlst\x1fp1", b"nlst\rp1"), "malformed"),
        (GOOD.replace(b"nlst\x1fp1", b"nlst%zzp1"), "malformed"),
        (GOOD + GOOD.splitlines(keepends=True)[1], "out of order"),
        (GOOD.replace(b"p2", b"p0"), "out of order"),
        (GOOD.replace(b"\t10\x1f2", b"\t10\x1f2\x1fx"), "malformed"),
    ],
)
def test_malformed_manifests_are_typed_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Manifest.decode(data)


def test_same_key_with_two_fingerprints_is_refused() -> None:
    lines = GOOD.splitlines(keepends=True)
    twice = lines[2].replace(b"\t20\x1f", b"\t21\x1f")
    with pytest.raises(ValidationError, match="appears twice"):
        Manifest.decode(b"".join([*lines[:3], twice, *lines[3:]]))


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(junk: bytes) -> None:
    for data in (junk, FORMAT_HEADER.encode() + junk, GOOD + junk):
        try:
            m = Manifest.decode(data)
        except ValidationError:
            continue
        assert Manifest.decode(m.encode()) == m


@given(leaf_lists.filter(bool), st.data())
def test_flipped_bytes_are_caught_by_the_hash(leaves: list[Leaf], data: st.DataObject) -> None:
    m = Manifest.build(leaves)
    raw = bytearray(m.encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises((IntegrityError, ValidationError)):
        Manifest.decode(bytes(raw), m.id)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one field"),
        ({"size": -1}, "whole number"),
        ({"size": True}, "whole number"),
        ({"count": 1.5}, "whole number"),
        ({"checksum": ""}, "non-empty"),
        ({"version": 3}, "non-empty text"),
    ],
)
def test_bad_fingerprints(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Fingerprint(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=message):
        ManifestBuilder().add("idc", ("a",), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "path"), [("", ("a",)), ("idc", ()), ("idc", ("a", "")), ("idc", ("a", None))]
)
def test_bad_leaf_keys(source: str, path: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError):
        ManifestBuilder().add(source, path, size=1)


def test_keys_with_separators_and_percent_survive() -> None:
    odd = leaf("a\tb", "c\nd", "50%", "x\x1fy", "ü/é", size=1, checksum='etag:"x\ty"')
    m = Manifest.build([odd, leaf("a")])
    assert Manifest.decode(m.encode(), m.id).get("idc", odd.path) == odd
    assert b"a%09b\x1fc%0Ad\x1f50%25\x1fx%1Fy" in m.encode()
