"""What a job asked of one output node, read from the bound graph: size, batch, frames, fps, the text to speak.

Pure: walks back from the output node through nodes known to keep size (decoders, samplers, video assembly) to the
node that set it (``EmptyLatentImage``, ``WanImageToVideo``, ...). Anything else on the way (an upscaler, a crop, an
inpainting encoder that takes its size from a picture) makes the size unknown: unknown is never a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Expected", "expected_for"]

#: Nodes that pass their input's size through, and the input that leads to it.
_PASS_THROUGH: Final[dict[str, str]] = {
    "VAEDecode": "samples",
    "VAEDecodeTiled": "samples",
    "KSampler": "latent_image",
    "KSamplerAdvanced": "latent_image",
    "SamplerCustom": "latent_image",
    "SamplerCustomAdvanced": "latent_image",
    "SetLatentNoiseMask": "samples",
    "CreateVideo": "images",
    "SaveImage": "images",
    "PreviewImage": "images",
    "SaveAnimatedWEBP": "images",
    "SaveAnimatedPNG": "images",
    "SaveVideo": "video",
    "VHS_VideoCombine": "images",
    "SaveAudio": "audio",
    "SaveAudioMP3": "audio",
    "SaveAudioOpus": "audio",
}
_FPS_INPUTS: Final = ("fps", "frame_rate")
_TEXT_INPUTS: Final = ("speech", "gen_text", "text")
_MAX_HOPS: Final = 64


@dataclass(frozen=True, slots=True)
class Expected:
    """What the graph asked for; ``None`` where it cannot be known."""

    width: int | None = None
    height: int | None = None
    batch: int | None = None
    frames: int | None = None
    fps: float | None = None
    text: str | None = None

    @property
    def duration_s(self) -> float | None:
        return self.frames / self.fps if self.frames and self.fps else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def _link(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int):
        return str(value[0])
    return None


def expected_for(graph: Mapping[str, Any], node_id: str) -> Expected:
    """What output node ``node_id`` of ``graph`` (API format, parameters bound) was asked to make."""
    found: dict[str, Any] = {}
    current: str | None = node_id
    for _ in range(_MAX_HOPS):
        node = graph.get(current) if current is not None else None
        if not isinstance(node, Mapping) or not isinstance(node.get("inputs"), Mapping):
            break
        inputs: Mapping[str, Any] = node["inputs"]
        class_type = str(node.get("class_type") or "")
        for name in _FPS_INPUTS:
            if "fps" not in found and (fps := _number(inputs.get(name))) is not None:
                found["fps"] = fps
        for name in _TEXT_INPUTS:
            if "text" not in found and isinstance(inputs.get(name), str) and inputs[name].strip():
                found["text"] = inputs[name]
        width, height = _int(inputs.get("width")), _int(inputs.get("height"))
        if width is not None and height is not None and class_type not in _PASS_THROUGH:
            found.update(width=width, height=height)
            if (batch := _int(inputs.get("batch_size"))) is not None:
                found["batch"] = batch
            if (length := _int(inputs.get("length"))) is not None:
                found["frames"] = length
            break
        via = _PASS_THROUGH.get(class_type)
        if via is None:
            break
        current = _link(inputs.get(via))
    return Expected(**found)
