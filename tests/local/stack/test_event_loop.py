"""The local event sources against a real moto server and a real HTTP listener, with recording fake functions."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any

import boto3
import httpx
import pytest

from handlers.dispatch._events import HttpEvent, SqsEvent
from handlers.local._serving import ServerThread
from handlers.local.stack._event_loop import HEALTH_PATH, EventSources, LambdaFunctions

_queue_numbers = itertools.count()


class Recorder:
    """Fake Lambda functions: record each event; ``on_queue`` fails the bodies listed in ``fail_bodies``."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {"on_queue": [], "on_webhook": [], "reconcile": []}
        self.fail_bodies: set[str] = set()
        self.raise_on_queue = False
        self.called = threading.Event()
        self.queued = threading.Event()

    def on_queue(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events["on_queue"].append(event)
        self.queued.set()
        assert context.get_remaining_time_in_millis() > 0
        if self.raise_on_queue:
            raise RuntimeError("boom")
        failed = [r["messageId"] for r in event["Records"] if r["body"] in self.fail_bodies]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    def on_webhook(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events["on_webhook"].append(event)
        if event["rawPath"] == "/explode":
            raise ValueError("bad")
        return {"statusCode": 202, "headers": {"X-Seen": event["rawPath"]}, "body": json.dumps({"ok": True})}

    def reconcile(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events["reconcile"].append(event)
        self.called.set()
        return {"checked": 0}

    def functions(self) -> LambdaFunctions:
        return LambdaFunctions(on_queue=self.on_queue, on_webhook=self.on_webhook, reconcile=self.reconcile)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def queue_url(sqs: Any) -> str:
    # Visibility 0: a message left on the queue is receivable again at once, so the test can see it stayed.
    answer = sqs.create_queue(QueueName=f"events-{next(_queue_numbers)}", Attributes={"VisibilityTimeout": "0"})
    url: str = answer["QueueUrl"]
    return url


def _remaining_bodies(sqs: Any, url: str) -> list[str]:
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return sorted(m["Body"] for m in received.get("Messages", []))


async def _deliver_all(sources: EventSources, sqs: Any, url: str) -> set[str]:
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sources._queue_arn = arn
    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
    )
    return await sources.deliver(received["Messages"])


async def test_partial_batch_failure_keeps_only_the_failed_messages(sqs: Any, queue_url: str) -> None:
    recorder = Recorder()
    recorder.fail_bodies = {"b"}
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    sources = EventSources(recorder.functions(), sqs=sqs, queue_url=queue_url)

    failed = await _deliver_all(sources, sqs, queue_url)

    assert len(failed) == 1
    assert _remaining_bodies(sqs, queue_url) == ["b"]
    parsed = SqsEvent.model_validate(recorder.events["on_queue"][0])
    assert sorted(r.body for r in parsed.records) == ["a", "b", "c"]
    assert all(r.event_source_arn and r.event_source_arn.startswith("arn:aws:sqs:") for r in parsed.records)


async def test_a_raising_handler_leaves_the_whole_batch(sqs: Any, queue_url: str) -> None:
    recorder = Recorder()
    recorder.raise_on_queue = True
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    sources = EventSources(recorder.functions(), sqs=sqs, queue_url=queue_url)

    failed = await _deliver_all(sources, sqs, queue_url)

    assert len(failed) == 2
    assert _remaining_bodies(sqs, queue_url) == ["a", "b"]
    assert sources.counters.errors == 1


async def test_the_poller_delivers_until_stopped(sqs: Any, queue_url: str) -> None:
    recorder = Recorder()
    sqs.send_message(QueueUrl=queue_url, MessageBody="hello")
    sources = EventSources(recorder.functions(), sqs=sqs, queue_url=queue_url, wait_time_s=1)
    stop = asyncio.Event()
    task = asyncio.create_task(sources.poll_queue(stop))
    delivered = await asyncio.to_thread(recorder.queued.wait, 20)
    stop.set()
    await asyncio.wait_for(task, 10)

    assert delivered
    assert [r["body"] for r in recorder.events["on_queue"][0]["Records"]] == ["hello"]
    assert _remaining_bodies(sqs, queue_url) == []


def test_function_url_requests_reach_on_webhook_and_its_answer_comes_back() -> None:
    recorder = Recorder()
    sources = EventSources(recorder.functions(), sqs=None, queue_url=None)
    with ServerThread(sources.app) as server:
        response = httpx.post(
            server.url + "/webhooks/runpod?token=t0k",
            json={"id": "j1", "status": "COMPLETED"},
            headers={"X-Custom": "v"},
            timeout=10,
        )
        failed = httpx.get(server.url + "/explode", timeout=10)
        health = httpx.get(server.url + HEALTH_PATH, timeout=10)

    assert response.status_code == 202
    assert response.headers["X-Seen"] == "/webhooks/runpod"
    assert response.json() == {"ok": True}
    event = HttpEvent.model_validate(recorder.events["on_webhook"][0])
    assert event.method == "POST"
    assert event.query_string_parameters == {"token": "t0k"}
    assert event.header("x-custom") == "v"
    assert json.loads(event.body_bytes()) == {"id": "j1", "status": "COMPLETED"}
    # A function error is a 502 from the URL, as on AWS; health is answered locally, never by the function.
    assert failed.status_code == 502
    assert health.json()["ok"] is True
    assert [e["rawPath"] for e in recorder.events["on_webhook"]] == ["/webhooks/runpod", "/explode"]


async def test_reconcile_runs_on_its_schedule() -> None:
    recorder = Recorder()
    sources = EventSources(recorder.functions(), sqs=None, queue_url=None, reconcile_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(sources.schedule_reconcile(stop))
    assert await asyncio.to_thread(recorder.called.wait, 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert recorder.events["reconcile"][0]["detail-type"] == "Scheduled Event"


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        EventSources(Recorder().functions(), sqs=None, queue_url=None, batch_size=11)
    with pytest.raises(ValueError, match="reconcile_interval_s"):
        EventSources(Recorder().functions(), sqs=None, queue_url=None, reconcile_interval_s=0)
