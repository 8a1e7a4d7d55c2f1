"""Publishing with a DOI through a real node: the version is frozen at once, the DOI minted by the
queue on the publisher's node (DataCite and Zenodo emulators), retried while the service is down,
never minted twice, and cited with the source collections' DOIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.publishing import Creator, DoiMetadata
from mediator_desktop.core.selection import Selection
from mediator_desktop.node import Node
from tests.helpers.cluster_node import eventually
from tests.helpers.datacite_emulator import DataCiteEmulator
from tests.helpers.service import make_node
from tests.helpers.zenodo_emulator import ZenodoEmulator

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    monkeypatch.setenv("MEDIATOR_MINT_RETRY_SECONDS", "0.2")
    with make_node(tmp_path, "ann", update_check_minutes=0) as node:
        node.service.archives.add("idc", {}, source_id="idc")
        yield node


def _metadata(title: str = "RIDER lung CT, as used in our paper") -> DoiMetadata:
    return DoiMetadata(
        title=title,
        creators=(Creator("Doe, Jane", "Jane", "Doe", "0000-0002-1825-0097", "Lab of Imaging"),),
        publisher="Lab of Imaging",
        year=2026,
    )


def test_datacite_mints_one_findable_doi_though_the_service_is_down_at_first(node: Node) -> None:
    service = node.service
    with DataCiteEmulator() as datacite:
        service.settings.change(
            doi_service="datacite",
            doi_url=datacite.url,
            doi_repository="MEDIATOR.TEST",
            doi_prefix="10.80000",
        )
        service.publishing.set_secret("datacite", "secret")
        made = service.sets.create_from("rider", add=[Pointer.of("idc", "rider_pilot")])
        suggested = service.publishing.suggest(made.set_id)
        assert suggested.related and all(r.identifier.startswith("10.") for r in suggested.related)
        with pytest.raises(ValidationError, match=r"landing page"):
            service.publishing.publish(made.set_id, 1, _metadata())
        datacite.faults.add("create", "503", "503", "503")  # down for the first three tries

        record = service.publishing.publish(
            made.set_id, 1, _metadata(), landing_url="https://lab.example/rider"
        )

        assert record.doi_state == "queued" and service.sets.get(made.set_id).published == frozenset({1})
        assert eventually(lambda: service.publishing.get(made.set_id, 1).attempts >= 1, timeout=30)
        assert eventually(lambda: service.publishing.get(made.set_id, 1).doi_state == "findable", timeout=60)
        done = service.publishing.get(made.set_id, 1)
        assert (
            done.doi is not None and done.doi.startswith("10.80000/") and done.status() == f"DOI {done.doi}"
        )
        (minted,) = [r for r in datacite.records.values() if r.doi.lower() == done.doi.lower()]
        assert minted.state == "findable" and len(datacite.records) == 1
        citation = service.publishing.citation(made.set_id, 1)
        assert citation.text.startswith("Doe, Jane (2026). RIDER lung CT, as used in our paper (Version 1)")
        assert f"https://doi.org/{done.doi}" in citation.text and "@misc{Doe2026_v1" in citation.bibtex
        assert "rider_pilot (https://doi.org/10.7937/" in citation.availability


def test_zenodo_versions_share_one_concept_and_bad_credentials_wait_for_the_user(node: Node) -> None:
    service = node.service
    with ZenodoEmulator(token="zenodo-token") as zenodo:
        service.settings.change(doi_service="zenodo", doi_url=zenodo.url)
        service.publishing.set_secret("zenodo", "wrong-token")
        made = service.sets.create_from("rider", add=[Pointer.of("idc", "rider_pilot")])

        service.publishing.publish(made.set_id, 1, _metadata())
        assert eventually(lambda: service.publishing.get(made.set_id, 1).doi_state == "failed", timeout=30)
        assert "token" in service.publishing.get(made.set_id, 1).error.lower()

        service.publishing.set_secret("zenodo", "zenodo-token")
        service.publishing.retry(made.set_id, 1)
        assert eventually(lambda: service.publishing.get(made.set_id, 1).doi_state == "findable", timeout=30)
        first = service.publishing.get(made.set_id, 1)
        assert first.doi is not None and dict(first.steps).get("concept")
        # The deposit carries the version's RO-Crate: pointers into IDC and the DOI metadata, no data.
        (deposit,) = [d for d in zenodo.records.values() if d.submitted]
        (crate,) = deposit.files.values()
        assert crate.key == "rider_v1.ro-crate-metadata.json"
        graph = json.loads(crate.data)["@graph"]
        assert sum(1 for e in graph if str(e.get("@id", "")).startswith("s3://")) == len(
            service.sets.manifest(service.sets.version(made.set_id, 1).manifest_id)
        )

        # A new version of the set, published: a new version of the same Zenodo record.
        selection = Selection.of(Pointer.of("idc", "rider_pilot"), Pointer.of("idc", "rider_lung_ct"))
        assert service.sets.commit_selection(made.set_id, selection, "and RIDER Lung CT") == 2
        service.publishing.publish(made.set_id, 2, _metadata())
        assert eventually(lambda: service.publishing.get(made.set_id, 2).doi_state == "findable", timeout=30)
        second = service.publishing.get(made.set_id, 2)
        assert second.doi != first.doi and dict(second.steps)["concept"] == dict(first.steps)["concept"]
        assert len([d for d in zenodo.records.values() if d.submitted]) == 2
