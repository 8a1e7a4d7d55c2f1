"""The PubCons facade: every frontend (Qt, CLI, SDK, local API) changes and reads replica sets here.

It signs each change as the local user and hands it to the replicated store; reads come from the
local replica and apply the same visibility rules as the store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mediator_desktop.core.cluster import ClusterControl
from mediator_desktop.core.commands import SeqClock, seal
from mediator_desktop.core.diff import ManifestDiff
from mediator_desktop.core.downloads import Downloads
from mediator_desktop.core.errors import NotFound, ValidationError
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.imports import export_document, read_manifest_file
from mediator_desktop.core.jobs import JobControl, Progress
from mediator_desktop.core.manifest import Manifest, ManifestBuilder
from mediator_desktop.core.pointer import Filters, Pointer
from mediator_desktop.core.replica import PublishedRecord, ReplicaSet, Version, Visibility, new_set_id
from mediator_desktop.core.selection import Selection, SelectionDiff
from mediator_desktop.core.source import BrowseItem, BrowsePage, DataSource
from mediator_desktop.core.state import DriftRecord
from mediator_desktop.core.store import Store, unwrap
from mediator_desktop.core.transfer import DEFAULT_LAYOUT, Downloader, Report
from mediator_desktop.core.tree import TreeCache


@dataclass(frozen=True, slots=True)
class ImportResult:
    set_id: str
    version: int
    pointers: int
    missing: tuple[str, ...]  # identifiers no configured archive holds


#: Scopes of ``list_sets``, as the sidebar shows them.
SCOPES = ("all", "mine", "shared", "cluster", "public", "published", "following")


class Service:
    """Replica-set operations as one user of one node. Thread-safe."""

    def __init__(
        self,
        store: Store,
        identity: Identity,
        *,
        timeout: float = 10.0,
        downloader: Downloader | None = None,
        cluster: ClusterControl | None = None,
        sources: Mapping[str, DataSource] | None = None,
        tree_cache: TreeCache | None = None,
    ) -> None:
        self.store = store
        #: Summaries of manifests' trees, so a set of any size draws at once (None: not kept).
        self.tree_cache = tree_cache
        #: The archives this node browses and resolves selections against.
        self.sources: Mapping[str, DataSource] = sources or {}
        self.identity = identity
        self.downloader = downloader
        #: Peers, members, join codes, leave and remove (None: a service without a node around it).
        self.cluster = cluster
        self.timeout = timeout
        self._seq = SeqClock()
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()
        #: Download jobs any frontend can start, watch, pause and cancel.
        self.downloads = Downloads(self)

    @property
    def key_id(self) -> str:
        return self.identity.key_id

    # -- signing -------------------------------------------------------------------------------
    def _seal(self, op: str, payload: bytes = b"", **args: Any) -> bytes:
        seq = self._seq.next(self.store.state.newest_seq(self.key_id))
        return seal(self.identity, op, args, seq, time.time(), payload)

    def _do(self, op: str, payload: bytes = b"", **args: Any) -> Any:
        return unwrap(self.store.submit(self._seal(op, payload, **args), self.timeout))

    # -- users ---------------------------------------------------------------------------------
    def register(self) -> None:
        """Make this user known to the cluster (again, if the display name changed)."""
        user = self.store.state.users.get(self.key_id)
        if user is None or user.display_name != self.identity.display_name:
            self._do(
                "register_user",
                public_key=self.identity.public_key.hex(),
                display_name=self.identity.display_name,
            )

    def users(self) -> dict[str, str]:
        """Key id -> display name of every registered user."""
        return {k: u.display_name for k, u in list(self.store.state.users.items())}

    # -- sources -------------------------------------------------------------------------------
    def source(self, source_id: str) -> DataSource:
        source = self.sources.get(source_id)
        if source is None:
            known = ", ".join(sorted(self.sources)) or "none"
            raise NotFound(f"no source {source_id!r} is configured here (configured: {known})")
        return source

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
        source = self.source(source_id)
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

    def resolve(self, selection: Selection) -> Manifest:
        """The leaves ``selection`` selects today, from every source it names, with fingerprints."""
        manifests = [
            self.source(source_id).resolve(selection.for_source(source_id)) for source_id in selection.sources
        ]
        if len(manifests) == 1:
            return manifests[0]
        return Manifest.build(leaf for manifest in manifests for leaf in manifest)

    def check_pointer(self, pointer: Pointer) -> Pointer:
        """``pointer`` if its source is configured here and the path fits its levels."""
        return self.source(pointer.source_id).hierarchy.validate(pointer)

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
            pointers: list[Pointer] = []
            missing = list(imported.identifiers)
            for source in self.sources.values():
                locate = getattr(source, "locate", None)
                if locate is None or not missing:
                    continue
                found, missing = locate(imported.identifier_kind, missing)
                pointers.extend(found)
            if not pointers:
                kinds = ", ".join(s for s in self.sources) or "none"
                raise NotFound(
                    f"none of the {len(imported.identifiers):,} items of {path.name} is in the archives "
                    f"configured here ({kinds}); add the archive they come from in Settings"
                )
            selection = Selection.of(*pointers)
        set_id = self.create_set(imported.name, imported.description, visibility)
        message = f"imported from {path.name}" + (f" ({len(missing):,} not found)" if missing else "")
        version = self.commit_selection(set_id, selection, message)
        return ImportResult(set_id, version, len(selection), tuple(missing))

    def export_set(self, set_id: str, version: int | None = None) -> dict[str, Any]:
        """A set version as a MEDIator export (``import_file`` makes a set of it again)."""
        rs = self.get_set(set_id)
        v = self.version(set_id, version)
        return export_document(rs.name, rs.description, v.selection, {"set_id": set_id, "version": v.number})

    # -- writes --------------------------------------------------------------------------------
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
        rs = self.get_set(set_id)
        head = rs.head if expected_head == "head" else expected_head
        base = self.version(set_id, head) if head is not None else None
        before = base.selection if base is not None else Selection()
        selection = before
        for pointer in add:
            selection = selection.add(self.check_pointer(pointer))
        for pointer in remove:
            selection = selection.remove(self.check_pointer(pointer))
        manifest = self.resolve(selection)
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
            self.check_pointer(rule.pointer)
        return self.commit(set_id, selection, self.resolve(selection), message, expected_head=expected_head)

    def create_set(
        self, name: str, description: str = "", visibility: Visibility = Visibility.PRIVATE
    ) -> str:
        set_id = new_set_id()
        self._do("create_set", set_id=set_id, name=name, description=description, visibility=visibility.value)
        return set_id

    def upload_manifest(self, manifest: Manifest) -> str:
        """Put a manifest in the store (a no-op when it is there already); returns its id."""
        if manifest.id in self.store.state.manifests:
            return manifest.id
        chunks = manifest.chunks()
        commands = [
            self._seal("put_manifest_chunk", chunk, manifest_id=manifest.id, index=i, total=len(chunks))
            for i, chunk in enumerate(chunks)
        ]
        commands.append(self._seal("commit_manifest", manifest_id=manifest.id))
        timeout = self.timeout + len(commands) * 0.05
        for result in self.store.submit_many(commands, timeout):
            unwrap(result)
        self._remember(manifest)
        return manifest.id

    def commit(
        self,
        set_id: str,
        selection: Selection,
        manifest: Manifest | None = None,
        message: str = "",
        *,
        expected_head: int | Literal["head"] | None = "head",
    ) -> int:
        """Commit a new version; returns its number.

        Args:
            expected_head: the version this change builds on (default: the head as this node sees
                it). If someone committed meanwhile, ``ConflictError`` carries the current head.
        """
        manifest = manifest if manifest is not None else ManifestBuilder().build()
        manifest_id = self.upload_manifest(manifest)
        head = self.get_set(set_id).head if expected_head == "head" else expected_head
        if self.tree_cache is not None:
            self.tree_cache.ensure(manifest)
        value = self._do(
            "commit_version",
            set_id=set_id,
            expected_head=head,
            selection=selection.to_json(),
            manifest_id=manifest_id,
            message=message,
        )
        return int(value["version"])

    def delete_set(self, set_id: str) -> None:
        self._do("delete_set", set_id=set_id)

    def duplicate(self, set_id: str, version: int | None = None, name: str = "") -> str:
        new_id = new_set_id()
        self._do("duplicate_set", source_id=set_id, version=version, set_id=new_id, name=name)
        return new_id

    def set_visibility(self, set_id: str, visibility: Visibility) -> None:
        self._do("set_visibility", set_id=set_id, visibility=visibility.value)

    def grant_editor(self, set_id: str, key_id: str) -> None:
        self._do("grant_editor", set_id=set_id, key_id=key_id)

    def revoke_editor(self, set_id: str, key_id: str) -> None:
        self._do("revoke_editor", set_id=set_id, key_id=key_id)

    def follow(self, set_id: str) -> None:
        self._do("follow", set_id=set_id)

    def unfollow(self, set_id: str) -> None:
        self._do("unfollow", set_id=set_id)

    def publish(
        self, set_id: str, version: int, title: str, creators: Iterable[str] = (), description: str = ""
    ) -> PublishedRecord:
        self._do(
            "publish_version",
            set_id=set_id,
            version=version,
            title=title,
            creators=list(creators),
            description=description,
        )
        return self.store.state.published[(set_id, version)]

    def record_drift(self, set_id: str, version: int, manifest_id: str, summary: str) -> None:
        self._do("record_drift", set_id=set_id, version=version, manifest_id=manifest_id, summary=summary)

    # -- reads ---------------------------------------------------------------------------------
    def list_sets(self, scope: str = "all") -> list[ReplicaSet]:
        """Sets this user may see, in one of ``SCOPES``, sorted by name."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        me = self.key_id
        sets = [rs for rs in list(self.store.state.sets.values()) if rs.can_read(me)]
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

    def get_set(self, set_id: str) -> ReplicaSet:
        rs = self.store.state.sets.get(set_id)
        if rs is None or not rs.can_read(self.key_id):
            raise NotFound(f"replica set {set_id} does not exist or is not shared with you")
        return rs

    def drift(self, set_id: str) -> DriftRecord | None:
        """What the head version's selection resolves to today, if a check found it changed."""
        rs = self.get_set(set_id)
        return None if rs.head is None else self.store.state.drift.get((set_id, rs.head))

    def history(self, set_id: str) -> list[Version]:
        self.get_set(set_id)
        return list(self.store.state.versions.get(set_id, ()))

    def version(self, set_id: str, number: int | None = None) -> Version:
        rs = self.get_set(set_id)
        number = rs.head if number is None else number
        versions = self.store.state.versions.get(set_id, [])
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
        chunks = self.store.state.manifests.get(manifest_id)
        if chunks is None:
            raise NotFound(f"manifest {manifest_id[:12]} is not in the store")
        manifest = Manifest.from_chunks(chunks, manifest_id)
        self._remember(manifest)
        return manifest

    def totals(self, manifest_id: str) -> tuple[int, int]:
        """Leaves and bytes of a manifest, from its cached tree summary (made once if missing):
        listing many large sets never decodes their manifests again."""
        if self.tree_cache is None:
            manifest = self.manifest(manifest_id)
            return len(manifest), manifest.total_size
        summary = self.tree_cache.get(manifest_id) or self.tree_cache.ensure(self.manifest(manifest_id))
        sources = summary.sources()
        return sum(n.leaves for n in sources), sum(n.size for n in sources)

    def _remember(self, manifest: Manifest) -> None:
        with self._lock:
            self._manifests[manifest.id] = manifest
            while len(self._manifests) > 4:
                self._manifests.popitem(last=False)

    def diff(
        self, set_id: str, old: int, new: int | None = None, other_set: str | None = None
    ) -> tuple[SelectionDiff, ManifestDiff]:
        """What changed from version ``old`` of a set to version ``new`` (of ``other_set``, if given)."""
        a = self.version(set_id, old)
        b = self.version(other_set or set_id, new)
        return SelectionDiff.between(a.selection, b.selection), ManifestDiff.between(
            self.manifest(a.manifest_id), self.manifest(b.manifest_id)
        )

    # -- downloads -----------------------------------------------------------------------------
    def download(
        self,
        set_id: str,
        version: int | None,
        destination: Path,
        *,
        layout: str = DEFAULT_LAYOUT,
        workers: int = 8,
        progress: Callable[[Progress], None] | None = None,
        control: JobControl | None = None,
        prune: bool = False,
        only: Collection[str] | None = None,
    ) -> Report:
        """Bring ``destination`` up to a version (default: the head) of a set; blocks until done.

        Only leaves new or changed since the folder's last download are fetched; see
        ``core.transfer.Downloader.download`` for the arguments and errors.
        """
        if self.downloader is None:
            raise RuntimeError("this service was built without a downloader")
        manifest = self.manifest(self.version(set_id, version).manifest_id)
        return self.downloader.download(
            manifest,
            destination,
            layout=layout,
            workers=workers,
            progress=progress,
            control=control,
            prune=prune,
            only=only,
        )
