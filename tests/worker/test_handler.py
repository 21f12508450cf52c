"""The two RunPod adapters, called in-process: result mode (progress through a reporter, a dict back) and streaming
mode (every event a chunk within 1 MB, the result last)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.contract import ErrorCode, ExecutionFailure, JobError, JobResult, Problem, RunPodJobStatus
from handlers.worker import WorkerRuntime, make_handler, make_stream_handler
from handlers.worker._events import MAX_STREAM_CHUNK_BYTES
from handlers.worker._handler import fit_error_details
from tests.conftest import REPO
from tests.worker._relay import Comfy, made, make_models, mixed_graph, runtime_for, sampler_graph, serve_comfy


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Comfy]:
    root = tmp_path_factory.mktemp("comfy")
    with serve_comfy(root / "data", make_models(root / "models")) as served:
        yield served


@pytest.fixture
async def runtime(comfy: Comfy, moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> AsyncIterator[WorkerRuntime]:
    rt = runtime_for(comfy, moto_endpoint, s3_bucket, scratch=tmp_path)
    yield rt
    await rt.aclose()


async def test_result_mode_reports_progress_and_returns_the_result(runtime: WorkerRuntime) -> None:
    reported: list[tuple[dict[str, Any], dict[str, Any]]] = []
    handler = make_handler(runtime, progress=lambda job, update: reported.append((dict(job), update)))
    job = {
        "id": "h-1",
        "input": {"workflow": mixed_graph(), "output": {"inline_base64_max_bytes": 100_000}},
    }
    payload = await handler(job)
    result = JobResult.model_validate(payload)
    assert result.job_id == "h-1" and len(made(result)) == 4
    files = [o for o in made(result) if o.s3_uri]
    assert files and all(o.base64 is not None and len(base64.b64decode(o.base64)) == o.bytes for o in files)
    kinds = [update["type"] for _job, update in reported]
    made_events = [u for _job, u in reported if u["type"] == "output" and not u["output"].get("role")]
    assert "progress" in kinds and len(made_events) == 4
    assert all(job_seen["id"] == "h-1" for job_seen, _ in reported)
    # Progress updates never carry the inline copies: the result does, once.
    assert all("base64" not in update.get("output", {}) for _job, update in reported)
    json.dumps(payload)  # what the SDK posts must be plain JSON


async def test_result_mode_returns_runpods_error_shape(runtime: WorkerRuntime) -> None:
    graph = sampler_graph()
    graph["3"]["inputs"]["cfg"] = 1000.0
    payload = await make_handler(runtime, progress=lambda job, update: None)(
        {"id": "h-2", "input": {"workflow": graph}}
    )
    assert payload["error"].startswith("workflow_invalid: ")
    error = JobError.from_runpod(payload["error"], {"details": payload["details"]})
    assert error.node_errors[0].input == "cfg" and error.job_id == "h-2"


async def test_stream_mode_yields_events_then_the_result(runtime: WorkerRuntime) -> None:
    handler = make_stream_handler(runtime)
    job = {"id": "s-1", "input": {"workflow": mixed_graph(), "output": {"inline_base64_max_bytes": 100_000}}}
    chunks = [chunk async for chunk in handler(job)]
    assert all(len(json.dumps(c).encode()) <= MAX_STREAM_CHUNK_BYTES for c in chunks)
    *events, last = chunks
    result = JobResult.model_validate(last)
    assert len(made(result)) == 4
    assert {e["type"] for e in events} == {"progress", "output"}
    outputs = [e["output"] for e in events if e["type"] == "output"]
    assert sorted(o["node_id"] for o in outputs) == sorted(o.node_id for o in result.outputs)
    assert all("base64" not in o for o in outputs)


async def test_stream_mode_ends_with_the_error(runtime: WorkerRuntime) -> None:
    chunks = [c async for c in make_stream_handler(runtime)({"id": "s-2", "input": {"template": "image/nope"}})]
    assert chunks[-1] == {"error": chunks[-1]["error"]} and chunks[-1]["error"].startswith("template_not_found: ")
    # The details travel in the chunk before it: the SDK keeps only the string of a chunk holding "error".
    assert chunks[-2]["type"] == "error" and "error" not in chunks[-2]
    assert JobError.model_validate(chunks[-2]["details"]).job_id == "s-2"


async def test_stream_mode_streams_node_errors_before_the_error(runtime: WorkerRuntime) -> None:
    graph = sampler_graph()
    graph["3"]["inputs"]["cfg"] = 1000.0
    chunks = [c async for c in make_stream_handler(runtime)({"id": "s-3", "input": {"workflow": graph}})]
    details, last = chunks[-2:]
    assert last["error"].startswith("workflow_invalid: ")
    error = JobError.from_runpod(last["error"], details)
    assert error.node_errors[0].input == "cfg" and error.job_id == "s-3"
    # What RunPod keeps of the stream (every chunk before the error) is what dispatch and the CLI read.
    kept = RunPodJobStatus.model_validate(
        {"id": "s-3", "status": "FAILED", "output": chunks[:-1], "error": last["error"]}
    )
    assert kept.error() == error


def test_error_details_are_fitted_to_the_chunk_limit() -> None:
    problems = [Problem(path=f"input.params.p{i}", message="x" * 500) for i in range(4000)]
    error = JobError(
        code=ErrorCode.EXECUTION_FAILED,
        message="m" * 2_000_000,
        problems=problems,
        execution=ExecutionFailure(node_id="3", exception_message="boom", traceback=["line\n"] * 10_000),
    )
    details = error.to_runpod()["details"]
    fitted = fit_error_details(details, MAX_STREAM_CHUNK_BYTES)
    assert len(json.dumps({"type": "error", "details": fitted}).encode()) <= MAX_STREAM_CHUNK_BYTES
    kept = JobError.model_validate(fitted)
    assert kept.code is ErrorCode.EXECUTION_FAILED and kept.execution is not None
    assert kept.execution.exception_message == "boom" and kept.execution.traceback == []
    assert not kept.problems and kept.message.startswith("mmm")
    small = JobError(code=ErrorCode.INTERNAL, message="short").to_runpod()["details"]
    assert fit_error_details(small, MAX_STREAM_CHUNK_BYTES) == small


def test_error_details_keep_as_many_problems_as_fit() -> None:
    problems = [Problem(path=f"input.params.p{i}", message="é" * (i % 50)) for i in range(600)]
    details = JobError(code=ErrorCode.INVALID_INPUT, message="bad", problems=problems).to_runpod()["details"]
    limit = 20_000
    fitted = fit_error_details(details, limit)
    kept = len(fitted["problems"])
    assert 0 < kept < len(problems) and fitted["message"] == "bad"
    assert len(json.dumps(fitted, separators=(",", ":")).encode()) <= limit - 64
    one_more = {**fitted, "problems": details["problems"][: kept + 1]}
    assert len(json.dumps(one_more, separators=(",", ":")).encode()) > limit - 64


def test_importing_the_worker_does_not_import_runpod() -> None:
    code = "import sys, handlers.worker; from handlers.worker import handler; sys.exit('runpod' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0
