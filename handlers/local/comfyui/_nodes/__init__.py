"""The ComfyUI emulator's nodes: CPU implementations and their exact ``/object_info`` entries."""

from __future__ import annotations

from ._recording import ProgressCall, RecordingContext
from ._registry import NODE_CLASSES, node_info, object_info

__all__ = ["NODE_CLASSES", "ProgressCall", "RecordingContext", "node_info", "object_info"]
