"""Nodes that patch a MODEL: sampling shifts (SD3/WAN, AuraFlow/Qwen-Image/Z-Image) and Differential Diffusion.

Each adds a patch to the emulator's :class:`~._types.Model`, so the sampler's picture changes with it, as a real
result would.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Model

__all__ = ["DifferentialDiffusion", "ModelSamplingAuraFlow", "ModelSamplingSD3"]


class _ModelSamplingShift(Node):
    DISPLAY_NAME = ""
    CATEGORY = "advanced/model"
    PYTHON_MODULE = "comfy_extras.nodes_model_advanced"
    RETURN_TYPES = ("MODEL",)
    DEFAULT_SHIFT: ClassVar[float]

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        shift = {"default": cls.DEFAULT_SHIFT, "min": 0.0, "max": 100.0, "step": 0.01}
        return {"required": {"model": ["MODEL"], "shift": ["FLOAT", shift]}}

    async def execute(self, ctx: NodeContext, *, model: Model, shift: float, **_: Any) -> NodeOutput:
        return NodeOutput((model.patched(self.CLASS_TYPE, shift),))


class ModelSamplingSD3(_ModelSamplingShift):
    CLASS_TYPE = "ModelSamplingSD3"
    DISPLAY_NAME = "ModelSamplingSD3"
    DEFAULT_SHIFT = 3.0


class ModelSamplingAuraFlow(_ModelSamplingShift):
    CLASS_TYPE = "ModelSamplingAuraFlow"
    DISPLAY_NAME = "ModelSamplingAuraFlow"
    DEFAULT_SHIFT = 1.73


class DifferentialDiffusion(Node):
    CLASS_TYPE = "DifferentialDiffusion"
    DISPLAY_NAME = "Differential Diffusion"
    CATEGORY = "_for_testing"
    PYTHON_MODULE = "comfy_extras.nodes_differential_diffusion"
    RETURN_TYPES = ("MODEL",)
    V3 = True
    EXPERIMENTAL = True

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"model": ["MODEL", {}]},
            "optional": {"strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]},
        }

    async def execute(self, ctx: NodeContext, *, model: Model, strength: float = 1.0, **_: Any) -> NodeOutput:
        return NodeOutput((model.patched(self.CLASS_TYPE, strength),))
