"""The job state machine: accept, submit, record outcomes and progress, reconcile. One class, no I/O of its own: it
talks to a :class:`JobStore`, a :class:`RunPodApi` and a :class:`Notifier` it is given.

Rules every path follows:

- Every write is conditional on the state and version read just before (``JobStore.update``); a lost race is
  re-read and re-decided, never overwritten. ``contract.can_transition`` guards every target state.
- A job is submitted only by whoever moved it out of ACCEPTED (or claimed it in ACCEPTED) with a conditional
  write, so concurrent deliveries, webhooks and the reconciler never submit a job twice while a submission is
  live. The one gap - a crash between ``/run`` and the SUBMITTED write - is closed by the reconciler resubmitting
  after ``submit_after``; the worker's job-id idempotency (stored manifest) makes that second run harmless.
- Outcomes are read from ``/status`` (webhooks are unsigned hints). Only RunPod ids the record itself submitted
  may move it: an outcome for an earlier submission counts if it is a success (the same job id succeeded,
  whichever attempt it was). An id the record never wrote down (a crash between ``/run`` and the SUBMITTED
  write) is adopted only for a success whose worker result names this job. A result whose ``job_id`` is
  another job's is never recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from handlers.common import Backoff
from handlers.contract import (
    MAX_JOB_INPUT_BYTES,
    ErrorCode,
    JobError,
    JobProgress,
    JobRecord,
    JobState,
    Notify,
    Problem,
    ProgressEvent,
    ProgressWebhook,
    ProgressWebhookPayload,
    QueueMessage,
    RunPodJobStatus,
    RunPodStatus,
    can_transition,
    derive_job_id,
    input_digest,
    is_job_id,
    is_terminal,
    validation_problems,
)
from handlers.dispatch._errors import (
    InvalidJobError,
    RecordExistsError,
    RunPodJobNotFound,
    RunPodRequestError,
    StaleRecordError,
    TransientError,
    UsageError,
)
from handlers.dispatch._logging import LOGGER_NAME, log_event
from handlers.dispatch._notify import Notifier, NotifyPolicy
from handlers.dispatch._retry import resubmit_delay_ms
from handlers.dispatch._runpod import RunPodApi
from handlers.dispatch._store import JobStore
from handlers.dispatch._validation import InputValidator

__all__ = ["Disposition", "JobService", "Limits", "ReconcileReport"]

_RACE_RETRIES: Final = 5
_OPEN_RUNPOD: Final = frozenset({RunPodStatus.IN_QUEUE, RunPodStatus.IN_PROGRESS, RunPodStatus.RUNNING})


class Disposition(StrEnum):
    """What happens to an SQS message: deleted (``DONE``) or left for another delivery (``RETRY``)."""

    DONE = "done"
    RETRY = "retry"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Every limit finite; times in milliseconds unless named otherwise."""

    max_attempts: int = 3
    """RunPod submissions of one job, first one included."""
    max_receives: int = 5
    """The queue's ``maxReceiveCount``: the delivery that sees it is the last before the dead-letter queue."""
    stale_after_ms: int = 300_000
    submit_after_ms: int = 120_000
    """An ACCEPTED job without a RunPod id this old is submitted by the reconciler (a crash lost its submission)."""
    claim_timeout_ms: int = 120_000
    """An ACCEPTED record nobody touched for this long may be claimed by another delivery: longer than one queue
    invocation may run (the queue Lambda's timeout), so a live submitter is never overtaken."""
    resubmit_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=30.0, cap_s=600.0, min_s=0.0))
    record_ttl_s: int = 30 * 24 * 3600
    progress_min_interval_ms: int = 2_000
    reconcile_limit: int = 200
    reconcile_concurrency: int = 8
    submit_deadline_ms: int = 6 * 3600 * 1000
    """The reconciler stops trying to submit a job that has not reached RunPod this long after it was accepted."""
    result_max_bytes: int = 100_000
    """A ``JobResult`` larger than this is not copied into the record (its outputs still are)."""


