"""Pairing: a newcomer with a join code gets the cluster secret and becomes a member.

A member runs a ``PairingServer`` on its LAN address. The exchange, one JSON object a line over TCP:

1. newcomer -> member: protocol, app version, its Raft address, name, a random nonce.
2. member -> newcomer: its protocol and version and its own nonce (or a refusal: another
   protocol version, too many wrong codes).
3. newcomer -> member: HMAC(token, both nonces): proof that it holds an unexpired, unused code.
4. member: marks the code used, adds the newcomer by Raft dynamic membership, and answers with
   the cluster secret and the members, sealed with AES-GCM under a key derived from the token
   and both nonces, plus its own HMAC proof (the newcomer knows it talks to the code's maker).

The code never leaves the two machines and the secret never travels in the clear; a wrong guess
costs the guesser one of five tries a minute (per address, and thirty a minute in all).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import secrets
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mediator_desktop.core.cluster import PROTOCOL, JoinCode, cluster_id_of
from mediator_desktop.core.errors import MediatorError, PairingError

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024
#: Wrong codes allowed per client address, and in all, per minute.
PER_ADDRESS_FAILURES = 5
ALL_FAILURES = 30
WINDOW = 60.0
#: How long a member waits for a newcomer to start with the secret before giving up on it.
STARTUP_WAIT = 60.0


@dataclass(frozen=True)
class Grant:
    """What a newcomer receives: the secret and the members to start Raft with."""

    secret: str
    members: list[str]
    cluster_id: str


@functools.lru_cache(maxsize=16)
def _stretch(token: bytes, nonces: bytes) -> bytes:
    """64 bytes from the token, memory-hard (scrypt, ~32 MB): someone who records an exchange
    cannot try the 2^48 tokens offline in any useful time, and online guesses are rate-limited."""
    return hashlib.scrypt(
        token, salt=b"mediator-join-v1" + nonces, n=2**15, r=8, p=1, maxmem=64 << 20, dklen=64
    )


def _key(token: bytes, nonces: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=nonces, info=b"mediator-join-v1").derive(
        _stretch(token, nonces)[32:]
    )


def _proof(token: bytes, side: bytes, nonces: bytes) -> str:
    return hmac.new(_stretch(token, nonces)[:32], side + nonces, hashlib.sha256).hexdigest()


class PairingServer:
    """Serves join requests on ``host:port`` (0: any free port). Thread-safe.

    Args:
        add_member: adds a Raft address to the cluster (dynamic membership); raises on failure.
        members: the cluster's Raft addresses now (the newcomer starts with them as peers).
    """

    def __init__(
        self,
        host: str,
        secret: str,
        *,
        version: str,
        add_member: Callable[[str], None],
        members: Callable[[], list[str]],
        port: int = 0,
        protocol: int = PROTOCOL,
    ) -> None:
        self.host = host
        self._secret = secret
        self.version = version
        self.protocol = protocol
        self._add_member = add_member
        self._members = members
        self._lock = threading.Lock()
        self._codes: dict[bytes, int] = {}  # token -> expiry
        self._failures: dict[str, deque[float]] = {}
        self._all_failures: deque[float] = deque()
        server = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 10

            def handle(self) -> None:
                server._handle(self)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="pairing", daemon=True
        )
        self._thread.start()

    def create_code(self, ttl: float = 600.0) -> JoinCode:
        """A new single-use code, valid for ``ttl`` seconds (rounded up to the minute)."""
        code = JoinCode.new(self.host, self.port, ttl)
        with self._lock:
            now = time.time()
            self._codes = {t: e for t, e in self._codes.items() if e > now}
            self._codes[code.token] = code.expires
        return code

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- one connection ------------------------------------------------------------------------
    def _handle(self, conn: socketserver.StreamRequestHandler) -> None:
        client = str(conn.client_address[0])

        def send(message: dict[str, Any]) -> None:
            conn.wfile.write(json.dumps(message).encode() + b"\n")

        try:
            hello = _read(conn.rfile)
            if self._blocked(client):
                send({"error": "too many wrong join codes from this machine; wait a minute and try again"})
                return
            if hello.get("protocol") != self.protocol:
                send(
                    {
                        "error": f"this cluster speaks protocol {self.protocol} (MEDIator {self.version}); "
                        f"you have protocol {hello.get('protocol')} (MEDIator {hello.get('version')}): "
                        "update both machines to the same version"
                    }
                )
                return
            address, client_nonce = hello.get("address"), hello.get("nonce")
            if not isinstance(address, str) or not isinstance(client_nonce, str) or len(client_nonce) != 32:
                send({"error": "malformed join request"})
                return
            server_nonce = secrets.token_hex(16)
            send({"protocol": self.protocol, "version": self.version, "nonce": server_nonce})
            nonces = bytes.fromhex(client_nonce) + bytes.fromhex(server_nonce)
            proof = _read(conn.rfile).get("proof")
            if self._blocked(client):  # guesses sent in parallel count too
                send({"error": "too many wrong join codes from this machine; wait a minute and try again"})
                return
            token = self._redeem(proof if isinstance(proof, str) else "", nonces)
            if token is None:
                self._failed(client)
                send(
                    {"error": "this join code is wrong, expired or used already; ask a member for a new one"}
                )
                return
            grant = {
                "secret": self._secret,
                "members": sorted(set(self._members()) | {address}),
                "cluster_id": cluster_id_of(self._secret),
            }
            iv = secrets.token_bytes(12)
            sealed = AESGCM(_key(token, nonces)).encrypt(iv, json.dumps(grant).encode(), None)
            send(
                {
                    "ok": True,
                    "proof": _proof(token, b"server", nonces),
                    "iv": iv.hex(),
                    "sealed": sealed.hex(),
                }
            )
            # Phase two: add the newcomer only once it runs with the secret, so the membership
            # change can commit (in a one-node cluster the new majority is both nodes) and a
            # newcomer that fails to start never leaves the cluster waiting for it.
            conn.connection.settimeout(STARTUP_WAIT)
            started = _read(conn.rfile)
            if started.get("started") is not True:
                return
            try:
                self._add_member(address)
            except MediatorError as exc:
                send({"error": f"the cluster could not add {address} ({exc}); ask for a new code"})
                return
            send({"added": True})
            log.info("%s joined the cluster with a join code", address)
        except (OSError, ValueError, json.JSONDecodeError):
            log.debug("a pairing connection from %s broke off", client)

    def _redeem(self, proof: str, nonces: bytes) -> bytes | None:
        with self._lock:
            now = time.time()
            for token, expires in list(self._codes.items()):
                if expires > now and hmac.compare_digest(_proof(token, b"client", nonces), proof):
                    del self._codes[token]  # single use
                    return token
        return None

    def _blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for queue in (self._failures.get(client, deque()), self._all_failures):
                while queue and now - queue[0] > WINDOW:
                    queue.popleft()
            return (
                len(self._failures.get(client, ())) >= PER_ADDRESS_FAILURES
                or len(self._all_failures) >= ALL_FAILURES
            )

    def _failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)
            self._all_failures.append(now)


def _read(stream: Any) -> dict[str, Any]:
    line = stream.readline(MAX_LINE + 1)
    if not line or len(line) > MAX_LINE:
        raise ValueError("no line, or one too long")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("not an object")
    return message


class Redemption:
    """A join in progress: the grant is in hand; ``started()`` asks the member to add this node
    (call it once Raft runs with the granted secret); ``close()`` abandons the join."""

    def __init__(self, sock: socket.socket, stream: Any, grant: Grant, where: str) -> None:
        self._sock = sock
        self._stream = stream
        self.grant = grant
        self._where = where

    def started(self, timeout: float = 30.0) -> None:
        try:
            self._sock.settimeout(timeout)
            _write(self._stream, {"started": True})
            answer = _read(self._stream)
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise PairingError(
                f"{self._where} did not confirm adding this node ({exc.__class__.__name__}); try again "
                "with a new code"
            ) from None
        finally:
            self.close()
        if "error" in answer:
            raise PairingError(str(answer["error"]))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def redeem(
    code: JoinCode,
    address: str,
    *,
    name: str,
    version: str,
    protocol: int = PROTOCOL,
    timeout: float = 15.0,
) -> Redemption:
    """Ask the member that made ``code`` for the cluster's secret and members. Raises ``PairingError``.

    The member adds this node only after ``Redemption.started()``.
    """
    if code.expired():
        when = time.strftime("%H:%M", time.localtime(code.expires))
        raise PairingError(f"this join code expired at {when}; ask a member for a new one")
    client_nonce = secrets.token_bytes(16)
    where = f"the member at {code.host}:{code.port}"
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((code.host, code.port), timeout=timeout)
        sock.settimeout(timeout)
        stream = sock.makefile("rwb")
        hello = {"protocol": protocol, "version": version, "address": address, "name": name}
        _write(stream, {**hello, "nonce": client_nonce.hex()})
        answer = _read(stream)
        if "error" in answer:
            raise PairingError(str(answer["error"]))
        nonces = client_nonce + bytes.fromhex(str(answer.get("nonce", "")))
        _write(stream, {"proof": _proof(code.token, b"client", nonces)})
        final = _read(stream)
        if "error" in final:
            raise PairingError(str(final["error"]))
        if not hmac.compare_digest(str(final.get("proof", "")), _proof(code.token, b"server", nonces)):
            raise PairingError("the machine that answered does not hold this join code; refused")
        try:
            plain = AESGCM(_key(code.token, nonces)).decrypt(
                bytes.fromhex(str(final["iv"])), bytes.fromhex(str(final["sealed"])), None
            )
            data = json.loads(plain)
            grant = Grant(str(data["secret"]), [str(m) for m in data["members"]], str(data["cluster_id"]))
        except (KeyError, ValueError, TypeError, InvalidTag) as exc:
            raise PairingError(
                f"the member's answer is damaged ({exc.__class__.__name__}); try again"
            ) from None
        return Redemption(sock, stream, grant, where)
    except BaseException as exc:
        if sock is not None:
            sock.close()
        if isinstance(exc, PairingError):
            raise
        if isinstance(exc, TimeoutError):
            raise PairingError(f"{where} did not answer in time; is it running and reachable?") from None
        if isinstance(exc, (OSError, ValueError, json.JSONDecodeError)):
            raise PairingError(
                f"cannot pair with {code.host}:{code.port} ({exc.__class__.__name__}); check that the "
                "member is running and that this machine can reach it"
            ) from None
        raise


def _write(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()
