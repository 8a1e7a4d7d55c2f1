"""The service's parts over a real one-node Raft store and a local archive of generated DICOM files
(``tests.helpers.service``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mediator_desktop.core.errors import (
    ConflictError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from mediator_desktop.core.events import SetChanged, SettingsChanged
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.publishing import Creator, DoiMetadata
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Rule, Selection
from mediator_desktop.core.service import ImportResult, Service
from mediator_desktop.core.settings import Settings
from mediator_desktop.core.tree import TreeCache
from tests.helpers.service import P1, P1_SERIES, P2, P2_SERIES, SOURCE, World, recording


@pytest.fixture
def bob(lab: World) -> Service:
    return lab.service("bob")


# -- sets: writes ----------------------------------------------------------------------------------


def test_create_with_add_commits_a_first_version(alice: Service) -> None:
    set_id = alice.sets.create("Lung", "chest CTs", add=[P1], message="first pick")
    rs = alice.sets.get(set_id)
    assert (rs.name, rs.description, rs.owner, rs.head) == ("Lung", "chest CTs", alice.key_id, 1)
    assert rs.visibility is Visibility.PRIVATE
    version = alice.sets.version(set_id)
    assert (version.number, version.author, version.message) == (1, alice.key_id, "first pick")
    assert version.selection == Selection.of(P1)
    assert [leaf.path for leaf in alice.sets.manifest(version.manifest_id)] == [P1_SERIES]
    assert [v.number for v in alice.sets.history(set_id)] == [1]


def test_create_without_pointers_makes_an_empty_set(alice: Service) -> None:
    set_id = alice.sets.create("Empty", visibility=Visibility.CLUSTER)
    rs = alice.sets.get(set_id)
    assert rs.head is None and rs.visibility is Visibility.CLUSTER
    assert alice.sets.history(set_id) == []
    with pytest.raises(NotFound):
        alice.sets.version(set_id)


def test_create_checks_pointers_before_creating_anything(alice: Service) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        alice.sets.create("Bad", add=[Pointer.of("nowhere", "x")])
    with pytest.raises(ValidationError, match="levels"):
        alice.sets.create("Too deep", add=[Pointer.of(SOURCE, *P1_SERIES, "extra")])
    assert alice.sets.list() == []


def test_update_returns_none_when_nothing_changed(alice: Service) -> None:
    set_id = alice.sets.create("Lung", add=[P1])
    assert alice.sets.update(set_id, add=[P1]) is None
    # A pointer inside one already included changes nothing either.
    assert alice.sets.update(set_id, add=[Pointer.of(SOURCE, *P1_SERIES)]) is None
    assert alice.sets.update(set_id, message="nothing") is None
    assert len(alice.sets.history(set_id)) == 1

    assert alice.sets.update(set_id, add=[P2], message="both") == 2
    assert alice.sets.update(set_id, remove=[P2]) == 3
    first, second, third = alice.sets.history(set_id)
    assert third.selection == first.selection and third.manifest_id == first.manifest_id
    assert [leaf.path for leaf in alice.sets.manifest(second.manifest_id)] == [P1_SERIES, P2_SERIES]


def test_update_on_a_stale_head_conflicts_with_the_current_head(alice: Service) -> None:
    set_id = alice.sets.create("Lung", add=[P1])
    alice.sets.update(set_id, add=[P2])
    with pytest.raises(ConflictError) as raised:
        alice.sets.update(set_id, remove=[P1], expected_head=1)
    assert raised.value.current_head == 2
    assert alice.sets.get(set_id).head == 2


def test_commit_selection_resolves_against_the_archives(alice: Service) -> None:
    set_id = alice.sets.create("Heads")
    number = alice.sets.commit_selection(set_id, Selection.of(Pointer.of(SOURCE, Modality="MR")), "MR only")
    assert number == 1
    manifest = alice.sets.manifest(alice.sets.version(set_id).manifest_id)
    assert [leaf.path for leaf in manifest] == [P2_SERIES]


def test_rename_by_the_owner_changes_the_name_and_emits_set_changed(alice: Service) -> None:
    set_id = alice.sets.create("Lung", "chest CTs", add=[P1])
    with recording(alice, SetChanged) as seen:
        alice.sets.rename(set_id, "Lung screening")
    rs = alice.sets.get(set_id)
    assert (rs.name, rs.description, rs.head) == ("Lung screening", "chest CTs", 1)
    assert [e.set_id for e in seen if isinstance(e, SetChanged)] == [set_id]
    alice.sets.rename(set_id, "Lung screening", description="")
    assert alice.sets.get(set_id).description == ""
    with pytest.raises(ValidationError):
        alice.sets.rename(set_id, "")
    assert alice.sets.get(set_id).name == "Lung screening"


def test_rename_needs_an_editor(alice: Service, bob: Service) -> None:
    set_id = alice.sets.create("Lung", visibility=Visibility.CLUSTER)
    with pytest.raises(PermissionDenied):
        bob.sets.rename(set_id, "Mine now")
    assert bob.sets.get(set_id).name == "Lung"
    alice.sets.grant_editor(set_id, bob.key_id)
    bob.sets.rename(set_id, "Renamed by an editor")
    assert alice.sets.get(set_id).name == "Renamed by an editor"
    with pytest.raises(NotFound):
        bob.sets.rename("0" * 32, "no such set")


def test_duplicate_and_delete(alice: Service, bob: Service) -> None:
    set_id = alice.sets.create("Lung", add=[P1, P2], visibility=Visibility.PUBLIC)
    fork = bob.sets.duplicate(set_id)
    rs = bob.sets.get(fork)
    assert (rs.name, rs.owner, rs.head, rs.forked_from) == ("Lung (fork)", bob.key_id, 1, (set_id, 1))
    assert bob.sets.version(fork).manifest_id == alice.sets.version(set_id).manifest_id
    with pytest.raises(PermissionDenied):
        bob.sets.delete(set_id)
    bob.sets.delete(fork)
    assert bob.sets.find(fork) is None
    with pytest.raises(NotFound):
        bob.sets.get(fork)


# -- sets: reads -----------------------------------------------------------------------------------
def test_list_scopes(alice: Service, bob: Service) -> None:
    mine = alice.sets.create("a mine")
    clustered = bob.sets.create("b cluster", visibility=Visibility.CLUSTER)
    public = bob.sets.create("b public", add=[P1], visibility=Visibility.PUBLIC)
    shared = bob.sets.create("b private, alice edits")
    hidden = bob.sets.create("b private")
    bob.sets.grant_editor(shared, alice.key_id)
    bob.publishing.publish(
        public, 1, DoiMetadata("A public lung set", (Creator("Bob"),), "Lab", 2026), service=""
    )
    alice.sets.follow(clustered)

    def names(scope: str) -> list[str]:
        return [rs.id for rs in alice.sets.list(scope)]

    assert names("all") == [mine, clustered, shared, public]  # by name
    assert names("mine") == [mine]
    assert names("shared") == [shared]
    assert names("cluster") == [clustered]
    assert names("public") == [public]
    assert names("published") == [public]
    assert names("following") == [clustered]
    assert hidden not in {rs.id for rs in alice.sets.list()}
    assert mine not in {rs.id for rs in bob.sets.list()}
    with pytest.raises(ValidationError, match="scope"):
        alice.sets.list("everything")


def test_get_of_an_unknown_or_hidden_set_is_not_found(alice: Service, bob: Service) -> None:
    with pytest.raises(NotFound):
        alice.sets.get("f" * 32)
    assert alice.sets.find("f" * 32) is None
    private = alice.sets.create("Private", add=[P1])
    with pytest.raises(NotFound):
        bob.sets.get(private)
    with pytest.raises(NotFound):
        bob.sets.history(private)
    with pytest.raises(NotFound):
        bob.sets.version(private, 1)
    with pytest.raises(NotFound, match="no version 5"):
        alice.sets.version(private, 5)
    with pytest.raises(NotFound):
        alice.sets.manifest("0" * 64)


def test_diff_summarises_what_changed(alice: Service) -> None:
    set_id = alice.sets.create("Lung", add=[P1])
    alice.sets.update(set_id, add=[P2])
    selection_diff, manifest_diff = alice.sets.diff(set_id, 1)  # to the head
    assert selection_diff.added == {Rule(P2)} and not selection_diff.removed
    assert [leaf.path for leaf in manifest_diff.added] == [P2_SERIES]
    assert not manifest_diff.removed and not manifest_diff.changed
    summary = manifest_diff.summary(alice.archives.hierarchies())
    assert re.fullmatch(r"\+1 series \([0-9.]+ KB\) in 1 study", summary), summary
    back, backwards = alice.sets.diff(set_id, 2, 1)
    assert back.removed == {Rule(P2)}
    back_summary = backwards.summary(alice.archives.hierarchies())
    assert re.fullmatch(r"-1 series \([0-9.]+ KB\) in 1 study", back_summary), back_summary
    fork = alice.sets.duplicate(set_id)
    same, nothing = alice.sets.diff(set_id, 2, 1, other_set=fork)
    assert not same and not nothing
    assert nothing.summary() == "no changes"


def test_export_and_import_round_trip(alice: Service, bob: Service, tmp_path: Path) -> None:
    set_id = alice.sets.create("Lung", "two patients", add=[P1, P2], visibility=Visibility.CLUSTER)
    alice.sets.update(set_id, remove=[Pointer.of(SOURCE, *P2_SERIES)])
    exported = alice.sets.export(set_id, 1)
    assert exported["name"] == "Lung" and exported["exported_from"] == {"set_id": set_id, "version": 1}
    path = tmp_path / "lung.json"
    path.write_text(json.dumps(exported))

    result = bob.sets.import_file(path)
    assert isinstance(result, ImportResult)
    assert (result.version, result.missing) == (1, ())
    assert result.pointers == len(alice.sets.version(set_id, 1).selection)
    rs = bob.sets.get(result.set_id)
    assert (rs.name, rs.description, rs.owner) == ("Lung", "two patients", bob.key_id)
    imported = bob.sets.version(result.set_id)
    assert imported.selection == alice.sets.version(set_id, 1).selection
    assert imported.manifest_id == alice.sets.version(set_id, 1).manifest_id


def test_import_of_a_malformed_file_creates_nothing(alice: Service, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ValidationError):
        alice.sets.import_file(path)
    assert alice.sets.list() == []


def test_tree_summaries_and_totals(lab: World, tmp_path: Path) -> None:
    carol = lab.service("carol", tree_cache=TreeCache(tmp_path / "trees"))
    set_id = carol.sets.create("Both", add=[P1, P2])
    manifest_id = carol.sets.version(set_id).manifest_id
    manifest = carol.sets.manifest(manifest_id)
    assert carol.sets.tree(manifest_id) is not None
    assert carol.sets.totals(manifest_id) == (2, manifest.total_size)
    plain = lab.service("dave")
    assert plain.sets.tree(manifest_id) is None
    assert plain.sets.totals(manifest_id) == (2, manifest.total_size)


# -- archives --------------------------------------------------------------------------------------
def test_archives_browse_search_and_filter(alice: Service) -> None:
    archives = alice.archives
    assert archives.ids() == [SOURCE]
    assert archives.hierarchies()[SOURCE].levels == ("patient", "study", "series")
    assert [i.key for i in archives.browse(SOURCE).items] == ["P1", "P2"]
    assert [i.key for i in archives.browse(SOURCE, ("P2", "1.2.2")).items] == ["1.2.2.1"]
    assert [i.key for i in archives.search(SOURCE, "p2")] == ["P2"]
    assert archives.filter_values(SOURCE, "Modality") == ["CT", "MR"]
    with pytest.raises(ValidationError, match="cannot filter"):
        archives.filter_values(SOURCE, "Manufacturer")
    manifest = archives.resolve(Selection.of(P1, P2))
    assert [leaf.path for leaf in manifest] == [P1_SERIES, P2_SERIES]


def test_archives_browse_of_a_leaf_is_refused(alice: Service) -> None:
    with pytest.raises(ValidationError, match="no children"):
        alice.archives.browse(SOURCE, P1_SERIES)


def test_archives_get_of_an_unknown_source_is_not_found(alice: Service, lab: World) -> None:
    with pytest.raises(NotFound, match="configured: lab"):
        alice.archives.get("tcia")
    with pytest.raises(NotFound):
        alice.archives.browse("tcia")
    assert alice.archives.get(SOURCE) is lab.source
    assert alice.archives.title("tcia") == "tcia"
    assert alice.archives.title(SOURCE) == lab.source.title
    nothing = lab.service("erin", sources=False)
    assert nothing.archives.ids() == [] and nothing.archives.all() == []
    with pytest.raises(NotFound, match="configured: none"):
        nothing.archives.get(SOURCE)


# -- settings --------------------------------------------------------------------------------------
def test_settings_change_of_a_live_field(alice: Service) -> None:
    with recording(alice, SettingsChanged) as seen:
        change = alice.settings.change(download_layout="{patient}/{series}", update_check_minutes=15)
    assert change.changed == ("download_layout", "update_check_minutes")
    assert change.restart == ()
    assert change.settings == alice.settings.get()
    assert alice.downloads.default_layout() == "{patient}/{series}"
    assert seen == [SettingsChanged(change.changed, (), seq=seen[0].seq)]
    saved = Settings.load(alice.settings.path)
    assert (saved.download_layout, saved.update_check_minutes) == ("{patient}/{series}", 15)


def test_settings_change_of_a_restart_field(alice: Service) -> None:
    with recording(alice, SettingsChanged) as seen:
        change = alice.settings.change(discovery=True, download_layout="{series}")
    assert change.changed == ("download_layout", "discovery")  # in declaration order
    assert change.restart == ("discovery",)
    assert [(e.changed, e.restart) for e in seen if isinstance(e, SettingsChanged)] == [
        (("download_layout", "discovery"), ("discovery",))
    ]
    assert Settings.load(alice.settings.path).discovery is True


def test_settings_change_to_the_same_values_changes_nothing(alice: Service) -> None:
    current = alice.settings.get()
    with recording(alice, SettingsChanged) as seen:
        change = alice.settings.change(download_layout=current.download_layout)
    assert (change.changed, change.restart) == ((), ())
    assert seen == []


def test_display_name_change_registers_the_user_again(alice: Service, bob: Service) -> None:
    assert bob.users()[alice.key_id] == "alice"
    change = alice.settings.change(display_name="Alice Liddell")
    assert change.restart == ()
    assert alice.display_name == "Alice Liddell"
    assert bob.users()[alice.key_id] == "Alice Liddell"
    # The renamed user goes on signing commands as before.
    set_id = alice.sets.create("After the rename")
    assert bob.users()[alice.sets.get(set_id).owner] == "Alice Liddell"


def test_settings_validate_refuses_without_saving(alice: Service) -> None:
    path = alice.settings.path
    before = alice.settings.get()
    with pytest.raises(ValidationError, match="no such setting: colour"):
        alice.settings.validate(colour="blue")
    with pytest.raises(ValidationError, match="update check interval"):
        alice.settings.validate(update_check_minutes=-1)
    with pytest.raises(ValidationError, match="whole number"):
        alice.settings.validate(update_check_minutes="often")
    with pytest.raises(ValidationError):
        alice.settings.validate(download_layout="")
    proposed = alice.settings.validate(update_check_minutes=30)
    assert proposed.update_check_minutes == 30
    assert alice.settings.validate(update_check_minutes=0).update_check_minutes == 0  # no checks
    assert alice.settings.get() == before
    assert not path.exists()  # nothing was ever saved


def test_settings_change_refuses_without_saving(alice: Service) -> None:
    alice.settings.change(update_check_minutes=60)
    saved = alice.settings.path.read_text()
    with recording(alice, SettingsChanged) as seen:
        with pytest.raises(ValidationError):
            alice.settings.change(colour="blue")
        with pytest.raises(ValidationError):
            alice.settings.change(update_check_minutes=-1)
        with pytest.raises(ValidationError):
            alice.settings.change(display_name="   ")
    assert seen == []
    assert alice.settings.path.read_text() == saved
    assert alice.settings.get().update_check_minutes == 60
    assert alice.display_name == "alice"


def test_settings_fields_say_what_applies_live(alice: Service) -> None:
    fields = {f.name: f for f in alice.settings.fields()}
    assert set(fields) == {f.name for f in Settings.field_info()}
    assert {name for name, f in fields.items() if f.live} == {
        "download_dir",
        "download_layout",
        "display_name",
        "sources",
        "start_at_login",
        "update_check_minutes",
        "doi_service",
        "doi_url",
        "doi_repository",
        "doi_prefix",
        "publisher",
    }
    assert all(f.title and f.description for f in fields.values())
    assert alice.settings.data_dir == alice.settings.get().data_dir


def test_an_empty_source_secret_is_refused(alice: Service) -> None:
    with pytest.raises(ValidationError, match="empty"):
        alice.settings.set_source_secret(SOURCE, "")


# -- who you are, and the cluster ------------------------------------------------------------------
def test_users_and_register(lab: World, alice: Service, bob: Service) -> None:
    assert alice.users() == {alice.key_id: "alice", bob.key_id: "bob"}
    applied = lab.store.state.applied
    alice.register()  # known, under the same name: nothing to replicate
    assert lab.store.state.applied == applied


def test_a_service_without_a_node_has_no_cluster(alice: Service) -> None:
    with pytest.raises(ValidationError, match="no cluster"):
        alice.cluster.status()
