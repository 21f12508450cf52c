"""ComfyUI's WebSocket frames: JSON messages and the binary event frames, byte for byte."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

__all__ = [
    "PREVIEW_FORMATS",
    "BinaryEvent",
    "json_frame",
    "preview_frame",
    "preview_with_metadata_frame",
    "progress_node_entry",
    "queue_info",
    "text_frame",
    "timestamp_ms",
]


class BinaryEvent:
    """The big-endian uint32 that opens every binary frame (ComfyUI's ``BinaryEventTypes``)."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


#: ``preview_format`` -> (format number in a type-1 frame, MIME type in a type-4 frame).
PREVIEW_FORMATS = {"JPEG": (1, "image/jpeg"), "PNG": (2, "image/png")}


def timestamp_ms() -> int:
    return int(time.time() * 1000)


def json_frame(event: str, data: Any) -> str:
    # aiohttp's send_json uses json.dumps with its default separators, as ComfyUI does.
    return json.dumps({"type": event, "data": data})


def queue_info(remaining: int) -> dict[str, Any]:
    return {"exec_info": {"queue_remaining": remaining}}


def _preview_format(preview_format: str) -> tuple[int, str]:
    try:
        return PREVIEW_FORMATS[preview_format.upper()]
    except KeyError:
        raise ValueError(f"preview_format must be JPEG or PNG, not {preview_format!r}") from None


def preview_frame(image: bytes, preview_format: str) -> bytes:
    """Type 1: event, image format (1 JPEG, 2 PNG), image bytes."""
    number, _ = _preview_format(preview_format)
    return struct.pack(">II", BinaryEvent.PREVIEW_IMAGE, number) + image


def preview_with_metadata_frame(image: bytes, preview_format: str, metadata: dict[str, Any]) -> bytes:
    """Type 4: event, metadata length, metadata JSON (with ``image_type``), image bytes."""
    _, mime = _preview_format(preview_format)
    meta = json.dumps({**metadata, "image_type": mime}).encode()
    return struct.pack(">II", BinaryEvent.PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image


def text_frame(node_id: str, text: str) -> bytes:
    """Type 3: event, node-id length, node id, UTF-8 text."""
    node = node_id.encode()
    return struct.pack(">II", BinaryEvent.TEXT, len(node)) + node + text.encode()


def progress_node_entry(node_id: str, prompt_id: str, state: str, value: float, maximum: float) -> dict[str, Any]:
    """One node of a ``progress_state`` message (no subgraph expansion: display, real and own id are the same)."""
    return {
        "value": value,
        "max": maximum,
        "state": state,
        "node_id": node_id,
        "prompt_id": prompt_id,
        "display_node_id": node_id,
        "parent_node_id": None,
        "real_node_id": node_id,
    }
