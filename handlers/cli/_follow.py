"""Follow a RunPod job to its end with a live progress bar, read its result, fetch its outputs, and show errors as
the structured ``JobError`` (code, message, the failing node or input) rather than a traceback.

Progress comes from ``/stream`` (the worker streams progress and per-node output events); ``/status`` is the
fallback for handlers that do not stream, and the source of the final record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from handlers.cli._console import JobBars, ProgressView
from handlers.cli._qa_text import qa_summary
from handlers.cli._runpod_client import TERMINAL_STATUSES, RunPodApiError, RunPodCli
from handlers.contract import ErrorCode, JobError, RunPodJobStatus

if TYPE_CHECKING:
    from rich.console import Console

    from handlers.cli._lookup import JobView

__all__ = [
    "FollowResult",
    "OutputsExist",
    "download_outputs",
    "follow_job",
    "job_error_from_status",
    "output_paths",
    "print_job_error",
    "print_outputs",
    "print_record",
    "print_view",
    "progress_text",
    "result_outputs",
    "state_word",
]


@dataclass
class FollowResult:
    status: dict[str, Any]
    #: Output events streamed while the job ran (each an ``OutputItem`` dict).
    streamed_outputs: list[dict[str, Any]] = field(default_factory=list)
    progress_events: int = 0
    #: A structured error the worker streamed (RunPod's final status keeps only the error string of a stream).
    streamed_error: dict[str, Any] | None = None
    #: Chunks /stream gave (none: a result-mode worker, whose progress is in /status).
    stream_chunks: int = 0
    last_status_output: dict[str, Any] | None = None
    #: ``time.monotonic()`` when the first output was seen stored (streamed, or listed in ``/status``).
    first_output_at: float | None = None

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
        eta_ms=event.get("eta_ms") if isinstance(event.get("eta_ms"), int | float) else None,
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
            chunks = _chunks(answer)
            result.stream_chunks += len(chunks)
            for chunk in chunks:
                _note_chunk(result, chunk, bars, key, state)
            if state == "IN_PROGRESS" and result.stream_chunks == 0:
                # Nothing streamed: a handler in result mode (the default) reports through /status instead.
                await _status_progress(api, job_id, result, bars, key)
        else:
            state = await _status_progress(api, job_id, result, bars, key)
        if bars is not None and key is not None and state == "IN_QUEUE":
            bars.update(key, ProgressView(0.0, status="in queue"))
        if state in TERMINAL_STATUSES:
            result.status = await api.status(job_id)
            if result.stream_chunks == 0 and result.ok:
                # Result mode: an output stored in the last moments may have ended with the job, between polls.
                _announce_outputs(result, result_outputs(result.status), bars, key, state)
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
    if state == "IN_PROGRESS" and isinstance(output, Mapping) and output != result.last_status_output:
        # Each poll sees only the latest update (the same one twice is one event); every update lists the outputs
        # stored so far, so none is missed between polls.
        result.last_status_output = dict(output)
        ready = output.get("outputs_ready")
        _announce_outputs(result, ready if isinstance(ready, list) else [], bars, key, state)
        if output.get("type") != "output":
            _note_chunk(result, output, bars, key, state)
    return state


def _announce_outputs(
    result: FollowResult, items: list[Any], bars: JobBars | None, key: str | None, state: str
) -> None:
    """Note each output not noted yet (by node, file and location)."""

    def identity(item: Mapping[str, Any]) -> tuple[Any, ...]:
        return item.get("node_id"), item.get("filename"), item.get("s3_uri")

    known = {identity(o) for o in result.streamed_outputs}
    for item in items:
        if isinstance(item, Mapping) and identity(item) not in known:
            known.add(identity(item))
            _note_chunk(result, {"type": "output", "output": item}, bars, key, state)


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
        if result.first_output_at is None:
            result.first_output_at = time.monotonic()
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


def result_qa(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job's QA verdict from RunPod's status: the result's ``qa``, or a ``qa_failed`` error's."""
    parsed = _status_model(status)
    if parsed is None:
        return None
    result, error = parsed.result(), parsed.error()
    qa = result.qa if result is not None else (error.qa if error is not None else None)
    return qa.model_dump(mode="json") if qa is not None else None


#: What an end state means when RunPod gives no reason.
_PLAIN_END = {"CANCELLED": "the job was cancelled", "TIMED_OUT": "the job ran out of time"}


