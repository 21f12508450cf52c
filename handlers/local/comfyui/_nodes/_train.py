"""ComfyUI's core LoRA training nodes (``comfy_extras.nodes_train``, experimental in 0.3.64), simulated.

The dataset loader reads real images and captions from an input subfolder; TrainLoraNode reports one ``progress``
per training step and returns a deterministic loss curve; SaveLoRANode writes a real ``.safetensors`` file (zeros,
in SDXL LoRA key names and shapes for the chosen rank) named as ComfyUI names it; LossGraphNode draws the curve.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .._node import Folders, Node, NodeContext, NodeOutput
from ._files import file_entry, save_path
from ._image import scale
from ._loaders import model_list
from ._safetensors import encode_safetensors
from ._types import Clip, Conditioning, Images, Latent, Model, digest

__all__ = [
    "LoadImageTextSetFromFolderNode",
    "LoraModelLoader",
    "LoraWeights",
    "LossGraphNode",
    "LossMap",
    "SaveLoRANode",
    "TrainLoraNode",
    "input_subfolders",
]

_MODULE = "comfy_extras.nodes_train"
_EXPERIMENTAL = {"experimental": True}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: SDXL UNet attention projections (module path, features) a trained LoRA carries, a few per block level.
_LORA_MODULES = (
    ("diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q", 640),
    ("diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_k", 640),
    ("diffusion_model.input_blocks.7.1.transformer_blocks.0.attn1.to_q", 1280),
    ("diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q", 1280),
    ("diffusion_model.output_blocks.2.1.transformer_blocks.0.attn1.to_v", 1280),
)


@dataclass(frozen=True)
class LoraWeights:
    """LORA_MODEL: what a training run produced (rank, dtype, steps) and a digest of how."""

    rank: int
    dtype: str
    steps: int
    content: int


@dataclass(frozen=True)
class LossMap:
    """LOSS_MAP: ``{"loss": [...]}``, one value per optimizer step."""

    loss: tuple[float, ...]

    def __repr__(self) -> str:
        return f"LOSS_MAP[{len(self.loss)}]"


def input_subfolders(folders: Folders) -> list[str]:
    """The dataset loader's combo: every subfolder of the input folder, recursively, as ``a/b`` paths, sorted."""
    if not folders.input.is_dir():
        return []
    return sorted(str(p.relative_to(folders.input).as_posix()) for p in folders.input.rglob("*") if p.is_dir())


def _dataset_files(root: Path) -> list[Path]:
    """Images in ``root``, then those of kohya-style ``N_name`` subfolders, each repeated N times."""
    found: list[Path] = []
    for item in sorted(root.iterdir()):
        if item.is_file() and item.suffix.lower() in _IMAGE_SUFFIXES:
            found.append(item)
        elif item.is_dir():
            head = item.name.split("_")[0]
            repeat = int(head) if head.isdigit() else 1
            images = [f for f in sorted(item.iterdir()) if f.is_file() and f.suffix.lower() in _IMAGE_SUFFIXES]
            found.extend(images * repeat)
    return found


