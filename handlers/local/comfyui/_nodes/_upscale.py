"""Simulated upscale models: UpscaleModelLoader and ImageUpscaleWithModel (tiled progress, Pillow resize)."""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Images

__all__ = ["ImageUpscaleWithModel", "UpscaleModel", "UpscaleModelLoader", "scale_of"]

_TILE = 512
_OVERLAP = 32


@dataclass(frozen=True)
class UpscaleModel:
    """UPSCALE_MODEL: the file and the scale it upscales by."""

    file: str
    scale: int


def scale_of(name: str) -> int:
    """The scale a model file name announces (``4x-UltraSharp``, ``..._x2``); 4, the usual one, otherwise."""
    match = re.search(r"(?<![0-9])([1-8])x(?![0-9])|x([1-8])(?![0-9])", name.lower())
    return int(match.group(1) or match.group(2)) if match else 4


def tile_steps(width: int, height: int) -> int:
    """ComfyUI's progress total for one image: 512-pixel tiles overlapping by 32."""
    return math.ceil(height / (_TILE - _OVERLAP)) * math.ceil(width / (_TILE - _OVERLAP))


class UpscaleModelLoader(Node):
    CLASS_TYPE = "UpscaleModelLoader"
    DISPLAY_NAME = "Load Upscale Model"
    CATEGORY = "loaders"
    PYTHON_MODULE = "comfy_extras.nodes_upscale_model"
    RETURN_TYPES = ("UPSCALE_MODEL",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        options = model_list(folders, "upscale_models")
        return {"required": {"model_name": ["COMBO", {"multiselect": False, "options": options}]}}

    async def execute(self, ctx: NodeContext, *, model_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((UpscaleModel(model_name, scale_of(model_name)),))


class ImageUpscaleWithModel(Node):
    CLASS_TYPE = "ImageUpscaleWithModel"
    DISPLAY_NAME = "Upscale Image (using Model)"
    CATEGORY = "image/upscaling"
    PYTHON_MODULE = "comfy_extras.nodes_upscale_model"
    RETURN_TYPES = ("IMAGE",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"upscale_model": ["UPSCALE_MODEL", {}], "image": ["IMAGE", {}]}}

    async def execute(self, ctx: NodeContext, *, upscale_model: UpscaleModel, image: Images, **_: Any) -> NodeOutput:
        # One progress per tile, no previews (transcript 82: a 1024x1024 image reports 1/9 .. 9/9).
        total = len(image) * tile_steps(image.width, image.height)
        for step in range(1, total + 1):
            await ctx.progress(step, total)
        size = (image.width * upscale_model.scale, image.height * upscale_model.scale)
        frames = await asyncio.to_thread(lambda: tuple(f.resize(size, Image.Resampling.LANCZOS) for f in image.frames))
        return NodeOutput((Images(frames),))
