"""Primitive nodes, StringConcatenate and PreviewAny (transcript 03: ``{"text": ["hello, world"]}``, ``["42"]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.local.comfyui._node import Folders, NodeOutput
from handlers.local.comfyui._nodes import NODE_CLASSES, RecordingContext
from handlers.local.comfyui._nodes._types import Images


@pytest.fixture
def ctx(tmp_path: Path) -> RecordingContext:
    return RecordingContext(Folders(tmp_path, tmp_path, tmp_path, tmp_path))


async def run(ctx: RecordingContext, class_type: str, **inputs: Any) -> NodeOutput:
    return await NODE_CLASSES[class_type]().execute(ctx, **inputs)


@pytest.mark.parametrize(
    ("class_type", "value"),
    [("PrimitiveInt", 42), ("PrimitiveFloat", 0.5), ("PrimitiveString", "hi"), ("PrimitiveBoolean", True)],
)
async def test_primitives_pass_their_value_through(ctx: RecordingContext, class_type: str, value: object) -> None:
    out = await run(ctx, class_type, value=value)
    assert out.values == (value,) and out.ui is None


async def test_string_concatenate(ctx: RecordingContext) -> None:
    out = await run(ctx, "StringConcatenate", string_a="hello", string_b="world", delimiter=", ")
    assert out.values == ("hello, world",)


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("hello, world", "hello, world"),
        (42, "42"),
        (0.25, "0.25"),
        (False, "False"),
        (None, "None"),
        ({"a": [1, 2]}, '{"a": [1, 2]}'),
    ],
)
async def test_preview_any_text(ctx: RecordingContext, source: object, text: str) -> None:
    out = await run(ctx, "PreviewAny", source=source)
    assert out.ui == {"text": [text]} and out.values == ()


async def test_preview_any_of_an_image_uses_its_repr(ctx: RecordingContext) -> None:
    (image,) = (await run(ctx, "EmptyImage", width=4, height=2, batch_size=1, color=0)).values
    assert isinstance(image, Images)
    out = await run(ctx, "PreviewAny", source=image)
    assert out.ui == {"text": ["IMAGE[1x2x4x3]"]}
