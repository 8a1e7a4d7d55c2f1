"""The one door of a node: every frontend (Qt, CLI, SDK, local API) goes through a ``Service``.

A service is made of typed parts that a reader can list:

- ``service.sets``: create, update, commit, rename, duplicate, share, follow, history, diff,
  import and export of replica sets (``Sets``);
- ``service.archives``: browse, search and resolve the configured sources (``Archives``);
- ``service.downloads``: start, list, steer and read download jobs (``core.downloads.Downloads``);
- ``service.tracking``: check sets for archive updates, show, accept and decline them
  (``core.tracking.Tracker``);
- ``service.cluster``: members, peers, join codes, join, leave, remove (``core.cluster.Cluster``,
  implemented in ``raft/membership.py``);
- ``service.settings``: read, validate and change the settings (``SettingsPart``);

plus ``service.events``, the typed events of the node (``core.events``), and who the user is.
Changes are signed as the local user and handed to the replicated store; reads come from the local
replica and apply the same visibility rules as the store. The collaborators are private.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import difflib
import hashlib
import logging
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import zstandard

from mediator_desktop.core import exports
from mediator_desktop.core.clinical import Clinical, ClinicalSource, TableEngine
from mediator_desktop.core.cluster import Cluster
from mediator_desktop.core.commands import SeqClock, canonical_json, seal
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.downloads import Downloads
from mediator_desktop.core.errors import MediatorError, NotFound, SourceError, ValidationError
from mediator_desktop.core.events import (
    EventBus,
    SettingsChanged,
    SourceIndexing,
    SourcesChanged,
    VersionCommitted,
)
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.imports import export_document, read_manifest_file
from mediator_desktop.core.integrator import (
    Expanded,
    Matching,
    PinnedArchives,
    expand,
    match,
    patient_depth,
    patient_paths,
)
from mediator_desktop.core.jobs import human_bytes
from mediator_desktop.core.keystore import source_secret, store_source_secret
from mediator_desktop.core.manifest import MAX_CHUNK_BYTES, Leaf, Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.publishing import (
    Citation,
    Creator,
    DoiMetadata,
    Minter,
    MintQueue,
    Reference,
    Related,
    cite,
)
from mediator_desktop.core.replica import (
    MAX_NAME,
    PublishedRecord,
    ReplicaSet,
    Version,
    Visibility,
    new_set_id,
)
from mediator_desktop.core.selection import Selection, SelectionDiff
from mediator_desktop.core.settings import SettingField, Settings, SettingsFile
from mediator_desktop.core.source import (
    BrowseItem,
    BrowsePage,
    DataSource,
    LeafPlan,
    ScanProgress,
    ScanReport,
    SourceKind,
)
from mediator_desktop.core.store import Store, submit_settled, submit_upload, unwrap
from mediator_desktop.core.tracking import Tracker
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.core.tree import TreeCache, TreeSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportResult:
    set_id: str
    version: int
    pointers: int
    missing: tuple[str, ...]  # identifiers no configured archive holds


@dataclass(frozen=True, slots=True)
class Outcome:
    """What creating or changing a set did.

    Attributes:
        version: the version committed; None when nothing changed (or a set made without data).
        leaves, size: what the set's head selects now.
        warnings: what the user should hear about: a filter that matches nothing, a set that
            selects no data at all. Every frontend shows them.
    """

    set_id: str
    version: int | None
    leaves: int
    size: int
    warnings: tuple[str, ...] = ()


#: Builds one source from its settings entry (``{"kind", "id", "options"}``), its secret and the
#: folder it may keep an index in (``sources.registry.build_one``, given by the node).
SourceBuilder = Callable[[Mapping[str, Any], "str | None", Path], DataSource]

#: Scopes of ``Sets.list``, as the sidebar shows them.
SCOPES = ("all", "mine", "shared", "cluster", "public", "published", "following")
#: A selection larger than this (as canonical JSON) is uploaded in chunks before its version.
INLINE_SELECTION_BYTES = 40_000


class _Signer:
    """Signs commands as the local user and submits them to the store."""

    def __init__(self, store: Store, identity: Identity, timeout: float) -> None:
        self.store = store
        self.identity = identity
        self.timeout = timeout
        self._seq = SeqClock()

    def seal(self, op: str, payload: bytes = b"", **args: Any) -> bytes:
        seq = self._seq.next(self.store.state.newest_seq(self.identity.key_id))
        return seal(self.identity, op, args, seq, time.time(), payload)

    def do(self, op: str, payload: bytes = b"", **args: Any) -> Any:
        """Sign and submit one command; its value, or its typed error. When the outcome is unknown,
        the same envelope is sent again once the cluster answers (``submit_settled``), so the
        caller hears what happened; ``OutcomeUnknown`` only when that is impossible."""
        return unwrap(submit_settled(self.store, [self.seal(op, payload, **args)], self.timeout)[0])


class Archives:
    """The archives (sources) this node browses and resolves selections against.

    Archives are added and removed live (``add``, ``remove``, or a change of the ``sources``
    setting); sources that index a folder index it in the background on first use and whenever it
    changes, reported as ``SourceIndexing`` events.
    """

    def __init__(
        self,
        sources: dict[str, DataSource],
        events: EventBus,
        *,
        configs: Iterable[Mapping[str, Any]] = (),
        builder: SourceBuilder | None = None,
        kinds: Callable[[], Mapping[str, SourceKind]] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        # The same dict the transfer engine reads: added archives are downloadable at once.
        self._sources = sources
        self._events = events
        self._builder = builder
        self._kinds = kinds
        self._data_dir = data_dir
        self._configs: dict[str, dict[str, Any]] = {}
        for config in configs:
            plain = _plain_config(config)
            self._configs[plain["id"]] = plain
        self._lock = threading.RLock()
        self._builtin: set[str] = set()  # archives the node brings (clinical tables), not settings
        #: Set by ``SettingsPart``: how ``add`` and ``remove`` change the saved ``sources``.
        self.change_settings: Callable[..., Any] | None = None
        if builder is not None:  # a node's archives: this part owns them (watches and closes them)
            for source in list(sources.values()):
                self._watch(source)

    def ids(self) -> list[str]:
        """The sources' ids: the configured ones in configuration order, then the built-in ones."""
        return list(self._sources)

    def add_builtin(self, source: DataSource) -> None:
        """An archive every node has, whatever its settings say (the cluster's clinical tables):
        never saved, never removed, its id reserved."""
        with self._lock:
            self._builtin.add(source.source_id)
            self._sources[source.source_id] = source

    def _check_free(self, source_id: str) -> None:
        if source_id in self._builtin:
            raise ValidationError(
                f"{source_id!r} names the archive of the cluster's {source_id} tables on every node; "
                "choose another id"
            )

    def all(self) -> list[DataSource]:
        return list(self._sources.values())

    def get(self, source_id: str) -> DataSource:
        source = self._sources.get(source_id)
        if source is None:
            known = ", ".join(sorted(self._sources)) or "none"
            raise NotFound(f"no source {source_id!r} is configured here (configured: {known})")
        return source

    def hierarchies(self) -> dict[str, Hierarchy]:
        """Levels of every source, as diffs and summaries name them."""
        return {sid: s.hierarchy for sid, s in self._sources.items()}

    def title(self, source_id: str) -> str:
        """The source's title, or its id when it is not configured (any more)."""
        source = self._sources.get(source_id)
        return source.title if source is not None else source_id

    def browse(
        self,
        source_id: str,
        path: tuple[str, ...] = (),
        *,
        filters: Filters = (),
        offset: int = 0,
        limit: int = 200,
    ) -> BrowsePage:
        """Children of ``path`` in an archive, one page at a time (see ``DataSource.browse``)."""
        source = self.get(source_id)
        if len(path) >= len(source.hierarchy.levels):
            raise ValidationError(
                f"{'/'.join(path)} is a {source.hierarchy.leaf_level} of {source_id}: it has no children"
            )
        return source.browse(path, filters=filters, offset=offset, limit=limit)

    def search(
        self,
        source_id: str,
        text: str = "",
        path: tuple[str, ...] = (),
        *,
        filters: Filters = (),
        limit: int = 100,
        scan: int = 20_000,
    ) -> list[BrowseItem]:
        """Children of ``path`` whose key or label contains ``text`` (any case), at most ``limit``.

        Looks through at most ``scan`` children: narrow a large level with ``path`` or ``filters``.
        """
        needle = text.casefold()
        found: list[BrowseItem] = []
        offset = 0
        while len(found) < limit and offset < scan:
            page = self.browse(
                source_id, path, filters=filters, offset=offset, limit=min(1000, scan - offset)
            )
            found.extend(
                item
                for item in page.items
                if needle in item.key.casefold() or needle in item.label.casefold()
            )
            if not page.more or not page.items:
                break
            offset += len(page.items)
        return found[:limit]

    def filter_values(self, source_id: str, name: str, path: tuple[str, ...] = ()) -> list[str]:
        """The values a filter ``name`` can take below ``path``."""
        source = self.get(source_id)
        if name not in source.filterable:
            raise ValidationError(
                f"{source_id} cannot filter on {name!r}; "
                f"it can on {', '.join(source.filterable) or 'nothing'}"
            )
        return source.filter_values(name, path)

    def resolve(self, selection: Selection) -> Manifest:
        """The leaves ``selection`` selects today, from every source it names, with fingerprints."""
        return self.resolve_joined(selection)[0]

    def match(
        self,
        origin: Sequence[Pointer] = (),
        patients: Sequence[str] = (),
        into: Sequence[Pointer] = (),
    ) -> Matching:
        """What the other archives hold for a cohort: the patients ``origin`` selects (pointers
        into one archive or clinical table: a collection, some patients, a filter) and/or the
        ``patients`` named, searched in ``into`` (default: every other archive with a patient
        level). Per archive: the patients found and the kinds of data they have there; an
        archive that fails says why in its ``error``. ``Matching.cohort`` makes the set rules."""
        origin = [self.check_pointer(p) for p in origin]
        if len({p.source_id for p in origin}) > 1:
            raise ValidationError("a cohort's patients come from one archive (or clinical table) at a time")
        sources = PinnedArchives(self.get)  # one version of each table for the cohort and the search
        wanted = set(patients)
        for pointer in origin:
            wanted.update(patient_paths(sources(pointer.source_id), pointer))
        if not wanted:
            raise ValidationError(
                "no patients to match: select a collection, some patients or a filtered cohort first"
            )
        origins = {p.source_id for p in origin}
        scopes = [self.check_pointer(p) for p in into] or [
            Pointer(s.source_id)
            for s in self.all()
            if s.source_id not in origins
            and patient_depth(s) is not None
            and s.source_id not in self._builtin
        ]
        return match(origin, wanted, [(sources(p.source_id), p) for p in scopes])

    def expand(self, selection: Selection) -> Expanded:
        """``selection`` with its clinical rules joined to the archives they name (``core.integrator``).

        Resolve the result with the archives it read (``Expanded.source``, ``Expanded.resolve``):
        a clinical table's rows then come from the version its cohorts came from.
        """
        return expand(selection, self.get)

    def resolve_joined(self, selection: Selection) -> tuple[Manifest, Expanded]:
        """``resolve``, with the joins it made (``Expanded.notes`` says what they left out). One
        pass: each table is read at one version, for the cohorts and for the rows."""
        expanded = self.expand(selection)
        return expanded.resolve(), expanded

    def check_pointer(self, pointer: Pointer) -> Pointer:
        """``pointer`` if its source is configured here and the path fits its levels."""
        return self.get(pointer.source_id).hierarchy.validate(pointer)

    def locate(self, kind: str, identifiers: list[str]) -> tuple[list[Pointer], list[str]]:
        """Pointers to ``identifiers`` (series UIDs, file UUIDs...) in the archives that can look
        them up, and the identifiers none of them holds."""
        pointers: list[Pointer] = []
        missing = list(identifiers)
        for source in self._sources.values():
            locate = getattr(source, "locate", None)
            if locate is None or not missing:
                continue
            found, missing = locate(kind, missing)
            pointers.extend(found)
        return pointers, missing

    # -- adding and removing archives ----------------------------------------------------------
    def kinds(self) -> list[SourceKind]:
        """The kinds of archive that can be added (installed source modules), by name."""
        if self._kinds is None:
            return []
        return [kind for _, kind in sorted(self._kinds().items())]

    def kind(self, name: str) -> SourceKind:
        kinds = {k.name: k for k in self.kinds()}
        if name not in kinds:
            raise ValidationError(
                f"unknown kind of archive {name!r}; installed kinds: {', '.join(sorted(kinds)) or 'none'}"
            )
        return kinds[name]

    def configs(self) -> list[dict[str, Any]]:
        """The archives as the settings keep them: ``{"kind", "id", "options"}`` each."""
        with self._lock:
            return [dict(c) for c in self._configs.values()]

    def indexes(self, source_id: str) -> bool:
        """True when the source indexes what it holds (a local folder): ``rescan`` applies."""
        return _scanning(self.get(source_id))

    def add(
        self,
        kind: str,
        options: Mapping[str, Any] | None = None,
        *,
        source_id: str | None = None,
        secret: str | None = None,
    ) -> str:
        """Add an archive, live: checked, built, saved in the settings; its secret (password,
        token) goes to the OS keyring. Returns its id (default: the kind, numbered when taken).

        Raises:
            ValidationError: an unknown kind or option, a missing one, an id in use.
            SourceError: the archive cannot be set up (a folder that is not one...).
        """
        spec = self.kind(kind)
        options = {k: v for k, v in (options or {}).items() if v not in (None, "")}
        spec.check(options)
        with self._lock:
            if source_id is None:
                source_id = kind
                n = 2
                while source_id in self._configs:
                    source_id, n = f"{kind}-{n}", n + 1
            _check_source_id(source_id)
            self._check_free(source_id)
            if source_id in self._configs:
                raise ValidationError(
                    f"an archive called {source_id!r} exists already; choose another id or remove it first"
                )
            if secret and self._data_dir is not None:
                store_source_secret(self._data_dir, source_id, secret)
            configs = [*self._configs.values(), {"kind": kind, "id": source_id, "options": options}]
            self._save(configs)
        return source_id

    def remove(self, source_id: str) -> None:
        """Remove an archive, live. Sets keep their pointers to it; they resolve and download again
        once an archive of that id is added back."""
        with self._lock:
            if source_id not in self._configs:
                self.get(source_id)  # NotFound, naming the configured ones
                raise ValidationError(f"archive {source_id!r} is not in the settings: it cannot be removed")
            self._save([c for sid, c in self._configs.items() if sid != source_id])

    def test(
        self,
        source_id: str | None = None,
        *,
        kind: str | None = None,
        options: Mapping[str, Any] | None = None,
        secret: str | None = None,
    ) -> str:
        """Check an archive answers: a configured one (``source_id``), or one described by
        ``kind``, ``options`` and ``secret`` before it is added. Returns a one-line summary
        ("reachable: 3 collections"); raises a typed error saying what is wrong. Blocks (network).
        """
        if kind is None:
            if source_id is None:
                raise ValidationError("say which archive to test: its id, or a kind with options")
            return _check_source(self.get(source_id))
        if self._builder is None:
            raise ValidationError("this node cannot set up archives")
        spec = self.kind(kind)
        options = {k: v for k, v in (options or {}).items() if v not in (None, "")}
        spec.check(options)
        config = {"kind": kind, "id": source_id or kind, "options": options}
        with tempfile.TemporaryDirectory(prefix="mediator-test-") as scratch:
            source = self._build(config, secret, Path(scratch))
            try:
                return _check_source(source)
            finally:
                _close(source)

    def set_secret(self, source_id: str, secret: str) -> None:
        """Keep an archive's password or token in the OS keyring and use it from now on."""
        if not secret:
            raise ValidationError("the secret is empty")
        if self._data_dir is None:
            raise ValidationError("this service has no data folder to keep secrets for")
        with self._lock:
            if source_id not in self._configs:
                self.get(source_id)
                raise ValidationError(f"archive {source_id!r} is not in the settings")
            store_source_secret(self._data_dir, source_id, secret)
            install = self.prepare(self._configs.values(), rebuild={source_id})
            install()

    def rescan(self, source_id: str) -> ScanReport:
        """Index a folder source again now (only new and changed files are read). Blocks."""
        source = self.get(source_id)
        if not _scanning(source):
            raise ValidationError(f"{source.title} is read live from the archive: there is nothing to rescan")
        report: ScanReport = source.rescan()  # type: ignore[attr-defined]
        return report

    # -- applying the sources setting ----------------------------------------------------------
    def prepare(
        self, configs: Iterable[Mapping[str, Any]], *, rebuild: Iterable[str] = ()
    ) -> Callable[[], None]:
        """Build what ``configs`` adds or changes (raising, with nothing changed, when one cannot be
        built); returns the function that puts them in place and retires the removed ones."""
        wanted = [_plain_config(c) for c in configs]
        ids = [c["id"] for c in wanted]
        if len(set(ids)) != len(ids):
            raise ValidationError(f"archive ids must be unique; got {', '.join(ids)}")
        for source_id in ids:
            self._check_free(source_id)
        with self._lock:
            current = dict(self._configs)
        built: dict[str, DataSource] = {}
        rebuild = set(rebuild)
        try:
            for config in wanted:
                if (
                    current.get(config["id"]) != config
                    or config["id"] not in self._sources
                    or config["id"] in rebuild
                ):
                    if self._builder is None:
                        raise ValidationError("this node cannot set up archives")
                    secret = source_secret(self._data_dir, config["id"]) if self._data_dir else None
                    built[config["id"]] = self._build(config, secret, self._data_dir or Path.cwd())
        except BaseException:
            for source in built.values():
                _close(source)
            raise

        def install() -> None:
            with self._lock:
                old = dict(self._sources)
                fresh = {c["id"]: built.get(c["id"]) or old[c["id"]] for c in wanted}
                fresh.update({sid: old[sid] for sid in old if sid in self._builtin})  # listed last
                self._sources.clear()
                self._sources.update(fresh)
                self._configs = {c["id"]: c for c in wanted}
            retired = [s for sid, s in old.items() if fresh.get(sid) is not s]
            for source in retired:
                _close(source)
            for source in built.values():
                self._watch(source)
            added = tuple(sid for sid in built if sid not in old)
            removed = tuple(sid for sid in old if sid not in fresh)
            if added or removed or built:
                log.info("archives now: %s", ", ".join(fresh) or "none")
                self._events.emit(SourcesChanged(added, removed))

        return install

    def _save(self, configs: list[dict[str, Any]]) -> None:
        if self.change_settings is None:
            raise ValidationError("this service has no settings to keep archives in")
        self.change_settings(sources=tuple(configs))

    def _build(self, config: Mapping[str, Any], secret: str | None, data_dir: Path) -> DataSource:
        assert self._builder is not None
        try:
            return self._builder(config, secret, data_dir)
        except MediatorError:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SourceError(f"archive {config.get('id')!r} cannot be set up: {exc}") from exc

    def _watch(self, source: DataSource) -> None:
        if not _scanning(source):
            return
        source_id = source.source_id

        def progress(p: ScanProgress) -> None:
            report = p.report
            summary = report.summary() if report is not None else ""
            changed = report is not None and bool(report.read or report.removed)
            self._events.emit(
                SourceIndexing(source_id, p.done, p.total, p.finished, summary, p.error, changed)
            )

        source.watch(progress)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop background indexing and close the sources (the node stops). Sources handed to a
        service without a builder belong to whoever made them."""
        if self._builder is None:
            return
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            _close(source)

    # -- explaining an empty pointer -----------------------------------------------------------
    def explain_empty(self, pointer: Pointer) -> str:
        """Why ``pointer`` selects nothing. Raises ``NotFound`` naming the closest existing keys
        when its path does not exist; returns a warning when its filters match nothing there."""
        source = self.get(pointer.source_id)
        levels = source.hierarchy.levels
        most = 50_000
        for depth, key in enumerate(pointer.path):
            parent = pointer.path[:depth]
            # Every key there (search for "" matches all); a level too large to list is not judged.
            keys = [i.key for i in self.search(pointer.source_id, "", parent, limit=most + 1, scan=most + 1)]
            if key in keys or len(keys) > most:
                continue
            where = "/".join((pointer.source_id, *parent))
            folded = {k.casefold(): k for k in keys}
            close = [folded[key.casefold()]] if key.casefold() in folded else []
            close += [k for k in difflib.get_close_matches(key, keys, n=3, cutoff=0.6) if k not in close]
            hint = (
                f"did you mean {' or '.join(repr(k) for k in close[:3])}?"
                if close
                else f"see `mediator sources browse {' '.join((pointer.source_id, *parent))}`"
            )
            raise NotFound(f"no {levels[depth]} {key!r} in {where}; {hint}")
        leaf = source.hierarchy.leaf_level
        for name, values in pointer.filters:
            if name not in source.filterable:
                continue
            there = source.filter_values(name, pointer.path)
            if not set(values) & set(there):
                shown = ", ".join(there[:30]) + (" ..." if len(there) > 30 else "")
                return (
                    f"{pointer}: no {leaf} there has {name}={','.join(values)}; "
                    f"values there: {shown or 'none'}"
                )
        return f"{pointer} selects no {leaf} (yet)"


class _NoTables:
    """The table engine of a service without one: every table file is refused, saying why."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ValidationError("this service reads no clinical tables (it was started without a table engine)")

    preview = read = load = _refuse


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    kind = config.get("kind")
    source_id = config.get("id") or kind
    if not isinstance(kind, str) or not isinstance(source_id, str):
        raise ValidationError(f"an archive needs a kind and an id; got {dict(config)!r}")
    return {"kind": kind, "id": source_id, "options": dict(config.get("options") or {})}


