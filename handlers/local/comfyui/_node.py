"""What a node is to the emulator: its catalogue entry (``/object_info``) and an async ``execute``.

The executor resolves links and coerces widget values, then calls ``await node.execute(ctx, **inputs)``.
Nodes report sampler-style progress through ``ctx.progress`` (which is also where an interrupt takes effect),
and raise any exception to fail: the executor reports it as ComfyUI's ``execution_error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = ["Folders", "Interrupted", "Node", "NodeContext", "NodeOutput"]


class Interrupted(Exception):
    """The running prompt was interrupted; raised inside a node at its next check."""


@dataclass(frozen=True)
class Folders:
    """ComfyUI's folders: input, output and temp files, and the models tree (``models/<folder>/<file>``)."""

    input: Path
    output: Path
    temp: Path
    models: Path

    def model_files(self, folder: str) -> list[str]:
        """Files in a model folder, as ComfyUI lists them in combos (relative paths, sorted)."""
        root = self.models / folder
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class NodeContext(Protocol):
    """What a running node may ask of the executor."""

    prompt_id: str
    node_id: str
    folders: Folders
    #: The prompt (after coercion) and ``extra_data.extra_pnginfo``: what SaveImage writes as PNG text chunks.
    pnginfo: dict[str, Any]

    async def progress(
        self, value: int, total: int, preview: bytes | None = None, preview_format: str = "JPEG"
    ) -> None:
        """Send ``progress`` (and a binary preview when given), honour the step delay, and raise
        :class:`Interrupted` if the prompt was interrupted."""

    def check_interrupt(self) -> None:
        """Raise :class:`Interrupted` if the prompt was interrupted."""

    def send_text(self, text: str) -> None:
        """Broadcast a binary TEXT frame (type 3) for this node, as ``GetImageSize`` does."""


@dataclass
class NodeOutput:
    """A node's return values (one per ``RETURN_TYPES`` entry) and, for output nodes, its ui dict."""

    values: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Node:
    """Base class: subclasses set the class attributes and implement ``input_types`` and ``execute``."""

    CLASS_TYPE: ClassVar[str]
    DISPLAY_NAME: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    CATEGORY: ClassVar[str] = ""
    PYTHON_MODULE: ClassVar[str] = "nodes"
    RETURN_TYPES: ClassVar[tuple[str, ...]] = ()
    RETURN_NAMES: ClassVar[tuple[str, ...] | None] = None
    OUTPUT_IS_LIST: ClassVar[tuple[bool, ...] | None] = None
    OUTPUT_NODE: ClassVar[bool] = False

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        """``{"required": {...}, "optional": {...}, "hidden": {...}}`` in the real catalogue's shape."""
        raise NotImplementedError

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any], folders: Folders) -> Any:
        """ComfyUI's ``IS_CHANGED``: part of the cache key (e.g. the bytes of a LoadImage file)."""
        return None

    @classmethod
    def validate_inputs(cls, inputs: dict[str, Any], folders: Folders) -> str | None:
        """ComfyUI's ``VALIDATE_INPUTS``: a message for ``custom_validation_failed``, or None."""
        return None

    async def execute(self, ctx: NodeContext, **inputs: Any) -> NodeOutput:
        raise NotImplementedError
