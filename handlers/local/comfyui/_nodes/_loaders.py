"""Simulated model loaders and conditioning: they record which files and LoRAs were chosen, and load nothing.

Model combos list the models folder (the folder names ComfyUI uses), so a workflow naming a checkpoint the worker
does not have fails validation with ``value_not_in_list`` exactly as on a real server.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .._node import Folders, Node, NodeContext, NodeOutput
from ._types import Clip, Conditioning, Lora, Model, Vae

__all__ = [
    "CLIPLoader",
    "CLIPTextEncode",
    "CheckpointLoaderSimple",
    "DualCLIPLoader",
    "LoraLoader",
    "LoraLoaderModelOnly",
    "UNETLoader",
    "VAELoader",
    "model_list",
]

#: The extensions ComfyUI's ``folder_paths.supported_pt_extensions`` accepts in model folders.
_MODEL_SUFFIXES = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
#: Folders ComfyUI still reads under their legacy names.
_LEGACY_FOLDERS = {"diffusion_models": ("unet",), "text_encoders": ("clip",)}
_LORA_DESCRIPTION = (
    "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised such as "
    "applying styles. Multiple LoRA nodes can be linked together."
)
_CLIP_TYPES = [
    "stable_diffusion",
    "stable_cascade",
    "sd3",
    "stable_audio",
    "mochi",
    "ltxv",
    "pixart",
    "cosmos",
    "lumina2",
    "wan",
    "hidream",
    "chroma",
    "ace",
    "omnigen2",
    "qwen_image",
    "hunyuan_image",
]
_DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"]
_CLIP_RECIPES = "\n".join(
    (
        "[Recipes]",
        "",
        "stable_diffusion: clip-l",
        "stable_cascade: clip-g",
        "sd3: t5 xxl/ clip-g / clip-l",
        "stable_audio: t5 base",
        "mochi: t5 xxl",
        "cosmos: old t5 xxl",
        "lumina2: gemma 2 2B",
        "wan: umt5 xxl",
        " hidream: llama-3.1 (Recommend) or t5",
        "omnigen2: qwen vl 2.5 3B",
    )
)
_DUAL_CLIP_RECIPES = "\n".join(
    (
        "[Recipes]",
        "",
        "sdxl: clip-l, clip-g",
        "sd3: clip-l, clip-g / clip-l, t5 / clip-g, t5",
        "flux: clip-l, t5",
        "hidream: at least one of t5 or llama, recommended t5 and llama",
        "hunyuan_image: qwen2.5vl 7b and byt5 small",
    )
)


def model_list(folders: Folders, folder: str) -> list[str]:
    """A model combo: the model files of ``folder`` (and its legacy alias), sorted, as ComfyUI lists them."""
    names: set[str] = set()
    for name in (folder, *_LEGACY_FOLDERS.get(folder, ())):
        names.update(f for f in folders.model_files(name) if f.lower().endswith(_MODEL_SUFFIXES))
    return sorted(names)


class CheckpointLoaderSimple(Node):
    CLASS_TYPE = "CheckpointLoaderSimple"
    DISPLAY_NAME = "Load Checkpoint"
    DESCRIPTION = "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = (
        "The model used for denoising latents.",
        "The CLIP model used for encoding text prompts.",
        "The VAE model used for encoding and decoding images to and from latent space.",
    )

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        tooltip = "The name of the checkpoint (model) to load."
        return {"required": {"ckpt_name": [model_list(folders, "checkpoints"), {"tooltip": tooltip}]}}

    async def execute(self, ctx: NodeContext, *, ckpt_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((Model(ckpt_name), Clip((ckpt_name,)), Vae(ckpt_name)))


class UNETLoader(Node):
    CLASS_TYPE = "UNETLoader"
    DISPLAY_NAME = "Load Diffusion Model"
    CATEGORY = "advanced/loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "unet_name": [model_list(folders, "diffusion_models")],
                "weight_dtype": [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]],
            }
        }

    async def execute(self, ctx: NodeContext, *, unet_name: str, weight_dtype: str, **_: Any) -> NodeOutput:
        return NodeOutput((Model(unet_name, weight_dtype=weight_dtype),))


class CLIPLoader(Node):
    CLASS_TYPE = "CLIPLoader"
    DISPLAY_NAME = "Load CLIP"
    DESCRIPTION = _CLIP_RECIPES
    CATEGORY = "advanced/loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CLIP",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {"clip_name": [model_list(folders, "text_encoders")], "type": [list(_CLIP_TYPES)]},
            "optional": {"device": [["default", "cpu"], {"advanced": True}]},
        }

    async def execute(self, ctx: NodeContext, *, clip_name: str, type: str, **_: Any) -> NodeOutput:
        return NodeOutput((Clip((clip_name,), type),))


class DualCLIPLoader(Node):
    CLASS_TYPE = "DualCLIPLoader"
    DISPLAY_NAME = "DualCLIPLoader"
    DESCRIPTION = _DUAL_CLIP_RECIPES
    CATEGORY = "advanced/loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CLIP",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        files = model_list(folders, "text_encoders")
        return {
            "required": {"clip_name1": [files], "clip_name2": [list(files)], "type": [list(_DUAL_CLIP_TYPES)]},
            "optional": {"device": [["default", "cpu"], {"advanced": True}]},
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        clip_name1: str,
        clip_name2: str,
        type: str,
        **_: Any,
    ) -> NodeOutput:
        return NodeOutput((Clip((clip_name1, clip_name2), type),))


class VAELoader(Node):
    CLASS_TYPE = "VAELoader"
    DISPLAY_NAME = "Load VAE"
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("VAE",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        # ComfyUI always offers "pixel_space" (no VAE) after the files.
        return {"required": {"vae_name": [[*model_list(folders, "vae"), "pixel_space"]]}}

    async def execute(self, ctx: NodeContext, *, vae_name: str, **_: Any) -> NodeOutput:
        return NodeOutput((Vae(vae_name),))


def _with_lora(loras: tuple[Lora, ...], name: str, strength: float) -> tuple[Lora, ...]:
    return loras if strength == 0 else (*loras, Lora(name, strength))


class LoraLoader(Node):
    CLASS_TYPE = "LoraLoader"
    DISPLAY_NAME = "Load LoRA"
    DESCRIPTION = _LORA_DESCRIPTION
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}],
                "clip": ["CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}],
                "lora_name": [model_list(folders, "loras"), {"tooltip": "The name of the LoRA."}],
                "strength_model": [
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": -100.0,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "How strongly to modify the diffusion model. This value can be negative.",
                    },
                ],
                "strength_clip": [
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": -100.0,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "How strongly to modify the CLIP model. This value can be negative.",
                    },
                ],
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        clip: Clip,
        lora_name: str,
        strength_model: float,
        strength_clip: float,
        **_: Any,
    ) -> NodeOutput:
        return NodeOutput(
            (
                replace(model, loras=_with_lora(model.loras, lora_name, strength_model)),
                replace(clip, loras=_with_lora(clip.loras, lora_name, strength_clip)),
            )
        )


class LoraLoaderModelOnly(Node):
    CLASS_TYPE = "LoraLoaderModelOnly"
    DISPLAY_NAME = "LoraLoaderModelOnly"
    DESCRIPTION = _LORA_DESCRIPTION
    CATEGORY = "loaders"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("MODEL",)
    # Inherited in ComfyUI from LoraLoader, so it lists two tooltips for its one output.
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL"],
                "lora_name": [model_list(folders, "loras")],
                "strength_model": ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}],
            }
        }

    async def execute(
        self, ctx: NodeContext, *, model: Model, lora_name: str, strength_model: float, **_: Any
    ) -> NodeOutput:
        return NodeOutput((replace(model, loras=_with_lora(model.loras, lora_name, strength_model)),))


class CLIPTextEncode(Node):
    CLASS_TYPE = "CLIPTextEncode"
    DISPLAY_NAME = "CLIP Text Encode (Prompt)"
    DESCRIPTION = (
        "Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model "
        "towards generating specific images."
    )
    CATEGORY = "conditioning"
    PYTHON_MODULE = "nodes"
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("A conditioning containing the embedded text used to guide the diffusion model.",)

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "text": ["STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}],
                "clip": ["CLIP", {"tooltip": "The CLIP model used for encoding the text."}],
            }
        }

    async def execute(self, ctx: NodeContext, *, text: str, clip: Clip | None, **_: Any) -> NodeOutput:
        if clip is None:
            raise RuntimeError(
                "ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your checkpoint "
                "does not contain a valid clip or text encoder model."
            )
        return NodeOutput((Conditioning((text,), clip),))
