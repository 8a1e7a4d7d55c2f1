"""Leaves, fingerprints and manifests: the resolved, sorted, content-addressed list of a version's data.

Canonical encoding (format 1), UTF-8::

    mediator-manifest 1\\n
    <source>US<key1>US...US<keyN>TAB<size>US<count>US<checksum>US<version>US<released>\\n   (one line a leaf)

``US`` is the ASCII unit separator (0x1f). Each field escapes ``%`` and control characters as
``%XX``, so the separators never occur inside a field. Lines are sorted by code point, which sorts
leaves by key and keeps every subtree (collection, patient...) contiguous, because the separators
sort below any field character. Absent fingerprint fields are empty. The manifest id is the
sha256 of these bytes. For the store, the bytes are zstd-compressed and cut into chunks of at most
48 KB; decoding checks the hash, the grammar, the order and the uniqueness of keys.

A manifest keeps its lines, not objects: a million leaves cost about 300 MB, and ``Leaf`` objects
are made only when asked for.
"""

from __future__ import annotations

import codecs
import hashlib
import operator
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, pairwise
from typing import Final

import zstandard

from mediator_desktop.core.errors import IntegrityError, ValidationError

FORMAT_HEADER: Final = "mediator-manifest 1\n"
US: Final = "\x1f"
TAB: Final = "\t"
#: Largest compressed chunk handed to the store (each replicated command stays well under 64 KB).
MAX_CHUNK_BYTES: Final = 48 * 1024
#: Largest canonical manifest accepted when decoding (guards against decompression bombs).
MAX_MANIFEST_BYTES: Final = 4 * 1024**3

_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f%]").search
_NEEDS_ESCAPE_JOINED = re.compile(r"[\x00-\x1e%]").search  # the unit separator is the joint
_ESCAPABLE = re.compile(r"[\x00-\x1f%]")
_ESCAPE_PERCENT = re.compile(r"%([0-9A-F]{2})")
_BAD_PERCENT = re.compile(r"%(?![0-9A-F]{2})").search
_FIELD = r"[^\x00-\x1f]"
_NUMBER = r"(?:0|[1-9][0-9]*)?"
_LINE = re.compile(
    rf"{_FIELD}+(?:\x1f{_FIELD}+)+\t{_NUMBER}\x1f{_NUMBER}\x1f{_FIELD}*\x1f{_FIELD}*\x1f{_FIELD}*"
).fullmatch


def _escape(text: str) -> str:
    if _NEEDS_ESCAPE(text) is None:
        return text
    return _ESCAPABLE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return _ESCAPE_PERCENT.sub(lambda m: chr(int(m.group(1), 16)), text)


