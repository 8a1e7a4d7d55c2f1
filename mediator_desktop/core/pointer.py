"""Pointers into an archive's hierarchy and the hierarchies (levels) that validate them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from mediator_desktop.core.errors import ValidationError

#: A filter set in canonical form: sorted (key, sorted allowed values) pairs.
Filters = tuple[tuple[str, tuple[str, ...]], ...]


def _check_key(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, not {type(value).__name__} ({value!r})")
    if not value:
        raise ValidationError(f"{what} is empty: every key of a path must name something")
    return value


def make_filters(filters: Mapping[str, str | Iterable[str]] | Filters | None) -> Filters:
    """Canonical form of metadata filters: ``{"Modality": "CT"}`` or ``{"Modality": ["CT", "MR"]}``."""
    if not filters:
        return ()
    items = filters.items() if isinstance(filters, Mapping) else filters
    out: dict[str, tuple[str, ...]] = {}
    for key, values in items:
        _check_key("a filter name", key)
        if isinstance(values, str):
            vals: tuple[Any, ...] = (values,)
        elif isinstance(values, Iterable) and not isinstance(values, Mapping | bytes):
            vals = tuple(values)
        else:
            raise ValidationError(f"filter {key!r} takes text or a list of texts, not {values!r}")
        if not vals:
            raise ValidationError(f"filter {key!r} allows no value: give at least one")
        for v in vals:
            _check_key(f"a value of filter {key!r}", v)
        out[key] = tuple(sorted(set(vals)))
    return tuple(sorted(out.items()))


@dataclass(frozen=True, slots=True, order=True)
class Pointer:
    """A path of keys down a source's levels, at any granularity, plus optional metadata filters.

    ``Pointer("tcia", ("LIDC-IDRI",), (("Modality", ("CT",)),))`` means every CT series of the
    collection. A coarse pointer means "everything below, as resolved".
    """

    source_id: str
    path: tuple[str, ...] = ()
    filters: Filters = field(default=())

    def __post_init__(self) -> None:
        _check_key("the source id", self.source_id)
        if not isinstance(self.path, tuple):
            raise ValidationError(f"a pointer's path must be a tuple of keys, not {self.path!r}")
        for i, key in enumerate(self.path):
            _check_key(f"key {i + 1} of the path", key)
        if self.filters != make_filters(self.filters):
            raise ValidationError(
                f"filters {self.filters!r} are not in canonical form; build them with make_filters()"
            )

    @classmethod
    def of(cls, source_id: str, *path: str, **filters: str | Iterable[str]) -> Pointer:
        """Convenience: ``Pointer.of("idc", "nlst", Modality="CT")``."""
        return cls(source_id, tuple(path), make_filters(filters))

    @property
    def depth(self) -> int:
        return len(self.path)

    def covers(self, other: Pointer) -> bool:
        """True when everything ``other`` can mean is also meant by this pointer."""
        if self.source_id != other.source_id or other.path[: len(self.path)] != self.path:
            return False
        theirs = dict(other.filters)
        for key, allowed in self.filters:
            narrower = theirs.get(key)
            if narrower is None or not set(narrower) <= set(allowed):
                return False
        return True

    def intersects(self, other: Pointer) -> bool:
        """True when some leaf could be meant by both pointers."""
        if self.source_id != other.source_id:
            return False
        n = min(len(self.path), len(other.path))
        if self.path[:n] != other.path[:n]:
            return False
        theirs = dict(other.filters)
        return all(
            key not in theirs or not set(allowed).isdisjoint(theirs[key]) for key, allowed in self.filters
        )

    def meet(self, other: Pointer) -> Pointer:
        """The pointer meaning what both mean (they must intersect): the longer path, both filters."""
        filters = dict(self.filters)
        for key, allowed in other.filters:
            filters[key] = tuple(sorted(set(filters[key]) & set(allowed))) if key in filters else allowed
        path = self.path if len(self.path) >= len(other.path) else other.path
        return Pointer(self.source_id, path, tuple(sorted(filters.items())))

    def matches(self, source_id: str, path: tuple[str, ...], metadata: Mapping[str, Any]) -> bool:
        """True when a leaf at ``path`` with ``metadata`` is meant by this pointer."""
        if source_id != self.source_id or path[: len(self.path)] != self.path:
            return False
        return all(str(metadata.get(key)) in allowed for key, allowed in self.filters)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source_id,
            "path": list(self.path),
            "filters": {k: list(v) for k, v in self.filters},
        }

    @classmethod
    def from_json(cls, data: Any) -> Pointer:
        if not isinstance(data, dict) or not isinstance(data.get("path", []), list):
            raise ValidationError(f"not a pointer: {data!r}")
        filters = data.get("filters") or {}
        if not isinstance(filters, dict):
            raise ValidationError(f"a pointer's filters must be an object, not {filters!r}")
        return cls(data.get("source"), tuple(data.get("path", [])), make_filters(filters))  # type: ignore[arg-type]

    def __str__(self) -> str:
        """``idc/nlst/100002?Modality=CT,MR``: what ``parse`` reads (reserved characters %-escaped)."""
        text = "/".join(quote(key, safe="") for key in (self.source_id, *self.path))
        if self.filters:
            text += "?" + "&".join(
                f"{quote(k, safe='')}={','.join(quote(v, safe='') for v in vals)}" for k, vals in self.filters
            )
        return text

    @classmethod
    def parse(cls, text: str) -> Pointer:
        """Read ``SOURCE[/KEY...][?NAME=VALUE[,VALUE][&NAME=VALUE]]``, e.g. ``idc/nlst?Modality=CT``.

        Keys with ``/``, ``?``, ``&``, ``,``, ``=`` or ``%`` in them are written %-escaped.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("a pointer is SOURCE[/KEY...][?NAME=VALUE], e.g. idc/nlst?Modality=CT")
        head, _, query = text.strip().partition("?")
        parts = [unquote(part) for part in head.strip("/").split("/")]
        filters: dict[str, list[str]] = {}
        for item in filter(None, query.split("&")):
            name, eq, values = item.partition("=")
            if not eq:
                raise ValidationError(
                    f"filter {item!r} in {text!r} needs a value: NAME=VALUE, e.g. Modality=CT"
                )
            filters.setdefault(unquote(name), []).extend(unquote(v) for v in values.split(","))
        return cls(parts[0], tuple(parts[1:]), make_filters(filters))


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A source's levels, coarsest first; the last one is the leaf level.

    Example: ``Hierarchy(("collection", "patient", "study", "series"))``.
    """

    levels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValidationError("a hierarchy needs at least one level")
        for level in self.levels:
            _check_key("a level name", level)
        if len(set(self.levels)) != len(self.levels):
            raise ValidationError(f"level names repeat in {self.levels!r}")

    @property
    def leaf_level(self) -> str:
        return self.levels[-1]

    def level_of(self, depth: int) -> str:
        """Name of the level that a path of ``depth`` keys points at (depth >= 1)."""
        return self.levels[depth - 1]

    def validate(self, pointer: Pointer) -> Pointer:
        if pointer.depth > len(self.levels):
            raise ValidationError(
                f"pointer {pointer} has {pointer.depth} keys but source {pointer.source_id!r} "
                f"has only {len(self.levels)} levels ({' > '.join(self.levels)})"
            )
        return pointer

    def pointer(
        self,
        source_id: str,
        keys: Mapping[str, str],
        filters: Mapping[str, str | Iterable[str]] | None = None,
    ) -> Pointer:
        """Build a pointer from keys named by level: ``{"collection": "nlst", "patient": "100002"}``."""
        unknown = [name for name in keys if name not in self.levels]
        if unknown:
            raise ValidationError(
                f"unknown level {unknown[0]!r} for source {source_id!r}; "
                f"its levels are {' > '.join(self.levels)}"
            )
        path: list[str] = []
        for level in self.levels[: max((self.levels.index(k) + 1 for k in keys), default=0)]:
            if level not in keys:
                raise ValidationError(
                    f"level {level!r} is missing: a pointer names every level down to the finest one given"
                )
            path.append(keys[level])
        return self.validate(Pointer(source_id, tuple(path), make_filters(filters)))
