from __future__ import annotations

from pathlib import Path

import pytest

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.keystore import source_secret, store_source_secret
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.sources.dicomweb import DicomWebSource
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.local import LocalFolderSource
from mediator_desktop.sources.registry import build, kinds
from mediator_desktop.sources.tcia import TciaSource


def test_the_four_kinds_are_installed_entry_points() -> None:
    assert {"idc", "tcia", "dicomweb", "local"} <= set(kinds())


def test_build_from_settings_with_secrets_from_the_keystore(tmp_path: Path) -> None:
    store_source_secret(tmp_path, "pacs", "s3cret")
    assert source_secret(tmp_path, "pacs") == "s3cret"
    assert source_secret(tmp_path, "other") is None
    sources = build(
        [
            {"kind": "idc"},
            {
                "kind": "tcia",
                "id": "nlst",
                "options": {"base_url": "http://127.0.0.1:1/nbia-api/services/v4/"},
            },
            {
                "kind": "dicomweb",
                "id": "pacs",
                "options": {"base_url": "http://127.0.0.1:1/dicom-web", "username": "lab"},
            },
            {"kind": "local", "id": "scanner", "options": {"folder": str(tmp_path / "export")}},
        ],
        tmp_path,
        lambda source_id: source_secret(tmp_path, source_id),
    )
    assert isinstance(sources["idc"], IdcSource)
    assert isinstance(sources["nlst"], TciaSource) and sources["nlst"].source_id == "nlst"
    pacs = sources["pacs"]
    assert isinstance(pacs, DicomWebSource) and pacs._session.auth == ("lab", "s3cret")
    assert isinstance(sources["scanner"], LocalFolderSource)
    sources["scanner"].close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ([{"kind": "ftp"}], "unknown source kind 'ftp'"),
        ([{"kind": "idc", "index": "/x.parquet"}], "unknown settings 'index'"),
        ([{"kind": "idc"}, {"kind": "idc"}], "unique"),
        ([{"kind": "dicomweb", "id": "p"}], "needs a base_url"),
        ([{"kind": "local", "id": "l"}], "needs a folder"),
    ],
)
def test_bad_source_configs(tmp_path: Path, configs: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build(configs, tmp_path, lambda _: None)


def test_secrets_never_go_into_settings() -> None:
    with pytest.raises(ValidationError, match="secrets go to the OS keyring"):
        Settings(sources=({"kind": "dicomweb", "id": "p", "options": {"base_url": "x", "password": "no"}},))


def test_a_node_builds_its_sources_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        sources=({"kind": "idc"}, {"kind": "tcia", "options": {"base_url": "http://127.0.0.1:1/v4/"}})
    )
    with Node(settings) as node:
        assert sorted(node.service.archives.ids()) == ["idc", "tcia"]
    assert Settings.from_json(settings.to_json()) == settings
