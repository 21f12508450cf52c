"""Latents, simulated samplers and the VAE: deterministic stand-ins for diffusion.

A sampler derives its output latent's ``content`` from everything that would change a real result (seed, model and
LoRAs, prompts, steps, cfg, sampler, scheduler, denoise, size), reports one ``progress`` per step with a small JPEG
preview, and VAEDecode draws :func:`~._render.picture` from that content.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from PIL import Image, ImageFilter

from .._node import Folders, Node, NodeContext, NodeOutput
from ._files import file_entry, save_path
from ._render import GRAY, picture, step_preview
from ._safetensors import encode_safetensors
from ._types import Conditioning, Images, Latent, Masks, Model, Vae, digest

__all__ = [
    "SAMPLERS",
    "SCHEDULERS",
    "EmptyLatentImage",
    "EmptySD3LatentImage",
    "KSampler",
    "KSamplerAdvanced",
    "SaveLatent",
    "SetLatentNoiseMask",
    "VAEDecode",
    "VAEEncode",
    "VAEEncodeForInpaint",
    "decode",
    "sample",
]

SAMPLERS = [
    "euler",
    "euler_cfg_pp",
    "euler_ancestral",
    "euler_ancestral_cfg_pp",
    "heun",
    "heunpp2",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m",
    "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun",
    "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
    "ddpm",
    "lcm",
    "ipndm",
    "ipndm_v",
    "deis",
    "res_multistep",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp",
    "gradient_estimation",
    "gradient_estimation_cfg_pp",
    "er_sde",
    "seeds_2",
    "seeds_3",
    "sa_solver",
    "sa_solver_pece",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
]
SCHEDULERS = [
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
]
_CFG_TOOLTIP = (
    "The Classifier-Free Guidance scale balances creativity and adherence to the prompt."
    " Higher values result in images more closely matching the prompt"
    " however too high values will negatively impact quality."
)


async def sample(
    ctx: NodeContext,
    latent: Latent,
    *,
    recipe: tuple[Any, ...],
    steps: int,
    denoise: float,
) -> Latent:
    """Run ``steps`` simulated steps (each one a ``ctx.progress`` call: delay, preview, interrupt point)."""
    content = digest("sample", latent.content, latent.width, latent.height, *recipe, denoise)
    for step in range(1, steps + 1):
        preview = step_preview(content, step, steps, latent.width, latent.height)
        await ctx.progress(step, steps, preview=preview)
    # Without pixels underneath, any denoise above zero replaces the latent entirely.
    strength = denoise if latent.source is not None else (1.0 if denoise > 0 else latent.strength)
    return replace(latent, content=content, strength=strength)


def _recipe(model: Model, positive: Conditioning, negative: Conditioning, *rest: Any) -> tuple[Any, ...]:
    return (model, positive, negative, *rest)


class _EmptyLatent(Node):
    CATEGORY = "latent"
    RETURN_TYPES = ("LATENT",)

    async def execute(self, ctx: NodeContext, *, width: int, height: int, batch_size: int, **_: Any) -> NodeOutput:
        # A latent pixel covers 8x8 image pixels: a 100-pixel side decodes to 96, as on a real server.
        width, height = width // 8 * 8, height // 8 * 8
        content = digest(self.CLASS_TYPE, width, height, batch_size)
        return NodeOutput((Latent(width, height, batch_size, content),))


class EmptyLatentImage(_EmptyLatent):
    CLASS_TYPE = "EmptyLatentImage"
    DISPLAY_NAME = "Empty Latent Image"
    DESCRIPTION = "Create a new batch of empty latent images to be denoised via sampling."
    PYTHON_MODULE = "nodes"
    OUTPUT_TOOLTIPS = ("The empty latent image batch.",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "width": [
                    "INT",
                    {
                        "default": 512,
                        "min": 16,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "The width of the latent images in pixels.",
                    },
                ],
                "height": [
                    "INT",
                    {
                        "default": 512,
                        "min": 16,
                        "max": 16384,
                        "step": 8,
                        "tooltip": "The height of the latent images in pixels.",
                    },
                ],
                "batch_size": [
                    "INT",
                    {"default": 1, "min": 1, "max": 4096, "tooltip": "The number of latent images in the batch."},
                ],
            }
        }


class EmptySD3LatentImage(_EmptyLatent):
    CLASS_TYPE = "EmptySD3LatentImage"
    DISPLAY_NAME = None
    CATEGORY = "latent/sd3"
    PYTHON_MODULE = "comfy_extras.nodes_sd3"
    V3 = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "width": ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}],
                "height": ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 16}],
                "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
            }
        }


class KSampler(Node):
    CLASS_TYPE = "KSampler"
    DISPLAY_NAME = "KSampler"
    DESCRIPTION = "Uses the provided model, positive and negative conditioning to denoise the latent image."
    CATEGORY = "sampling"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent.",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL", {"tooltip": "The model used for denoising the input latent."}],
                "seed": [
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 18446744073709551615,
                        "control_after_generate": True,
                        "tooltip": "The random seed used for creating the noise.",
                    },
                ],
                "steps": [
                    "INT",
                    {
                        "default": 20,
                        "min": 1,
                        "max": 10000,
                        "tooltip": "The number of steps used in the denoising process.",
                    },
                ],
                "cfg": [
                    "FLOAT",
                    {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": _CFG_TOOLTIP},
                ],
                "sampler_name": [
                    list(SAMPLERS),
                    {
                        "tooltip": "The algorithm used when sampling, this can affect the quality, speed, and style of "
                        "the generated output."
                    },
                ],
                "scheduler": [
                    list(SCHEDULERS),
                    {"tooltip": "The scheduler controls how noise is gradually removed to form the image."},
                ],
                "positive": [
                    "CONDITIONING",
                    {"tooltip": "The conditioning describing the attributes you want to include in the image."},
                ],
                "negative": [
                    "CONDITIONING",
                    {"tooltip": "The conditioning describing the attributes you want to exclude from the image."},
                ],
                "latent_image": ["LATENT", {"tooltip": "The latent image to denoise."}],
                "denoise": [
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "The amount of denoising applied, lower values will maintain the structure of the "
                        "initial image allowing for image to image sampling.",
                    },
                ],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Conditioning,
        negative: Conditioning,
        latent_image: Latent,
        denoise: float,
        **_: Any,
    ) -> NodeOutput:
        recipe = _recipe(model, positive, negative, seed, steps, cfg, sampler_name, scheduler)
        return NodeOutput((await sample(ctx, latent_image, recipe=recipe, steps=steps, denoise=denoise),))


class KSamplerAdvanced(Node):
    CLASS_TYPE = "KSamplerAdvanced"
    DISPLAY_NAME = "KSampler (Advanced)"
    CATEGORY = "sampling"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL"],
                "add_noise": [["enable", "disable"]],
                "noise_seed": [
                    "INT",
                    {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True},
                ],
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
                "sampler_name": [list(SAMPLERS)],
                "scheduler": [list(SCHEDULERS)],
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"],
                "start_at_step": ["INT", {"default": 0, "min": 0, "max": 10000}],
                "end_at_step": ["INT", {"default": 10000, "min": 0, "max": 10000}],
                "return_with_leftover_noise": [["disable", "enable"]],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Conditioning,
        negative: Conditioning,
        latent_image: Latent,
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: str,
        **_: Any,
    ) -> NodeOutput:
        # Only the steps in [start, end) run; when none do, ComfyUI hands the latent back untouched.
        run = max(0, min(end_at_step, steps) - start_at_step)
        if run == 0:
            return NodeOutput((latent_image,))
        recipe = _recipe(
            model,
            positive,
            negative,
            add_noise,
            noise_seed,
            steps,
            cfg,
            sampler_name,
            scheduler,
            start_at_step,
            end_at_step,
            return_with_leftover_noise,
        )
        denoise = run / steps
        return NodeOutput((await sample(ctx, latent_image, recipe=recipe, steps=run, denoise=denoise),))


class VAEDecode(Node):
    CLASS_TYPE = "VAEDecode"
    DISPLAY_NAME = "VAE Decode"
    DESCRIPTION = "Decodes latent images back into pixel space images."
    CATEGORY = "latent"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The decoded image.",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "samples": ["LATENT", {"tooltip": "The latent to be decoded."}],
                "vae": ["VAE", {"tooltip": "The VAE model used for decoding the latent."}],
            }
        }

    async def execute(self, ctx: NodeContext, *, samples: Latent, vae: Vae, **_: Any) -> NodeOutput:
        return NodeOutput((await asyncio.to_thread(decode, samples, vae),))


def decode(latent: Latent, vae: Vae) -> Images:
    """Draw the latent: its picture laid over its source pixels by ``strength``, only inside the noise mask.

    A video latent (``frames`` > 1) decodes to ``frames`` images per batch item: a slow pan over its picture,
    fading in from the start image when it has one (image-to-video).
    """
    if latent.frames > 1:
        return Images(tuple(f for index in range(latent.batch_size) for f in _video_frames(latent, vae, index)))
    size = (latent.width, latent.height)
    frames = []
    for index in range(latent.batch_size):
        if latent.source is not None:
            base = latent.source.frames[min(index, len(latent.source) - 1)].resize(size)
        else:
            base = Image.new("RGB", size, GRAY)
        if latent.strength <= 0:
            frames.append(base)
            continue
        drawn = picture(digest(latent.content, vae.file), latent.width, latent.height, index)
        blended = Image.blend(base, drawn, min(1.0, latent.strength))
        if latent.noise_mask is not None:
            mask = latent.noise_mask.frames[min(index, len(latent.noise_mask) - 1)].resize(size)
            blended = Image.composite(blended, base, mask)
        frames.append(blended)
    return Images(tuple(frames))


def _video_frames(latent: Latent, vae: Vae, index: int) -> list[Image.Image]:
    width, height = latent.width, latent.height
    # One picture a quarter larger than the frame, panned across diagonally: cheap, and visibly moving.
    margin_x, margin_y = max(1, width // 4), max(1, height // 4)
    canvas = picture(digest(latent.content, vae.file), width + margin_x, height + margin_y, index)
    start = None
    if latent.start is not None:
        start = latent.start.frames[min(index, len(latent.start) - 1)].resize((width, height))
    frames = []
    last = latent.frames - 1
    for frame in range(latent.frames):
        x, y = margin_x * frame // last, margin_y * frame // last
        window = canvas.crop((x, y, x + width, y + height))
        frames.append(window if start is None else Image.blend(start, window, frame / last))
    return frames


class VAEEncode(Node):
    CLASS_TYPE = "VAEEncode"
    DISPLAY_NAME = "VAE Encode"
    CATEGORY = "latent"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"pixels": ["IMAGE"], "vae": ["VAE"]}}

    async def execute(self, ctx: NodeContext, *, pixels: Images, vae: Vae, **_: Any) -> NodeOutput:
        # A latent covers whole 8x8 pixel blocks; what is left over at the edges is lost, as in a real VAE.
        width, height = max(8, pixels.width // 8 * 8), max(8, pixels.height // 8 * 8)
        content = digest("encode", pixels.content_digest(), vae.file)
        return NodeOutput((Latent(width, height, len(pixels), content, source=pixels),))


class VAEEncodeForInpaint(Node):
    """Encodes the pixels with the masked area greyed out, and sets the (grown) mask as the noise mask."""

    CLASS_TYPE = "VAEEncodeForInpaint"
    DISPLAY_NAME = "VAE Encode (for Inpainting)"
    CATEGORY = "latent/inpaint"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "pixels": ["IMAGE"],
                "vae": ["VAE"],
                "mask": ["MASK"],
                "grow_mask_by": ["INT", {"default": 6, "min": 0, "max": 64, "step": 1}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, pixels: Images, vae: Vae, mask: Masks, grow_mask_by: int, **_: Any
    ) -> NodeOutput:
        latent = await asyncio.to_thread(_encode_for_inpaint, pixels, vae, mask, grow_mask_by)
        return NodeOutput((latent,))


def _encode_for_inpaint(pixels: Images, vae: Vae, mask: Masks, grow_by: int) -> Latent:
    # ComfyUI crops the pixels to whole 8x8 blocks, greys out the masked area and grows the mask by a square kernel.
    width, height = max(8, pixels.width // 8 * 8), max(8, pixels.height // 8 * 8)
    size = (width, height)
    frames, masks = [], []
    for index, frame in enumerate(pixels.frames):
        plane = mask.frames[min(index, len(mask) - 1)].resize((pixels.width, pixels.height), Image.Resampling.BILINEAR)
        plane = plane.crop((0, 0, width, height))
        hard = plane.point(lambda v: 255 if v >= 128 else 0)
        if grow_by > 0:
            hard = hard.filter(ImageFilter.MaxFilter(grow_by * 2 + 1))
        greyed = frame.crop((0, 0, width, height))
        greyed.paste(Image.new("RGB", size, GRAY), (0, 0), hard)
        frames.append(greyed)
        masks.append(hard)
    source = Images(tuple(frames))
    content = digest("encode", source.content_digest(), vae.file)
    return Latent(width, height, len(source), content, source=source, noise_mask=Masks(tuple(masks)))


class SetLatentNoiseMask(Node):
    CLASS_TYPE = "SetLatentNoiseMask"
    DISPLAY_NAME = "Set Latent Noise Mask"
    CATEGORY = "latent/inpaint"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"samples": ["LATENT"], "mask": ["MASK"]}}

    async def execute(self, ctx: NodeContext, *, samples: Latent, mask: Masks, **_: Any) -> NodeOutput:
        return NodeOutput((replace(samples, noise_mask=mask),))


class SaveLatent(Node):
    """Writes a ``.latent`` (safetensors) file shaped like the real one; its numbers are zeros."""

    CLASS_TYPE = "SaveLatent"
    DISPLAY_NAME = "SaveLatent"
    CATEGORY = "_for_testing"
    PYTHON_MODULE = "nodes"
    OUTPUT_NODE = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"samples": ["LATENT"], "filename_prefix": ["STRING", {"default": "latents/ComfyUI"}]},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    async def execute(self, ctx: NodeContext, *, samples: Latent, filename_prefix: str, **_: Any) -> NodeOutput:
        where = save_path(filename_prefix, ctx.folders.output)
        name = where.name(0, "latent")
        shape = (samples.batch_size, 4, samples.height // 8, samples.width // 8)
        data = encode_safetensors(
            {"latent_tensor": shape, "latent_format_version_0": (0,)},
            {key: json.dumps(value) for key, value in ctx.pnginfo.items()},
        )
        await asyncio.to_thread((where.folder / name).write_bytes, data)
        return NodeOutput(ui={"latents": [file_entry(name, where.subfolder, "output")]})
