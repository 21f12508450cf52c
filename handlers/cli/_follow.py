"""Follow a RunPod job to its end with a live progress bar, read its result, fetch its outputs, and show errors as
the structured ``JobError`` (code, message, the failing node or input) rather than a traceback.

Progress comes from ``/stream`` (the worker streams progress and per-node output events); ``/status`` is the
fallback for handlers that do not stream, and the source of the final record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from handlers.cli._console import JobBars, ProgressView
from handlers.cli._runpod_client import TERMINAL_STATUSES, RunPodApiError, RunPodCli
from handlers.contract import ErrorCode, JobError, RunPodJobStatus

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "FollowResult",
    "download_outputs",
    "follow_job",
    "job_error_from_status",
    "print_job_error",
    "print_record",
    "result_outputs",
]


@dataclass
class FollowResult:
    status: dict[str, Any]
    #: Output events streamed while the job ran (each an ``OutputItem`` dict).
    streamed_outputs: list[dict[str, Any]] = field(default_factory=list)
    progress_events: int = 0
    #: A structured error the worker streamed (RunPod's final status keeps only the error string of a stream).
    streamed_error: dict[str, Any] | None = None

    def job_error(self) -> dict[str, Any]:
        return self.streamed_error or job_error_from_status(self.status)

    @property
    def state(self) -> str:
        return str(self.status.get("status", "UNKNOWN"))

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"


def _view(event: Mapping[str, Any], status: str | None = None) -> ProgressView:
    percent = event.get("percent")
    return ProgressView(
        percent=float(percent) if isinstance(percent, int | float) else 0.0,
        node_title=event.get("node_title") or event.get("class_type"),
        step=event.get("step"),
        steps=event.get("step_max"),
        status=status,
    )


def _chunks(answer: Mapping[str, Any]) -> list[Any]:
    stream = answer.get("stream")
    return [c.get("output") if isinstance(c, Mapping) else c for c in stream] if isinstance(stream, list) else []


async def follow_job(
    api: RunPodCli,
    job_id: str,
    *,
    bars: JobBars | None = None,
    key: str | None = None,
    poll_interval_s: float = 0.25,
    timeout_s: float = 600.0,
) -> FollowResult:
    """Poll until the job ends; update ``bars[key]`` as progress arrives. Returns the final ``/status`` answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    result = FollowResult(status={"id": job_id, "status": "IN_QUEUE"})
    streaming = True
    while True:
        if streaming:
            try:
                answer = await api.stream(job_id)
            except RunPodApiError as exc:
                if exc.status in (404, 400, 405):
                    streaming = False  # not a streaming endpoint (or job unknown to /stream): /status alone
                    continue
                raise
            state = str(answer.get("status", "IN_QUEUE"))
            for chunk in _chunks(answer):
                _note_chunk(result, chunk, bars, key, state)
            if state == "IN_PROGRESS" and result.progress_events == 0:
                # Nothing streamed (yet): a handler in result mode reports progress through /status instead.
                await _status_progress(api, job_id, result, bars, key)
        else:
            state = await _status_progress(api, job_id, result, bars, key)
        if bars is not None and key is not None and state == "IN_QUEUE":
            bars.update(key, ProgressView(0.0, status="in queue"))
        if state in TERMINAL_STATUSES:
            result.status = await api.status(job_id)
            return result
        if loop.time() >= deadline:
            result.status = await api.status(job_id)
            return result
        await asyncio.sleep(poll_interval_s)


async def _status_progress(
    api: RunPodCli, job_id: str, result: FollowResult, bars: JobBars | None, key: str | None
) -> str:
    """Read ``/status``; while the job runs, its ``output`` is the last ``progress_update`` a result-mode handler
    sent. Returns the status."""
    answer = await api.status(job_id)
    state = str(answer.get("status", "IN_QUEUE"))
    output = answer.get("output")
    if state == "IN_PROGRESS" and isinstance(output, Mapping) and "percent" in output:
        _note_chunk(result, output, bars, key, state)
    return state


def _note_chunk(result: FollowResult, chunk: Any, bars: JobBars | None, key: str | None, state: str) -> None:
    if not isinstance(chunk, Mapping):
        return
    kind = chunk.get("type")
    if kind == "progress" or (kind is None and "percent" in chunk):
        result.progress_events += 1
        if bars is not None and key is not None:
            bars.update(key, _view(chunk))
    elif isinstance(chunk.get("details"), Mapping) and (kind == "error" or "error" in chunk):
        result.streamed_error = dict(chunk["details"])
    elif kind == "output" and isinstance(chunk.get("output"), Mapping):
        item = dict(chunk["output"])
        result.streamed_outputs.append(item)
        if bars is not None and key is not None:
            title = item.get("node_title") or item.get("node_id")
            where = item.get("s3_uri") or item.get("filename") or ""
            bars.log(f"  {bars.label(key)}: output of [{title}] ready: {where}")


