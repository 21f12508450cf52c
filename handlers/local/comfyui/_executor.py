"""Runs one prompt as ComfyUI does: cache, order, progress, the messages and their routing, interrupts.

The executor never touches a socket: it hands every message to an :class:`EventSink` with the ``sid`` the real
server would use (the prompt's ``client_id``, or None for a broadcast), and returns what goes into the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from ._faults import Faults
from ._graph import ExecutionPlan, is_link, node_signatures
from ._messages import preview_frame, preview_with_metadata_frame, progress_node_entry, text_frame, timestamp_ms
from ._node import Folders, Interrupted, Node, NodeOutput
from ._nodes._types import Images
from ._queue import QueueItem

__all__ = ["EventSink", "Executor", "PromptResult"]


class EventSink(Protocol):
    """Where the executor's messages go (the WebSocket hub, or a list in unit tests)."""

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None: ...

    def send_binary(self, frame: bytes, sid: str | None) -> None: ...

    def supports_preview_metadata(self, sid: str | None) -> bool: ...

    async def flush(self) -> None: ...


@dataclass
class PromptResult:
    """What one prompt left behind: its status messages and the ui outputs of its output nodes."""

    success: bool
    messages: list[tuple[str, dict[str, Any]]]
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def history_entry(self) -> dict[str, Any]:
        """The history entry minus ``prompt`` (the queue adds it)."""
        return {
            "outputs": self.outputs,
            "status": {
                "status_str": "success" if self.success else "error",
                "completed": self.success,
                "messages": [[event, data] for event, data in self.messages],
            },
            "meta": self.meta,
        }


@dataclass
class _Cached:
    values: tuple[Any, ...]
    ui: dict[str, Any] | None


