"""What a template's parameters are once its three sources meet: the manifest, ``"{{name}}"`` placeholders in the
graph, and the character's defaults. Binding and the per-template JSON Schema both read this one view."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import JsonValue

from handlers.workflow._character import CharacterProfile
from handlers.workflow._manifest import ParamType, TemplateManifest, TemplateParam

__all__ = ["MISSING", "Missing", "ParamSpec", "param_specs"]


class Missing(enum.Enum):
    """The type of :data:`MISSING`: a value nobody gave (``None`` is a JSON value a caller may give)."""

    MISSING = enum.auto()


MISSING: Final = Missing.MISSING


@dataclass(frozen=True)
class ParamSpec:
    name: str
    param: TemplateParam | None
    """The manifest's declaration; ``None`` for a placeholder the manifest does not declare (untyped)."""
    placeholders: tuple[tuple[str, str], ...] = ()
    character_default: JsonValue | Missing = MISSING

    @property
    def type(self) -> ParamType | None:
        return self.param.type if self.param is not None else None

    @property
    def default(self) -> JsonValue | Missing:
        """The value used when the caller gives none: the character's, then the manifest's."""
        if self.character_default is not MISSING:
            return self.character_default
        if self.param is not None and self.param.default is not None:
            return self.param.default
        return MISSING

    @property
    def required(self) -> bool:
        """Whether a caller must give it: declared required, or a placeholder would stay in the graph. A seed is
        never required (absent means random)."""
        if self.default is not MISSING or self.type is ParamType.SEED:
            return False
        if self.param is not None and self.param.required:
            return True
        return bool(self.placeholders)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = (
            self.param.json_schema() if self.param is not None else {"description": "placeholder (any JSON)"}
        )
        if self.character_default is not MISSING:
            schema["default"] = self.character_default
        return schema


def param_specs(
    placeholders: Mapping[str, list[tuple[str, str]]],
    manifest: TemplateManifest | None = None,
    profile: CharacterProfile | None = None,
) -> dict[str, ParamSpec]:
    """Parameters by name: the manifest's in its order, then undeclared placeholders in graph order. Character
    defaults attach only to parameters the template has (a profile serves many templates)."""
    defaults = profile.param_defaults() if profile is not None else {}
    declared = list(manifest.params) if manifest is not None else []
    names = [p.name for p in declared] + [n for n in placeholders if manifest is None or manifest.param(n) is None]
    specs: dict[str, ParamSpec] = {}
    for name in names:
        specs[name] = ParamSpec(
            name=name,
            param=manifest.param(name) if manifest is not None else None,
            placeholders=tuple(placeholders.get(name, ())),
            character_default=defaults.get(name, MISSING),
        )
    return specs