def _fit(frame: Image.Image, method: str, width: int | None, height: int | None) -> Image.Image:
    if method == "None" or width is None or height is None:
        return frame
    if method == "Stretch":
        return frame.resize((width, height), Image.Resampling.LANCZOS)
    if method == "Crop":
        return scale(Images((frame,)), "lanczos", width, height, "center").frames[0]
    # Pad: fit inside, centred on black.
    inner = ImageOps.contain(frame, (width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return canvas


def _load_dataset(
    root: Path, method: str, width: int | None, height: int | None
) -> tuple[list[Image.Image], list[str]]:
    files = _dataset_files(root)
    if not files:
        raise ValueError(f"No images found in {root}")
    frames, captions = [], []
    for path in files:
        with Image.open(path) as source:
            frames.append(_fit(ImageOps.exif_transpose(source).convert("RGB"), method, width, height))
        caption = path.with_suffix(".txt")
        captions.append(caption.read_text(encoding="utf-8").strip() if caption.is_file() else "")
    if len({f.size for f in frames}) > 1:
        # torch.cat of differently sized images: the real node fails the same way.
        sizes = ", ".join(sorted({f"{f.width}x{f.height}" for f in frames}))
        raise RuntimeError(f"Sizes of tensors must match: the dataset has images of {sizes}; choose a resize_method")
    return frames, captions


class LoadImageTextSetFromFolderNode(Node):
    CLASS_TYPE = "LoadImageTextSetFromFolderNode"
    DISPLAY_NAME = "Load Image and Text Dataset from Folder"
    DESCRIPTION = "Loads a batch of images and caption from a directory for training."
    CATEGORY = "loaders"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("IMAGE", "CONDITIONING")
    EXTRA_INFO = _EXPERIMENTAL

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        def side(name: str) -> list[Any]:
            tooltip = f"The {name} to resize the images to. -1 means use the original {name}."
            return ["INT", {"default": -1, "min": -1, "max": 10000, "step": 1, "tooltip": tooltip}]

        return {
            "required": {
                "folder": [input_subfolders(folders), {"tooltip": "The folder to load images from."}],
                "clip": ["CLIP", {"tooltip": "The CLIP model used for encoding the text."}],
            },
            "optional": {
                "resize_method": [["None", "Stretch", "Crop", "Pad"], {"default": "None"}],
                "width": side("width"),
                "height": side("height"),
            },
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        folder: str,
        clip: Clip | None,
        resize_method: str = "None",
        width: int = -1,
        height: int = -1,
        **_: Any,
    ) -> NodeOutput:
        if clip is None:
            raise RuntimeError(
                "ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your checkpoint "
                "does not contain a valid clip or text encoder model."
            )
        root = ctx.folders.input / folder
        frames, captions = await asyncio.to_thread(
            _load_dataset, root, resize_method, None if width == -1 else width, None if height == -1 else height
        )
        return NodeOutput((Images(tuple(frames)), Conditioning(tuple(captions), clip)))


def _loss_curve(seed: int, steps: int, learning_rate: float) -> tuple[float, ...]:
    """A plausible, deterministic training loss: a noisy decay whose speed follows the learning rate."""
    rng = random.Random(digest("loss", seed, steps, learning_rate))  # noqa: S311 - a curve, not a secret
    pace = max(1.0, steps / 4) / max(0.25, min(4.0, learning_rate / 1e-4))
    return tuple(0.04 + 0.12 * math.exp(-step / pace) + rng.uniform(-0.01, 0.01) for step in range(steps))


class TrainLoraNode(Node):
    CLASS_TYPE = "TrainLoraNode"
    DISPLAY_NAME = "Train LoRA"
    CATEGORY = "training"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("MODEL", "LORA_MODEL", "LOSS_MAP", "INT")
    RETURN_NAMES = ("model_with_lora", "lora", "loss", "steps")
    EXTRA_INFO = _EXPERIMENTAL

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        def combo(options: list[str], default: str, tooltip: str) -> list[Any]:
            return [options, {"default": default, "tooltip": tooltip}]

        return {
            "required": {
                "model": ["MODEL", {"tooltip": "The model to train the LoRA on."}],
                "latents": [
                    "LATENT",
                    {"tooltip": "The Latents to use for training, serve as dataset/input of the model."},
                ],
                "positive": ["CONDITIONING", {"tooltip": "The positive conditioning to use for training."}],
                "batch_size": [
                    "INT",
                    {"default": 1, "min": 1, "max": 10000, "step": 1, "tooltip": "The batch size to use for training."},
                ],
                "grad_accumulation_steps": [
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": 1024,
                        "step": 1,
                        "tooltip": "The number of gradient accumulation steps to use for training.",
                    },
                ],
                "steps": [
                    "INT",
                    {"default": 16, "min": 1, "max": 100000, "tooltip": "The number of steps to train the LoRA for."},
                ],
                "learning_rate": [
                    "FLOAT",
                    {
                        "default": 0.0005,
                        "min": 1e-07,
                        "max": 1.0,
                        "step": 1e-06,
                        "tooltip": "The learning rate to use for training.",
                    },
                ],
                "rank": ["INT", {"default": 8, "min": 1, "max": 128, "tooltip": "The rank of the LoRA layers."}],
                "optimizer": combo(["AdamW", "Adam", "SGD", "RMSprop"], "AdamW", "The optimizer to use for training."),
                "loss_function": combo(
                    ["MSE", "L1", "Huber", "SmoothL1"], "MSE", "The loss function to use for training."
                ),
                "seed": [
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 18446744073709551615,
                        "tooltip": "The seed to use for training (used in generator for LoRA weight initialization "
                        "and noise sampling)",
                    },
                ],
                "training_dtype": combo(["bf16", "fp32"], "bf16", "The dtype to use for training."),
                "lora_dtype": combo(["bf16", "fp32"], "bf16", "The dtype to use for lora."),
                "algorithm": combo(["LoRA", "LoHa", "LoKr", "OFT"], "LoRA", "The algorithm to use for training."),
                "gradient_checkpointing": [
                    "BOOLEAN",
                    {"default": True, "tooltip": "Use gradient checkpointing for training."},
                ],
                "existing_lora": combo(
                    [*model_list(folders, "loras"), "[None]"],
                    "[None]",
                    "The existing LoRA to append to. Set to None for new LoRA.",
                ),
            }
        }

    async def execute(
        self,
        ctx: NodeContext,
        *,
        model: Model,
        latents: Latent,
        positive: Conditioning,
        batch_size: int,
        grad_accumulation_steps: int,
        steps: int,
        learning_rate: float,
        rank: int,
        seed: int,
        lora_dtype: str,
        algorithm: str,
        existing_lora: str,
        **_: Any,
    ) -> NodeOutput:
        images = latents.batch_size
        if len(positive.texts) not in (1, images):
            raise ValueError(
                f"Number of positive conditions ({len(positive.texts)}) does not match number of images ({images})."
            )
        existing_steps = 0
        if existing_lora != "[None]":
            # ComfyUI reads the steps trained so far from the file name (``name_500_steps_00001_.safetensors``).
            existing_steps = int(existing_lora.split("_steps_", maxsplit=1)[0].rsplit("_", maxsplit=1)[-1])
        # One progress per optimizer step (``steps`` of them); interrupts take effect between steps.
        for step in range(1, steps + 1):
            await ctx.progress(step, steps)
        content = digest("lora", model, latents.content, positive, rank, algorithm, seed, steps, learning_rate)
        weights = LoraWeights(rank, lora_dtype, steps + existing_steps, content)
        # The loss is recorded per micro-batch: steps x grad_accumulation_steps values.
        loss = LossMap(_loss_curve(seed, steps * grad_accumulation_steps, learning_rate))
        trained = model.patched("trained_lora", content, 1.0)
        return NodeOutput((trained, weights, loss, steps + existing_steps))


