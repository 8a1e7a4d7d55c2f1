"""One fuzz target per parser of outside data.

Each target is a factory: it imports (under atheris' instrumentation) what it fuzzes, prepares
what the parser needs once, and returns the function run on each input. Exceptions the parser may
raise by contract are listed with the target; any other is a crash.

Input formats (``fuzz.seeds`` writes examples of each):
- ``envelope``: the bytes of a replicated command, as a peer would send them.
- ``state_ops``: signed commands applied to a fresh store: records split by 0x1e, each
  ``op\\nargs-json\\npayload``; an internal error of the state ("Please report this") is a crash.
- ``manifest``: ``d`` + canonical manifest bytes, or ``z`` + zstd chunks for ``from_chunks``.
- ``manifest_file``: a mode byte (``t`` .tcia, ``s`` .s5cmd, ``g`` GDC TSV, ``j`` set export,
  ``z`` raw zip, ``c`` crate folder, ``b`` bag folder, ``Z`` zipped folder) then the file's bytes, or
  for the folder modes parts split by ``\\0\\0``.
- ``tcia_zip``: ``r`` + raw zip bytes, or ``s`` + ``name\\0\\0content\\0\\0name...`` zipped here.
- ``dicomweb_multipart``: ``r`` + a raw WADO-RS body, or ``s`` + parts split by ``\\0\\0`` framed here.
- ``api_models``: a byte choosing a request model of ``api.models``, then the JSON body.
- ``local_api``: a byte choosing a route, then the body POSTed to the app of a real one-node
  cluster (in process, no socket); an answer 500 is a crash.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import atheris

OneInput = Callable[[bytes], None]
SEP = b"\0\0"


@dataclass(frozen=True)
class Target:
    name: str
    factory: Callable[[], OneInput]
    #: Exceptions besides ``MediatorError`` the parser documents.
    allowed: tuple[str, ...] = ()
    #: Seconds the factory takes (a node to start): the bounded run adds them.
    setup_seconds: float = 0.0


def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mediator-fuzz-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


# -- signed envelopes and the state's ops --------------------------------------------------------
def envelope() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.core import commands

    def one(data: bytes) -> None:
        parsed = commands.parse(data)
        assert parsed.signed == data[len(commands.MAGIC) + commands.SIGNATURE_BYTES :]

    return one


def state_ops() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.core.commands import SEALED_HERE, seal
        from mediator_desktop.core.errors import ValidationError
        from mediator_desktop.core.identity import Identity
        from mediator_desktop.core.state import StoreState

    identity = Identity.from_seed(bytes(range(32)), "fuzz")
    register = seal(
        identity, "register_user", {"public_key": identity.public_key.hex(), "display_name": "fuzz"}, 1, 1.0
    )

    def one(data: bytes) -> None:
        state = StoreState()
        state.apply(register, SEALED_HERE.get)
        for n, record in enumerate(data.split(b"\x1e")[:16], start=2):
            op, _, rest = record.partition(b"\n")
            args_text, _, payload = rest.partition(b"\n")
            try:
                args = json.loads(args_text)
            except (ValueError, RecursionError):
                continue  # the harness's own reading of the input
            if not isinstance(args, dict):
                continue
            try:
                command = seal(identity, op.decode("utf-8", "replace"), args, n, float(n), payload)
            except ValidationError:
                continue
            result = state.apply(command, SEALED_HERE.get)
            if result[0] == "err" and "Please report this" in result[2]:
                raise AssertionError(f"the state failed inside an operation: {result[2]}")

    return one


# -- manifests -----------------------------------------------------------------------------------
def manifest() -> OneInput:
    import zstandard

    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.core.manifest import Manifest

    def one(data: bytes) -> None:
        mode, body = data[:1], data[1:]
        if mode == b"z":
            try:
                reader = zstandard.ZstdDecompressor().decompressobj()
                plain = reader.decompress(body[: 1 << 16])
                expected = hashlib.sha256(plain).hexdigest()
            except zstandard.ZstdError:
                expected = "0" * 64
            step = 1 + len(body) % 13
            decoded = Manifest.from_chunks([body[i : i + step] for i in range(0, len(body), step)], expected)
        else:
            decoded = Manifest.decode(body)
        for leaf in decoded:
            assert leaf.key
        assert decoded.sources == sorted(decoded.sources)
        assert decoded.total_size >= 0

    return one


def manifest_file() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.core import exports
        from mediator_desktop.core.imports import read_manifest_file

    scratch = _scratch()
    suffixes = {b"t": "m.tcia", b"s": "m.s5cmd", b"g": "gdc_manifest.txt", b"j": "set.json", b"z": "m.zip"}

    def one(data: bytes) -> None:
        mode, body = data[:1], data[1:]
        folder = Path(tempfile.mkdtemp(dir=scratch))
        try:
            if mode in suffixes:
                path = folder / suffixes[mode]
                path.write_bytes(body)
            elif mode == b"c":
                path = folder / "s.crate"
                path.mkdir()
                (path / exports.CRATE_FILE).write_bytes(body)
            elif mode == b"b":
                path = folder / "s.bag"
                _write_bag(path, body.split(SEP), exports.BAG_SET_FILE)
            elif mode == b"Z":
                path = folder / "s.zip"
                if not _zip_parts(path, body.split(SEP), prefix="s.bag/"):
                    return
            else:
                return
            read_manifest_file(path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return one


def _write_bag(path: Path, parts: list[bytes], set_file: str) -> None:
    """A bag: bag-info.txt, fetch.txt and the set export from ``parts``; its tag manifest right,
    unless a fourth part gives one."""
    (path / "metadata").mkdir(parents=True)
    (path / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    names = ("bag-info.txt", "fetch.txt", set_file)
    for name, content in zip(names, [*parts, b"", b"", b""][:3], strict=True):
        (path / name).write_bytes(content)
    listed = b"".join(
        hashlib.sha256((path / name).read_bytes()).hexdigest().encode() + b"  " + name.encode() + b"\n"
        for name in names
    )
    (path / "tagmanifest-sha256.txt").write_bytes(parts[3] if len(parts) > 3 else listed)


def _zip_parts(path: Path, parts: list[bytes], prefix: str = "") -> bool:
    """``name, content, name, content...`` zipped; False when the names cannot be zip names."""
    try:
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in zip(parts[::2], parts[1::2], strict=False):
                archive.writestr(prefix + name.decode("utf-8", "replace"), content)
    except (ValueError, IndexError):  # a name zipfile cannot write ("", NUL...)
        return False
    return True


# -- archive payloads ----------------------------------------------------------------------------
def tcia_zip() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.sources.tcia import TciaSource

    scratch = _scratch()

    def one(data: bytes) -> None:
        mode, body = data[:1], data[1:]
        folder = Path(tempfile.mkdtemp(dir=scratch))
        try:
            zip_path, into = folder / "series.zip", folder / "stage"
            into.mkdir()
            if mode == b"s":
                if not _zip_parts(zip_path, body.split(SEP)):
                    return
            else:
                zip_path.write_bytes(body)
            expected = None if len(body) % 3 else body.count(SEP) // 2
            try:
                TciaSource._unpack(zip_path, into, "1.2.3", expected, None if len(body) % 2 else 1 << 16)
            finally:
                # Nothing may land outside the stage.
                stray = {p.name for p in folder.iterdir()} - {"series.zip", "stage"}
                assert not stray, f"the zip wrote outside its folder: {stray}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return one


def dicomweb_multipart() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.core.manifest import Fingerprint, Leaf
        from mediator_desktop.sources.dicomweb import DicomWebSource

    scratch = _scratch()
    source = DicomWebSource("dw", "http://127.0.0.1:9/dicom-web", title="Fuzz PACS")
    leaf = Leaf("dw", ("P", "1.2", "1.2.3"), Fingerprint(count=1))

    def one(data: bytes) -> None:
        mode, body = data[:1], data[1:]
        folder = Path(tempfile.mkdtemp(dir=scratch))
        try:
            stage = folder / "stage"
            stage.mkdir()
            if mode == b"s":
                parts = body.split(SEP)
                boundary = parts[0] or b"b"
                framed = b"".join(b"--" + boundary + b"\r\n" + part for part in parts[1:])
                body = framed + b"--" + boundary + b"--\r\n"
            (folder / "series.multipart").write_bytes(body)
            source._split(folder / "series.multipart", stage, leaf)
            stray = {p.name for p in folder.iterdir()} - {"series.multipart", "stage"}
            assert not stray, f"the body wrote outside its folder: {stray}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return one


# -- the local API -------------------------------------------------------------------------------
def api_models() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.api import models
        from mediator_desktop.core.publishing import DoiMetadata

    bodies = sorted(
        (
            kind
            for kind in vars(models).values()
            if isinstance(kind, type) and issubclass(kind, models._Body) and kind is not models._Body
        ),
        key=lambda kind: kind.__name__,
    )

    def convert(value: Any) -> None:
        """What the routes make of a body: pointers, DOI metadata."""
        if isinstance(value, models.PointerBody):
            value.pointer()
        elif isinstance(value, models.DoiMetadataBody):
            DoiMetadata.from_json(value.model_dump())
        if isinstance(value, models._Body):
            for name in type(value).model_fields:
                convert(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                convert(item)

    def one(data: bytes) -> None:
        if not data:
            return
        kind = bodies[data[0] % len(bodies)]
        body = kind.model_validate_json(data[1:])
        convert(body)
        kind.model_validate_json(body.model_dump_json())

    return one


#: Routes of the local API fuzzed through the app; none reaches outside the node's own folders
#: (no downloads, archives, cluster or settings changes).
API_ROUTES = (
    ("POST", "/v1/sets"),
    ("PUT", "/v1/sets/{set}/name"),
    ("POST", "/v1/sets/{set}/duplicate"),
    ("POST", "/v1/sets/{set}/versions"),
    ("PUT", "/v1/sets/{set}/visibility"),
    ("POST", "/v1/sets/import"),
    ("POST", "/v1/matches"),
    ("POST", "/v1/matches/cohort"),
    ("POST", "/v1/joins/preview"),
    ("POST", "/v1/tables/t/select"),
    ("POST", "/v1/checks"),
    ("POST", "/v1/sets/{set}/drift/accept"),
)


def local_api() -> OneInput:
    with atheris.instrument_imports(include=["mediator_desktop"]):
        from mediator_desktop.api.app import build_app
        from tests.helpers.service import make_node

    node = make_node(_scratch(), "fuzz")
    node.__enter__()
    atexit.register(node.__exit__, None, None, None)
    token = "fuzz-token"
    app = build_app(node.service, token)
    status, answer = _call(app, token, "POST", "/v1/sets", b'{"name": "fuzzed"}')
    assert status == 201, answer
    set_id = json.loads(answer)["id"]

    def one(data: bytes) -> None:
        if not data:
            return
        method, route = API_ROUTES[data[0] % len(API_ROUTES)]
        body = data[1:]
        if route == "/v1/sets/import" and b"path" in body:
            return  # a path names a file on this machine: the manifest_file target reads files
        status, answer = _call(app, token, method, route.replace("{set}", set_id), body)
        assert status < 500, f"{method} {route} answered {status}: {answer[:300]!r}"

    return one


def _call(app: Any, token: str, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the ASGI app, in process."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("envelope", envelope),
        Target("state_ops", state_ops),
        Target("manifest", manifest),
        Target("manifest_file", manifest_file),
        Target("tcia_zip", tcia_zip),
        Target("dicomweb_multipart", dicomweb_multipart),
        # pydantic's ValidationError (a ValueError) is how the API refuses a body: 422.
        Target("api_models", api_models, ("pydantic_core._pydantic_core.ValidationError",)),
        Target("local_api", local_api, setup_seconds=5.0),
    )
}


def guarded(target: Target, one: OneInput) -> OneInput:
    """``one`` with our typed errors and the target's documented exceptions let through."""
    from mediator_desktop.core.errors import MediatorError

    def run(data: bytes) -> None:
        try:
            one(data)
        except MediatorError:
            pass
        except Exception as exc:
            kind = type(exc)
            if f"{kind.__module__}.{kind.__qualname__}" not in target.allowed:
                raise

    return run


def sample_zip(entries: dict[str, bytes]) -> bytes:
    """A zip of ``entries`` in memory (for seeds)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()
