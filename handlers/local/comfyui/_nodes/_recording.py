"""An in-memory :class:`NodeContext`: runs a node with no server, and records what it reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._node import Folders, Interrupted

__all__ = ["ProgressCall", "RecordingContext"]


@dataclass(frozen=True)
class ProgressCall:
    value: int
    total: int
    preview: bytes | None
    preview_format: str


@dataclass
class RecordingContext:
    """Records ``progress`` and ``send_text`` calls; raises :class:`Interrupted` once ``interrupt_at`` steps ran."""

    folders: Folders
    prompt_id: str = "prompt-1"
    node_id: str = "1"
    pnginfo: dict[str, Any] = field(default_factory=dict)
    #: Interrupt inside the ``progress`` call whose value equals this (None: never).
    interrupt_at: int | None = None
    interrupted: bool = False
    progress_calls: list[ProgressCall] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    async def progress(
        self, value: int, total: int, preview: bytes | None = None, preview_format: str = "JPEG"
    ) -> None:
        self.progress_calls.append(ProgressCall(value, total, preview, preview_format))
        if self.interrupt_at is not None and value >= self.interrupt_at:
            self.interrupted = True
        self.check_interrupt()

    def check_interrupt(self) -> None:
        if self.interrupted:
            raise Interrupted

    def send_text(self, text: str) -> None:
        self.texts.append(text)
