"""``python -m handlers.worker`` under the real runpod SDK: ONE worker process for the module, talking to the RunPod
emulator (job-take, progress, job-done, job-stop), the ComfyUI emulator (shared folders) and moto's S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.contract import JobError, JobResult, OutputKind
from handlers.worker.comfy import prompt_id_for
from tests.local.runpod.conftest import Emulator, wait_for
from tests.worker._relay import (
    Comfy,
    RelayWorker,
    make_models,
    mixed_graph,
    sampler_graph,
    serve_comfy,
    spawn_relay_worker,
    worker_env,
)
from tests.worker.conftest import make_s3_client

BUCKET = "sdk-outputs"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture(scope="module")
def worker(
    runpod: Emulator, comfy: Comfy, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayWorker]:
    make_s3_client(moto_endpoint).create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("sdk-worker")
    env = worker_env(
        runpod,
        workdir,
        comfy.url,
        moto_endpoint,
        BUCKET,
        COMFYUI_OUTPUT_DIR=str(comfy.output_dir),
        COMFYUI_INPUT_DIR=str(comfy.input_dir),
    )
    with spawn_relay_worker(runpod, workdir, env) as process:
        yield process


@pytest.fixture(autouse=True)
def _clean_faults(comfy: Comfy) -> Iterator[None]:
    yield
    httpx.delete(comfy.url + "/_emulator/faults")


def _faults(comfy: Comfy, **settings: Any) -> None:
    httpx.post(comfy.url + "/_emulator/faults", json=settings).raise_for_status()


def _history(comfy: Comfy, prompt_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = httpx.get(f"{comfy.url}/history/{prompt_id}").json().get(prompt_id, {})
    return entry


def test_a_job_completes_with_outputs_in_s3(runpod: Emulator, worker: RelayWorker, moto_endpoint: str) -> None:
    job_id = runpod.run({"input": {"workflow": mixed_graph()}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "COMPLETED", (status, worker.output())
    result = JobResult.model_validate(status["output"])
    assert {o.kind for o in result.outputs} == {
        OutputKind.IMAGE,
        OutputKind.ANIMATED,
        OutputKind.AUDIO,
        OutputKind.TEXT,
    }
    assert result.job_id == job_id and result.manifest_uri == f"s3://{BUCKET}/sdk/{job_id}/manifest.json"
    manifest = make_s3_client(moto_endpoint).get_object(Bucket=BUCKET, Key=f"sdk/{job_id}/manifest.json")
    assert JobResult.model_validate(json.loads(manifest["Body"].read())).outputs == result.outputs
    for item in result.outputs:
        if item.url is not None:
            assert httpx.get(item.url).status_code == 200


def test_logs_are_json_keyed_by_job(runpod: Emulator, worker: RelayWorker) -> None:
    job_id = runpod.run({"input": {"workflow": mixed_graph(), "job_id": "logged-1"}})
    runpod.wait_status(job_id, "COMPLETED", "FAILED")

    def logged() -> list[dict[str, Any]]:
        entries = []
        for line in worker.output().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("job_id") == "logged-1":
                    entries.append(entry)
        return [e for e in entries if e["message"] == "job succeeded"]

    (entry,) = wait_for(logged, 10, "the job's log line")
    assert entry["prompt_id"] == prompt_id_for("logged-1") and entry["logger"] == "handlers.worker.core"


def test_a_validation_error_fails_the_job_with_details(runpod: Emulator, worker: RelayWorker) -> None:
    graph = sampler_graph()
    graph["3"]["inputs"]["steps"] = 0
    job_id = runpod.run({"input": {"workflow": graph}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "FAILED" and status["error"].startswith("workflow_invalid: ")
    error = JobError.from_runpod(status["error"], status.get("output"))
    assert [(e.node_id, e.input, e.type) for e in error.node_errors] == [("3", "steps", "value_smaller_than_min")]


def test_an_execution_error_fails_the_job(runpod: Emulator, worker: RelayWorker, comfy: Comfy) -> None:
    _faults(comfy, error_at="VAEDecode")
    job_id = runpod.run({"input": {"workflow": sampler_graph(seed=1003)}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "FAILED" and status["error"].startswith("execution_failed: node 8 (VAEDecode)")


def test_progress_is_visible_while_running_and_cancel_interrupts(
    runpod: Emulator, worker: RelayWorker, comfy: Comfy
) -> None:
    _faults(comfy, hold_at="3")
    job_id = runpod.run({"input": {"workflow": sampler_graph(seed=1001), "job_id": "sdk-cancel"}})

    def held() -> dict[str, Any] | None:
        body = runpod.status(job_id)
        output = body.get("output")
        return output if isinstance(output, dict) and output.get("node_id") == "3" else None

    progress = wait_for(held, 30, "progress at the held sampler")
    assert progress["type"] == "progress" and 0 < progress["percent"] < 100
    assert progress["job_id"] == "sdk-cancel" and progress["class_type"] == "KSampler"
    assert runpod.client.post(f"/cancel/{job_id}").status_code == 200
    assert runpod.wait_status(job_id, "CANCELLED", "COMPLETED", "FAILED")["status"] == "CANCELLED"

    def interrupted() -> bool:
        entry = _history(comfy, prompt_id_for("sdk-cancel"))
        return any(kind == "execution_interrupted" for kind, _ in entry.get("status", {}).get("messages", []))

    wait_for(interrupted, 15, "ComfyUI to interrupt the prompt")
    assert not (comfy.input_dir / "sdk-cancel").exists()
    # The worker is free again: the next job runs.
    httpx.delete(comfy.url + "/_emulator/faults")
    after = runpod.run({"input": {"workflow": mixed_graph()}})
    assert runpod.wait_status(after, "COMPLETED", "FAILED")["status"] == "COMPLETED"


def test_the_job_deadline_times_out(runpod: Emulator, worker: RelayWorker, comfy: Comfy) -> None:
    _faults(comfy, hold_at="3")
    job_id = runpod.run({"input": {"workflow": sampler_graph(seed=1002), "timeout_s": 1}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "FAILED" and status["error"].startswith("timed_out: ")


def test_a_duplicate_job_id_does_not_run_twice(runpod: Emulator, worker: RelayWorker, comfy: Comfy) -> None:
    body = {"input": {"workflow": mixed_graph(prefix="dup"), "job_id": "sdk-dup"}}
    first = runpod.wait_status(runpod.run(body), "COMPLETED", "FAILED")
    started = _history(comfy, prompt_id_for("sdk-dup"))["status"]["messages"]
    second = runpod.wait_status(runpod.run(body), "COMPLETED", "FAILED")
    assert first["status"] == second["status"] == "COMPLETED"
    assert second["output"] == first["output"]
    assert _history(comfy, prompt_id_for("sdk-dup"))["status"]["messages"] == started  # not run again


def test_the_worker_refuses_to_start_with_a_bad_configuration(
    runpod: Emulator, tmp_path: Path, moto_endpoint: str
) -> None:
    import subprocess
    import sys

    env = worker_env(runpod, tmp_path, "ftp://nowhere", moto_endpoint, BUCKET, RELAY_STREAM="perhaps")
    done = subprocess.run(
        [sys.executable, "-m", "handlers.worker"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "COMFYUI_URL" in done.stderr and "RELAY_STREAM" in done.stderr


def test_the_next_job_queues_behind_the_running_one_and_cancels_alone(
    runpod: Emulator, worker: RelayWorker, comfy: Comfy
) -> None:
    """RELAY_MAX_CONCURRENT_JOBS (default 2): the SDK hands over the next job while one runs; its prompt waits in
    ComfyUI's queue. Cancelling it through RunPod deletes it from that queue and leaves the running prompt alone."""

    def queue() -> tuple[list[str], list[str]]:
        body = httpx.get(comfy.url + "/queue").json()
        return [i[1] for i in body["queue_running"]], [i[1] for i in body["queue_pending"]]

    _faults(comfy, hold_at="KSampler")
    first = runpod.run({"input": {"workflow": sampler_graph(seed=1101), "job_id": "sdk-pipe-a"}})
    wait_for(lambda: queue()[0] == [prompt_id_for("sdk-pipe-a")], 30, "the first prompt to run")
    second = runpod.run({"input": {"workflow": sampler_graph(seed=1102), "job_id": "sdk-pipe-b"}})
    wait_for(lambda: queue()[1] == [prompt_id_for("sdk-pipe-b")], 30, "the second prompt to wait in ComfyUI")
    third = runpod.run({"input": {"workflow": mixed_graph(prefix="pipe"), "job_id": "sdk-pipe-c"}})
    assert runpod.client.post(f"/cancel/{second}").status_code == 200
    assert runpod.wait_status(second, "CANCELLED", "COMPLETED", "FAILED")["status"] == "CANCELLED"
    wait_for(lambda: prompt_id_for("sdk-pipe-b") not in queue()[1], 15, "the cancelled prompt to leave the queue")
    assert queue()[0] == [prompt_id_for("sdk-pipe-a")]  # still running, untouched
    httpx.post(comfy.url + "/_emulator/release").raise_for_status()
    assert runpod.wait_status(first, "COMPLETED", "FAILED")["status"] == "COMPLETED"
    assert runpod.wait_status(third, "COMPLETED", "FAILED")["status"] == "COMPLETED"
    assert _history(comfy, prompt_id_for("sdk-pipe-b")) == {}  # never ran
