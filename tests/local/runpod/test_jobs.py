"""The job state machine, with a fake clock and no server."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.local import runpod as emulator_pkg
from handlers.local.runpod import EmulatorConfig, InvalidRequestError, JobStatus, JobStore, UnknownJobError

CONFIG = EmulatorConfig(worker_lost_after_s=30.0, max_requeues=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> JobStore:
    return JobStore(CONFIG, clock)


def _submit(store: JobStore, sync: bool = False, **body: Any) -> str:
    return store.submit({"input": {"p": 1}, **body}, sync=sync).id


def test_exports_are_pinned() -> None:
    assert emulator_pkg.__all__ == [
        "MIB",
        "PLATFORM",
        "TERMINAL",
        "Delivery",
        "EmulatorConfig",
        "Faults",
        "InvalidRequestError",
        "Job",
        "JobStatus",
        "JobStore",
        "Platform",
        "Policy",
        "UnknownJobError",
        "WebhookSender",
        "WorkerInfo",
        "create_app",
        "export_lines",
        "worker_environment",
    ]


def test_ids_look_like_runpod(store: JobStore) -> None:
    run_id = _submit(store)
    sync_id = _submit(store, sync=True)
    assert run_id.endswith("-u1") and len(run_id) == 36 + 3
    assert sync_id.startswith("sync-") and sync_id.endswith("-u1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({}, "input is required"),
        ({"input": "text"}, "input must be a JSON object"),
        ({"input": [1]}, "input must be a JSON object"),
        ({"input": {}, "webhook": "ftp://x"}, "webhook"),
        ({"input": {}, "policy": []}, "policy must be"),
        ({"input": {}, "policy": {"executionTimeout": 1000}}, "executionTimeout must be between"),
        ({"input": {}, "policy": {"executionTimeout": "9000"}}, "executionTimeout must be an integer"),
        ({"input": {}, "policy": {"ttl": 5000}}, "ttl must be between"),
        ({"input": {}, "policy": {"ttl": 8 * 24 * 3600 * 1000}}, "ttl must be between"),
        ({"input": {}, "policy": {"lowPriority": "yes"}}, "lowPriority"),
        ({"input": {}, "s3Config": "x"}, "s3Config"),
    ],
)
def test_submit_rejects_bad_bodies(store: JobStore, body: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        store.submit(body, sync=False)
    assert store.jobs() == []


def test_policy_defaults_are_runpods(store: JobStore) -> None:
    job = store.get(_submit(store, policy={"lowPriority": True}))
    assert (job.policy.execution_timeout_ms, job.policy.ttl_ms, job.policy.low_priority) == (600_000, 86_400_000, True)


def test_lifecycle_with_times_in_ms(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store, webhook="https://hook.example/x", s3Config={"bucketName": "b"})
    assert store.get(job_id).status_body() == {"id": job_id, "status": "IN_QUEUE"}
    clock.advance(1.5)
    [job] = store.take("w1")
    assert job.worker_payload() == {
        "id": job_id,
        "input": {"p": 1},
        "webhook": "https://hook.example/x",
        "s3Config": {"bucketName": "b"},
    }
    assert store.progress("w1", job_id, {"pct": 10})
    assert store.get(job_id).status_body() == {
        "id": job_id,
        "status": "IN_PROGRESS",
        "delayTime": 1500,
        "output": {"pct": 10},
        "workerId": "w1",
    }
    clock.advance(0.25)
    assert store.finish("w1", job_id, {"output": {"ok": True}})
    body = store.get(job_id).status_body()
    assert body == {
        "id": job_id,
        "status": "COMPLETED",
        "delayTime": 1500,
        "executionTime": 250,
        "output": {"ok": True},
        "workerId": "w1",
    }
    [finished] = store.drain_finished()
    assert finished.webhook_body() == {
        **{k: v for k, v in body.items() if k != "workerId"},
        "input": {"p": 1},
        "webhook": "https://hook.example/x",
    }
    assert store.drain_finished() == []


def test_error_result_fails_and_keeps_output(store: JobStore) -> None:
    job_id = _submit(store)
    store.take("w1")
    store.finish("w1", job_id, {"output": {"detail": 1}, "error": "custom failure"})
    body = store.get(job_id).status_body()
    assert (body["status"], body["error"], body["output"]) == ("FAILED", "custom failure", {"detail": 1})


def test_stop_pod_is_recorded(store: JobStore) -> None:
    job_id = _submit(store)
    store.take("w1")
    store.finish("w1", job_id, {"output": {"ok": 1}, "stopPod": True})
    assert store.get(job_id).stop_pod
    assert [w.stop_pod for w in store.workers()] == [True]


def test_take_is_fifo_and_batched(store: JobStore) -> None:
    ids = [_submit(store) for _ in range(3)]
    assert [job.id for job in store.take("w1", 2)] == ids[:2]
    assert [job.id for job in store.take("w2", 5)] == ids[2:]
    assert store.take("w1") == []


def test_give_back_puts_job_first_in_line(store: JobStore) -> None:
    first, second = _submit(store), _submit(store)
    [job] = store.take("w1")
    store.give_back(job)
    assert store.get(first).status_body() == {"id": first, "status": "IN_QUEUE"}
    assert [job.id for job in store.take("w2", 2)] == [first, second]


def test_stream_chunks_are_read_once(store: JobStore) -> None:
    job_id = _submit(store)
    store.take("w1")
    store.add_stream("w1", job_id, {"output": {"chunk": 0}})
    store.add_stream("w1", job_id, {"output": {"chunk": 1}})
    assert store.read_stream(job_id)[1] == [{"chunk": 0}, {"chunk": 1}]
    assert store.read_stream(job_id)[1] == []
    store.add_stream("w1", job_id, {"output": {"chunk": 2}})
    assert store.read_stream(job_id)[1] == [{"chunk": 2}]


def test_cancel_queued_and_running(store: JobStore) -> None:
    running, queued = _submit(store), _submit(store)
    store.take("w1")
    assert store.cancel(queued).status is JobStatus.CANCELLED
    assert store.take("w2") == []  # the cancelled job left the queue
    assert store.cancel(running).status is JobStatus.CANCELLED
    assert store.pop_stop_signals("w1") == [running]
    assert store.pop_stop_signals("w1") == []
    # The worker's late result changes nothing.
    assert not store.finish("w1", running, {"output": 1})
    assert store.get(running).status is JobStatus.CANCELLED
    assert store.cancel(running).status is JobStatus.CANCELLED  # idempotent


def test_execution_timeout(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store, policy={"executionTimeout": 10_000})
    clock.advance(100)  # queue time does not count
    store.take("w1")
    clock.advance(9.9)
    assert store.get(job_id).status is JobStatus.IN_PROGRESS
    clock.advance(0.2)
    assert store.get(job_id).status is JobStatus.TIMED_OUT
    assert store.pop_stop_signals("w1") == [job_id]
    assert [job.id for job in store.drain_finished()] == [job_id]


def test_ttl_counts_from_submission_and_removes(store: JobStore, clock: FakeClock) -> None:
    queued = _submit(store, policy={"ttl": 10_000})
    running = _submit(store, policy={"ttl": 20_000})
    clock.advance(9)
    store.take("w1")  # takes `queued`
    store.take("w1")
    clock.advance(1.5)
    with pytest.raises(UnknownJobError):
        store.get(queued)
    assert store.pop_stop_signals("w1") == [queued]
    clock.advance(10)
    with pytest.raises(UnknownJobError):
        store.get(running)
    assert store.drain_finished() == []  # removed, not ended: no webhook


def test_ttl_does_not_apply_after_the_end(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store, policy={"ttl": 10_000})
    store.take("w1")
    store.finish("w1", job_id, {"output": 1})
    clock.advance(60)
    assert store.get(job_id).status is JobStatus.COMPLETED


@pytest.mark.parametrize(("sync", "retention"), [(False, 1800.0), (True, 60.0)])
def test_results_expire_after_retention(store: JobStore, clock: FakeClock, sync: bool, retention: float) -> None:
    job_id = _submit(store, sync=sync)
    store.take("w1")
    clock.advance(20)  # running time does not count
    store.finish("w1", job_id, {"output": 1})
    clock.advance(retention - 1)
    assert store.get(job_id).status is JobStatus.COMPLETED
    clock.advance(1)
    with pytest.raises(UnknownJobError):
        store.get(job_id)


def test_retry_only_failed_or_timed_out(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store)
    with pytest.raises(InvalidRequestError, match="only FAILED or TIMED_OUT"):
        store.retry(job_id)
    store.take("w1")
    store.add_stream("w1", job_id, {"output": "x"})
    store.finish("w1", job_id, {"error": "boom"})
    clock.advance(3)
    job = store.retry(job_id)
    assert job.status_body() == {"id": job_id, "status": "IN_QUEUE"}  # previous output and error removed
    assert store.read_stream(job_id)[1] == []
    [again] = store.take("w2")
    assert again.id == job_id
    store.finish("w2", job_id, {"output": "fine"})
    with pytest.raises(InvalidRequestError):
        store.retry(job_id)
    assert store.health()["jobs"] == {"completed": 1, "failed": 1, "inProgress": 0, "inQueue": 0, "retried": 1}


def test_purge_queue_leaves_running_jobs(store: JobStore) -> None:
    running = _submit(store)
    store.take("w1")
    queued = [_submit(store) for _ in range(2)]
    assert store.purge_queue() == 2
    for job_id in queued:
        with pytest.raises(UnknownJobError):
            store.get(job_id)
    assert store.get(running).status is JobStatus.IN_PROGRESS


def test_health_counts_workers(store: JobStore) -> None:
    _submit(store)
    _submit(store)
    store.touch_worker("idle-worker", ping=True)
    store.take("busy-worker")
    assert store.health() == {
        "jobs": {"completed": 0, "failed": 0, "inProgress": 1, "inQueue": 1, "retried": 0},
        "workers": {"idle": 1, "running": 1},
    }


def test_lost_worker_requeues_once_then_fails(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store)
    store.take("w1")
    clock.advance(31)
    job = store.get(job_id)
    assert (job.status, job.requeues) == (JobStatus.IN_QUEUE, 1)
    assert store.workers() == []
    store.take("w2")
    clock.advance(31)
    body = store.get(job_id).status_body()
    assert body["status"] == "FAILED"
    assert "worker lost" in body["error"]


def test_pings_keep_a_worker(store: JobStore, clock: FakeClock) -> None:
    job_id = _submit(store)
    store.take("w1")
    for _ in range(5):
        clock.advance(20)
        store.touch_worker("w1", ping=True)
    assert store.get(job_id).status is JobStatus.IN_PROGRESS


def test_worker_saying_idle_gives_its_job_back(store: JobStore) -> None:
    job_id = _submit(store)
    store.take("w1")
    store.worker_idle("w1")
    assert store.get(job_id).status is JobStatus.IN_QUEUE


def test_forget(store: JobStore) -> None:
    job_id = _submit(store)
    store.take("w1")
    store.forget(job_id)
    with pytest.raises(UnknownJobError):
        store.get(job_id)
    with pytest.raises(UnknownJobError):
        store.finish("w1", job_id, {"output": 1})


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="endpoint_id"):
        EmulatorConfig(endpoint_id="a/b")
    with pytest.raises(ValueError, match="job_take_wait_s"):
        EmulatorConfig(job_take_wait_s=0)
    with pytest.raises(ValueError, match="runsync wait"):
        EmulatorConfig(runsync_wait_min_ms=5000, runsync_wait_default_ms=1000)


def test_ping_repeats_stops_for_jobs_the_worker_still_runs(store: JobStore) -> None:
    cancelled, running = _submit(store), _submit(store)
    store.take("w1", 2)
    store.cancel(cancelled)
    assert store.pop_stop_signals("w1") == [cancelled]  # delivered, but the worker may have dropped it
    store.ping("w1", [cancelled, running])
    assert store.pop_stop_signals("w1") == [cancelled]
    store.ping("w1", [running])
    assert store.pop_stop_signals("w1") == []
    assert [w.reported_jobs for w in store.workers()] == [[running]]
