"""Moving bytes: one libcurl multi loop (pycurl) on its own thread drives every file download.

Per-request overhead is what limits Python downloaders on many small objects; libcurl keeps pooled
keep-alive connections, parses HTTP in C and hands us large blocks, so one thread keeps every
connection busy. Each file streams into ``<target>.part`` (hashed as it arrives when the archive
gave an MD5), resumes with ``Range`` after a network fault (and starts over when the server ignores
the range), is checked for size and MD5, and only then renamed to ``target``. A small file of known
size (``GATHER_UP_TO``) gathers in memory instead and is written to ``target`` once checked; a
fault part-way writes what arrived to the ``.part``, which the retry resumes.

The loops' threads only move bytes: what a file needs once it arrived runs beside them, so the
connections keep fetching meanwhile. A gathered file's MD5 is checked and its file created and
written by one writing thread per loop (creating files in one folder from many threads at once
costs the kernel more than it saves); the bytes waiting for them are bounded (``FINISH_BACKLOG``:
beyond it the loops start no new transfers). A ``durable`` file's future ends only once its data
is on the disk (and a ``.part`` renamed after that): on Linux one thread syncs the files that
arrived a batch at a time, one ``syncfs`` for every file that came while the last batch synced
(``_GroupSync``: at 30,000 files a download took 14-15 s where an fsync each took 18 s, half the
kernel's CPU); elsewhere each is fsynced on one of ``finishers`` threads. A long file is written
back as it arrives (``WRITEBACK_EVERY``), so that its final sync finds little left to write.

Failures come in two kinds. A connection-level one (the name did not resolve, the connection was
refused or timed out, a proxy or TLS handshake failed) says nothing about the file: the archive's
host is out of reach. Such a file is retried like any network fault while the host answered
recently (a blip); a host that has not answered for a while and fails ``FAST_FAIL_AFTER`` times
in a row is given up on at once, and for ``DOWN_FOR`` seconds its other files fail without a
request. Those failures are ``ArchiveUnreachable``, and ``CurlTransport.unreachable`` recognises
the same kind of failure in what a source's own requests raised, so the engine can stop asking
an archive it cannot reach. Anything else (404, a bad checksum...) is about one file.

Cancelling a job's control ends its transfers, queued and waiting files within about 0.1 s.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import itertools
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any
from urllib.parse import urlsplit

import certifi
import pycurl

from mediator_desktop._version import __version__
from mediator_desktop.core.errors import ArchiveUnreachable, Cancelled, IntegrityError, SourceError
from mediator_desktop.core.jobs import JobControl
from mediator_desktop.core.source import RemoteFile

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_BLOCK = 1 << 20
#: A file of at most this many bytes (when the archive gave its size) gathers in memory and is
#: written at once when complete and checked: one open and one write, no ``.part`` and no rename,
#: and no hand-over of the GIL per block for writes and hashing (what costs a small file its CPU).
#: A fault part-way writes what arrived to the ``.part``, so the retry resumes from there.
GATHER_UP_TO = 1 << 20
#: Bytes of arrived files waiting for a finishing thread (gathered in memory, or to be fsynced)
#: beyond which the loops start no new transfers until they are written.
FINISH_BACKLOG = 64 << 20
#: A ``durable`` file streaming into its ``.part`` asks the kernel to start writing each this many
#: bytes to the disk as they arrive: its final fsync then waits for the tail only.
WRITEBACK_EVERY = 8 << 20
_WRITEBACK = getattr(os, "POSIX_FADV_DONTNEED", None)  # starts the writeback of a range (Linux)

#: libcurl errors that mean the host was never talked to (not in pycurl's table: 90 a pinned key
#: that does not match, 91 a bad certificate status, 97 a proxy's handshake failed).
_CONNECT_ERRORS = frozenset(
    {
        pycurl.E_COULDNT_RESOLVE_PROXY,
        pycurl.E_COULDNT_RESOLVE_HOST,
        pycurl.E_COULDNT_CONNECT,
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_ISSUER_ERROR,
        90,
        91,
        97,
    }
)
#: How libcurl words a timeout before the connection was up (a stall mid-transfer is not one).
_CONNECT_TIMEOUTS = ("Resolving timed out", "Connection timed out", "Failed to connect")
_HOST_IN_MESSAGE = re.compile(
    r"(?:resolve host|resolve proxy|connect to)[: ]+(\[[0-9a-fA-F:.]+\]|[^\s:;,]+)(?::(\d+)| port (\d+))?"
)
#: Connection-level failures in a row after which a host that has not answered lately is given up on.
FAST_FAIL_AFTER = 3
#: A host that answered within this many seconds is having a blip: its files get all their tries.
ANSWERED_LATELY = 30.0
#: Seconds during which a host given up on fails further files without a request.
DOWN_FOR = 2.0


def connection_failure(code: int, message: str) -> bool:
    """True when libcurl's error ``code`` (with its ``message``) means the host could not be reached."""
    if code in _CONNECT_ERRORS:
        return True
    return code == pycurl.E_OPERATION_TIMEDOUT and message.startswith(_CONNECT_TIMEOUTS)