def _check_source_id(source_id: str) -> None:
    if not source_id or len(source_id) > 64 or not all(c.isalnum() or c in "-_." for c in source_id):
        raise ValidationError(
            f"an archive id is 1 to 64 letters, digits, '-', '_' or '.' (it starts pointers: "
            f"ID/collection/...); {source_id!r} is not"
        )


def _scanning(source: DataSource) -> bool:
    return callable(getattr(source, "watch", None)) and callable(getattr(source, "rescan", None))


def _close(source: DataSource) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # a source that fails to close must not stop the others
            log.exception("closing archive %s failed", getattr(source, "source_id", "?"))


def _check_source(source: DataSource) -> str:
    """A one-line summary of an archive that answered, or a typed error."""
    check = getattr(source, "check", None)
    try:
        if callable(check):
            return str(check())
        page = source.browse((), limit=1)
    except MediatorError:
        raise
    except (OSError, ValueError) as exc:
        raise SourceError(f"{source.title}: {exc}") from exc
    level = source.hierarchy.levels[0]
    return f"reachable: {page.total:,} {level}{'' if page.total == 1 else 's'}"


def check_set_name(name: str) -> str:
    """``name`` if it can name a set; else a ``ValidationError`` that says why, in one line."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a set needs a name: it is empty")
    if len(name) > MAX_NAME:
        raise ValidationError(f"a set name has at most {MAX_NAME} characters; this one has {len(name)}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise ValidationError("a set name cannot hold control characters (tabs, line breaks...)")
    return name


class Sets:
    """Replica sets as one user of one node sees and changes them. Thread-safe."""

    def __init__(
        self,
        signer: _Signer,
        archives: Archives,
        events: EventBus,
        tree_cache: TreeCache | None = None,
    ) -> None:
        self._signer = signer
        self._store = signer.store
        self._archives = archives
        self._tree_cache = tree_cache
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()
        # Versions committed anywhere get their tree summary here, in the background, so a set of
        # any size draws at once (``core.tree.TreeCache``).
        self._summaries: ThreadPoolExecutor | None = None
        if tree_cache is not None:
            self._summaries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tree-summaries")
            events.subscribe(self._summarize_later, VersionCommitted)

    @property
    def _me(self) -> str:
        return self._signer.identity.key_id

    # -- writes --------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        description: str = "",
        visibility: Visibility = Visibility.PRIVATE,
        *,
        add: Iterable[Pointer] = (),
        message: str = "created",
    ) -> str:
        """A new set (with a first version holding ``add``, if any); returns its id."""
        return self.create_from(name, description, visibility, add=add, message=message).set_id

    def create_from(
        self,
        name: str,
        description: str = "",
        visibility: Visibility = Visibility.PRIVATE,
        *,
        add: Iterable[Pointer] = (),
        message: str = "created",
        strict: bool = False,
    ) -> Outcome:
        """A new set, with a first version holding ``add`` if any, and what to tell the user.

        Raises before anything is created: ``NotFound`` for a pointer whose path does not exist
        (naming the closest keys), ``ValidationError`` for a bad or duplicate name and, with
        ``strict``, for a pointer that selects nothing.
        """
        self._check_new_name(name, self._me)
        pointers = [self._archives.check_pointer(p) for p in add]
        selection = Selection()
        for pointer in pointers:
            selection = selection.add(pointer)
        manifest, expanded = self._archives.resolve_joined(selection) if pointers else (None, None)
        warnings = self._warnings(pointers, manifest, strict) if manifest is not None else []
        if manifest is not None and expanded is not None:
            warnings.extend(expanded.notes(manifest))
        set_id = new_set_id()
        self._signer.do(
            "create_set", set_id=set_id, name=name, description=description, visibility=visibility.value
        )
        if manifest is None:
            return Outcome(set_id, None, 0, 0, ())
        version = self.commit(set_id, selection, manifest, message, expected_head=None)
        return Outcome(set_id, version, len(manifest), manifest.total_size, tuple(warnings))

    def update(
        self,
        set_id: str,
        add: Iterable[Pointer] = (),
        remove: Iterable[Pointer] = (),
        message: str = "",
        *,
        expected_head: int | Literal["head"] | None = "head",
    ) -> int | None:
        """Add and remove pointers (at any granularity), resolve, commit; returns the new version.

        Removing part of something added coarser becomes an exclusion. Returns None when the
        selection and what it resolves to are both unchanged (nothing is committed).
        """
        return self.change(set_id, add, remove, message, expected_head=expected_head).version

    def change(
        self,
        set_id: str,
        add: Iterable[Pointer] = (),
        remove: Iterable[Pointer] = (),
        message: str = "",
        *,
        expected_head: int | Literal["head"] | None = "head",
        strict: bool = False,
    ) -> Outcome:
        """``update``, with what the user should hear: added pointers that select nothing (a
        ``NotFound`` for a path that does not exist, before anything is committed; a warning, or
        with ``strict`` a ``ValidationError``, for filters that match nothing) and a set that now
        selects no data at all."""
        rs = self.get(set_id)
        head = rs.head if expected_head == "head" else expected_head
        base = self.version(set_id, head) if head is not None else None
        before = base.selection if base is not None else Selection()
        added = [self._archives.check_pointer(p) for p in add]
        selection = before
        for pointer in added:
            selection = selection.add(pointer)
        for pointer in remove:
            selection = selection.remove(self._archives.check_pointer(pointer))
        manifest, expanded = self._archives.resolve_joined(selection)
        warnings = self._warnings(added, manifest, strict)
        warnings.extend(expanded.notes(manifest))
        if base is not None and selection == before and manifest.id == base.manifest_id:
            return Outcome(set_id, None, len(manifest), manifest.total_size, tuple(warnings))
        version = self.commit(set_id, selection, manifest, message, expected_head=head)
        return Outcome(set_id, version, len(manifest), manifest.total_size, tuple(warnings))

    def _warnings(self, added: list[Pointer], manifest: Manifest, strict: bool) -> list[str]:
        warnings: list[str] = []
        for pointer in added:
            if next(manifest.under(pointer.source_id, pointer.path), None) is None:
                warnings.append(self._archives.explain_empty(pointer))  # raises for a missing path
        if not len(manifest):
            warnings.append(
                "the set selects no data (0 leaves): a download would fetch nothing; "
                "check the pointers with `mediator sources browse`"
            )
        if strict and warnings:
            raise ValidationError(f"{warnings[0]} (and nothing was changed, as --strict asks)")
        return warnings

    def _free_name(self, base: str) -> str:
        """``base``, or ``base 2``, ``base 3``... : the first name none of your sets has."""
        base = base[: MAX_NAME - 6]
        mine = {rs.name.casefold() for rs in self.list("mine")}
        name, n = base, 2
        while name.casefold() in mine:
            name, n = f"{base} {n}", n + 1
        return name

    def _check_new_name(self, name: str, owner: str, renaming: str | None = None) -> None:
        check_set_name(name)
        for rs in list(self._store.state.sets.values()):
            if rs.owner == owner and rs.id != renaming and rs.name.casefold() == name.casefold():
                whose = "you already have" if owner == self._me else "its owner already has"
                raise ValidationError(
                    f"{whose} a set named {rs.name!r} ({rs.id}); choose another name or rename that one"
                )

    def commit_selection(
        self,
        set_id: str,
        selection: Selection,
        message: str = "",
        *,
        expected_head: int | Literal["head"] | None = "head",
    ) -> int:
        """Resolve ``selection`` (a draft's, say) against the archives and commit it as a version."""
        for rule in selection.rules:
            self._archives.check_pointer(rule.pointer)
        manifest = self._archives.resolve(selection)
        return self.commit(set_id, selection, manifest, message, expected_head=expected_head)

    def commit(
        self,
        set_id: str,
        selection: Selection,
        manifest: Manifest | None = None,
        message: str = "",
        *,
        expected_head: int | Literal["head"] | None = "head",
    ) -> int:
        """Commit a new version with an already resolved manifest; returns its number.

        Args:
            expected_head: the version this change builds on (default: the head as this node sees
                it). If someone committed meanwhile, ``ConflictError`` carries the current head.
        """
        manifest = manifest if manifest is not None else ManifestBuilder().build()
        manifest_id = self.upload_manifest(manifest)
        head = self.get(set_id).head if expected_head == "head" else expected_head
        if self._tree_cache is not None:
            self._tree_cache.ensure(manifest)
        value = self._signer.do(
            "commit_version",
            set_id=set_id,
            expected_head=head,
            manifest_id=manifest_id,
            message=message,
            **self._selection_args(selection),
        )
        return int(value["version"])

    def _selection_args(self, selection: Selection) -> dict[str, Any]:
        """How ``commit_version`` names a selection: in the command when it fits (nearly always),
        else by the id of the chunks uploaded here first (a manifest file of thousands of series)."""
        data = canonical_json(selection.to_json())
        if len(data) <= INLINE_SELECTION_BYTES:
            return {"selection": selection.to_json()}
        selection_id = hashlib.sha256(data).hexdigest()
        packed = zstandard.ZstdCompressor(level=9).compress(data)
        chunks = [packed[i : i + MAX_CHUNK_BYTES] for i in range(0, len(packed), MAX_CHUNK_BYTES)]
        seal = self._signer.seal

        def commands() -> list[bytes]:
            return [
                seal("put_selection_chunk", chunk, selection_id=selection_id, index=i, total=len(chunks))
                for i, chunk in enumerate(chunks)
            ]

        submit_upload(self._store, commands, self._signer.timeout + len(chunks) * 0.05)
        return {"selection_id": selection_id}

    def upload_manifest(self, manifest: Manifest) -> str:
        """Put a manifest in the store (a no-op when it is there already); returns its id."""
        if manifest.id in self._store.state.manifests:
            return manifest.id
        chunks = manifest.chunks()
        seal = self._signer.seal

        def commands() -> list[bytes]:  # sealed anew for a restart (``submit_upload``)
            return [
                *(
                    seal("put_manifest_chunk", chunk, manifest_id=manifest.id, index=i, total=len(chunks))
                    for i, chunk in enumerate(chunks)
                ),
                seal("commit_manifest", manifest_id=manifest.id),
            ]

        submit_upload(self._store, commands, self._signer.timeout + (len(chunks) + 1) * 0.05)
        self._remember(manifest)
        return manifest.id

    def rename(self, set_id: str, name: str, description: str | None = None) -> None:
        """Give a set a new name (and description); owner and editors may."""
        self._check_new_name(name, self.get(set_id).owner, renaming=set_id)
        args: dict[str, Any] = {"set_id": set_id, "name": name}
        if description is not None:
            args["description"] = description
        self._signer.do("rename_set", **args)

    def delete(self, set_id: str) -> None:
        self._signer.do("delete_set", set_id=set_id)

    def duplicate(self, set_id: str, version: int | None = None, name: str = "") -> str:
        """Fork a version (default: the head) into a new set of yours; returns its id."""
        if not name.strip():  # the source's name, marked as a fork (numbered when you have it)
            name = self._free_name(f"{self.get(set_id).name} (fork)")
        self._check_new_name(name, self._me)
        new_id = new_set_id()
        self._signer.do("duplicate_set", source_id=set_id, version=version, set_id=new_id, name=name)
        return new_id

    def set_visibility(self, set_id: str, visibility: Visibility) -> None:
        self._signer.do("set_visibility", set_id=set_id, visibility=visibility.value)

    def grant_editor(self, set_id: str, key_id: str) -> None:
        self._signer.do("grant_editor", set_id=set_id, key_id=key_id)

    def revoke_editor(self, set_id: str, key_id: str) -> None:
        self._signer.do("revoke_editor", set_id=set_id, key_id=key_id)

    def follow(self, set_id: str) -> None:
        self._signer.do("follow", set_id=set_id)

    def unfollow(self, set_id: str) -> None:
        self._signer.do("unfollow", set_id=set_id)

    def ensure_following(self, set_id: str) -> None:
        """Follow the set unless you do (a download does it); never raises."""
        rs = self.find(set_id)
        if rs is not None and self._me not in rs.followers:
            try:
                self.follow(set_id)
            except MediatorError as exc:
                log.info("could not follow %s: %s", rs.name, exc)

    # -- manifest files ------------------------------------------------------------------------
    def import_file(self, path: Path, visibility: Visibility = Visibility.PRIVATE) -> ImportResult:
        """A new set from a manifest file (TCIA .tcia, IDC .s5cmd, GDC TSV, or a set export).

        Series and files are found in the configured archives that can look them up; what none
        of them holds is reported, never silently dropped. Raises ``NotFound`` when nothing is
        found, ``ValidationError`` for a malformed file.
        """
        imported = read_manifest_file(path)
        missing: list[str] = []
        if imported.selection is not None:
            selection = imported.selection
        else:
            pointers, missing = self._archives.locate(imported.identifier_kind, list(imported.identifiers))
            if not pointers:
                kinds = ", ".join(self._archives.ids()) or "none"
                raise NotFound(
                    f"none of the {len(imported.identifiers):,} items of {path.name} is in the archives "
                    f"configured here ({kinds}); add the archive they come from in Settings"
                )
            selection = Selection.of(*pointers)
        # A file imported twice (or named like a set of yours) becomes "name 2".
        set_id = self.create(self._free_name(imported.name), imported.description, visibility)
        message = f"imported from {path.name}" + (f" ({len(missing):,} not found)" if missing else "")
        try:
            version = self.commit_selection(set_id, selection, message)
        except BaseException:
            with contextlib.suppress(MediatorError):  # no empty set left behind
                self.delete(set_id)
            raise
        return ImportResult(set_id, version, len(selection), tuple(missing))

    def export_manifest(self, set_id: str, version: int | None = None, fmt: str = "gdc") -> str:
        """A set version's leaves as the manifest file an archive's own tool reads (``gdc``: the
        TSV ``gdc-client download -m`` takes), from the archives that write that format
        (``manifest_format`` and ``manifest_file(leaves)``). ``ValidationError`` when the version
        holds nothing of that format."""
        v = self.version(set_id, version)
        manifest = self.manifest(v.manifest_id)
        header: str | None = None
        lines: list[str] = []
        for source_id in manifest.sources:
            try:
                source = self._archives.get(source_id)
            except NotFound:
                continue
            if getattr(source, "manifest_format", None) != fmt:
                continue
            text: str = source.manifest_file(manifest.under(source_id))  # type: ignore[attr-defined]
            first, *rest = text.splitlines()
            header = header or first
            lines.extend(rest)
        if header is None:
            writers = [
                s.source_id for s in self._archives.all() if getattr(s, "manifest_format", None) == fmt
            ]
            raise ValidationError(
                f"version {v.number} of {self.get(set_id).name!r} holds nothing a {fmt} manifest lists"
                + (f" (archives that write one here: {', '.join(writers)})" if writers else "")
            )
        return "\n".join([header, *lines]) + "\n"

    def export_file(
        self,
        set_id: str,
        version: int | None,
        fmt: str,
        path: Path,
        metadata: DoiMetadata | None = None,
        *,
        files: bool = False,
    ) -> Path:
        """Write a set version as ``fmt`` (``core.exports.FORMATS``) to ``path``, atomically: a
        temporary name beside it, renamed when complete. ``path`` may be a folder: the export is
        then named after the set (``NAME_v3.crate``). Returns the path written.

        ``files`` (``bdbag`` only; needs the archives online): each leaf's download plan is asked
        for, and a leaf whose files all have an MD5 and a plain http(s) URL is listed file by file
        in ``fetch.txt`` and ``manifest-md5.txt``, so ``bdbag --resolve-fetch all`` fetches and
        verifies it; the rest stay pointers. Without it an export asks no archive anything.

        Raises:
            ValidationError: an unknown format, ``files`` with another format than ``bdbag``, or a
                version holding nothing the format lists.
            NotFound: no such set or version, or one you may not read.
            SourceError: with ``files``, an archive could not plan a leaf (``ArchiveUnreachable``
                when it did not answer); nothing is written.
        """
        if fmt not in exports.FORMATS:
            raise ValidationError(f"unknown export format {fmt!r}; one of {', '.join(exports.FORMATS)}")
        if files and fmt != "bdbag":
            raise ValidationError(
                f"only a bdbag export lists the files themselves; {fmt} lists leaves (drop --files)"
            )
        export = self.export_of(set_id, version, metadata, files=files)
        # A folder that is no earlier crate or bag is where the export goes, named after the set:
        # never the export itself (it would replace the folder and everything in it).
        in_folder = path.is_dir() and (fmt not in exports.FOLDERS or not exports.is_export_folder(path))
        target = path / exports.default_name(export, fmt) if in_folder else path
        if fmt == "gdc":  # written by the archives that hold GDC files
            text = self.export_manifest(set_id, export.version, "gdc")
            with exports.atomic_file(target) as out:
                out.write(text)
            return target
        return exports.write(export, fmt, target)

    def export_of(
        self,
        set_id: str,
        version: int | None = None,
        metadata: DoiMetadata | None = None,
        *,
        files: bool = False,
    ) -> exports.SetExport:
        """What the exporters write of a set version: selection, manifest, each leaf's URL (from
        its archive's offline ``leaf_urls``, else a MEDIator pointer) and its publication. With
        ``files``, also each leaf's download plan from its archive (asked when a bag is written;
        None for a leaf of an archive not configured here), which only the bag uses."""
        rs = self.get(set_id)
        v = self.version(set_id, version)
        manifest = self.manifest(v.manifest_id)
        archives = self._archives
        sources = manifest.sources

        def located() -> Iterable[exports.Located]:
            for source_id in sources:
                try:
                    leaf_urls = getattr(archives.get(source_id), "leaf_urls", None)
                except NotFound:
                    leaf_urls = None
                leaves = exports.leaves_of(manifest, source_id)
                if leaf_urls is None:
                    yield from ((leaf, exports.pointer_url(leaf)) for leaf in leaves)
                else:
                    yield from leaf_urls(leaves)

        def plan(leaf: Leaf) -> LeafPlan | None:
            try:
                source = archives.get(leaf.source_id)
            except NotFound:
                return None
            return source.plan(leaf)

        record = self._store.state.published.get((set_id, v.number))
        return exports.SetExport(
            set_id=set_id,
            name=rs.name,
            description=rs.description,
            version=v.number,
            time=v.time,
            author=v.author,
            selection=v.selection,
            manifest=manifest,
            located=located,
            document=self.export(set_id, v.number),
            metadata=metadata,
            doi=record.doi if record is not None else None,
            plan=plan if files else None,
        )

    def export(self, set_id: str, version: int | None = None) -> dict[str, Any]:
        """A set version as a MEDIator export (``import_file`` makes a set of it again)."""
        rs = self.get(set_id)
        v = self.version(set_id, version)
        return export_document(rs.name, rs.description, v.selection, {"set_id": set_id, "version": v.number})

    # -- reads ---------------------------------------------------------------------------------
    def list(self, scope: str = "all") -> list[ReplicaSet]:
        """Sets this user may see, in one of ``SCOPES``, sorted by name."""
        if scope not in SCOPES:
            raise ValidationError(f"scope must be one of {', '.join(SCOPES)}")
        me = self._me
        sets = [rs for rs in list(self._store.state.sets.values()) if rs.can_read(me)]
        filters: dict[str, Callable[[ReplicaSet], bool]] = {
            "all": lambda rs: True,
            "mine": lambda rs: rs.owner == me,
            "shared": lambda rs: me in rs.editors,
            "cluster": lambda rs: rs.visibility is Visibility.CLUSTER and rs.owner != me,
            "public": lambda rs: rs.visibility is Visibility.PUBLIC,
            "published": lambda rs: bool(rs.published),
            "following": lambda rs: me in rs.followers,
        }
        keep = filters[scope]
        return sorted((rs for rs in sets if keep(rs)), key=lambda rs: (rs.name.lower(), rs.id))

    def get(self, set_id: str) -> ReplicaSet:
        rs = self._store.state.sets.get(set_id)
        if rs is None or not rs.can_read(self._me):
            raise NotFound(f"replica set {set_id} does not exist or is not shared with you")
        return rs

    def find(self, set_id: str) -> ReplicaSet | None:
        """The set if this user may see it, else None (no error)."""
        rs = self._store.state.sets.get(set_id)
        return rs if rs is not None and rs.can_read(self._me) else None

    def history(self, set_id: str) -> builtins.list[Version]:
        self.get(set_id)
        return list(self._store.state.versions.get(set_id, ()))

    def version(self, set_id: str, number: int | None = None) -> Version:
        """A version of a set (default: the head)."""
        rs = self.get(set_id)
        number = rs.head if number is None else number
        versions = self._store.state.versions.get(set_id, [])
        if number is None:
            raise NotFound(f"{rs.name!r} has no versions yet: add data to it first")
        if not 1 <= number <= len(versions):
            raise NotFound(f"{rs.name!r} has no version {number} (it has {len(versions)})")
        return versions[number - 1]

    def manifest(self, manifest_id: str) -> Manifest:
        """A manifest from the store, verified against its id (decoded ones are cached)."""
        with self._lock:
            cached = self._manifests.get(manifest_id)
            if cached is not None:
                self._manifests.move_to_end(manifest_id)
                return cached
        chunks = self._store.state.manifests.get(manifest_id)
        if chunks is None:
            raise NotFound(f"manifest {manifest_id[:12]} is not in the store")
        manifest = Manifest.from_chunks(chunks, manifest_id)
        self._remember(manifest)
        return manifest

    def forget_manifests(self) -> None:
        """Empty the cache of decoded manifests (as after a restart)."""
        with self._lock:
            self._manifests.clear()

    def tree(self, manifest_id: str) -> TreeSummary | None:
        """The cached tree summary of a manifest, if one was made (it is, for every commit)."""
        return self._tree_cache.get(manifest_id) if self._tree_cache is not None else None

    def totals(self, manifest_id: str) -> tuple[int, int]:
        """Leaves and bytes of a manifest, from its cached tree summary (made once if missing):
        listing many large sets never decodes their manifests again."""
        if self._tree_cache is None:
            manifest = self.manifest(manifest_id)
            return len(manifest), manifest.total_size
        summary = self._tree_cache.get(manifest_id) or self._tree_cache.ensure(self.manifest(manifest_id))
        sources = summary.sources()
        return sum(n.leaves for n in sources), sum(n.size for n in sources)

    def diff(
        self, set_id: str, old: int, new: int | None = None, other_set: str | None = None
    ) -> tuple[SelectionDiff, ManifestDiff]:
        """What changed from version ``old`` of a set to version ``new`` (of ``other_set``, if given)."""
        a = self.version(set_id, old)
        b = self.version(other_set or set_id, new)
        return SelectionDiff.between(a.selection, b.selection), ManifestDiff.between(
            self.manifest(a.manifest_id), self.manifest(b.manifest_id)
        )

    def _remember(self, manifest: Manifest) -> None:
        with self._lock:
            self._manifests[manifest.id] = manifest
            while len(self._manifests) > 4:
                self._manifests.popitem(last=False)

    # -- tree summaries ------------------------------------------------------------------------
    def _summarize_later(self, event: VersionCommitted) -> None:
        """Called on the raft thread: hands the work to the background."""
        if self._summaries is not None:
            with contextlib.suppress(RuntimeError):  # the node is stopping
                self._summaries.submit(self._summarize, event.set_id, event.version)

    def _summarize(self, set_id: str, number: int) -> None:
        if self._tree_cache is None:
            return
        try:
            manifest_id = self._store.state.versions[set_id][number - 1].manifest_id
            if self._tree_cache.get(manifest_id) is None:
                self._tree_cache.ensure(self.manifest(manifest_id))
        except (MediatorError, LookupError, OSError) as exc:
            log.debug("no tree summary for %s v%s: %s", set_id, number, exc)

    def close(self) -> None:
        if self._summaries is not None:
            self._summaries.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What ``SettingsPart.change`` did: the settings now, and which changes wait for a restart."""

    settings: Settings
    changed: tuple[str, ...]
    restart: tuple[str, ...]


class SettingsPart:
    """The node's settings: read, validate, change. Each field says whether a change applies at
    once or when the node starts next (``Settings.field_info``)."""

    def __init__(
        self,
        file: SettingsFile,
        events: EventBus,
        on_live: Callable[[Settings], None],
        prepare: Callable[[Settings, Settings], Callable[[], None]] | None = None,
    ) -> None:
        self._file = file
        self._events = events
        self._on_live = on_live
        self._prepare = prepare
        self._lock = threading.RLock()
        #: Set by the service: stores an archive's secret and rebuilds the archive with it.
        self.set_secret: Callable[[str, str], None] | None = None
        # The data folder is a restart field: the running node keeps the one it started with.
        self._data_dir = file.current.data_dir

    def get(self) -> Settings:
        return self._file.current

    @property
    def path(self) -> Path:
        """The settings file (``mediator info`` shows it)."""
        return self._file.path

    @property
    def data_dir(self) -> Path:
        """The data folder the node runs on (a changed ``data_dir`` applies at the next start)."""
        return self._data_dir

    def fields(self) -> tuple[SettingField, ...]:
        return Settings.field_info()

    def validate(self, **changes: Any) -> Settings:
        """The settings ``changes`` would make; raises ``ValidationError`` and saves nothing."""
        return self._file.validate(**changes)

    def change(self, **changes: Any) -> SettingsChange:
        """Validate, save and apply ``changes``: the live ones at once, the others at the next start.

        What cannot apply (an archive that cannot be set up, a display name another member has)
        raises before anything is saved.
        """
        with self._lock:
            before = self._file.current
            after = self._file.validate(**changes)
            install = self._prepare(before, after) if self._prepare is not None else None
            after = self._file.change(**changes)
            if install is not None:
                install()
        changed = tuple(
            f.name for f in Settings.field_info() if getattr(before, f.name) != getattr(after, f.name)
        )
        live = {f.name for f in Settings.field_info() if f.live}
        restart = tuple(name for name in changed if name not in live)
        if changed:
            self._events.emit(SettingsChanged(changed, restart))
        if any(name in live for name in changed):
            try:
                self._on_live(after)
            except MediatorError as exc:  # saved: it applies when the node starts next
                log.warning("the changed settings are saved but not applied yet: %s", exc)
                restart = tuple(changed)
        return SettingsChange(after, changed, restart)

    def set_source_secret(self, source_id: str, value: str) -> None:
        """Keep an archive's password or token in the OS keyring (a 0600 file where there is none);
        the archive uses it at once (``Archives.set_secret``)."""
        if not value:
            raise ValidationError("the secret is empty")
        if self.set_secret is not None:
            self.set_secret(source_id, value)
        else:
            store_source_secret(self.data_dir, source_id, value)


#: Builds the minter of a DOI service from its options and secret (``sources.doi.create_minter``).
MinterFactory = Callable[[str, Mapping[str, str], "str | None"], Minter]


class Publishing:
    """Published versions and their DOIs: publish with DataCite metadata, watch the mint queue,
    retry, cite. Publishing freezes the version in the store at once; the DOI follows from a queue
    that retries until the service answers (``core.publishing.MintQueue``)."""

    def __init__(
        self,
        signer: _Signer,
        sets: Sets,
        archives: Archives,
        settings: Callable[[], Settings],
        factory: MinterFactory | None,
        data_dir: Path | None,
        *,
        backoff: float = 30.0,
    ) -> None:
        self._signer = signer
        self._sets = sets
        self._archives = archives
        self._settings = settings
        self._factory = factory
        self._data_dir = data_dir
        self.queue = MintQueue(
            lambda: signer.store.state.published,
            signer.identity.key_id,
            lambda set_id, version, **args: signer.do("record_mint", set_id=set_id, version=version, **args),
            self._minter,
            self._attachment,
            backoff=backoff,
        )

    def start(self) -> None:
        """Mint what is queued (this user's versions), now and whenever something is published."""
        if self._factory is not None:
            self.queue.start()

    def close(self) -> None:
        self.queue.stop()

    def _secret_name(self, service: str) -> str:
        return f"doi-{service}"

    def set_secret(self, service: str, secret: str) -> None:
        """Keep the DataCite password or the Zenodo token in the OS keyring."""
        if service not in ("datacite", "zenodo"):
            raise ValidationError(f"no DOI service {service!r}: datacite or zenodo")
        if self._data_dir is None:
            raise ValidationError("this service has no data folder to keep secrets for")
        store_source_secret(self._data_dir, self._secret_name(service), secret)

    def _minter(self, service: str) -> Minter:
        if self._factory is None:
            raise ValidationError("this node mints no DOIs")
        s = self._settings()
        secret = source_secret(self._data_dir, self._secret_name(service)) if self._data_dir else None
        options = {"base_url": s.doi_url, "repository": s.doi_repository, "prefix": s.doi_prefix}
        return self._factory(service, {k: v for k, v in options.items() if v}, secret)

    def _attachment(self, set_id: str, version: int) -> tuple[str, bytes] | None:
        """What a deposit carries: the version's RO-Crate metadata (every leaf as a pointer to its
        archive, the selection, the DOI metadata), never the data itself."""
        record = self._signer.store.state.published.get((set_id, version))
        metadata = DoiMetadata.from_json(record.metadata) if record is not None and record.metadata else None
        export = self._sets.export_of(set_id, version, metadata)
        with tempfile.TemporaryDirectory(prefix="mediator-deposit-") as folder:
            exports.write_crate(export, Path(folder))
            return f"{export.stem}.{exports.CRATE_FILE}", (Path(folder) / exports.CRATE_FILE).read_bytes()

    # -- what users do -------------------------------------------------------------------------
    def suggest(self, set_id: str, version: int | None = None) -> DoiMetadata:
        """Metadata to start the publish form with: the set's name and description, you as the
        creator, the publisher of the settings, this year, the source collections' DOIs."""
        rs = self._sets.get(set_id)
        v = self._sets.version(set_id, version)
        manifest = self._sets.manifest(v.manifest_id)
        name = self._signer.identity.display_name
        refs = self.references(set_id, v.number)
        return DoiMetadata(
            title=rs.name,
            creators=(Creator(name),),
            publisher=self._settings().publisher or "MEDIator",
            year=dt.datetime.now(dt.UTC).year,
            description=rs.description,
            related=tuple(Related(doi) for doi in dict.fromkeys(r.doi.lower() for r in refs if r.doi)),
            version=str(v.number),
            size=f"{len(manifest):,} items, {human_bytes(manifest.total_size)}",
            license=refs[0].license.replace(" ", "-") if len({r.license for r in refs}) == 1 else "",
        )

    def references(self, set_id: str, version: int | None = None) -> list[Reference]:
        """The source collections of a version, with their DOIs and licences where an archive
        says (IDC's index does)."""
        v = self._sets.version(set_id, version)
        manifest = self._sets.manifest(v.manifest_id)
        out: list[Reference] = []
        for source_id in manifest.sources:
            try:
                source = self._archives.get(source_id)
            except NotFound:
                continue
            refs = getattr(source, "references", None)
            if callable(refs):
                out.extend(refs(manifest.under(source_id)))
        return out

    def publish(
        self,
        set_id: str,
        version: int | None = None,
        metadata: DoiMetadata | None = None,
        *,
        landing_url: str | None = None,
        service: str | None = None,
    ) -> PublishedRecord:
        """Freeze a version for good and queue its DOI (``service``: the settings' DOI service by
        default; empty: no DOI). ``ValidationError`` lists every problem of the metadata first."""
        v = self._sets.version(set_id, version)
        chosen = self._settings().doi_service if service is None else service
        if metadata is None:
            metadata = self.suggest(set_id, v.number)
        metadata.check()
        if chosen == "datacite" and not landing_url:
            raise ValidationError(
                "a DataCite DOI resolves to a landing page you give: landing_url (your lab's page of "
                "the data, or a Zenodo record)"
            )
        if chosen:
            self._minter(chosen)  # not set up here: say so now, not later in the queue
        self._signer.do(
            "publish_version",
            set_id=set_id,
            version=v.number,
            metadata=metadata.to_json(),
            service=chosen,
            landing_url=landing_url or "",
        )
        self.queue.wake()
        return self.get(set_id, v.number)

    def get(self, set_id: str, version: int | None = None) -> PublishedRecord:
        v = self._sets.version(set_id, version)
        record = self._signer.store.state.published.get((set_id, v.number))
        if record is None:
            raise NotFound(f"version {v.number} of {self._sets.get(set_id).name!r} is not published")
        return record

    def retry(self, set_id: str, version: int) -> PublishedRecord:
        """Try minting again now (after fixing the credentials or the service coming back).

        A version whose DOI is already minted is answered as it is: the retry has nothing left to do.
        """
        record = self.get(set_id, version)
        if record.doi_state == "findable":
            return record
        if not record.minting:
            raise ValidationError(f"version {version} has nothing to mint ({record.status()})")
        self._signer.do("record_mint", set_id=set_id, version=version, state="queued", error="")
        self.queue.wake((set_id, version))
        return self.get(set_id, version)

    def citation(self, set_id: str, version: int) -> Citation:
        record = self.get(set_id, version)
        metadata = (
            DoiMetadata.from_json(record.metadata)
            if record.metadata
            else DoiMetadata(
                record.title,
                tuple(Creator(c) for c in record.creators),
                "MEDIator",
                record.publication_year or dt.datetime.fromtimestamp(record.time, dt.UTC).year,
            )
        )
        return cite(
            metadata, record.doi, self._sets.get(set_id).name, version, self.references(set_id, version)
        )


class Service:
    """Everything a frontend may do with one node, as one user. Thread-safe.

    Args:
        store: the replicated store (a node's stays the same object across joins and leaves).
        identity: the local user, who signs every change.
        sources: the configured archives.
        downloader: the transfer engine (None: downloads are refused).
        cluster: membership of the node (None: a service without a node around it).
        settings: the node's settings file (None: the defaults, changed in memory only).
        tree_cache: where tree summaries of manifests are kept (None: none are).
        source_builder: builds an archive from its settings entry, so archives can be added
            live (None: the archives are fixed).
        source_kinds: the kinds of archive that can be added, described for forms.
        check_interval: seconds between scheduled update checks of a set, instead of the
            ``update_check_minutes`` setting (tests and benchmarks).
        table_engine: reads and filters clinical tables (``sources.clinical.PandasTables``); None:
            the service has no clinical tables (and no ``clinical`` archive).
        timeout: how long a change may wait for the cluster.
    """

    def __init__(
        self,
        store: Store,
        identity: Identity,
        *,
        sources: Mapping[str, DataSource] | None = None,
        downloader: Downloader | None = None,
        cluster: Cluster | None = None,
        settings: SettingsFile | None = None,
        tree_cache: TreeCache | None = None,
        source_builder: SourceBuilder | None = None,
        source_kinds: Callable[[], Mapping[str, SourceKind]] | None = None,
        check_interval: float | None = None,
        table_engine: TableEngine | None = None,
        minters: MinterFactory | None = None,
        mint_backoff: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self._signer = _Signer(store, identity, timeout)
        self._identity = identity
        self._store = store
        #: The node's typed events (``core.events``): ``service.events.subscribe(fn, VersionCommitted)``.
        self.events: EventBus = store.events
        file = settings if settings is not None else SettingsFile(Settings(), persist=False)
        self.archives = Archives(
            # The node's dict, shared with its transfer engine, so added archives download at once.
            sources if isinstance(sources, dict) else dict(sources or {}),
            self.events,
            configs=file.current.sources if settings is not None else (),
            builder=source_builder,
            kinds=source_kinds,
            data_dir=file.current.data_dir if settings is not None else None,
        )
        self.sets = Sets(self._signer, self.archives, self.events, tree_cache)
        #: The cluster's clinical tables (``core.clinical``); also the built-in archive ``clinical``
        #: that sets join to other archives by patient (``core.integrator``).
        self.clinical = Clinical(
            self._signer,
            store,
            table_engine if table_engine is not None else _NoTables(),
            file.current.data_dir if settings is not None else None,
        )
        if table_engine is not None:
            self.archives.add_builtin(ClinicalSource(self.clinical))
        self.settings = SettingsPart(file, self.events, self._settings_live, self._prepare_settings)
        self.archives.change_settings = self.settings.change
        if sources is not None and settings is not None:
            self.settings.set_secret = self.archives.set_secret
        self.downloads = Downloads(
            self.sets,
            self.events,
            downloader,
            lambda: self.settings.get().download_layout,
            # whoever downloads a published version learns whether it is still what was published
            lambda set_id, number: (
                self.tracking.reproduction(set_id, number)
                if (set_id, number) in store.state.published
                else None
            ),
        )
        self.tracking = Tracker(
            self._signer,
            self.sets,
            self.archives,
            self.events,
            (lambda: check_interval)
            if check_interval is not None
            else (lambda: self.settings.get().update_check_minutes * 60.0),
        )
        #: Published versions, their DOIs (minted by a queue on the publisher's node) and citations.
        self.publishing = Publishing(
            self._signer,
            self.sets,
            self.archives,
            self.settings.get,
            minters,
            file.current.data_dir if settings is not None else None,
            backoff=mint_backoff,
        )
        self._cluster = cluster

    @property
    def cluster(self) -> Cluster:
        """Members, peers, join codes, join, leave, remove."""
        if self._cluster is None:
            raise ValidationError("this service runs without a node around it: it has no cluster")
        return self._cluster

    # -- who you are ---------------------------------------------------------------------------
    @property
    def key_id(self) -> str:
        """The local user's key id (their identity in the cluster)."""
        return self._identity.key_id

    @property
    def display_name(self) -> str:
        return self._identity.display_name

    def users(self) -> dict[str, str]:
        """Key id -> display name of every registered user."""
        return {k: u.display_name for k, u in list(self._store.state.users.items())}

    def register(self) -> None:
        """Make this user known to the cluster (again, if the display name changed)."""
        user = self._store.state.users.get(self.key_id)
        if user is None or user.display_name != self._identity.display_name:
            self._signer.do(
                "register_user",
                public_key=self._identity.public_key.hex(),
                display_name=self._identity.display_name,
            )

    def _prepare_settings(self, before: Settings, after: Settings) -> Callable[[], None]:
        """Check what must hold before settings are saved; returns what applies them right after."""
        if after.display_name != before.display_name:
            self._check_display_name(after.display_name)
        if after.sources != before.sources:
            return self.archives.prepare(after.sources)
        return lambda: None

    def _check_display_name(self, name: str) -> None:
        for key_id, user in list(self._store.state.users.items()):
            if key_id != self.key_id and user.display_name.casefold() == name.strip().casefold():
                raise ValidationError(
                    f"another member ({key_id[:8]}) is called {user.display_name!r}: choose a name "
                    "others can tell apart, such as your full name and machine"
                )

    def _settings_live(self, settings: Settings) -> None:
        self.tracking.wake()
        if settings.display_name != self._identity.display_name:
            self._identity = replace(self._identity, display_name=settings.display_name)
            self._signer.identity = self._identity
            self.register()

    def close(self) -> None:
        """Cancel downloads and background work (the node stops)."""
        self.publishing.close()
        self.tracking.close()
        self.downloads.close()
        self.sets.close()
        self.archives.close()