@dataclass
class ReconcileReport:
    examined: int = 0
    submitted: int = 0
    resubmitted: int = 0
    repaired: int = 0
    gave_up: int = 0
    errors: int = 0
    actions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "submitted": self.submitted,
            "resubmitted": self.resubmitted,
            "repaired": self.repaired,
            "gave_up": self.gave_up,
            "errors": self.errors,
        }


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class JobService:
    def __init__(
        self,
        store: JobStore,
        runpod: RunPodApi,
        *,
        endpoint_id: str,
        webhook_url: str,
        notifier: Notifier,
        progress_webhook: ProgressWebhook | None = None,
        validator: InputValidator | None = None,
        limits: Limits | None = None,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        notify_policy: NotifyPolicy | None = None,
    ) -> None:
        self.store = store
        self.runpod = runpod
        self.endpoint_id = endpoint_id
        self.webhook_url = webhook_url
        self.progress_webhook = progress_webhook
        self.notifier = notifier
        self.validator = validator
        self.limits = limits or Limits()
        self.clock_ms = clock_ms
        self.notify_policy = notify_policy or NotifyPolicy()

    # -- writing -------------------------------------------------------------------------------------------

    def _write(self, current: JobRecord, state: JobState, **changes: Any) -> JobRecord:
        """One conditional write: ``current`` → ``state`` with ``changes``, version + 1. Raises StaleRecordError."""
        if not can_transition(current.state, state):
            raise ValueError(f"job {current.job_id}: {current.state} -> {state} is not a transition")
        runpod_id = changes.get("runpod_id")
        if runpod_id is not None and runpod_id not in current.runpod_ids:
            changes["runpod_ids"] = [*current.runpod_ids, runpod_id]
        now = max(self.clock_ms(), current.updated_at_ms)
        record = current.model_copy(
            update={"state": state, "updated_at_ms": now, "version": current.version + 1, **changes}
        )
        # model_copy skips validation: re-validate so a bad change can never reach the store.
        record = JobRecord.model_validate(record.model_dump())
        return self.store.update(record, current)

    def _new_record(self, job_id: str, state: JobState, digest: str, **fields: Any) -> JobRecord:
        now = self.clock_ms()
        return JobRecord(
            job_id=job_id,
            state=state,
            input_digest=digest,
            created_at_ms=now,
            updated_at_ms=now,
            expires_at=now // 1000 + self.limits.record_ttl_s,
            **fields,
        )

    # -- the queue -----------------------------------------------------------------------------------------

    def handle_message(self, message_id: str, body: str, receive_count: int = 1) -> Disposition:
        """One SQS message. Raises nothing for the job's own faults (they become REJECTED); returns RETRY when a
        transient failure means the message should come back. Unexpected errors propagate (the caller retries)."""
        if len(body) > MAX_JOB_INPUT_BYTES:
            # Bounded before anything parses it: a poison message gets its REJECTED record like any bad input.
            problem = Problem(path="message", message=f"is {len(body)} characters; at most {MAX_JOB_INPUT_BYTES}")
            error = JobError.from_problems([problem], job_id=derive_job_id(message_id))
            self._create_rejected(derive_job_id(message_id), _body_digest(body), error)
            return Disposition.DONE
        try:
            message = QueueMessage.model_validate_json(body)
        except ValidationError as exc:
            return self._reject_unparsed(message_id, body, exc)
        job_id = message.resolved_job_id(message_id)
        message = message.model_copy(update={"job_id": job_id})
        digest = input_digest(message.input)
        refused = self.notify_policy.problems(message.notify) if message.notify is not None else []
        if refused:
            error = JobError(
                code=ErrorCode.INVALID_INPUT, message="; ".join(map(str, refused)), job_id=job_id, problems=refused
            )
            self._create_rejected(job_id, digest, error)
            return Disposition.DONE
        if self.validator is not None:
            try:
                for warning in self.validator.check(message.input, job_id):
                    log_event(logging.WARNING, "input partly validated", job_id, detail=warning)
            except InvalidJobError as exc:
                self._create_rejected(job_id, digest, exc.error)
                return Disposition.DONE
            except Exception:
                # A fault in our own checking must not block a job the worker can still validate for itself.
                logging.getLogger(LOGGER_NAME).exception("input validation crashed", extra={"job_id": job_id})
        record = self._new_record(
            job_id, JobState.ACCEPTED, digest, endpoint_id=message.endpoint_id or self.endpoint_id
        )
        stored = message.model_dump_json(by_alias=True, exclude_none=True)
        try:
            record = self.store.create(record, stored)
        except RecordExistsError as exc:
            existing = exc.existing
            if existing is None:
                return Disposition.RETRY
            if existing.input_digest != digest:
                log_event(logging.ERROR, "job id reused with a different input: message dropped", job_id)
                return Disposition.DONE
            claimed = self._claim(existing)
            if claimed is None:
                log_event(logging.INFO, "duplicate delivery ignored", job_id, state=existing.state.value)
                return Disposition.DONE
            record = claimed
        log_event(logging.INFO, "job accepted", job_id)
        return self._submit_from_queue(record, message, receive_count)

    def _reject_unparsed(self, message_id: str, body: str, exc: ValidationError) -> Disposition:
        job_id = derive_job_id(message_id)
        # The body already failed validation: it may be nested past the recursion limit too.
        with contextlib.suppress(ValueError, AttributeError, TypeError, RecursionError):
            raw = json.loads(body)
            for candidate in (raw.get("job_id"), (raw.get("input") or {}).get("job_id")):
                if isinstance(candidate, str) and is_job_id(candidate):
                    job_id = candidate
                    break
        error = JobError.from_problems(validation_problems(exc, root=""), job_id=job_id)
        self._create_rejected(job_id, _body_digest(body), error)
        return Disposition.DONE

    def _create_rejected(self, job_id: str, digest: str, error: JobError) -> None:
        record = self._new_record(job_id, JobState.REJECTED, digest, error=error)
        try:
            self.store.create(record, "{}")
            log_event(logging.WARNING, "job rejected", job_id, code=error.code.value)
        except RecordExistsError as exc:
            state = exc.existing.state.value if exc.existing else None
            log_event(logging.WARNING, "invalid duplicate of an existing job ignored", job_id, state=state)

    def _claim(self, existing: JobRecord) -> JobRecord | None:
        """Take over an ACCEPTED job whose earlier submission failed or was abandoned; ``None`` if it is not ours to
        submit (someone is submitting it, or it is already submitted or finished)."""
        if existing.state is not JobState.ACCEPTED or existing.runpod_id is not None:
            return None
        idle_ms = self.clock_ms() - existing.updated_at_ms
        if existing.error is None and idle_ms < self.limits.claim_timeout_ms:
            return None
        try:
            return self._write(existing, JobState.ACCEPTED, error=None)
        except StaleRecordError:
            return None

    def _submit_from_queue(self, record: JobRecord, message: QueueMessage, receive_count: int) -> Disposition:
        try:
            self.submit(record, message)
        except RunPodRequestError as exc:
            # RunPod refuses this very request (e.g. over its 10 MB /run limit): sending it again cannot help.
            self._refused(record, exc)
            return Disposition.DONE
        except (TransientError, UsageError) as exc:
            # UsageError (a rejected API key): the record says why while someone fixes the configuration.
            last = receive_count >= self.limits.max_receives
            context = f"delivery {receive_count} of {self.limits.max_receives}"
            self._record_submit_failure(record, str(exc), final=last, context=context)
            return Disposition.RETRY
        return Disposition.DONE

    def _record_submit_failure(self, record: JobRecord, reason: str, *, final: bool, context: str) -> None:
        if final:
            message = f"gave up at {context} (the message goes to the dead-letter queue): {reason}"
            target = JobState.FAILED
        else:
            message = f"{context} could not submit: {reason}"
            target = JobState.ACCEPTED
        error = JobError(code=ErrorCode.SUBMIT_FAILED, job_id=record.job_id, message=message)
        log_event(logging.WARNING, "submission failed", record.job_id, reason=reason, final=final)
        try:
            written = self._write(record, target, error=error)
        except StaleRecordError:
            return
        if final:
            self._notify(written)

    def _refused(self, record: JobRecord, exc: RunPodRequestError) -> str:
        error = JobError(
            code=ErrorCode.SUBMIT_FAILED,
            job_id=record.job_id,
            retryable=False,
            message=f"RunPod refused the job: {exc}",
        )
        with contextlib.suppress(StaleRecordError):
            self._notify(self._write(record, JobState.FAILED, error=error))
        return "gave_up"

    def submit(self, record: JobRecord, message: QueueMessage) -> JobRecord:
        """POST /run for a job we hold in ACCEPTED, then record SUBMITTED. Raises TransientError if RunPod
        cannot take it now."""
        body = self._run_body(record, message)
        endpoint = record.endpoint_id or self.endpoint_id
        submitted = self.runpod.run(endpoint, body)
        log_event(logging.INFO, "submitted to RunPod", record.job_id, runpod_id=submitted.id)
        try:
            return self._write(
                record,
                JobState.SUBMITTED,
                runpod_id=submitted.id,
                endpoint_id=endpoint,
                attempt=record.attempt + 1,
                error=None,
            )
        except StaleRecordError as exc:
            # A webhook adopted the submission first, or the reconciler moved the job: theirs is the newer truth.
            log_event(logging.INFO, "submission recorded by someone else", record.job_id, runpod_id=submitted.id)
            return exc.existing or record

    def _run_body(self, record: JobRecord, message: QueueMessage) -> dict[str, Any]:
        """RunPod's ``/run`` body: the input (with our job id), our completion webhook, the caller's policy. When the
        caller asked for no progress webhook of their own, the worker's progress comes to us, signed with our
        secret, so the record can show it."""
        job_input = message.runpod_input(record.job_id)
        if self.progress_webhook is not None and "progress_webhook" not in job_input:
            job_input["progress_webhook"] = self.progress_webhook.model_dump(mode="json")
        body: dict[str, Any] = {"input": job_input, "webhook": self.webhook_url}
        if policy := message.runpod_policy():
            body["policy"] = policy
        return body

    # -- outcomes ------------------------------------------------------------------------------------------

    def handle_runpod_webhook(self, body: Any) -> JobRecord | None:
        """RunPod POSTed a job's end. The body is a hint: find the job, confirm with ``/status``, apply."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return None
        runpod_id: str = body["id"]
        record = self.store.find_by_runpod_id(runpod_id)
        if record is None:
            # Not recorded under this RunPod id: the /run answer was never written (a crash, or a webhook that
            # beat the SUBMITTED write). The input we sent carries our job id.
            hint = body.get("input", {}).get("job_id") if isinstance(body.get("input"), dict) else None
            if isinstance(hint, str) and is_job_id(hint):
                record = self.store.get(hint)
        if record is None:
            log_event(logging.WARNING, "webhook for an unknown job", None, runpod_id=runpod_id)
            return None
        try:
            status = self.runpod.status(record.endpoint_id or self.endpoint_id, runpod_id)
        except RunPodJobNotFound:
            log_event(logging.WARNING, "webhook not confirmed by /status (404)", record.job_id, runpod_id=runpod_id)
            return record
        return self.apply_status(record, runpod_id, status)

    def apply_status(self, record: JobRecord, runpod_id: str, status: RunPodJobStatus) -> JobRecord:
        """Move the job to what ``status`` (of submission ``runpod_id``) says, if that is forward."""
        for _ in range(_RACE_RETRIES):
            try:
                return self._apply_once(record, runpod_id, status)
            except StaleRecordError as exc:
                if exc.existing is None:
                    return record
                record = exc.existing
        raise TransientError(f"job {record.job_id}: too many concurrent writes")

    def _apply_once(self, record: JobRecord, runpod_id: str, status: RunPodJobStatus) -> JobRecord:
        if is_terminal(record.state):
            return record
        target = status.job_state
        if target is JobState.SUCCEEDED and not _names_job(status, record.job_id):
            log_event(logging.WARNING, "a result naming another job refused", record.job_id, runpod_id=runpod_id)
            return record
        if record.runpod_id != runpod_id:
            if target is not JobState.SUCCEEDED:
                return record  # an older (or orphaned) submission's news: the current one decides
            if runpod_id not in record.runpod_ids and not self._may_adopt(record, status):
                log_event(
                    logging.WARNING,
                    "an outcome of a job this record never submitted refused",
                    record.job_id,
                    runpod_id=runpod_id,
                )
                return record
            if record.state is JobState.ACCEPTED:
                # Adopt the submission a crash kept us from recording, then finish it.
                record = self._write(
                    record, JobState.SUBMITTED, runpod_id=runpod_id, attempt=record.attempt + 1, error=None
                )
            return self._finish(record, status, runpod_id)
        if target is JobState.SUBMITTED:
            return record
        if target is JobState.RUNNING:
            if record.state is JobState.SUBMITTED:
                return self._write(record, JobState.RUNNING)
            return record
        if target is JobState.SUCCEEDED:
            return self._finish(record, status, runpod_id)
        error = status.error() or JobError(code=ErrorCode.INTERNAL, message=f"RunPod reports {status.status}")
        error = error.model_copy(update={"job_id": record.job_id})
        if self._will_retry(record, status, error):
            if record.error == error:
                return record  # a repeated webhook: do not postpone the reconciler by touching the record
            return self._write(record, record.state, error=error)
        return self._finish(record, status, runpod_id, error=error)

    @staticmethod
    def _may_adopt(record: JobRecord, status: RunPodJobStatus) -> bool:
        """A submission the record never wrote down (the crash window between ``/run`` and the SUBMITTED write
        leaves one): its success counts only as a worker result naming this job."""
        result = status.result()
        return result is not None and result.job_id == record.job_id

    def _will_retry(self, record: JobRecord, status: RunPodJobStatus, error: JobError) -> bool:
        return (
            status.status in (RunPodStatus.FAILED, RunPodStatus.TIMED_OUT)
            and error.retryable
            and record.attempt < self.limits.max_attempts
        )

    def _finish(
        self, record: JobRecord, status: RunPodJobStatus, runpod_id: str, error: JobError | None = None
    ) -> JobRecord:
        changes: dict[str, Any] = {"runpod_id": runpod_id, "error": error}
        if error is not None and error.qa is not None:
            changes["qa"] = error.qa
        if error is None:
            changes.update(self._success_fields(status))
        written = self._write(record, status.job_state, **changes)
        log_event(logging.INFO, "job finished", record.job_id, state=written.state.value, runpod_id=runpod_id)
        self._notify(written)
        return written

    def _success_fields(self, status: RunPodJobStatus) -> dict[str, Any]:
        result, output = status.result(), status.output
        if result is None:
            raw = output if isinstance(output, dict) else {"output": output}
            text = json.dumps(raw, default=str)
            return {"result": json.loads(text) if len(text) <= self.limits.result_max_bytes else None}
        dumped = result.model_dump(mode="json", exclude_none=True)
        fits = len(json.dumps(dumped)) <= self.limits.result_max_bytes
        # The record keeps where each output is, not its bytes: a worker with no bucket returns them inline, and a
        # DynamoDB item holds 400 KB at most (the result keeps them when it fits).
        # Each output's QA keeps its verdict and what failed or warned: every passing check's score is in the
        # result (S3 manifest), and a batch of images must not outgrow the item.
        outputs = [o.model_copy(update={"base64": None, "qa": o.qa.brief() if o.qa else None}) for o in result.outputs]
        return {"outputs": outputs, "result": dumped if fits else None, "qa": result.qa}

    def _notify(self, record: JobRecord) -> None:
        notify = self._notify_settings(record)
        if notify is not None:
            self.notifier.notify(record, notify)

    def _notify_settings(self, record: JobRecord) -> Notify | None:
        try:
            text = self.store.load_message(record)
        except TransientError:
            log_event(logging.WARNING, "notify settings unreadable: caller not notified", record.job_id)
            return None
        if not text or text == "{}":
            return None
        try:
            return QueueMessage.model_validate_json(text).notify
        except ValidationError:
            return None

    # -- progress ------------------------------------------------------------------------------------------

    def handle_progress(self, payload: ProgressWebhookPayload) -> JobRecord | None:
        """Record a progress event unless it is older than, or too soon after, the last one recorded."""
        event = payload.event
        if not isinstance(event, ProgressEvent):
            return None
        record = self.store.get(payload.job_id)
        for _ in range(_RACE_RETRIES):
            if record is None or record.state not in (JobState.SUBMITTED, JobState.RUNNING):
                return record
            last = record.progress
            now = self.clock_ms()
            if last is not None and payload.seq <= last.seq:
                return record
            too_soon = last is not None and now - last.updated_at_ms < self.limits.progress_min_interval_ms
            if too_soon and event.percent < 100:
                return record
            progress = JobProgress(
                percent=event.percent,
                node_id=event.node_id,
                node_title=event.node_title,
                step=event.step,
                step_max=event.step_max,
                eta_ms=event.eta_ms,
                seq=payload.seq,
                updated_at_ms=now,
            )
            try:
                return self._write(record, JobState.RUNNING, progress=progress)
            except StaleRecordError as exc:
                record = exc.existing
        return record

    # -- reconciliation ------------------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """One pass: ACCEPTED jobs nobody submitted, and SUBMITTED/RUNNING jobs nobody heard of lately."""
        now = self.clock_ms()
        limit = self.limits.reconcile_limit
        candidates = self.store.stale_open_jobs(JobState.ACCEPTED, now - self.limits.submit_after_ms, limit)
        for state in (JobState.SUBMITTED, JobState.RUNNING):
            candidates += self.store.stale_open_jobs(state, now - self.limits.stale_after_ms, limit)
        candidates = candidates[:limit]
        report = ReconcileReport(examined=len(candidates))
        if not candidates:
            return report
        workers = min(self.limits.reconcile_concurrency, len(candidates))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
            outcomes = list(pool.map(self._reconcile_safely, candidates))
        for record, action in zip(candidates, outcomes, strict=True):
            report.actions[record.job_id] = action
            if action in ("submitted", "resubmitted", "repaired", "gave_up"):
                setattr(report, action, getattr(report, action) + 1)
            elif action == "error":
                report.errors += 1
        return report

    def _reconcile_safely(self, record: JobRecord) -> str:
        try:
            return self.reconcile_job(record)
        except TransientError as exc:
            log_event(logging.WARNING, "reconcile step failed (next run retries)", record.job_id, reason=str(exc))
            return "error"
        except Exception:
            logging.getLogger(LOGGER_NAME).exception("reconcile step crashed", extra={"job_id": record.job_id})
            return "error"

    def reconcile_job(self, record: JobRecord) -> str:
        """Repair one job; returns what was done (``unchanged``, ``repaired``, ``submitted``, ...)."""
        # The index copy may lag (GSIs are eventually consistent): decide on the record itself.
        current = self.store.get(record.job_id)
        if current is None or is_terminal(current.state):
            return "unchanged"
        record = current
        if record.state is JobState.ACCEPTED:
            return self._reconcile_unsubmitted(record)
        if record.runpod_id is None or is_terminal(record.state):
            return "unchanged"
        endpoint = record.endpoint_id or self.endpoint_id
        try:
            status = self.runpod.status(endpoint, record.runpod_id)
        except RunPodJobNotFound:
            lost = JobError(
                code=ErrorCode.LOST,
                job_id=record.job_id,
                message=f"RunPod no longer knows job {record.runpod_id} (worker lost, TTL or retention expired)",
            )
            return self._resubmit(record, lost, runpod_has_job=False)
        updated = self.apply_status(record, record.runpod_id, status)
        if is_terminal(updated.state):
            return "repaired"
        failed = status.status in (RunPodStatus.FAILED, RunPodStatus.TIMED_OUT, RunPodStatus.CANCELLED)
        if failed and updated.error is not None:
            return self._resubmit(updated, updated.error, runpod_has_job=True)
        return "repaired" if updated.version != record.version else "unchanged"

    def _reconcile_unsubmitted(self, record: JobRecord) -> str:
        if record.runpod_id is not None:
            return "unchanged"
        past_deadline = self.clock_ms() - record.created_at_ms > self.limits.submit_deadline_ms
        if record.attempt >= self.limits.max_attempts or past_deadline:
            reason = record.error or JobError(code=ErrorCode.SUBMIT_FAILED, message="never reached RunPod")
            return self._give_up(record, reason)
        message = self._load_message(record)
        if message is None:
            return "gave_up"
        try:
            # No idle check: the reconciler only sees ACCEPTED jobs older than submit_after.
            claimed = self._write(record, JobState.ACCEPTED, error=None)
        except StaleRecordError:
            return "unchanged"
        try:
            self.submit(claimed, message)
        except RunPodRequestError as exc:
            return self._refused(claimed, exc)
        except (TransientError, UsageError) as exc:
            self._record_submit_failure(claimed, str(exc), final=False, context="the reconciler")
            return "error"
        return "submitted"

    def _load_message(self, record: JobRecord) -> QueueMessage | None:
        text = self.store.load_message(record)
        if text:
            with contextlib.suppress(ValidationError):
                return QueueMessage.model_validate_json(text)
        error = JobError(code=ErrorCode.INTERNAL, job_id=record.job_id, message="the stored job message is missing")
        self._give_up(record, error)
        return None

    def _resubmit(self, record: JobRecord, error: JobError, *, runpod_has_job: bool) -> str:
        if record.attempt >= self.limits.max_attempts:
            return self._give_up(record, error)
        ready_at = record.updated_at_ms + resubmit_delay_ms(record.attempt, self.limits.resubmit_backoff)
        if self.clock_ms() < ready_at:
            return "waiting"
        try:
            # Claim the resubmission first: of two overlapping reconciler runs only one gets past this write,
            # so a job is never resubmitted twice.
            record = self._write(record, record.state, error=error)
        except StaleRecordError:
            return "unchanged"
        endpoint = record.endpoint_id or self.endpoint_id
        submitted_id: str | None = None
        if runpod_has_job and record.runpod_id is not None:
            with contextlib.suppress(RunPodJobNotFound, RunPodRequestError):
                submitted_id = self.runpod.retry(endpoint, record.runpod_id).id
        if submitted_id is None:
            message = self._load_message(record)
            if message is None:
                return "gave_up"
            try:
                submitted_id = self.runpod.run(endpoint, self._run_body(record, message)).id
            except RunPodRequestError as exc:
                return self._give_up(record, error.model_copy(update={"message": f"{error.message}; {exc}"}))
        log_event(logging.INFO, "resubmitted", record.job_id, runpod_id=submitted_id, reason=error.summary())
        try:
            self._write(record, JobState.SUBMITTED, runpod_id=submitted_id, attempt=record.attempt + 1, error=None)
        except StaleRecordError:
            return "unchanged"
        return "resubmitted"

    def _give_up(self, record: JobRecord, error: JobError) -> str:
        final = error.model_copy(
            update={"message": f"gave up after {record.attempt} attempt(s): {error.message}", "job_id": record.job_id}
        )
        with contextlib.suppress(StaleRecordError):
            written = self._write(record, JobState.FAILED, error=final)
            log_event(logging.WARNING, "job failed for good", record.job_id, code=final.code.value)
            self._notify(written)
        return "gave_up"


def _names_job(status: RunPodJobStatus, job_id: str) -> bool:
    """Whether a success's output may belong to ``job_id``: a worker result naming another job does not."""
    result = status.result()
    if result is not None:
        return result.job_id == job_id
    named = status.output.get("job_id") if isinstance(status.output, dict) else None
    return named is None or named == job_id


def _body_digest(body: str) -> str:
    return "sha256:" + hashlib.sha256(body.encode(errors="replace")).hexdigest()
