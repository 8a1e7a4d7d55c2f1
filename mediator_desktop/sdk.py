"""The Python SDK: replica sets from scripts, notebooks, 3D Slicer and Galaxy tools.

``Mediator()`` connects to the node running on this machine (the desktop app or ``mediator node
run``) through its local API; when none runs, it starts one inside this process for as long as
the ``Mediator`` is open. Nothing here imports Qt.

Example::

    from mediator_desktop import Mediator

    with Mediator() as m:
        rs = m.create_set("Lung CT", add=["idc/nlst?Modality=CT"], visibility="cluster")
        m.add(rs.id, "idc/lidc_idri?Modality=CT", message="and LIDC")
        print(m.diff(rs.id, 1).summary)
        report = m.download(rs.id, "/data/lung-ct", progress=lambda p: print(p.line))
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import os
import secrets
import select
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload
from urllib.parse import quote, urlencode, urlsplit

from pydantic import BaseModel

from mediator_desktop.api.models import (
    ArchiveMatchModel,
    CheckModel,
    CitationModel,
    ClusterModel,
    ColumnModel,
    CreatorModel,
    DataKindModel,
    DiffModel,
    DoiMetadataModel,
    DriftModel,
    FailureModel,
    ImportModel,
    ItemModel,
    JobModel,
    JoinPreviewModel,
    JoinTargetModel,
    KindFilterModel,
    LastCheckModel,
    LeafModel,
    LeavesModel,
    MatchCohortModel,
    MatchModel,
    MetadataProblems,
    NodeInfo,
    PageModel,
    PatientsModel,
    PeerModel,
    ProgressModel,
    PublicationModel,
    RelatedModel,
    ReportModel,
    RowsModel,
    ScanReportModel,
    SetModel,
    SetScope,
    SettingFieldModel,
    SettingsChangeModel,
    SettingsModel,
    SettingsValues,
    SetUpdateModel,
    SourceKindModel,
    SourceModel,
    TableModel,
    TablePreviewModel,
    TableVersionModel,
    TrackModel,
    UpdateCheckModel,
    UpdateResult,
    UserModel,
    ValueCountModel,
    VersionModel,
)
from mediator_desktop.core import errors
from mediator_desktop.core.endpoint import Endpoint, token_proof
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.replica import check_set_id
from mediator_desktop.core.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "ArchiveMatchModel",
    "CitationModel",
    "ClusterModel",
    "ColumnModel",
    "CreatorModel",
    "DataKindModel",
    "DiffModel",
    "DoiMetadataModel",
    "DownloadHandle",
    "DriftModel",
    "FailureModel",
    "ImportModel",
    "ItemModel",
    "JobModel",
    "JoinPreviewModel",
    "JoinTargetModel",
    "KindFilterModel",
    "LastCheckModel",
    "LeafModel",
    "MatchModel",
    "Mediator",
    "MediatorWarning",
    "MetadataProblems",
    "NodeInfo",
    "PageModel",
    "PatientsModel",
    "PeerModel",
    "ProgressModel",
    "PublicationModel",
    "RelatedModel",
    "ReportModel",
    "RowsModel",
    "ScanReportModel",
    "SetModel",
    "SetUpdateModel",
    "SettingFieldModel",
    "SettingsChangeModel",
    "SettingsModel",
    "SettingsValues",
    "SourceKindModel",
    "SourceModel",
    "TableModel",
    "TablePreviewModel",
    "TableVersionModel",
    "TrackModel",
    "UpdateCheckModel",
    "UpdateResult",
    "UserModel",
    "ValueCountModel",
    "VersionModel",
]

M = TypeVar("M", bound=BaseModel)
PointerLike = Pointer | str | Mapping[str, Any]


def _pointer(p: PointerLike) -> Pointer:
    """A ``Pointer``, from a ``Pointer``, ``"idc/nlst?Modality=CT"`` or a dict."""
    if isinstance(p, str):
        return Pointer.parse(p)
    if isinstance(p, Pointer):
        return p
    return Pointer.from_json(dict(p))


def _pointer_json(p: PointerLike) -> dict[str, Any]:
    """A pointer as the API takes it, from a ``Pointer``, ``"idc/nlst?Modality=CT"`` or a dict."""
    return _pointer(p).to_json()


def _local_file(path: str | os.PathLike[str]) -> str:
    """A file named from here, as the node takes it: an absolute path (it runs on this machine,
    maybe in another folder)."""
    return str(Path(path).expanduser().absolute())


class _Response:
    """An answer of the node: its status and body."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Unreachable(Exception):
    """No answer from the node: no connection, or it broke (the message names what happened)."""


class _NoAnswer(Exception):
    """The node took the request but sent nothing back within the timeout."""


def _dropped(sock: socket.socket) -> bool:
    """Whether a kept-alive connection was closed by the node (readable while idle: its end)."""
    try:
        if hasattr(select, "poll"):  # any descriptor number; select() only those below 1024
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)  # Windows
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Http:
    """HTTP/1.1 to a node's local API with the standard library, one kept-alive connection per
    thread. (``requests`` would do, but importing it adds a tenth of a second to every command
    the CLI runs; this client talks to one address on this machine and needs none of its rest.)"""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ValidationError(f"{url!r} is not the http address of a node's local API")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self.headers: dict[str, str] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection (and whether it served a request before), connected."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and not _dropped(conn.sock):
            conn.sock.settimeout(timeout)
            return conn, True
        if conn is not None:
            conn.close()
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise _Unreachable(type(exc).__name__) from None
        self._local.conn = conn
        with self._lock:
            self._open = [c for c in self._open if c.sock is not None]
            self._open.append(conn)
        return conn, False

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any], body: Any = None, timeout: float
    ) -> _Response:
        """The answer to one request (``body`` sent as JSON); raises ``_Unreachable``, ``_NoAnswer``."""
        target = self._base + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn, reused = self._connection(timeout)
            try:
                conn.request(method, target, body=data, headers=headers)
                answer = conn.getresponse()
                content = answer.read()
            except TimeoutError:
                conn.close()
                raise _NoAnswer from None
            except (http.client.RemoteDisconnected, ConnectionError) as exc:
                conn.close()
                if reused and attempt == 1 and method == "GET":  # closed by the node as it left: anew
                    continue
                raise _Unreachable(type(exc).__name__) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _Unreachable(type(exc).__name__) from None
            except BaseException:  # Ctrl-C halfway: the connection is in no state to serve the next one
                conn.close()
                raise
            if answer.will_close:
                conn.close()
            return _Response(answer.status, content)
        raise AssertionError("not reached")

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()


