"""Custom node pack cubiq/ComfyUI_IPAdapter_plus (commit 9d076a3d, ``IPAdapterPlus.py``), simulated.

The unified loaders find their files by the pack's own name patterns in the models folders (``clip_vision``,
``ipadapter``, ``loras``) and fail with its messages when one is missing; the apply nodes patch the model with a
digest of the reference images, so the picture follows the identity. No face detection runs: FaceID's
``face_image`` is a centred square crop of each reference.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from PIL import ImageOps

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Images, Lora, Masks, Model

__all__ = [
    "IPAdapterAdvanced",
    "IPAdapterFaceID",
    "IPAdapterInsightFaceLoader",
    "IPAdapterModelLoader",
    "IPAdapterUnifiedLoader",
    "IPAdapterUnifiedLoaderFaceID",
    "is_sdxl",
]

_MODULE = "custom_nodes.ComfyUI_IPAdapter_plus"
_WEIGHT_TYPES = [
    "linear",
    "ease in",
    "ease out",
    "ease in-out",
    "reverse in-out",
    "weak input",
    "weak output",
    "weak middle",
    "strong middle",
    "style transfer",
    "composition",
    "strong style transfer",
    "style and composition",
    "style transfer precise",
    "composition precise",
]
_COMBINE = ["concat", "add", "subtract", "average", "norm average"]
_SCALING = ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]
_PRESETS = [
    "LIGHT - SD1.5 only (low strength)",
    "STANDARD (medium strength)",
    "VIT-G (medium strength)",
    "PLUS (high strength)",
    "PLUS FACE (portraits)",
    "FULL FACE - SD1.5 only (portraits stronger)",
]
_FACEID_PRESETS = [
    "FACEID",
    "FACEID PLUS - SD1.5 only",
    "FACEID PLUS V2",
    "FACEID PORTRAIT (style transfer)",
    "FACEID PORTRAIT UNNORM - SDXL only (strong)",
]
#: preset -> (SDXL pattern, SD1.5 pattern, LoRA pattern with ``{family}``, uses InsightFace); None: not supported.
_IPADAPTER_FILES: dict[str, tuple[str | None, str | None, str | None, bool]] = {
    "LIGHT - SD1.5 only (low strength)": (None, r"sd15.light.v11\.(safetensors|bin)$", None, False),
    "STANDARD (medium strength)": (
        r"ip.adapter.sdxl.vit.h\.(safetensors|bin)$",
        r"ip.adapter.sd15\.(safetensors|bin)$",
        None,
        False,
    ),
    "VIT-G (medium strength)": (r"ip.adapter.sdxl\.(safetensors|bin)$", r"sd15.vit.g\.(safetensors|bin)$", None, False),
    "PLUS (high strength)": (
        r"plus.sdxl.vit.h\.(safetensors|bin)$",
        r"ip.adapter.plus.sd15\.(safetensors|bin)$",
        None,
        False,
    ),
    "PLUS FACE (portraits)": (
        r"plus.face.sdxl.vit.h\.(safetensors|bin)$",
        r"plus.face.sd15\.(safetensors|bin)$",
        None,
        False,
    ),
    "FULL FACE - SD1.5 only (portraits stronger)": (None, r"full.face.sd15\.(safetensors|bin)$", None, False),
    "FACEID": (
        r"faceid.sdxl\.(safetensors|bin)$",
        r"faceid.sd15\.(safetensors|bin)$",
        r"faceid.{family}.lora\.safetensors$",
        True,
    ),
    "FACEID PLUS - SD1.5 only": (
        None,
        r"faceid.plus.sd15\.(safetensors|bin)$",
        r"faceid.plus.sd15.lora\.safetensors$",
        True,
    ),
    "FACEID PLUS V2": (
        r"faceid.plusv2.sdxl\.(safetensors|bin)$",
        r"faceid.plusv2.sd15\.(safetensors|bin)$",
        r"faceid.plusv2.{family}.lora\.safetensors$",
        True,
    ),
    "FACEID PORTRAIT (style transfer)": (
        r"portrait.sdxl\.(safetensors|bin)$",
        r"portrait.v11.sd15\.(safetensors|bin)$",
        None,
        True,
    ),
    "FACEID PORTRAIT UNNORM - SDXL only (strong)": (r"portrait.sdxl.unnorm\.(safetensors|bin)$", None, None, True),
}
_UNSUPPORTED = {
    "LIGHT - SD1.5 only (low strength)": "light model is not supported for SDXL",
    "FULL FACE - SD1.5 only (portraits stronger)": "full face model is not supported for SDXL",
    "FACEID PLUS - SD1.5 only": "faceid plus model is not supported for SDXL",
    "FACEID PORTRAIT UNNORM - SDXL only (strong)": "portrait unnorm model is not supported for SD1.5",
}


def is_sdxl(model: Model) -> bool:
    """The emulator knows a model only by its file name: SDXL checkpoints say so (``sd_xl_base``, ``...XL...``)."""
    return bool(re.search(r"xl", model.file, re.IGNORECASE))


@dataclass(frozen=True)
class InsightFace:
    """INSIGHTFACE: the face analysis models and the ONNX provider they run on."""

    provider: str
    model_name: str = "buffalo_l"


@dataclass(frozen=True)
class IPAdapter:
    """IPADAPTER: the pipeline a unified loader put together (the model files, by name), or one loaded model."""

    ipadapter: str
    clip_vision: str | None = None
    insightface: InsightFace | None = None


def _first(folders: Folders, folder: str, pattern: str) -> str | None:
    return next((f for f in model_list(folders, folder) if re.search(pattern, f, re.IGNORECASE)), None)


def _pipeline(
    folders: Folders, model: Model, preset: str, lora_strength: float, provider: str
) -> tuple[Model, IPAdapter]:
    vit = r"(ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model)\.(bin|safetensors)"
    if not preset.startswith("VIT-G"):
        vit = r"(ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model)\.(bin|safetensors)"
    clip_vision = _first(folders, "clip_vision", vit)
    if clip_vision is None:
        raise Exception("ClipVision model not found.")
    sdxl = is_sdxl(model)
    xl_pattern, sd15_pattern, lora_pattern, uses_insightface = _IPADAPTER_FILES[preset]
    pattern = xl_pattern if sdxl else sd15_pattern
    if pattern is None:
        raise Exception(_UNSUPPORTED[preset])
    ipadapter = _first(folders, "ipadapter", pattern)
    if ipadapter is None:
        raise Exception("IPAdapter model not found.")
    if lora_pattern is not None:
        lora = _first(folders, "loras", lora_pattern.format(family="sdxl" if sdxl else "sd15"))
        if lora is None:
            raise Exception("LoRA model not found.")
        if lora_strength > 0:
            model = replace(model, loras=(*model.loras, Lora(lora, lora_strength)))
    insightface = InsightFace(provider) if uses_insightface else None
    return model, IPAdapter(ipadapter, clip_vision, insightface)


class _UnifiedLoader(Node):
    CATEGORY = "ipadapter"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("MODEL", "IPADAPTER")
    RETURN_NAMES = ("model", "ipadapter")

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        preset: str,
        lora_strength: float = 0.0,
        provider: str = "CPU",
        **_: Any,
    ) -> NodeOutput:
        patched, pipeline = await asyncio.to_thread(_pipeline, ctx.folders, model, preset, lora_strength, provider)
        return NodeOutput((patched, pipeline))


class IPAdapterUnifiedLoader(_UnifiedLoader):
    CLASS_TYPE = "IPAdapterUnifiedLoader"
    DISPLAY_NAME = "IPAdapter Unified Loader"

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"model": ["MODEL"], "preset": [list(_PRESETS)]},
            "optional": {"ipadapter": ["IPADAPTER"]},
        }


class IPAdapterUnifiedLoaderFaceID(_UnifiedLoader):
    CLASS_TYPE = "IPAdapterUnifiedLoaderFaceID"
    DISPLAY_NAME = "IPAdapter Unified Loader FaceID"
    CATEGORY = "ipadapter/faceid"
    RETURN_NAMES = ("MODEL", "ipadapter")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL"],
                "preset": [list(_FACEID_PRESETS)],
                "lora_strength": ["FLOAT", {"default": 0.6, "min": 0, "max": 1, "step": 0.01}],
                "provider": [["CPU", "CUDA", "ROCM", "DirectML", "OpenVINO", "CoreML"]],
            },
            "optional": {"ipadapter": ["IPADAPTER"]},
        }


class IPAdapterModelLoader(Node):
    CLASS_TYPE = "IPAdapterModelLoader"
    DISPLAY_NAME = "IPAdapter Model Loader"
    CATEGORY = "ipadapter/loaders"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("IPADAPTER",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"ipadapter_file": [model_list(folders, "ipadapter")]}}

    async def execute(self, ctx: NodeContext, *, ipadapter_file: str, **_: Any) -> NodeOutput:
        return NodeOutput((IPAdapter(ipadapter_file),))


class IPAdapterInsightFaceLoader(Node):
    CLASS_TYPE = "IPAdapterInsightFaceLoader"
    DISPLAY_NAME = "IPAdapter InsightFace Loader"
    CATEGORY = "ipadapter/loaders"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("INSIGHTFACE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"provider": [["CPU", "CUDA", "ROCM"]], "model_name": [["buffalo_l", "antelopev2"]]}}

    async def execute(self, ctx: NodeContext, *, provider: str, model_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((InsightFace(provider, model_name),))


def _apply_inputs(weight_max: float, faceid: bool) -> dict[str, dict[str, Any]]:
    required: dict[str, Any] = {
        "model": ["MODEL"],
        "ipadapter": ["IPADAPTER"],
        "image": ["IMAGE"],
        "weight": ["FLOAT", {"default": 1.0, "min": -1, "max": weight_max, "step": 0.05}],
    }
    if faceid:
        required["weight_faceidv2"] = ["FLOAT", {"default": 1.0, "min": -1, "max": 5.0, "step": 0.05}]
    required |= {
        "weight_type": [list(_WEIGHT_TYPES)],
        "combine_embeds": [list(_COMBINE)],
        "start_at": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
        "end_at": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}],
        "embeds_scaling": [list(_SCALING)],
    }
    optional: dict[str, Any] = {"image_negative": ["IMAGE"], "attn_mask": ["MASK"], "clip_vision": ["CLIP_VISION"]}
    if faceid:
        optional["insightface"] = ["INSIGHTFACE"]
    return {"required": required, "optional": optional}


class IPAdapterAdvanced(Node):
    CLASS_TYPE = "IPAdapterAdvanced"
    DISPLAY_NAME = "IPAdapter Advanced"
    CATEGORY = "ipadapter"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES: ClassVar[tuple[str, ...]] = ("MODEL",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return _apply_inputs(5, faceid=False)

    @staticmethod
    def _patch(model: Model, ipadapter: IPAdapter, image: Images, inputs: dict[str, Any]) -> Model:
        settings = tuple(sorted((k, v) for k, v in inputs.items() if isinstance(v, int | float | str)))
        return model.patched("ipadapter", ipadapter.ipadapter, image.content_digest(), settings)

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        ipadapter: IPAdapter,
        image: Images,
        attn_mask: Masks | None = None,
        **inputs: Any,
    ) -> NodeOutput:
        return NodeOutput((self._patch(model, ipadapter, image, inputs),))


def _face_crops(image: Images, side: int) -> Images:
    return Images(tuple(ImageOps.fit(f, (side, side)) for f in image.frames))


class IPAdapterFaceID(IPAdapterAdvanced):
    CLASS_TYPE = "IPAdapterFaceID"
    DISPLAY_NAME = "IPAdapter FaceID"
    CATEGORY = "ipadapter/faceid"
    RETURN_TYPES = ("MODEL", "IMAGE")
    RETURN_NAMES = ("MODEL", "face_image")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return _apply_inputs(3, faceid=True)

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        ipadapter: IPAdapter,
        image: Images,
        attn_mask: Masks | None = None,
        **inputs: Any,
    ) -> NodeOutput:
        if ipadapter.insightface is None and not isinstance(inputs.get("insightface"), InsightFace):
            raise Exception("insightface model is required for FaceID models")
        # The aligned face crops the pack returns: 256 px for SDXL, 224 px for SD1.5.
        faces = await asyncio.to_thread(_face_crops, image, 256 if is_sdxl(model) else 224)
        return NodeOutput((self._patch(model, ipadapter, image, inputs), faces))
