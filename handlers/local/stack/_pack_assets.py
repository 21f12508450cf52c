"""Placeholder character assets for the local stack, and where it serves them.

The example characters' manifests (``workflows/ava``, ``workflows/mira``) name their assets under
``${RELAY_ASSET_BASE_URL}`` with a sha256. Their bytes are made here, the same on every machine (no compression
library, no float maths): a LoRA-shaped ``.safetensors`` of zeros, an uncompressed PNG portrait, a 16-bit WAV of
tone bursts, each varied by its path. So the checked-in sha256 holds wherever the files are made, the local stack
serves exactly what a deployment would, and :func:`pack_asset_problems` says when a manifest and its placeholder
drift apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import wave
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from handlers.workflow import (
    ASSET_BASE_VAR,
    TemplateError,
    default_workflows_dir,
    list_characters,
    load_character,
)

__all__ = [
    "ASSET_PREFIX",
    "pack_asset_problems",
    "placeholder_asset",
    "placeholder_assets",
    "upload_pack_assets",
]

#: The S3 prefix of the local stack's bucket that ``RELAY_ASSET_BASE_URL`` points at.
ASSET_PREFIX: Final = "character-assets"
_BASE: Final = "${" + ASSET_BASE_VAR + "}/"
#: A small SDXL-style LoRA's key layout (rank 4): enough for a loader to recognise, nothing it can change.
_LORA_KEYS: Final = (
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k",
    "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
)
_RANK: Final = 4
_WIDTH: Final = 64


def _seed(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "big")


def _lora(path: str) -> bytes:
    """safetensors: little-endian header length, JSON header, data. Zeros: a LoRA that changes nothing."""
    header: dict[str, object] = {"__metadata__": {"relay_placeholder": path}}
    offset = 0
    for key in _LORA_KEYS:
        for part, shape in (("lora_down", [_RANK, _WIDTH]), ("lora_up", [_WIDTH, _RANK])):
            size = 4 * shape[0] * shape[1]
            header[f"{key}.{part}.weight"] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        header[f"{key}.alpha"] = {"dtype": "F32", "shape": [], "data_offsets": [offset, offset + 4]}
        offset += 4
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(offset)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stored_deflate(raw: bytes) -> bytes:
    """A zlib stream of stored (uncompressed) blocks: the same bytes from any zlib, unlike compressed ones."""
    out = bytearray(b"\x78\x01")
    for start in range(0, len(raw), 65535):
        block = raw[start : start + 65535]
        final = 1 if start + 65535 >= len(raw) else 0
        out += bytes([final]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
    return bytes(out + struct.pack(">I", zlib.adler32(raw)))


def _portrait(path: str, size: int = 128) -> bytes:
    """An RGB PNG: a coloured background, a round face with two eyes. Integer maths only."""
    seed = _seed(path)
    bg = (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF)
    cx, cy, r = size // 2 + (seed % 9) - 4, size * 9 // 20, size // 5
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        for x in range(size):
            dx, dy = x - cx, y - cy
            eye = min((x - cx + r // 2) ** 2, (x - cx - r // 2) ** 2) + (y - cy + r // 4) ** 2 < (r // 8) ** 2
            if eye:
                pixel = (40, 40, 60)
            elif dx * dx * 25 + dy * dy * 16 < r * r * 25:
                pixel = (235, 195, 165)
            elif y > cy + r and abs(dx) < 2 * r:
                pixel = (60, 90, 140)
            else:
                pixel = (bg[0] * (size - y) // size, bg[1], bg[2] * y // size)
            rows += bytes(pixel)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", _stored_deflate(bytes(rows)))
        + _png_chunk(b"IEND", b"")
    )


def _voice(path: str, seconds: int = 3, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of syllable-like bursts (triangle waves, integer maths), pitch varied by the path."""
    seed = _seed(path)
    syllable = rate // 5
    samples = bytearray()
    for n in range(seconds * rate):
        within = n % syllable
        if within >= syllable * 3 // 4:
            samples += b"\x00\x00"
            continue
        period = rate // (140 + 30 * ((n // syllable + seed) % 4))
        phase = n % period
        triangle = (4 * phase * 6000) // period - 6000 if phase < period // 2 else 18000 - (4 * phase * 6000) // period
        envelope = min(within, syllable * 3 // 4 - within, 400)
        samples += struct.pack("<h", triangle * envelope // 400)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(samples))
    return out.getvalue()


_MAKERS: Final[Mapping[str, Callable[[str], bytes]]] = {
    ".safetensors": _lora,
    ".png": _portrait,
    ".wav": _voice,
}


def placeholder_asset(path: str) -> bytes | None:
    """The placeholder for the asset at ``path`` under the base URL (``ava/ava_sdxl_v1.safetensors``); ``None`` for
    a kind of file there is no placeholder for."""
    maker = _MAKERS.get(Path(path).suffix.lower())
    return maker(path) if maker is not None else None


def placeholder_assets(root: Path | None = None) -> dict[str, bytes]:
    """Path under the base URL -> bytes, for every asset under ``${RELAY_ASSET_BASE_URL}`` that the characters of
    the library at ``root`` name (broken manifests are skipped: ``templates`` reports them)."""
    library = root or default_workflows_dir()
    found: dict[str, bytes] = {}
    for folder in list_characters(library):
        try:
            profile = load_character(library, folder)
        except TemplateError:
            continue
        for entry in profile.assets():
            if entry.asset.url.startswith(_BASE):
                path = entry.asset.url[len(_BASE) :]
                data = placeholder_asset(path)
                if data is not None:
                    found[path] = data
    return found


def pack_asset_problems(root: Path | None = None) -> list[str]:
    """Assets under the base URL whose placeholder differs from what the manifest pins (sha256, size): the local
    stack would serve a file every worker refuses. Each line says the value to put in the manifest."""
    library = root or default_workflows_dir()
    problems = []
    for folder in list_characters(library):
        try:
            profile = load_character(library, folder)
        except TemplateError:
            continue
        for entry in profile.assets():
            url = entry.asset.url
            if not url.startswith(_BASE):
                continue
            data = placeholder_asset(url[len(_BASE) :])
            where = f"{folder}/character.json {entry.path}"
            if data is None:
                problems.append(f"{where}: no local placeholder for {url} (.safetensors, .png or .wav)")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if (digest, len(data)) != (entry.asset.sha256, entry.asset.size):
                problems.append(f"{where}: the local placeholder has sha256 {digest} and size {len(data)}")
    return problems


def upload_pack_assets(s3: object, bucket: str, root: Path | None = None) -> str:
    """Put the placeholders in ``bucket`` under :data:`ASSET_PREFIX`; returns the base URL for the workers."""
    for path, data in sorted(placeholder_assets(root).items()):
        s3.put_object(Bucket=bucket, Key=f"{ASSET_PREFIX}/{path}", Body=data)  # type: ignore[attr-defined]
    return f"s3://{bucket}/{ASSET_PREFIX}"
