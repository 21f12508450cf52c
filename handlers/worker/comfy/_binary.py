"""Parse ComfyUI's binary WebSocket frames (previews and progress text). Pure: bytes in, a typed frame out."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PREVIEW_IMAGE",
    "PREVIEW_IMAGE_WITH_METADATA",
    "TEXT",
    "BinaryFrame",
    "BinaryFrameError",
    "PreviewFrame",
    "TextFrame",
    "parse_binary_frame",
]

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

# Type 1 names its format by number; 1 and 2 are the only ones ComfyUI's server.py knows.
_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}
_U32 = struct.Struct(">I")


class BinaryFrameError(ValueError):
    """A binary frame too short or malformed to parse."""


@dataclass(frozen=True, slots=True)
class PreviewFrame:
    """An image preview. ``metadata`` is only present for type 4 (clients that negotiated preview metadata)."""

    event_type: int
    mime: str
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_id(self) -> str | None:
        value = self.metadata.get("prompt_id")
        return value if isinstance(value, str) else None

    @property
    def node_id(self) -> str | None:
        # display_node_id is what the UI shows; fall back to the executing node id.
        for key in ("display_node_id", "node_id"):
            value = self.metadata.get(key)
            if isinstance(value, str):
                return value
        return None


@dataclass(frozen=True, slots=True)
class TextFrame:
    """Progress text that a node sent (type 3). ComfyUI broadcasts these to every socket, with no prompt id."""

    node_id: str
    text: str


BinaryFrame = PreviewFrame | TextFrame


def _u32(data: bytes, offset: int) -> int:
    if len(data) < offset + 4:
        raise BinaryFrameError(f"binary frame of {len(data)} bytes is truncated at offset {offset}")
    value: int = _U32.unpack_from(data, offset)[0]
    return value


def parse_binary_frame(data: bytes) -> BinaryFrame | None:
    """Parse one binary frame; ``None`` for event types this client does not use (ComfyUI may add more)."""
    event_type = _u32(data, 0)
    if event_type == PREVIEW_IMAGE:
        image_format = _u32(data, 4)
        return PreviewFrame(event_type, _IMAGE_FORMATS.get(image_format, "application/octet-stream"), data[8:])
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        length = _u32(data, 4)
        end = 8 + length
        if len(data) < end:
            raise BinaryFrameError(f"preview metadata of {length} bytes overruns a frame of {len(data)} bytes")
        try:
            metadata = json.loads(data[8:end])
        except ValueError as exc:
            raise BinaryFrameError(f"preview metadata is not JSON: {exc}") from exc
        if not isinstance(metadata, dict):
            raise BinaryFrameError("preview metadata is not a JSON object")
        mime = metadata.get("image_type")
        return PreviewFrame(
            event_type, mime if isinstance(mime, str) else "application/octet-stream", data[end:], metadata
        )
    if event_type == TEXT:
        length = _u32(data, 4)
        end = 8 + length
        if len(data) < end:
            raise BinaryFrameError(f"text node id of {length} bytes overruns a frame of {len(data)} bytes")
        try:
            return TextFrame(data[8:end].decode(), data[end:].decode())
        except UnicodeDecodeError as exc:
            raise BinaryFrameError(f"progress text is not UTF-8: {exc}") from exc
    return None
