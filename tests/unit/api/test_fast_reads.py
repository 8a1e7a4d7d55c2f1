"""``GET /v1/sets/{id}`` answered from ``api.fast``'s kept answers: byte for byte the route's
answer, and never older than the store: a write is seen by the next read, a reader who lost the
right to read gets the route's own 404, a new owner name or a whole new replica shows at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mediator_desktop.api.fast import SetAnswers
from mediator_desktop.api.server import LocalApi
from mediator_desktop.core.events import StateReloaded
from mediator_desktop.core.replica import Visibility
from mediator_desktop.core.selection import Selection
from mediator_desktop.core.service import Service
from tests.helpers.service import P1, P2, World, world


class Client:
    """Bob's local API, as a program on his machine calls it (``get(path, headers=...)``)."""

    def __init__(self, api: LocalApi) -> None:
        self.api = api
        self.token = api.token
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {api.token}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.api.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.api.url + path, timeout=30, **kwargs)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path) as w:
        yield w


@pytest.fixture
def ann(lab: World) -> Service:
    return lab.service("ann")


@pytest.fixture
def bob(lab: World) -> Service:
    return lab.service("bob")


@pytest.fixture
def http(bob: Service) -> Iterator[Client]:
    bob.settings.get().data_dir.mkdir(parents=True, exist_ok=True)  # as a node makes it
    api = LocalApi(bob).start()
    client = Client(api)
    try:
        yield client
    finally:
        client.session.close()
        api.stop()


def answers(http: Client) -> SetAnswers:
    kept: SetAnswers = http.api.app.state.set_answers
    return kept


def a_set(ann: Service, name: str = "lungs") -> str:
    set_id = ann.sets.create(name, visibility=Visibility.CLUSTER)
    ann.sets.commit(set_id, Selection.of(P1), message="first")
    return set_id


def read(http: Client, set_id: str) -> Any:
    answer = http.get(f"/v1/sets/{set_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_kept_answer_is_the_routes_answer_byte_for_byte(http: Client, ann: Service) -> None:
    set_id = a_set(ann)
    kept = answers(http)
    first = http.get(f"/v1/sets/{set_id}")  # made by the route, then kept
    again = http.get(f"/v1/sets/{set_id}")
    assert (kept.misses, kept.hits) == (1, 1)
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again.headers.items() == first.headers.items()
    assert first.json()["head"] == 1 and first.json()["owner_name"] == "ann"
    # A query string the route ignores changes nothing either.
    assert http.get(f"/v1/sets/{set_id}?x=1").content == first.content


def test_a_write_is_seen_by_the_next_read(http: Client, ann: Service, bob: Service) -> None:
    set_id = a_set(ann)
    assert read(http, set_id)["head"] == 1
    ann.sets.commit(set_id, Selection.of(P1, P2), message="more")
    assert read(http, set_id)["head"] == 2
    ann.sets.rename(set_id, "lungs and heads", "now with MR")
    renamed = read(http, set_id)
    assert (renamed["name"], renamed["description"]) == ("lungs and heads", "now with MR")
    bob.sets.follow(set_id)  # the reader's own change, through the store like any other
    assert read(http, set_id)["following"] is True
    ann.sets.grant_editor(set_id, bob.key_id)
    assert read(http, set_id)["editors"] == [bob.key_id]
    assert answers(http).hits == 0  # every read came after a change


def test_a_reader_who_may_no_longer_read_gets_the_routes_404(
    http: Client, ann: Service, bob: Service
) -> None:
    set_id = a_set(ann)
    assert read(http, set_id)["visibility"] == "cluster"
    read(http, set_id)
    assert answers(http).hits == 1
    ann.sets.set_visibility(set_id, Visibility.PRIVATE)
    hidden = http.get(f"/v1/sets/{set_id}")
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
    ann.sets.grant_editor(set_id, bob.key_id)  # an editor reads a private set
    assert read(http, set_id)["visibility"] == "private"
    read(http, set_id)
    ann.sets.revoke_editor(set_id, bob.key_id)
    assert http.get(f"/v1/sets/{set_id}").status_code == 404
    ann.sets.delete(set_id)
    assert http.get(f"/v1/sets/{set_id}").status_code == 404


def test_a_new_owner_name_and_a_new_replica_show_at_once(http: Client, ann: Service, lab: World) -> None:
    set_id = a_set(ann)
    assert read(http, set_id)["owner_name"] == "ann"
    ann.settings.change(display_name="Ann Smith")  # registers the user again: UserRegistered
    assert read(http, set_id)["owner_name"] == "Ann Smith"
    read(http, set_id)
    hits = answers(http).hits
    lab.store.events.emit(StateReloaded())  # as after a leader's snapshot
    read(http, set_id)
    assert answers(http).hits == hits  # made again, not taken from before the reload


def test_only_plain_authorised_loopback_reads_take_the_short_way(http: Client, ann: Service) -> None:
    set_id = a_set(ann)
    read(http, set_id)
    kept = answers(http)
    before = (kept.hits, kept.misses)
    wrong = http.get(f"/v1/sets/{set_id}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert http.get(f"/v1/sets/{set_id}", headers={"Authorization": ""}).status_code == 401
    evil = http.get(f"/v1/sets/{set_id}", headers={"Host": "evil.example"})
    assert evil.status_code == 400
    assert http.get(f"/v1/sets/{set_id}", headers={"Host": "localhost:abc"}).status_code == 400
    # Another spelling of the scheme is the route's to judge (it takes it).
    assert (
        http.get(f"/v1/sets/{set_id}", headers={"Authorization": f"bearer {http.token}"}).status_code == 200
    )
    assert http.get(f"/v1/sets/{'f' * 32}").status_code == 404
    assert http.post(f"/v1/sets/{set_id}").status_code == 405
    assert (kept.hits, kept.misses) == before
    assert http.get(f"/v1/sets/{set_id}", headers={"Host": "LOCALHOST"}).status_code == 200
    assert kept.hits == before[0] + 1


def test_an_answer_made_while_the_set_changed_is_not_kept(
    http: Client, ann: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_id = a_set(ann)
    kept = answers(http)
    taken = SetAnswers.key
    calls: list[int] = []

    def changing(self: SetAnswers, set_id: str) -> tuple[Any, ...] | None:
        key = taken(self, set_id)
        if not calls:  # between the first look and the route: a commit lands
            ann.sets.commit(set_id, Selection.of(P2), message="meanwhile")
        calls.append(1)
        return key

    monkeypatch.setattr(SetAnswers, "key", changing)
    assert read(http, set_id)["head"] == 2  # the route saw the commit...
    monkeypatch.undo()
    assert read(http, set_id)["head"] == 2  # ...and its answer was not kept: made again
    assert (kept.hits, kept.misses) == (0, 2)
    read(http, set_id)
    assert (kept.hits, kept.misses) == (1, 2)


def test_few_answers_are_kept(lab: World, ann: Service, bob: Service) -> None:
    kept = SetAnswers(bob, kept=2)
    ids = [a_set(ann, f"lungs {i}") for i in range(3)]
    for set_id in ids:
        key = kept.key(set_id)
        assert key is not None
        kept.put(set_id, key, {"type": "http.response.start", "status": 200}, b"{}")
    assert kept.get(ids[0], kept.key(ids[0]) or ()) is None
    assert kept.get(ids[2], kept.key(ids[2]) or ()) is not None
    kept.close()
