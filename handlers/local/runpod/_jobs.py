"""The emulated endpoint's jobs: queue, state machine, expiry and retention. Pure: no I/O, the clock is injected.

States follow RunPod: ``IN_QUEUE -> IN_PROGRESS -> COMPLETED | FAILED | CANCELLED | TIMED_OUT``; a queued job can
also be cancelled, and FAILED/TIMED_OUT jobs can be retried (back to ``IN_QUEUE`` with the same id). A job whose
TTL runs out before it ends is removed outright (``/status`` then answers 404), and an ended job is removed when
its retention time is over.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from handlers.local.runpod._config import EmulatorConfig

__all__ = [
    "TERMINAL",
    "Clock",
    "InvalidRequestError",
    "Job",
    "JobStatus",
    "JobStore",
    "Policy",
    "UnknownJobError",
    "WorkerInfo",
]

Clock = Callable[[], float]


class JobStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


TERMINAL: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})
_RETRYABLE: Final = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT})
WORKER_LOST_ERROR: Final = "worker lost: it stopped reporting while running this job"


class InvalidRequestError(ValueError):
    """The caller asked for something RunPod refuses (bad body, bad policy, retry of a running job): HTTP 400."""


class UnknownJobError(LookupError):
    """No such job (never existed, expired, purged or forgotten): HTTP 404."""


class _Unset:
    """Marks "no output": ``None`` is a legitimate handler output."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True)
class Policy:
    execution_timeout_ms: int
    ttl_ms: int
    low_priority: bool = False


@dataclass
class Job:
    id: str
    input: dict[str, Any]
    policy: Policy
    sync: bool
    submitted_at: float
    webhook: str | None = None
    s3_config: dict[str, Any] | None = None
    status: JobStatus = JobStatus.IN_QUEUE
    worker_id: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    output: Any = UNSET
    error: Any = UNSET
    progress: Any = UNSET
    stream: list[Any] = field(default_factory=list)  # chunks not yet read through /stream
    stream_total: int = 0
    retries: int = 0
    requeues: int = 0
    stop_requested: bool = False  # a stop signal was queued for the worker
    stop_pod: bool = False  # the worker asked to be stopped after this job (refresh_worker)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def status_body(self) -> dict[str, Any]:
        """The ``/status`` answer: ``id``, ``status``, ``delayTime``/``executionTime`` in ms once known, and
        ``output`` (progress while running) and ``error`` when there are any."""
        body: dict[str, Any] = {"id": self.id, "status": self.status.value}
        if self.started_at is not None:
            body["delayTime"] = _ms(self.started_at - self.submitted_at)
            if self.completed_at is not None:
                body["executionTime"] = _ms(self.completed_at - self.started_at)
        if self.status is JobStatus.IN_PROGRESS:
            if self.progress is not UNSET:
                body["output"] = self.progress
        elif self.output is not UNSET:
            body["output"] = self.output
        if self.error is not UNSET:
            body["error"] = self.error
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        return body

    def webhook_body(self) -> dict[str, Any]:
        """What RunPod POSTs to the job's webhook: the status object plus the job's ``input`` and ``webhook``
        (the cloud payload quoted in runpod/runpod-python#409), without ``workerId`` (absent there)."""
        body = self.status_body()
        body.pop("workerId", None)
        body["input"] = self.input
        body["webhook"] = self.webhook
        return body

    def worker_payload(self) -> dict[str, Any]:
        """The job dict job-take hands to the worker; the SDK passes it to the handler unchanged."""
        payload: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.webhook is not None:
            payload["webhook"] = self.webhook
        if self.s3_config is not None:
            payload["s3Config"] = self.s3_config
        return payload

    def summary(self) -> dict[str, Any]:
        """Everything about the job, for the emulator's admin listing."""
        return {
            **self.status_body(),
            "sync": self.sync,
            "webhook": self.webhook,
            "policy": {
                "executionTimeout": self.policy.execution_timeout_ms,
                "ttl": self.policy.ttl_ms,
                "lowPriority": self.policy.low_priority,
            },
            "retries": self.retries,
            "requeues": self.requeues,
            "stopRequested": self.stop_requested,
            "stopPod": self.stop_pod,
            "streamPending": len(self.stream),
            "streamTotal": self.stream_total,
        }


