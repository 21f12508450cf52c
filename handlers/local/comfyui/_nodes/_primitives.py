"""Primitive value nodes, StringConcatenate and PreviewAny."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .._node import Folders, Node, NodeContext, NodeOutput

__all__ = [
    "PreviewAny",
    "PrimitiveBoolean",
    "PrimitiveFloat",
    "PrimitiveInt",
    "PrimitiveString",
    "StringConcatenate",
    "preview_text",
]

_INT64_MAX = 9223372036854775807


def preview_text(source: Any) -> str:
    """What PreviewAny shows: strings as they are, numbers via ``str``, anything else as JSON if it can be."""
    if source is None:
        return "None"
    if isinstance(source, str):
        return source
    if isinstance(source, int | float | bool):
        return str(source)
    try:
        return json.dumps(source)
    except (TypeError, ValueError):
        return str(source)


class PreviewAny(Node):
    CLASS_TYPE = "PreviewAny"
    DISPLAY_NAME = "Preview Any"
    CATEGORY = "utils"
    PYTHON_MODULE = "comfy_extras.nodes_preview_any"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"source": ["*", {}]}}

    async def execute(self, ctx: NodeContext, *, source: Any = None, **_: Any) -> NodeOutput:
        return NodeOutput(ui={"text": [preview_text(source)]})


class _Primitive(Node):
    """A V3 primitive: one ``value`` widget, returned unchanged."""

    CATEGORY = "utils/primitive"
    PYTHON_MODULE = "comfy_extras.nodes_primitive"
    V3 = True
    WIDGET: ClassVar[list[Any]]

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        kind, options = cls.WIDGET
        return {"required": {"value": [kind, dict(options)]}}

    async def execute(self, ctx: NodeContext, *, value: Any, **_: Any) -> NodeOutput:
        return NodeOutput((value,))


class PrimitiveInt(_Primitive):
    CLASS_TYPE = "PrimitiveInt"
    DISPLAY_NAME = "Int"
    RETURN_TYPES = ("INT",)
    WIDGET = ["INT", {"min": -_INT64_MAX, "max": _INT64_MAX, "control_after_generate": True}]


class PrimitiveFloat(_Primitive):
    CLASS_TYPE = "PrimitiveFloat"
    DISPLAY_NAME = "Float"
    RETURN_TYPES = ("FLOAT",)
    WIDGET = ["FLOAT", {"min": -_INT64_MAX, "max": _INT64_MAX}]


class PrimitiveString(_Primitive):
    CLASS_TYPE = "PrimitiveString"
    DISPLAY_NAME = "String"
    RETURN_TYPES = ("STRING",)
    WIDGET = ["STRING", {"multiline": False}]


class PrimitiveBoolean(_Primitive):
    CLASS_TYPE = "PrimitiveBoolean"
    DISPLAY_NAME = "Boolean"
    RETURN_TYPES = ("BOOLEAN",)
    WIDGET = ["BOOLEAN", {}]


class StringConcatenate(Node):
    CLASS_TYPE = "StringConcatenate"
    DISPLAY_NAME = "Concatenate"
    CATEGORY = "utils/string"
    PYTHON_MODULE = "comfy_extras.nodes_string"
    RETURN_TYPES = ("STRING",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "string_a": ["STRING", {"multiline": True}],
                "string_b": ["STRING", {"multiline": True}],
                "delimiter": ["STRING", {"default": "", "multiline": False}],
            }
        }

    async def execute(self, ctx: NodeContext, *, string_a: str, string_b: str, delimiter: str, **_: Any) -> NodeOutput:
        return NodeOutput((delimiter.join((string_a, string_b)),))
