"""raft/ builds on pysyncobj's private internals; an upgrade must be a deliberate act.

``raft.store``, ``raft.transport`` and ``raft.journal`` override name-mangled methods and read
private fields of pysyncobj to fix real bugs (a journal lost at a kill during the dump, a next index
moving backwards, forwards lost on unkeyed connections, a tick thread tied to the thread that made
the node). They were written against one version, pinned in ``pyproject.toml``. This test fails,
naming each internal, when the installed pysyncobj is another version or lacks one of them.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import SyncObj, syncobj
from pysyncobj.journal import FileJournal, ResizableFile
from pysyncobj.pipe_notifier import PipeNotifier
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from mediator_desktop.raft.store import RaftStore
from tests.helpers.net import free_ports

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
UPGRADE = (
    "raft/ was written against pysyncobj {pinned}; with another version, re-check each patched internal "
    "and re-run the dump, journal and next-index tests (tests/integration/test_raft_dump.py, "
    "tests/unit/raft/) before changing the pin in pyproject.toml"
)

#: Methods raft/ overrides or calls that are not pysyncobj's public API, by owner.
METHODS: dict[type, tuple[str, ...]] = {
    SyncObj: (
        "_SyncObj__loadDumpFile",  # _ClusterSyncObj: keeps the journal entries after the dump
        "_getEncryptor",  # _ClusterSyncObj: our AEAD instead of Fernet
        "_applyCommand",  # RaftStore._replicate: pickled with the highest protocol
        "_getFuncName",
        "_isLeader",
        "_onTick",
        "tick_thread_alive",
        "destroy_synchronous",
        "transferLeadership",
        "addOnTickCallback",
    ),
    TcpConnection: (
        "_TcpConnection__processParseMessage",  # LeanConnection: no zlib, no protocol 2
        "_TcpConnection__trySendBuffer",
        "send",
    ),
    TCPTransport: ("_onNewIncomingConnection", "addNode", "send", "setOnMessageReceivedCallback"),
    FileJournal: ("deleteEntriesTo", "_destroy", "add"),  # SafeJournal: trimmed by a rename
    ResizableFile: ("_destroy",),
    PipeNotifier: ("notify",),
}
#: Fields of a running node that raft/ reads or writes, by where they live.
SYNCOBJ_FIELDS = (
    "_SyncObj__raftLog",
    "_SyncObj__serializer",
    "_SyncObj__transport",
    "_SyncObj__mainThread",  # _ClusterSyncObj: the tick thread follows the main thread
    "_SyncObj__raftNextIndex",  # SteadyTransport: kept monotonic
    "_methodToID",
    "_poller",
)
TRANSPORT_FIELDS = ("_connections", "_onMessageReceivedCallback", "_syncObj")
CONNECTION_FIELDS = (
    "_TcpConnection__readBuffer",
    "_TcpConnection__writeBuffer",
    "_TcpConnection__socket",
    "sendRandKey",
    "recvRandKey",
    "recvLastTimestamp",
    "encryptor",
    "state",
)
JOURNAL_FIELDS = ("_FileJournal__journal", "_FileJournal__journalFile", "_FileJournal__currentOffset")
#: Message fields pysyncobj's own code must still speak (the transport answers and rewrites them).
MESSAGE_TEXT = ("'apply_command_response'", "'request_id'", "'next_node_idx'", "'reset'", "'success'")
STATUS_KEYS = ("leader", "has_quorum", "raft_term", "commit_idx", "last_applied", "leader_commit_idx")


def pinned() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        found = re.fullmatch(r"pysyncobj\s*==\s*([0-9][0-9.]*)", requirement.split(";")[0].strip())
        if found:
            return found.group(1)
    raise AssertionError("pyproject.toml must pin pysyncobj exactly (pysyncobj==X.Y.Z): raft/ patches it")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RaftStore]:
    """A node (not ticked) with one peer."""
    me, peer = (f"127.0.0.1:{p}" for p in free_ports(2))
    store = RaftStore(me, [peer], tmp_path, "a-secret", auto_tick=False)
    yield store
    store.close()


def missing(obj: Any, names: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}.{name}" for name in names if not hasattr(obj, name)]


def test_the_installed_pysyncobj_is_the_pinned_version() -> None:
    installed = importlib.metadata.version("pysyncobj")
    assert installed == pinned(), f"pysyncobj {installed} is installed. " + UPGRADE.format(pinned=pinned())


def test_every_patched_internal_is_there(node: RaftStore) -> None:
    gone: list[str] = []
    for owner, names in METHODS.items():
        gone += missing(owner, names, owner.__name__)
    sync = node.syncobj
    gone += missing(sync, SYNCOBJ_FIELDS, "SyncObj")
    transport = node.transport
    gone += missing(transport, TRANSPORT_FIELDS, "TCPTransport")
    a, b = socket.socketpair()
    with a, b:
        connection = TcpConnection(createPoller("auto"), socket=a, timeout=10.0)
        gone += missing(connection, CONNECTION_FIELDS, "TcpConnection")
    journal = getattr(sync, "_SyncObj__raftLog", None)
    gone += missing(journal, JOURNAL_FIELDS, "FileJournal")
    journal_file = getattr(journal, "_FileJournal__journalFile", None)
    gone += missing(journal_file, ("_ResizableFile__fileName",), "ResizableFile")
    if not hasattr(getattr(syncobj, "_COMMAND_TYPE", None), "REGULAR"):
        gone.append("pysyncobj.syncobj._COMMAND_TYPE.REGULAR")
    source = inspect.getsource(SyncObj)
    gone += [f"SyncObj message text {text}" for text in MESSAGE_TEXT if text not in source]
    status = sync.getStatus()
    gone += [f"SyncObj.getStatus()[{key!r}]" for key in STATUS_KEYS if key not in status]
    if "self.__mainThread.is_alive()" not in inspect.getsource(SyncObj._autoTickThread):
        gone.append("SyncObj._autoTickThread's check of __mainThread")
    assert not gone, (
        f"pysyncobj {importlib.metadata.version('pysyncobj')} lacks internals raft/ patches: "
        + ", ".join(gone)
        + ". "
        + UPGRADE.format(pinned=pinned())
    )