#: One key of a leaf's path as it stands in a canonical line, and back.
escape_component = _escape
unescape_component = _unescape


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What proves a leaf unchanged. Which fields a source fills is its own choice; never none.

    Attributes:
        size: bytes of the leaf's data.
        count: instances (files) in the leaf.
        checksum: ``algorithm:value``, e.g. ``md5:...`` or ``etag:...``.
        version: an archive version id: IDC ``crdc_series_uuid``, S3 ``VersionId``, GDC file UUID.
        released: a release date or timestamp as the archive gives it (TCIA ``DateReleased``).
    """

    size: int | None = None
    count: int | None = None
    checksum: str | None = None
    version: str | None = None
    released: str | None = None

    def __post_init__(self) -> None:
        self.encode()  # validates

    def encode(self) -> str:
        return encode_fingerprint(self.size, self.count, self.checksum, self.version, self.released)

    @classmethod
    def decode(cls, text: str) -> Fingerprint:
        fields = text.split(US)
        if len(fields) != 5:
            raise ValidationError(f"a fingerprint has 5 fields, not {len(fields)}: {text!r}")
        size, count, checksum, version, released = fields
        try:
            return cls(
                int(size) if size else None,
                int(count) if count else None,
                _unescape(checksum) or None,
                _unescape(version) or None,
                _unescape(released) or None,
            )
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"malformed fingerprint {text!r}: {exc}") from None


def encode_key(source_id: str, path: Sequence[str]) -> str:
    """The canonical key of a leaf: escaped source id and path keys joined by the unit separator."""
    try:
        joined = US.join((source_id, *path))
    except TypeError:
        raise ValidationError(f"leaf keys must be text; got {source_id!r} / {path!r}") from None
    if not path or not source_id or not all(path):
        raise ValidationError(
            f"a leaf needs a source id and a path of non-empty keys; got {source_id!r} / {tuple(path)!r}"
        )
    if joined.count(US) == len(path) and _NEEDS_ESCAPE_JOINED(joined) is None:
        return joined
    return US.join(map(_escape, (source_id, *path)))


def _text_field(name: str, text: str | None) -> str:
    if text is None:
        return ""
    if type(text) is not str or not text:
        raise ValidationError(f"fingerprint {name} must be non-empty text, not {text!r}")
    return text if _NEEDS_ESCAPE(text) is None else _escape(text)


def _number_field(name: str, number: int | None) -> str:
    if number is None:
        return ""
    if type(number) is not int or number < 0:
        raise ValidationError(f"fingerprint {name} must be a whole number >= 0, not {number!r}")
    return str(number)


def encode_fingerprint(
    size: int | None, count: int | None, checksum: str | None, version: str | None, released: str | None
) -> str:
    """Validate and encode fingerprint fields without making a ``Fingerprint`` object."""
    size_text, count_text = _number_field("size", size), _number_field("count", count)
    if size is None and count is None and checksum is None and version is None and released is None:
        raise ValidationError(
            "a fingerprint needs at least one field: nothing would prove the leaf unchanged"
        )
    return (
        f"{size_text}{US}{count_text}{US}{_text_field('checksum', checksum)}"
        f"{US}{_text_field('version', version)}{US}{_text_field('released', released)}"
    )


def decode_key(key: str) -> tuple[str, tuple[str, ...]]:
    source_id, *path = (_unescape(k) for k in key.split(US))
    return source_id, tuple(path)


@dataclass(frozen=True, slots=True)
class Leaf:
    """The finest unit a source can fetch and fingerprint (a series, an S3 object, a GDC file)."""

    source_id: str
    path: tuple[str, ...]
    fingerprint: Fingerprint

    @property
    def key(self) -> str:
        return encode_key(self.source_id, self.path)

    def encode(self) -> str:
        return f"{self.key}{TAB}{self.fingerprint.encode()}"

    @classmethod
    def decode(cls, line: str) -> Leaf:
        key, _, fp = line.partition(TAB)
        source_id, path = decode_key(key)
        return cls(source_id, path, Fingerprint.decode(fp))


def _unpack(chunks: Iterable[bytes], manifest_id: str) -> Iterator[bytes]:
    """Decompress store chunks as a stream, refusing bombs and truncation."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    total = 0
    try:
        for chunk in chunks:
            piece = decompressor.decompress(chunk)
            total += len(piece)
            if total > MAX_MANIFEST_BYTES:
                raise ValidationError(
                    f"manifest {manifest_id[:12]} unpacks to more than {MAX_MANIFEST_BYTES} bytes; refused"
                )
            yield piece
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"manifest {manifest_id[:12]} is corrupt (not zstd data: {exc})") from None
    if not decompressor.eof:
        raise IntegrityError(f"manifest {manifest_id[:12]} is truncated: chunks are missing")


