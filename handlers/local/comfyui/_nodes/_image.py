"""Image nodes, with real Pillow implementations."""

from __future__ import annotations

import asyncio
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Images, Masks

__all__ = [
    "EmptyImage",
    "GetImageSize",
    "ImageBatch",
    "ImageBlur",
    "ImageCompositeMasked",
    "ImageCrop",
    "ImageInvert",
    "ImagePadForOutpaint",
    "ImageScale",
    "ImageScaleBy",
    "ImageStitch",
    "rgb_of",
    "scale",
]

#: The emulator refuses images above this many bytes of RGB (a real server fails later, at its RAM size).
_MAX_PIXEL_BYTES = 1 << 28


def rgb_of(color: int) -> tuple[int, int, int]:
    """EmptyImage's ``color`` widget packs 0xRRGGBB into one INT."""
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


class EmptyImage(Node):
    CLASS_TYPE = "EmptyImage"
    DISPLAY_NAME = "EmptyImage"
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "width": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "height": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
                "color": ["INT", {"default": 0, "min": 0, "max": 16777215, "step": 1, "display": "color"}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, width: int, height: int, batch_size: int, color: int, **_: Any
    ) -> NodeOutput:
        # Real ComfyUI first allocates one float32 plane of batch*height*width; the emulator refuses what would not
        # fit in its own memory budget with the same error, so the executor has an exception to report (transcript 30).
        if width * height * batch_size * 3 > _MAX_PIXEL_BYTES:
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
                f"to allocate {width * height * batch_size * 4} bytes. Error code 12 (Cannot allocate memory)"
            )
        frame = Image.new("RGB", (width, height), rgb_of(color))
        return NodeOutput((Images(tuple(frame.copy() for _ in range(batch_size))),))


class ImageInvert(Node):
    CLASS_TYPE = "ImageInvert"
    DISPLAY_NAME = "Invert Image"
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"image": ["IMAGE"]}}

    async def execute(self, ctx: NodeContext, *, image: Images, **_: Any) -> NodeOutput:
        return NodeOutput((Images(tuple(ImageOps.invert(f) for f in image.frames)),))


class ImageBlur(Node):
    CLASS_TYPE = "ImageBlur"
    DISPLAY_NAME = None
    CATEGORY = "image/postprocessing"
    PYTHON_MODULE = "comfy_extras.nodes_post_processing"
    RETURN_TYPES = ("IMAGE",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image": ["IMAGE", {}],
                "blur_radius": ["INT", {"default": 1, "min": 1, "max": 31, "step": 1}],
                "sigma": ["FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}],
            }
        }

    async def execute(self, ctx: NodeContext, *, image: Images, blur_radius: int, sigma: float, **_: Any) -> NodeOutput:
        # ComfyUI convolves with a (2r+1)-wide Gaussian of the given sigma; Pillow's radius is the sigma, and the
        # kernel width caps how far the blur can reach.
        blur = ImageFilter.GaussianBlur(radius=min(sigma, float(blur_radius)))
        return NodeOutput((Images(tuple(f.filter(blur) for f in image.frames)),))


_SCALE_METHODS: dict[str, Image.Resampling] = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _center_crop(frame: Image.Image, width: int, height: int) -> Image.Image:
    """Crop to the target aspect ratio around the centre, as ``comfy.utils.common_upscale(crop="center")``."""
    old_aspect = frame.width / frame.height
    new_aspect = width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((frame.width - frame.width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((frame.height - frame.height * (old_aspect / new_aspect)) / 2)
    return frame.crop((x, y, frame.width - x, frame.height - y))


def scale(images: Images, method: str, width: int, height: int, crop: str = "disabled") -> Images:
    resample = _SCALE_METHODS[method]
    frames = images.frames
    if crop == "center":
        frames = tuple(_center_crop(f, width, height) for f in frames)
    return Images(tuple(f.resize((width, height), resample) for f in frames))


class ImageScale(Node):
    CLASS_TYPE = "ImageScale"
    DISPLAY_NAME = "Upscale Image"
    CATEGORY = "image/upscaling"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image": ["IMAGE"],
                "upscale_method": [list(_SCALE_METHODS)],
                "width": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 1}],
                "height": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 1}],
                "crop": [["disabled", "center"]],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, image: Images, upscale_method: str, width: int, height: int, crop: str, **_: Any
    ) -> NodeOutput:
        if width == 0 and height == 0:
            return NodeOutput((image,))
        # A zero side keeps the aspect ratio.
        if width == 0:
            width = max(1, round(image.width * height / image.height))
        elif height == 0:
            height = max(1, round(image.height * width / image.width))
        return NodeOutput((scale(image, upscale_method, width, height, crop),))


