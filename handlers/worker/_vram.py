"""VRAM coordination between the prompts of one worker: when to ask ComfyUI to unload models (``POST /free``),
how to recognise its out-of-memory error, and what ``/system_stats`` says about free VRAM.

The decisions are pure (:class:`VramPlanner`, :func:`is_out_of_memory`, :func:`graph_family`); the runtime does the
I/O. ``/free`` sets flags that ComfyUI applies after the prompt running now and before the next one starts, so
posting it just before queueing a prompt frees memory exactly between the previous prompt and this one, even while
the previous one still runs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "FreePolicy",
    "VramPlanner",
    "VramReading",
    "graph_family",
    "is_out_of_memory",
    "vram_reading",
]

#: How torch and ComfyUI word an out-of-memory error: ``torch.OutOfMemoryError`` / ``torch.cuda.OutOfMemoryError``
#: ("CUDA out of memory. Tried to allocate ..."), ``RuntimeError: CUDA error: out of memory``, MPS/HIP variants,
#: and ComfyUI's own "Allocation on device" message.
_OOM_TYPES: Final = ("outofmemoryerror",)
_OOM_TEXTS: Final = ("out of memory", "allocation on device")

#: Model file name hints -> family, for graphs whose template does not declare one (first match wins).
_FAMILY_HINTS: Final = (
    ("flux", "flux"),
    ("wan2", "wan"),
    ("wan_", "wan"),
    ("qwen", "qwen-image"),
    ("z_image", "z-image"),
    ("z-image", "z-image"),
    ("sd_xl", "sdxl"),
    ("sdxl", "sdxl"),
    ("sd15", "sd15"),
    ("v1-5", "sd15"),
)
_LOADER_INPUTS: Final = ("ckpt_name", "unet_name")


class FreePolicy(enum.StrEnum):
    """``RELAY_FREE_VRAM``: never (ComfyUI's own model management), between model families, or before every prompt."""

    NEVER = "never"
    FAMILY = "family"
    ALWAYS = "always"


def is_out_of_memory(exception_type: str, exception_message: str) -> bool:
    """Whether a node's ``execution_error`` is ComfyUI running out of (GPU) memory."""
    kind = exception_type.lower()
    text = exception_message.lower()
    return any(t in kind for t in _OOM_TYPES) or any(t in text for t in _OOM_TEXTS)


def graph_family(graph: Mapping[str, Any]) -> str | None:
    """The model family a graph loads, guessed from its checkpoint/UNet file names; ``None`` when unknown."""
    for node in graph.values():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for name in _LOADER_INPUTS:
            value = inputs.get(name)
            if isinstance(value, str):
                lowered = value.lower()
                for hint, family in _FAMILY_HINTS:
                    if hint in lowered:
                        return family
    return None


@dataclass(frozen=True, slots=True)
class VramReading:
    free: int
    total: int


def vram_reading(stats: Mapping[str, Any]) -> VramReading | None:
    """Free and total VRAM of the first device in a ``/system_stats`` answer; ``None`` when it has none."""
    devices = stats.get("devices")
    if not isinstance(devices, list) or not devices or not isinstance(devices[0], Mapping):
        return None
    free, total = devices[0].get("vram_free"), devices[0].get("vram_total")
    if isinstance(free, int) and isinstance(total, int) and free >= 0 and total >= 0:
        return VramReading(free=free, total=total)
    return None


class VramPlanner:
    """Decides, prompt by prompt in queue order, whether ComfyUI should unload models first."""

    def __init__(self, policy: FreePolicy = FreePolicy.NEVER) -> None:
        self.policy = policy
        self._last_family: str | None = None

    def plan(self, family: str | None, *, template_asks: bool = False, exclusive: bool = False) -> bool:
        """Whether to ``/free`` before queueing a prompt of ``family``; records it as the last family queued."""
        previous = self._last_family
        if family is not None:
            self._last_family = family
        if template_asks or exclusive or self.policy is FreePolicy.ALWAYS:
            return True
        if self.policy is FreePolicy.FAMILY:
            return family is not None and previous is not None and family != previous
        return False
