"""Where the local API of the node running on this machine listens, and its token.

A running node (desktop app or headless) writes ``local-api.json`` into its data folder, readable
only by its user (0600): ``{"url": "http://127.0.0.1:PORT", "token": "...", "pid": N, "version": "..."}``.
Any client of that user (the SDK, the CLI, a Java program) reads it and sends the token as
``Authorization: Bearer TOKEN``. The token stays the same across restarts of the node.

Before a client sends the token, the node proves it holds it (``GET /v1/proof?challenge=HEX``
answers ``token_proof(token, challenge)``). The file outlives a crashed node, and another user of
the machine could listen on its old port: such a program cannot answer, and never sees the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from mediator_desktop.core.errors import ValidationError

ENDPOINT_FILE = "local-api.json"


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    token: str
    pid: int
    version: str

    @classmethod
    def read(cls, data_dir: Path) -> Endpoint | None:
        """The endpoint a node of ``data_dir`` wrote, or None (no node has run there yet)."""
        path = data_dir / ENDPOINT_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            endpoint = cls(str(data["url"]), str(data["token"]), int(data["pid"]), str(data["version"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidationError(
                f"{path} is damaged ({exc}); stop the node, delete the file and start the node again"
            ) from None
        if not endpoint.url.startswith("http://127.0.0.1:"):
            raise ValidationError(f"{path} names {endpoint.url}, not a loopback address; delete it")
        return endpoint

    def write(self, data_dir: Path) -> Path:
        """Write atomically, 0600 from the start."""
        path = data_dir / ENDPOINT_FILE
        tmp = path.with_name(f".{ENDPOINT_FILE}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)
        return path

    @staticmethod
    def token_for(data_dir: Path) -> str:
        """The token of the last endpoint file of ``data_dir``, or a new one."""
        try:
            old = Endpoint.read(data_dir)
        except ValidationError:
            old = None
        return old.token if old is not None and len(old.token) >= 32 else secrets.token_urlsafe(32)

    @staticmethod
    def clear(data_dir: Path, pid: int) -> None:
        """Mark the file as no longer served (pid 0) if process ``pid`` wrote it; the token stays."""
        try:
            current = Endpoint.read(data_dir)
        except ValidationError:
            return
        if current is not None and current.pid == pid:
            Endpoint(current.url, current.token, 0, current.version).write(data_dir)

    def alive(self) -> bool:
        """Whether the process that wrote this endpoint still runs (so the port is still its own)."""
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process took the pid: not our node
            return False
        return True


def token_proof(token: str, challenge: str) -> str:
    """What a node holding ``token`` answers to ``challenge`` (HMAC-SHA256, hex)."""
    return hmac.new(
        token.encode(), b"mediator-local-api-proof:" + challenge.encode(), hashlib.sha256
    ).hexdigest()
