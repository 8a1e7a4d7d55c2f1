"""Discovery: every node advertises ``_mediator._tcp.local.`` over mDNS and lists who else does.

Seeing a machine is not trusting it: a peer joins only with a join code (``raft.pairing``). The
advertisement carries a cluster id (a hash of the secret, never the secret), node id, display
name, Raft address, local API and pairing ports, app version and wire protocol. Malformed or
oversized advertisements are ignored. A killed peer's record lingers until it expires (tens of
seconds): health comes from Raft's status, not from here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from mediator_desktop.core.cluster import PROTOCOL, Peer
from mediator_desktop.core.events import EventBus, PeerLost, PeerSeen

log = logging.getLogger(__name__)

SERVICE = "_mediator._tcp.local."
_REQUIRED = ("cluster", "node", "name", "raft", "api", "pair", "version", "proto")
_MAX_VALUE = 200


def parse_properties(properties: dict[bytes, bytes | None]) -> dict[str, str] | None:
    """The advertisement's fields as text, or None when anything is missing or malformed."""
    fields: dict[str, str] = {}
    for key in _REQUIRED:
        value = properties.get(key.encode())
        if value is None or len(value) > _MAX_VALUE:
            return None
        try:
            fields[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    host, _, port = fields["raft"].rpartition(":")
    if not host or not port.isdigit() or not fields["api"].isdigit() or not fields["pair"].isdigit():
        return None
    if not fields["proto"].isdigit():
        return None
    return fields


class Discovery:
    """Advertises this node and browses for others. Start with ``start()``; ``close()`` when done.

    Args:
        members: the Raft addresses of this cluster's members now (to mark peers).
    """

    def __init__(
        self,
        *,
        node_id: str,
        name: str,
        raft_address: str,
        cluster_id: str,
        version: str,
        members: Callable[[], set[str]],
        pairing_port: int = 0,
        api_port: int = 0,
        events: EventBus | None = None,
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self._members = members
        self.events = events or EventBus()
        self.host = raft_address.rpartition(":")[0]
        self._properties = {
            "cluster": cluster_id, "node": node_id, "name": name[:_MAX_VALUE], "raft": raft_address,
            "api": str(api_port), "pair": str(pairing_port), "version": version, "proto": str(PROTOCOL),
        }  # fmt: skip
        self._peers: dict[str, Peer] = {}  # by service name
        self._lock = threading.Lock()
        self._zc: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._lookups = ThreadPoolExecutor(2, thread_name_prefix="discovery")
        self._info: ServiceInfo | None = None
        self.registered = threading.Event()

    def start(self) -> Discovery:
        """Browse at once; register in the background (mDNS probing takes a moment)."""
        self._zc = Zeroconf(interfaces=[self.host], ip_version=IPVersion.V4Only)
        self._browser = ServiceBrowser(self._zc, SERVICE, handlers=[self._on_change])
        self._info = ServiceInfo(
            SERVICE,
            f"{self.node_id}.{SERVICE}",
            addresses=[socket.inet_aton(self.host)],
            port=int(self._properties["raft"].rpartition(":")[2]),
            properties=self._properties,
            server=f"mediator-{self.node_id}.local.",
        )
        self._lookups.submit(self._register)
        return self

    def _register(self) -> None:
        assert self._zc is not None and self._info is not None
        try:
            self._zc.register_service(self._info, cooperating_responders=True)
            self.registered.set()
        except Exception:
            log.exception("could not advertise this node over mDNS; others will not see it")

    def close(self) -> None:
        self._lookups.shutdown(wait=True, cancel_futures=True)
        if self._zc is not None:
            if self._browser is not None:
                self._browser.cancel()
            if self.registered.is_set() and self._info is not None:
                self._zc.unregister_service(self._info)
            self._zc.close()
            self._zc = None

    def peers(self) -> list[Peer]:
        """The machines seen, marked member / not member / other cluster (this node excluded)."""
        members = self._members()
        with self._lock:
            seen = list(self._peers.values())
        out = []
        for peer in seen:
            if peer.cluster_id != self.cluster_id:
                status = "other cluster"
            elif peer.raft_address in members:
                status = "member"
            else:
                status = "not member"
            out.append(replace(peer, status=status))  # type: ignore[arg-type]
        return sorted(out, key=lambda p: (p.name, p.node_id))

    # -- zeroconf's threads --------------------------------------------------------------------
    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """Called on zeroconf's browser thread: look the service up elsewhere, never block here."""
        if state_change is ServiceStateChange.Removed:
            with self._lock:
                gone = self._peers.pop(name, None)
            if gone is not None:
                self.events.emit(PeerLost(gone.node_id, gone.name))
            return
        with contextlib.suppress(RuntimeError):  # closing
            self._lookups.submit(self._look_up, zeroconf, service_type, name)

    def _look_up(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        try:
            info = zeroconf.get_service_info(service_type, name, timeout=3000)
        except Exception:
            log.debug("lookup of %s failed", name, exc_info=True)
            return
        if info is None:
            return
        fields = parse_properties(dict(info.properties or {}))
        if fields is None:
            log.debug("ignored a malformed advertisement %s", name)
            return
        if fields["node"] == self.node_id:
            return
        peer = Peer(
            node_id=fields["node"],
            name=fields["name"],
            raft_address=fields["raft"],
            api_port=int(fields["api"]),
            version=fields["version"],
            protocol=int(fields["proto"]),
            cluster_id=fields["cluster"],
            status="not member",
        )
        with self._lock:
            new = name not in self._peers
            self._peers[name] = peer
        if new:
            self.events.emit(PeerSeen(peer.node_id, peer.name, peer.version))
