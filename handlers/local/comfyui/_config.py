"""The emulator's settings, with finite defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._faults import Faults
from ._node import Node

__all__ = ["EmulatorConfig"]

#: What real ComfyUI advertises as ``max_upload_size`` (``--max-upload-size`` 100 MB).
DEFAULT_MAX_UPLOAD_SIZE = 100 * 1024 * 1024
#: ComfyUI's ``MAXIMUM_HISTORY_SIZE``.
DEFAULT_MAX_HISTORY = 10_000


@dataclass
class EmulatorConfig:
    """Where the emulator keeps its files and how it behaves.

    ``data_dir`` holds ``input/``, ``output/`` and ``temp/`` (None: a temporary directory, removed on shutdown).
    ``models_dir`` holds ``<folder>/<file>`` model files (None: ``data_dir/models``); model combos list what is
    there, so a missing checkpoint fails validation as in ComfyUI. ``step_delay`` is slept in every sampler-style
    progress step. ``node_classes`` replaces the built-in node registry (tests).
    """

    data_dir: Path | None = None
    models_dir: Path | None = None
    step_delay: float = 0.0
    faults: Faults = field(default_factory=Faults)
    max_upload_size: int = DEFAULT_MAX_UPLOAD_SIZE
    max_history: int = DEFAULT_MAX_HISTORY
    node_classes: Mapping[str, type[Node]] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.step_delay) or self.step_delay < 0:
            raise ValueError("step_delay must be a finite number of seconds >= 0")
        if self.max_upload_size <= 0 or self.max_history <= 0:
            raise ValueError("max_upload_size and max_history must be positive")