def unreachable(error: BaseException) -> ArchiveUnreachable | None:
    """``error`` as ``ArchiveUnreachable`` when it, or an error it was raised from, means a host
    could not be reached: a libcurl connection-level error, a ``requests`` connection failure
    (resolution, refusal, connect timeout, proxy, TLS), a DNS lookup or a refused socket."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        found = _unreachable_one(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _unreachable_one(error: BaseException) -> ArchiveUnreachable | None:
    if isinstance(error, ArchiveUnreachable):
        return error
    if isinstance(error, pycurl.error):
        code = error.args[0] if error.args and isinstance(error.args[0], int) else -1
        message = str(error.args[-1]) if error.args else ""
        if connection_failure(code, message):
            return ArchiveUnreachable(message, host=host_in(message), reason=message)
        return None
    if isinstance(error, socket.gaierror | ConnectionRefusedError):
        return ArchiveUnreachable(str(error), reason=error.strerror or str(error))
    requests = sys.modules.get("requests")  # only an error from requests needs it: never imported here
    if requests is not None and isinstance(error, requests.exceptions.ConnectionError):
        return _requests_unreachable(error)
    return None


def _requests_unreachable(error: Any) -> ArchiveUnreachable | None:
    import urllib3.exceptions as u3

    wrapped = error.args[0] if error.args else None
    cause = getattr(wrapped, "reason", wrapped)
    pool = getattr(wrapped, "pool", None)
    host = ""
    if pool is not None and getattr(pool, "host", None):
        host = f"{pool.host}:{pool.port}" if getattr(pool, "port", None) else str(pool.host)
    # NewConnectionError: refused, no route, and (NameResolutionError) a name that did not resolve
    if isinstance(cause, u3.NewConnectionError | u3.ConnectTimeoutError | u3.ProxyError | u3.SSLError):
        return ArchiveUnreachable(str(cause), host=host, reason=_plain(cause))
    return None


def _plain(error: BaseException) -> str:
    """urllib3's message without the ``<HTTPConnection object at 0x...>: `` it starts with."""
    text = str(error.args[-1] if error.args else error)
    return re.sub(r"^<[^>]*>: ", "", text)


def host_in(message: str) -> str:
    """The ``host[:port]`` a libcurl message names ("Could not resolve host: x"), or ""."""
    match = _HOST_IN_MESSAGE.search(message)
    if match is None:
        return ""
    port = match.group(2) or match.group(3)
    return match.group(1) + (f":{port}" if port else "")


def _host_of(url: str) -> str:
    """``host[:port]`` of ``url`` (worked out once per scheme and address: every file asks)."""
    start = url.find("//")
    end = url.find("/", start + 2) if start >= 0 else -1
    return _host_of_origin(url if end < 0 else url[:end])


