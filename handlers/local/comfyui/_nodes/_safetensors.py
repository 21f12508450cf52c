"""Write a ``.safetensors`` file (the format SaveLatent's ``.latent`` files use) with no torch."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

__all__ = ["Tensor", "encode_safetensors"]

#: A zero-filled float32 tensor, by shape: the emulator's latents carry no real numbers.
Tensor = tuple[int, ...]


def encode_safetensors(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """8-byte little-endian header length, the JSON header (padded to 8 bytes), then the tensors' bytes."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    offset = 0
    for name, shape in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(offset)
