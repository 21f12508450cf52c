"""The ComfyUI emulator: an HTTP + WebSocket server a client cannot tell from ComfyUI 0.3.64, running CPU nodes.

``create_app(EmulatorConfig(...))`` gives an aiohttp application; ``comfy-relay emulate comfyui`` serves one.
"""

from __future__ import annotations

from ._config import EmulatorConfig
from ._executor import EventSink, Executor, PromptResult
from ._faults import FaultError, Faults
from ._graph import ExecutionPlan, is_link, node_signatures
from ._queue import PromptQueue, QueueItem
from ._server import EMULATOR, Emulator, create_app
from ._validation import PromptCrash, Validation, validate_prompt

__all__ = [
    "EMULATOR",
    "Emulator",
    "EmulatorConfig",
    "EventSink",
    "ExecutionPlan",
    "Executor",
    "FaultError",
    "Faults",
    "PromptCrash",
    "PromptQueue",
    "PromptResult",
    "QueueItem",
    "Validation",
    "create_app",
    "is_link",
    "node_signatures",
    "validate_prompt",
]
