"""The pure parts of pipelining and VRAM coordination: the GPU gate, the SDK concurrency it reports, the /free plan,
the out-of-memory classifier, the model family of a graph, and /system_stats readings. No servers."""

from __future__ import annotations

import asyncio

import pytest

from handlers.common import ConfigError
from handlers.worker import WorkerConfig
from handlers.worker._pipeline import DEFAULT_MAX_CONCURRENT_JOBS, GpuGate
from handlers.worker._vram import FreePolicy, VramPlanner, VramReading, graph_family, is_out_of_memory, vram_reading
from tests.worker._relay import WORKFLOWS, sampler_graph


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_shared_holders_enter_together() -> None:
    gate = GpuGate(3)
    async with gate.hold(exclusive=False), gate.hold(exclusive=False):
        assert gate.holders == 2 and not gate.exclusive_held
    assert gate.holders == 0


async def test_an_exclusive_job_waits_for_every_queued_prompt_and_blocks_newcomers() -> None:
    gate = GpuGate(2)
    order: list[str] = []
    first = asyncio.Event()
    release_first = asyncio.Event()

    async def shared(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.hold(exclusive=False):
            order.append(f"{name} in")
            if name == "a":
                first.set()
            if hold is not None:
                await hold.wait()
            order.append(f"{name} out")

    async def exclusive() -> None:
        async with gate.hold(exclusive=True):
            order.append("x in")
            assert gate.holders == 1
            order.append("x out")

    a = asyncio.create_task(shared("a", release_first))
    await first.wait()
    x = asyncio.create_task(exclusive())
    await _settle()
    b = asyncio.create_task(shared("b"))  # arrives while x waits: x goes first (writer preference)
    await _settle()
    assert order == ["a in"]
    release_first.set()
    await asyncio.gather(a, x, b)
    assert order == ["a in", "a out", "x in", "x out", "b in", "b out"]


async def test_a_cancelled_waiter_leaves_the_gate_usable() -> None:
    gate = GpuGate(2)
    async with gate.hold(exclusive=False):
        waiter = asyncio.create_task(gate.hold(exclusive=True).__aenter__())
        await _settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with gate.hold(exclusive=False):  # no exclusive waiter is left behind
        assert gate.holders == 1


def test_concurrency_is_one_while_an_exclusive_job_is_in_flight() -> None:
    gate = GpuGate(3)
    assert gate.concurrency(1) == 3
    with gate.exclusive_job():
        assert gate.concurrency(3) == 1
    assert gate.concurrency(1) == 3
    with pytest.raises(ValueError, match="max_jobs"):
        GpuGate(0)


def test_configuration_of_concurrency_and_free_policy() -> None:
    env = {"RELAY_WORKFLOWS_DIR": str(WORKFLOWS)}
    config = WorkerConfig.from_env(env)
    assert (config.max_concurrent_jobs, config.free_vram) == (DEFAULT_MAX_CONCURRENT_JOBS, FreePolicy.NEVER)
    config = WorkerConfig.from_env({**env, "RELAY_MAX_CONCURRENT_JOBS": "4", "RELAY_FREE_VRAM": "Family"})
    assert (config.max_concurrent_jobs, config.free_vram) == (4, FreePolicy.FAMILY)
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env({**env, "RELAY_MAX_CONCURRENT_JOBS": "0", "RELAY_FREE_VRAM": "sometimes"})
    text = str(info.value)
    assert "RELAY_MAX_CONCURRENT_JOBS='0': must be between 1 and 16" in text
    assert "RELAY_FREE_VRAM='sometimes': must be one of never, family, always" in text


@pytest.mark.parametrize(
    ("kind", "message", "oom"),
    [
        ("torch.OutOfMemoryError", "Allocation on device 0 would exceed allowed memory. (out of memory)", True),
        ("torch.cuda.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", True),
        ("RuntimeError", "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported", True),
        ("RuntimeError", "MPS backend out of memory (MPS allocated: 17.00 GB)", True),
        ("RuntimeError", "mat1 and mat2 shapes cannot be multiplied (77x768 and 2048x320)", False),
        ("FileNotFoundError", "memory.safetensors not found", False),
    ],
)
def test_out_of_memory_is_recognised_from_the_execution_error(kind: str, message: str, oom: bool) -> None:
    assert is_out_of_memory(kind, message) is oom


def test_graph_family_from_loader_file_names() -> None:
    assert graph_family(sampler_graph()) == "sd15"  # tiny-sd15-random.safetensors
    flux = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev-fp8.safetensors"}}}
    assert graph_family(flux) == "flux"
    sdxl = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}
    assert graph_family(sdxl) == "sdxl"
    assert graph_family({"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}) is None
    assert graph_family({"1": {"class_type": "X", "inputs": {"ckpt_name": ["2", 0]}}}) is None  # a link, no name


def test_free_plan_between_families_and_on_request() -> None:
    never = VramPlanner(FreePolicy.NEVER)
    assert [never.plan(f) for f in ("sdxl", "flux")] == [False, False]
    assert never.plan("flux", template_asks=True) and never.plan("flux", exclusive=True)
    family = VramPlanner(FreePolicy.FAMILY)
    # The first prompt has no predecessor; unknown families neither free nor reset what was last loaded.
    assert [family.plan(f) for f in ("sdxl", "sdxl", None, "flux", "flux", "wan", "sdxl")] == [
        False,
        False,
        False,
        True,
        False,
        True,
        True,
    ]
    always = VramPlanner(FreePolicy.ALWAYS)
    assert always.plan(None) and always.plan("sdxl")


def test_vram_reading_from_system_stats() -> None:
    stats = {"devices": [{"name": "cuda:0", "vram_total": 24 * 2**30, "vram_free": 20 * 2**30}]}
    assert vram_reading(stats) == VramReading(free=20 * 2**30, total=24 * 2**30)
    assert vram_reading({"devices": []}) is None
    assert vram_reading({"system": {}}) is None
    assert vram_reading({"devices": [{"vram_total": "24G"}]}) is None
