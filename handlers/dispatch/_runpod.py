"""RunPod's serverless REST API (``/run``, ``/status``, ``/retry``, ``/cancel``) on httpx: bearer auth, timeouts,
retries with jitter on 429/5xx/timeouts honouring ``Retry-After``, typed answers.

httpx's exceptions and RunPod's status codes become dispatch errors here and nowhere else
(:func:`_classify`). :class:`MemoryRunPod` is the in-memory stand-in the property tests drive.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from handlers.contract import RunPodJobStatus, RunPodStatus
from handlers.dispatch._errors import (
    DispatchError,
    RunPodAuthError,
    RunPodJobNotFound,
    RunPodRateLimited,
    RunPodRequestError,
    RunPodUnavailable,
)
from handlers.dispatch._retry import RetryPolicy, delays, is_retryable_status, parse_retry_after

__all__ = ["MemoryRunPod", "RunPodApi", "RunPodClient", "Submitted"]

_log = logging.getLogger("comfy_relay.dispatch")


@dataclass(frozen=True, slots=True)
class Submitted:
    """``/run`` and ``/retry`` answer ``{"id": ..., "status": "IN_QUEUE"}``."""

    id: str
    status: str


class RunPodApi(Protocol):
    def run(self, endpoint_id: str, body: Mapping[str, Any]) -> Submitted: ...

    def status(self, endpoint_id: str, runpod_id: str) -> RunPodJobStatus:
        """Raises :class:`RunPodJobNotFound` when RunPod no longer knows the job."""
        ...

    def retry(self, endpoint_id: str, runpod_id: str) -> Submitted: ...

    def cancel(self, endpoint_id: str, runpod_id: str) -> Submitted: ...


def _classify(response: httpx.Response, what: str, now_s: float) -> DispatchError | None:
    """The error an answer means, or ``None`` for a success."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    text = response.text[:200]
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now_s)
        return RunPodRateLimited(f"{what}: RunPod answered 429 ({text})", retry_after_s=retry_after)
    if is_retryable_status(status):
        return RunPodUnavailable(f"{what}: RunPod answered {status} ({text})", status=status)
    if status in (401, 403):
        return RunPodAuthError(f"{what}: RunPod answered {status}: check RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID")
    if status == 404:
        return RunPodJobNotFound(f"{what}: RunPod answered 404 ({text})")
    return RunPodRequestError(f"{what}: RunPod answered {status} ({text})", status=status)


class RunPodClient:
    """One endpoint family under ``api_base`` (``https://api.runpod.ai/v2``). ``transport`` is for tests;
    ``sleep`` and ``rng`` make the retry waits observable and short."""

    def __init__(
        self,
        api_base: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._rng_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=api_base.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, what: str, body: Mapping[str, Any] | None = None) -> Any:
        with self._rng_lock:
            waits = list(delays(self._retry, self._rng))
        attempt = 0
        while True:
            attempt += 1
            error: DispatchError | None
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TimeoutException as exc:
                error = RunPodUnavailable(f"{what}: timed out ({type(exc).__name__})")
                cause: BaseException | None = exc
            except httpx.TransportError as exc:
                error = RunPodUnavailable(f"{what}: {type(exc).__name__}: {exc}")
                cause = exc
            else:
                cause = None
                error = _classify(response, what, time.time())
                if error is None:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise RunPodUnavailable(f"{what}: RunPod answered {response.status_code} without JSON") from exc
            if not isinstance(error, RunPodUnavailable) or attempt > len(waits):
                raise error from cause
            wait = waits[attempt - 1]
            if isinstance(error, RunPodRateLimited) and error.retry_after_s is not None:
                wait = min(max(wait, error.retry_after_s), self._retry.max_retry_after_s)
            _log.warning("RunPod call will be retried", extra={"what": what, "attempt": attempt, "delay_s": wait})
            self._sleep(wait)

    @staticmethod
    def _submitted(answer: Any, what: str) -> Submitted:
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            raise RunPodUnavailable(f"{what}: unexpected answer {str(answer)[:200]}")
        return Submitted(id=answer["id"], status=str(answer.get("status", "")))

    def run(self, endpoint_id: str, body: Mapping[str, Any]) -> Submitted:
        return self._submitted(self._call("POST", f"{endpoint_id}/run", "POST /run", body), "POST /run")

    def status(self, endpoint_id: str, runpod_id: str) -> RunPodJobStatus:
        answer = self._call("GET", f"{endpoint_id}/status/{runpod_id}", "GET /status")
        try:
            return RunPodJobStatus.model_validate(answer)
        except ValidationError as exc:
            raise RunPodUnavailable(f"GET /status: unexpected answer {str(answer)[:200]}") from exc

    def retry(self, endpoint_id: str, runpod_id: str) -> Submitted:
        return self._submitted(self._call("POST", f"{endpoint_id}/retry/{runpod_id}", "POST /retry"), "POST /retry")

    def cancel(self, endpoint_id: str, runpod_id: str) -> Submitted:
        return self._submitted(self._call("POST", f"{endpoint_id}/cancel/{runpod_id}", "POST /cancel"), "POST /cancel")


