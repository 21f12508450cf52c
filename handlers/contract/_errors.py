"""``JobError``: the one failure shape, in RunPod's ``{"error": "<code>: <message>", ...}`` form with details.

Codes are stable strings callers may switch on. Whether a retry may help is a property of the code (transient
infrastructure trouble) unless the raiser knows better, and travels with the error as ``retryable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, JsonValue, model_validator

from handlers.contract._common import StrictModel
from handlers.contract._problems import Problem
from handlers.contract._qa import JobQa

__all__ = ["RETRYABLE_CODES", "CodedError", "ErrorCode", "ExecutionFailure", "JobError", "NodeError", "summarize"]


class ErrorCode(StrEnum):
    INVALID_INPUT = "invalid_input"
    """The job itself is wrong (schema, parameters, overrides, and input media refused for what it is: too
    large, a blocked address, not decodable, not a media type): never retry."""
    CONFLICT = "conflict"
    """The job id was used before for a different input (its stored result is another job's): never retry."""
    TEMPLATE_NOT_FOUND = "template_not_found"
    """No template (or character) of that name: never retry."""
    WORKFLOW_INVALID = "workflow_invalid"
    """The graph fails validation against the node catalogue or ComfyUI's own check: never retry."""
    MEDIA_FETCH_FAILED = "media_fetch_failed"
    """An input file could not be fetched (network, 5xx): a retry may help."""
    ASSET_FETCH_FAILED = "asset_fetch_failed"
    """A character pack's asset (LoRA, reference image, voice sample) could not be provisioned: fetch failure
    (``retryable``), sha256 or size mismatch, or a worker not set up to place it (never retried)."""
    COMFYUI_UNAVAILABLE = "comfyui_unavailable"
    """ComfyUI did not answer or never became ready: a retry (on another worker) may help."""
    COMFYUI_CRASHED = "comfyui_crashed"
    """The ComfyUI process died during the job: a retry may help."""
    EXECUTION_FAILED = "execution_failed"
    """A node raised while running (e.g. out of memory): not retried by default."""
    TIMED_OUT = "timed_out"
    """The job's deadline passed."""
    CANCELLED = "cancelled"
    """The caller (or RunPod) cancelled the job."""
    UPLOAD_FAILED = "upload_failed"
    """Outputs could not be stored in S3: a retry may help."""
    QA_FAILED = "qa_failed"
    """Outputs failed the automated checks under policy fail (or retry, out of attempts); ``qa`` names them."""
    OUTPUT_TOO_LARGE = "output_too_large"
    """Outputs cannot be returned within RunPod's payload limits and no bucket was given: never retry as is."""
    SUBMIT_FAILED = "submit_failed"
    """Dispatch could not hand the job to RunPod (429, 5xx, network): a retry may help."""
    LOST = "lost"
    """The job disappeared (worker died, RunPod's result expired) without a result: a retry may help."""
    INTERNAL = "internal"
    """A bug on our side."""


#: Codes whose failures are transient by nature.
RETRYABLE_CODES = frozenset(
    {
        ErrorCode.MEDIA_FETCH_FAILED,
        ErrorCode.COMFYUI_UNAVAILABLE,
        ErrorCode.COMFYUI_CRASHED,
        ErrorCode.UPLOAD_FAILED,
        ErrorCode.SUBMIT_FAILED,
        ErrorCode.LOST,
    }
)


#: How many problems an error's message names before "(and N more)"; the full list travels in the details.
_SHOWN = 3


def summarize(items: Sequence[object]) -> str:
    """The message of an error made of several findings: the first three, then how many more there are."""
    more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return "; ".join(str(item) for item in items[:_SHOWN]) + more


class NodeError(StrictModel):
    """One validation failure of one node input (ComfyUI's ``node_errors`` entries, or our catalogue check)."""

    node_id: str
    class_type: str | None = None
    input: str | None = None
    type: str
    """ComfyUI's error type (``value_bigger_than_max``, ``value_not_in_list``, ...) or ours."""
    message: str
    allowed: list[JsonValue] | None = None
    """The accepted values, for combo inputs."""


class ExecutionFailure(StrictModel):
    """What ComfyUI's ``execution_error`` said about the node that raised."""

    node_id: str
    node_type: str | None = None
    exception_type: str | None = None
    exception_message: str = ""
    traceback: list[str] = Field(default_factory=list)


class JobError(StrictModel):
    """A failed job: a stable ``code``, a human ``message``, and structured details where there are some."""

    code: ErrorCode
    message: str
    retryable: bool = False
    job_id: str | None = None
    prompt_id: str | None = None
    problems: list[Problem] = Field(default_factory=list)
    """For ``invalid_input``: every problem with the job, each with a path (``input.params.width``)."""
    node_errors: list[NodeError] = Field(default_factory=list)
    """For ``workflow_invalid``: every node input that failed validation."""
    execution: ExecutionFailure | None = None
    """For ``execution_failed``: the node that raised."""
    qa: JobQa | None = None
    """For ``qa_failed``: every attempt, and each failed output with the checks it failed."""

    @model_validator(mode="before")
    @classmethod
    def _default_retryable(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "retryable" not in data and "code" in data:
            try:
                code = ErrorCode(data["code"])
            except ValueError:
                return data  # the field validator reports the unknown code
            return {**data, "retryable": code in RETRYABLE_CODES}
        return data

    @classmethod
    def from_problems(
        cls, problems: Sequence[Problem], *, code: ErrorCode = ErrorCode.INVALID_INPUT, job_id: str | None = None
    ) -> JobError:
        """The one way to turn a job's problems into an error: every problem in the details, the first three in the
        message. Dispatch, the worker and the CLI all build it here, so one invalid job reads the same everywhere."""
        return cls(code=code, message=summarize(problems), job_id=job_id, problems=list(problems))

    def summary(self) -> str:
        return f"{self.code.value}: {self.message}"

    def to_runpod(self) -> dict[str, Any]:
        """The handler's return value for a failed job. The RunPod SDK pops ``error`` (the job's error string) and
        sends the rest as ``output``, so ``/status`` shows ``{"status": "FAILED", "error": "<code>: <message>",
        "output": {"details": {...}}}``."""
        # code, message and retryable always travel (an explicit retryable=False must survive the round trip);
        # empty lists and unknown ids are left out to keep the error small.
        details = self.model_dump(mode="json", exclude_none=True)
        for key in ("problems", "node_errors"):
            if not details[key]:
                del details[key]
        return {"error": self.summary(), "details": details}

    @classmethod
    def from_runpod(cls, error: str | None, output: Any = None) -> JobError:
        """Read a failure back from RunPod's ``/status`` (or webhook) body: our structured details when the worker
        sent them, else the best reading of the bare error string (SDK crash reports are JSON text)."""
        details = output.get("details") if isinstance(output, Mapping) else None
        if isinstance(details, Mapping):
            try:
                return cls.model_validate(details)
            except ValueError:
                pass
        text = error or "the job failed without an error message"
        code_text, sep, message = text.partition(": ")
        if sep:
            try:
                return cls(code=ErrorCode(code_text), message=message)
            except ValueError:
                pass
        # Anything else (an uncaught exception in the SDK, a platform failure) is ours to investigate.
        return cls(code=ErrorCode.INTERNAL, message=text)


@runtime_checkable
class CodedError(Protocol):
    """An exception that knows what it means for the job: its :class:`ErrorCode`, whether a retry may help, and the
    :class:`JobError` it becomes (``job_id`` filled in by whoever knows it)."""

    @property
    def code(self) -> ErrorCode: ...

    @property
    def retryable(self) -> bool: ...

    def to_job_error(self, job_id: str | None = None) -> JobError: ...
