"""Conditioning edits and the nodes that turn pixels into conditioning plus a latent: FluxGuidance,
ConditioningZeroOut, InpaintModelConditioning and WanImageToVideo."""

from __future__ import annotations

import asyncio
from typing import Any

from PIL import Image

from .._node import Folders, Node, NodeContext, NodeOutput
from ._image import scale
from ._types import Conditioning, Images, Latent, Masks, Vae, digest

__all__ = ["ConditioningZeroOut", "FluxGuidance", "InpaintModelConditioning", "WanImageToVideo"]


class FluxGuidance(Node):
    CLASS_TYPE = "FluxGuidance"
    DISPLAY_NAME = None
    CATEGORY = "advanced/conditioning/flux"
    PYTHON_MODULE = "comfy_extras.nodes_flux"
    RETURN_TYPES = ("CONDITIONING",)
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "conditioning": ["CONDITIONING", {}],
                "guidance": ["FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1}],
            }
        }

    async def execute(self, ctx: NodeContext, *, conditioning: Conditioning, guidance: float, **_: Any) -> NodeOutput:
        return NodeOutput((conditioning.with_extra("guidance", guidance),))


class ConditioningZeroOut(Node):
    CLASS_TYPE = "ConditioningZeroOut"
    DISPLAY_NAME = "ConditioningZeroOut"
    CATEGORY = "advanced/conditioning"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"conditioning": ["CONDITIONING"]}}

    async def execute(self, ctx: NodeContext, *, conditioning: Conditioning, **_: Any) -> NodeOutput:
        # Zeroed embeddings: what was encoded no longer matters, only that there is a conditioning.
        return NodeOutput((Conditioning((), conditioning.clip, conditioning.extras).with_extra("zeroed", True),))


def _inpaint_inputs(pixels: Images, mask: Masks) -> tuple[Images, Masks, Images]:
    """Pixels cropped to whole 8x8 blocks, the mask at their size, and the pixels greyed out where the mask is set."""
    width, height = max(8, pixels.width // 8 * 8), max(8, pixels.height // 8 * 8)
    originals, masks, greyed = [], [], []
    for index, frame in enumerate(pixels.frames):
        plane = mask.frames[min(index, len(mask) - 1)].resize((pixels.width, pixels.height), Image.Resampling.BILINEAR)
        plane = plane.crop((0, 0, width, height))
        original = frame.crop((0, 0, width, height))
        hidden = original.copy()
        hidden.paste((128, 128, 128), (0, 0, width, height), plane.point(lambda v: 255 if v > 128 else 0))
        originals.append(original)
        masks.append(plane)
        greyed.append(hidden)
    return Images(tuple(originals)), Masks(tuple(masks)), Images(tuple(greyed))


class InpaintModelConditioning(Node):
    CLASS_TYPE = "InpaintModelConditioning"
    DISPLAY_NAME = "InpaintModelConditioning"
    CATEGORY = "conditioning/inpaint"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        tooltip = (
            "Add a noise mask to the latent so sampling will only happen within the mask. Might improve results or "
            "completely break things depending on the model."
        )
        return {
            "required": {
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "vae": ["VAE"],
                "pixels": ["IMAGE"],
                "mask": ["MASK"],
                "noise_mask": ["BOOLEAN", {"default": True, "tooltip": tooltip}],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        positive: Conditioning,
        negative: Conditioning,
        vae: Vae,
        pixels: Images,
        mask: Masks,
        noise_mask: bool,
        **_: Any,
    ) -> NodeOutput:
        originals, masks, greyed = await asyncio.to_thread(_inpaint_inputs, pixels, mask)
        # The model sees the greyed-out pixels and the mask beside the prompt (concat_latent_image, concat_mask).
        concat = digest("concat", greyed.content_digest(), vae.file)
        latent = Latent(
            originals.width,
            originals.height,
            len(originals),
            digest("encode", originals.content_digest(), vae.file),
            source=originals,
            noise_mask=masks if noise_mask else None,
        )
        return NodeOutput((positive.with_extra("concat", concat), negative.with_extra("concat", concat), latent))


class WanImageToVideo(Node):
    CLASS_TYPE = "WanImageToVideo"
    DISPLAY_NAME = None
    CATEGORY = "conditioning/video_models"
    PYTHON_MODULE = "comfy_extras.nodes_wan"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "positive": ["CONDITIONING", {}],
                "negative": ["CONDITIONING", {}],
                "vae": ["VAE", {}],
                "width": ["INT", {"default": 832, "min": 16, "max": 16384, "step": 16}],
                "height": ["INT", {"default": 480, "min": 16, "max": 16384, "step": 16}],
                "length": ["INT", {"default": 81, "min": 1, "max": 16384, "step": 4}],
                "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
            },
            "optional": {"clip_vision_output": ["CLIP_VISION_OUTPUT", {}], "start_image": ["IMAGE", {}]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        positive: Conditioning,
        negative: Conditioning,
        vae: Vae,
        width: int,
        height: int,
        length: int,
        batch_size: int,
        start_image: Images | None = None,
        **_: Any,
    ) -> NodeOutput:
        # The WAN VAE packs 4 frames into one latent frame after the first: 81 -> 21 latent frames -> 81 frames.
        frames = (length - 1) // 4 * 4 + 1
        width, height = width // 8 * 8, height // 8 * 8
        start = None
        if start_image is not None:
            first = Images(start_image.frames[:length])
            start = await asyncio.to_thread(scale, first, "bilinear", width, height, "center")
            concat = digest("start", start.content_digest(), vae.file)
            positive, negative = positive.with_extra("concat", concat), negative.with_extra("concat", concat)
        content = digest(self.CLASS_TYPE, width, height, frames)
        latent = Latent(width, height, batch_size, content, frames=frames, start=start)
        return NodeOutput((positive, negative, latent))
