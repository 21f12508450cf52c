"""Builders shared by the in-memory dispatch tests (no network)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from handlers.common import Backoff
from handlers.contract import JobRecord, RunPodStatus
from handlers.dispatch._jobs import JobService, Limits
from handlers.dispatch._memory_store import MemoryJobStore
from handlers.dispatch._notify import MemoryNotifier
from handlers.dispatch._runpod import MemoryRunPod
from handlers.dispatch._validation import InputValidator
from tests.conftest import REPO

GRAPH: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "relay"}},
}

LIMITS = Limits(
    max_attempts=3,
    max_receives=3,
    stale_after_ms=60_000,
    submit_after_ms=120_000,
    claim_timeout_ms=30_000,
    resubmit_backoff=Backoff(base_s=10.0, cap_s=40.0, min_s=0.0),
    progress_min_interval_ms=1_000,
    record_ttl_s=3600,
)


@dataclass
class Clock:
    now_ms: int = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class World:
    clock: Clock = field(default_factory=Clock)
    runpod: MemoryRunPod = field(default_factory=MemoryRunPod)
    notifier: MemoryNotifier = field(default_factory=MemoryNotifier)
    limits: Limits = LIMITS
    validate: bool = True
    store: MemoryJobStore = field(init=False)
    service: JobService = field(init=False)

    def __post_init__(self) -> None:
        self.store = MemoryJobStore(self.clock)
        self.service = JobService(
            self.store,
            self.runpod,
            endpoint_id="ep-1",
            webhook_url="https://relay.example/webhooks/runpod?token=t",
            notifier=self.notifier,
            validator=InputValidator(workflows=REPO / "workflows") if self.validate else None,
            limits=self.limits,
            clock_ms=self.clock,
        )

    def record(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        assert record is not None, f"no record for {job_id}"
        return record

    def webhook(
        self, runpod_id: str, status: RunPodStatus, job_id: str, output: Any = None, error: str | None = None
    ) -> JobRecord | None:
        """RunPod finishes ``runpod_id`` and POSTs its webhook."""
        self.runpod.set_status(runpod_id, status, output=output, error=error)
        body: dict[str, Any] = {"id": runpod_id, "status": status.value, "input": {"job_id": job_id}}
        return self.service.handle_runpod_webhook(body)


def message(job_id: str | None = "job-1", graph: dict[str, Any] | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"input": {"workflow": graph or GRAPH}}
    if job_id is not None:
        body["job_id"] = job_id
    body.update(extra)
    return json.dumps(body)


def success_output(job_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "outputs": [], "warnings": []}
