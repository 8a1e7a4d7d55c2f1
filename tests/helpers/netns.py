"""Several "hosts" on one machine: network namespaces joined by veth pairs to a bridge.

Each host gets ``10.213.<net>.<n>/24`` on its ``eth0``; the bridge lives in a namespace of its own,
so nothing touches the machine's own network. ``cut``/``mend`` take a host's link down and up (a
partition). Needs root and iproute2; ``available()`` says why not otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def available() -> str | None:
    """None when namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"mdt-probe-{os.getpid()}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace here: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Hosts:
    count: int
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000}")
    net: int = field(default_factory=lambda: 100 + os.getpid() % 100)
    names: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"mdt{self.tag}sw"

    def ns(self, i: int) -> str:
        return f"mdt{self.tag}h{i}"

    def ip(self, i: int) -> str:
        return f"10.213.{self.net}.{i + 1}"

    def _link(self, i: int) -> str:
        return f"m{self.tag}h{i}"

    def __enter__(self) -> Hosts:
        try:
            _ip("netns", "add", self.switch)
            self.names.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            _ip("-n", self.switch, "link", "set", "lo", "up")
            for i in range(self.count):
                ns = self.ns(i)
                _ip("netns", "add", ns)
                self.names.append(ns)
                link = self._link(i)
                _ip("link", "add", link, "type", "veth", "peer", "name", f"{link}p")
                _ip("link", "set", link, "netns", ns)
                _ip("link", "set", f"{link}p", "netns", self.switch)
                _ip("-n", ns, "link", "set", link, "name", "eth0")
                _ip("-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "multicast", "on")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
                _ip("-n", self.switch, "link", "set", f"{link}p", "master", "br0")
                _ip("-n", self.switch, "link", "set", f"{link}p", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(self.names):
            _ip("netns", "del", name, check=False)
        self.names.clear()

    def cut(self, i: int) -> None:
        """Partition host ``i`` from the others (its link to the bridge goes down)."""
        _ip("-n", self.switch, "link", "set", f"{self._link(i)}p", "down")

    def mend(self, i: int) -> None:
        _ip("-n", self.switch, "link", "set", f"{self._link(i)}p", "up")

    def run_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program on host ``i``."""
        return ["ip", "netns", "exec", self.ns(i)]
