"""The SDK worker in streaming mode (``RELAY_STREAM``): progress and outputs are stream chunks as they happen, the
result is the last chunk, and ``/status`` shows the aggregate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from handlers.contract import JobResult
from tests.local.runpod.conftest import Emulator, wait_for
from tests.worker._relay import (
    Comfy,
    RelayWorker,
    made,
    make_models,
    mixed_graph,
    serve_comfy,
    spawn_relay_worker,
    worker_env,
)
from tests.worker.conftest import make_s3_client

BUCKET = "sdk-stream"


@pytest.fixture(scope="module")
def worker(
    runpod: Emulator, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RelayWorker, Comfy]]:
    make_s3_client(moto_endpoint).create_bucket(Bucket=BUCKET)
    workdir = tmp_path_factory.mktemp("sdk-stream")
    with serve_comfy(workdir / "comfy", make_models(workdir / "models")) as comfy:
        # No shared folders: media goes through /upload/image and outputs come back through /view.
        env = worker_env(runpod, workdir, comfy.url, moto_endpoint, BUCKET, RELAY_STREAM="true")
        with spawn_relay_worker(runpod, workdir, env) as process:
            yield process, comfy


def test_events_stream_as_they_happen_and_the_result_comes_last(
    runpod: Emulator, worker: tuple[RelayWorker, Comfy]
) -> None:
    process, _comfy = worker
    job_id = runpod.run({"input": {"workflow": mixed_graph()}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "COMPLETED", (status, process.output())
    chunks: list[dict[str, Any]] = status["output"]
    *events, last = chunks
    result = JobResult.model_validate(last)
    assert len(made(result)) == 4 and all(o.url for o in made(result) if o.kind != "text")
    assert {e["type"] for e in events} == {"progress", "output"}
    made_events = [e for e in events if e["type"] == "output" and not e["output"].get("role")]
    assert sorted(e["output"]["node_id"] for e in made_events) == ["2", "4", "6", "8"]


def test_a_failure_ends_the_stream_with_the_error(runpod: Emulator, worker: tuple[RelayWorker, Comfy]) -> None:
    job_id = runpod.run({"input": {"template": "image/does-not-exist"}})
    status = runpod.wait_status(job_id, "COMPLETED", "FAILED")
    assert status["status"] == "FAILED", status
    assert status["error"].startswith("template_not_found: ")
    # The SDK keeps only the string of the error chunk; the structured details were streamed just before it.
    streamed = [item["output"] for item in runpod.client.get(f"/stream/{job_id}").json()["stream"]]
    details = [chunk["details"] for chunk in streamed if chunk.get("type") == "error"]
    assert [d["code"] for d in details] == ["template_not_found"] and details[0]["job_id"] == job_id


def test_the_stream_can_be_read_while_the_job_runs(runpod: Emulator, worker: tuple[RelayWorker, Comfy]) -> None:
    job_id = runpod.run({"input": {"workflow": mixed_graph(prefix="read")}})
    seen: list[Any] = []

    def until_done() -> bool:
        body = runpod.client.get(f"/stream/{job_id}").json()
        seen.extend(item["output"] for item in body["stream"])
        return body["status"] in ("COMPLETED", "FAILED")

    wait_for(until_done, 30, "the job to finish")
    assert seen and seen[-1]["job_id"] == job_id and "outputs" in seen[-1]
    assert any(chunk.get("type") == "progress" for chunk in seen)
