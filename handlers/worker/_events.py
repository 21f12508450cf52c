"""The core's pure decisions: the events a job produces, progress throttling and ETA, per-node timings, the
mapping from what went wrong to a :class:`JobError`, and what fits in a RunPod payload. No I/O, no clock: callers
pass the time in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from handlers.contract import (
    CodedError,
    ErrorCode,
    JobError,
    JobResult,
    OutputItem,
    OutputReadyEvent,
    ProgressEvent,
    SeedUsed,
    Timings,
    comfyui_execution_error,
    comfyui_rejection_error,
    validation_problems,
)
from handlers.worker._media import MediaError
from handlers.worker._supervisor import ComfyUIDied
from handlers.worker.comfy import (
    ComfyUICrashed,
    ComfyUIError,
    ComfyUIInvalid,
    ComfyUIUnavailable,
    DeadlineExceeded,
    ExecutionFailed,
    ProgressUpdate,
    PromptInterrupted,
    PromptNotApiFormat,
    PromptRejected,
)

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_STREAM_CHUNK_BYTES",
    "CoreEvent",
    "Finished",
    "NodeTimeline",
    "ProgressThrottle",
    "error_for",
    "fit_payload",
    "progress_event",
    "result_timings",
]

#: RunPod refuses stream chunks over 1 MB and /run results over 10 MB; stay a little under both.
MAX_STREAM_CHUNK_BYTES: Final = 1_000_000
MAX_RESULT_BYTES: Final = 9_500_000


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of every job: exactly one of ``result`` and ``error``."""

    result: JobResult | None = None
    error: JobError | None = None

    def __post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("Finished needs exactly one of result and error")

    def payload(self) -> dict[str, Any]:
        """What the handler returns: the result as JSON, or RunPod's ``{"error": ..., "details": ...}``."""
        if self.error is not None:
            return self.error.to_runpod()
        assert self.result is not None
        return self.result.model_dump(mode="json", exclude_none=True)


CoreEvent = ProgressEvent | OutputReadyEvent | Finished


# ----------------------------------------------------------------------------------------------------- progress


@dataclass(slots=True)
class ProgressThrottle:
    """At most one progress event per ``interval_ms``, without losing the last word: an event that arrives too soon
    is held (a newer one replaces it) and is due at the end of the interval, so a long node that starts right after
    another is still reported. The first event and 100 % pass at once; an event that says nothing new (same
    percent, node and step as the last one sent) is dropped."""

    interval_ms: int
    _last_ms: float | None = None
    _last: tuple[float, str | None, int | None] | None = None
    _pending: ProgressEvent | None = None

    def admit(self, event: ProgressEvent, now_ms: float) -> bool:
        """``True``: send ``event`` now. ``False``: it is held (see :meth:`due_ms`) or was not news."""
        key = (event.percent, event.node_id, event.step)
        if key == self._last:
            self._pending = None
            return False
        due = self._last_ms is None or now_ms - self._last_ms >= self.interval_ms
        if not due and event.percent < 100:
            self._pending = event
            return False
        self._sent(event, now_ms)
        return True

    def due_ms(self) -> float | None:
        """When the held event should go out, if one is held."""
        if self._pending is None or self._last_ms is None:
            return None
        return self._last_ms + self.interval_ms

    def take_due(self, now_ms: float) -> ProgressEvent | None:
        """The held event, if its time has come (it then counts as sent)."""
        due = self.due_ms()
        if due is None or now_ms < due or self._pending is None:
            return None
        event = self._pending
        self._sent(event, now_ms)
        return event

    def _sent(self, event: ProgressEvent, now_ms: float) -> None:
        self._last_ms = now_ms
        self._last = (event.percent, event.node_id, event.step)
        self._pending = None


def progress_event(
    update: ProgressUpdate, *, job_id: str, prompt_id: str | None, elapsed_ms: int, running_ms: int | None
) -> ProgressEvent:
    """A contract progress event from the follower's snapshot. The ETA is a straight line through the time spent
    since execution started: crude, but honest about being an estimate, and absent until there is something."""
    eta: int | None = None
    if running_ms is not None and 0 < update.percent < 100:
        eta = max(0, round(running_ms * (100 - update.percent) / update.percent))
    step = int(update.step) if update.step is not None and update.step >= 0 else None
    steps = int(update.steps) if update.steps is not None and update.steps >= 0 else None
    return ProgressEvent(
        job_id=job_id,
        prompt_id=prompt_id,
        percent=min(max(update.percent, 0.0), 100.0),
        node_id=update.node,
        node_title=update.title,
        class_type=update.class_type,
        step=step,
        step_max=steps,
        elapsed_ms=max(0, elapsed_ms),
        eta_ms=eta,
    )


# ------------------------------------------------------------------------------------------------------ timings


@dataclass(slots=True)
class NodeTimeline:
    """Per-node execution time from the moments nodes start: a node runs until the next one starts or the prompt
    ends (ComfyUI runs one node at a time). Times are milliseconds from any fixed origin."""

    nodes_ms: dict[str, int] = field(default_factory=dict)
    _current: str | None = None
    _since: float = 0.0

    def node_started(self, node: str, now_ms: float) -> None:
        self._close(now_ms)
        self._current, self._since = node, now_ms

    def finished(self, now_ms: float) -> None:
        self._close(now_ms)

    def _close(self, now_ms: float) -> None:
        if self._current is not None:
            spent = max(0, round(now_ms - self._since))
            self.nodes_ms[self._current] = self.nodes_ms.get(self._current, 0) + spent
            self._current = None