def job_error_from_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The structured error of a failed job, read by the contract's ``RunPodJobStatus.error()``."""
    parsed = _status_model(status)
    error = parsed.error() if parsed is not None else None
    if error is None:
        state = str(status.get("status", "failed"))
        error = JobError(
            code=ErrorCode.INTERNAL, message=_PLAIN_END.get(state, f"RunPod reports {state} and gave no reason")
        )
    details: dict[str, Any] = error.to_runpod()["details"]
    return details


def print_job_error(out: Console, error: Mapping[str, Any], prefix: str = "error") -> None:
    """``<prefix>: <code>: <message>``, or, when the error lists its problems, failing node inputs or the node that
    raised, ``<prefix>: <code>:`` and one line for each (the message only summarises them: said once, not twice).
    A code that only repeats the prefix ("job cancelled: cancelled: ...") is left out."""
    code = str(error.get("code"))
    lines: list[str] = []
    for problem in error.get("problems") or []:
        if isinstance(problem, Mapping):
            lines.append(f"  {problem.get('path')}: {problem.get('message')}")
    for node in error.get("node_errors") or []:
        if isinstance(node, Mapping):
            where = f"node {node.get('node_id')}"
            if node.get("class_type"):
                where += f" ({node['class_type']})"
            if node.get("input"):
                where += f" input {node['input']}"
            lines.append(f"  {where}: {node.get('type')}: {node.get('message')}")
    execution = error.get("execution")
    if isinstance(execution, Mapping):
        where = f"node {execution.get('node_id')}"
        if execution.get("node_type"):
            where += f" ({execution['node_type']})"
        raised = execution.get("exception_type") or "an exception"
        lines.append(f"  {where} raised {raised}: {str(execution.get('exception_message', '')).strip()}")
    head = prefix if code == prefix.removeprefix("job ").replace(" ", "_") else f"{prefix}: {code}"
    head += ":" if lines else f": {error.get('message')}"
    out.print(head, style="bold red", markup=False, highlight=False)
    for line in lines:
        out.print(line, markup=False)
    if error.get("retryable"):
        out.print("  (retryable: a retry may succeed)", markup=False)


def _filename(item: Mapping[str, Any], index: int) -> str:
    name = item.get("filename")
    if isinstance(name, str) and name and "/" not in name and name not in (".", ".."):
        return name
    suffix = ".txt" if item.get("text") is not None else ""
    return f"output-{item.get('node_id', 'node')}-{index}{suffix}"


class OutputsExist(FileExistsError):
    """Saving would overwrite files; nothing was written. ``paths`` lists them."""

    def __init__(self, paths: list[Path]) -> None:
        shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        super().__init__(f"would overwrite {shown}: choose another folder, or pass --force")
        self.paths = paths


def output_paths(outputs: list[dict[str, Any]], dest: Path, job_id: str | None = None) -> list[Path]:
    """Where each output is saved: ``<job id>_<file name>`` (ComfyUI numbers files per run, so two runs of a template
    both make ``sdxl-basic_00001_.png``; the job id keeps them apart), unique within the job."""
    paths: list[Path] = []
    taken: set[str] = set()
    for index, item in enumerate(outputs):
        name = _filename(item, index)
        if job_id:
            name = f"{job_id}_{name}"
        stem, dot, ext = name.rpartition(".")
        candidate, n = name, 1
        while candidate in taken:
            candidate = f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"
            n += 1
        taken.add(candidate)
        paths.append(dest / candidate)
    return paths


async def download_outputs(
    outputs: list[dict[str, Any]],
    dest: Path,
    *,
    job_id: str | None = None,
    force: bool = False,
    s3_client: Any = None,
    trust_env: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Path]:
    """Save each output under ``dest`` (named by :func:`output_paths`): inline base64 first, then the presigned URL,
    then ``s3_uri`` via ``s3_client``; text outputs as ``.txt`` files. An existing file is never overwritten unless
    ``force``: :class:`OutputsExist` is raised before anything is written. Thumbnails, posters and waveforms
    (outputs with a ``role``) stay in S3: the saved files are what the graph made."""
    outputs = [o for o in outputs if not o.get("role")]
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    paths = output_paths(outputs, dest, job_id)
    if not force:
        existing = [p for p in paths if await asyncio.to_thread(p.exists)]
        if existing:
            raise OutputsExist(existing)
    saved: list[Path] = []
    async with httpx.AsyncClient(transport=transport, timeout=60.0, trust_env=trust_env, follow_redirects=True) as http:
        for item, path in zip(outputs, paths, strict=True):
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
    print_outputs(out, outputs)
    parsed = _status_model(status)
    result = parsed.result() if parsed is not None else None
    for warning in result.warnings if result is not None else []:
        out.print(f"  warning: {warning}", markup=False)
    if result is not None and result.registered is not None:
        entry = result.registered
        out.print(f"  registered for {entry.character}: {entry.file} (sha256 {entry.sha256[:12]}...)", markup=False)