def _error_of(response: _Response) -> errors.MediatorError:
    """The typed error of an error answer (``core.errors.from_json``: one table for every frontend)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 422 and not body.get("message"):  # a node from before one-line messages
        detail = body.get("detail")
        return errors.ValidationError(f"the node refused the request: {detail or response.text[:500]}")
    detail = body.get("detail")
    if body.get("code") == errors.ValidationError.code and isinstance(detail, dict) and detail:
        # publication metadata: every problem by field (``MetadataProblems``)
        return MetadataProblems(str(body.get("message", "")), {str(k): str(v) for k, v in detail.items()})
    if response.status_code == 401:
        return errors.NodeUnreachable(
            f"the node refused the token ({body.get('message')}); restart it, or check MEDIATOR_HOME "
            "points at its data"
        )
    return errors.from_json(body, fallback=f"HTTP {response.status_code}: {response.text[:300]}")


class DownloadHandle:
    """A running download: ``wait()`` for its report, or ``pause()``, ``resume()``, ``cancel()``."""

    def __init__(self, mediator: Mediator, job: JobModel) -> None:
        self._m = mediator
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    def refresh(self, wait: float = 0.0, *, until: Literal["change", "end"] = "change") -> JobModel:
        """The job now, or once it changed (``until="end"``: once it ended), waiting up to ``wait``
        seconds (at most 30)."""
        params: dict[str, Any] = {"after": self.job.changes, "wait": min(wait, 30.0)}
        if until != "change":  # left out when not needed: an older node answers on any change
            params["until"] = until
        self.job = self._m._get(f"/v1/downloads/{self.id}", JobModel, **params)
        return self.job

    def wait(
        self,
        progress: Callable[[ProgressModel], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> JobModel:
        """Block until the job ends; calls ``progress`` on each change. Setting ``cancel`` cancels
        the job (what finished stays; the next run resumes). Returns the finished job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cancelled = False
        while self.job.state not in ("done", "failed", "cancelled"):
            if cancel is not None and cancel.is_set() and not cancelled:
                self.cancel()
                cancelled = True
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"download {self.id} still runs after {timeout} s")
            if cancel is not None:
                self.refresh(wait=0.5)  # looks at ``cancel`` twice a second
            elif progress is not None:
                self.refresh(wait=10.0)  # an answer on each change, for ``progress``
            else:  # nobody watches the changes: an answer when the job ends (or a second passed)
                # Short steps: a Ctrl-C (KeyboardInterrupt) is acted on only when this thread runs
                # Python, and a signal the kernel hands to another thread would wait out a long poll.
                step = min(1.0, self._m._timeout / 2)  # the request itself must not time out
                left = step if deadline is None else max(deadline - time.monotonic(), 0.0)
                self.refresh(wait=min(left, step), until="end")
            if progress is not None and self.job.progress is not None:
                progress(self.job.progress)
        return self.job

    def pause(self) -> JobModel:
        self.job = self._m._post(f"/v1/downloads/{self.id}/pause", JobModel)
        return self.job

    def resume(self) -> JobModel:
        self.job = self._m._post(f"/v1/downloads/{self.id}/resume", JobModel)
        return self.job

    def cancel(self) -> JobModel:
        self.job = self._m._post(f"/v1/downloads/{self.id}/cancel", JobModel)
        return self.job


