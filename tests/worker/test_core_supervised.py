"""``COMFYUI_COMMAND``: the worker starts ComfyUI (the emulator's CLI, a real process), waits for it, restarts it
after a crash (the job in flight fails with ``comfyui_crashed``, retryable) and runs the warmup workflow once per
ComfyUI process."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from handlers.contract import ErrorCode, OutputKind
from handlers.worker import ComfyProcess, MediaFetcher, MediaLimits, S3OutputStore, WorkerConfig, WorkerRuntime
from tests.worker._relay import WORKFLOWS, collect, free_port, made, make_models, mixed_graph, result_of, sampler_graph
from tests.worker.conftest import make_s3_client


def emulator_command(port: int, data_dir: Path, models: Path) -> tuple[str, ...]:
    return (
        sys.executable,
        "-m",
        "handlers.cli",
        "emulate",
        "comfyui",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--models",
        str(models),
    )


def supervised_runtime(
    command: tuple[str, ...], port: int, data_dir: Path, moto_endpoint: str, bucket: str, **overrides: object
) -> WorkerRuntime:
    config = WorkerConfig(
        comfyui_url=f"http://127.0.0.1:{port}",
        comfyui_command=command,
        comfyui_output_dir=data_dir / "output",
        comfyui_input_dir=data_dir / "input",
        comfyui_temp_dir=data_dir / "temp",
        s3_bucket=bucket,
        workflows_dir=WORKFLOWS,
        startup_timeout_s=60,
        stop_timeout_s=5,
        **overrides,  # type: ignore[arg-type]
    )
    s3 = make_s3_client(moto_endpoint)
    return WorkerRuntime(
        config,
        store_factory=lambda b, p: S3OutputStore(b, p, client=s3),
        fetcher=MediaFetcher(MediaLimits(), s3_client=s3),
        client_id="relay-supervised-test",
    )


@pytest.fixture
async def supervised(tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> AsyncIterator[tuple[WorkerRuntime, str]]:
    port = free_port()
    data_dir = tmp_path / "data"
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(mixed_graph(prefix="warmup")))
    command = emulator_command(port, data_dir, make_models(tmp_path / "models"))
    runtime = supervised_runtime(command, port, data_dir, moto_endpoint, s3_bucket, warmup_workflow=warmup)
    try:
        yield runtime, f"http://127.0.0.1:{port}"
    finally:
        await runtime.aclose()


async def test_comfyui_is_started_restarted_after_a_crash_and_warmed_up_each_time(
    supervised: tuple[WorkerRuntime, str],
) -> None:
    runtime, url = supervised
    assert runtime.process is not None and not runtime.process.alive()

    _events, final = await collect(runtime, {"id": "sup-1", "input": {"workflow": sampler_graph()}})
    assert [o.kind for o in made(result_of(final))] == [OutputKind.IMAGE]
    assert runtime.process.alive() and runtime.process.generation == 1
    prompts = httpx.get(url + "/history").json()
    assert sum(1 for entry in prompts.values() if entry["prompt"][1].startswith("warmup-")) == 1

    # The process dies as the sampler starts: the job fails, retryably, and says why.
    httpx.post(url + "/_emulator/faults", json={"exit_at": "KSampler", "exit_code": 3}).raise_for_status()
    _events, final = await collect(runtime, {"id": "sup-2", "input": {"workflow": sampler_graph(steps=2, seed=7)}})
    assert final.error is not None
    assert (final.error.code, final.error.retryable) == (ErrorCode.COMFYUI_CRASHED, True)
    assert not runtime.process.alive()

    # The next job restarts ComfyUI (fresh process: no faults), warms it up again and succeeds.
    _events, final = await collect(runtime, {"id": "sup-3", "input": {"workflow": sampler_graph(steps=2)}})
    assert [o.kind for o in made(result_of(final))] == [OutputKind.IMAGE]
    assert (runtime.process.generation, runtime.process.restarts) == (2, 1)
    prompts = httpx.get(url + "/history").json()
    assert sum(1 for entry in prompts.values() if entry["prompt"][1].startswith("warmup-")) == 1


async def test_a_comfyui_that_dies_at_boot_fails_the_job_fast_with_its_last_words(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    command = (sys.executable, "-c", "import sys; print('CUDA driver not found', flush=True); sys.exit(3)")
    runtime = supervised_runtime(command, free_port(), tmp_path, moto_endpoint, s3_bucket)
    try:
        _events, final = await collect(runtime, {"id": "boot-1", "input": {"workflow": mixed_graph()}})
    finally:
        await runtime.aclose()
    error = final.error
    assert error is not None and error.code is ErrorCode.COMFYUI_UNAVAILABLE and error.retryable
    assert "CUDA driver not found" in error.message and "exit status 3" in error.message


def test_stop_ends_the_process(tmp_path: Path) -> None:
    process = ComfyProcess((sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"))
    process.start()
    assert process.alive()
    process.stop(timeout_s=5)
    assert not process.alive() and process.returncode() is not None