@functools.lru_cache(maxsize=256)
def _host_of_origin(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    try:
        port = parts.port
    except ValueError:
        port = None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host


@dataclass(slots=True)
class _Host:
    """How a host has fared lately (shared by the loops)."""

    streak: int = 0  # connection-level failures in a row
    answered: float = float("-inf")  # when it last answered anything (monotonic)
    failed: float = float("-inf")  # when it last failed at connection level
    reason: str = ""  # libcurl's words for the last such failure


def _said(body: bytes) -> str:
    """What an archive's refusal says, in one short line: a JSON body's ``message`` (``error``,
    ``detail``), or plain text; nothing for an HTML page."""
    text = body.decode("utf-8", "replace").strip()
    if not text or text.lstrip().startswith("<"):
        return ""
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            said = next((data[k] for k in ("message", "error", "detail") if isinstance(data.get(k), str)), "")
            return " ".join(said.split())[:200]
        return ""
    return " ".join(text.split())[:200]


class _Job:
    __slots__ = (
        "abort",
        "attempt",
        "chunks",
        "content_range",
        "control",
        "digest",
        "durable",
        "error_body",
        "fh",
        "file",
        "first_write",
        "future",
        "group",
        "heard",
        "host",
        "is_file",
        "kicked",
        "loop",
        "offset",
        "on_bytes",
        "os_error",
        "part",
        "paused",
        "received",
        "reported",
        "status",
        "target",
    )  # fmt: skip

    def __init__(
        self,
        file: RemoteFile,
        target: Path,
        group: str,
        control: JobControl,
        on_bytes: Callable[[int], None],
        durable: bool = False,
    ) -> None:
        self.file = file
        self.target = target
        self.part = f"{target}.part"  # a str: one Path less to make per file
        self.group = group
        self.control = control
        self.on_bytes = on_bytes
        self.durable = durable
        self.loop: _Loop | None = None
        self.future: Future[Path] = Future()
        self.attempt = 0
        self.is_file = file.url.startswith("file:")
        self.host = "" if self.is_file else _host_of(file.url)
        self.reported = 0  # bytes of this file counted in the progress, across attempts
        self.reset()

    def reset(self) -> None:
        self.offset = 0
        self.received = 0
        self.heard = 0  # ``received`` when the loop last told the transport the host answers
        self.status = 0
        self.content_range: int | None = None
        self.digest: Any = None
        self.fh: Any = None
        self.os_error: OSError | None = None
        self.abort: str | None = None
        self.error_body = b""
        self.first_write = True
        self.kicked = 0  # where the last writeback asked for ended (a durable ``.part``)
        self.paused = False
        self.chunks: list[bytes] | None = None  # the bytes so far, while the file gathers in memory

    @property
    def what(self) -> str:
        return f"{self.file.name} ({urlsplit(self.file.url).netloc or 'local file'})"

    def report_total(self, total: int) -> None:
        """Make the progress count ``total`` bytes for this file (no double counting on retries)."""
        if total != self.reported:
            self.on_bytes(total - self.reported)
            self.reported = total

    def header(self, line: bytes) -> None:
        """Called on the transport thread."""
        if line.startswith(b"HTTP/"):
            fields = line.split()
            self.status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            self.content_range = None
        elif line[:14].lower() == b"content-range:":
            value = line[14:].strip().lower()
            if value.startswith(b"bytes ") and b"-" in value:
                first = value[6:].split(b"-", 1)[0]
                self.content_range = int(first) if first.isdigit() else -1

    def _starts_wrong(self, status: int) -> bool:
        """At a response's first bytes: start the ``.part`` over when the server ignored our range;
        True (``abort`` says why) when it resumed at another offset than asked."""
        if status == 200 and self.offset and not self.is_file:  # the server ignored the range
            self.fh.seek(0)
            self.fh.truncate()
            self.report_total(0)
            self.offset = 0
            self.kicked = 0
            self.digest = hashlib.md5(usedforsecurity=False) if self.file.md5 else None
        elif status == 206 and self.content_range != self.offset:
            self.abort = f"the server resumed {self.what} at the wrong offset"
            return True
        return False

    def write(self, data: bytes) -> int | None:
        """Called on the transport thread. Returning 0 aborts the transfer."""
        status = 200 if self.is_file else self.status
        if self.first_write and status in (200, 206):
            self.first_write = False
            if self._starts_wrong(status):
                return 0
        if status not in (200, 206):
            if len(self.error_body) < 2048:
                self.error_body += data[:2048]
            return None
        chunks = self.chunks
        if chunks is not None:  # counted as progress once the file is complete
            chunks.append(data)
            self.received += len(data)
        else:
            try:
                view = memoryview(data)
                while view:  # an unbuffered file may take a block in pieces
                    view = view[self.fh.write(view) :]
            except OSError as exc:
                self.os_error = exc
                return 0
            if self.digest is not None:
                self.digest.update(data)
            self.received += len(data)
            self.reported += len(data)
            self.on_bytes(len(data))
            if self.durable and _WRITEBACK is not None:
                written = self.offset + self.received
                if written - self.kicked >= WRITEBACK_EVERY:
                    with contextlib.suppress(OSError):  # only a head start for the final fsync
                        os.posix_fadvise(self.fh.fileno(), self.kicked, written - self.kicked, _WRITEBACK)
                    self.kicked = written
        if self.file.size is not None and self.offset + self.received > self.file.size:
            self.abort = f"{self.what} is longer than the {self.file.size} bytes the archive announced"
            return 0
        return None


class CurlTransport:
    """Downloads files on background threads over pooled connections.

    Args:
        connections: transfers at once over all groups (``set_limit`` bounds each group).
        loops: threads, each driving its own libcurl multi handle: writes and hashing release the
            GIL, so two loops keep two cores busy on large files.
        attempts: tries per file (network faults resume; a bad checksum starts over).
        backoff: seconds before the first retry, doubled after each.
        stall_timeout: a transfer slower than 1 byte/s for this long is a fault.
        finishers: threads that fsync ``durable`` files as they arrive while the loops go on
            fetching, where there is no ``syncfs`` (with it, one thread syncs them in batches).
    """

    def __init__(
        self,
        connections: int = 16,
        *,
        loops: int = 2,
        attempts: int = 4,
        backoff: float = 0.5,
        connect_timeout: float = 10.0,
        stall_timeout: float = 60.0,
        finishers: int = 8,
    ) -> None:
        self.connections = connections
        self.finishers = max(1, finishers)
        self._writers: _Workers | None = None  # check and write gathered files
        self._syncers: _Workers | _GroupSync | None = None  # put durable files on the disk
        self._backlog = 0  # bytes handed to the writing threads and not written yet (under _lock)
        self.attempts = attempts
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self._lock = threading.Lock()
        self._limits: dict[str, int] = {}
        self._watched: weakref.WeakSet[JobControl] = weakref.WeakSet()
        self._hosts: dict[str, _Host] = {}
        self._loops = [_Loop(self, i, max(1, connections // loops)) for i in range(max(1, loops))]
        self._next = itertools.cycle(self._loops)
        self.requests = 0  # HTTP requests sent, for tests and benchmarks

    # -- public, any thread ------------------------------------------------------------------------
    def set_limit(self, group: str, connections: int) -> None:
        with self._lock:
            self._limits[group] = max(1, connections)

    def limit(self, group: str) -> int:
        """Connections one loop may open to ``group``."""
        with self._lock:
            total = self._limits.get(group, self.connections)
        return max(1, -(-total // len(self._loops)))

    def submit(
        self,
        file: RemoteFile,
        target: Path,
        *,
        group: str,
        control: JobControl,
        on_bytes: Callable[[int], None],
        durable: bool = False,
    ) -> Future[Path]:
        """See ``Transport.submit``; ``durable``: the future ends once ``target``'s data is on the
        disk (fsynced; its folder's entry is the caller's to sync)."""
        job = _Job(file, target, group, control, on_bytes, durable)
        with self._lock:
            if control not in self._watched:
                self._watched.add(control)
                control.on_change(self.wake)
            loop = job.loop = next(self._next)
        loop.put(job)
        return job.future

    def wake(self) -> None:
        """Make the loops look at their jobs' controls now (a pause, resume or cancel)."""
        for loop in self._loops:
            loop.wake()

    def unreachable(self, error: BaseException) -> ArchiveUnreachable | None:
        """See ``unreachable`` (the module's function): for what a source's own requests raised."""
        return unreachable(error)

    # -- how hosts fare, from the loops' threads -------------------------------------------------
    def _answered(self, host: str) -> None:
        if host:
            with self._lock:
                state = self._hosts.setdefault(host, _Host())
                state.streak = 0
                state.answered = time.monotonic()

    def _unanswered(self, host: str, reason: str) -> bool:
        """Count a connection-level failure; True when ``host`` is to be given up on now."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.setdefault(host, _Host())
            state.streak += 1
            state.failed = now
            state.reason = reason
            return state.streak >= FAST_FAIL_AFTER and now - state.answered > ANSWERED_LATELY

    def _down(self, host: str) -> str | None:
        """libcurl's reason while ``host`` is given up on (its files fail without a request), else None."""
        now = time.monotonic()
        with self._lock:
            state = self._hosts.get(host)
            if (
                state is None
                or state.streak < FAST_FAIL_AFTER
                or now - state.answered <= ANSWERED_LATELY
                or now - state.failed >= DOWN_FOR
            ):
                return None
            return state.reason

    # -- finishing arrived files, from the loops' threads -----------------------------------------
    def _write(self, job: _Job, size: int, step: Callable[[], None]) -> None:
        """Run ``step`` (which ends ``job``, or hands it to ``_sync``) on a writing thread; ``size``
        bytes wait for it in memory."""
        with self._lock:
            self._backlog += size
            if self._writers is None:
                self._writers = _Workers(len(self._loops), "transport-write")
            pool = self._writers
        pool.submit(functools.partial(self._finishing, job, size, step))

    def _sync(self, job: _Job, path: str | Path, then: Callable[[], None]) -> None:
        """Put ``path`` (``job``'s file) on the disk, then run ``then`` (the end of ``job``), off
        the loops' threads: with ``syncfs``, a batch of files at a time (``_GroupSync``); else
        an fsync each on one of ``finishers`` threads."""
        with self._lock:
            if self._syncers is None:
                self._syncers = (
                    _GroupSync(self) if _SYNCFS is not None else _Workers(self.finishers, "transport-sync")
                )
            pool = self._syncers
        if isinstance(pool, _GroupSync):
            pool.submit(job, path, then)
        else:
            pool.submit(functools.partial(self._finishing, job, 0, functools.partial(_synced, path, then)))

    def _finishing(self, job: _Job, size: int, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the disk is full, the staging folder went...: the
            _Loop._fail(job, exc)  # future ends with it (the engine waits on it)
        finally:
            if size:
                with self._lock:
                    full = self._backlog >= FINISH_BACKLOG
                    self._backlog -= size
                    full = full and self._backlog < FINISH_BACKLOG
                if full:  # the loops may start transfers again
                    self.wake()

    def _backlogged(self) -> bool:
        with self._lock:
            return self._backlog >= FINISH_BACKLOG

    def close(self) -> None:
        """Stop the loops; unfinished downloads end with ``Cancelled`` (their ``.part`` stays).
        Files that arrived whole are written first."""
        for loop in self._loops:
            loop.close()
        for name in ("_writers", "_syncers"):  # writers first: they may hand files to the syncers
            with self._lock:
                pool = getattr(self, name)
                setattr(self, name, None)
            if pool is not None:
                pool.shutdown()
        for loop in self._loops:  # a file found wrong as the loops stopped: nobody fetches it again
            loop.fail_returned()


class _Workers:
    """A few threads running the calls queued for them, in order: lighter than a thread pool of
    ``concurrent.futures`` (no future per call). Each call handles its own errors."""

    def __init__(self, threads: int, name: str) -> None:
        self._queue: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], None]) -> None:
        self._queue.put(call)

    def _run(self) -> None:
        while (call := self._queue.get()) is not None:
            call()

    def shutdown(self) -> None:
        """Run what is queued, then end the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


class _Loop:
    """One thread driving one libcurl multi handle."""

    def __init__(self, transport: CurlTransport, index: int, connections: int) -> None:
        self.transport = transport
        self.index = index
        self.connections = connections
        self._cond = threading.Condition()
        self._inbox: deque[_Job] = deque()
        self._returned: deque[tuple[_Job, str]] = deque()  # failed their check on a finishing thread
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stirred = False  # a control changed: look for cancelled jobs that wait
        self._heard_at = 0.0

    def put(self, job: _Job) -> None:
        with self._cond:
            self._inbox.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"transport-{self.index}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._stirred = True
            self._cond.notify()

    def fail_returned(self) -> None:
        with self._cond:
            returned = list(self._returned)
            self._returned.clear()
        for job, _ in returned:
            self._fail(job, Cancelled("the transport closed"))

    def give_back(self, job: _Job, problem: str) -> None:
        """A finishing thread found ``job``'s bytes wrong: the loop discards them and tries again."""
        with self._cond:
            self._returned.append((job, problem))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(30)
        with self._cond:  # usable again: a node may be started anew
            self._thread = None
            self._closed = False

    # -- the loop's thread -----------------------------------------------------------------------
    def _run(self) -> None:
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_MAXCONNECTS, self.connections * 2)
        handles: list[Any] = []
        active: dict[Any, _Job] = {}
        per_group: dict[str, int] = {}
        pending: dict[str, deque[_Job]] = {}
        delayed: list[tuple[float, int, _Job]] = []
        order = itertools.count()
        try:
            while True:
                with self._cond:
                    while self._inbox:
                        job = self._inbox.popleft()
                        pending.setdefault(job.group, deque()).append(job)
                    returned = list(self._returned)
                    self._returned.clear()
                for job, problem in returned:
                    self._discard(job)
                    self._retry(job, problem, delayed, order, integrity=True)
                with self._cond:
                    if self._closed:
                        break
                    stirred, self._stirred = self._stirred, False
                    waiting = any(pending.values()) or delayed
                    if not active and not waiting:
                        if not stirred:
                            self._cond.wait()
                        continue
                if stirred:
                    self._sweep(pending, delayed)
                limits = {group: self.transport.limit(group) for group in pending}
                now = time.monotonic()
                while delayed and delayed[0][0] <= now:
                    job = heapq.heappop(delayed)[2]
                    pending.setdefault(job.group, deque()).appendleft(job)
                started = self._start_some(multi, handles, active, per_group, pending, limits)
                self._watch_active(multi, handles, active, per_group)
                self._hear(active)
                if active:
                    while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                        pass
                    self._drain(multi, handles, active, per_group, delayed, order)
                    if active:
                        multi.select(0.1)
                elif not started:
                    timeout = 0.1
                    if delayed:
                        timeout = min(timeout, max(delayed[0][0] - time.monotonic(), 0.0))
                    with self._cond:
                        if not self._inbox and not self._closed:
                            self._cond.wait(timeout)
        finally:
            for handle, job in list(active.items()):
                multi.remove_handle(handle)
                self._close_file(job)
                self._fail(job, Cancelled("the transport closed"))
            for queue in pending.values():
                for job in queue:
                    self._fail(job, Cancelled("the transport closed"))
            for _, _, job in delayed:
                self._fail(job, Cancelled("the transport closed"))
            for handle in handles + list(active):
                handle.close()
            multi.close()

    def _hear(self, active: dict[Any, _Job]) -> None:
        """Once a second: hosts whose transfers brought bytes since answer (a long transfer is news
        of its host too, so a refused connection beside it is a blip, not an outage)."""
        now = time.monotonic()
        if now - self._heard_at < 1.0:
            return
        self._heard_at = now
        hosts = set()
        for job in active.values():
            if job.received != job.heard:
                job.heard = job.received
                hosts.add(job.host)
        for host in hosts:
            self.transport._answered(host)

    def _sweep(self, pending: dict[str, deque[_Job]], delayed: list[tuple[float, int, _Job]]) -> None:
        """End the queued and retry-waiting jobs whose control was cancelled (their .part stays)."""
        for group, queue in pending.items():
            if any(job.control.cancelled for job in queue):
                for job in queue:
                    if job.control.cancelled:
                        self._fail(job, Cancelled("cancelled"))
                pending[group] = deque(job for job in queue if not job.control.cancelled)
        if any(job.control.cancelled for _, _, job in delayed):
            for _, _, job in delayed:
                if job.control.cancelled:
                    self._fail(job, Cancelled("cancelled"))
            delayed[:] = [entry for entry in delayed if not entry[2].control.cancelled]
            heapq.heapify(delayed)

    def _start_some(
        self,
        multi: Any,
        handles: list[Any],
        active: dict[Any, _Job],
        per_group: dict[str, int],
        pending: dict[str, deque[_Job]],
        limits: dict[str, int],
    ) -> int:
        started = 0
        progress = not self.transport._backlogged()  # else wait for the disk: bytes pile up in memory
        while progress and len(active) < self.connections:
            progress = False
            for group, queue in pending.items():
                if not queue or per_group.get(group, 0) >= limits.get(group, self.connections):
                    continue
                job = queue[0]
                if job.control.cancelled:
                    queue.popleft()
                    self._fail(job, Cancelled("cancelled"))
                    progress = True
                    continue
                if job.control.paused:
                    continue
                queue.popleft()
                progress = True
                handle = handles.pop() if handles else self._new_handle()
                try:
                    begun = self._begin(job, handle)
                except OSError as exc:
                    self._close_file(job)
                    self._fail(job, exc)
                    begun = False
                if not begun:
                    handles.append(handle)
                    continue
                multi.add_handle(handle)
                active[handle] = job
                per_group[group] = per_group.get(group, 0) + 1
                started += 1
                if len(active) >= self.connections:
                    break
        return started

    def _begin(self, job: _Job, handle: Any) -> bool:
        """Open the ``.part`` file and set up ``handle``; False when nothing needs fetching."""
        job.reset()
        size = job.file.size
        try:
            offset = os.stat(job.part).st_size
            had_part = True
        except FileNotFoundError:
            offset = 0
            had_part = False
        if size is not None and offset > size:
            os.unlink(job.part)
            offset = 0
        gather = not had_part and size is not None and size <= GATHER_UP_TO and not job.is_file
        # a gathered file is hashed once, whole, when complete
        job.digest = hashlib.md5(usedforsecurity=False) if job.file.md5 and not gather else None
        if offset and job.digest is not None:
            with open(job.part, "rb") as f:
                while block := f.read(_BLOCK):
                    job.digest.update(block)
        if size is not None and offset == size and offset > 0:  # all there before a crash or fault
            if job.digest is None or job.digest.hexdigest() == (job.file.md5 or "").lower():
                job.report_total(offset)
                if job.durable:
                    _fsync_path(job.part)
                os.replace(job.part, job.target)
                job.future.set_result(job.target)
                return False
            os.unlink(job.part)
            offset = 0
            job.digest = hashlib.md5(usedforsecurity=False)
        down = self.transport._down(job.host) if job.host else None
        if down is not None:  # given up on a moment ago: do not wait on it once per file
            self._fail(job, _unreachable_error(job, down))
            return False
        job.offset = offset
        if gather:
            job.chunks = []
        else:
            job.fh = open(job.part, "r+b" if offset else "wb", buffering=0)  # noqa: SIM115 - closed when done
            if offset:
                job.fh.seek(offset)
        job.report_total(offset)
        handle.setopt(pycurl.URL, job.file.url)
        handle.setopt(pycurl.WRITEFUNCTION, job.write)
        handle.setopt(pycurl.HEADERFUNCTION, job.header)
        headers = [f"{k}: {v}" for k, v in job.file.headers]
        resume = 0
        if offset:
            if job.is_file:
                resume = offset
            else:
                headers.append(f"Range: bytes={offset}-")
        handle.setopt(pycurl.RESUME_FROM_LARGE, resume)
        handle.setopt(pycurl.HTTPHEADER, headers)
        job.attempt += 1
        self.transport.requests += 1
        return True

    def _new_handle(self) -> Any:
        """A handle with the options every download shares (set once, not per file)."""
        t = self.transport
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS | pycurl.PROTO_FILE)
        handle.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.FOLLOWLOCATION, 1)
        handle.setopt(pycurl.MAXREDIRS, 5)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(t.connect_timeout * 1000))
        handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        handle.setopt(pycurl.LOW_SPEED_TIME, max(1, int(t.stall_timeout)))
        handle.setopt(pycurl.BUFFERSIZE, 512 * 1024)
        handle.setopt(pycurl.USERAGENT, f"MEDIator-Desktop/{__version__}")
        handle.setopt(pycurl.CAINFO, certifi.where())
        return handle

    def _watch_active(
        self, multi: Any, handles: list[Any], active: dict[Any, _Job], per_group: dict[str, int]
    ) -> None:
        for handle, job in list(active.items()):
            if job.control.cancelled:
                self._release(multi, handles, active, per_group, handle)
                self._fail(job, Cancelled("cancelled"))  # the .part stays for the next run
            elif job.control.paused != job.paused:
                try:
                    handle.pause(pycurl.PAUSE_ALL if job.control.paused else pycurl.PAUSE_CONT)
                except pycurl.error as exc:
                    # libcurl refuses to (un)pause a transfer that is just ending or not under way
                    # yet; an exception here would end this thread and hang every download. Ask
                    # again next round (a finished transfer leaves ``active`` first).
                    log.debug("pause of %s not taken yet: %s", job.file.url, exc)
                    continue
                job.paused = job.control.paused

    def _release(
        self, multi: Any, handles: list[Any], active: dict[Any, _Job], per_group: dict[str, int], handle: Any
    ) -> _Job:
        job = active.pop(handle)
        multi.remove_handle(handle)
        handles.append(handle)
        per_group[job.group] -= 1
        self._close_file(job)
        return job

    def _drain(
        self,
        multi: Any,
        handles: list[Any],
        active: dict[Any, _Job],
        per_group: dict[str, int],
        delayed: list[tuple[float, int, _Job]],
        order: itertools.count[int],
    ) -> None:
        while True:
            queued, ok, failed = multi.info_read()
            for handle in ok:
                job = self._release(multi, handles, active, per_group, handle)
                self.transport._answered(job.host)
                try:
                    self._finished(job, delayed, order)
                except OSError as exc:  # the staging folder vanished, the disk failed...
                    self._fail(job, exc)
            for handle, code, message in failed:
                job = self._release(multi, handles, active, per_group, handle)
                try:
                    self._faulted(job, code, message, delayed, order)
                except OSError as exc:
                    self._fail(job, exc)
            if not queued:
                break

    def _finished(
        self, job: _Job, delayed: list[tuple[float, int, _Job]], order: itertools.count[int]
    ) -> None:
        status = 200 if job.is_file else job.status
        if status in (200, 206):
            self._complete(job, delayed, order)
            return
        body = job.error_body.decode("utf-8", "replace").strip()[:200]
        if status == 416:  # our range is past the end: the object changed; start over
            _unlink(job.part)
            self._retry(job, f"the server refused to resume {job.what}", delayed, order)
        elif status in _RETRY_STATUS:
            self._retry(job, f"the server answered {status} for {job.what}", delayed, order)
        elif status == 412:  # a pinned ETag (``If-Match``) the file no longer has: never the new bytes
            self._discard(job)
            self._fail(
                job,
                IntegrityError(
                    f"{job.what} changed since the set was resolved (HTTP 412: it no longer matches the "
                    "pinned version); nothing of it was kept: check the set for updates"
                ),
            )
        elif status in (404, 410):
            self._fail(
                job,
                SourceError(
                    f"the archive no longer has {job.what} (HTTP {status}); "
                    "resolve the set again to see what changed"
                ),
            )
        elif status in (401, 403):
            said = _said(job.error_body)
            hint = job.file.refused or "check access or credentials"
            self._fail(
                job,
                SourceError(
                    f"the archive refused {job.what} (HTTP {status}{': ' + said if said else ''}); {hint}"
                ),
            )
        else:
            self._fail(job, SourceError(f"the archive answered {status} for {job.what}: {body!r}"))

    def _faulted(
        self,
        job: _Job,
        code: int,
        message: str,
        delayed: list[tuple[float, int, _Job]],
        order: itertools.count[int],
    ) -> None:
        if job.os_error is not None:
            _unlink(job.part)
            self._fail(job, job.os_error)
        elif job.abort is not None:  # wrong bytes: never keep them
            self.transport._answered(job.host)
            self._discard(job)
            self._retry(job, job.abort, delayed, order, integrity=True)
        elif job.host and not job.received and connection_failure(code, message):
            if self.transport._unanswered(job.host, message):
                self._fail(job, _unreachable_error(job, message))
            else:
                self._retry(job, f"{job.what} failed: {message}", delayed, order, unreachable=message)
        else:
            self.transport._answered(job.host)
            if job.received:  # it moved forward: a long file on a flaky line gets its tries anew
                job.attempt = 0
            self._keep(job)
            self._retry(job, f"{job.what} failed: {message}", delayed, order)

    def _complete(
        self, job: _Job, delayed: list[tuple[float, int, _Job]], order: itertools.count[int]
    ) -> None:
        self._close_file(job)
        if job.os_error is not None:
            _unlink(job.part)
            self._fail(job, job.os_error)
            return
        if job.chunks is not None:
            self._complete_gathered(job, delayed, order)
            return
        try:
            have = os.stat(job.part).st_size
        except FileNotFoundError:
            have = 0
        size = job.file.size
        problem = None
        integrity = False
        if size is not None and have < size:
            problem = f"{job.what} ended after {have} of {size} bytes"  # a cut connection: resume
        elif size is not None and have != size:
            problem = f"{job.what} has {have} bytes, not the {size} the archive announced"
            integrity = True
        elif job.digest is not None and job.file.md5 and job.digest.hexdigest() != job.file.md5.lower():
            problem = f"{job.what} does not match its MD5"
            integrity = True
        if problem is None:
            if job.durable:  # the fsync waits for the disk: not on this thread
                self.transport._sync(job, job.part, functools.partial(_place_part, job, synced=True))
            else:
                _place_part(job)
            return
        if integrity:
            self._discard(job)
        self._retry(job, problem, delayed, order, integrity=integrity)

    def _complete_gathered(
        self, job: _Job, delayed: list[tuple[float, int, _Job]], order: itertools.count[int]
    ) -> None:
        """A file gathered in memory arrived: a finishing thread checks its MD5 and writes it to
        its target at once (``_write_gathered``). A short one is kept in its ``.part`` to resume."""
        chunks = job.chunks
        assert chunks is not None
        size = job.file.size
        assert size is not None
        if job.received < size:  # a cut connection: what came is kept and the retry resumes
            self._keep(job)
            self._retry(job, f"{job.what} ended after {job.received} of {size} bytes", delayed, order)
            return
        job.chunks = None
        if job.received != size:
            self._discard(job)
            problem = f"{job.what} has {job.received} bytes, not the {size} the archive announced"
            self._retry(job, problem, delayed, order, integrity=True)
            return
        self.transport._write(job, size, functools.partial(_write_gathered, job, chunks))

    @staticmethod
    def _keep(job: _Job) -> None:
        """Write the bytes a gathering file received so far to its ``.part`` (a retry resumes them)."""
        if not job.chunks:
            job.chunks = None
            return
        data = b"".join(job.chunks)
        job.chunks = None
        with open(job.part, "wb", buffering=0) as fh:
            view = memoryview(data)
            while view:
                view = view[fh.write(view) :]
        job.report_total(job.offset + len(data))

    def _discard(self, job: _Job) -> None:
        job.chunks = None
        job.report_total(0)
        job.received = job.offset = 0
        _unlink(job.part)

    def _retry(
        self,
        job: _Job,
        problem: str,
        delayed: list[tuple[float, int, _Job]],
        order: itertools.count[int],
        *,
        integrity: bool = False,
        unreachable: str | None = None,
    ) -> None:
        if job.attempt >= self.transport.attempts:
            if integrity:
                error: Exception = IntegrityError(f"{problem}, {job.attempt} times; nothing of it was kept")
            elif unreachable is not None:
                error = _unreachable_error(job, unreachable, tries=job.attempt)
            else:
                error = SourceError(
                    f"{problem}; gave up after {job.attempt} tries, run the download again later"
                )
            self._fail(job, error)
            return
        log.info("retrying %s: %s", job.what, problem)
        wait = self.transport.backoff * 2 ** (job.attempt - 1)
        heapq.heappush(delayed, (time.monotonic() + wait, next(order), job))

    @staticmethod
    def _close_file(job: _Job) -> None:
        if job.fh is not None:
            try:
                job.fh.close()
            except OSError as exc:  # a full disk may surface only on close
                job.os_error = job.os_error or exc
            job.fh = None

    @staticmethod
    def _fail(job: _Job, error: BaseException) -> None:
        if not job.future.done():
            job.future.set_exception(error)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place_part(job: _Job, *, synced: bool = False) -> None:
    """A checked ``.part`` becomes the target (on the disk first when ``durable``, unless
    ``synced`` already)."""
    if job.durable and not synced:
        _fsync_path(job.part)
    os.replace(job.part, job.target)
    job.future.set_result(job.target)


