"""``JobRecord`` (one DynamoDB item per job) and RunPod's webhook / ``/status`` body."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue

from handlers.contract._common import OpenModel, StrictModel
from handlers.contract._errors import ErrorCode, JobError
from handlers.contract._result import OutputItem
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
    endpoint_id: str | None = None
    input_digest: str
    input_s3_uri: str | None = Field(default=None, description="where a large input is kept (> 300 KB)")
    created_at_ms: int = Field(ge=0)
    updated_at_ms: int = Field(ge=0)
    progress: JobProgress | None = None
    outputs: list[OutputItem] = Field(default_factory=list)
    result: dict[str, JsonValue] | None = Field(default=None, description="the JobResult, when it fits the item")
    error: JobError | None = None
    expires_at: int = Field(ge=0, description="DynamoDB TTL: unix seconds")
    version: int = Field(default=0, ge=0)


class RunPodJobStatus(OpenModel):
    """RunPod's ``/status/{id}`` body, which is also what its completion webhook POSTs."""

    id: str
    status: RunPodStatus
    delay_time_ms: int | None = Field(default=None, alias="delayTime")
    execution_time_ms: int | None = Field(default=None, alias="executionTime")
    output: Any = None
    error: str | None = None

    @property
    def job_state(self) -> JobState:
        return state_for_runpod(self.status)

    def job_error(self) -> JobError | None:
        """Our structured error for a job that ended badly; ``None`` while it runs or when it succeeded."""
        if self.status is RunPodStatus.FAILED:
            return JobError.from_runpod(self.error, self.output)
        if self.status is RunPodStatus.TIMED_OUT:
            return JobError(code=ErrorCode.TIMED_OUT, message=self.error or "RunPod reports TIMED_OUT")
        if self.status is RunPodStatus.CANCELLED:
            return JobError(code=ErrorCode.CANCELLED, message=self.error or "RunPod reports CANCELLED")
        return None