class LoraModelLoader(Node):
    CLASS_TYPE = "LoraModelLoader"
    DISPLAY_NAME = "Load LoRA Model"
    DESCRIPTION = "Load Trained LoRA weights from Train LoRA node."
    CATEGORY = "loaders"
    PYTHON_MODULE = _MODULE
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The modified diffusion model.",)
    EXTRA_INFO = _EXPERIMENTAL

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "model": ["MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}],
                "lora": ["LORA_MODEL", {"tooltip": "The LoRA model to apply to the diffusion model."}],
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
            }
        }

    async def execute(
        self, ctx: NodeContext, *, model: Model, lora: LoraWeights, strength_model: float, **_: Any
    ) -> NodeOutput:
        if strength_model == 0:
            return NodeOutput((model,))
        return NodeOutput((model.patched("trained_lora", lora.content, strength_model),))


def lora_tensors(rank: int) -> dict[str, tuple[int, ...]]:
    """A trained LoRA's tensors: ``lora_down`` (rank x features) and ``lora_up`` (features x rank) per module."""
    tensors: dict[str, tuple[int, ...]] = {}
    for module, features in _LORA_MODULES:
        tensors[f"{module}.lora_down.weight"] = (rank, features)
        tensors[f"{module}.lora_up.weight"] = (features, rank)
    return tensors