def _span(start: float | None, end: float | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round(end - start))


def result_timings(
    *,
    started: float,
    stage: tuple[float, float] | None,
    queued: float | None,
    running: float | None,
    ended: float | None,
    upload_ms: float | None,
    nodes_ms: Mapping[str, int],
    now: float,
) -> Timings:
    """Timings in ms from instants in ms (one clock)."""
    return Timings(
        stage_ms=_span(*stage) if stage is not None else None,
        queue_wait_ms=_span(queued, running),
        execution_ms=_span(running, ended),
        nodes_ms=dict(nodes_ms),
        upload_ms=round(upload_ms) if upload_ms is not None else None,
        total_ms=_span(started, now),
    )


def assemble_result(
    *,
    job_id: str,
    prompt_id: str,
    outputs: list[OutputItem],
    seeds: list[SeedUsed],
    timings: Timings,
    warnings: list[str],
    input_digest: str | None = None,
) -> JobResult:
    return JobResult(
        job_id=job_id,
        prompt_id=prompt_id,
        outputs=outputs,
        seeds=seeds,
        timings=timings,
        warnings=warnings,
        input_digest=input_digest,
    )


# ------------------------------------------------------------------------------------------------------- errors


def error_for(
    exc: BaseException,
    *,
    job_id: str | None,
    prompt_id: str | None = None,
    media_index: Mapping[str, int] | None = None,
) -> JobError | None:
    """The :class:`JobError` for a failure the worker understands; ``None`` means a bug (report as ``internal``).
    Errors that know their code (:class:`CodedError`: binding, templates, conversion, media, storage) say it
    themselves; ComfyUI's exception tree is translated here, its one boundary with the contract.
    ``media_index`` (media name -> position in ``input.media``) lets a media failure point at its item."""
    error: JobError | None = None
    if isinstance(exc, ValidationError):
        error = JobError.from_problems(validation_problems(exc))
    elif isinstance(exc, MediaError):
        error = exc.to_job_error(job_id)
        index = (media_index or {}).get(exc.media_name or "")
        if index is not None:
            error = error.model_copy(update={"problems": [exc.problem_at(f"input.media[{index}]")]})
    elif isinstance(exc, CodedError):
        error = exc.to_job_error(job_id)
    elif isinstance(exc, PromptRejected):
        error = comfyui_rejection_error(exc.body, job_id=job_id)
    elif isinstance(exc, PromptNotApiFormat):
        error = JobError(code=ErrorCode.WORKFLOW_INVALID, message=str(exc))
    elif isinstance(exc, ExecutionFailed):
        d = exc.details
        error = comfyui_execution_error(
            {
                "node_id": d.node_id,
                "node_type": d.node_type,
                "exception_type": d.exception_type,
                "exception_message": d.exception_message,
                "traceback": list(d.traceback),
                "prompt_id": exc.prompt_id,
            },
            job_id=job_id,
        )
    elif isinstance(exc, DeadlineExceeded | TimeoutError):
        error = JobError(code=ErrorCode.TIMED_OUT, message="the job did not finish within its timeout_s")
    elif isinstance(exc, PromptInterrupted):
        error = JobError(code=ErrorCode.CANCELLED, message=f"the prompt was interrupted: {exc}")
    elif isinstance(exc, ComfyUICrashed):
        error = JobError(code=ErrorCode.COMFYUI_CRASHED, message=str(exc))
    elif isinstance(exc, ComfyUIUnavailable | ComfyUIDied):
        error = JobError(code=ErrorCode.COMFYUI_UNAVAILABLE, message=str(exc))
    elif isinstance(exc, ComfyUIInvalid):
        error = JobError(code=ErrorCode.INVALID_INPUT, message=str(exc))
    elif isinstance(exc, ComfyUIError):
        error = JobError(code=ErrorCode.INTERNAL, message=str(exc))
    elif isinstance(exc, asyncio.CancelledError):
        error = JobError(code=ErrorCode.CANCELLED, message="the job was cancelled")
    if error is None:
        return None
    update: dict[str, Any] = {"job_id": job_id}
    if prompt_id is not None and error.prompt_id is None:
        update["prompt_id"] = prompt_id
    return error.model_copy(update=update)


# ----------------------------------------------------------------------------------------------------- payloads


def _size(payload: Any) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def fit_payload(payload: dict[str, Any], limit: int) -> tuple[dict[str, Any], bool]:
    """``payload`` (a result or event as JSON) within ``limit`` bytes: inline base64 is dropped first (the S3 URL
    stays), then text outputs are cut. Returns the payload and whether anything was removed."""
    if _size(payload) <= limit:
        return payload, False
    trimmed = json.loads(json.dumps(payload))
    items: list[dict[str, Any]] = []
    if isinstance(trimmed.get("outputs"), list):
        items = [o for o in trimmed["outputs"] if isinstance(o, dict)]
    elif isinstance(trimmed.get("output"), dict):
        items = [trimmed["output"]]
    for item in sorted(items, key=lambda o: -len(str(o.get("base64") or ""))):
        item.pop("base64", None)
        if _size(trimmed) <= limit:
            return trimmed, True
    for item in sorted(items, key=lambda o: -len(str(o.get("text") or ""))):
        text = item.get("text")
        if isinstance(text, str) and len(text) > 1024:
            item["text"] = text[:1024] + "…"
            if _size(trimmed) <= limit:
                return trimmed, True
    return trimmed, True
