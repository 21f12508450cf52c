"""ComfyUI's prompt queue: a priority heap of pending prompts, the running one, and the history."""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PromptQueue", "QueueItem"]


@dataclass(order=True)
class QueueItem:
    """One queued prompt; ordered like ComfyUI's heap tuples: by number, then prompt id."""

    number: float
    prompt_id: str
    seq: int
    prompt: dict[str, Any] = field(compare=False)
    extra_data: dict[str, Any] = field(compare=False)
    outputs: list[str] = field(compare=False)

    @property
    def client_id(self) -> str | None:
        client_id = self.extra_data.get("client_id")
        return client_id if isinstance(client_id, str) else None

    def as_list(self) -> list[Any]:
        """``[number, prompt_id, prompt, extra_data, outputs_to_execute]`` as ``/queue`` and ``/history`` show it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    """Pending prompts (a heap), the running one(s), finished history, and ``/free`` flags.

    ``on_change(queue_remaining)`` is called whenever the real server would broadcast ``status``.
    """

    def __init__(self, on_change: Callable[[int], None], max_history: int) -> None:
        self._on_change = on_change
        self._max_history = max_history
        self._heap: list[QueueItem] = []
        self._running: dict[int, QueueItem] = {}
        self._task_ids = itertools.count()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}

    def new_item(
        self, number: float, prompt_id: str, prompt: dict[str, Any], extra_data: dict[str, Any], outputs: list[str]
    ) -> QueueItem:
        return QueueItem(number, prompt_id, next(self._seq), prompt, extra_data, outputs)

    def remaining(self) -> int:
        return len(self._heap) + len(self._running)

    def _changed(self) -> None:
        self._on_change(self.remaining())

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, item)
        self._changed()
        self._wakeup.set()

    async def get(self) -> tuple[int, QueueItem]:
        while not self._heap:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = heapq.heappop(self._heap)
        task_id = next(self._task_ids)
        self._running[task_id] = item
        self._changed()
        return task_id, item

    def task_done(self, task_id: int, entry: dict[str, Any]) -> None:
        item = self._running.pop(task_id)
        while len(self.history) >= self._max_history:
            self.history.pop(next(iter(self.history)))
        self.history[item.prompt_id] = {"prompt": copy.deepcopy(item.as_list()), **entry}
        self._changed()

    def running(self) -> list[QueueItem]:
        return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        """Pending items in heap order (not sorted), as ``GET /queue`` shows them."""
        return list(self._heap)

    def wipe(self) -> None:
        self._heap = []
        self._changed()

    def delete(self, prompt_id: Any) -> bool:
        for index, item in enumerate(self._heap):
            if item.prompt_id == prompt_id:
                if len(self._heap) == 1:
                    self.wipe()
                else:
                    self._heap.pop(index)
                    heapq.heapify(self._heap)
                self._changed()
                return True
        return False

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: dict[str, Any] = {}
        for index, (prompt_id, entry) in enumerate(self.history.items()):
            if index >= offset:
                out[prompt_id] = entry
                if max_items is not None and len(out) >= max_items:
                    break
        return copy.deepcopy(out)

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value
        self._wakeup.set()

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags

    def clear_all(self) -> None:
        """Forget pending prompts and history (the admin reset); a running prompt finishes normally."""
        self._heap = []
        self.history.clear()
        self.flags.clear()
        self._changed()
