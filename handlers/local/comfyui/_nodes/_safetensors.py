"""Write a ``.safetensors`` file (SaveLatent's ``.latent`` files, trained LoRAs, placeholder models) with no torch."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

__all__ = ["Tensor", "encode_safetensors"]

#: A zero-filled tensor, by shape: the emulator's latents and weights carry no real numbers.
Tensor = tuple[int, ...]
_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def encode_safetensors(tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None, dtype: str = "F32") -> bytes:
    """8-byte little-endian header length, the JSON header (padded to 8 bytes), then the tensors' bytes.

    ``metadata`` None writes no ``__metadata__`` (as ``safetensors.torch.save_file`` without metadata does).
    """
    header: dict[str, object] = {} if metadata is None else {"__metadata__": dict(metadata)}
    offset = 0
    for name, shape in tensors.items():
        size = _DTYPE_BYTES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(offset)
