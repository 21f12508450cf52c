"""Image sizes from an aspect ratio and a pixel budget, rounded the way each model family wants them.

Megapixels count 1024 x 1024 pixels, as ComfyUI's own ``ImageScaleToTotalPixels`` does, so "1 MP square" is the
familiar 1024 x 1024 and "16:9 at 1 MP" lands on SDXL's 1344 x 768 bucket.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "MEGAPIXEL",
    "ModelFamily",
    "detect_family",
    "parse_aspect_ratio",
    "size_for",
    "size_multiple",
]

MEGAPIXEL: Final = 1024 * 1024
_MAX_SIDE: Final = 16384  # the latent nodes' own bound (EmptyLatentImage, EmptySD3LatentImage, WanImageToVideo)
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


class ModelFamily(StrEnum):
    SD15 = "sd15"
    SDXL = "sdxl"
    FLUX = "flux"
    QWEN_IMAGE = "qwen_image"
    Z_IMAGE = "z_image"
    WAN = "wan"


# The VAE downsamples by 8; patchified transformers (Flux, Qwen-Image, Z-Image, WAN) need 2x2 latent patches, so 16.
# SDXL works at any multiple of 8 but was trained on 64-pixel buckets, and stays sharper there.
_MULTIPLE: Final[Mapping[ModelFamily, int]] = {
    ModelFamily.SD15: 64,
    ModelFamily.SDXL: 64,
    ModelFamily.FLUX: 16,
    ModelFamily.QWEN_IMAGE: 16,
    ModelFamily.Z_IMAGE: 16,
    ModelFamily.WAN: 16,
}

# Text encoder loader types that identify a family (CLIPLoader / DualCLIPLoader ``type``).
_CLIP_TYPES: Final[Mapping[str, ModelFamily]] = {
    "flux": ModelFamily.FLUX,
    "qwen_image": ModelFamily.QWEN_IMAGE,
    "lumina2": ModelFamily.Z_IMAGE,
    "wan": ModelFamily.WAN,
    "sdxl": ModelFamily.SDXL,
}


def size_multiple(family: ModelFamily | str) -> int:
    """The multiple a family's width and height should be rounded to."""
    return _MULTIPLE[ModelFamily(family)]


def parse_aspect_ratio(value: str | float | tuple[float, float]) -> float:
    """``"16:9"``, ``"16x9"``, ``"4/5"``, ``1.5`` or ``(16, 9)`` as width / height; ``ValueError`` otherwise."""
    ratio: float
    if isinstance(value, tuple):
        width, height = value
        ratio = float(width) / float(height) if height else math.nan
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    elif isinstance(value, str):
        match = _RATIO.match(value)
        if match:
            height = float(match.group(2))
            ratio = float(match.group(1)) / height if height else math.nan
        else:
            try:
                ratio = float(value)
            except ValueError:
                raise ValueError(f"must be an aspect ratio such as '16:9' or 1.5 (got {value!r})") from None
    else:
        raise ValueError(f"must be an aspect ratio such as '16:9' or 1.5 (got {value!r})")
    if not math.isfinite(ratio) or not 1 / 16 <= ratio <= 16:
        raise ValueError(f"must be an aspect ratio between 1:16 and 16:1 (got {value!r})")
    return ratio


def size_for(
    aspect_ratio: str | float | tuple[float, float],
    megapixels: float = 1.0,
    *,
    multiple: int = 16,
    family: ModelFamily | str | None = None,
) -> tuple[int, int]:
    """``(width, height)`` with about ``megapixels`` x 1024^2 pixels, the aspect ratio as close as the rounding allows,
    both sides multiples of ``multiple`` (or of ``family``'s multiple, when given).

    Candidates around the exact size are scored on aspect error first (it shows), pixel count second.
    """
    ratio = parse_aspect_ratio(aspect_ratio)
    if family is not None:
        multiple = size_multiple(family)
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1 (got {multiple})")
    if not math.isfinite(megapixels) or not 0 < megapixels <= 256:
        raise ValueError(f"megapixels must be > 0 and <= 256 (got {megapixels})")
    area = megapixels * MEGAPIXEL
    exact_height = math.sqrt(area / ratio)
    top = _MAX_SIDE // multiple * multiple
    best: tuple[float, int, int] | None = None
    base = round(exact_height / multiple)
    for step in range(base - 3, base + 4):
        height = min(max(step * multiple, multiple), top)
        width = min(max(round(height * ratio / multiple) * multiple, multiple), top)
        aspect_error = abs(math.log((width / height) / ratio))
        area_error = abs(math.log(width * height / area))
        score = 4 * aspect_error + area_error
        if best is None or score < best[0]:
            best = (score, width, height)
    assert best is not None
    return best[1], best[2]


def _clip_type(node: Mapping[str, Any]) -> str | None:
    if node.get("class_type") not in ("CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader"):
        return None
    value = node.get("inputs", {}).get("type")
    return value if isinstance(value, str) else None


def detect_family(graph: Mapping[str, Any]) -> ModelFamily | None:
    """The model family a graph runs, from its loaders: a text encoder loader's ``type`` names it (flux, qwen_image,
    lumina2 for Z-Image, wan); a checkpoint loader alone means SDXL (the library's checkpoint family). ``None`` when
    the graph loads no model."""
    nodes = [n for n in graph.values() if isinstance(n, Mapping)]
    for node in nodes:
        clip_type = _clip_type(node)
        if clip_type is not None and clip_type in _CLIP_TYPES:
            return _CLIP_TYPES[clip_type]
    classes = {n.get("class_type") for n in nodes}
    if classes & {"WanImageToVideo", "Wan22ImageToVideoLatent"}:
        return ModelFamily.WAN
    if "CheckpointLoaderSimple" in classes or "CheckpointLoader" in classes:
        return ModelFamily.SDXL
    return None