def print_outputs(out: Console, outputs: list[dict[str, Any]]) -> None:
    """A line per output (node, file, kind, size, where it is) and its link on the next line."""
    for item in outputs:
        title = item.get("node_title") or item.get("node_id")
        size = f"{item['bytes']} bytes" if isinstance(item.get("bytes"), int) else ""
        dims = f"{item['width']}x{item['height']}" if item.get("width") and item.get("height") else ""
        where = item.get("s3_uri") or ("inline" if item.get("base64") else "") or ("text" if item.get("text") else "")
        role = f"{item['role']} of {str(item.get('derived_from') or '')[:12]}" if item.get("role") else ""
        details = ", ".join(p for p in (str(item.get("kind", "")), role, dims, size) if p)
        out.print(f"  [{title}] {item.get('filename') or ''} ({details}) {where}", markup=False)
        if item.get("url"):
            out.print(f"      {item['url']}", markup=False, soft_wrap=True)
        variation = item.get("variation")
        if isinstance(variation, Mapping):
            made = ", ".join(
                f"{key} {variation[key]!r}" for key in ("seed", "prompt") if variation.get(key) is not None
            )
            out.print(f"      variation {variation.get('index')}: {made}", markup=False)
        qa = item.get("qa")
        if isinstance(qa, Mapping):
            out.print(f"      QA: {_qa_text(qa)}", markup=False)


def _qa_text(qa: Mapping[str, Any]) -> str:
    """``fail - black 0.0, uniform 0.0`` for an output (its failed and warned checks with their scores), and
    ``pass after 2 attempts (policy retry)`` for a job."""
    return qa_summary(qa)


def progress_text(progress: Mapping[str, Any] | None) -> str:
    """``45.0% KSampler step 9/20``, or ``""``."""
    if not isinstance(progress, Mapping):
        return ""
    percent = progress.get("percent")
    text = f"{float(percent):.1f}%" if isinstance(percent, int | float) else ""
    if progress.get("node_title"):
        text += f" {progress['node_title']}"
    if progress.get("step") is not None and progress.get("step_max"):
        text += f" step {progress['step']}/{progress['step_max']}"
    return text.strip()


def print_view(out: Console, err: Console, view: JobView) -> None:
    """A job as ``status`` shows it: its ids, state, progress, outputs with links, QA, and its error."""
    ids = view.job_id or view.runpod_id or "?"
    if view.job_id and view.runpod_id and view.runpod_id != view.job_id:
        ids += f" (RunPod job {view.runpod_id})"
    facts = []
    record = view.record or {}
    if record.get("attempt"):
        facts.append(f"attempt {record['attempt']}")
    runpod = view.runpod or {}
    for key, label in (("delayTime", "queued"), ("executionTime", "ran")):
        value = runpod.get(key)
        if isinstance(value, int | float):
            facts.append(f"{label} {value / 1000:.1f}s")
    if runpod.get("workerId"):
        facts.append(f"on {runpod['workerId']}")
    out.print(f"job {ids}: {view.state}" + (f" ({', '.join(facts)})" if facts else ""), markup=False)
    if not view.ended and (shown := progress_text(view.progress)):
        out.print(f"  progress {shown}", markup=False)
    qa = record.get("qa") if isinstance(record.get("qa"), Mapping) else result_qa(runpod) if runpod else None
    if qa is not None:
        out.print(f"  QA: {_qa_text(qa)}", markup=False)
    print_outputs(out, view.outputs())
    error = view.error()
    if error is not None:
        print_job_error(err, error, prefix=state_word(view.state))


#: How each end state reads in a sentence or a bar ("failed", never "failed failed").
_STATE_WORDS = {
    "SUCCEEDED": "done",
    "COMPLETED": "done",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "TIMED_OUT": "timed out",
    "REJECTED": "rejected",
    "IN_QUEUE": "in queue",
    "ACCEPTED": "in queue",
    "SUBMITTED": "in queue",
    "IN_PROGRESS": "running",
    "RUNNING": "running",
}


def state_word(state: str) -> str:
    return _STATE_WORDS.get(state, state.lower().replace("_", " "))