@dataclass
class WorkerInfo:
    id: str
    last_seen: float
    pings: int = 0
    healthy: bool = True
    stop_pod: bool = False
    stop_signals: list[str] = field(default_factory=list)
    reported_jobs: list[str] = field(default_factory=list)  # job ids in the last ping

    def summary(self, running: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "pings": self.pings,
            "healthy": self.healthy,
            "stopPod": self.stop_pod,
            "running": running,
            "pendingStops": list(self.stop_signals),
            "reportedJobs": list(self.reported_jobs),
        }


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


class JobStore:
    """All jobs of one endpoint and the workers serving it. Every method first applies what time has done
    (timeouts, TTLs, retention, lost workers), so a test with a fake clock needs no background task.

    Jobs that reach a terminal state are collected in an outbox (``drain_finished``) for webhook delivery.
    """

    def __init__(
        self, config: EmulatorConfig, clock: Clock = time.monotonic, new_id: Callable[[], str] | None = None
    ) -> None:
        self.config = config
        self._clock = clock
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()
        self._workers: dict[str, WorkerInfo] = {}
        self._finished: list[Job] = []
        self._counts = {"completed": 0, "failed": 0, "retried": 0}
        self.revision = 0  # bumped by every change time or a worker makes, so a sweeper knows when to wake waiters

    # -- submission -------------------------------------------------------------------------------------------

    def submit(self, body: Any, *, sync: bool) -> Job:
        """Queue a job from a /run or /runsync body; ``InvalidRequestError`` names the first problem."""
        self.sweep()
        if not isinstance(body, Mapping):
            raise InvalidRequestError("request body must be a JSON object")
        job_input = body.get("input")
        if not isinstance(job_input, Mapping):
            raise InvalidRequestError(
                "input is required and must be a JSON object" if job_input is None else "input must be a JSON object"
            )
        webhook = body.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise InvalidRequestError("webhook must be an http(s) URL")
        s3_config = body.get("s3Config")
        if s3_config is not None and not isinstance(s3_config, Mapping):
            raise InvalidRequestError("s3Config must be a JSON object")
        policy = self._policy(body.get("policy"))
        prefix = "sync-" if sync else ""
        job = Job(
            id=f"{prefix}{self._new_id()}-{self.config.region_suffix}",
            input=dict(job_input),
            policy=policy,
            sync=sync,
            submitted_at=self._clock(),
            webhook=webhook,
            s3_config=dict(s3_config) if s3_config is not None else None,
        )
        self._jobs[job.id] = job
        self._queue.append(job.id)
        return job

    def _policy(self, raw: Any) -> Policy:
        cfg = self.config
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InvalidRequestError("policy must be a JSON object")
        timeout = self._policy_ms(
            raw, "executionTimeout", cfg.execution_timeout_default_ms, cfg.execution_timeout_min_ms
        )
        ttl = self._policy_ms(raw, "ttl", cfg.ttl_default_ms, cfg.ttl_min_ms)
        low = raw.get("lowPriority", False)
        if not isinstance(low, bool):
            raise InvalidRequestError("policy.lowPriority must be a boolean")
        return Policy(execution_timeout_ms=timeout, ttl_ms=ttl, low_priority=low)

    def _policy_ms(self, raw: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"policy.{name} must be an integer number of milliseconds")
        if not minimum <= value <= self.config.policy_max_ms:
            raise InvalidRequestError(f"policy.{name} must be between {minimum} and {self.config.policy_max_ms} ms")
        return value

    # -- public reads and commands ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        self.sweep()
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(job_id)
        return job

    def set_ttl(self, job_id: str, ttl_ms: int) -> Job:
        """``/status/{id}?ttl=``: replace the job's TTL (still counted from submission)."""
        job = self.get(job_id)
        if not self.config.ttl_min_ms <= ttl_ms <= self.config.policy_max_ms:
            raise InvalidRequestError(f"ttl must be between {self.config.ttl_min_ms} and {self.config.policy_max_ms}")
        job.policy = Policy(job.policy.execution_timeout_ms, ttl_ms, job.policy.low_priority)
        return job

    def read_stream(self, job_id: str) -> tuple[Job, list[Any]]:
        """Chunks streamed since the last read; each chunk is handed out once."""
        job = self.get(job_id)
        chunks, job.stream = job.stream, []
        return job, chunks

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.terminal:
            return job
        if job.status is JobStatus.IN_QUEUE:
            self._queue.remove(job.id)
        else:
            self._signal_stop(job)
        self._end(job, JobStatus.CANCELLED)
        return job

    def retry(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status not in _RETRYABLE:
            raise InvalidRequestError(f"only FAILED or TIMED_OUT jobs can be retried; job {job.id} is {job.status}")
        # The retried job gets a fresh submission time: its TTL and delayTime start again.
        job.status = JobStatus.IN_QUEUE
        job.submitted_at = self._clock()
        job.worker_id = job.started_at = job.completed_at = None
        job.output = job.error = job.progress = UNSET
        job.stream = []
        job.stream_total = 0
        job.stop_requested = False
        job.retries += 1
        self._counts["retried"] += 1
        self._queue.append(job.id)
        return job

    def purge_queue(self) -> int:
        """Remove every queued job (RunPod leaves running ones alone); returns how many went."""
        self.sweep()
        removed = len(self._queue)
        for job_id in self._queue:
            del self._jobs[job_id]
        self._queue.clear()
        return removed

    def forget(self, job_id: str) -> Job:
        """Drop a job without a trace, as if the platform lost it (admin knob for recovery tests)."""
        job = self.get(job_id)
        self._remove(job)
        return job

    def jobs(self) -> list[Job]:
        self.sweep()
        return list(self._jobs.values())

    def workers(self) -> list[WorkerInfo]:
        self.sweep()
        return list(self._workers.values())

    def running_count(self, worker_id: str) -> int:
        return sum(1 for job in self._jobs.values() if job.worker_id == worker_id and not job.terminal)

    def health(self) -> dict[str, Any]:
        self.sweep()
        in_queue = len(self._queue)
        in_progress = sum(1 for job in self._jobs.values() if job.status is JobStatus.IN_PROGRESS)
        running = sum(1 for worker in self._workers.values() if self.running_count(worker.id) > 0)
        return {
            "jobs": {
                "completed": self._counts["completed"],
                "failed": self._counts["failed"],
                "inProgress": in_progress,
                "inQueue": in_queue,
                "retried": self._counts["retried"],
            },
            "workers": {"idle": len(self._workers) - running, "running": running},
        }

    def drain_finished(self) -> list[Job]:
        finished, self._finished = self._finished, []
        return finished

    # -- worker side ------------------------------------------------------------------------------------------

    def touch_worker(self, worker_id: str, *, ping: bool = False, healthy: bool = True) -> WorkerInfo:
        self.sweep()
        worker = self._workers.get(worker_id)
        if worker is None:
            worker = self._workers[worker_id] = WorkerInfo(id=worker_id, last_seen=self._clock())
        worker.last_seen = self._clock()
        if ping:
            worker.pings += 1
            worker.healthy = healthy
        return worker

    def ping(self, worker_id: str, job_ids: list[str], *, healthy: bool = True) -> None:
        """A heartbeat listing the jobs the worker runs. A listed job that is no longer running there (cancelled,
        timed out, expired, forgotten) gets its stop signal again: the SDK drops a stop that arrives between
        taking a job and starting its task, so one signal is not enough."""
        worker = self.touch_worker(worker_id, ping=True, healthy=healthy)
        worker.reported_jobs = list(job_ids)
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            running_here = job is not None and job.worker_id == worker_id and job.status is JobStatus.IN_PROGRESS
            if not running_here and job_id not in worker.stop_signals:
                worker.stop_signals.append(job_id)
                self.revision += 1

    def worker_idle(self, worker_id: str) -> None:
        """The worker says it holds no job (job-take with ``job_in_progress=0``): any job we still think it runs
        was dropped on its side (result post failed, or the process restarted under the same id)."""
        for job in list(self._jobs.values()):
            if job.worker_id == worker_id and job.status is JobStatus.IN_PROGRESS:
                self._lose(job)

    def take(self, worker_id: str, count: int = 1) -> list[Job]:
        """Hand up to ``count`` queued jobs to the worker, oldest first."""
        self.touch_worker(worker_id)
        taken: list[Job] = []
        now = self._clock()
        while self._queue and len(taken) < count:
            job = self._jobs[self._queue.popleft()]
            job.status = JobStatus.IN_PROGRESS
            job.worker_id = worker_id
            job.started_at = now
            taken.append(job)
        return taken

    def give_back(self, job: Job) -> None:
        """Undo ``take`` for a job whose hand-over failed (the worker hung up): first in line again."""
        if job.status is JobStatus.IN_PROGRESS and self._jobs.get(job.id) is job:
            job.status = JobStatus.IN_QUEUE
            job.worker_id = job.started_at = None
            self._queue.appendleft(job.id)

    def pop_stop_signals(self, worker_id: str) -> list[str]:
        worker = self.touch_worker(worker_id)
        signals, worker.stop_signals = worker.stop_signals, []
        return signals

    def _owned(self, worker_id: str, job_id: str) -> Job | None:
        """The job if it is running on this worker; ``None`` for a late post (cancelled, timed out, requeued).
        ``UnknownJobError`` if there is no such job at all."""
        self.touch_worker(worker_id)
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(job_id)
        if job.status is not JobStatus.IN_PROGRESS or job.worker_id != worker_id:
            return None
        return job

    def progress(self, worker_id: str, job_id: str, output: Any) -> bool:
        job = self._owned(worker_id, job_id)
        if job is None:
            return False
        job.progress = output
        return True

    def add_stream(self, worker_id: str, job_id: str, body: Mapping[str, Any]) -> bool:
        job = self._owned(worker_id, job_id)
        if job is None:
            return False
        job.stream.append(body.get("output"))
        job.stream_total += 1
        return True

    def finish(self, worker_id: str, job_id: str, body: Mapping[str, Any]) -> bool:
        """A final job-done post: ``error`` makes it FAILED (keeping any ``output``), else COMPLETED."""
        job = self._owned(worker_id, job_id)
        if job is None:
            return False
        if "output" in body:
            job.output = body["output"]
        if body.get("stopPod") is True:
            job.stop_pod = True
            self._workers[worker_id].stop_pod = True
        if body.get("error") not in (None, ""):
            job.error = body["error"]
            self._end(job, JobStatus.FAILED)
        else:
            self._end(job, JobStatus.COMPLETED)
        return True

    # -- time -------------------------------------------------------------------------------------------------

    def sweep(self) -> None:
        now = self._clock()
        for job in list(self._jobs.values()):
            if job.terminal:
                retention = self.config.runsync_retention_s if job.sync else self.config.run_retention_s
                if job.completed_at is not None and now >= job.completed_at + retention:
                    self._remove(job)
                continue
            if now >= job.submitted_at + job.policy.ttl_ms / 1000:
                if job.status is JobStatus.IN_PROGRESS:
                    self._signal_stop(job)
                self._remove(job)
            elif (
                job.status is JobStatus.IN_PROGRESS
                and job.started_at is not None
                and now >= job.started_at + job.policy.execution_timeout_ms / 1000
            ):
                self._signal_stop(job)
                self._end(job, JobStatus.TIMED_OUT)
        for worker in list(self._workers.values()):
            if now >= worker.last_seen + self.config.worker_lost_after_s:
                del self._workers[worker.id]
                for job in list(self._jobs.values()):
                    if job.worker_id == worker.id and job.status is JobStatus.IN_PROGRESS:
                        self._lose(job)

    # -- internals --------------------------------------------------------------------------------------------

    def _lose(self, job: Job) -> None:
        self.revision += 1
        if job.requeues < self.config.max_requeues:
            job.requeues += 1
            job.status = JobStatus.IN_QUEUE
            job.worker_id = job.started_at = None
            job.progress = UNSET
            self._counts["retried"] += 1
            self._queue.appendleft(job.id)
        else:
            job.error = WORKER_LOST_ERROR
            self._end(job, JobStatus.FAILED)

    def _signal_stop(self, job: Job) -> None:
        self.revision += 1
        worker = self._workers.get(job.worker_id or "")
        if worker is not None and job.id not in worker.stop_signals:
            worker.stop_signals.append(job.id)
        job.stop_requested = True

    def _end(self, job: Job, status: JobStatus) -> None:
        self.revision += 1
        job.status = status
        job.completed_at = self._clock()
        if status is JobStatus.COMPLETED:
            self._counts["completed"] += 1
        elif status is not JobStatus.CANCELLED:
            self._counts["failed"] += 1
        self._finished.append(job)

    def _remove(self, job: Job) -> None:
        self.revision += 1
        self._jobs.pop(job.id, None)
        if job.status is JobStatus.IN_QUEUE:
            self._queue.remove(job.id)
