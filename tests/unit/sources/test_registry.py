"""The source kinds: what they are and take (``describe``), building them from settings, and each
kind's "Test connection" check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mediator_desktop.core.errors import SourceError, ValidationError
from mediator_desktop.core.keystore import source_secret, store_source_secret
from mediator_desktop.core.settings import Settings
from mediator_desktop.node import Node
from mediator_desktop.sources.dicomweb import DicomWebSource
from mediator_desktop.sources.idc import IdcSource
from mediator_desktop.sources.local import LocalFolderSource
from mediator_desktop.sources.registry import build, build_one, describe, kinds
from mediator_desktop.sources.tcia import DEFAULT_URL, TciaSource
from tests.helpers.tcia_emulator import TciaEmulator


def test_the_four_kinds_are_installed_entry_points() -> None:
    assert {"idc", "tcia", "dicomweb", "local"} <= set(kinds())


def test_describe_lists_every_kind_with_its_options() -> None:
    described = describe()
    assert {"idc", "tcia", "dicomweb", "local"} <= set(described)
    options = {
        name: {o.name: o for o in described[name].options} for name in ("idc", "tcia", "dicomweb", "local")
    }
    assert set(options["idc"]) == {"index", "endpoint_url", "index_url"}
    assert not any(o.required for o in options["idc"].values()) and described["idc"].secret is None
    assert options["idc"]["endpoint_url"].kind == "url"
    assert options["tcia"]["base_url"].default == DEFAULT_URL and described["tcia"].secret == "token"
    assert "restricted" in described["tcia"].secret_help
    assert set(options["dicomweb"]) == {"base_url", "username"} and options["dicomweb"]["base_url"].required
    assert described["dicomweb"].secret == "password"
    assert options["local"]["folder"].required and options["local"]["folder"].kind == "folder"
    for kind in described.values():
        assert kind.title and all(o.title and o.help for o in kind.options)


def test_build_one_builds_a_single_source(tmp_path: Path) -> None:
    source = build_one({"kind": "local", "id": "scan", "options": {"folder": str(tmp_path)}}, tmp_path, None)
    assert isinstance(source, LocalFolderSource)
    source.close()
    assert source.source_id == "scan"
    with pytest.raises(ValidationError, match="has no option 'folders'"):
        build_one({"kind": "local", "options": {"folders": "x"}}, tmp_path, None)


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
        ([{"kind": "dicomweb", "id": "p"}], "a dicomweb source needs base_url"),
        ([{"kind": "local", "id": "l"}], "a local source needs folder"),
        ([{"kind": "local", "id": "l", "options": {"folder": ""}}], "a local source needs folder"),
        (
            [{"kind": "tcia", "options": {"base_url": "http://x/v4/", "token": "t"}}],
            "a tcia source has no option 'token'; its options: base_url",
        ),
        (
            [{"kind": "dicomweb", "options": {"base_url": "http://x", "user": "u", "pass": "p"}}],
            "no option 'pass', 'user'; its options: base_url, username",
        ),
    ],
)
def test_bad_source_configs(tmp_path: Path, configs: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        build(configs, tmp_path, lambda _: None)


def test_secrets_never_go_into_settings() -> None:
    with pytest.raises(ValidationError, match="secrets go to the OS keyring"):
        Settings(sources=({"kind": "dicomweb", "id": "p", "options": {"base_url": "x", "password": "no"}},))


def test_a_node_builds_its_sources_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        sources=({"kind": "idc"}, {"kind": "tcia", "options": {"base_url": "http://127.0.0.1:1/v4/"}})
    )
    with Node(settings) as node:
        assert sorted(node.service.archives.ids()) == ["clinical", "idc", "tcia"]  # clinical: built in
    assert Settings.from_json(settings.to_json()) == settings


# -- "Test connection" -----------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_check_idc_from_its_index() -> None:
    assert re.fullmatch(r"IDC index \(release v\d+\): [\d,]+ collections, [\d,]+ series", IdcSource().check())


def test_check_tcia(tmp_path: Path) -> None:
    with TciaEmulator() as emulator:
        assert TciaSource(base_url=emulator.v4, backoff=0.01).check() == "2 collections"
    with pytest.raises(SourceError, match="cannot be reached"):
        TciaSource(base_url="http://127.0.0.1:1/nbia-api/services/v4/", backoff=0.01).check()


def test_check_local(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    (folder / "a" / "b").mkdir(parents=True)
    for name in ("x.dcm", "a/y.dcm", "a/b/z.dcm"):
        (folder / name).write_bytes(b"")
    source = LocalFolderSource("scan", folder, tmp_path / "index.sqlite")
    try:
        assert source.check() == f"folder {folder} with 3 files"
    finally:
        source.close()
