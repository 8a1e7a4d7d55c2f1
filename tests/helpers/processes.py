"""Store nodes as real processes on loopback, for fail-over and restart tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import MediatorError, by_name
from mediator_desktop.core.store import unwrap
from tests.helpers.net import free_ports
from tests.helpers.proc import stop_process

ROOT = Path(__file__).resolve().parents[2]


class NodeError(Exception):
    """The node process is gone or did not answer."""


class NodeProcess:
    def __init__(self, address: str, peers: list[str], data: Path, secret_file: Path) -> None:
        self.address = address
        self.peers = peers
        self.data = data
        self.secret_file = secret_file
        self.control_port = free_ports(1)[0]
        self.authkey = secrets.token_bytes(16)
        self.proc: subprocess.Popen[str] | None = None
        self.log = data.parent / f"{data.name}.log"

    def start(self, timeout: float = 30.0) -> NodeProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        self.control_port = free_ports(1)[0]
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "tests.helpers.raft_node",
                "--address", self.address,
                "--peers", ",".join(self.peers),
                "--data", str(self.data),
                "--secret-file", str(self.secret_file),
                "--control-port", str(self.control_port),
                "--authkey", self.authkey.hex(),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the process prints READY or exits
        if line.strip() != "READY":
            self.kill()
            raise NodeError(f"node {self.address} did not start: {self.log.read_text()[-2000:]}")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _connect(self) -> Connection:
        try:
            return Client(("127.0.0.1", self.control_port), authkey=self.authkey)
        except OSError as exc:
            raise NodeError(f"node {self.address} is not reachable: {exc}") from None

    def request(self, *request: Any, timeout: float = 30.0) -> Any:
        with self._connect() as conn:
            try:
                conn.send(request)
                if not conn.poll(timeout):
                    raise NodeError(f"node {self.address} did not answer {request[0]} in {timeout} s")
                reply = conn.recv()
            except (EOFError, OSError) as exc:
                raise NodeError(f"node {self.address} went away: {exc}") from None
        if reply[0] == "raised":
            if reply[1] in ("ClusterUnavailable", "OutcomeUnknown"):  # typed: OutcomeUnknown is one
                raise by_name(reply[1])(reply[2])
            raise MediatorError(f"{reply[1]}: {reply[2]}")
        return reply[1]

    def submit(self, command: bytes, timeout: float = 5.0) -> Any:
        """The value of the command, or its typed error."""
        return unwrap(self.request("submit", command, timeout, timeout=timeout + 10))

    def snapshot(self) -> dict[str, Any]:
        return dict(self.request("snapshot"))

    def status(self) -> dict[str, Any]:
        return dict(self.request("status"))

    def stop(self, timeout: float = 20.0) -> None:
        stop_process(self.proc, timeout)
        self._close_pipes()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


class ProcessCluster:
    def __init__(self, root: Path, n: int = 3, secret: str = "process-cluster-secret") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.secret_file = root / "secret"
        self.secret_file.write_text(secret)
        self.secret_file.chmod(0o600)
        addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
        self.nodes = [
            NodeProcess(a, [b for b in addresses if b != a], root / f"node{i}", self.secret_file)
            for i, a in enumerate(addresses)
        ]

    def start(self) -> ProcessCluster:
        for node in self.nodes:
            node.start()
        return self

    def leader(self, timeout: float = 30.0, among: list[NodeProcess] | None = None) -> NodeProcess:
        nodes = among or [n for n in self.nodes if n.running]
        deadline = time.monotonic() + timeout
        while True:
            try:
                leaders = {n.status()["leader"] for n in nodes}
            except NodeError:
                leaders = {None}
            if len(leaders) == 1 and None not in leaders:
                (address,) = leaders
                return next(n for n in self.nodes if n.address == address)
            if time.monotonic() > deadline:
                raise NodeError(f"no agreed leader in {timeout} s")
            time.sleep(0.05)

    def wait_converged(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            snaps = [n.snapshot() for n in self.nodes if n.running]
            if all(s == snaps[0] for s in snaps):
                return snaps
            if time.monotonic() > deadline:
                raise NodeError("nodes did not converge")
            time.sleep(0.05)

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
