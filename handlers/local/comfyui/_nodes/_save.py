"""Output nodes that write images: SaveImage, PreviewImage, SaveAnimatedWEBP, SaveAnimatedPNG."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .._node import Folders, Node, NodeContext, NodeOutput
from ._files import file_entry, save_path, temp_prefix
from ._types import Images

__all__ = [
    "PreviewImage",
    "SaveAnimatedPNG",
    "SaveAnimatedWEBP",
    "SaveImage",
    "SaveImageWebsocket",
    "apng_info",
    "png_info",
    "webp_exif",
]

_HIDDEN_PNGINFO = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "
    "%Empty Latent Image.width% to include values from nodes."
)


def png_info(pnginfo: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """One ``tEXt`` chunk per key (``prompt``, then each ``extra_pnginfo`` key), each value JSON-encoded."""
    info = PngImagePlugin.PngInfo()
    for key, value in pnginfo.items():
        info.add_text(key, json.dumps(value))
    return info


def apng_info(pnginfo: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """SaveAnimatedPNG's metadata: private ``comf`` chunks after the image data, ``key NUL json`` each."""
    info = PngImagePlugin.PngInfo()
    for key, value in pnginfo.items():
        info.add(b"comf", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1"), after_idat=True)
    return info


def webp_exif(pnginfo: dict[str, Any]) -> Image.Exif:
    """SaveAnimatedWEBP's metadata: ``prompt:<json>`` in EXIF tag 0x0110 (Model), then each other key as
    ``<key>:<json>`` counting down from 0x010F (Make)."""
    exif = Image.Exif()
    tag = 0x010F
    for key, value in pnginfo.items():
        if key == "prompt":
            exif[0x0110] = f"prompt:{json.dumps(value)}"
        else:
            exif[tag] = f"{key}:{json.dumps(value)}"
            tag -= 1
    return exif


def _write_pngs(
    images: Images, *, prefix: str, root: Path, kind: str, compress_level: int, pnginfo: dict[str, Any]
) -> dict[str, Any]:
    where = save_path(prefix, root, images.width, images.height)
    entries = []
    for index, frame in enumerate(images.frames):
        name = where.name(index, "png", batch_number=index)
        frame.save(where.folder / name, pnginfo=png_info(pnginfo), compress_level=compress_level)
        entries.append(file_entry(name, where.subfolder, kind))
    return {"images": entries}


class SaveImage(Node):
    CLASS_TYPE = "SaveImage"
    DISPLAY_NAME = "Save Image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "images": ["IMAGE", {"tooltip": "The images to save."}],
                "filename_prefix": ["STRING", {"default": "ComfyUI", "tooltip": _PREFIX_TOOLTIP}],
            },
            "hidden": dict(_HIDDEN_PNGINFO),
        }

    async def execute(self, ctx: NodeContext, *, images: Images, filename_prefix: str, **_: Any) -> NodeOutput:
        ui = await asyncio.to_thread(
            _write_pngs,
            images,
            prefix=filename_prefix,
            root=ctx.folders.output,
            kind="output",
            compress_level=4,
            pnginfo=ctx.pnginfo,
        )
        return NodeOutput(ui=ui)


class PreviewImage(Node):
    CLASS_TYPE = "PreviewImage"
    DISPLAY_NAME = "Preview Image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    OUTPUT_NODE = True

    def __init__(self) -> None:
        # One random prefix per node object, as ComfyUI draws it in PreviewImage.__init__.
        self.prefix = temp_prefix()

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"images": ["IMAGE"]}, "hidden": dict(_HIDDEN_PNGINFO)}

    async def execute(self, ctx: NodeContext, *, images: Images, **_: Any) -> NodeOutput:
        ui = await asyncio.to_thread(
            _write_pngs,
            images,
            prefix=self.prefix,
            root=ctx.folders.temp,
            kind="temp",
            compress_level=1,
            pnginfo=ctx.pnginfo,
        )
        return NodeOutput(ui=ui)


def _animated_inputs(extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "required": {
            "images": ["IMAGE"],
            "filename_prefix": ["STRING", {"default": "ComfyUI"}],
            "fps": ["FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}],
            **extra,
        },
        "hidden": dict(_HIDDEN_PNGINFO),
    }


def _write_animation(images: Images, prefix: str, root: Path, ext: str, **save_args: Any) -> dict[str, Any]:
    where = save_path(prefix, root, images.width, images.height)
    name = where.name(0, ext)
    first, *rest = images.frames
    first.save(where.folder / name, save_all=True, append_images=rest, **save_args)
    return {"images": [file_entry(name, where.subfolder, "output")], "animated": [True]}


class SaveAnimatedWEBP(Node):
    CLASS_TYPE = "SaveAnimatedWEBP"
    DISPLAY_NAME = "SaveAnimatedWEBP"
    CATEGORY = "image/animation"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    OUTPUT_NODE = True

    METHODS = {"default": 4, "fastest": 0, "slowest": 6}

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return _animated_inputs(
            {
                "lossless": ["BOOLEAN", {"default": True}],
                "quality": ["INT", {"default": 80, "min": 0, "max": 100}],
                "method": [list(cls.METHODS)],
            }
        )

    async def execute(
        self,
        ctx: NodeContext,
        *,
        images: Images,
        filename_prefix: str,
        fps: float,
        lossless: bool,
        quality: int,
        method: str,
        **_: Any,
    ) -> NodeOutput:
        ui = await asyncio.to_thread(
            _write_animation,
            images,
            filename_prefix,
            ctx.folders.output,
            "webp",
            format="WEBP",
            duration=int(1000.0 / fps),
            lossless=lossless,
            quality=quality,
            method=self.METHODS[method],
            exif=webp_exif(ctx.pnginfo),
            loop=0,
        )
        return NodeOutput(ui=ui)


class SaveAnimatedPNG(Node):
    CLASS_TYPE = "SaveAnimatedPNG"
    DISPLAY_NAME = "SaveAnimatedPNG"
    CATEGORY = "image/animation"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return _animated_inputs({"compress_level": ["INT", {"default": 4, "min": 0, "max": 9}]})

    async def execute(
        self, ctx: NodeContext, *, images: Images, filename_prefix: str, fps: float, compress_level: int, **_: Any
    ) -> NodeOutput:
        ui = await asyncio.to_thread(
            _write_animation,
            images,
            filename_prefix,
            ctx.folders.output,
            "png",
            format="PNG",
            duration=int(1000.0 / fps),
            compress_level=compress_level,
            pnginfo=apng_info(ctx.pnginfo),
            loop=0,
        )
        return NodeOutput(ui=ui)


class SaveImageWebsocket(Node):
    """The custom node that ships with ComfyUI: PNGs go out as binary previews, nothing is written to disk."""

    CLASS_TYPE = "SaveImageWebsocket"
    DISPLAY_NAME = "SaveImageWebsocket"
    CATEGORY = "api/image"
    PYTHON_MODULE = "custom_nodes.websocket_image_save"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"images": ["IMAGE"]}}

    async def execute(self, ctx: NodeContext, *, images: Images, **_: Any) -> NodeOutput:
        # Transcript 50: progress 0/N .. N-1/N, each followed by the PNG; no ``executed`` message (no ui).
        for index, frame in enumerate(images.frames):
            png = io.BytesIO()
            frame.save(png, format="PNG")
            await ctx.progress(index, len(images), preview=png.getvalue(), preview_format="PNG")
        return NodeOutput()
