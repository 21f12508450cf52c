"""ControlNet (core ``nodes``): ControlNetLoader and ControlNetApplyAdvanced, simulated.

Applying a ControlNet attaches it, the hint image's digest and the strength/span to both conditionings, so the
picture a sampler draws changes with the pose (or any hint) as it would on a GPU; strength 0 returns the
conditionings unchanged, as ComfyUI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._loaders import model_list
from ._types import Conditioning, Images, Vae

__all__ = ["ControlNet", "ControlNetApplyAdvanced", "ControlNetLoader"]


@dataclass(frozen=True)
class ControlNet:
    """CONTROL_NET: the ControlNet file."""

    file: str


class ControlNetLoader(Node):
    CLASS_TYPE = "ControlNetLoader"
    DISPLAY_NAME = "Load ControlNet Model"
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONTROL_NET",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"control_net_name": [model_list(folders, "controlnet")]}}

    async def execute(self, ctx: NodeContext, *, control_net_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((ControlNet(control_net_name),))


class ControlNetApplyAdvanced(Node):
    CLASS_TYPE = "ControlNetApplyAdvanced"
    DISPLAY_NAME = "Apply ControlNet"
    CATEGORY = "conditioning/controlnet"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "control_net": ["CONTROL_NET"],
                "image": ["IMAGE"],
                "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}],
                "start_percent": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
                "end_percent": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}],
            },
            "optional": {"vae": ["VAE"]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        positive: Conditioning,
        negative: Conditioning,
        control_net: ControlNet,
        image: Images,
        strength: float,
        start_percent: float,
        end_percent: float,
        vae: Vae | None = None,
        **_: Any,
    ) -> NodeOutput:
        if strength == 0:
            return NodeOutput((positive, negative))
        control = (control_net.file, image.content_digest(), strength, start_percent, end_percent)
        return NodeOutput((positive.with_extra("control", control), negative.with_extra("control", control)))
