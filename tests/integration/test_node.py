"""A node as the app runs it: a one-node Raft cluster with the service facade on top."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.errors import ConflictError, NotFound, PermissionDenied, ValidationError
from mediator_desktop.core.events import Event, SetChanged, VersionCommitted
from mediator_desktop.core.identity import Identity
from mediator_desktop.core.manifest import ManifestBuilder
from mediator_desktop.core.pointer import Hierarchy, Pointer
from mediator_desktop.core.publishing import Creator, DoiMetadata
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.raft.membership import SECRET_FILE

LEVELS = {"idc": Hierarchy(("collection", "patient", "study", "series"))}


@pytest.fixture
def node() -> Iterator[Node]:
    with Node() as started:
        yield started


def manifest(n: int, version: str = "v1") -> ManifestBuilder:
    b = ManifestBuilder()
    for i in range(n):
        b.add(
            "idc", ("nlst", f"p{i // 4}", f"st{i // 2}", f"1.2.{i}"), size=1000 + i, count=3, version=version
        )
    return b


def test_first_start_makes_identity_secret_and_address_and_restarts_keep_them(mediator_home: Path) -> None:
    with Node() as node:
        key_id = node.service.key_id
        address = node.settings.raft_address
        set_id = node.service.sets.create("kept")
        assert node.service.users() == {key_id: node.settings.display_name}
    data = mediator_home / "data"
    assert stat.S_IMODE((data / SECRET_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # logs, private sets' summaries, local indexes
    assert Settings.load().raft_address == address
    with Node() as node:
        assert node.service.key_id == key_id
        assert node.service.sets.get(set_id).name == "kept"


def test_sets_versions_manifests_and_diff(node: Node) -> None:
    sets = node.service.sets
    set_id = sets.create("LIDC subset", "CT of NLST", Visibility.CLUSTER)
    sel1 = Selection.of(Pointer.of("idc", "nlst", Modality="CT"))
    m1 = manifest(40_000).build()
    assert sets.commit(set_id, sel1, m1, "first") == 1
    b = manifest(40_000)
    b.add("idc", ("nlst", "new", "st", "1.2.99999"), size=2_000_000_000, count=1, version="v1")
    m2 = b.build()
    sel2 = sel1.remove(Pointer.of("idc", "nlst", "p0", Modality="CT"))
    assert sets.commit(set_id, sel2, m2, "second") == 2
    assert len(node.store.state.manifests[m1.id]) > 1  # really chunked
    assert [v.message for v in sets.history(set_id)] == ["first", "second"]
    selection_diff, manifest_diff = sets.diff(set_id, 1, 2)
    assert manifest_diff.summary(LEVELS) == "+1 series (2.0 GB) in 1 study"
    assert selection_diff.apply(sel1) == sel2
    # Read back from the store itself, not the cache: verified against its id.
    sets.forget_manifests()
    assert sets.manifest(m1.id) == m1
    with pytest.raises(NotFound):
        sets.manifest("0" * 64)


def test_conflicting_commits_and_permissions_between_two_users(node: Node) -> None:
    owner = node.service.sets
    bob = Service(node.store, Identity.generate("bob"))
    bob.register()
    other = bob.sets
    set_id = owner.create("mine")
    with pytest.raises(NotFound):
        other.get(set_id)
    assert [rs.id for rs in other.list()] == []
    owner.grant_editor(set_id, bob.key_id)
    assert [rs.id for rs in other.list("shared")] == [set_id]
    owner.commit(set_id, Selection(), message="owner")
    other.commit(set_id, Selection.of(Pointer.of("idc", "x")), message="bob", expected_head=1)
    with pytest.raises(ConflictError) as info:
        owner.commit(set_id, Selection(), message="stale", expected_head=1)
    assert info.value.current_head == 2
    with pytest.raises(PermissionDenied):
        other.delete(set_id)
    owner.set_visibility(set_id, Visibility.PUBLIC)
    fork = other.duplicate(set_id, 2, "bob's fork")
    assert other.get(fork).forked_from == (set_id, 2)
    assert [rs.name for rs in other.list("mine")] == ["bob's fork"]
    other.follow(set_id)
    assert [rs.id for rs in other.list("following")] == [set_id]
    cited = DoiMetadata("Cited data", (Creator("Author, A."),), "Lab of Imaging", 2026)
    record = node.service.publishing.publish(set_id, 2, cited, service="")
    assert record.version == 2
    assert [rs.id for rs in owner.list("published")] == [set_id]


def test_owner_and_editors_rename_a_set_through_the_service(node: Node) -> None:
    owner = node.service.sets
    bob, carol = (Service(node.store, Identity.generate(name)) for name in ("bob", "carol"))
    bob.register()
    carol.register()
    set_id = owner.create("scans", "from the lab", Visibility.CLUSTER)
    owner.grant_editor(set_id, bob.key_id)
    changed: list[SetChanged] = []
    unsubscribe = node.events.subscribe(changed.append, SetChanged)
    owner.rename(set_id, "CT scans")
    assert [e.set_id for e in changed] == [set_id]  # emitted before the call returns
    unsubscribe()
    assert (owner.get(set_id).name, owner.get(set_id).description) == ("CT scans", "from the lab")
    bob.sets.rename(set_id, "CT scans, cleaned", "")
    assert (carol.sets.get(set_id).name, carol.sets.get(set_id).description) == ("CT scans, cleaned", "")
    with pytest.raises(PermissionDenied):
        carol.sets.rename(set_id, "mine now")
    with pytest.raises(ValidationError):
        owner.rename(set_id, "  ")
    assert owner.get(set_id).name == "CT scans, cleaned"


def test_events_reach_listeners_from_the_raft_thread(node: Node) -> None:
    got: list[Event] = []
    seen = threading.Event()

    def listener(event: Event) -> None:
        got.append(event)
        if isinstance(event, VersionCommitted):
            seen.set()

    unsubscribe = node.events.subscribe(listener)
    set_id = node.service.sets.create("watched")
    node.service.sets.commit(set_id, Selection())
    assert seen.wait(5)
    unsubscribe()
    kinds = [type(e) for e in got]
    assert SetChanged in kinds and VersionCommitted in kinds
    ids = [e.seq for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_concurrent_uploads_keep_each_manifests_chunks_in_order(node: Node) -> None:
    """Batches from many threads share the log; each upload's chunks must still arrive in order."""
    services = [Service(node.store, Identity.generate(f"uploader{i}")) for i in range(3)]
    manifests = []
    for i, service in enumerate(services):
        service.register()
        b = ManifestBuilder()
        for n in range(30_000):
            b.add(
                "idc", (f"c{i}", f"p{n // 10}", f"s{n // 5}", f"1.2.{i}.{n}"), size=n + 1, version=f"{n:040x}"
            )
        manifests.append(b.build())
    errors: list[BaseException] = []

    def upload(service: Service, manifest: object) -> None:
        try:
            service.sets.upload_manifest(manifest)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=pair) for pair in zip(services, manifests, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert all(m.id in node.store.state.manifests for m in manifests)
    assert all(len(node.store.state.manifests[m.id]) > 3 for m in manifests)


def test_a_set_downloads_through_the_service_and_again_only_what_changed(
    mediator_home: Path, tmp_path: Path
) -> None:
    from tests.helpers.dicom import make_series
    from tests.helpers.transfer import files_under

    folder = tmp_path / "scanner"
    make_series(folder, "P1", "1.2.1", "1.2.1.1", 2, modality="CT")
    lab = {"kind": "local", "id": "lab", "options": {"folder": str(folder)}}
    replace(Settings.load(), sources=(lab,)).save()
    with Node() as node:
        service = node.service
        source = service.archives.get("lab")
        source.reindex()  # type: ignore[attr-defined]
        set_id = service.sets.create("scans")
        selection = Selection.of(Pointer.of("lab"))
        service.sets.commit(set_id, selection, source.resolve(selection), "first")
        dest = tmp_path / "dest"
        request = DownloadRequest(set_id, dest, layout="{patient}/{series}")
        first = service.downloads.run(request)
        assert first.ok and files_under(dest) == ["P1/1.2.1.1/000000_0000.dcm", "P1/1.2.1.1/000001_0001.dcm"]
        make_series(folder, "P2", "1.2.2", "1.2.2.1", 1, modality="MR")
        source.reindex()  # type: ignore[attr-defined]
        service.sets.commit(set_id, selection, source.resolve(selection), "second")
        second = service.downloads.run(request)
        assert second.ok and len(second.fetched) == 1 and second.unchanged == 1
        assert [f.split("/")[0] for f in files_under(dest)] == ["P1", "P1", "P2"]
        assert service.downloads.run(replace(request, version=1)).removed == second.fetched
