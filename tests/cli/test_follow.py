"""Following a job through RunPod's API: /stream chunks, /status fallback, structured errors, downloads."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from handlers.cli._console import JobBars
from handlers.cli._follow import download_outputs, follow_job
from handlers.cli._runpod_client import EndpointTarget, RunPodApiError, RunPodCli

TARGET = EndpointTarget(api_base="http://runpod.test/v2", endpoint_id="ep", api_key="k", local=True)


def _api(answers: dict[str, list[Any]], seen: list[str]) -> RunPodCli:
    """A RunPod API whose ``/stream`` and ``/status`` give the next answer of their list (the last one repeats);
    an ``int`` answer is an HTTP error status."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer k"
        kind = request.url.path.split("/")[3]
        seen.append(kind)
        queue = answers[kind]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, int):
            return httpx.Response(answer, json={"error": "nope"})
        return httpx.Response(200, json=answer)

    return RunPodCli(TARGET, transport=httpx.MockTransport(handle))


def _bars() -> tuple[JobBars, Console]:
    console = Console(file=io.StringIO(), record=True, width=200)
    return JobBars(console), console


def _progress(percent: float, title: str, step: int) -> dict[str, Any]:
    return {"output": {"type": "progress", "percent": percent, "node_title": title, "step": step, "step_max": 10}}


async def test_streamed_progress_and_outputs_are_shown() -> None:
    output = {"node_id": "9", "node_title": "Save", "kind": "image", "s3_uri": "s3://b/k.png"}
    final = {"id": "j", "status": "COMPLETED", "output": [{"outputs": [output]}]}
    answers: dict[str, list[Any]] = {
        "stream": [
            {"status": "IN_PROGRESS", "stream": [_progress(40.0, "KSampler", 4)]},
            {"status": "COMPLETED", "stream": [{"output": {"type": "output", "output": output}}]},
        ],
        "status": [final],
    }
    seen: list[str] = []
    bars, console = _bars()
    async with _api(answers, seen) as api:
        with bars:
            bars.add("j", "job j")
            result = await follow_job(api, "j", bars=bars, key="j", poll_interval_s=0)
    assert result.ok
    assert result.progress_events == 1
    assert result.streamed_outputs == [output]
    assert result.status == final
    text = console.export_text()
    assert "output of [Save] ready: s3://b/k.png" in text
    assert seen == ["stream", "stream", "status"]


async def test_without_stream_progress_comes_from_status() -> None:
    answers: dict[str, list[Any]] = {
        "stream": [404],
        "status": [
            {"id": "j", "status": "IN_PROGRESS", "output": {"percent": 50.0, "node_title": "VAE Decode"}},
            {"id": "j", "status": "FAILED", "error": "execution_failed: node 8 raised"},
        ],
    }
    seen: list[str] = []
    async with _api(answers, seen) as api:
        result = await follow_job(api, "j", poll_interval_s=0)
    assert result.state == "FAILED"
    assert result.progress_events == 1
    assert result.job_error() == {"code": "execution_failed", "message": "node 8 raised", "retryable": False}


async def test_a_streamed_error_keeps_its_details() -> None:
    details = {
        "code": "workflow_invalid",
        "message": "bad",
        "node_errors": [{"node_id": "3", "type": "t", "message": "m"}],
    }
    answers: dict[str, list[Any]] = {
        "stream": [
            {
                "status": "FAILED",
                "stream": [{"output": {"type": "error", "error": "workflow_invalid: bad", "details": details}}],
            }
        ],
        "status": [{"id": "j", "status": "FAILED", "error": "workflow_invalid: bad"}],
    }
    async with _api(answers, []) as api:
        result = await follow_job(api, "j", poll_interval_s=0)
    assert result.job_error() == details


async def test_api_errors_name_the_call_and_hint_at_the_key() -> None:
    async with _api({"status": [401]}, []) as api:
        with pytest.raises(
            RunPodApiError, match=r"GET http://runpod.test/v2/ep/status/j: HTTP 401 \(check RUNPOD_API_KEY\)"
        ):
            await api.status("j")


def test_endpoint_from_environment() -> None:
    target = EndpointTarget.from_env("abc", {"RUNPOD_API_KEY": "secret"})
    assert target.url == "https://api.runpod.ai/v2/abc"
    assert not target.local
    local = EndpointTarget.from_env("e", {"RUNPOD_API_KEY": "k", "RUNPOD_API_BASE": "http://127.0.0.1:8481/v2/"})
    assert (local.url, local.local) == ("http://127.0.0.1:8481/v2/e", True)
    with pytest.raises(RunPodApiError, match="RUNPOD_API_KEY is not set"):
        EndpointTarget.from_env("abc", {})


async def test_downloads_prefer_inline_then_url_then_s3(tmp_path: Path) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"from-url")

    class FakeS3:
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            return {"Body": io.BytesIO(f"{Bucket}/{Key}".encode())}

    outputs = [
        {"node_id": "1", "filename": "a.png", "base64": base64.b64encode(b"inline").decode(), "url": "http://x/a"},
        {"node_id": "2", "filename": "b.png", "url": "http://x/b"},
        {"node_id": "3", "filename": "c.png", "s3_uri": "s3://bucket/key/c.png"},
        {"node_id": "4", "text": "hello"},
        {"node_id": "5", "filename": "../escape.png", "text": "t"},
    ]
    saved = await download_outputs(outputs, tmp_path, s3_client=FakeS3(), transport=httpx.MockTransport(handle))
    assert [p.name for p in saved] == ["a.png", "b.png", "c.png", "output-4-3.txt", "output-5-4.txt"]
    assert [p.read_bytes() for p in saved[:4]] == [b"inline", b"from-url", b"bucket/key/c.png", b"hello"]
    assert all(p.parent == tmp_path for p in saved)