def _write_gathered(job: _Job, chunks: list[bytes]) -> None:
    """On a writing thread: check a gathered file against its MD5 (wrong bytes go back to the loop,
    which fetches it again), then write it to its target; a ``durable`` one goes on to a finishing
    thread for its fsync before its future ends. The target is whole or absent (a partial one is
    removed on a fault), and the engine checks the size of a target it finds before using it."""
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    md5 = job.file.md5
    if md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != md5.lower():
        assert job.loop is not None
        job.loop.give_back(job, f"{job.what} does not match its MD5")
        return
    try:
        with open(job.target, "wb", buffering=0) as fh:
            view = memoryview(data)
            while view:
                view = view[fh.write(view) :]
    except OSError:
        job.target.unlink(missing_ok=True)
        raise
    job.report_total(len(data))
    if job.durable:
        assert job.loop is not None
        job.loop.transport._sync(job, job.target, functools.partial(job.future.set_result, job.target))
    else:
        job.future.set_result(job.target)


def _synced(path: str | Path, then: Callable[[], None]) -> None:
    """fsync ``path``, then ``then``; a file that could not be synced is removed (never used
    unsynced by a later run either)."""
    try:
        _fsync_path(path)
    except OSError:
        _unlink(str(path))
        raise
    then()


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux): every dirty page of one file system to the disk in one call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_SYNCFS = _load_syncfs()


