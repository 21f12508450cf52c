"""The two thin RunPod adapters over the core.

Result mode (:func:`handler`): progress and output events go to ``runpod.serverless.progress_update``; the return
value is the result, or ``JobError.to_runpod()``. Streaming mode (:func:`stream_handler`): every event is yielded
as a chunk (each within RunPod's 1 MB), the last one being the result or the error; start the SDK with
``return_aggregate_stream`` so ``/status`` also shows them all.

``runpod`` is imported only when a progress update is actually sent: importing this module (and the core) stays
cheap, and tests call the handlers without the SDK.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from handlers.worker._config import WorkerConfig
from handlers.worker._core import WorkerRuntime
from handlers.worker._events import MAX_RESULT_BYTES, MAX_STREAM_CHUNK_BYTES, Finished, fit_payload

__all__ = [
    "ProgressReporter",
    "fit_error_details",
    "handler",
    "make_handler",
    "make_stream_handler",
    "set_runtime",
    "stream_handler",
]

logger = logging.getLogger("handlers.worker.handler")

ProgressReporter = Callable[[Mapping[str, Any], dict[str, Any]], None]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
StreamHandler = Callable[[dict[str, Any]], AsyncGenerator[dict[str, Any], None]]

_runtime: WorkerRuntime | None = None


def set_runtime(runtime: WorkerRuntime | None) -> None:
    """The runtime the module-level handlers use (``__main__`` sets it; ``None`` builds one from the environment
    on the first job)."""
    global _runtime  # noqa: PLW0603 (one runtime per process is the point)
    _runtime = runtime


def _default_runtime() -> WorkerRuntime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        _runtime = WorkerRuntime(WorkerConfig.from_env())
    return _runtime


def runpod_progress(job: Mapping[str, Any], progress: dict[str, Any]) -> None:
    """Best effort, as the SDK's own call is: a failed progress post must never fail the job."""
    import runpod  # noqa: PLC0415 (1.8 s import: only inside the SDK worker)

    try:
        runpod.serverless.progress_update(dict(job), progress)
    except Exception:  # the SDK's thread start or URL formatting; never the job's problem
        logger.warning("progress_update failed", exc_info=True)


def _event_payload(event: Any, *, keep_inline: bool) -> dict[str, Any]:
    payload: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    if not keep_inline and isinstance(payload.get("output"), dict):
        payload["output"].pop("base64", None)  # the final result carries it; one copy is enough
    return payload


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def fit_error_details(details: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A JobError's details within ``limit`` bytes (with room for the chunk around them): the traceback goes
    first, then problems and node errors from the end (the first ones say the most), then the message is cut.
    The size is kept as a running count (each removed item takes its own bytes and a comma), so trimming
    thousands of problems costs one serialisation, not one per item."""
    budget = limit - 64
    fitted: dict[str, Any] = json.loads(json.dumps(details))
    size = _json_size(fitted)
    if size <= budget:
        return fitted
    execution = fitted.get("execution")
    if isinstance(execution, dict) and "traceback" in execution:
        execution.pop("traceback")
        size = _json_size(fitted)
    for key in ("problems", "node_errors"):
        items = fitted.get(key)
        while isinstance(items, list) and items and size > budget:
            size -= _json_size(items.pop()) + (1 if items else 0)
    message = fitted.get("message")
    if size > budget and isinstance(message, str):
        excess = size - budget
        fitted["message"] = message[: max(0, len(message) - excess - 1)] + "…"
        size = _json_size(fitted)
    if isinstance(execution, dict) and size > budget:
        execution["exception_message"] = str(execution.get("exception_message", ""))[:1024]
    return fitted


def make_handler(
    runtime: Callable[[], WorkerRuntime] | WorkerRuntime, progress: ProgressReporter = runpod_progress
) -> Handler:
    """A result-mode handler over ``runtime`` (or a function giving it), reporting progress with ``progress``."""

    async def run(job: dict[str, Any]) -> dict[str, Any]:
        current = runtime if isinstance(runtime, WorkerRuntime) else runtime()
        final: Finished | None = None
        # /status shows only the latest update: each one carries every output stored so far, so a caller polling
        # /status sees every output as it lands, even one whose own event a later progress update replaced.
        ready: list[dict[str, Any]] = []
        async with contextlib.aclosing(current.run_job(job)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    final = event
                    continue
                payload = _event_payload(event, keep_inline=False)
                if isinstance(payload.get("output"), dict):
                    ready.append(payload["output"])
                if ready:
                    payload["outputs_ready"] = list(ready)  # the SDK posts it from its own thread
                progress(job, payload)
        assert final is not None, "the core always ends with Finished"
        payload, trimmed = fit_payload(final.payload(), MAX_RESULT_BYTES)
        if trimmed:
            logger.warning("result trimmed to fit RunPod's payload limit (inline base64 dropped)")
        return payload

    return run


def make_stream_handler(runtime: Callable[[], WorkerRuntime] | WorkerRuntime) -> StreamHandler:
    """A streaming handler: every event is a chunk; the last is the result or ``{"error": ...}``, which follows
    ``{"type": "error", "details": {...}}`` (the structured error the SDK would otherwise drop)."""

    async def run(job: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        current = runtime if isinstance(runtime, WorkerRuntime) else runtime()
        async with contextlib.aclosing(current.run_job(job)) as events:
            async for event in events:
                if isinstance(event, Finished) and event.error is not None:
                    # The SDK reduces a chunk holding "error" to its string: the details travel first, in a chunk
                    # of their own (no "error" key, so it is streamed and aggregated like any other).
                    payload = event.payload()
                    yield {"type": "error", "details": fit_error_details(payload["details"], MAX_STREAM_CHUNK_BYTES)}
                    yield {"error": payload["error"]}
                    continue
                chunk = event.payload() if isinstance(event, Finished) else _event_payload(event, keep_inline=False)
                fitted, _trimmed = fit_payload(chunk, MAX_STREAM_CHUNK_BYTES)
                yield fitted

    return run


_result_handler = make_handler(_default_runtime)
_stream_handler = make_stream_handler(_default_runtime)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """The RunPod handler (result mode): ``runpod.serverless.start({"handler": handler})``."""
    return await _result_handler(job)


async def stream_handler(job: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """The RunPod handler in streaming mode (``RELAY_STREAM``); start with ``return_aggregate_stream=True``."""
    async with contextlib.aclosing(_stream_handler(job)) as chunks:
        async for chunk in chunks:
            yield chunk