def _status_model(status: Mapping[str, Any]) -> RunPodJobStatus | None:
    try:
        return RunPodJobStatus.model_validate(status)
    except ValidationError:
        return None


def result_outputs(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``outputs`` of a completed job's ``JobResult`` (also when RunPod aggregated a stream into a list)."""
    parsed = _status_model(status)
    return [o.model_dump(mode="json", exclude_none=True) for o in parsed.outputs()] if parsed is not None else []


def job_error_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The structured error of a failed job, read by the contract's ``RunPodJobStatus.error()``."""
    parsed = _status_model(status)
    error = parsed.error() if parsed is not None else None
    if error is None:
        state = str(status.get("status", "failed"))
        error = JobError(code=ErrorCode.INTERNAL, message=f"job ended {state}")
    details: dict[str, Any] = error.to_runpod()["details"]
    return details


def print_job_error(out: Console, error: Mapping[str, Any], prefix: str = "error") -> None:
    """``error: <code>: <message>`` then one line per problem, failing node input, or the node that raised."""
    out.print(f"{prefix}: {error.get('code')}: {error.get('message')}", style="bold red", markup=False, highlight=False)
    for problem in error.get("problems") or []:
        if isinstance(problem, Mapping):
            out.print(f"  {problem.get('path')}: {problem.get('message')}", markup=False)
    for node in error.get("node_errors") or []:
        if isinstance(node, Mapping):
            where = f"node {node.get('node_id')}"
            if node.get("class_type"):
                where += f" ({node['class_type']})"
            if node.get("input"):
                where += f" input {node['input']}"
            out.print(f"  {where}: {node.get('type')}: {node.get('message')}", markup=False)
    execution = error.get("execution")
    if isinstance(execution, Mapping):
        where = f"node {execution.get('node_id')}"
        if execution.get("node_type"):
            where += f" ({execution['node_type']})"
        raised = execution.get("exception_type") or "an exception"
        out.print(f"  {where} raised {raised}: {execution.get('exception_message', '').strip()}", markup=False)
    if error.get("retryable"):
        out.print("  (retryable: a retry may succeed)", markup=False)


def _filename(item: Mapping[str, Any], index: int) -> str:
    name = item.get("filename")
    if isinstance(name, str) and name and "/" not in name and name not in (".", ".."):
        return name
    suffix = ".txt" if item.get("text") is not None else ""
    return f"output-{item.get('node_id', 'node')}-{index}{suffix}"


async def download_outputs(
    outputs: list[dict[str, Any]],
    dest: Path,
    *,
    s3_client: Any = None,
    trust_env: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Path]:
    """Save each output under ``dest``: inline base64 first, then the presigned URL, then ``s3_uri`` via
    ``s3_client``; text outputs as ``.txt`` files."""
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    saved: list[Path] = []
    async with httpx.AsyncClient(transport=transport, timeout=60.0, trust_env=trust_env, follow_redirects=True) as http:
        for index, item in enumerate(outputs):
            path = dest / _filename(item, index)
            data: bytes | None = None
            if isinstance(item.get("base64"), str):
                data = base64.b64decode(item["base64"])
            elif isinstance(item.get("url"), str):
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(item["url"])
                    if response.status_code == 200:
                        data = response.content
            if data is None and isinstance(item.get("s3_uri"), str) and s3_client is not None:
                bucket, _, key = item["s3_uri"].removeprefix("s3://").partition("/")
                answer = await asyncio.to_thread(s3_client.get_object, Bucket=bucket, Key=key)
                data = await asyncio.to_thread(answer["Body"].read)
            if data is None and isinstance(item.get("text"), str):
                data = item["text"].encode()
            if data is None:
                continue
            await asyncio.to_thread(path.write_bytes, data)
            saved.append(path)
    return saved


def print_record(out: Console, status: Mapping[str, Any], outputs: list[dict[str, Any]]) -> None:
    """The job as RunPod reports it, and a line per output with where to get it."""
    times = []
    for key, label in (("delayTime", "queued"), ("executionTime", "ran")):
        value = status.get(key)
        if isinstance(value, int | float):
            times.append(f"{label} {value / 1000:.1f}s")
    worker = f" on {status['workerId']}" if status.get("workerId") else ""
    out.print(
        f"job {status.get('id')}: {status.get('status')}{worker} ({', '.join(times) or 'no timings'})", markup=False
    )
    for item in outputs:
        title = item.get("node_title") or item.get("node_id")
        size = f"{item['bytes']} bytes" if isinstance(item.get("bytes"), int) else ""
        dims = f"{item['width']}x{item['height']}" if item.get("width") and item.get("height") else ""
        where = item.get("s3_uri") or ("inline" if item.get("base64") else "") or ("text" if item.get("text") else "")
        details = ", ".join(p for p in (str(item.get("kind", "")), dims, size) if p)
        out.print(f"  [{title}] {item.get('filename') or ''} ({details}) {where}", markup=False)
        if item.get("url"):
            out.print(f"      {item['url']}", markup=False, soft_wrap=True)
