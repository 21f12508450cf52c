"""Image prompts through CLIP vision (core ``nodes``): CLIPVisionLoader, CLIPVisionEncode, StyleModelLoader and
StyleModelApply, simulated. Flux Redux is these four: SigLIP encodes the reference images, the Redux style model turns
the encoding into extra conditioning tokens (one set per image of the batch), appended to the prompt's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Conditioning, Images

__all__ = ["CLIPVisionEncode", "CLIPVisionLoader", "StyleModelApply", "StyleModelLoader"]


@dataclass(frozen=True)
class ClipVision:
    """CLIP_VISION: the vision encoder file."""

    file: str


@dataclass(frozen=True)
class ClipVisionOutput:
    """CLIP_VISION_OUTPUT: which encoder saw which images (their digest), and how many."""

    encoder: str
    images: int
    count: int
    crop: str


@dataclass(frozen=True)
class StyleModel:
    """STYLE_MODEL: the style model file (Flux Redux, or an SD1.5 T2I style adapter)."""

    file: str


class CLIPVisionLoader(Node):
    CLASS_TYPE = "CLIPVisionLoader"
    DISPLAY_NAME = "Load CLIP Vision"
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CLIP_VISION",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"clip_name": [model_list(folders, "clip_vision")]}}

    async def execute(self, ctx: NodeContext, *, clip_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((ClipVision(clip_name),))


class CLIPVisionEncode(Node):
    CLASS_TYPE = "CLIPVisionEncode"
    DISPLAY_NAME = "CLIP Vision Encode"
    CATEGORY = "conditioning"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"clip_vision": ["CLIP_VISION"], "image": ["IMAGE"], "crop": [["center", "none"]]}}

    async def execute(
        self, ctx: NodeContext, *, clip_vision: ClipVision, image: Images, crop: str, **_: Any
    ) -> NodeOutput:
        return NodeOutput((ClipVisionOutput(clip_vision.file, image.content_digest(), len(image), crop),))


class StyleModelLoader(Node):
    CLASS_TYPE = "StyleModelLoader"
    DISPLAY_NAME = "Load Style Model"
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("STYLE_MODEL",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"style_model_name": [model_list(folders, "style_models")]}}

    async def execute(self, ctx: NodeContext, *, style_model_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((StyleModel(style_model_name),))


class StyleModelApply(Node):
    CLASS_TYPE = "StyleModelApply"
    DISPLAY_NAME = "Apply Style Model"
    CATEGORY = "conditioning/style_model"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "conditioning": ["CONDITIONING"],
                "style_model": ["STYLE_MODEL"],
                "clip_vision_output": ["CLIP_VISION_OUTPUT"],
                "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.001}],
                "strength_type": [["multiply", "attn_bias"]],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        conditioning: Conditioning,
        style_model: StyleModel,
        clip_vision_output: ClipVisionOutput,
        strength: float,
        strength_type: str,
        **_: Any,
    ) -> NodeOutput:
        styles = dict(conditioning.extras).get("style_tokens", ())
        added = (style_model.file, clip_vision_output.encoder, clip_vision_output.images, strength, strength_type)
        assert isinstance(styles, tuple)
        return NodeOutput((conditioning.with_extra("style_tokens", (*styles, added)),))
