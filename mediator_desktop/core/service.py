"""The one door of a node: every frontend (Qt, CLI, SDK, local API) goes through a ``Service``.

A service is made of typed parts that a reader can list:

- ``service.sets``: create, update, commit, rename, duplicate, share, follow, history, diff,
  import and export of replica sets (``Sets``);
- ``service.archives``: browse, search and resolve the configured sources (``Archives``);
- ``service.downloads``: start, list, steer and read download jobs (``core.downloads.Downloads``);
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
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mediator_desktop.core.cluster import Cluster
from mediator_desktop.core.commands import SeqClock, seal
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.downloads import Downloads
from mediator_desktop.core.errors import MediatorError, NotFound, ValidationError
from mediator_desktop.core.events import EventBus, SettingsChanged, VersionCommitted
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.imports import export_document, read_manifest_file
from mediator_desktop.core.keystore import store_source_secret
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Filters, Hierarchy, Pointer
from mediator_desktop.core.replica import PublishedRecord, ReplicaSet, Version, Visibility, new_set_id
from mediator_desktop.core.selection import Selection, SelectionDiff
from mediator_desktop.core.settings import SettingField, Settings, SettingsFile
from mediator_desktop.core.source import BrowseItem, BrowsePage, DataSource
from mediator_desktop.core.state import DriftRecord
from mediator_desktop.core.store import Store, unwrap
from mediator_desktop.core.transfer import Downloader
from mediator_desktop.core.tree import TreeCache, TreeSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportResult:
    set_id: str
    version: int
    pointers: int
    missing: tuple[str, ...]  # identifiers no configured archive holds


#: Scopes of ``Sets.list``, as the sidebar shows them.
SCOPES = ("all", "mine", "shared", "cluster", "public", "published", "following")


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
        return unwrap(self.store.submit(self.seal(op, payload, **args), self.timeout))


class Archives:
    """The archives (sources) this node browses and resolves selections against."""

    def __init__(self, sources: Mapping[str, DataSource]) -> None:
        self._sources = sources

    def ids(self) -> list[str]:
        """The configured sources' ids, in configuration order."""
        return list(self._sources)

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
        manifests = [self.get(sid).resolve(selection.for_source(sid)) for sid in selection.sources]
        if len(manifests) == 1:
            return manifests[0]
        return Manifest.build(leaf for manifest in manifests for leaf in manifest)

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
        pointers = [self._archives.check_pointer(p) for p in add]
        set_id = new_set_id()
        self._signer.do(
            "create_set", set_id=set_id, name=name, description=description, visibility=visibility.value
        )
        if pointers:
            self.update(set_id, add=pointers, message=message)
        return set_id

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
        rs = self.get(set_id)
        head = rs.head if expected_head == "head" else expected_head
        base = self.version(set_id, head) if head is not None else None
        before = base.selection if base is not None else Selection()
        selection = before
        for pointer in add:
            selection = selection.add(self._archives.check_pointer(pointer))
        for pointer in remove:
            selection = selection.remove(self._archives.check_pointer(pointer))
        manifest = self._archives.resolve(selection)
        if base is not None and selection == before and manifest.id == base.manifest_id:
            return None
        return self.commit(set_id, selection, manifest, message, expected_head=head)

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
            selection=selection.to_json(),
            manifest_id=manifest_id,
            message=message,
        )
        return int(value["version"])

    def upload_manifest(self, manifest: Manifest) -> str:
        """Put a manifest in the store (a no-op when it is there already); returns its id."""
        if manifest.id in self._store.state.manifests:
            return manifest.id
        chunks = manifest.chunks()
        seal = self._signer.seal
        commands = [
            seal("put_manifest_chunk", chunk, manifest_id=manifest.id, index=i, total=len(chunks))
            for i, chunk in enumerate(chunks)
        ]
        commands.append(seal("commit_manifest", manifest_id=manifest.id))
        timeout = self._signer.timeout + len(commands) * 0.05
        for result in self._store.submit_many(commands, timeout):
            unwrap(result)
        self._remember(manifest)
        return manifest.id

    def rename(self, set_id: str, name: str, description: str | None = None) -> None:
        """Give a set a new name (and description); owner and editors may."""
        args: dict[str, Any] = {"set_id": set_id, "name": name}
        if description is not None:
            args["description"] = description
        self._signer.do("rename_set", **args)

    def delete(self, set_id: str) -> None:
        self._signer.do("delete_set", set_id=set_id)

    def duplicate(self, set_id: str, version: int | None = None, name: str = "") -> str:
        """Fork a version (default: the head) into a new set of yours; returns its id."""
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

    def publish(
        self, set_id: str, version: int, title: str, creators: Iterable[str] = (), description: str = ""
    ) -> PublishedRecord:
        self._signer.do(
            "publish_version",
            set_id=set_id,
            version=version,
            title=title,
            creators=list(creators),
            description=description,
        )
        return self._store.state.published[(set_id, version)]

    def record_drift(self, set_id: str, version: int, manifest_id: str, summary: str) -> None:
        self._signer.do(
            "record_drift", set_id=set_id, version=version, manifest_id=manifest_id, summary=summary
        )

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
        set_id = self.create(imported.name, imported.description, visibility)
        message = f"imported from {path.name}" + (f" ({len(missing):,} not found)" if missing else "")
        version = self.commit_selection(set_id, selection, message)
        return ImportResult(set_id, version, len(selection), tuple(missing))

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

    def drift(self, set_id: str) -> DriftRecord | None:
        """What the head version's selection resolves to today, if a check found it changed."""
        rs = self.get(set_id)
        return None if rs.head is None else self._store.state.drift.get((set_id, rs.head))

    def history(self, set_id: str) -> builtins.list[Version]:
        self.get(set_id)
        return list(self._store.state.versions.get(set_id, ()))

    def version(self, set_id: str, number: int | None = None) -> Version:
        """A version of a set (default: the head)."""
        rs = self.get(set_id)
        number = rs.head if number is None else number
        versions = self._store.state.versions.get(set_id, [])
        if number is None or not 1 <= number <= len(versions):
            raise NotFound(f"{rs.name!r} has no version {number}")
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

    def __init__(self, file: SettingsFile, events: EventBus, on_live: Callable[[Settings], None]) -> None:
        self._file = file
        self._events = events
        self._on_live = on_live
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
        """Validate, save and apply ``changes``: the live ones at once, the others at the next start."""
        before = self._file.current
        after = self._file.change(**changes)
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
        """Keep an archive's password or token in the OS keyring (a 0600 file where there is none)."""
        if not value:
            raise ValidationError("the secret is empty")
        store_source_secret(self.data_dir, source_id, value)


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
        timeout: float = 10.0,
    ) -> None:
        self._signer = _Signer(store, identity, timeout)
        self._identity = identity
        self._store = store
        #: The node's typed events (``core.events``): ``service.events.subscribe(fn, VersionCommitted)``.
        self.events: EventBus = store.events
        self.archives = Archives(sources or {})
        self.sets = Sets(self._signer, self.archives, self.events, tree_cache)
        self.settings = SettingsPart(
            settings if settings is not None else SettingsFile(Settings(), persist=False),
            self.events,
            self._settings_live,
        )
        self.downloads = Downloads(
            self.sets, self.events, downloader, lambda: self.settings.get().download_layout
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

    def _settings_live(self, settings: Settings) -> None:
        if settings.display_name != self._identity.display_name:
            self._identity = replace(self._identity, display_name=settings.display_name)
            self._signer.identity = self._identity
            self.register()

    def close(self) -> None:
        """Cancel downloads and background work (the node stops)."""
        self.downloads.close()
        self.sets.close()
