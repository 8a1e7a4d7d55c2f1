"""The original MEDIator's scenario, end to end, with real parts: TCIA (the NBIA emulator serving
the radiology of NSCLC Radiogenomics' real patients, as IDC's index lists them), an S3 bucket of
"genomic" files for the same patients under a key template (moto's S3 server), and a clinical CSV.

Ann builds "current smokers, stage II: CT + genomic files" through the SDK on her node and shares
it; Bob, on a second node of the cluster, downloads it (each patient's CT and genomic files under one
patient folder). Ann's CSV changes (two patients change stage); Bob's check finds the drift, he
accepts it, and downloading the changes fetches only the newcomer's files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from mediator_desktop.core.downloads import DownloadRequest
from mediator_desktop.core.manifest import decode_key
from mediator_desktop.core.replica import Visibility
from mediator_desktop.node import Node
from mediator_desktop.sdk import Mediator
from tests.helpers.cluster_node import eventually
from tests.helpers.s3 import MotoServer
from tests.helpers.service import make_node
from tests.helpers.tcia_emulator import TciaEmulator, catalogue_from_idc

pytestmark = pytest.mark.timeout(240)

COLLECTION = "NSCLC-RADIOGENOMICS"
LAYOUT = "{patient}/{source}/{study}/{modality}_{series}"
#: The trial's patients: who smokes, at which stage. Current smokers at stage II: AMC-001, AMC-003.
CSV = """Case ID,Smoking status,Pathological stage,Age at histological diagnosis,Date of diagnosis
AMC-001,Current,II,68,2004-03-12
AMC-002,Former,IIA,71,2005-07-01
AMC-003,Current,IIB,59,2003-11-20
AMC-004,Current,I,63,2006-01-15
AMC-005,Never,II,77,2004-09-30
AMC-006,Current,III,55,
"""
#: AMC-004 is restaged to IIA (joins the cohort), AMC-003 to III (leaves it).
CSV_LATER = CSV.replace("AMC-004,Current,I,", "AMC-004,Current,IIA,").replace(
    "AMC-003,Current,IIB,", "AMC-003,Current,III,"
)


@pytest.fixture
def archives() -> Iterator[tuple[TciaEmulator, MotoServer]]:
    with ExitStack() as stack:
        catalogue = [s for s in catalogue_from_idc(("nsclc_radiogenomics",), 6, 2) if s.modality == "CT"]
        tcia = stack.enter_context(TciaEmulator(catalogue))
        moto = MotoServer().start()
        stack.callback(moto.stop)
        s3 = moto.client()
        s3.create_bucket(Bucket="genomics")
        for n in range(1, 8):  # AMC-007 has genomic files but is not in the trial
            patient = f"AMC-00{n}"
            s3.put_object(Bucket="genomics", Key=f"{patient}/rnaseq/{patient}.counts.tsv", Body=b"g\t1\n" * n)
            s3.put_object(Bucket="genomics", Key=f"{patient}/wes/{patient}.vcf", Body=b"##vcf\n" * n)
        yield tcia, moto


def _add_archives(node: Node, tcia: TciaEmulator, moto: MotoServer) -> None:
    node.service.archives.add("tcia", {"base_url": tcia.v4}, source_id="tcia")
    node.service.archives.add(
        "s3",
        {"buckets": "genomics", "endpoint_url": moto.url, "key_template": "{patient}/{kind}/..."},
        source_id="s3",
        secret="test:test",
    )


def test_smokers_at_stage_two_ct_and_genomics_shared_updated_and_downloaded(
    tmp_path: Path, archives: tuple[TciaEmulator, MotoServer]
) -> None:
    tcia, moto = archives
    with ExitStack() as stack:
        ann_node = stack.enter_context(make_node(tmp_path, "ann", api=True, update_check_minutes=0))
        bob_node = stack.enter_context(make_node(tmp_path, "bob", update_check_minutes=0))
        bob_node.service.cluster.join(ann_node.service.cluster.create_join_code())
        assert eventually(lambda: len(ann_node.service.cluster.status().members) == 2)
        for node in (ann_node, bob_node):
            _add_archives(node, tcia, moto)
        csv = tmp_path / "trial.csv"
        csv.write_text(CSV)

        # Ann, through the SDK: the table, the cohort, the set, shared with the cluster.
        ann = stack.enter_context(Mediator(settings_path=ann_node.settings_path, start=False))
        table = ann.add_table(csv, name="trial")
        assert (table.key_column, table.rows) == ("Case ID", 6)
        cohort = ann.cohort(
            "trial",
            "Smoking status=Current",
            "Pathological stage=II,IIA,IIB",
            into=[f"tcia/{COLLECTION}?Modality=CT", "s3/genomics"],
        )
        made = ann.create_set("current smokers, stage II", add=[cohort])
        assert made.warnings == []  # both patients have CT and genomic files
        set_id = made.id
        assert eventually(lambda: bob_node.service.key_id in ann_node.service.users())
        ann.share(set_id, visibility="cluster", editors=[bob_node.service.key_id])

        # Bob, on the other node: the set, resolved from the replicated table, downloaded.
        bob = bob_node.service
        assert eventually(lambda: bob.sets.find(set_id))  # replication has no callback to wait on
        bob.sets.follow(set_id)
        folder = tmp_path / "bob-data"
        first = bob.downloads.run(DownloadRequest(set_id, folder, layout=LAYOUT))
        assert first.ok, first.summary()
        patients = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert patients == ["AMC-001", "AMC-003"]
        for patient in patients:  # CT, genomic files and the clinical row, under one folder
            kinds = {p.name for p in (folder / patient).iterdir()}
            assert kinds == {"tcia", "s3", "clinical"}, kinds
            assert {f.name for f in (folder / patient / "s3").rglob("*") if f.is_file()} == {
                f"{patient}.counts.tsv",
                f"{patient}.vcf",
            }

        # The CSV changes: AMC-004 joins the cohort, AMC-003 leaves it.
        csv.write_text(CSV_LATER)
        assert ann.add_table(csv, name="trial").number == 2
        # Bob's node checks once the new version has reached it (acknowledged on Ann's side first):
        # a check between the cohort's expansion and the table's own resolution would see half of it.
        assert eventually(lambda: bob.clinical.get("trial").number == 2)
        (outcome,) = bob.tracking.check([set_id])
        assert outcome.new and not outcome.error, outcome.line()
        drift = bob.tracking.drift(set_id)
        assert drift is not None
        assert "clinical: +1 patient" in drift.summary and "s3: +2 objects (40 B), 2 removed" in drift.summary
        assert drift.revised == 0

        accepted = bob.tracking.accept(set_id)
        assert accepted.version == 2
        changes = bob.downloads.run(DownloadRequest(set_id, folder, layout=LAYOUT, prune=True))
        assert changes.ok, changes.summary()
        # Every leaf path names its patient second: (table|collection|bucket, patient, ...).
        assert {decode_key(key)[1][1] for key in changes.fetched} == {"AMC-004"}, changes.fetched
        assert changes.unchanged == len(bob.sets.manifest(bob.sets.version(set_id, 1).manifest_id)) - len(
            changes.removed
        )
        kept = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert kept == ["AMC-001", "AMC-004"]
        assert ann_node.service.sets.get(set_id).visibility is Visibility.CLUSTER
