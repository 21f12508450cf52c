"""ComfyUI's custom sampling nodes (``comfy_extras.nodes_custom_sampler``): noise, sampler, sigmas and guider as
separate values, put together by SamplerCustomAdvanced. Flux and other guidance-distilled models use them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._sampling import SAMPLERS, SCHEDULERS, sample
from ._types import Conditioning, Latent, Model

__all__ = [
    "BasicGuider",
    "BasicScheduler",
    "Guider",
    "KSamplerSelect",
    "Noise",
    "RandomNoise",
    "Sampler",
    "SamplerCustomAdvanced",
    "Sigmas",
]

_MODULE = "comfy_extras.nodes_custom_sampler"
_CATEGORY = "sampling/custom_sampling"


@dataclass(frozen=True)
class Noise:
    """NOISE: the seed the initial noise is drawn from."""

    seed: int


@dataclass(frozen=True)
class Sampler:
    """SAMPLER: the sampling algorithm's name."""

    name: str


@dataclass(frozen=True)
class Sigmas:
    """SIGMAS: a schedule of ``steps + 1`` noise levels (``steps`` sampling steps), and what made it."""

    scheduler: str
    steps: int
    denoise: float
    model: str

    def __repr__(self) -> str:
        return f"SIGMAS[{self.steps + 1 if self.steps else 0}]"


@dataclass(frozen=True)
class Guider:
    """GUIDER: the model and the conditioning it guides with (BasicGuider: positive only, no CFG)."""

    model: Model
    conditioning: Conditioning


class RandomNoise(Node):
    CLASS_TYPE = "RandomNoise"
    DISPLAY_NAME = "RandomNoise"
    CATEGORY = f"{_CATEGORY}/noise"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("NOISE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        seed = {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}
        return {"required": {"noise_seed": ["INT", seed]}}

    async def execute(self, ctx: NodeContext, *, noise_seed: int, **_: Any) -> NodeOutput:
        return NodeOutput((Noise(noise_seed),))


class KSamplerSelect(Node):
    CLASS_TYPE = "KSamplerSelect"
    DISPLAY_NAME = "KSamplerSelect"
    CATEGORY = f"{_CATEGORY}/samplers"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("SAMPLER",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"sampler_name": [list(SAMPLERS)]}}

    async def execute(self, ctx: NodeContext, *, sampler_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((Sampler(sampler_name),))


class BasicScheduler(Node):
    CLASS_TYPE = "BasicScheduler"
    DISPLAY_NAME = "BasicScheduler"
    CATEGORY = f"{_CATEGORY}/schedulers"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("SIGMAS",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL"],
                "scheduler": [list(SCHEDULERS)],
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, model: Model, scheduler: str, steps: int, denoise: float, **_: Any
    ) -> NodeOutput:
        # ComfyUI schedules int(steps / denoise) steps and keeps the last ``steps``; denoise 0 is an empty schedule.
        return NodeOutput((Sigmas(scheduler, steps if denoise > 0 else 0, denoise, model.file),))


class BasicGuider(Node):
    CLASS_TYPE = "BasicGuider"
    DISPLAY_NAME = "BasicGuider"
    CATEGORY = f"{_CATEGORY}/guiders"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("GUIDER",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {"required": {"model": ["MODEL"], "conditioning": ["CONDITIONING"]}}

    async def execute(self, ctx: NodeContext, *, model: Model, conditioning: Conditioning, **_: Any) -> NodeOutput:
        return NodeOutput((Guider(model, conditioning),))


class SamplerCustomAdvanced(Node):
    CLASS_TYPE = "SamplerCustomAdvanced"
    DISPLAY_NAME = "SamplerCustomAdvanced"
    CATEGORY = _CATEGORY
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "noise": ["NOISE"],
                "guider": ["GUIDER"],
                "sampler": ["SAMPLER"],
                "sigmas": ["SIGMAS"],
                "latent_image": ["LATENT"],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        noise: Noise,
        guider: Guider,
        sampler: Sampler,
        sigmas: Sigmas,
        latent_image: Latent,
        **_: Any,
    ) -> NodeOutput:
        if sigmas.steps == 0:
            return NodeOutput((latent_image, latent_image))
        recipe = (guider.model, guider.conditioning, noise.seed, sampler.name, sigmas.scheduler, sigmas.steps)
        out = await sample(ctx, latent_image, recipe=recipe, steps=sigmas.steps, denoise=sigmas.denoise)
        # With a full schedule the last step's prediction is the result: both outputs are the same picture.
        return NodeOutput((out, out))
