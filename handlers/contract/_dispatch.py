"""What event producers put on the SQS queue, and the RunPod request dispatch makes of it."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, ModelWrapValidatorHandler, model_validator

from handlers.contract._common import JobId, Loc, StrictModel, canonical_json, with_cross_checks
from handlers.contract._job import JobInput
from handlers.contract._sources import HttpUrl

__all__ = ["Notify", "Priority", "QueueMessage", "RunPolicy", "derive_job_id", "input_digest"]

_MS_PER_DAY = 24 * 3600 * 1000


class Priority(StrEnum):
    NORMAL = "normal"
    LOW = "low"
    """RunPod ``lowPriority``: the job does not make the endpoint scale up."""


class RunPolicy(StrictModel):
    """RunPod's per-job ``policy`` (milliseconds, RunPod's bounds)."""

    execution_timeout_ms: int | None = Field(
        default=None, alias="executionTimeout", ge=5_000, le=7 * _MS_PER_DAY, description="default 10 min"
    )
    ttl_ms: int | None = Field(
        default=None, alias="ttl", ge=10_000, le=7 * _MS_PER_DAY, description="from submission; default 24 h"
    )


class Notify(StrictModel):
    """Where to announce the job's end: a webhook (signed with ``webhook_secret``) and/or an SQS queue."""

    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=256, repr=False)
    sqs_queue_url: HttpUrl | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _something(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[tuple[Loc, str]] = []
        if isinstance(data, dict):
            if data.get("webhook_url") is None and data.get("sqs_queue_url") is None:
                problems.append(((), "give webhook_url, sqs_queue_url or both"))
            if data.get("webhook_url") is not None and data.get("webhook_secret") is None:
                problems.append((("webhook_secret",), "is required with webhook_url"))
        result: Self = with_cross_checks(cls.__name__, data, handler, problems)
        return result


class QueueMessage(StrictModel):
    """The body of one SQS message: a job and how to run it."""

    job_id: JobId | None = Field(default=None, description="default: input.job_id, else derived from the message")
    input: JobInput
    endpoint_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    priority: Priority = Priority.NORMAL
    policy: RunPolicy | None = None
    notify: Notify | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _one_job_id(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        problems: list[tuple[Loc, str]] = []
        if isinstance(data, dict) and isinstance(data.get("input"), dict):
            outer, inner = data.get("job_id"), data["input"].get("job_id")
            if outer is not None and inner is not None and outer != inner:
                problems.append((("job_id",), f"differs from input.job_id ({inner!r})"))
        result: Self = with_cross_checks(cls.__name__, data, handler, problems)
        return result

    def resolved_job_id(self, message_id: str) -> str:
        """The job's identity: ``job_id``, else ``input.job_id``, else derived from the SQS ``message_id``, which
        stays the same when SQS delivers the message twice."""
        return self.job_id or self.input.job_id or derive_job_id(message_id)

    def runpod_input(self, job_id: str) -> dict[str, Any]:
        """The ``input`` for RunPod's ``/run``: the job, with its identity pinned so the worker uses the same id."""
        body = self.input.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        body.pop("images", None)
        body["job_id"] = job_id
        return body

    def runpod_policy(self) -> dict[str, Any]:
        """RunPod's ``policy`` object (``lowPriority`` from ``priority``)."""
        policy: dict[str, Any] = (
            self.policy.model_dump(by_alias=True, exclude_none=True) if self.policy is not None else {}
        )
        if self.priority is Priority.LOW:
            policy["lowPriority"] = True
        return policy


def derive_job_id(message_id: str) -> str:
    """A job id from an SQS message id (already a uuid in practice): kept if it is a safe token, else hashed."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", message_id):
        return message_id
    return "msg-" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def input_digest(job_input: JobInput) -> str:
    """``sha256:<hex>`` of the job input's canonical JSON: tells a redelivery or a retry from a different job reusing
    an id. Dispatch keeps it in the job record, the worker in the manifest. What only shapes delivery (the progress
    webhook dispatch may add, the timeout) is left out: it does not make another job."""
    body = job_input.model_dump(mode="json", exclude={"job_id", "images", "progress_webhook", "timeout_s"})
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()
