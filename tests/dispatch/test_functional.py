"""Dispatch end to end over real HTTP: moto (DynamoDB, SQS, S3), the RunPod emulator (public API, worker protocol,
webhooks), an in-test worker, and the webhook Lambda served like a Function URL."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from handlers.contract import ErrorCode, JobRecord, JobState, ProgressEvent, ProgressWebhookPayload, sign_webhook
from handlers.dispatch._dynamo_store import DynamoJobStore
from handlers.dispatch._jobs import Limits
from handlers.dispatch._queue_handler import handle_queue
from handlers.dispatch._resources import MAX_RECEIVE_COUNT
from tests.dispatch.conftest import (
    API_TOKEN,
    FAST_CONFIG,
    FAST_LIMITS,
    PROGRESS_SECRET,
    WEBHOOK_TOKEN,
    AwsStack,
    InTestWorker,
    Relay,
    job_message,
    make_service,
    sqs_event,
    wait_for,
)


def _wait_state(relay: Relay, job_id: str, *states: JobState, timeout: float = 20.0) -> JobRecord:
    def check() -> JobRecord | None:
        record = relay.store.get(job_id)
        return record if record is not None and record.state in states else None

    return wait_for(check, timeout, f"job {job_id} to reach {states}")


def _runs_of(relay: Relay, job_id: str) -> list[dict[str, Any]]:
    return [j for j in relay.runpod_jobs() if j.get("input", {}).get("job_id") == job_id]


def _fault(relay: Relay, status: int, count: int, routes: list[str]) -> None:
    answer = httpx.post(
        f"{relay.emulator.url}/_emulator/faults", json={"status": status, "count": count, "routes": routes}
    )
    assert answer.status_code == 200


def test_three_concurrent_deliveries_make_one_run_and_the_job_completes(relay: Relay) -> None:
    event = sqs_event(("msg-dup", job_message("job-dup"), 1))
    barrier = threading.Barrier(3)
    answers: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait(timeout=10)
        answers.append(handle_queue(relay.service, event))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [{"batchItemFailures": []}] * 3
    assert len(_runs_of(relay, "job-dup")) == 1
    with InTestWorker(relay.emulator) as worker:
        record = _wait_state(relay, "job-dup", JobState.SUCCEEDED)
    assert worker.ran == ["job-dup"]
    assert record.result is not None and record.result["job_id"] == "job-dup"
    assert record.attempt == 1


def test_batch_of_ten_is_submitted_concurrently_with_partial_failures(relay: Relay) -> None:
    messages = [(f"m-{n}", job_message(f"batch-{n}"), 1) for n in range(9)] + [("m-bad", "{not json", 1)]
    # Exactly enough 503s for every /run attempt of the 9 good messages (3 client attempts each).
    _fault(relay, 503, 27, ["run"])
    answer = handle_queue(relay.service, sqs_event(*messages), concurrency=10)
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {f"m-{n}" for n in range(9)}
    assert relay.store.get("m-bad").state is JobState.REJECTED  # type: ignore[union-attr]
    for n in range(9):
        record = relay.store.get(f"batch-{n}")
        assert record is not None and record.state is JobState.ACCEPTED
        assert record.error is not None and "503" in record.error.message
    # The failed ones come back and go through.
    again = handle_queue(relay.service, sqs_event(*[(m, b, 2) for m, b, _ in messages if m in failed]))
    assert again == {"batchItemFailures": []}
    assert all(relay.store.get(f"batch-{n}").state is JobState.SUBMITTED for n in range(9))  # type: ignore[union-attr]
    assert len([j for j in relay.runpod_jobs() if j["input"]["job_id"].startswith("batch-")]) == 9


class _CrashAfterRun(Exception):
    pass


class _CrashingStore:
    """Dies like a Lambda killed between RunPod's /run answer and the SUBMITTED write."""

    def __init__(self, inner: DynamoJobStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def update(self, record: JobRecord, expected: JobRecord) -> JobRecord:
        if record.state is JobState.SUBMITTED:
            raise _CrashAfterRun
        return self.inner.update(record, expected)


def test_crash_between_run_and_record_is_reconciled_and_completes_once(
    relay: Relay, aws: AwsStack, webhook_front: Any
) -> None:
    crashing, _, client, _ = make_service(aws, relay.emulator, webhook_front, FAST_LIMITS, store=None)
    crashing.store = _CrashingStore(relay.store)
    with pytest.raises(_CrashAfterRun):
        crashing.handle_message("msg-crash", job_message("job-crash"))
    client.close()
    record = relay.store.get("job-crash")
    assert record is not None and record.state is JobState.ACCEPTED and record.runpod_id is None
    # The reconciler cannot know the orphan: it submits again (the worker's idempotency makes that harmless).
    report = relay.service.reconcile()
    assert report.submitted == 1
    assert len(_runs_of(relay, "job-crash")) == 2
    with InTestWorker(relay.emulator) as worker:
        record = _wait_state(relay, "job-crash", JobState.SUCCEEDED)
        wait_for(lambda: all(j["status"] == "COMPLETED" for j in _runs_of(relay, "job-crash")), 20, "both runs")
        wait_for(lambda: len([c for c in webhook_front.calls if c[0] == "/webhooks/runpod"]) >= 2, 20, "webhooks")
    assert worker.ran == ["job-crash"]  # executed once; the second run returned the stored result
    final = relay.store.get("job-crash")
    assert final is not None and final.state is JobState.SUCCEEDED and final.version == record.version


def test_rate_limit_storm_ends_in_the_dlq_with_the_record_explaining(relay: Relay, aws: AwsStack) -> None:
    limits = Limits(**{**FAST_LIMITS.__dict__, "max_receives": MAX_RECEIVE_COUNT})
    relay.service.limits = limits
    _fault(relay, 429, 10_000, ["run"])
    queue, dlq = aws.provisioned.queue_url, aws.provisioned.dead_letter_queue_url
    aws.sqs.send_message(QueueUrl=queue, MessageBody=job_message("job-storm"))
    receives = 0
    for _ in range(MAX_RECEIVE_COUNT + 2):
        batch = aws.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        receives += len(batch)
        event = sqs_event(
            *[(m["MessageId"], m["Body"], int(m["Attributes"]["ApproximateReceiveCount"])) for m in batch]
        )
        failed = {f["itemIdentifier"] for f in handle_queue(relay.service, event)["batchItemFailures"]}
        for message in batch:
            if message["MessageId"] in failed:
                # What the visibility timeout does in production, without waiting for it.
                aws.sqs.change_message_visibility(
                    QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                aws.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert receives == MAX_RECEIVE_COUNT
    dead = aws.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert [json.loads(m["Body"])["job_id"] for m in dead] == ["job-storm"]
    record = relay.store.get("job-storm")
    assert record is not None and record.state is JobState.FAILED
    assert record.error is not None and record.error.code is ErrorCode.SUBMIT_FAILED
    assert "dead-letter queue" in record.error.message and "429" in record.error.message
    assert _runs_of(relay, "job-storm") == []


def test_forged_replayed_and_out_of_order_webhooks_never_regress(relay: Relay) -> None:
    handle_queue(relay.service, sqs_event(("msg-wh", job_message("job-wh"), 1)))
    runpod_id = relay.store.get("job-wh").runpod_id  # type: ignore[union-attr]
    front = relay.front.url
    # Forged: wrong token, missing token.
    for query in ("?token=wrong-token-0000000000", ""):
        answer = httpx.post(f"{front}/webhooks/runpod{query}", json={"id": runpod_id, "status": "COMPLETED"})
        assert answer.status_code == 401
    # Progress: forged signature, stale timestamp (replay), then a good one.
    payload = ProgressWebhookPayload(
        job_id="job-wh", seq=5, sent_at_ms=1, event=ProgressEvent(job_id="job-wh", percent=50, elapsed_ms=1)
    )
    body = payload.model_dump_json().encode()
    now = int(time.time())
    forged = sign_webhook("another-secret-0123456789", body, now)
    stale = sign_webhook(PROGRESS_SECRET, body, now - 3600)
    for headers in (forged, stale, {}):
        assert httpx.post(f"{front}/webhooks/progress", content=body, headers=headers).status_code == 401
    good = sign_webhook(PROGRESS_SECRET, body, now)
    assert httpx.post(f"{front}/webhooks/progress", content=body, headers=good).status_code == 200
    record = relay.store.get("job-wh")
    assert record is not None and record.state is JobState.RUNNING and record.progress is not None
    assert record.progress.percent == 50
    # An older event, even correctly signed, is ignored.
    older = payload.model_copy(update={"seq": 4, "event": ProgressEvent(job_id="job-wh", percent=10, elapsed_ms=1)})
    older_body = older.model_dump_json().encode()
    httpx.post(f"{front}/webhooks/progress", content=older_body, headers=sign_webhook(PROGRESS_SECRET, older_body, now))
    assert relay.store.get("job-wh").progress.percent == 50  # type: ignore[union-attr]
    # A webhook claiming completion while RunPod says the job is queued changes nothing.
    answer = httpx.post(f"{front}/webhooks/runpod?token={WEBHOOK_TOKEN}", json={"id": runpod_id, "status": "COMPLETED"})
    assert answer.status_code == 200
    assert relay.store.get("job-wh").state is JobState.RUNNING  # type: ignore[union-attr]
    with InTestWorker(relay.emulator):
        done = _wait_state(relay, "job-wh", JobState.SUCCEEDED)
    # Replays after the end: a FAILED claim, a progress event, a duplicate webhook.
    httpx.post(f"{front}/webhooks/runpod?token={WEBHOOK_TOKEN}", json={"id": runpod_id, "status": "FAILED"})
    late = payload.model_copy(update={"seq": 99}).model_dump_json().encode()
    httpx.post(f"{front}/webhooks/progress", content=late, headers=sign_webhook(PROGRESS_SECRET, late, now))
    after = relay.store.get("job-wh")
    assert after == done


def test_lost_job_is_resubmitted_and_completes(relay: Relay) -> None:
    handle_queue(relay.service, sqs_event(("msg-lost", job_message("job-lost"), 1)))
    first = relay.store.get("job-lost")
    assert first is not None and first.runpod_id is not None
    assert httpx.post(f"{relay.emulator.url}/_emulator/jobs/{first.runpod_id}/forget").status_code == 200
    report = relay.service.reconcile()
    assert report.resubmitted == 1
    second = relay.store.get("job-lost")
    assert second is not None and second.attempt == 2 and second.runpod_id != first.runpod_id
    with InTestWorker(relay.emulator) as worker:
        _wait_state(relay, "job-lost", JobState.SUCCEEDED)
    assert worker.ran == ["job-lost"]


def test_retryable_worker_failure_is_retried_in_place(relay: Relay) -> None:
    calls: list[str] = []

    def flaky(job: dict[str, Any]) -> dict[str, Any]:
        calls.append(job["id"])
        if len(calls) == 1:
            return {"error": "comfyui_crashed: ComfyUI died"}
        return {"output": {"job_id": job["input"]["job_id"], "outputs": []}}

    handle_queue(relay.service, sqs_event(("msg-flaky", job_message("job-flaky"), 1)))
    with InTestWorker(relay.emulator, behave=flaky):
        failed = wait_for(
            lambda: r if (r := relay.store.get("job-flaky")) is not None and r.error is not None else None,
            20,
            "failure",
        )
        assert failed.state is JobState.SUBMITTED and failed.error is not None and failed.error.retryable
        assert relay.service.reconcile().resubmitted == 1
        record = _wait_state(relay, "job-flaky", JobState.SUCCEEDED)
    assert calls[0] == calls[1]  # /retry: same RunPod job
    assert record.attempt == 2


def test_get_job_requires_the_api_token_and_shows_no_secrets(relay: Relay) -> None:
    notify = {"webhook_url": "https://caller.example/hook", "webhook_secret": "caller-secret-0123456789"}
    handle_queue(relay.service, sqs_event(("msg-get", job_message("job-get", notify=notify), 1)))
    url = f"{relay.front.url}/jobs/job-get"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong-token-000000000000"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {API_TOKEN}"}).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert answer.status_code == 200
    assert answer.json()["state"] == "SUBMITTED"
    for secret in ("caller-secret", WEBHOOK_TOKEN, FAST_CONFIG.api_key):
        assert secret not in answer.text
    assert (
        httpx.get(f"{relay.front.url}/jobs/nope", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 404
    )
    assert httpx.post(url, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 405


def test_expired_records_read_as_gone(relay: Relay, aws: AwsStack) -> None:
    handle_queue(relay.service, sqs_event(("msg-ttl", job_message("job-ttl"), 1)))
    record = relay.store.get("job-ttl")
    assert record is not None
    later = DynamoJobStore(
        aws.names.table,
        dynamodb=aws.dynamodb,
        s3=aws.s3,
        bucket=aws.names.bucket,
        clock_ms=lambda: (record.expires_at + 1) * 1000,
    )
    assert later.get("job-ttl") is None
    assert later.stale_open_jobs(JobState.SUBMITTED, (record.expires_at + 1) * 1000, 10) == []


def test_result_event_on_the_callers_queue(relay: Relay, aws: AwsStack) -> None:
    from handlers.dispatch._notify import HttpNotifier, NotifyPolicy

    caller_queue = aws.sqs.create_queue(QueueName=f"{aws.names.queue}-caller")["QueueUrl"]
    policy = NotifyPolicy(queues=frozenset({caller_queue}))
    relay.service.notifier = HttpNotifier(sqs=aws.sqs, policy=policy)
    relay.service.notify_policy = policy
    handle_queue(relay.service, sqs_event(("msg-n", job_message("job-n", notify={"sqs_queue_url": caller_queue}), 1)))
    with InTestWorker(relay.emulator):
        _wait_state(relay, "job-n", JobState.SUCCEEDED)
    messages = aws.sqs.receive_message(QueueUrl=caller_queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert event["type"] == "job.finished" and event["job_id"] == "job-n" and event["state"] == "SUCCEEDED"


def test_runpod_ttl_expiry_counts_as_lost_and_is_resubmitted(relay: Relay) -> None:
    handle_queue(relay.service, sqs_event(("msg-ttl2", job_message("job-ttl2"), 1)))
    first = relay.store.get("job-ttl2")
    assert first is not None and first.runpod_id is not None
    # RunPod's own TTL (here shortened through the public ?ttl= of /status) removes a job nobody picked up.
    assert relay.emulator.client.get(f"/status/{first.runpod_id}", params={"ttl": 100}).status_code == 200
    wait_for(
        lambda: relay.emulator.client.get(f"/status/{first.runpod_id}").status_code == 404, 10, "the TTL to expire"
    )
    assert relay.service.reconcile().resubmitted == 1
    second = relay.store.get("job-ttl2")
    assert second is not None and second.attempt == 2 and second.runpod_id != first.runpod_id
