"""Source kinds, found through the entry-point group ``mediator_desktop.sources``.

Each entry point names a factory ``create(source_id, options, secret, data_dir) -> DataSource``:
``options`` are the plain settings of that source (URLs, folders), ``secret`` the secret stored
for it in the OS keyring (a password or token) or None. The factory's module describes the kind
and its options in a module constant ``KIND`` (a ``SourceKind``), which forms and commands show
and ``build`` checks options against. Other packages can add kinds the same way.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.source import DataSource, SourceKind

GROUP = "mediator_desktop.sources"
Factory = Callable[[str, Mapping[str, Any], "str | None", Path], DataSource]


def kinds() -> dict[str, Factory]:
    """Every installed source kind, by name."""
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def _kind_of(name: str, factory: Factory) -> SourceKind:
    module = sys.modules.get(getattr(factory, "__module__", ""))
    kind = getattr(module, "KIND", None)
    if not isinstance(kind, SourceKind):
        return SourceKind(name, name)  # a third-party kind that does not describe itself
    return kind if kind.name == name else dataclasses.replace(kind, name=name)


def describe() -> dict[str, SourceKind]:
    """Every installed source kind, by name, with its options (from its module's ``KIND``)."""
    return {name: _kind_of(name, factory) for name, factory in kinds().items()}


def _identity(config: Mapping[str, Any], available: Mapping[str, Factory]) -> tuple[str, str]:
    """The (kind, id) of ``config``, checked."""
    kind, source_id = config.get("kind"), config.get("id") or config.get("kind")
    if not isinstance(kind, str) or kind not in available:
        raise ValidationError(
            f"unknown source kind {kind!r}; installed kinds: {', '.join(sorted(available))}"
        )
    if not isinstance(source_id, str) or not source_id:
        raise ValidationError(f"source ids must be unique, non-empty names; got {source_id!r}")
    return kind, source_id


def _build(
    config: Mapping[str, Any],
    data_dir: Path,
    secret: str | None,
    available: Mapping[str, Factory],
) -> DataSource:
    kind, source_id = _identity(config, available)
    unknown = sorted(set(config) - {"kind", "id", "options"})
    if unknown:
        raise ValidationError(
            f"source {source_id!r} has unknown settings {', '.join(map(repr, unknown))}: "
            'give kind, id and options (e.g. {"options": {"base_url": ...}})'
        )
    options = config.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValidationError(f"the options of source {source_id!r} must be a mapping")
    factory = available[kind]
    description = _kind_of(kind, factory)
    if description.options:  # a kind that does not describe itself checks its own options
        description.check(options)
    return factory(source_id, options, secret, data_dir)


def build_one(config: Mapping[str, Any], data_dir: Path, secret: str | None) -> DataSource:
    """The source ``config`` describes (``{"kind", "id", "options"}``), its options checked
    against its kind; ``secret`` is its secret from the OS keyring, or None."""
    return _build(config, data_dir, secret, kinds())


def build(
    configs: list[Mapping[str, Any]], data_dir: Path, secret_of: Callable[[str], str | None]
) -> dict[str, DataSource]:
    """The sources ``configs`` describe (``{"kind", "id", "options"}`` each), by id."""
    available = kinds()
    out: dict[str, DataSource] = {}
    for config in configs:
        _, source_id = _identity(config, available)
        if source_id in out:
            raise ValidationError(f"source ids must be unique, non-empty names; got {source_id!r}")
        out[source_id] = _build(config, data_dir, secret_of(source_id), available)
    return out
