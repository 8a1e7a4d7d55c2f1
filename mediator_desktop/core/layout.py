"""Where a download puts each leaf: a folder template over its metadata (``Layout``).

Apart from ``core.transfer`` so that the settings and the CLI can check a layout without importing
the download engine.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping

from mediator_desktop.core.errors import ValidationError
from mediator_desktop.core.paths import safe_component

DEFAULT_LAYOUT = "{collection}/{patient}/{study}/{modality}_{series}"


class Layout:
    """A folder template over leaf metadata, e.g. ``{collection}/{patient}/{study}/{modality}_{series}``.

    Each ``/``-separated segment becomes one folder name, made safe on every OS; a value can never
    add a level or climb out of the destination.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.segments: list[list[tuple[str, str | None]]] = []
        if not template.strip():
            raise ValidationError("a layout template cannot be empty")
        for segment in template.split("/"):
            parts: list[tuple[str, str | None]] = []
            try:
                parsed = list(string.Formatter().parse(segment))
            except ValueError as exc:
                raise ValidationError(f"layout {template!r}: {exc}") from None
            for literal, name, spec, conversion in parsed:
                if spec or conversion:
                    raise ValidationError(f"layout {template!r}: write fields plainly, as {{{name}}}")
                if name is not None and not name.isidentifier():
                    raise ValidationError(f"layout {template!r}: {{{name}}} is not a field name")
                parts.append((literal, name))
            if not any(name for _, name in parts) and not segment.strip():
                raise ValidationError(f"layout {template!r} has an empty folder level")
            self.segments.append(parts)
        self.fields = {name for parts in self.segments for _, name in parts if name}

    def check(self, allowed: Collection[str]) -> None:
        unknown = sorted(self.fields - set(allowed))
        if unknown:
            raise ValidationError(
                f"layout {self.template!r} uses {', '.join(unknown)}; it may use {', '.join(sorted(allowed))}"
            )

    def render(self, values: Mapping[str, str]) -> str:
        folders = []
        for parts in self.segments:
            text = "".join(
                literal + (values.get(name) or "unknown" if name else "") for literal, name in parts
            )
            folders.append(safe_component(text))
        return "/".join(folders)
