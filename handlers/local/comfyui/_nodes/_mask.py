"""Mask nodes: GrowMask."""

from __future__ import annotations

import asyncio
from typing import Any

from PIL import Image, ImageChops, ImageFilter

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Masks

__all__ = ["GrowMask", "grow"]


def grow(mask: Image.Image, expand: int, tapered_corners: bool) -> Image.Image:
    """ComfyUI's GrowMask: ``|expand|`` dilations (or erosions, when negative) by a 3x3 kernel; tapered corners use
    the cross-shaped kernel, so corners round off."""
    if expand == 0:
        return mask
    for _ in range(abs(expand)):
        if not tapered_corners:
            mask = mask.filter(ImageFilter.MaxFilter(3) if expand > 0 else ImageFilter.MinFilter(3))
            continue
        combine = ImageChops.lighter if expand > 0 else ImageChops.darker
        fill = 0 if expand > 0 else 255  # beyond the edge: nothing to grow from, nothing to erode
        result = mask
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            shifted = Image.new("L", mask.size, fill)
            shifted.paste(mask, (dx, dy))
            result = combine(result, shifted)
        mask = result
    return mask


class GrowMask(Node):
    CLASS_TYPE = "GrowMask"
    DISPLAY_NAME = "GrowMask"
    CATEGORY = "mask"
    PYTHON_MODULE = "comfy_extras.nodes_mask"
    RETURN_TYPES = ("MASK",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "mask": ["MASK"],
                "expand": ["INT", {"default": 0, "min": -16384, "max": 16384, "step": 1}],
                "tapered_corners": ["BOOLEAN", {"default": True}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, mask: Masks, expand: int, tapered_corners: bool, **_: Any
    ) -> NodeOutput:
        frames = await asyncio.to_thread(lambda: tuple(grow(f, expand, tapered_corners) for f in mask.frames))
        return NodeOutput((Masks(frames),))
