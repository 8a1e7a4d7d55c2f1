"""The local API of a real node: tokens, loopback only, bad input, and schemathesis against its own
OpenAPI document (every generated request gets a documented answer, never a server error)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

from mediator_desktop.core.endpoint import ENDPOINT_FILE, Endpoint
from mediator_desktop.core.errors import NodeRunning
from mediator_desktop.node import Node
from tests.helpers.idc_world import IdcWorld

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node(world: IdcWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = tmp_path_factory.mktemp("home")
    with Node(world.settings(home), settings_path=home / "settings.json", api=True) as started:
        yield started


@pytest.fixture(scope="module")
def http(node: Node) -> Iterator[requests.Session]:
    assert node.api is not None
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {node.api.token}"
    yield session
    session.close()


def url(node: Node, path: str) -> str:
    assert node.api is not None
    return node.api.url + path


def a_set(node: Node, http: requests.Session, name: str = "lungs") -> dict[str, Any]:
    answer = http.post(
        url(node, "/v1/sets"),
        json={"name": name, "add": [{"source": "idc", "path": ["lung_a"], "filters": {"Modality": ["CT"]}}]},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_requests_without_or_with_a_wrong_token_get_401(node: Node, http: requests.Session) -> None:
    plain = requests.Session()
    plain.trust_env = False
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        answer = plain.get(url(node, "/v1/sets"), headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "local-api.json" in answer.json()["message"]
    assert http.get(url(node, "/v1/sets")).status_code == 200
    # The document that describes the API is public (it holds nothing of the user's).
    document = plain.get(url(node, "/openapi.json")).json()
    assert "/v1/sets/{set_id}/versions" in document["paths"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_only_loopback_can_connect_and_only_with_a_loopback_host_name(
    node: Node, http: requests.Session
) -> None:
    assert node.api is not None
    assert node.api.url == f"http://127.0.0.1:{node.api.port}"
    # Linux routes all of 127/8 to loopback, so 127.0.0.2 reaches a socket bound to any address,
    # but not one bound to 127.0.0.1 alone; the same goes for this machine's other addresses.
    others = ["127.0.0.2"] + [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    for address in others:
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection((address, node.api.port), timeout=2),
        ):
            pass
    # A page on another site that points a browser at the port (DNS rebinding) gets nothing.
    assert (
        http.get(url(node, "/v1/node"), headers={"Host": f"evil.example:{node.api.port}"}).status_code == 400
    )
    assert http.get(url(node, "/v1/node"), headers={"Host": f"localhost:{node.api.port}"}).status_code == 200


def test_endpoint_file_is_private_keeps_its_token_and_says_when_the_node_stopped(
    world: IdcWorld, tmp_path: Path
) -> None:
    settings = world.settings(tmp_path)
    with Node(settings, settings_path=tmp_path / "settings.json", api=True) as node:
        path = node.data_dir / ENDPOINT_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        first = Endpoint.read(node.data_dir)
        assert first is not None and first.pid == os.getpid() and first.alive()
        with pytest.raises(NodeRunning, match="already runs"):
            Node(settings, settings_path=tmp_path / "settings.json").start()
    stopped = Endpoint.read(settings.data_dir)
    assert stopped is not None and stopped.pid == 0 and not stopped.alive()
    with Node(settings, settings_path=tmp_path / "settings.json", api=True) as node:
        again = Endpoint.read(node.data_dir)
        assert again is not None and again.token == first.token and again.url != ""


def test_huge_bodies_are_refused_whether_announced_or_streamed(node: Node, http: requests.Session) -> None:
    big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    announced = http.post(url(node, "/v1/sets"), data=big, headers={"Content-Type": "application/json"})
    assert announced.status_code == 413 and "limited" in announced.json()["message"]
    streamed = http.post(
        url(node, "/v1/sets"),
        data=(big[i : i + 65536] for i in range(0, len(big), 65536)),  # chunked: no Content-Length
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert http.get(url(node, "/v1/sets")).status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/sets", {"name": 5}, 422),
        ("POST", "/v1/sets", {"name": "x", "visibility": "secret"}, 422),
        ("POST", "/v1/sets", {"name": "x", "add": [{"source": "idc", "path": "lung_a"}]}, 422),
        ("POST", "/v1/sets", {"name": "x", "unknown": 1}, 422),
        ("POST", "/v1/sets", [1, 2], 422),
        ("POST", "/v1/sets", {"name": "x", "add": [{"source": "tcia", "path": ["a"]}]}, 404),
        ("POST", "/v1/sets", {"name": "x", "add": [{"source": "idc", "path": ["a"] * 5}]}, 400),
        ("GET", "/v1/sets/..%2F..%2Fetc%2Fpasswd", None, 404),
        ("GET", "/v1/sets/..%2e%2e", None, 422),
        ("GET", "/v1/sets/../../etc/passwd", None, 404),
        ("GET", "/v1/sets/" + "0" * 32, None, 404),
        ("GET", "/v1/sources/..%2F..%2Fetc/browse", None, 404),
        ("GET", "/v1/sources/idc/browse?path=..&path=..&path=etc", None, 200),
        ("GET", "/v1/sources/idc/browse?path=lung_a&path=pa1&path=pa1.st&path=1.1", None, 400),
        ("GET", "/v1/sources/idc/browse?limit=-1", None, 422),
        ("GET", "/v1/sources/idc/browse?filter=Modality", None, 400),
        ("GET", "/v1/sources/idc/values/PatientSecret", None, 400),
        ("POST", "/v1/downloads", {"set_id": "0" * 32, "destination": "relative/dir"}, 400),
        ("POST", "/v1/downloads", {"set_id": "../x", "destination": "/tmp/x"}, 422),
        ("GET", "/v1/downloads/nope", None, 404),
        ("POST", "/v1/downloads/nope/explode", None, 422),
        ("POST", "/v1/cluster/join", {"code": "AAAA"}, 400),
    ],
)
def test_bad_input_gets_a_clear_typed_answer(
    node: Node, http: requests.Session, method: str, path: str, body: Any, status: int
) -> None:
    answer = http.request(method, url(node, path), json=body)
    assert answer.status_code == status, answer.text
    data = answer.json()
    if status == 422:
        assert data["detail"]
    elif isinstance(data, dict) and status != 200:
        assert data["error"] and len(data["message"]) > 10


def test_a_relative_download_destination_is_refused_before_anything_is_written(
    node: Node, http: requests.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rs = a_set(node, http, "relative")
    answer = http.post(url(node, "/v1/downloads"), json={"set_id": rs["id"], "destination": "here"})
    assert answer.status_code == 400 and "absolute" in answer.json()["message"]
    assert list(tmp_path.iterdir()) == []


def test_a_stale_head_is_a_409_that_carries_the_current_head(node: Node, http: requests.Session) -> None:
    rs = a_set(node, http, "conflict")
    more = {"add": [{"source": "idc", "path": ["lung_b"]}], "expected_head": 1}
    assert http.post(url(node, f"/v1/sets/{rs['id']}/versions"), json=more).json()["version"] == 2
    stale = http.post(
        url(node, f"/v1/sets/{rs['id']}/versions"),
        json={"add": [{"source": "idc", "path": ["other_c"]}], "expected_head": 1},
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "ConflictError" and stale.json()["current_head"] == 2


# -- schemathesis: the API keeps the promises of its own OpenAPI document ------------------------
def test_the_api_keeps_its_openapi_promises(node: Node, http: requests.Session) -> None:
    """Every operation, with generated requests (valid and not), answers as documented: no 5xx,
    bodies matching the document, invalid input refused. (Driven by hand: schemathesis's pytest
    plugin does not run on pytest 9.)

    Schema-valid requests may still break a rule of the domain that JSON Schema cannot say (a
    pointer deeper than its source's levels, a join code whose check digit is wrong); those get a
    typed 400 (see test_bad_input_gets_a_clear_typed_answer), so that one check is left out.
    """
    a_set(node, http, "for schemathesis")
    assert node.api is not None
    schema = schemathesis.openapi.from_url(url(node, "/openapi.json"))
    # Leaving the cluster restarts Raft with a fresh store: covered in test_cli, not fuzzed here.
    schema = schema.exclude(path="/v1/cluster/leave")
    auth = {"Authorization": f"Bearer {node.api.token}"}
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance])

        run()
    assert "POST /v1/sets/{set_id}/versions" in labels and len(labels) >= 25
