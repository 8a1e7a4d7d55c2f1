"""The node's settings: ``GET /v1/settings`` (values, and what each one is) and ``PATCH`` to change them."""

from __future__ import annotations

from fastapi import APIRouter

from mediator_desktop.api.deps import ServiceDep
from mediator_desktop.api.models import (
    SettingFieldModel,
    SettingsChangeModel,
    SettingsModel,
    SettingsPatch,
    SettingsValues,
)
from mediator_desktop.core.settings import Settings

router = APIRouter(tags=["settings"])


def values_of(settings: Settings) -> SettingsValues:
    return SettingsValues.model_validate(settings.to_json())


@router.get("/v1/settings")
def get_settings(service: ServiceDep) -> SettingsModel:
    return SettingsModel(
        values=values_of(service.settings.get()),
        fields=[SettingFieldModel.of(f) for f in service.settings.fields()],
    )


@router.patch("/v1/settings")
def patch_settings(body: SettingsPatch, service: ServiceDep) -> SettingsChangeModel:
    """Validate, save and apply changes: the live ones at once, the others when the node starts
    next (the answer lists those in ``restart``). An invalid value changes nothing (400)."""
    change = service.settings.change(**body.model_dump(exclude_none=True))  # Settings normalises types
    return SettingsChangeModel(
        settings=values_of(change.settings), changed=list(change.changed), restart=list(change.restart)
    )
