"""The local API's bodies: requests refuse what they do not know, answers ignore it (an older SDK
against a newer node), the download report is typed, and the settings models follow the settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest

from mediator_desktop.api import app as api_app
from mediator_desktop.api import models
from mediator_desktop.core import errors
from mediator_desktop.core.settings import Settings
from mediator_desktop.core.transfer import LeafFailure, Report

SET: dict[str, Any] = {
    "id": "0" * 32,
    "name": "lungs",
    "description": "",
    "owner": "k" * 16,
    "owner_name": "Ada",
    "editors": [],
    "visibility": "cluster",
    "forked_from": None,
    "following": False,
    "head": 2,
    "published": [],
    "leaves": 4,
    "size": 1000,
}


def answers() -> list[type[pydantic.BaseModel]]:
    return [
        c
        for c in vars(models).values()
        if isinstance(c, type) and issubclass(c, models._Answer) and c.__module__ == models.__name__
    ]


def bodies() -> list[type[pydantic.BaseModel]]:
    return [
        c
        for c in vars(models).values()
        if isinstance(c, type) and issubclass(c, models._Body) and c is not models._Body
    ]


def test_answers_ignore_fields_a_newer_node_added() -> None:
    rs = models.SetModel.model_validate(
        {**SET, "colour": "teal", "forked_from": {"set_id": "a", "version": 1, "x": 2}}
    )
    assert rs.name == "lungs" and not hasattr(rs, "colour")
    assert all(c.model_config.get("extra") == "ignore" for c in answers())


def test_requests_refuse_fields_they_do_not_know() -> None:
    assert bodies() and all(c.model_config.get("extra") == "forbid" for c in bodies())
    with pytest.raises(pydantic.ValidationError):
        models.NewSet.model_validate(
            {"name": "x", "add": [{"source": "idc", "filter": {"Modality": ["CT"]}}]}
        )
    with pytest.raises(pydantic.ValidationError):
        models.Rename.model_validate({"name": "x", "colour": "teal"})
    with pytest.raises(pydantic.ValidationError):
        models.Rename.model_validate({"name": ""})
    assert models.Rename.model_validate({"name": "x"}).description is None


def test_a_download_request_without_a_layout_leaves_it_to_the_node() -> None:
    body = models.NewDownload.model_validate({"set_id": "a" * 32, "destination": "/tmp/x"})
    assert body.layout is None


def test_the_download_report_is_typed_and_still_reads_like_the_dict_it_was() -> None:
    report = Report(
        Path("/data"),
        "m" * 64,
        fetched=("idc/a",),
        unchanged=2,
        failed=(LeafFailure("idc/b", "idc", ("c", "p", "s", "b"), "HTTP 500"),),
        bytes=10,
        seconds=1.25,
    )
    typed = models.ReportModel.model_validate(report.to_json())
    assert typed.fetched == ["idc/a"] and typed.unchanged == 2 and not typed.ok
    assert typed.failed[0].path == ["c", "p", "s", "b"] and typed.failed[0].source == "idc"
    # SDK scripts written when the report was a dict go on working.
    assert typed["fetched"] == ["idc/a"] and typed["failed"][0]["reason"] == "HTTP 500"
    with pytest.raises(KeyError):
        typed["nothing"]
    job = models.JobModel.model_validate(
        {
            "id": "1-ab",
            "set_id": "a" * 32,
            "set_name": "s",
            "version": 1,
            "destination": "/data",
            "state": "failed",
            "changes": 3,
            "progress": None,
            "report": {**report.to_json(), "new_figure": 1},
            "summary": report.summary(),
            "error": None,
            "error_type": None,
        }
    )
    assert isinstance(job.report, models.ReportModel) and job.report.seconds == 1.25


def test_the_settings_models_name_every_setting() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(models.SettingsValues.model_fields) == names
    assert set(models.SettingsPatch.model_fields) == names
    values = models.SettingsValues.model_validate(Settings().to_json())
    assert values.download_layout == Settings().download_layout


def test_error_bodies_keep_the_class_name_and_add_the_code() -> None:
    body = errors.ConflictError("stale", current_head=3).to_json()
    parsed = models.ErrorModel.model_validate(body)
    assert (parsed.error, parsed.code, parsed.current_head) == ("ConflictError", "conflict", 3)
    old_node = models.ErrorModel.model_validate({"error": "NotFound", "message": "gone"})
    assert old_node.code is None


def test_the_api_docstring_lists_every_status_an_error_can_have() -> None:
    assert api_app.__doc__ is not None
    documented = {int(n) for n in re.findall(r"\b([45]\d\d)\b", api_app.__doc__)}
    assert set(api_app.error_statuses()) <= documented
    assert 422 in documented  # FastAPI's own answer to a malformed request