class ManifestBuilder:
    """Collects leaves without making objects for them, then sorts once: the fast way to build.

    Example::

        b = ManifestBuilder()
        b.add("idc", ("nlst", "100002", study_uid, series_uid), size=52_000_000, count=120,
              version=crdc_series_uuid)
        manifest = b.build()
    """

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(
        self,
        source_id: str,
        path: Sequence[str],
        *,
        size: int | None = None,
        count: int | None = None,
        checksum: str | None = None,
        version: str | None = None,
        released: str | None = None,
    ) -> None:
        key = encode_key(source_id, path)
        self._lines.append(f"{key}{TAB}{encode_fingerprint(size, count, checksum, version, released)}")

    def add_leaf(self, leaf: Leaf) -> None:
        self._lines.append(leaf.encode())

    def __len__(self) -> int:
        return len(self._lines)

    def build(self) -> Manifest:
        """Sort and check that no leaf was added twice. The builder is empty afterwards."""
        lines, self._lines = self._lines, []
        lines.sort()
        _check_unique_keys(lines)
        return Manifest._from_sorted_lines(lines)


def _check_unique_keys(lines: list[str]) -> None:
    """In sorted lines, a key that repeats sits on neighbouring lines."""
    prefixes = (line[: line.find(TAB) + 1] for line in lines)
    repeats = map(str.startswith, islice(lines, 1, None), prefixes)
    if any(repeats):
        i = next(i for i, (a, b) in enumerate(pairwise(lines)) if b.startswith(a[: a.find(TAB) + 1]))
        source_id, path = decode_key(lines[i].partition(TAB)[0])
        raise ValidationError(f"leaf {source_id}/{'/'.join(path)} appears twice (line {i + 3})")


def _check_sorted(lines: list[str]) -> None:
    if not all(map(operator.lt, lines, islice(lines, 1, None))):
        i = next(i for i, (a, b) in enumerate(pairwise(lines)) if a >= b)
        raise ValidationError(f"manifest line {i + 3} is out of order or repeated")


#: Lines per block when encoding in a stream (about 2 MB of text).
_BLOCK_LINES = 8192


