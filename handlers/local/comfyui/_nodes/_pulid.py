"""Custom node pack cubiq/PuLID_ComfyUI (commit 4e1fd402, ``pulid.py``), simulated.

The InsightFace loader needs the antelopev2 models under ``models/insightface/models/antelopev2`` as the real one
does (it would try to download them otherwise, and fail offline); EVA-CLIP, which the real loader fetches from
Hugging Face, needs nothing. ApplyPulid patches the model with a digest of the reference images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Images, Masks, Model

__all__ = ["ApplyPulid", "ApplyPulidAdvanced", "PulidEvaClipLoader", "PulidInsightFaceLoader", "PulidModelLoader"]

_MODULE = "custom_nodes.PuLID_ComfyUI"
_ANTELOPE = "insightface/models/antelopev2"


@dataclass(frozen=True)
class Pulid:
    """PULID: the PuLID adapter file."""

    file: str


@dataclass(frozen=True)
class FaceAnalysis:
    """FACEANALYSIS: InsightFace's antelopev2 on an ONNX provider."""

    provider: str


@dataclass(frozen=True)
class EvaClip:
    """EVA_CLIP: EVA02-CLIP-L-14-336's vision tower."""

    name: str = "EVA02-CLIP-L-14-336"


class PulidModelLoader(Node):
    CLASS_TYPE = "PulidModelLoader"
    DISPLAY_NAME = "Load PuLID Model"
    CATEGORY = "pulid"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("PULID",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"pulid_file": [model_list(folders, "pulid")]}}

    async def execute(self, ctx: NodeContext, *, pulid_file: str, **_: Any) -> NodeOutput:
        return NodeOutput((Pulid(pulid_file),))


class PulidInsightFaceLoader(Node):
    CLASS_TYPE = "PulidInsightFaceLoader"
    DISPLAY_NAME = "Load InsightFace (PuLID)"
    CATEGORY = "pulid"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("FACEANALYSIS",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"provider": [["CPU", "CUDA", "ROCM", "CoreML"]]}}

    async def execute(self, ctx: NodeContext, *, provider: str, **_: Any) -> NodeOutput:
        if not any(name.endswith(".onnx") for name in ctx.folders.model_files(_ANTELOPE)):
            # InsightFace's FaceAnalysis asserts that a detection model was found.
            raise AssertionError(f"no antelopev2 models in models/{_ANTELOPE} (InsightFace found no detection model)")
        return NodeOutput((FaceAnalysis(provider),))


class PulidEvaClipLoader(Node):
    CLASS_TYPE = "PulidEvaClipLoader"
    DISPLAY_NAME = "Load Eva Clip (PuLID)"
    CATEGORY = "pulid"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("EVA_CLIP",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {}}

    async def execute(self, ctx: NodeContext, **_: Any) -> NodeOutput:
        return NodeOutput((EvaClip(),))


def _span() -> dict[str, Any]:
    return {
        "start_at": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
        "end_at": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}],
    }


_ADAPTER_INPUTS: dict[str, Any] = {
    "model": ["MODEL"],
    "pulid": ["PULID"],
    "eva_clip": ["EVA_CLIP"],
    "face_analysis": ["FACEANALYSIS"],
    "image": ["IMAGE"],
}
_WEIGHT = ["FLOAT", {"default": 1.0, "min": -1.0, "max": 5.0, "step": 0.05}]


class ApplyPulid(Node):
    CLASS_TYPE = "ApplyPulid"
    DISPLAY_NAME = "Apply PuLID"
    CATEGORY = "pulid"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        required = {**_ADAPTER_INPUTS, "method": [["fidelity", "style", "neutral"]], "weight": _WEIGHT, **_span()}
        return copy.deepcopy({"required": required, "optional": {"attn_mask": ["MASK"]}})

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        pulid: Pulid,
        image: Images,
        weight: float,
        attn_mask: Masks | None = None,
        **inputs: Any,
    ) -> NodeOutput:
        if weight == 0:
            return NodeOutput((model,))
        settings = tuple(sorted((k, v) for k, v in inputs.items() if isinstance(v, int | float | str)))
        return NodeOutput((model.patched("pulid", pulid.file, image.content_digest(), weight, settings),))


class ApplyPulidAdvanced(ApplyPulid):
    CLASS_TYPE = "ApplyPulidAdvanced"
    DISPLAY_NAME = "Apply PuLID Advanced"

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        required = {
            **_ADAPTER_INPUTS,
            "weight": _WEIGHT,
            "projection": [["ortho_v2", "ortho", "none"]],
            "fidelity": ["INT", {"default": 8, "min": 0, "max": 32, "step": 1}],
            "noise": ["FLOAT", {"default": 0.0, "min": -1.0, "max": 1.0, "step": 0.1}],
            **_span(),
        }
        return copy.deepcopy({"required": required, "optional": {"attn_mask": ["MASK"]}})
