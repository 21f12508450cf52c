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
    """Base class: subclasses set the class attributes and implement ``input_types`` and ``execute``.

    ``catalogue_entry`` assembles the ``/object_info`` entry from them, in the key order the real server uses:
    V1 nodes (``V3 = False``) put ``output_tooltips`` last when they have it; V3 nodes put it after ``output_name``
    and end with ``deprecated``/``experimental``/``api_node``.
    """

    CLASS_TYPE: ClassVar[str]
    #: ``None`` is what V3 nodes without a display name report (``"display_name": null``).
    DISPLAY_NAME: ClassVar[str | None] = ""
    DESCRIPTION: ClassVar[str] = ""
    CATEGORY: ClassVar[str] = ""
    PYTHON_MODULE: ClassVar[str] = "nodes"
    RETURN_TYPES: ClassVar[tuple[str, ...]] = ()
    RETURN_NAMES: ClassVar[tuple[str, ...] | None] = None
    OUTPUT_IS_LIST: ClassVar[tuple[bool, ...] | None] = None
    OUTPUT_NODE: ClassVar[bool] = False
    OUTPUT_TOOLTIPS: ClassVar[tuple[str | None, ...] | None] = None
    #: Written by ComfyUI's V3 node schema (``comfy_api.latest``): changes the entry's extra keys, see above.
    V3: ClassVar[bool] = False
    #: A V3 node's ``is_experimental`` (its entry's ``experimental``); V1 nodes say it through ``EXTRA_INFO``.
    EXPERIMENTAL: ClassVar[bool] = False
    #: Extra keys a V1 entry carries after ``output_node`` (e.g. ``{"experimental": True}``).
    EXTRA_INFO: ClassVar[dict[str, Any]] = {}
    #: Inputs that ``validate_inputs`` checks itself. ComfyUI skips its built-in checks (combo list, min/max) for
    #: inputs named in ``VALIDATE_INPUTS``; that is why a missing LoadImage file is ``custom_validation_failed``
    #: and not ``value_not_in_list`` (transcript 17).
    VALIDATED_INPUTS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def input_types(cls, folders: Folders) -> dict[str, dict[str, Any]]:
        """``{"required": {...}, "optional": {...}, "hidden": {...}}`` in the real catalogue's shape."""
        raise NotImplementedError

    @classmethod
    def catalogue_entry(cls, folders: Folders) -> dict[str, Any]:
        """This class's ``/object_info`` entry; model-file combos are listed from ``folders``."""
        inputs = cls.input_types(folders)
        outputs = list(cls.RETURN_TYPES)
        entry: dict[str, Any] = {
            "input": inputs,
            "input_order": {section: list(spec) for section, spec in inputs.items()},
            "output": outputs,
            "output_is_list": list(cls.OUTPUT_IS_LIST or (False,) * len(outputs)),
            "output_name": list(cls.RETURN_NAMES or outputs),
        }
        tooltips = None if cls.OUTPUT_TOOLTIPS is None else list(cls.OUTPUT_TOOLTIPS)
        if cls.V3:
            entry["output_tooltips"] = tooltips if tooltips is not None else [None] * len(outputs)
        entry |= {
            "name": cls.CLASS_TYPE,
            "display_name": cls.DISPLAY_NAME,
            "description": cls.DESCRIPTION,
            "python_module": cls.PYTHON_MODULE,
            "category": cls.CATEGORY,
            "output_node": cls.OUTPUT_NODE,
        }
        if cls.V3:
            entry |= {"deprecated": False, "experimental": cls.EXPERIMENTAL, "api_node": False}
        elif tooltips is not None:
            entry["output_tooltips"] = tooltips
        entry |= cls.EXTRA_INFO
        return entry

    @classmethod
    def fingerprint(cls, inputs: dict[str, Any], folders: Folders) -> Any:
        """ComfyUI's ``IS_CHANGED``: part of the cache key (e.g. the bytes of a LoadImage file)."""
        return None

    @classmethod
    def validate_inputs(cls, inputs: dict[str, Any], folders: Folders) -> str | None:
        """ComfyUI's ``VALIDATE_INPUTS``: a message for ``custom_validation_failed``, or None.

        The message is the part after ``"<input> - "`` in the error's details (``Invalid image file: x.png``).
        """
        return None

    async def execute(self, ctx: NodeContext, *args: Any, **inputs: Any) -> NodeOutput:
        """Run the node. Subclasses take their inputs as keyword arguments (and ``**_`` for hidden ones)."""
        raise NotImplementedError
