"""Source kinds, found through the entry-point group ``mediator_desktop.sources``.

Each entry point names a factory ``create(source_id, options, secret, data_dir) -> DataSource``:
``options`` are the plain settings of that source (URLs, folders), ``secret`` the secret stored
for it in the OS keyring (a password or token) or None. Other packages can add kinds the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.source import DataSource

GROUP = "mediator_desktop.sources"
Factory = Callable[[str, Mapping[str, Any], "str | None", Path], DataSource]


def kinds() -> dict[str, Factory]:
    """Every installed source kind, by name."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def build(
    configs: list[Mapping[str, Any]], data_dir: Path, secret_of: Callable[[str], str | None]
) -> dict[str, DataSource]:
    """The sources ``configs`` describe (``{"kind", "id", "options"}`` each), by id."""
    available = kinds()
    out: dict[str, DataSource] = {}
    for config in configs:
        kind, source_id = config.get("kind"), config.get("id") or config.get("kind")
        if kind not in available:
            raise ValidationError(
                f"unknown source kind {kind!r}; installed kinds: {', '.join(sorted(available))}"
            )
        if not isinstance(source_id, str) or not source_id or source_id in out:
            raise ValidationError(f"source ids must be unique, non-empty names; got {source_id!r}")
        unknown = sorted(set(config) - {"kind", "id", "options"})
        if unknown:
            raise ValidationError(
                f"source {source_id!r} has unknown settings {', '.join(map(repr, unknown))}: "
                'give kind, id and options (e.g. {"options": {"base_url": ...}})'
            )
        options = config.get("options") or {}
        if not isinstance(options, Mapping):
            raise ValidationError(f"the options of source {source_id!r} must be a mapping")
        out[source_id] = available[kind](source_id, options, secret_of(source_id), data_dir)
    return out
