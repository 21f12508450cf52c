"""Several jobs in flight on one runtime, against the ComfyUI emulator and moto on 127.0.0.1: prompts queue behind
each other with progress routed to their own job; cancelling or timing out a queued job removes it from ComfyUI's
queue and leaves the running one alone; an exclusive template runs alone; an out-of-memory error is retried once
after /free; /free between model families; a ComfyUI crash fails the running job and requeues the queued one.

Synchronisation is on observable state (ComfyUI's queue, the gate's waiters, held nodes), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.contract import ErrorCode, OutputKind, ProgressEvent
from handlers.worker import Finished, WorkerRuntime
from handlers.worker._vram import FreePolicy
from handlers.worker.comfy import prompt_id_for
from tests.worker._relay import (
    WORKFLOWS,
    Comfy,
    collect,
    free_port,
    made,
    make_models,
    mixed_graph,
    result_of,
    runtime_for,
    sampler_graph,
    serve_comfy,
)
from tests.worker.test_core import faults, history, wait_until
from tests.worker.test_core_supervised import emulator_command, supervised_runtime


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture(autouse=True)
def _clean_faults(comfy: Comfy) -> Iterator[None]:
    yield
    httpx.delete(comfy.url + "/_emulator/faults")


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The template library plus ``image/solo``: a small graph whose template says it runs alone."""
    root = tmp_path / "workflows"
    root.mkdir()
    for entry in WORKFLOWS.iterdir():
        (root / entry.name).symlink_to(entry)
    (root / "image").unlink()
    (root / "image").mkdir()
    for entry in (WORKFLOWS / "image").iterdir():
        (root / "image" / entry.name).symlink_to(entry)
    solo = root / "image" / "solo"
    solo.mkdir()
    (solo / "template.json").write_text(json.dumps({"name": "solo", "kind": "image", "exclusive": True}))
    (solo / "workflow.json").write_text(json.dumps(mixed_graph(prefix="solo")))
    return root


@pytest.fixture
async def runtime(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path, library: Path
) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", workflows_dir=library)
    yield rt
    await rt.aclose()


def queue_ids(comfy: Comfy) -> tuple[list[str], list[str]]:
    body = httpx.get(comfy.url + "/queue").json()
    return [item[1] for item in body["queue_running"]], [item[1] for item in body["queue_pending"]]


def running(comfy: Comfy, job_id: str) -> bool:
    return queue_ids(comfy)[0] == [prompt_id_for(job_id)]


def pending(comfy: Comfy, job_id: str) -> bool:
    return prompt_id_for(job_id) in queue_ids(comfy)[1]


def release(comfy: Comfy) -> None:
    httpx.post(comfy.url + "/_emulator/release").raise_for_status()


def run(runtime: WorkerRuntime, job_id: str, job: dict[str, Any]) -> asyncio.Task[tuple[list[Any], Finished]]:
    return asyncio.create_task(collect(runtime, {"id": job_id, "input": job}))


def started_at(comfy: Comfy, job_id: str, kind: str) -> int:
    messages = history(comfy, prompt_id_for(job_id))["status"]["messages"]
    stamp: int = next(data["timestamp"] for name, data in messages if name == kind)
    return stamp