@dataclass
class _MemoryJob:
    id: str
    endpoint_id: str
    body: dict[str, Any]
    status: RunPodStatus = RunPodStatus.IN_QUEUE
    output: Any = None
    error: str | None = None


@dataclass
class MemoryRunPod:
    """RunPod in a dict: jobs are finished, lost or failed by the test (``finish``, ``forget``), and the next
    calls can be made to fail (``fail_next``)."""

    jobs: dict[str, _MemoryJob] = field(default_factory=dict)
    runs: list[tuple[str, str]] = field(default_factory=list)
    """``(job id from the input, RunPod id)`` for every accepted ``/run``."""
    failures: list[DispatchError] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, error: DispatchError, count: int = 1) -> None:
        self.failures.extend([error] * count)

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def run(self, endpoint_id: str, body: Mapping[str, Any]) -> Submitted:
        with self._lock:
            self._maybe_fail()
            runpod_id = f"rp-{next(self._ids)}"
            self.jobs[runpod_id] = _MemoryJob(runpod_id, endpoint_id, dict(body))
            self.runs.append((str(body["input"].get("job_id")), runpod_id))
            return Submitted(runpod_id, RunPodStatus.IN_QUEUE.value)

    def _job(self, runpod_id: str) -> _MemoryJob:
        job = self.jobs.get(runpod_id)
        if job is None:
            raise RunPodJobNotFound(f"no RunPod job {runpod_id}")
        return job

    def status(self, endpoint_id: str, runpod_id: str) -> RunPodJobStatus:
        with self._lock:
            self._maybe_fail()
            job = self._job(runpod_id)
            body: dict[str, Any] = {"id": job.id, "status": job.status.value}
            if job.output is not None:
                body["output"] = job.output
            if job.error is not None:
                body["error"] = job.error
            return RunPodJobStatus.model_validate(body)

    def retry(self, endpoint_id: str, runpod_id: str) -> Submitted:
        with self._lock:
            self._maybe_fail()
            job = self._job(runpod_id)
            if job.status not in (RunPodStatus.FAILED, RunPodStatus.TIMED_OUT):
                raise RunPodRequestError(f"job {runpod_id} is {job.status}", status=400)
            job.status, job.output, job.error = RunPodStatus.IN_QUEUE, None, None
            self.runs.append((str(job.body["input"].get("job_id")), runpod_id))
            return Submitted(runpod_id, job.status.value)

    def cancel(self, endpoint_id: str, runpod_id: str) -> Submitted:
        with self._lock:
            job = self._job(runpod_id)
            if job.status in (RunPodStatus.IN_QUEUE, RunPodStatus.IN_PROGRESS):
                job.status = RunPodStatus.CANCELLED
            return Submitted(runpod_id, job.status.value)

    # -- test controls ---------------------------------------------------------------------------------------

    def set_status(self, runpod_id: str, status: RunPodStatus, output: Any = None, error: str | None = None) -> None:
        with self._lock:
            job = self._job(runpod_id)
            job.status, job.output, job.error = status, output, error

    def forget(self, runpod_id: str) -> None:
        with self._lock:
            self.jobs.pop(runpod_id, None)

    def live(self, job_id: str) -> list[str]:
        """RunPod ids of not-finished submissions of ``job_id``."""
        with self._lock:
            open_states = (RunPodStatus.IN_QUEUE, RunPodStatus.IN_PROGRESS, RunPodStatus.RUNNING)
            return [
                j.id for j in self.jobs.values() if j.body["input"].get("job_id") == job_id and j.status in open_states
            ]