class SaveLoRANode(Node):
    """Writes the file and reports no ui: ComfyUI's ``/history`` never mentions it (collect it from the folder)."""

    CLASS_TYPE = "SaveLoRANode"
    DISPLAY_NAME = "Save LoRA Weights"
    CATEGORY = "loaders"
    PYTHON_MODULE = _MODULE
    OUTPUT_NODE = True
    EXTRA_INFO = _EXPERIMENTAL

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "lora": [
                    "LORA_MODEL",
                    {"tooltip": "The LoRA model to save. Do not use the model with LoRA layers."},
                ],
                "prefix": [
                    "STRING",
                    {"default": "loras/ComfyUI_trained_lora", "tooltip": "The prefix to use for the saved LoRA file."},
                ],
            },
            "optional": {
                "steps": [
                    "INT",
                    {
                        "forceInput": True,
                        "tooltip": "Optional: The number of steps to LoRA has been trained for, used to name the "
                        "saved file.",
                    },
                ]
            },
        }

    async def execute(
        self, ctx: NodeContext, *, lora: LoraWeights, prefix: str, steps: int | None = None, **_: Any
    ) -> NodeOutput:
        where = save_path(prefix, ctx.folders.output)
        stem = where.filename if steps is None else f"{where.filename}_{steps}_steps"
        name = f"{stem}_{where.counter:05}_.safetensors"
        dtype = "BF16" if lora.dtype == "bf16" else "F32"
        data = encode_safetensors(lora_tensors(lora.rank), None, dtype)
        await asyncio.to_thread((where.folder / name).write_bytes, data)
        return NodeOutput()


def _loss_graph(values: tuple[float, ...]) -> Image.Image:
    width, height, margin = 800, 480, 40
    image = Image.new("RGB", (width + margin, height + margin), "white")
    draw = ImageDraw.Draw(image)
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    points = [
        (margin + int(i / len(values) * width), height - int((v - low) / span * height)) for i, v in enumerate(values)
    ]
    if len(points) > 1:
        draw.line(points, fill="blue", width=2)
    draw.line([(margin, 0), (margin, height)], fill="black", width=2)
    draw.line([(margin, height), (width + margin, height)], fill="black", width=2)
    font = ImageFont.load_default()
    draw.text((5, height // 2), "Loss", font=font, fill="black")
    draw.text((width // 2, height + 10), "Steps", font=font, fill="black")
    draw.text((margin - 30, 0), f"{high:.2f}", font=font, fill="black")
    draw.text((margin - 30, height - 10), f"{low:.2f}", font=font, fill="black")
    return image


class LossGraphNode(Node):
    """Draws the loss curve into the temp folder (a preview, ``type: temp``) as ``<prefix>_<date>_<time>.png``."""

    CLASS_TYPE = "LossGraphNode"
    DISPLAY_NAME = "Plot Loss Graph"
    DESCRIPTION = "Plots the loss graph and saves it to the output directory."
    CATEGORY = "training"
    PYTHON_MODULE = _MODULE
    OUTPUT_NODE = True
    EXTRA_INFO = _EXPERIMENTAL

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        return {
            "required": {
                "loss": ["LOSS_MAP", {"default": {}}],
                "filename_prefix": ["STRING", {"default": "loss_graph"}],
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    async def execute(self, ctx: NodeContext, *, loss: LossMap, filename_prefix: str, **_: Any) -> NodeOutput:
        image = await asyncio.to_thread(_loss_graph, loss.loss)
        name = f"{filename_prefix}_{datetime.datetime.now():%Y%m%d_%H%M%S}.png"
        await asyncio.to_thread(ctx.folders.temp.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(image.save, ctx.folders.temp / name)
        return NodeOutput(ui={"images": [file_entry(name, "", "temp")]})
