"""RunPod's own Python client (``runpod.Endpoint``) against the local stack: the calls and shapes the README shows.

The stack's workers run what a default deployment runs (result mode): ``run_sync`` and ``output()`` give the
``JobResult`` dict, a failure's ``output`` is ``{"details": JobError}``. In streaming mode (``local up --stream``)
the same calls give the list of chunks, and ``stream()`` yields them as they come.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.local.stack import LocalStack, StackConfig, read_state

SMALL = {"template": "image/solid-color", "params": {"width": 48, "height": 32, "color": 255}}
LONG = {"template": "image/sdxl-basic", "params": {"prompt": "a slow one", "steps": 100, "width": 512, "height": 512}}


def _endpoint(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import runpod

    info = read_state(state_dir)
    assert info is not None
    env = info.client_env
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(runpod, "api_key", env["RUNPOD_API_KEY"])
    monkeypatch.setattr(runpod, "endpoint_url_base", env["RUNPOD_API_BASE"])
    return runpod.Endpoint(env["RUNPOD_ENDPOINT_ID"])


@pytest.fixture(scope="module")
def streaming_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("stream-stack") / "state"
    with LocalStack(StackConfig(state_dir=state_dir, port_base=0, workers=1, stream=True)) as stack:
        stack.start()
        yield state_dir


def test_result_mode_as_a_default_deployment(local_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = _endpoint(local_stack, monkeypatch)

    result = endpoint.run_sync(SMALL, timeout=60)
    assert isinstance(result, dict), result  # the JobResult itself, not a list of chunks
    [image] = [o for o in result["outputs"] if not o.get("role")]
    assert (image["kind"], image["width"], image["height"]) == ("image", 48, 32)
    assert image["s3_uri"].startswith("s3://") and image["url"].startswith("http")

    job = endpoint.run(SMALL)
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    output = job.output(timeout=60)
    assert job.status() == "COMPLETED"
    assert output["job_id"] == job.job_id
    assert output["outputs"][0]["width"] == 48
    assert list(job.stream()) == []  # result mode streams nothing: progress is in /status while it runs

    failed = endpoint.run_sync({"template": "image/solid-color", "params": {"width": "wide"}}, timeout=60)
    assert failed["details"]["code"] == "invalid_input"
    assert failed["details"]["problems"] == [
        {"path": "input.params.width", "message": "must be an integer (got 'wide')"}
    ]


def test_cancel_a_running_job(local_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = _endpoint(local_stack, monkeypatch)
    job = endpoint.run(LONG)
    assert job.cancel() == {"id": job.job_id, "status": "CANCELLED"}
    assert job.status() == "CANCELLED"


def test_streaming_mode(streaming_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = _endpoint(streaming_stack, monkeypatch)

    chunks = endpoint.run_sync(SMALL, timeout=60)
    assert isinstance(chunks, list), chunks
    assert chunks[0]["type"] == "progress"
    made = [c["output"] for c in chunks if c.get("type") == "output" and not c["output"].get("role")]
    assert [o["width"] for o in made] == [48]
    assert chunks[-1]["outputs"][0]["width"] == 48  # the last chunk is the JobResult

    job = endpoint.run(SMALL)
    streamed = list(job.stream())
    assert {c.get("type") for c in streamed[:-1]} <= {"progress", "output"}
    assert streamed[-1]["job_id"] == job.job_id
    assert json.dumps(job.output(timeout=60)) == json.dumps(streamed)
