"""A real ``runpod.serverless.start`` worker process (async handler, concurrency 4) against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from handlers.local._serving import ServerThread
from tests.local.runpod.conftest import (
    Emulator,
    WorkerProcess,
    spawn_worker,
    wait_for,
)
from tests.local.runpod.test_api import Receiver


@pytest.fixture(scope="module")
def worker(runpod_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with spawn_worker(runpod_emulator, "worker_echo", tmp_path_factory.mktemp("worker_echo")) as process:
        yield process


@pytest.fixture
def emulator(runpod_emulator: Emulator, worker: WorkerProcess) -> Emulator:
    return runpod_emulator


def test_run_completes_with_output(emulator: Emulator, worker: WorkerProcess) -> None:
    job_id = emulator.run({"input": {"prompt": "hi"}})
    body = emulator.wait_status(job_id, "COMPLETED", "FAILED")
    assert body["status"] == "COMPLETED", body
    assert body["output"] == {"echo": {"prompt": "hi"}}
    assert body["workerId"] == "local-worker-1"
    assert isinstance(body["delayTime"], int)
    assert isinstance(body["executionTime"], int)
    # The handler got exactly id and input (no webhook was given).
    assert json.loads(worker.marker(job_id, "job").read_text()) == {"id": job_id, "input": {"prompt": "hi"}}


def test_progress_is_visible_while_running(emulator: Emulator, worker: WorkerProcess) -> None:
    job_id = emulator.run({"input": {"mode": "progress"}})
    body = wait_for(lambda: b if (b := emulator.status(job_id)).get("output") == {"pct": 50} else None, 30, "progress")
    assert body["status"] == "IN_PROGRESS"
    worker.release(job_id)
    assert emulator.wait_status(job_id, "COMPLETED")["output"] == {"done": True}


def test_cancel_reaches_the_handler(emulator: Emulator, worker: WorkerProcess) -> None:
    job_id = emulator.run({"input": {"mode": "block"}})
    emulator.wait_status(job_id, "IN_PROGRESS")
    assert emulator.client.post(f"/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
    wait_for(worker.marker(job_id, "cancelled").exists, 30, "the handler to see CancelledError")
    assert emulator.status(job_id)["status"] == "CANCELLED"
    assert "output" not in emulator.status(job_id)


def test_execution_timeout(emulator: Emulator, worker: WorkerProcess) -> None:
    job_id = emulator.run({"input": {"mode": "block"}, "policy": {"executionTimeout": 500}})
    body = emulator.wait_status(job_id, "TIMED_OUT", "COMPLETED", "FAILED")
    assert body["status"] == "TIMED_OUT"
    wait_for(worker.marker(job_id, "cancelled").exists, 30, "the worker to be told to stop")


def test_runsync_returns_output(emulator: Emulator) -> None:
    response = emulator.client.post("/runsync", json={"input": {"n": 1}})
    body = response.json()
    assert (response.status_code, body["status"], body["output"]) == (200, "COMPLETED", {"echo": {"n": 1}})
    assert body["id"].startswith("sync-")


def test_runsync_returns_in_progress_after_wait(emulator: Emulator, worker: WorkerProcess) -> None:
    # 2 s leaves the worker (long-polling job-take) ample time to pick the job up.
    body = emulator.client.post("/runsync?wait=2000", json={"input": {"mode": "progress"}}).json()
    assert body["status"] == "IN_PROGRESS"
    worker.release(body["id"])
    assert emulator.wait_status(body["id"], "COMPLETED")["output"] == {"done": True}


def test_handler_errors_fail_the_job(emulator: Emulator) -> None:
    returned = emulator.run({"input": {"mode": "error"}})
    raised = emulator.run({"input": {"mode": "raise"}})
    body = emulator.wait_status(returned, "COMPLETED", "FAILED")
    assert (body["status"], body["error"], body["output"]) == ("FAILED", "custom failure", {"detail": 1})
    body = emulator.wait_status(raised, "COMPLETED", "FAILED")
    assert body["status"] == "FAILED"
    assert json.loads(body["error"])["error_message"] == "boom from handler"


def test_retry_runs_the_job_again_with_the_same_id(emulator: Emulator) -> None:
    job_id = emulator.run({"input": {"mode": "fail_once"}})
    assert emulator.wait_status(job_id, "COMPLETED", "FAILED")["status"] == "FAILED"
    assert emulator.client.post(f"/retry/{job_id}").json() == {"id": job_id, "status": "IN_QUEUE"}
    body = emulator.wait_status(job_id, "COMPLETED", "FAILED")
    assert (body["status"], body["output"], "error" in body) == ("COMPLETED", {"attempt": 2}, False)


def test_webhook_reaches_handler_and_receiver(emulator: Emulator, worker: WorkerProcess) -> None:
    receiver = Receiver(failures=1)
    with ServerThread(receiver.app) as hook_server:
        hook = f"{hook_server.url}/hook"
        job_id = emulator.run({"input": {"w": 1}, "webhook": hook})
        wait_for(lambda: len(receiver.calls) == 2, 30, "the webhook and its retry")
    assert json.loads(worker.marker(job_id, "job").read_text()) == {"id": job_id, "input": {"w": 1}, "webhook": hook}
    assert [status for status, _, _ in receiver.calls] == [500, 200]
    body = receiver.calls[-1][1]
    assert (body["id"], body["status"], body["output"], body["input"]) == (
        job_id,
        "COMPLETED",
        {"echo": {"w": 1}},
        {"w": 1},
    )


def test_health_and_pings(emulator: Emulator, worker: WorkerProcess) -> None:
    wait_for(lambda: emulator.admin("workers")["workers"][0]["pings"] > 0, 30, "a heartbeat")
    job_id = emulator.run({"input": {"mode": "progress"}})
    emulator.wait_status(job_id, "IN_PROGRESS")
    health = emulator.client.get("/health").json()
    assert health["workers"] == {"idle": 0, "running": 1}
    assert health["jobs"]["inProgress"] == 1
    worker.release(job_id)
    emulator.wait_status(job_id, "COMPLETED")
    assert emulator.client.get("/health").json()["workers"] == {"idle": 1, "running": 0}


def test_worker_survived_every_job(worker: WorkerProcess) -> None:
    assert worker.process.poll() is None, worker.output()
