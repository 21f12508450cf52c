"""``JobRecord`` (one DynamoDB item per job) and RunPod's webhook / ``/status`` body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, JsonValue, ValidationError

from handlers.contract._common import OpenModel, StrictModel
from handlers.contract._errors import ErrorCode, JobError
from handlers.contract._qa import JobQa
from handlers.contract._result import JobResult, OutputItem
from handlers.contract._state import JobState, RunPodStatus, state_for_runpod

__all__ = ["JobProgress", "JobRecord", "RunPodJobStatus"]


class JobProgress(StrictModel):
    """The latest progress a job reported (a summary of the last ``ProgressEvent``)."""

    percent: float = Field(ge=0, le=100)
    node_id: str | None = None
    node_title: str | None = None
    step: int | None = None
    step_max: int | None = None
    eta_ms: int | None = None
    seq: int = Field(default=0, ge=0)
    updated_at_ms: int = Field(ge=0)


class JobRecord(StrictModel):
    """Everything dispatch knows about a job. Written only by conditional writes on ``state`` and ``version``."""

    job_id: str
    state: JobState
    attempt: int = Field(default=0, ge=0, description="RunPod submissions so far")
    runpod_id: str | None = None
    runpod_ids: list[str] = Field(
        default_factory=list, description="every RunPod job this record submitted (or adopted), oldest first"
    )
    endpoint_id: str | None = None
    input_digest: str
    input_s3_uri: str | None = Field(default=None, description="where a large input is kept (> 300 KB)")
    created_at_ms: int = Field(ge=0)
    updated_at_ms: int = Field(ge=0)
    progress: JobProgress | None = None
    outputs: list[OutputItem] = Field(default_factory=list)
    result: dict[str, JsonValue] | None = Field(default=None, description="the JobResult, when it fits the item")
    error: JobError | None = None
    qa: JobQa | None = Field(default=None, description="the QA verdict and every attempt's (per-output: outputs[].qa)")
    expires_at: int = Field(ge=0, description="DynamoDB TTL: unix seconds")
    version: int = Field(default=0, ge=0)


class RunPodJobStatus(OpenModel):
    """RunPod's ``/status/{id}`` body, which is also what its completion webhook POSTs: the one place it is read,
    for both worker modes. In result mode ``output`` is the worker's return value (the ``JobResult``, or
    ``{"details": ...}`` beside the ``error`` string). In streaming mode it is the list of every chunk: the result
    comes last, and a failure's details come in a ``{"type": "error", "details": ...}`` chunk of their own, since
    RunPod keeps only the string of the final ``{"error": ...}`` chunk."""

    id: str = ""
    status: RunPodStatus
    delay_time_ms: int | None = Field(default=None, alias="delayTime")
    execution_time_ms: int | None = Field(default=None, alias="executionTime")
    output: Any = None
    error_text: str | None = Field(default=None, alias="error")
    """RunPod's ``error`` string (``"<code>: <message>"`` from our worker); :meth:`error` is the structured one."""

    @property
    def job_state(self) -> JobState:
        return state_for_runpod(self.status)

    def _chunks(self) -> list[Any]:
        return list(self.output) if isinstance(self.output, list) else [self.output]

    def result(self) -> JobResult | None:
        """The worker's ``JobResult``: the output itself, or the last chunk of an aggregated stream that is one."""
        for candidate in reversed(self._chunks()):
            if isinstance(candidate, Mapping) and "job_id" in candidate:
                try:
                    return JobResult.model_validate(candidate)
                except ValidationError:
                    return None
        return None

    def outputs(self) -> list[OutputItem]:
        """The result's outputs; for a stream that ended without a result, the output events it streamed."""
        result = self.result()
        if result is not None:
            return list(result.outputs)
        found: list[OutputItem] = []
        for chunk in self._chunks():
            if isinstance(chunk, Mapping) and chunk.get("type") == "output" and isinstance(chunk.get("output"), dict):
                try:
                    found.append(OutputItem.model_validate(chunk["output"]))
                except ValidationError:
                    continue
        return found

    def error(self) -> JobError | None:
        """Our structured error for a job that ended badly; ``None`` while it runs or when it succeeded."""
        if self.status is RunPodStatus.FAILED:
            for chunk in reversed(self._chunks()):
                if (
                    isinstance(chunk, Mapping)
                    and chunk.get("type") == "error"
                    and isinstance(chunk.get("details"), dict)
                ):
                    return JobError.from_runpod(self.error_text, {"details": chunk["details"]})
            return JobError.from_runpod(self.error_text, self.output)
        if self.status is RunPodStatus.TIMED_OUT:
            return JobError(code=ErrorCode.TIMED_OUT, message=self.error_text or "RunPod reports TIMED_OUT")
        if self.status is RunPodStatus.CANCELLED:
            return JobError(code=ErrorCode.CANCELLED, message=self.error_text or "RunPod reports CANCELLED")
        return None