async def test_the_next_prompt_waits_in_comfyuis_queue_and_progress_goes_to_its_own_job(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    faults(comfy, hold_at="KSampler")
    first = run(runtime, "pipe-a", {"workflow": sampler_graph(seed=3001, prefix="pipe/a")})
    await wait_until(lambda: running(comfy, "pipe-a"), "the first prompt to run")
    second = run(runtime, "pipe-b", {"workflow": sampler_graph(seed=3002, prefix="pipe/b")})
    await wait_until(lambda: pending(comfy, "pipe-b"), "the second prompt to wait in ComfyUI's queue")
    release(comfy)
    await wait_until(lambda: running(comfy, "pipe-b"), "the second prompt to start")
    release(comfy)
    (events_a, final_a), (events_b, final_b) = await asyncio.wait_for(asyncio.gather(first, second), 30)
    for job_id, events, final in (("pipe-a", events_a, final_a), ("pipe-b", events_b, final_b)):
        result = result_of(final)
        assert [o.kind for o in made(result)] == [OutputKind.IMAGE]
        progress = [e for e in events if isinstance(e, ProgressEvent)]
        assert progress and {(e.job_id, e.prompt_id) for e in progress} == {(job_id, prompt_id_for(job_id))}
    assert started_at(comfy, "pipe-b", "execution_start") >= started_at(comfy, "pipe-a", "execution_success")
    assert result_of(final_b).timings.queue_wait_ms is not None


async def test_cancelling_a_queued_job_deletes_it_and_leaves_the_running_one(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    faults(comfy, hold_at="KSampler")
    first = run(runtime, "qc-a", {"workflow": sampler_graph(seed=3011)})
    await wait_until(lambda: running(comfy, "qc-a"), "the first prompt to run")
    second = run(runtime, "qc-b", {"workflow": mixed_graph(prefix="qc")})
    await wait_until(lambda: pending(comfy, "qc-b"), "the second prompt to wait")
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert queue_ids(comfy) == ([prompt_id_for("qc-a")], [])  # deleted from the queue; the running one untouched
    release(comfy)
    _events, final = await asyncio.wait_for(first, 30)
    assert [o.kind for o in made(result_of(final))] == [OutputKind.IMAGE]
    assert history(comfy, prompt_id_for("qc-b")) == {}  # never ran
    assert not (comfy.input_dir / "qc-b").exists()


async def test_the_deadline_of_a_queued_job_deletes_it_and_leaves_the_running_one(
    runtime: WorkerRuntime, comfy: Comfy
) -> None:
    faults(comfy, hold_at="KSampler")
    first = run(runtime, "qd-a", {"workflow": sampler_graph(seed=3021)})
    await wait_until(lambda: running(comfy, "qd-a"), "the first prompt to run")
    _events, late = await collect(runtime, {"id": "qd-b", "input": {"workflow": mixed_graph(), "timeout_s": 1}})
    assert late.error is not None and late.error.code is ErrorCode.TIMED_OUT
    assert queue_ids(comfy) == ([prompt_id_for("qd-a")], [])
    release(comfy)
    _events, final = await asyncio.wait_for(first, 30)
    assert [o.kind for o in made(result_of(final))] == [OutputKind.IMAGE]
    assert history(comfy, prompt_id_for("qd-b")) == {}


async def test_an_exclusive_template_runs_alone_and_frees_vram_first(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, hold_at="KSampler")
    before = run(runtime, "ex-a", {"workflow": sampler_graph(seed=3031)})
    await wait_until(lambda: running(comfy, "ex-a"), "the first prompt to run")
    solo = run(runtime, "ex-solo", {"template": "image/solo"})
    await wait_until(lambda: runtime.gate.waiting == 1, "the exclusive job to wait at the gate")
    assert runtime.gate.concurrency() == 1  # the SDK takes no further job meanwhile
    after = run(runtime, "ex-c", {"workflow": sampler_graph(seed=3032)})
    await wait_until(lambda: runtime.gate.waiting == 2, "the next job to wait behind the exclusive one")
    assert queue_ids(comfy) == ([prompt_id_for("ex-a")], [])  # nothing queued beside the running prompt
    release(comfy)
    await wait_until(lambda: running(comfy, "ex-c"), "the last job to run after the exclusive one")
    release(comfy)
    results = await asyncio.wait_for(asyncio.gather(before, solo, after), 30)
    assert all(final.error is None for _events, final in results)
    assert started_at(comfy, "ex-solo", "execution_start") >= started_at(comfy, "ex-a", "execution_success")
    assert started_at(comfy, "ex-c", "execution_start") >= started_at(comfy, "ex-solo", "execution_success")
    solo_timings = result_of(results[1][1]).timings
    assert solo_timings.vram_freed and not result_of(results[0][1]).timings.vram_freed
    assert runtime.gate.concurrency() == runtime.config.max_concurrent_jobs


async def test_out_of_memory_is_retried_once_after_freeing(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, error_at="KSampler", error_message="CUDA out of memory. Tried to allocate 2.00 GiB", error_times=1)
    _events, final = await collect(runtime, {"id": "oom-1", "input": {"workflow": sampler_graph(seed=3041)}})
    result = result_of(final)
    assert [o.kind for o in made(result)] == [OutputKind.IMAGE]
    timings = result.timings
    assert (timings.oom_retries, timings.vram_freed) == (1, True)
    assert timings.vram_total_bytes is not None and timings.vram_free_after_bytes is not None
    # Twice out of memory: the job fails with ComfyUI's error after one retry.
    faults(comfy, error_at="KSampler", error_message="CUDA out of memory. Tried to allocate 2.00 GiB", error_times=2)
    _events, final = await collect(runtime, {"id": "oom-2", "input": {"workflow": sampler_graph(seed=3042)}})
    assert final.error is not None and final.error.code is ErrorCode.EXECUTION_FAILED
    assert "out of memory" in final.error.message
    starts = [m for m in history(comfy, prompt_id_for("oom-2"))["status"]["messages"] if m[0] == "execution_start"]
    assert len(starts) == 1  # the failed retry replaced the first run in ComfyUI's history


async def test_other_errors_are_not_retried(runtime: WorkerRuntime, comfy: Comfy) -> None:
    faults(comfy, error_at="KSampler", error_message="mat1 and mat2 shapes cannot be multiplied", error_times=1)
    _events, final = await collect(runtime, {"id": "noretry-1", "input": {"workflow": sampler_graph(seed=3051)}})
    assert final.error is not None and final.error.code is ErrorCode.EXECUTION_FAILED


async def test_vram_is_freed_between_model_families_when_configured(
    comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path / "scratch", free_vram=FreePolicy.FAMILY)
    sdxl = sampler_graph(seed=3061)
    sdxl["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    try:
        freed = []
        for job_id, graph in (("fam-1", sdxl), ("fam-2", sdxl), ("fam-3", sampler_graph(seed=3062))):
            _events, final = await collect(rt, {"id": job_id, "input": {"workflow": graph}})
            freed.append(result_of(final).timings.vram_freed)
    finally:
        await rt.aclose()
    assert freed == [False, False, True]


async def test_a_crash_fails_the_running_job_and_requeues_the_queued_one(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    command = emulator_command(port, data_dir, make_models(tmp_path / "models"))
    rt = supervised_runtime(command, port, data_dir, moto_endpoint, s3_bucket)
    url = f"http://127.0.0.1:{port}"
    served = Comfy(server=None, data_dir=data_dir)  # type: ignore[arg-type]

    def ids() -> tuple[list[str], list[str]]:
        body = httpx.get(url + "/queue").json()
        return [i[1] for i in body["queue_running"]], [i[1] for i in body["queue_pending"]]

    try:
        await rt.start()
        await rt.ensure_ready(asyncio.get_running_loop().time() + 60)
        assert rt.process is not None
        httpx.post(url + "/_emulator/faults", json={"hold_at": "KSampler", "exit_at": "VAEDecode"}).raise_for_status()
        doomed = run(rt, "crash-a", {"workflow": sampler_graph(seed=3071)})
        await wait_until(lambda: ids()[0] == [prompt_id_for("crash-a")], "the first prompt to run", 30)
        queued = run(rt, "crash-b", {"workflow": mixed_graph(prefix="crash")})
        await wait_until(lambda: prompt_id_for("crash-b") in ids()[1], "the second prompt to wait", 30)
        httpx.post(url + "/_emulator/release").raise_for_status()  # on to VAEDecode: the process exits
        (_ea, final_a), (_eb, final_b) = await asyncio.wait_for(asyncio.gather(doomed, queued), 90)
        assert final_a.error is not None
        assert (final_a.error.code, final_a.error.retryable) == (ErrorCode.COMFYUI_CRASHED, True)
        assert len(made(result_of(final_b))) == 4  # ran on the restarted ComfyUI
        assert (rt.process.generation, rt.process.restarts) == (2, 1)  # one restart for both jobs
        assert not (served.input_dir / "crash-b").exists()
    finally:
        await rt.aclose()