class Mediator:
    """Replica sets as one user of this machine's node. Use as a context manager, or ``close()``.

    Args:
        url, token: a node's local API (default: the one the node of this user's data folder
            published in ``local-api.json``).
        start: start a node in this process when none runs (default True).
        timeout: seconds for one request (downloads wait in shorter steps).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        start: bool = True,
        settings_path: Path | None = None,
        timeout: float = 120.0,
    ) -> None:
        self._timeout = timeout
        self._node: Any = None
        if url is None or token is None:
            url, token = self._find(settings_path, start)
        self.url = url.rstrip("/")
        self._http = _Http(self.url)  # loopback only: never through a proxy
        if self._node is None:  # a node this object did not start: it proves it holds the token first
            self._check_proof(token)
        self._http.headers["Authorization"] = f"Bearer {token}"

    def _check_proof(self, token: str) -> None:
        """Refuse to send the token to a program that cannot prove it holds it: after a crash,
        ``local-api.json`` names a port another user of the machine may have taken."""
        challenge = secrets.token_hex(16)
        wait = min(self._timeout, 10.0)
        try:
            response = self._http.request("GET", "/v1/proof", params={"challenge": challenge}, timeout=wait)
            proof = response.json().get("proof") if response.status_code == 200 else None
        except _NoAnswer:
            # The port takes connections, but nothing answers: the node's process runs and hangs
            # (stopped, swapping, overloaded). Not an impostor: that one would answer, wrongly.
            raise errors.NodeUnreachable(
                f"the node at {self.url} does not answer (hung or overloaded): it took the connection "
                f"but sent nothing back in {wait:.0f} s. Wait a moment and try again; if it stays so, "
                "restart the node (mediator node run, or the desktop app)"
            ) from None
        except _Unreachable as exc:
            raise errors.NodeUnreachable(
                f"the node at {self.url} does not answer ({exc}); is it still running?"
            ) from None
        except (ValueError, AttributeError):  # not JSON, or not an object: not our node
            proof = None
        if not isinstance(proof, str) or not hmac.compare_digest(proof, token_proof(token, challenge)):
            raise errors.NodeUnreachable(
                f"what answers at {self.url} is not the MEDIator node of this data folder (the node "
                "may have stopped and left local-api.json behind); the token was not sent. Start the "
                "node (mediator node run, or the desktop app) and try again"
            )

    def _find(self, settings_path: Path | None, start: bool) -> tuple[str, str]:
        data_dir = Settings.load(settings_path).data_dir
        endpoint = Endpoint.read(data_dir)
        if endpoint is not None and endpoint.alive():
            return endpoint.url, endpoint.token
        if not start:
            raise errors.NodeUnreachable(
                f"no node runs for {data_dir}; start one (mediator node run, or the desktop app)"
            )
        from mediator_desktop.node import Node  # heavy: Raft, archives; only when we start one

        node = Node(settings_path=settings_path, api=True)
        try:
            node.start()
        except errors.NodeRunning:  # another process is starting one right now: use it
            return self._wait_for_endpoint(data_dir)
        self._node = node
        assert node.api is not None
        return node.api.url, node.api.token

    @staticmethod
    def _wait_for_endpoint(data_dir: Path, timeout: float = 60.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while time.monotonic() < deadline:
            endpoint = Endpoint.read(data_dir)
            if endpoint is not None and endpoint.alive():
                return endpoint.url, endpoint.token
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise errors.NodeUnreachable(f"a node holds {data_dir} but published no local API within {timeout} s")

    @property
    def embedded(self) -> bool:
        """True when this object started the node it talks to (it stops with ``close``)."""
        return self._node is not None

    def close(self) -> None:
        if hasattr(self, "_http"):  # not when the node could not be found
            self._http.close()
        if self._node is not None:
            self._node.stop()
            self._node = None

    def __enter__(self) -> Mediator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, /, **params: Any) -> _Response:
        """The node's answer to a request, or the typed error it stands for."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.request(method, path, params=query, body=body, timeout=self._timeout)
        except _Unreachable as exc:
            raise errors.NodeUnreachable(
                f"the node at {self.url} does not answer ({exc}); is it still running?"
            ) from None
        except _NoAnswer:
            raise errors.NodeUnreachable(
                f"the node at {self.url} did not answer within {self._timeout} s"
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def _call(self, method: str, path: str, body: Any = None, /, **params: Any) -> Any:
        response = self._request(method, path, body, **params)
        return None if response.status_code == 204 or not response.content else response.json()

    def _get(self, path: str, model: type[M], /, **params: Any) -> M:
        return model.model_validate(self._call("GET", path, **params))

    def _post(self, path: str, model: type[M], body: Any = None) -> M:
        return self._send("POST", path, model, body)

    def _send(self, method: str, path: str, model: type[M], body: Any = None) -> M:
        return model.model_validate(self._call(method, path, body))

    def _list(self, path: str, model: type[M], /, **params: Any) -> list[M]:
        return [model.model_validate(x) for x in self._call("GET", path, **params)]

    # -- node and cluster ------------------------------------------------------------------------
    def node(self) -> NodeInfo:
        """This node: version, the user's key id and name, folders, cluster address."""
        return self._get("/v1/node", NodeInfo)

    def cluster(self) -> ClusterModel:
        """Members of the cluster, their health and the leader."""
        return self._get("/v1/cluster", ClusterModel)

    def peers(self) -> list[PeerModel]:
        """Machines seen on the network (member, not member, other cluster)."""
        return self._list("/v1/peers", PeerModel)

    def join_code(self, ttl: float = 600.0) -> str:
        """A single-use code another machine types to join this cluster."""
        return str(self._call("POST", "/v1/cluster/join-code", {"ttl": ttl})["code"])

    def join(self, code: str) -> ClusterModel:
        """Join the cluster that made ``code`` (this node must hold no sets of its own)."""
        return self._post("/v1/cluster/join", ClusterModel, {"code": code})

    def leave(self) -> ClusterModel:
        """Leave the cluster and go on alone."""
        return self._post("/v1/cluster/leave", ClusterModel)

    def users(self) -> list[UserModel]:
        return self._list("/v1/users", UserModel)

    # -- archives --------------------------------------------------------------------------------
    def sources(self) -> list[SourceModel]:
        """The archives this node can browse, with their levels and filterable metadata."""
        return self._list("/v1/sources", SourceModel)

    def source_kinds(self) -> list[SourceKindModel]:
        """The kinds of archive that can be added, with the options each takes (docs/sources.md)."""
        return self._list("/v1/sources/kinds", SourceKindModel)

    def add_source(
        self,
        kind: str,
        *,
        id: str | None = None,
        secret: str | None = None,
        **options: str | int | bool,
    ) -> SourceModel:
        """Add an archive, live: ``m.add_source("tcia", base_url="http://...")``,
        ``m.add_source("local", id="scans", folder="/data/export")``. ``secret`` (a password or
        token) goes to the OS keyring of the node's machine, never into the settings."""
        body = {"kind": kind, "id": id, "options": options, "secret": secret}
        return self._post("/v1/sources", SourceModel, body)

    def remove_source(self, source: str) -> None:
        """Remove an archive, live (sets keep their pointers to it)."""
        self._call("DELETE", f"/v1/sources/{_segment(source)}")

    def test_source(
        self,
        source: str | None = None,
        *,
        kind: str | None = None,
        secret: str | None = None,
        **options: str | int | bool,
    ) -> str:
        """Check an archive answers (a configured one, or one to add): a one-line summary, or a
        typed error saying what is wrong."""
        if kind is None:
            if source is None:
                raise errors.ValidationError("say which archive to test: its id, or a kind with options")
            return self._post(f"/v1/sources/{_segment(source)}/test", CheckModel).message
        body = {"kind": kind, "id": source, "options": options, "secret": secret}
        return self._post("/v1/sources/test", CheckModel, body).message

    def set_source_secret(self, source: str, secret: str) -> None:
        """Keep an archive's password or token in the node's OS keyring; used from now on."""
        self._call("PUT", f"/v1/sources/{_segment(source)}/secret", {"secret": secret})

    def rescan(self, source: str) -> ScanReportModel:
        """Index a folder archive again now (only new and changed files are read)."""
        return self._post(f"/v1/sources/{_segment(source)}/rescan", ScanReportModel)

    def browse(
        self,
        source: str,
        *path: str,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        offset: int = 0,
        limit: int = 200,
    ) -> PageModel:
        """Children of ``path`` in an archive: ``m.browse("idc", "nlst")`` lists NLST's patients."""
        return self._get(
            f"/v1/sources/{_segment(source)}/browse",
            PageModel,
            path=list(path),
            filter=_filter_args(filters),
            offset=offset,
            limit=limit,
        )

    def browse_all(self, source: str, *path: str, page: int = 1000) -> Iterator[ItemModel]:
        """Every child of ``path``, fetched page by page."""
        offset = 0
        while True:
            result = self.browse(source, *path, offset=offset, limit=page)
            yield from result.items
            if not result.more or not result.items:
                return
            offset += len(result.items)

    def search(
        self,
        source: str,
        text: str = "",
        *path: str,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        limit: int = 100,
    ) -> list[ItemModel]:
        """Children of ``path`` whose key or label contains ``text``: ``m.search("idc", "lung")``."""
        return self._list(
            f"/v1/sources/{_segment(source)}/search",
            ItemModel,
            q=text,
            path=list(path),
            filter=_filter_args(filters),
            limit=limit,
        )

    def values(self, source: str, name: str, *path: str) -> list[str]:
        """The values metadata ``name`` (e.g. ``Modality``) takes below ``path``."""
        return list(
            self._call("GET", f"/v1/sources/{_segment(source)}/values/{_segment(name)}", path=list(path))
        )

    # -- replica sets ----------------------------------------------------------------------------
    def sets(self, scope: SetScope = "all") -> list[SetModel]:
        """Sets you may see: all, mine, shared, cluster, public, published or following."""
        return self._list("/v1/sets", SetModel, scope=scope)

    def get_set(self, set_id: str) -> SetModel:
        return self._get(f"/v1/sets/{_set_id(set_id)}", SetModel)

    def find_set(self, name_or_id: str) -> SetModel:
        """A set by id, or by its name when exactly one set you see has it."""
        if len(name_or_id) == 32 and all(c in "0123456789abcdef" for c in name_or_id):
            return self.get_set(name_or_id)
        visible = self.sets()
        matches = [s for s in visible if s.name == name_or_id]
        if not matches:
            names = ", ".join(repr(s.name) for s in visible[:8]) + (", ..." if len(visible) > 8 else "")
            raise errors.NotFound(
                f"no set named {name_or_id!r} is visible to you"
                + (f"; the sets you can see: {names}" if visible else "; you see no sets yet")
            )
        if len(matches) > 1:
            ids = ", ".join(s.id for s in matches)
            raise errors.ValidationError(f"{len(matches)} sets are named {name_or_id!r} ({ids}); use an id")
        return matches[0]

    def create_set(
        self,
        name: str,
        *,
        add: Iterable[PointerLike] = (),
        description: str = "",
        visibility: str = "private",
        message: str = "",
        strict: bool = False,
    ) -> SetModel:
        """A new set, with a first version when ``add`` names pointers (resolved by the node).

        A pointer whose path does not exist raises ``NotFound`` naming the closest keys; one that
        selects nothing (a filter no series matches) is a ``MediatorWarning`` (with ``strict``, a
        ``ValidationError`` and no set); the warnings are also in ``.warnings``.
        """
        body = {
            "name": name,
            "description": description,
            "visibility": visibility,
            "add": [_pointer_json(p) for p in add],
            "message": message,
            "strict": strict,
        }
        return _warn(self._post("/v1/sets", SetModel, body))

    def update(
        self,
        set_id: str,
        *,
        add: Iterable[PointerLike] = (),
        remove: Iterable[PointerLike] = (),
        message: str = "",
        expected_head: int | None = None,
        strict: bool = False,
    ) -> UpdateResult:
        """Add and remove pointers at any granularity in one new version.

        Removing part of something added coarser excludes it. ``expected_head``: the version
        you built on; if someone committed since, ``ConflictError`` carries the current head.
        Pointers that select nothing are reported as in ``create_set``.
        """
        body = {
            "add": [_pointer_json(p) for p in add],
            "remove": [_pointer_json(p) for p in remove],
            "message": message,
            "expected_head": expected_head,
            "strict": strict,
        }
        return _warn(self._post(f"/v1/sets/{_set_id(set_id)}/versions", UpdateResult, body))

    def add(self, set_id: str, *pointers: PointerLike, message: str = "") -> UpdateResult:
        """``m.add(set_id, "idc/nlst/100002")``: add pointers in a new version."""
        return self.update(set_id, add=pointers, message=message)

    def remove(self, set_id: str, *pointers: PointerLike, message: str = "") -> UpdateResult:
        """``m.remove(set_id, "idc/nlst/100002")``: remove (or exclude) pointers in a new version."""
        return self.update(set_id, remove=pointers, message=message)

    def rename(self, set_id: str, name: str, description: str | None = None) -> SetModel:
        """Give a set a new name (and, if given, a new description); its owner and editors may."""
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        return self._send("PUT", f"/v1/sets/{_set_id(set_id)}/name", SetModel, body)

    def delete_set(self, set_id: str) -> None:
        """Delete a set you own (not possible once a version is published)."""
        self._call("DELETE", f"/v1/sets/{_set_id(set_id)}")

    def duplicate(self, set_id: str, version: int | None = None, name: str = "") -> SetModel:
        """Fork a set (yours, shared with you, or public) into a new set of yours."""
        return self._post(
            f"/v1/sets/{_set_id(set_id)}/duplicate", SetModel, {"version": version, "name": name}
        )

    def share(
        self,
        set_id: str,
        *,
        visibility: str | None = None,
        editors: Iterable[str] = (),
        revoke: Iterable[str] = (),
    ) -> SetModel:
        """Change who sees a set (private, cluster, public) and who may edit it (users' key ids)."""
        rs = self.get_set(set_id)
        if visibility is not None:
            rs = self._send("PUT", f"/v1/sets/{rs.id}/visibility", SetModel, {"visibility": visibility})
        for key_id in editors:
            rs = self._send("PUT", f"/v1/sets/{rs.id}/editors/{_segment(key_id)}", SetModel)
        for key_id in revoke:
            rs = self._send("DELETE", f"/v1/sets/{rs.id}/editors/{_segment(key_id)}", SetModel)
        return rs

    def follow(self, set_id: str) -> SetModel:
        """Be told when a set gets a new version."""
        return self._send("PUT", f"/v1/sets/{_set_id(set_id)}/follow", SetModel)

    def unfollow(self, set_id: str) -> SetModel:
        return self._send("DELETE", f"/v1/sets/{_set_id(set_id)}/follow", SetModel)

    def history(self, set_id: str) -> list[VersionModel]:
        """Every version of a set, oldest first, with messages, authors and selections."""
        return self._list(f"/v1/sets/{_set_id(set_id)}/versions", VersionModel)

    def version(self, set_id: str, number: int) -> VersionModel:
        return self._get(f"/v1/sets/{_set_id(set_id)}/versions/{int(number)}", VersionModel)

    def leaves(self, set_id: str, number: int | None = None, *, page: int = 5000) -> Iterator[LeafModel]:
        """The leaves of a version (default: the head), with sizes and fingerprints."""
        number = number if number is not None else self.get_set(set_id).head
        if number is None:
            return
        offset = 0
        while True:
            result = self._get(
                f"/v1/sets/{_set_id(set_id)}/versions/{number}/leaves", LeavesModel, offset=offset, limit=page
            )
            yield from result.leaves
            offset += len(result.leaves)
            if offset >= result.total or not result.leaves:
                return

    def diff(
        self, set_id: str, old: int, new: int | None = None, *, other: str | None = None, limit: int = 1000
    ) -> DiffModel:
        """What changed from version ``old`` to ``new`` (default: the head), or to a version of
        ``other`` set; ``summary`` reads like ``+5 series (2.1 GB) in 3 patients, -1 series``."""
        return self._get(
            f"/v1/sets/{_set_id(set_id)}/diff",
            DiffModel,
            old=old,
            new=new,
            other=None if other is None else _set_id(other),
            limit=limit,
        )

    # -- archive updates -------------------------------------------------------------------------
    def check(self, *set_ids: str, full: bool = False) -> list[UpdateCheckModel]:
        """Check sets for archive updates now (no argument: every set you follow or own); blocks
        while the archives answer. ``full`` resolves the sets again in full instead of asking the
        archives what changed (slower; finds series TCIA deleted).

        Each answer says what its check found: ``drift`` (the update, or None: up to date),
        ``new`` (this check found it) and ``line`` (one line for people). An archive that fails
        is no exception: that answer's ``error`` says why, and the set shows it.
        """
        body = {"sets": [_set_id(s) for s in set_ids] if set_ids else None, "full": full}
        return [UpdateCheckModel.model_validate(x) for x in self._call("POST", "/v1/checks", body)]

    def drift(self, set_id: str) -> TrackModel:
        """A set's archive update found by the last check (``drift``, or None), whether you
        declined it, and how the last check went (``last_check``, with its ``error``)."""
        return self._get(f"/v1/sets/{_set_id(set_id)}/drift", TrackModel)

    def drift_diff(self, set_id: str, limit: int = 1000) -> DiffModel:
        """What changed in the archives: the set's head version against what they hold now, as
        ``diff`` shows two versions. ``NotFound`` when the set has no update."""
        return self._get(f"/v1/sets/{_set_id(set_id)}/drift/diff", DiffModel, limit=limit)

    def accept(self, set_id: str, *, fork: bool = False, name: str = "") -> UpdateResult:
        """Take the archive update as the set's next version (its owner and editors may).

        With ``fork``, the update goes to a new set of yours instead (named ``name``, or the set's
        name marked as a fork): what a reader of a public set does. ``NotFound`` when there is no
        update, ``PermissionDenied`` for a reader without ``fork``.

        Then ``download`` the new version (``result.set.id``) into the folder you downloaded the
        set to: only the added and revised leaves are fetched.
        """
        body = {"fork": fork, "name": name}
        return self._post(f"/v1/sets/{_set_id(set_id)}/drift/accept", UpdateResult, body)

    def dismiss(self, set_id: str) -> TrackModel:
        """Decline the set's archive update: the set keeps its version and you are not told about
        this update again (``accept`` still takes it)."""
        return self._send("DELETE", f"/v1/sets/{_set_id(set_id)}/drift", TrackModel)

    def updates(self) -> list[SetUpdateModel]:
        """Sets you follow or own with an archive update you have not declined: ``set`` and
        ``drift`` each."""
        return self._list("/v1/updates", SetUpdateModel)

    # -- clinical tables and cohorts --------------------------------------------------------------
    def tables(self) -> list[TableVersionModel]:
        """The cluster's clinical tables, each at its latest version."""
        return self._list("/v1/tables", TableVersionModel)

    def table(self, name: str) -> TableModel:
        """A clinical table: its latest version (``table``) and every version (``history``)."""
        return self._get(f"/v1/tables/{_segment(name)}", TableModel)

    def add_table(
        self, path: str | os.PathLike[str], name: str | None = None, key_column: str | None = None
    ) -> TableVersionModel:
        """Read a table file (CSV, TSV, Excel) into the cluster's store, where every member can join it to
        the archives without the file; a table of that name gets a new version, and the same
        content again answers the version that holds it.

        ``name`` defaults to the file's name, ``key_column`` (the column of patient keys) to the
        one ``preview_table`` guesses. Example::

            trial = m.add_table("~/trial/clinical.csv", name="trial", key_column="PatientID")
            print(trial.name, "v", trial.number, trial.rows, "rows")
        """
        body = {"path": _local_file(path), "name": name, "key_column": key_column}
        return self._post("/v1/tables", TableVersionModel, body)

    def preview_table(self, path: str | os.PathLike[str], key_column: str | None = None) -> TablePreviewModel:
        """What ``add_table`` would read: columns with their kinds, the key column it would take
        (``key_guess``), the first rows (``head``) and any ``problems``. Nothing is stored."""
        body = {"path": _local_file(path), "key_column": key_column}
        return self._post("/v1/tables/preview", TablePreviewModel, body)

    def table_columns(self, name: str) -> list[ColumnModel]:
        """A table's columns: ``kind`` (text, number, date), ``blanks``, ``distinct``, ``low``..``high``."""
        return self._list(f"/v1/tables/{_segment(name)}/columns", ColumnModel)

    def table_values(self, name: str, column: str, limit: int = 500) -> list[ValueCountModel]:
        """The values of a column, each with its number of rows: ``m.table_values("trial", "stage")``."""
        return self._list(
            f"/v1/tables/{_segment(name)}/columns/{_segment(column)}/values", ValueCountModel, limit=limit
        )

    def select_patients(self, table: str, *conditions: str) -> list[str]:
        """The patients of ``table`` whose rows meet every condition::

            m.select_patients("trial", "age>=60", "stage=III,IIIA,IIIB", "smoking=*")

        Conditions: ``age>=60``, ``age<=70``, ``age>60``, ``age<60``, ``age=60..70`` (a range),
        ``stage=II,IIA`` (any of), ``smoking=*`` (has a value), ``smoking=!`` (has none).
        """
        body = {"conditions": list(conditions)}
        return self._post(f"/v1/tables/{_segment(table)}/select", PatientsModel, body).patients

    def table_rows(self, name: str, keys: Iterable[str] | None = None, limit: int | None = None) -> RowsModel:
        """Rows of a table as text (``columns``, ``rows``): all, or those of the patients ``keys``."""
        return self._get(
            f"/v1/tables/{_segment(name)}/rows",
            RowsModel,
            keys=None if keys is None else list(keys),
            limit=limit,
        )

    def cohort(self, table: str, *conditions: str, into: Sequence[PointerLike]) -> str:
        """A cohort as one pointer: the patients of ``table`` meeting ``conditions``, in the
        archives ``into``. A set holds it like any other pointer, and joins it again each time the
        set is resolved; what an archive lacks comes back in the set's ``warnings``::

            cohort = m.cohort("trial", "age>=60", "stage=III", into=["idc/nlst?Modality=CT"])
            rs = m.create_set("Stage III, 60+", add=[cohort])
            print(rs.warnings)  # ["31 of 40 patients of clinical/trial have data in idc/nlst..."]

        Built here, without asking the node; ``preview_join`` shows what it finds first.
        """
        if not into:
            raise errors.ValidationError("say which archives the cohort joins to: into=['idc/nlst', ...]")
        from mediator_desktop.core.clinical import join_pointer, parse_conditions  # heavy: only here

        targets = [_pointer(p) for p in into]
        return str(join_pointer(table, parse_conditions(conditions), targets))

    def preview_join(self, table: str, *conditions: str, into: Sequence[PointerLike]) -> JoinPreviewModel:
        """What a cohort finds in each archive of ``into``, before a set holds it: per target, the
        patients ``found`` and the ``missing`` ones; ``pointer`` is what ``cohort`` returns."""
        body = {
            "table": table,
            "conditions": list(conditions),
            "targets": [str(_pointer(p)) for p in into],
        }
        return self._post("/v1/joins/preview", JoinPreviewModel, body)

    # -- matching data in other archives ---------------------------------------------------------
    def match(
        self,
        origin: PointerLike | Iterable[PointerLike] = (),
        *,
        patients: Iterable[str] = (),
        into: Iterable[PointerLike] = (),
    ) -> MatchModel:
        """What the other archives hold for a cohort's patients: those ``origin`` selects (pointers
        into one archive or clinical table: a collection, some patients, a filter) and the
        ``patients`` named, searched in ``into`` (default: every other archive with patients).

        Per archive (``archives``): the patients ``found`` and ``missing``, the ``kinds`` of data
        they have there (``label``, ``category``, the ``filter`` that selects it, its
        ``patients``, ``leaves`` and ``size``), or the ``error`` that kept it from being searched;
        the other archives still answer. Nothing is stored::

            found = m.match("idc/tcga_luad?Modality=CT", into=["gdc", "pathology"])
            gdc = found.archive("gdc")
            print(len(gdc.found), "of", len(found.patients), [(k.label, len(k.patients)) for k in gdc.kinds])
            both = found.common({"gdc": ["RNA-Seq"], "pathology": None})  # RNA-Seq and any slide
        """
        body = {
            "origin": [str(_pointer(p)) for p in _pointers(origin)],
            "patients": list(patients),
            "into": [str(_pointer(p)) for p in into],
        }
        return self._post("/v1/matches", MatchModel, body)

    def match_cohort(
        self,
        origin: PointerLike | Iterable[PointerLike],
        *,
        into: Iterable[PointerLike] = (),
        chosen: Mapping[str, Iterable[str] | None] | None = None,
        every: bool = True,
    ) -> list[str]:
        """The rules that hold a match in a set: the patients of each ``origin`` pointer, joined to
        other archives, and with ``every`` only the patients that have data in every one of them.
        A set holds them like any other pointers and joins them again each time it is resolved (a
        new matching file later is an archive update); what an archive lacks comes back in the
        set's ``warnings``.

        Without ``chosen``, ``into`` are the join targets as given (archives or parts of them, with
        filters), and the rules are built here without asking the node. With ``chosen`` (per
        archive the kinds of data ``match`` reported, or None for all it holds), the node maps the
        kinds to their filters, searching ``into`` (default: the archives of ``chosen``)::

            chosen = {"gdc": ["RNA-Seq"], "pathology": None}  # RNA-Seq files, and any slide
            rules = m.match_cohort("idc/tcga_luad?Modality=CT", chosen=chosen)
            rs = m.create_set("LUAD CT, RNA-Seq and slides", add=rules)
            print(rs.warnings)  # ["61 of 67 patients of idc/tcga_luad have data in every archive joined ..."]

            m.create_set("LUAD CT + GDC", add=m.match_cohort("idc/tcga_luad", into=["gdc"], every=False))
        """
        origins = [_pointer(p) for p in _pointers(origin)]
        if not origins:
            raise errors.ValidationError(
                "say whose data to match: origin='idc/tcga_luad' (pointers into one archive)"
            )
        targets = [_pointer(p) for p in into]
        if chosen is None:
            if not targets:
                raise errors.ValidationError(
                    "say where to join the cohort: into=['gdc', ...], or chosen={'gdc': ['RNA-Seq']}"
                )
            from mediator_desktop.core.integrator import cohort as join_cohort  # heavy: only here

            return [str(join_cohort(o, targets, every=every)) for o in origins]
        body = {
            "origin": [str(o) for o in origins],
            "into": [str(t) for t in targets],
            "chosen": {source: None if labels is None else list(labels) for source, labels in chosen.items()},
            "every": every,
        }
        return self._post("/v1/matches/cohort", MatchCohortModel, body).pointers

    # -- manifest files --------------------------------------------------------------------------
    @overload
    def export_set(
        self,
        set_id: str,
        format: Literal["rocrate", "bdbag"],
        version: int | None = None,
        *,
        files: bool = False,
    ) -> bytes: ...

    @overload
    def export_set(
        self,
        set_id: str,
        format: Literal["mediator", "gdc", "s5cmd", "tcia", "csv"] = "mediator",
        version: int | None = None,
        *,
        files: bool = False,
    ) -> str: ...

    @overload
    def export_set(
        self, set_id: str, format: str, version: int | None = None, *, files: bool = False
    ) -> str | bytes: ...

    def export_set(
        self, set_id: str, format: str = "mediator", version: int | None = None, *, files: bool = False
    ) -> str | bytes:
        """A set version (default: the head) as a file: ``mediator``, a set export any MEDIator
        imports again (``import_manifest``); ``gdc``, the manifest of its GDC files that
        ``gdc-client download -m`` reads; ``s5cmd``, IDC's manifest of its IDC series; ``tcia``, the
        NBIA Data Retriever's manifest; ``csv``, one row per leaf. Those come as text;
        ``rocrate`` (a detached RO-Crate) and ``bdbag`` (a bag of pointers) as the bytes of a zip of
        their folder. ``ValidationError`` when the version holds nothing the format lists.

        ``files`` (``bdbag`` only, else ``ValidationError``): the node asks the archives for each
        leaf's files and lists every file with an MD5 and an http(s) URL in the bag's ``fetch.txt``,
        so ``bdbag --resolve-fetch all`` fetches and verifies it (needs the archives online; an
        archive that does not answer raises ``ArchiveUnreachable``)::

            Path("luad.json").write_text(m.export_set(rs.id))
            Path("gdc_manifest.txt").write_text(m.export_set(rs.id, "gdc"))
            Path("luad.crate.zip").write_bytes(m.export_set(rs.id, "rocrate"))
            Path("luad.bag.zip").write_bytes(m.export_set(rs.id, "bdbag", files=True))
        """
        response = self._request(
            "GET",
            f"/v1/sets/{_set_id(set_id)}/export",
            format=format,
            version=version,
            files="true" if files else None,
        )
        if format in ("rocrate", "bdbag"):
            return response.content
        return response.text  # UTF-8

    def import_manifest(self, path: str | os.PathLike[str], *, visibility: str = "private") -> ImportModel:
        """A new set from a manifest file: a TCIA ``.tcia``, an IDC ``.s5cmd``, a GDC manifest (TSV)
        or a set export (``export_set``). Its series and files are found in the archives configured
        on the node; those none of them holds are in ``missing`` (a ``MediatorWarning`` too). The
        file's name names the set (``lung.tcia``: ``lung``, or ``lung 2`` when you have one)::

            imported = m.import_manifest("~/Downloads/lung.tcia")
            print(imported.set.name, imported.count, "series found;", len(imported.missing), "missing")
        """
        body = {"path": _local_file(path), "visibility": visibility}
        result = self._post("/v1/sets/import", ImportModel, body)
        if result.missing:
            shown = ", ".join(result.missing[:8]) + (
                f" (+{len(result.missing) - 8:,} more)" if len(result.missing) > 8 else ""
            )
            many = len(result.missing)
            warnings.warn(
                f"{Path(path).name}: {many:,} item{'s' if many != 1 else ''} not in any archive configured "
                f"here: {shown}",
                MediatorWarning,
                stacklevel=2,
            )
        return result

    # -- publishing with a DOI -------------------------------------------------------------------
    def _number(self, set_id: str, version: int | None, *, published: bool = False) -> int:
        """``version``, or the set's head (``published``: its latest published version)."""
        if version is not None:
            return version
        rs = self.get_set(set_id)
        if published:
            if not rs.published:
                raise errors.NotFound(f"no version of {rs.name!r} is published; publish one first")
            return max(rs.published)
        if rs.head is None:
            raise errors.NotFound(f"{rs.name!r} has no version yet; add data to it first")
        return rs.head

    def _versions(self, set_id: str, number: int) -> str:
        return f"/v1/sets/{_set_id(set_id)}/versions/{number}"

    def suggest_publication(self, set_id: str, version: int | None = None) -> DoiMetadataModel:
        """Metadata to start a publication with (default: of the head): the set's name and
        description, you as the creator, the ``publisher`` setting, this year, and the source
        collections' DOIs (``related``). Change what you need and pass it to ``publish``::

            meta = m.suggest_publication(rs.id)
            meta.title = "RIDER lung CT, as used in our paper"
            meta.creators = [CreatorModel(name="Doe, Jane", orcid="0000-0002-1825-0097")]
        """
        number = self._number(set_id, version)
        return self._get(f"{self._versions(set_id, number)}/publication/suggested", DoiMetadataModel)

    def publish(
        self,
        set_id: str,
        version: int | None = None,
        metadata: DoiMetadataModel | Mapping[str, Any] | Any | None = None,
        *,
        landing_url: str | None = None,
        service: str | None = None,
        wait: bool = False,
        timeout: float = 60.0,
    ) -> PublicationModel:
        """Publish a version (default: the head) for good, and have its DOI minted.

        The version is frozen at once (it can never change, and the set can no longer be
        deleted); the node mints the DOI afterwards, retrying while the service is down.

        Args:
            metadata: the DOI record: a ``DoiMetadataModel`` (from ``suggest_publication``), a dict
                of its fields (creators as ``{"name": "Doe, Jane", "orcid": ...}`` or just
                ``"Doe, Jane"``), or None for the suggested one.
            landing_url: the https:// page the DOI resolves to (DataCite needs one; Zenodo
                makes its own).
            service: ``datacite``, ``zenodo`` or ``none`` (default: the ``doi_service`` setting).
            wait: wait until the DOI is findable or minting failed (then ``error`` says why;
                ``retry_publication`` after fixing it), at most ``timeout`` seconds; after that the
                record is returned as it is (``doi_state`` queued: the node keeps trying).

        Raises:
            MetadataProblems: the metadata breaks rules of a DOI record; ``problems`` has each
                by field (``{"creators.0.orcid": "... no valid ORCID iD ..."}``). Nothing is published.

        Example::

            meta = m.suggest_publication(rs.id)
            meta.creators = [CreatorModel(name="Doe, Jane", orcid="0000-0002-1825-0097")]
            record = m.publish(rs.id, metadata=meta, service="zenodo", wait=True)
            print(record.status)  # DOI 10.5281/zenodo.123456
        """
        number = self._number(set_id, version)
        body: dict[str, Any] = {
            "metadata": None if metadata is None else _metadata_json(metadata),
            "landing_url": landing_url,
            "service": service,
        }
        record = self._post(f"{self._versions(set_id, number)}/publish", PublicationModel, body)
        return self._wait_minted(record, timeout) if wait else record

    def _wait_minted(self, record: PublicationModel, timeout: float) -> PublicationModel:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while record.doi_state == "queued" and time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
            record = self.publication(record.set_id, record.version)
        return record

    def publication(self, set_id: str, version: int | None = None) -> PublicationModel:
        """A published version (default: the latest) and how far its DOI got: ``doi_state``
        (queued, findable, failed, none), ``status`` (``DOI 10.x/y``, ``publishing…``), ``error``.
        ``NotFound`` when the version is not published."""
        number = self._number(set_id, version, published=True)
        return self._get(f"{self._versions(set_id, number)}/publication", PublicationModel)

    def retry_publication(
        self, set_id: str, version: int | None = None, *, wait: bool = False, timeout: float = 60.0
    ) -> PublicationModel:
        """Try minting a version's DOI (default: the latest published) again now, after fixing
        what ``publication(...).error`` said (``set_publishing_secret``), or once the service is
        back; ``wait`` as in ``publish``::

            m.set_publishing_secret("zenodo", token)
            print(m.retry_publication(rs.id, 1, wait=True).status)
        """
        number = self._number(set_id, version, published=True)
        record = self._post(f"{self._versions(set_id, number)}/publication/retry", PublicationModel)
        return self._wait_minted(record, timeout) if wait else record

    def citation(self, set_id: str, version: int | None = None) -> CitationModel:
        """How a paper cites a published version (default: the latest): ``text`` (DataCite's
        style), ``bibtex`` and ``availability``, a data availability statement naming the source
        collections with their DOIs and licences::

            Path("refs.bib").write_text(m.citation(rs.id).bibtex)
        """
        number = self._number(set_id, version, published=True)
        return self._get(f"{self._versions(set_id, number)}/citation", CitationModel)

    def set_publishing_secret(self, service: str, secret: str) -> None:
        """Keep the DataCite repository password or the Zenodo token (``service``: ``datacite`` or
        ``zenodo``) in the node's OS keyring; used from the next DOI (or retry) on."""
        self._call("PUT", "/v1/publishing/secret", {"service": service, "secret": secret})

    # -- downloads -------------------------------------------------------------------------------
    def start_download(
        self,
        set_id: str,
        destination: str | os.PathLike[str],
        *,
        version: int | None = None,
        layout: str | None = None,
        workers: int = 8,
        prune: bool = False,
        only: Iterable[str] | None = None,
        verify: bool = False,
    ) -> DownloadHandle:
        """Start a download on the node and return at once; see ``download``.

        ``layout`` is the folder template, e.g. ``"{collection}/{patient}/{study}/{series}"``
        (default: the node's ``download_layout`` setting, as in the app and the CLI).
        """
        body: dict[str, Any] = {
            "set_id": _set_id(set_id),
            "destination": str(Path(destination).expanduser().absolute()),
            "version": version,
            "workers": workers,
            "prune": prune,
            "only": None if only is None else list(only),
        }
        if verify:  # left out when off: an older node refuses fields it does not know
            body["verify"] = True
        if layout is not None:  # left out, the node's setting applies (older nodes: their default)
            body["layout"] = layout
        return DownloadHandle(self, self._post("/v1/downloads", JobModel, body))

    def download(
        self,
        set_id: str,
        destination: str | os.PathLike[str],
        *,
        version: int | None = None,
        layout: str | None = None,
        workers: int = 8,
        prune: bool = False,
        only: Iterable[str] | None = None,
        progress: Callable[[ProgressModel], None] | None = None,
        cancel: threading.Event | None = None,
        verify: bool = False,
    ) -> JobModel:
        """Bring ``destination`` up to a version (default: the head) of a set, and wait.

        Only leaves new or changed since the folder's last download are fetched. ``progress`` is
        called with bytes, items, rate and ETA; set ``cancel`` to stop (finished leaves stay).
        The returned job's ``report`` lists what was fetched and every failure with its reason;
        its ``state`` is ``done``, ``failed`` or ``cancelled``.

        A rerun compares every file in place with the folder's record by size and modification
        time and fetches again the leaves whose files changed or were deleted (``report.refetched``);
        ``verify=True`` also re-hashes every file against the MD5 the archive gave for it (files
        without one are checked by size: ``report.unverifiable``). Leaves the archive gave no MD5
        for are listed in ``report.size_only``: checked by count and size only, never verified.
        """
        handle = self.start_download(
            set_id,
            destination,
            version=version,
            layout=layout,
            workers=workers,
            prune=prune,
            only=only,
            verify=verify,
        )
        return handle.wait(progress=progress, cancel=cancel)

    def downloads(self) -> list[JobModel]:
        """Every download job of the node since it started."""
        return self._list("/v1/downloads", JobModel)

    # -- settings --------------------------------------------------------------------------------
    def settings(self) -> SettingsModel:
        """The node's settings (``values``), and for each its title, description and whether a
        change applies at once (``live``) or when the node starts next (``fields``)."""
        return self._get("/v1/settings", SettingsModel)

    def change_settings(self, **changes: Any) -> SettingsChangeModel:
        """Change settings: ``m.change_settings(download_layout="{patient}/{series}")``.

        The node validates and saves them; live ones apply at once, the others when the node
        starts next (listed in ``restart``). A bad value raises ``ValidationError`` and changes
        nothing.
        """
        body = {name: os.fspath(v) if isinstance(v, os.PathLike) else v for name, v in changes.items()}
        return self._send("PATCH", "/v1/settings", SettingsChangeModel, body)


class MediatorWarning(UserWarning):
    """What the node said the user should hear: a pointer that selects nothing, a set without data."""


W = TypeVar("W", SetModel, UpdateResult)


def _warn(result: W) -> W:
    for text in result.warnings:
        warnings.warn(text, MediatorWarning, stacklevel=3)
    return result


def _segment(text: str) -> str:
    return quote(text, safe="")


def _set_id(set_id: str) -> str:
    return check_set_id(set_id)


def _pointers(origin: PointerLike | Iterable[PointerLike]) -> list[PointerLike]:
    """One pointer or several, as a list."""
    if isinstance(origin, str | Pointer | Mapping):
        return [origin]
    return list(origin)


def _filter_args(filters: Mapping[str, str | Sequence[str]] | None) -> list[str]:
    out = []
    for name, values in (filters or {}).items():
        vals = [values] if isinstance(values, str) else list(values)
        out.append(f"{name}={','.join(vals)}")
    return out


def _metadata_json(metadata: Any) -> dict[str, Any]:
    """Publication metadata as the API takes it, from a ``DoiMetadataModel``, a dict of its fields
    (a creator may be just a name) or a ``core.publishing.DoiMetadata``."""
    if isinstance(metadata, BaseModel):
        data = metadata.model_dump(mode="json")
    elif isinstance(metadata, Mapping):
        data = dict(metadata)
    elif callable(getattr(metadata, "to_json", None)):
        data = dict(metadata.to_json())
    else:
        raise errors.ValidationError(
            f"metadata is a DoiMetadataModel or a dict of its fields, not {type(metadata).__name__}"
        )
    creators = data.get("creators")
    if isinstance(creators, list | tuple):
        data["creators"] = [{"name": c} if isinstance(c, str) else _plain_json(c) for c in creators]
    return data


def _plain_json(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