class ImageScaleBy(Node):
    CLASS_TYPE = "ImageScaleBy"
    DISPLAY_NAME = "Upscale Image By"
    CATEGORY = "image/upscaling"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image": ["IMAGE"],
                "upscale_method": [list(_SCALE_METHODS)],
                "scale_by": ["FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, image: Images, upscale_method: str, scale_by: float, **_: Any
    ) -> NodeOutput:
        width = max(1, round(image.width * scale_by))
        height = max(1, round(image.height * scale_by))
        return NodeOutput((scale(image, upscale_method, width, height),))


class ImageCrop(Node):
    CLASS_TYPE = "ImageCrop"
    DISPLAY_NAME = "Image Crop"
    CATEGORY = "image/transform"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image": ["IMAGE"],
                "width": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "height": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                "x": ["INT", {"default": 0, "min": 0, "max": 16384, "step": 1}],
                "y": ["INT", {"default": 0, "min": 0, "max": 16384, "step": 1}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, image: Images, width: int, height: int, x: int, y: int, **_: Any
    ) -> NodeOutput:
        # ComfyUI clamps the origin inside the image and lets the box run off the far edges (slicing).
        x = min(x, image.width - 1)
        y = min(y, image.height - 1)
        box = (x, y, min(x + width, image.width), min(y + height, image.height))
        return NodeOutput((Images(tuple(f.crop(box) for f in image.frames)),))


def _outpaint_mask(width: int, height: int, pads: tuple[int, int, int, int], feathering: int) -> Image.Image:
    """1.0 over the new border; inside the original, a quadratic ramp ``feathering`` pixels wide by padded sides."""
    left, top, right, bottom = pads
    mask = Image.new("L", (width + left + right, height + top + bottom), 255)
    inner = Image.new("L", (width, height), 0)
    if feathering > 0 and feathering * 2 < width and feathering * 2 < height:
        values = []
        for row in range(height):
            for col in range(width):
                distance = min(
                    row if top else height,
                    height - row if bottom else height,
                    col if left else width,
                    width - col if right else width,
                )
                ramp = 0.0 if distance >= feathering else (feathering - distance) / feathering
                values.append(round(ramp * ramp * 255))
        inner.putdata(values)
    mask.paste(inner, (left, top))
    return mask


class ImagePadForOutpaint(Node):
    CLASS_TYPE = "ImagePadForOutpaint"
    DISPLAY_NAME = "Pad Image for Outpainting"
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE", "MASK")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        def pad() -> list[Any]:
            return ["INT", {"default": 0, "min": 0, "max": 16384, "step": 8}]

        return {
            "required": {
                "image": ["IMAGE"],
                "left": pad(),
                "top": pad(),
                "right": pad(),
                "bottom": pad(),
                "feathering": ["INT", {"default": 40, "min": 0, "max": 16384, "step": 1}],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        image: Images,
        left: int,
        top: int,
        right: int,
        bottom: int,
        feathering: int,
        **_: Any,
    ) -> NodeOutput:
        size = (image.width + left + right, image.height + top + bottom)
        frames = []
        for frame in image.frames:
            padded = Image.new("RGB", size, (128, 128, 128))  # ComfyUI fills with 0.5
            padded.paste(frame, (left, top))
            frames.append(padded)
        pads = (left, top, right, bottom)
        mask = await asyncio.to_thread(_outpaint_mask, image.width, image.height, pads, feathering)
        return NodeOutput((Images(tuple(frames)), Masks((mask,))))


class ImageCompositeMasked(Node):
    CLASS_TYPE = "ImageCompositeMasked"
    DISPLAY_NAME = "ImageCompositeMasked"
    CATEGORY = "image"
    PYTHON_MODULE = "comfy_extras.nodes_mask"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        def position() -> list[Any]:
            return ["INT", {"default": 0, "min": 0, "max": 16384, "step": 1}]

        return {
            "required": {
                "destination": ["IMAGE"],
                "source": ["IMAGE"],
                "x": position(),
                "y": position(),
                "resize_source": ["BOOLEAN", {"default": False}],
            },
            "optional": {"mask": ["MASK"]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        destination: Images,
        source: Images,
        x: int,
        y: int,
        resize_source: bool,
        mask: Masks | None = None,
        **_: Any,
    ) -> NodeOutput:
        out = []
        for index, frame in enumerate(destination.frames):
            src = source.frames[min(index, len(source) - 1)]
            if resize_source:
                src = src.resize(frame.size, Image.Resampling.BILINEAR)
            alpha = None
            if mask is not None:
                alpha = mask.frames[min(index, len(mask) - 1)].resize(src.size, Image.Resampling.BILINEAR)
            result = frame.copy()
            result.paste(src, (x, y), alpha)
            out.append(result)
        return NodeOutput((Images(tuple(out)),))


class GetImageSize(Node):
    CLASS_TYPE = "GetImageSize"
    DISPLAY_NAME = "Get Image Size"
    DESCRIPTION = "Returns width and height of the image, and passes it through unchanged."
    CATEGORY = "image"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES = ("INT", "INT", "INT")
    RETURN_NAMES = ("width", "height", "batch_size")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"image": ["IMAGE"]}, "hidden": {"unique_id": "UNIQUE_ID"}}

    async def execute(self, ctx: NodeContext, *, image: Images, **_: Any) -> NodeOutput:
        # The real node reports through PromptServer.send_progress_text: a binary TEXT frame (transcript 95).
        ctx.send_text(f"width: {image.width}, height: {image.height}\n batch size: {len(image)}")
        return NodeOutput((image.width, image.height, len(image)))


