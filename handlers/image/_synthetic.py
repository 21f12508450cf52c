"""Small models made locally with random weights in a real architecture's shape, so a real ComfyUI loads and runs
them without any download (the ``test`` profile, CI). Written as safetensors by hand: no torch needed, and the bytes
are the same on every machine (a seeded generator, little-endian float32), so the lock can pin their sha256."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["GENERATORS", "srvgg_compact_state", "write_safetensors"]

Tensor = tuple[tuple[int, ...], list[float]]


def write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write float32 tensors in the safetensors layout: an 8-byte header length, a JSON header, the raw data."""
    header: dict[str, object] = {"__metadata__": metadata or {}}
    chunks: list[bytes] = []
    offset = 0
    for name, (shape, values) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        if count != len(values):
            raise ValueError(f"{name}: shape {shape} needs {count} values, got {len(values)}")
        data = struct.pack(f"<{count}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for chunk in chunks:
            out.write(chunk)


def srvgg_compact_state(*, num_feat: int = 8, num_conv: int = 2, scale: int = 2, seed: int = 0) -> dict[str, Tensor]:
    """A Real-ESRGAN "Compact" (SRVGGNetCompact) state dict: conv, PReLU, ``num_conv`` x (conv, PReLU), then a conv
    to ``3 * scale**2`` channels for the pixel shuffle. spandrel (ComfyUI's upscale model loader) detects it by
    these key names and shapes."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test weights, not secrets)

    def conv(out_ch: int, in_ch: int) -> tuple[Tensor, Tensor]:
        n = out_ch * in_ch * 9
        weight = [rng.uniform(-0.05, 0.05) for _ in range(n)]
        return ((out_ch, in_ch, 3, 3), weight), ((out_ch,), [0.0] * out_ch)

    state: dict[str, Tensor] = {}
    layers: list[tuple[int, int]] = [(num_feat, 3)] + [(num_feat, num_feat)] * num_conv
    index = 0
    for out_ch, in_ch in layers:
        state[f"body.{index}.weight"], state[f"body.{index}.bias"] = conv(out_ch, in_ch)
        state[f"body.{index + 1}.weight"] = ((out_ch,), [0.25] * out_ch)  # PReLU slopes
        index += 2
    state[f"body.{index}.weight"], state[f"body.{index}.bias"] = conv(3 * scale * scale, num_feat)
    return state


def _srvgg_x2(path: Path) -> None:
    write_safetensors(path, srvgg_compact_state(), {"comfy-relay": "random weights, SRVGGNetCompact shape, x2"})


#: Generator name (as the lock's ``generator`` field says) → a function writing the file.
GENERATORS: Final[dict[str, Callable[[Path], None]]] = {"srvgg-compact-x2": _srvgg_x2}
