"""Property-based: no sequence of deliveries, webhooks, progress events, RunPod outcomes, lost jobs, crashes and
reconciler passes moves a finished job, loses an attempt, or runs a job twice while one of its submissions is live.

Runs against the in-memory store and RunPod (fast); the same machine runs a few examples against moto's DynamoDB.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from handlers.contract import (
    ErrorCode,
    JobError,
    JobRecord,
    JobState,
    ProgressEvent,
    ProgressWebhookPayload,
    RunPodStatus,
    can_transition,
    is_terminal,
)
from handlers.dispatch._errors import RunPodRateLimited, RunPodUnavailable
from handlers.dispatch._jobs import JobService
from handlers.dispatch._runpod import MemoryRunPod
from tests.dispatch.helpers import World, message, success_output

# One job: every rule then bears on it, so the sequences that matter (lose, wait, reconcile, three times) are found;
# jobs share nothing but the store, which the moto run covers.
JOBS = ("job-a",)
_CRASHED = ErrorCode.COMFYUI_CRASHED


class _Crash(BaseException):
    """A Lambda killed mid-flight: nothing after the crash point runs."""


_OUTCOMES = st.sampled_from(["completed", "failed-retryable", "failed-fatal", "cancelled", "timed-out", "running"])


class DispatchMachine(RuleBasedStateMachine):
    world_factory: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.world: World = (self.world_factory or (lambda: World(validate=False)))()
        self.service: JobService = self.world.service
        self.runpod: MemoryRunPod = self.world.runpod
        self.orphans: Counter[str] = Counter()
        self.terminal: dict[str, JobRecord] = {}
        self.last: dict[str, JobRecord] = {}
        self.seq: Counter[str] = Counter()

    # -- actions -------------------------------------------------------------------------------------------

    @initialize()
    def first_delivery(self) -> None:
        self.service.handle_message("msg-job-a", message("job-a"))

    @rule(job=st.sampled_from(JOBS), receive=st.integers(1, 4), transient=st.booleans())
    def deliver(self, job: str, receive: int, transient: bool) -> None:
        if transient:
            self.runpod.fail_next(RunPodRateLimited("429") if receive % 2 else RunPodUnavailable("503", status=503))
        self.service.handle_message(f"msg-{job}", message(job), receive_count=receive)
        self.runpod.failures.clear()

    @rule(job=st.sampled_from(JOBS))
    def deliver_and_crash_after_run(self, job: str) -> None:
        store = self.world.store
        original = store.update
        runs_before = len(self.runpod.runs)

        def crash(record: JobRecord, expected: JobRecord) -> JobRecord:
            if record.state is JobState.SUBMITTED:
                raise _Crash
            return original(record, expected)

        store.update = crash  # type: ignore[method-assign]
        try:
            self.service.handle_message(f"msg-{job}", message(job))
        except _Crash:
            # /run happened, the record never learned of it.
            self.orphans[job] += len(self.runpod.runs) - runs_before
        finally:
            store.update = original  # type: ignore[method-assign]

    def _submissions(self, job: str) -> list[str]:
        return [runpod_id for job_id, runpod_id in self.runpod.runs if job_id == job]

    @rule(job=st.sampled_from(JOBS), pick=st.integers(0, 5), outcome=_OUTCOMES, webhook=st.booleans())
    def runpod_moves(self, job: str, pick: int, outcome: str, webhook: bool) -> None:
        live = self.runpod.live(job)
        if not live:
            return
        runpod_id = live[pick % len(live)]
        if outcome == "completed":
            self.runpod.set_status(runpod_id, RunPodStatus.COMPLETED, output=success_output(job))
        elif outcome == "failed-retryable":
            error = JobError(code=_CRASHED, message="died").to_runpod()
            self.runpod.set_status(
                runpod_id, RunPodStatus.FAILED, output={"details": error["details"]}, error=error["error"]
            )
        elif outcome == "failed-fatal":
            self.runpod.set_status(runpod_id, RunPodStatus.FAILED, error="execution_failed: boom")
        elif outcome == "cancelled":
            self.runpod.set_status(runpod_id, RunPodStatus.CANCELLED)
        elif outcome == "timed-out":
            self.runpod.set_status(runpod_id, RunPodStatus.TIMED_OUT)
        else:
            self.runpod.set_status(runpod_id, RunPodStatus.IN_PROGRESS)
        if webhook:
            self.service.handle_runpod_webhook({"id": runpod_id, "status": "COMPLETED", "input": {"job_id": job}})

    @rule(job=st.sampled_from(JOBS), pick=st.integers(0, 5), claim=st.sampled_from(["COMPLETED", "FAILED"]))
    def replay_webhook(self, job: str, pick: int, claim: str) -> None:
        submissions = self._submissions(job)
        if submissions:
            runpod_id = submissions[pick % len(submissions)]
            self.service.handle_runpod_webhook({"id": runpod_id, "status": claim, "input": {"job_id": job}})

    @rule(job=st.sampled_from(JOBS), pick=st.integers(0, 5))
    def runpod_loses_job(self, job: str, pick: int) -> None:
        live = self.runpod.live(job)
        if live:
            self.runpod.forget(live[pick % len(live)])

    @rule(job=st.sampled_from(JOBS), back=st.booleans(), percent=st.floats(0, 100))
    def progress(self, job: str, back: bool, percent: float) -> None:
        self.seq[job] += 1
        seq = max(0, self.seq[job] - 3) if back else self.seq[job]
        event = ProgressEvent(job_id=job, percent=percent, elapsed_ms=1)
        self.service.handle_progress(ProgressWebhookPayload(job_id=job, seq=seq, sent_at_ms=1, event=event))

    @rule(ms=st.sampled_from([500, 5_000, 30_000, 60_000, 130_000]))
    def time_passes(self, ms: int) -> None:
        self.world.clock.advance(ms)

    @rule(transient=st.booleans(), later_ms=st.sampled_from([0, 61_000, 130_000]))
    def reconcile(self, transient: bool, later_ms: int) -> None:
        self.world.clock.advance(later_ms)
        if transient:
            self.runpod.fail_next(RunPodUnavailable("503", status=503))
        self.service.reconcile()
        self.runpod.failures.clear()

    # -- invariants ----------------------------------------------------------------------------------------

    @invariant()
    def finished_jobs_never_move(self) -> None:
        for job in JOBS:
            record = self.world.store.get(job)
            if job in self.terminal:
                assert record == self.terminal[job], f"{job} moved after {self.terminal[job].state}"
            elif record is not None and is_terminal(record.state):
                self.terminal[job] = record

    @invariant()
    def attempts_and_versions_only_grow(self) -> None:
        for job in JOBS:
            record = self.world.store.get(job)
            if record is None:
                continue
            before = self.last.get(job)
            if before is not None:
                assert record.attempt >= before.attempt, "an attempt was lost"
                assert record.version >= before.version
                assert (
                    record.state is before.state
                    or can_transition(before.state, record.state)
                    or (record.version > before.version + 1)
                ), f"{before.state} -> {record.state}"
            self.last[job] = record

    @invariant()
    def never_two_live_submissions(self) -> None:
        for job in JOBS:
            record = self.world.store.get(job)
            live = self.runpod.live(job)
            # Only a crash between /run and the record can leave an extra run nobody knows of (made harmless by
            # the worker's job-id idempotency); every other live submission is the record's own.
            assert len(live) <= 1 + self.orphans[job], f"{job}: live submissions {live}"
            if record is not None and is_terminal(record.state) is False and record.runpod_id is not None:
                known = [r for r in live if r != record.runpod_id]
                assert len(known) <= self.orphans[job]

    @invariant()
    def attempts_are_bounded_and_counted(self) -> None:
        limit = self.world.limits.max_attempts
        for job in JOBS:
            record = self.world.store.get(job)
            if record is None:
                continue
            runs = len(self._submissions(job)) - self.orphans[job]
            assert record.attempt <= limit
            assert runs <= record.attempt, f"{job}: {runs} runs but attempt {record.attempt}"


DispatchMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestDispatchMachine = DispatchMachine.TestCase


@pytest.fixture
def moto_world(aws: Any) -> Any:
    from handlers.dispatch._dynamo_store import DynamoJobStore
    from tests.dispatch.helpers import Clock

    tables = iter(range(10_000))

    def make() -> World:
        # A fresh table per example: moto tables are cheap, and examples must not see each other's jobs.
        from handlers.dispatch._provision import provision
        from handlers.dispatch._resources import ResourceNames

        n = next(tables)
        names = ResourceNames(
            table=f"{aws.names.table}-sm{n}",
            queue=f"{aws.names.queue}-sm{n}",
            dead_letter_queue=f"{aws.names.queue}-smd{n}",
            bucket=aws.names.bucket,
        )
        provision(dynamodb=aws.dynamodb, sqs=aws.sqs, s3=aws.s3, names=names)
        world = World(validate=False)
        clock: Clock = world.clock
        world.store = DynamoJobStore(names.table, dynamodb=aws.dynamodb, s3=aws.s3, bucket=names.bucket, clock_ms=clock)  # type: ignore[assignment]
        world.service.store = world.store
        return world

    return make


def test_state_machine_against_moto(moto_world: Any) -> None:
    class OnMoto(DispatchMachine):
        world_factory = staticmethod(moto_world)

    OnMoto.TestCase.settings = settings(
        max_examples=4, stateful_step_count=15, deadline=None, suppress_health_check=list(HealthCheck)
    )
    OnMoto.TestCase().runTest()
