"""The execution engine without a server: order, cache, progress frames, routing, errors, interrupts."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from handlers.local.comfyui import ExecutionPlan, Executor, Faults, PromptQueue, node_signatures
from handlers.local.comfyui._node import Folders
from tests.local.comfyui._fake_nodes import FAKE_NODES, Show


class ListSink:
    def __init__(self, flagged: frozenset[str] = frozenset()) -> None:
        self.flagged = flagged
        self.events: list[tuple[str, Any, str | None]] = []

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        self.events.append((event, data, sid))

    def send_binary(self, frame: bytes, sid: str | None) -> None:
        self.events.append((f"<binary {struct.unpack('>I', frame[:4])[0]}>", frame, sid))

    def supports_preview_metadata(self, sid: str | None) -> bool:
        return sid in self.flagged

    async def flush(self) -> None:
        return None

    def types(self) -> list[str]:
        return [e[0] for e in self.events]

    def clear(self) -> None:
        self.events.clear()


def _queue() -> PromptQueue:
    return PromptQueue(lambda remaining: None, max_history=10)


def _item(prompt: dict[str, Any], outputs: list[str], client_id: str | None = "me") -> Any:
    extra = {} if client_id is None else {"client_id": client_id}
    return _queue().new_item(0, "p1", prompt, extra, outputs)


CHAIN = {
    "1": {"class_type": "Number", "inputs": {"value": 2}},
    "2": {"class_type": "Number", "inputs": {"value": 3}},
    "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
    "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}},
    "5": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
}


def _plan_order(prompt: dict[str, Any], outputs: list[str], cached: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    plan = ExecutionPlan(prompt, outputs, lambda n: n in cached, lambda n: prompt[n]["class_type"] == "Show")
    order = []
    while not plan.empty():
        node = plan.pick()
        assert node is not None
        order.append(node)
        plan.done(node)
    return order


def test_plan_prefers_outputs_then_their_feeders() -> None:
    # As recorded (transcript 01): the preview of node 1 runs as soon as node 1 is done.
    assert _plan_order(CHAIN, ["4", "5"]) == ["1", "5", "2", "3", "4"]
    assert _plan_order(CHAIN, ["4", "5"], cached={"1", "2"}) == ["5", "3", "4"]


def test_signatures_follow_upstream_changes() -> None:
    keys = node_signatures(CHAIN, {})
    changed = {**CHAIN, "2": {"class_type": "Number", "inputs": {"value": 4}}}
    other = node_signatures(changed, {})
    assert keys["1"] == other["1"] and keys["5"] == other["5"]
    assert keys["2"] != other["2"] and keys["3"] != other["3"] and keys["4"] != other["4"]
    assert node_signatures(CHAIN, {"1": "file changed"})["1"] != keys["1"]


async def test_cached_rerun_reannounces_outputs_only(folders: Folders) -> None:
    sink = ListSink()
    executor = Executor(FAKE_NODES, folders, sink, Faults())
    first = await executor.execute(_item(CHAIN, ["4", "5"]))
    assert first.success and first.outputs == {"5": {"text": ["2"]}, "4": {"text": ["5"]}}
    sink.clear()
    runs = Show.runs
    second = await executor.execute(_item(CHAIN, ["4", "5"]))
    assert Show.runs == runs
    assert sink.types() == [
        "execution_start",
        "execution_cached",
        "executed",
        "progress_state",
        "executed",
        "progress_state",
        "execution_success",
    ]
    assert sink.events[1][1]["nodes"] == ["1", "2", "3", "4", "5"]
    assert second.history_entry()["status"]["status_str"] == "success"


async def test_prompt_without_other_nodes_drops_their_cache(folders: Folders) -> None:
    sink = ListSink()
    executor = Executor(FAKE_NODES, folders, sink, Faults())
    await executor.execute(_item(CHAIN, ["4", "5"]))
    lone = {"9": {"class_type": "Show", "inputs": {"value": "x"}}}
    await executor.execute(_item(lone, ["9"]))
    sink.clear()
    await executor.execute(_item(CHAIN, ["4", "5"]))
    assert sink.events[1][1]["nodes"] == []


@pytest.mark.parametrize(
    ("flagged", "expected"), [(False, ["progress", "<binary 1>"]), (True, ["<binary 4>", "progress"])]
)
async def test_preview_frames_order_by_client_flags(folders: Folders, flagged: bool, expected: list[str]) -> None:
    sink = ListSink(frozenset({"me"}) if flagged else frozenset())
    executor = Executor(FAKE_NODES, folders, sink, Faults())
    prompt = {
        "1": {"class_type": "Steps", "inputs": {"steps": 2, "preview": True}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    await executor.execute(_item(prompt, ["2"]))
    step = [t for t in sink.types() if t in ("progress", "<binary 1>", "<binary 4>")]
    assert step == expected * 2
    progress = [e[1] for e in sink.events if e[0] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 2, "1"), (2, 2, "1")]


async def test_no_client_id_sends_only_broadcast_kinds(folders: Folders) -> None:
    """With no client_id, every message goes out with sid None (a broadcast), and only these kinds are sent.

    ``progress`` and the type-1 preview are among them: ComfyUI's progress hook sends them to ``client_id`` with
    no check, and a None sid reaches every socket.
    """
    sink = ListSink()
    executor = Executor(FAKE_NODES, folders, sink, Faults())
    prompt = {
        "1": {"class_type": "Say", "inputs": {"text": "hi"}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Steps", "inputs": {"steps": 1, "preview": True}},
        "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}},
    }
    result = await executor.execute(_item(prompt, ["2", "4"], client_id=None))
    assert result.success and result.outputs == {"2": {"text": ["hi"]}, "4": {"text": ["1"]}}
    assert set(sink.types()) == {"progress_state", "<binary 3>", "progress", "<binary 1>"}
    assert {e[2] for e in sink.events} == {None}


async def test_node_exception_becomes_execution_error(folders: Folders) -> None:
    sink = ListSink()
    executor = Executor(FAKE_NODES, folders, sink, Faults())
    prompt = {
        "1": {"class_type": "Number", "inputs": {"value": 7}},
        "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    result = await executor.execute(_item(prompt, ["3"]))
    error = result.messages[-1]
    assert not result.success and error[0] == "execution_error"
    data = error[1]
    assert (data["node_id"], data["node_type"], data["executed"]) == ("2", "Fail", ["1"])
    assert (data["exception_type"], data["exception_message"]) == ("ValueError", "cannot use 7")
    assert data["current_inputs"] == {"value": [7]} and data["traceback"]
    assert sorted(data["current_outputs"]) == ["1", "2", "3"]
    assert result.history_entry()["status"] == {
        "status_str": "error",
        "completed": False,
        "messages": [[e, d] for e, d in result.messages],
    }


async def test_injected_error_and_interrupt_between_steps(folders: Folders) -> None:
    faults = Faults(error_at="Add")
    executor = Executor(FAKE_NODES, folders, ListSink(), faults)
    result = await executor.execute(_item(CHAIN, ["4"]))
    assert result.messages[-1][1]["exception_message"] == "Emulated failure (fault injection)"

    sink = ListSink()
    executor = Executor(FAKE_NODES, folders, sink, Faults(), step_delay=30.0)
    prompt = {
        "1": {"class_type": "Steps", "inputs": {"steps": 100, "preview": False}},
        "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
    }
    task = asyncio.ensure_future(executor.execute(_item(prompt, ["2"])))
    async with asyncio.timeout(10):
        while "executing" not in sink.types():
            await asyncio.sleep(0)
    executor.interrupt()
    result = await asyncio.wait_for(task, 10)
    assert result.messages[-1][0] == "execution_interrupted"
    assert result.messages[-1][1]["node_id"] == "1" and "progress" not in sink.types()