class _GroupSync:
    """One thread that puts durable files on the disk a batch at a time: every file handed over
    while the last batch was syncing goes into the next, synced by one ``syncfs`` of its file
    system (one journal commit for the lot, where an fsync each costs one per file, and stalls
    the creation of the next files meanwhile). Each file's ``then`` runs after its batch synced;
    if ``syncfs`` fails, each file of the batch is fsynced on its own (its error ends its job)."""

    def __init__(self, transport: CurlTransport) -> None:
        self._transport = transport
        self._queue: SimpleQueue[tuple[_Job, str | Path, Callable[[], None]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="transport-sync", daemon=True)
        self._thread.start()

    def submit(self, job: _Job, path: str | Path, then: Callable[[], None]) -> None:
        self._queue.put((job, path, then))

    def shutdown(self) -> None:
        """Sync what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            stop = False
            while not self._queue.empty():
                item = self._queue.get()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._flush(batch)
            if stop:
                break

    def _flush(self, batch: list[tuple[_Job, str | Path, Callable[[], None]]]) -> None:
        finishing = self._transport._finishing
        try:
            synced = self._syncfs({os.path.dirname(path) for _, path, _ in batch})
        except OSError:  # a folder gone: each file's own fsync says which job it ends
            synced = False
        except Exception:  # never end this thread: each file is fsynced instead
            log.warning("syncfs failed; syncing %d files one by one", len(batch), exc_info=True)
            synced = False
        if synced:
            for job, _, then in batch:
                finishing(job, 0, then)
        else:
            for job, path, then in batch:
                finishing(job, 0, functools.partial(_synced, path, then))

    @staticmethod
    def _syncfs(folders: set[str]) -> bool:
        """One ``syncfs`` per file system holding ``folders``; False when one failed."""
        assert _SYNCFS is not None
        one_each = {os.stat(folder).st_dev: folder for folder in folders}  # a folder per file system
        for folder in one_each.values():
            fd = os.open(folder, os.O_RDONLY)
            try:
                if _SYNCFS(fd) != 0:
                    return False
            finally:
                os.close(fd)
        return True


def _unreachable_error(job: _Job, reason: str, *, tries: int = 0) -> ArchiveUnreachable:
    gave_up = f"; gave up after {tries} tries" if tries > 1 else ""
    return ArchiveUnreachable(
        f"cannot reach {job.host} for {job.file.name}: {reason}{gave_up}; check the network, "
        "a proxy or VPN, then run the download again",
        host=job.host,
        reason=reason,
    )
