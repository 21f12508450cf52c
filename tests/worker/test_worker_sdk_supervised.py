"""The SDK worker supervising ComfyUI (``COMFYUI_COMMAND`` = the emulator's CLI): ComfyUI killed mid-job fails that
job with a retryable ``comfyui_crashed``, and the next job succeeds on a restarted ComfyUI."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from handlers.contract import ErrorCode, JobError, JobResult
from tests.local.runpod.conftest import Emulator
from tests.worker._relay import (
    RelayWorker,
    free_port,
    made,
    make_models,
    mixed_graph,
    sampler_graph,
    spawn_relay_worker,
    worker_env,
)
from tests.worker.conftest import make_s3_client

BUCKET = "sdk-supervised"


@pytest.fixture(scope="module")
def comfy_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def worker(
    runpod: Emulator, comfy_url: str, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayWorker]:
    make_s3_client(moto_endpoint).create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("sdk-supervised")
    data = workdir / "comfy"
    models = make_models(workdir / "models")
    port = comfy_url.rsplit(":", 1)[1]
    command = f"{sys.executable} -m handlers.cli emulate comfyui --port {port} --data-dir {data} --models {models}"
    env = worker_env(
        runpod,
        workdir,
        comfy_url,
        moto_endpoint,
        BUCKET,
        COMFYUI_COMMAND=command,
        COMFYUI_OUTPUT_DIR=str(data / "output"),
        COMFYUI_INPUT_DIR=str(data / "input"),
    )
    with spawn_relay_worker(runpod, workdir, env) as process:
        yield process


def test_comfyui_killed_mid_job_fails_it_retryably_and_the_next_job_runs(
    runpod: Emulator, worker: RelayWorker, comfy_url: str
) -> None:
    first = runpod.wait_status(runpod.run({"input": {"workflow": mixed_graph()}}), "COMPLETED", "FAILED")
    assert first["status"] == "COMPLETED", (first, worker.output())

    httpx.post(comfy_url + "/_emulator/faults", json={"exit_at": "KSampler"}).raise_for_status()
    crashed = runpod.wait_status(runpod.run({"input": {"workflow": sampler_graph(seed=3003)}}), "COMPLETED", "FAILED")
    assert crashed["status"] == "FAILED" and crashed["error"].startswith("comfyui_crashed: ")
    error = JobError.from_runpod(crashed["error"], crashed.get("output"))
    assert error.code is ErrorCode.COMFYUI_CRASHED and error.retryable

    again = runpod.wait_status(runpod.run({"input": {"workflow": sampler_graph(seed=3004)}}), "COMPLETED", "FAILED")
    assert again["status"] == "COMPLETED", (again, worker.output())
    assert len(made(JobResult.model_validate(again["output"]))) == 1
    assert "restarting ComfyUI" in worker.output()