class Manifest:
    """An immutable, sorted, content-addressed list of leaves."""

    __slots__ = ("__weakref__", "_id", "_lines")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._id: str | None = None

    @classmethod
    def _from_sorted_lines(cls, lines: list[str]) -> Manifest:
        manifest = cls.__new__(cls)
        manifest._lines = lines
        manifest._id = None
        return manifest

    @classmethod
    def from_canonical_lines(
        cls, lines: list[str], *, check_grammar: bool = True, check_unique: bool = True
    ) -> Manifest:
        """A manifest from canonical lines a source encoded in bulk (sorted, one per leaf).

        Order is always checked. ``check_grammar=False`` skips the per-line grammar check for
        encoders whose output tests compare with ``ManifestBuilder``'s; ``check_unique=False``
        skips the key check for sources whose data guarantees unique keys (checked there).
        """
        if check_grammar:
            for number, line in enumerate(lines, start=2):
                if _LINE(line) is None or (line.find("%") >= 0 and _BAD_PERCENT(line)):
                    raise ValidationError(f"manifest line {number} is malformed: {line[:120]!r}")
        _check_sorted(lines)
        if check_unique:
            _check_unique_keys(lines)
        return cls._from_sorted_lines(lines)

    @classmethod
    def build(cls, leaves: Iterable[Leaf]) -> Manifest:
        builder = ManifestBuilder()
        for leaf in leaves:
            builder.add_leaf(leaf)
        return builder.build()

    # -- identity and encoding -----------------------------------------------------------------
    def blocks(self) -> Iterator[bytes]:
        """The canonical bytes in pieces of about 2 MB: encode, hash or compress without one big copy."""
        yield FORMAT_HEADER.encode()
        lines = self._lines
        for i in range(0, len(lines), _BLOCK_LINES):
            block = lines[i : i + _BLOCK_LINES]
            block.append("")
            yield "\n".join(block).encode()

    def encode(self) -> bytes:
        """The canonical bytes, whole."""
        return b"".join(self.blocks())

    @property
    def id(self) -> str:
        """sha256 (hex) of the canonical bytes."""
        if self._id is None:
            hasher = hashlib.sha256()
            for block in self.blocks():
                hasher.update(block)
            self._id = hasher.hexdigest()
        return self._id

    def chunks(self, max_bytes: int = MAX_CHUNK_BYTES) -> list[bytes]:
        """The canonical bytes, zstd-compressed and cut into pieces of at most ``max_bytes``."""
        hasher = hashlib.sha256()
        compressor = zstandard.ZstdCompressor(level=3).compressobj()
        packed: list[bytes] = []
        for block in self.blocks():
            hasher.update(block)
            packed.append(compressor.compress(block))
        packed.append(compressor.flush())
        self._id = hasher.hexdigest()
        data = b"".join(packed)
        return [data[i : i + max_bytes] for i in range(0, len(data), max_bytes)]

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes], expected_id: str) -> Manifest:
        """Reassemble ``chunks()``; raises ``IntegrityError`` unless the content hashes to ``expected_id``."""
        return cls._decode_stream(_unpack(chunks, expected_id), expected_id)

    @classmethod
    def decode(cls, data: bytes, expected_id: str | None = None) -> Manifest:
        """Parse canonical bytes, checking hash, grammar, order and uniqueness of keys."""
        view = memoryview(data)
        step = 1 << 21
        return cls._decode_stream((view[i : i + step] for i in range(0, len(view), step)), expected_id)

    @classmethod
    def _decode_stream(cls, pieces: Iterable[bytes | memoryview], expected_id: str | None) -> Manifest:
        hasher = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")()
        lines: list[str] = []
        tail = ""
        try:
            for piece in pieces:
                hasher.update(piece)
                parts = (tail + decoder.decode(piece)).split("\n")
                tail = parts.pop()
                lines.extend(parts)
            tail += decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ValidationError(f"manifest is not UTF-8 text: {exc}") from None
        digest = hasher.hexdigest()
        if expected_id is not None and digest != expected_id:
            raise IntegrityError(
                f"manifest content hashes to {digest[:12]}, not the expected {expected_id[:12]}: "
                "it was changed or damaged on the way; fetch it again"
            )
        if not lines or lines[0] + "\n" != FORMAT_HEADER:
            start = (lines[0] if lines else tail)[:30]
            raise ValidationError(
                f"not a manifest of format 1 (it starts with {start!r}); a newer app may have written it"
            )
        if tail:
            raise ValidationError("manifest does not end with a newline: it is truncated")
        del lines[0]
        for number, line in enumerate(lines, start=2):
            if _LINE(line) is None or (line.find("%") >= 0 and _BAD_PERCENT(line)):
                raise ValidationError(f"manifest line {number} is malformed: {line[:120]!r}")
        _check_sorted(lines)
        _check_unique_keys(lines)
        manifest = cls._from_sorted_lines(lines)
        manifest._id = digest
        return manifest

    # -- access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[Leaf]:
        return map(Leaf.decode, self._lines)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and self._lines == other._lines

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Manifest {self.id[:12]} of {len(self)} leaves>"

    def lines(self) -> Sequence[str]:
        """The canonical lines (read-only view for codecs and diffs)."""
        return self._lines

    def get(self, source_id: str, path: Sequence[str]) -> Leaf | None:
        prefix = encode_key(source_id, path) + TAB
        i = bisect_left(self._lines, prefix)
        if i < len(self._lines) and self._lines[i].startswith(prefix):
            return Leaf.decode(self._lines[i])
        return None

    def under(self, source_id: str, path: Sequence[str] = ()) -> Iterator[Leaf]:
        """Leaves of ``source_id`` whose path starts with ``path`` (a contiguous run of lines)."""
        key = US.join(map(_escape, (source_id, *path)))
        lines = self._lines
        i = bisect_left(lines, key)
        while i < len(lines):
            line = lines[i]
            if not line.startswith(key) or line[len(key)] not in (US, TAB):
                break
            yield Leaf.decode(line)
            i += 1

    @property
    def sources(self) -> list[str]:
        return sorted({decode_key(line.partition(US)[0])[0] for line in self._lines})

    @property
    def total_size(self) -> int:
        return sum(leaf.fingerprint.size or 0 for leaf in self)