class _NodeFailed(Exception):
    """A node raised: carries what ``execution_error`` reports."""

    def __init__(self, node_id: str, error: Exception, inputs: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.node_id = node_id
        self.error = error
        self.inputs = inputs


class _Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return str(value)


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class _Progress:
    """ComfyUI's progress registry for one prompt: every node touched so far and its state."""

    def __init__(self, sink: EventSink, prompt_id: str, client_id: str | None) -> None:
        self._sink = sink
        self._prompt_id = prompt_id
        self._client_id = client_id
        self._nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self._nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def _send(self) -> None:
        nodes = {
            node_id: progress_node_entry(node_id, self._prompt_id, s["state"], s["value"], s["max"])
            for node_id, s in self._nodes.items()
            if s["state"] != "pending"
        }
        self._sink.send("progress_state", {"prompt_id": self._prompt_id, "nodes": nodes}, self._client_id)

    def start(self, node_id: str) -> None:
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self._send()

    def update(self, node_id: str, value: float, maximum: float) -> None:
        self._entry(node_id).update(state="running", value=value, max=maximum)
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()


class _Context:
    """The :class:`NodeContext` a running node gets."""

    def __init__(
        self,
        executor: Executor,
        progress: _Progress,
        *,
        prompt_id: str,
        node_id: str,
        client_id: str | None,
        pnginfo: dict[str, Any],
    ) -> None:
        self._executor = executor
        self._progress = progress
        self._client_id = client_id
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.folders = executor.folders
        self.pnginfo = pnginfo

    async def progress(
        self, value: int, total: int, preview: bytes | None = None, preview_format: str = "JPEG"
    ) -> None:
        executor = self._executor
        if executor.step_delay > 0:
            # The step's "work": an interrupt cuts it short, as the sampler's next hook call would notice it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(executor.interrupt_event.wait(), executor.step_delay)
        self.check_interrupt()
        self._progress.update(self.node_id, value, total)
        sink = executor.sink
        flagged = sink.supports_preview_metadata(self._client_id)
        if preview is not None and flagged:
            metadata = {
                "node_id": self.node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": self.node_id,
                "parent_node_id": None,
                "real_node_id": self.node_id,
            }
            sink.send_binary(preview_with_metadata_frame(preview, preview_format, metadata), self._client_id)
        sink.send(
            "progress",
            {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id},
            self._client_id,
        )
        if preview is not None and not flagged:
            sink.send_binary(preview_frame(preview, preview_format), self._client_id)
        await asyncio.sleep(0)

    def check_interrupt(self) -> None:
        if self._executor.interrupt_event.is_set():
            raise Interrupted

    def send_text(self, text: str) -> None:
        # ComfyUI's send_progress_text has no sid: every socket gets it.
        self._executor.sink.send_binary(text_frame(self.node_id, text), None)


class Executor:
    """ComfyUI's ``PromptExecutor``: the CLASSIC output cache, node objects, and the interrupt flag."""

    def __init__(
        self,
        node_classes: Mapping[str, type[Node]],
        folders: Folders,
        sink: EventSink,
        faults: Faults,
        step_delay: float = 0.0,
    ) -> None:
        self.node_classes = node_classes
        self.folders = folders
        self.sink = sink
        self.faults = faults
        self.step_delay = step_delay
        self.interrupt_event = asyncio.Event()
        self._release = asyncio.Event()
        self._cache: dict[str, _Cached] = {}
        self._objects: dict[tuple[str, str], Node] = {}
        #: The running prompt's client and node: a client reconnecting with that id is told the node.
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.running: QueueItem | None = None

    def interrupt(self) -> None:
        self.interrupt_event.set()

    def release(self) -> None:
        """Let a node held by the ``hold_at`` fault go on."""
        self._release.set()

    def reset(self) -> None:
        """Drop every cached output and node object (``/free`` with ``free_memory``)."""
        self._cache.clear()
        self._objects.clear()

    def _fingerprint(self, node: Mapping[str, Any]) -> str:
        cls = self.node_classes.get(node.get("class_type", ""))
        if cls is None:
            return ""
        constants = {k: v for k, v in (node.get("inputs") or {}).items() if not is_link(v)}
        try:
            return repr(cls.fingerprint(constants, self.folders))
        except Exception:
            # ComfyUI uses NaN here: never equal to anything, so the node always runs.
            return "unequal:" + uuid.uuid4().hex

    async def execute(self, item: QueueItem) -> PromptResult:
        self.interrupt_event.clear()
        self.running = item
        self.client_id = item.client_id
        try:
            return await self._execute(item)
        finally:
            self.running = None
            self.last_node_id = None

    async def _execute(self, item: QueueItem) -> PromptResult:
        prompt, prompt_id, client_id = item.prompt, item.prompt_id, item.client_id
        messages: list[tuple[str, dict[str, Any]]] = []

        def add_message(event: str, data: dict[str, Any], broadcast: bool) -> None:
            data = {**data, "timestamp": timestamp_ms()}
            messages.append((event, data))
            if client_id is not None or broadcast:
                self.sink.send(event, data, client_id)

        add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        keys = node_signatures(prompt, {node_id: self._fingerprint(node) for node_id, node in prompt.items()})
        live = set(keys.values())
        self._cache = {k: v for k, v in self._cache.items() if k in live}
        self._objects = {
            k: v for k, v in self._objects.items() if k[0] in prompt and prompt[k[0]].get("class_type") == k[1]
        }
        cached_nodes = [node_id for node_id in prompt if keys[node_id] in self._cache]
        add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": prompt_id}, broadcast=False)

        progress = _Progress(self.sink, prompt_id, client_id)
        pnginfo = {"prompt": prompt, **(item.extra_data.get("extra_pnginfo") or {})}
        ui_outputs: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        plan = ExecutionPlan(
            prompt,
            item.outputs,
            is_cached=lambda n: keys.get(n) in self._cache,
            is_output=lambda n: self.node_classes[prompt[n]["class_type"]].OUTPUT_NODE is True,
        )
        success = True
        while not plan.empty():
            node_id = plan.pick()
            if node_id is None:
                node_id = plan.pending()[0]
                failure = _NodeFailed(node_id, RuntimeError("Dependency cycle detected"), {})
                self._report_error(add_message, prompt, prompt_id, failure, executed)
                success = False
                break
            try:
                await self._run_node(
                    node_id,
                    prompt,
                    keys=keys,
                    progress=progress,
                    pnginfo=pnginfo,
                    ui_outputs=ui_outputs,
                    executed=executed,
                )
            except _Interrupted as stop:
                add_message(
                    "execution_interrupted",
                    {
                        "prompt_id": prompt_id,
                        "node_id": stop.node_id,
                        "node_type": prompt[stop.node_id]["class_type"],
                        "executed": executed[::-1],
                    },
                    broadcast=True,
                )
                success = False
                break
            except _NodeFailed as failure:
                self._report_error(add_message, prompt, prompt_id, failure, executed)
                success = False
                break
            plan.done(node_id)
        else:
            add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        meta = {
            node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
            for node_id in ui_outputs
        }
        return PromptResult(success, messages, ui_outputs, meta)

    @staticmethod
    def _report_error(
        add_message: Any, prompt: dict[str, Any], prompt_id: str, failure: _NodeFailed, executed: list[str]
    ) -> None:
        error = failure.error
        add_message(
            "execution_error",
            {
                "prompt_id": prompt_id,
                "node_id": failure.node_id,
                "node_type": prompt[failure.node_id]["class_type"],
                "executed": executed[::-1],
                "exception_message": str(error),
                "exception_type": _type_name(error),
                "traceback": traceback.format_tb(error.__traceback__),
                "current_inputs": {name: [_format_value(v)] for name, v in failure.inputs.items()},
                "current_outputs": list(prompt)[::-1],
            },
            broadcast=False,
        )

    def _inputs(self, node: Mapping[str, Any], cls: type[Node], keys: Mapping[str, str]) -> dict[str, Any]:
        declared = cls.input_types(self.folders)
        names = {*(declared.get("required") or {}), *(declared.get("optional") or {})}
        inputs: dict[str, Any] = {}
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value):
                source = self._cache.get(keys.get(value[0], ""))
                slot = int(value[1])
                inputs[name] = source.values[slot] if source is not None and slot < len(source.values) else None
            elif name in names:
                inputs[name] = value
        return inputs

    async def _run_node(
        self,
        node_id: str,
        prompt: dict[str, Any],
        *,
        keys: Mapping[str, str],
        progress: _Progress,
        pnginfo: dict[str, Any],
        ui_outputs: dict[str, dict[str, Any]],
        executed: list[str],
    ) -> None:
        node = prompt[node_id]
        class_type = node["class_type"]
        cls = self.node_classes[class_type]
        client_id = self.client_id
        prompt_id = self.running.prompt_id if self.running is not None else ""
        cached = self._cache.get(keys[node_id])
        if cached is not None:
            if client_id is not None:
                self.sink.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": cached.ui, "prompt_id": prompt_id},
                    client_id,
                )
            if cached.ui is not None:
                ui_outputs[node_id] = cached.ui
            progress.finish(node_id)
            return

        inputs = self._inputs(node, cls, keys)
        progress.start(node_id)
        if client_id is not None:
            self.last_node_id = node_id
            self.sink.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, client_id)
        await asyncio.sleep(0)
        faults = self.faults
        if Faults.matches(faults.exit_at, node_id, class_type):
            await self.sink.flush()
            os._exit(faults.exit_code)
        if Faults.matches(faults.hold_at, node_id, class_type):
            await self._hold()
        if self.interrupt_event.is_set():
            raise _Interrupted(node_id)
        try:
            if Faults.matches(faults.error_at, node_id, class_type) and faults.take_error():
                raise RuntimeError(faults.error_message)
            obj = self._objects.get((node_id, class_type))
            if obj is None:
                obj = self._objects[(node_id, class_type)] = cls()
            ctx = _Context(self, progress, prompt_id=prompt_id, node_id=node_id, client_id=client_id, pnginfo=pnginfo)
            result = await obj.execute(ctx, **inputs)
            if Faults.matches(faults.black_at, node_id, class_type) and faults.black_times > 0:
                faults.black_times -= 1
                result = NodeOutput(tuple(_black(v) for v in result.values), result.ui, result.extra)
        except Interrupted:
            raise _Interrupted(node_id) from None
        except Exception as exc:
            raise _NodeFailed(node_id, exc, inputs) from exc
        ui = result.ui or None
        if ui is not None:
            ui_outputs[node_id] = ui
            if client_id is not None:
                self.sink.send(
                    "executed",
                    {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
                    client_id,
                )
        self._cache[keys[node_id]] = _Cached(tuple(result.values), ui)
        progress.finish(node_id)
        executed.append(node_id)

    async def _hold(self) -> None:
        self._release.clear()
        waiters = [asyncio.ensure_future(self._release.wait()), asyncio.ensure_future(self.interrupt_event.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _black(value: Any) -> Any:
    """The ``black_at`` fault: every IMAGE comes out all black, as a NaN in an fp16 VAE makes it."""
    if isinstance(value, Images):
        return Images(tuple(Image.new("RGB", frame.size) for frame in value.frames))
    return value