class ImageBatch(Node):
    CLASS_TYPE = "ImageBatch"
    DISPLAY_NAME = "Batch Images"
    CATEGORY = "image"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"image1": ["IMAGE"], "image2": ["IMAGE"]}}

    async def execute(self, ctx: NodeContext, *, image1: Images, image2: Images, **_: Any) -> NodeOutput:
        if (image2.width, image2.height) != (image1.width, image1.height):
            # The second batch is scaled (bilinear, centre crop) to the first one's size.
            image2 = await asyncio.to_thread(scale, image2, "bilinear", image1.width, image1.height, "center")
        return NodeOutput((Images(image1.frames + image2.frames),))


_SPACING_COLORS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}


def _stitch(first: Images, second: Images, *, direction: str, match_size: bool, spacing: int, color: str) -> Images:
    horizontal = direction in ("right", "left")
    count = max(len(first), len(second))
    a = [first.frames[min(i, len(first) - 1)] for i in range(count)]
    b = [second.frames[min(i, len(second) - 1)] for i in range(count)]
    if match_size:
        # The second image takes the first one's height (side by side) or width (stacked), keeping its aspect.
        if horizontal:
            size = (max(1, round(second.width * first.height / second.height)), first.height)
        else:
            size = (first.width, max(1, round(second.height * first.width / second.width)))
        b = [f.resize(size, Image.Resampling.BILINEAR) for f in b]
    ordered = (a, b) if direction in ("right", "down") else (b, a)
    out = []
    for left, right in zip(*ordered, strict=True):
        if horizontal:
            height = max(left.height, right.height)
            canvas = Image.new("RGB", (left.width + spacing + right.width, height), _SPACING_COLORS[color])
            canvas.paste(left, (0, (height - left.height) // 2))
            canvas.paste(right, (left.width + spacing, (height - right.height) // 2))
        else:
            width = max(left.width, right.width)
            canvas = Image.new("RGB", (width, left.height + spacing + right.height), _SPACING_COLORS[color])
            canvas.paste(left, ((width - left.width) // 2, 0))
            canvas.paste(right, ((width - right.width) // 2, left.height + spacing))
        out.append(canvas)
    return Images(tuple(out))


class ImageStitch(Node):
    CLASS_TYPE = "ImageStitch"
    DISPLAY_NAME = "Image Stitch"
    DESCRIPTION = (
        "\nStitches image2 to image1 in the specified direction.\nIf image2 is not provided, returns image1 "
        "unchanged.\nOptional spacing can be added between images.\n"
    )
    CATEGORY = "image/transform"
    PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "image1": ["IMAGE"],
                "direction": [["right", "down", "left", "up"], {"default": "right"}],
                "match_image_size": ["BOOLEAN", {"default": True}],
                "spacing_width": ["INT", {"default": 0, "min": 0, "max": 1024, "step": 2}],
                "spacing_color": [list(_SPACING_COLORS), {"default": "white"}],
            },
            "optional": {"image2": ["IMAGE"]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        image1: Images,
        direction: str,
        match_image_size: bool,
        spacing_width: int,
        spacing_color: str,
        image2: Images | None = None,
        **_: Any,
    ) -> NodeOutput:
        if image2 is None:
            return NodeOutput((image1,))
        stitched = await asyncio.to_thread(
            lambda: _stitch(
                image1,
                image2,
                direction=direction,
                match_size=match_image_size,
                spacing=spacing_width,
                color=spacing_color,
            )
        )
        return NodeOutput((stitched,))
