"""Fixtures for the dispatch tests: moto in server mode (real HTTP, real boto3 clients), the RunPod emulator, an HTTP
front for the webhook Lambda (so the emulator's webhooks really arrive), and a tiny in-test RunPod worker."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from aiohttp import web
from botocore.config import Config

from handlers.common import Backoff
from handlers.contract import ProgressEvent, ProgressWebhookPayload, sign_webhook
from handlers.dispatch._dynamo_store import DynamoJobStore
from handlers.dispatch._jobs import JobService, Limits
from handlers.dispatch._notify import MemoryNotifier
from handlers.dispatch._provision import Provisioned, provision
from handlers.dispatch._resources import ResourceNames
from handlers.dispatch._retry import RetryPolicy
from handlers.dispatch._runpod import RunPodClient
from handlers.dispatch._validation import InputValidator
from handlers.dispatch._webhook_handler import WebhookHandler
from handlers.local._serving import ServerThread
from tests.conftest import REPO
from tests.local.runpod.conftest import FAST_CONFIG, Emulator, serve_emulator, wait_for

__all__ = ["FAST_CONFIG", "Emulator", "wait_for"]

REGION = "us-east-1"
WEBHOOK_TOKEN = "webhook-token-0123456789"
PROGRESS_SECRET = "progress-secret-0123456789"
API_TOKEN = "api-token-0123456789abcdef"
_names = itertools.count()


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32),
    )


@dataclass
class AwsStack:
    endpoint: str
    names: ResourceNames
    provisioned: Provisioned
    dynamodb: Any
    sqs: Any
    s3: Any

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "RELAY_JOBS_TABLE": self.names.table,
            "RELAY_S3_BUCKET": self.names.bucket,
        }


@pytest.fixture
def aws(moto_endpoint: str) -> AwsStack:
    """A fresh table, queue + DLQ and bucket on the shared moto server, created by ``provision`` (aws init)."""
    n = next(_names)
    names = ResourceNames(table=f"jobs-{n}", queue=f"jobs-{n}", dead_letter_queue=f"jobs-{n}-dlq", bucket=f"bucket-{n}")
    dynamodb, sqs, s3 = (aws_client(s, moto_endpoint) for s in ("dynamodb", "sqs", "s3"))
    done = provision(dynamodb=dynamodb, sqs=sqs, s3=s3, names=names)
    return AwsStack(moto_endpoint, names, done, dynamodb, sqs, s3)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with serve_emulator(FAST_CONFIG) as served:
        yield served


def http_event(
    method: str, path: str, query: str = "", headers: dict[str, str] | None = None, body: bytes = b""
) -> dict[str, Any]:
    """A Function URL (payload 2.0) event, as AWS builds it."""
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "body": body.decode(),
        "isBase64Encoded": False,
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "127.0.0.1"}},
    }


class WebhookFront:
    """Serves a ``WebhookHandler`` over HTTP the way a Lambda Function URL does (request → event → response)."""

    def __init__(self) -> None:
        self.handler: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.calls: list[tuple[str, int]] = []
        self._server = ServerThread(self._app)

    async def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            event = http_event(request.method, request.path, request.query_string, dict(request.headers), body)
            assert self.handler is not None
            # The handler blocks (boto3, httpx): run it off the loop, as Lambda would in its own process.
            import asyncio

            answer = await asyncio.to_thread(self.handler, event)
            self.calls.append((request.path, answer["statusCode"]))
            return web.Response(status=answer["statusCode"], body=answer["body"], content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> WebhookFront:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


@pytest.fixture
def webhook_front() -> Iterator[WebhookFront]:
    with WebhookFront() as front:
        yield front


@dataclass
class Relay:
    """The dispatch side wired to moto and the emulator, as ``_runtime.build_runtime`` wires it in a Lambda."""

    service: JobService
    webhook: WebhookHandler
    store: DynamoJobStore
    runpod: RunPodClient
    notifier: MemoryNotifier
    aws: AwsStack
    emulator: Emulator
    front: WebhookFront

    def runpod_jobs(self) -> list[dict[str, Any]]:
        """Every job the emulator holds: its status body plus the ``input`` it was submitted with."""
        platform = self.emulator.platform

        async def read() -> list[dict[str, Any]]:
            return [{**job.status_body(), "input": job.input} for job in platform.store.jobs()]

        return self.emulator.server.call(read())


def make_service(
    aws: AwsStack, emulator: Emulator, front: WebhookFront, limits: Limits, store: Any = None
) -> tuple[JobService, DynamoJobStore, RunPodClient, MemoryNotifier]:
    import time

    def clock_ms() -> int:
        return int(time.time() * 1000)

    dynamo = DynamoJobStore(
        aws.names.table, dynamodb=aws.dynamodb, s3=aws.s3, bucket=aws.names.bucket, clock_ms=clock_ms
    )
    runpod = RunPodClient(
        emulator.api_base,
        FAST_CONFIG.api_key,
        timeout_s=5.0,
        retry=RetryPolicy(attempts=3, backoff=Backoff(base_s=0.01, cap_s=0.05, min_s=0.0), max_retry_after_s=0.1),
    )
    notifier = MemoryNotifier()
    service = JobService(
        store if store is not None else dynamo,
        runpod,
        endpoint_id=FAST_CONFIG.endpoint_id,
        webhook_url=f"{front.url}/webhooks/runpod?token={WEBHOOK_TOKEN}",
        notifier=notifier,
        validator=InputValidator(workflows=REPO / "workflows"),
        limits=limits,
        clock_ms=clock_ms,
    )
    return service, dynamo, runpod, notifier


FAST_LIMITS = Limits(
    max_attempts=3,
    max_receives=3,
    stale_after_ms=0,
    submit_after_ms=0,
    claim_timeout_ms=60_000,
    resubmit_backoff=Backoff(base_s=0.0, cap_s=0.0, min_s=0.0),
    progress_min_interval_ms=0,
)


@pytest.fixture
def relay(aws: AwsStack, emulator: Emulator, webhook_front: WebhookFront) -> Iterator[Relay]:
    service, store, runpod, notifier = make_service(aws, emulator, webhook_front, FAST_LIMITS)
    webhook = WebhookHandler(
        service, webhook_token=WEBHOOK_TOKEN, progress_secrets=[PROGRESS_SECRET], api_token=API_TOKEN
    )
    webhook_front.handler = webhook
    try:
        yield Relay(service, webhook, store, runpod, notifier, aws, emulator, webhook_front)
    finally:
        runpod.close()


@dataclass
class InTestWorker:
    """A RunPod worker in a thread speaking the emulator's worker protocol (job-take, job-done) over HTTP.

    ``behave(job)`` returns the job-done body; by default the job succeeds with a JobResult-shaped output. Like the
    real worker, a job id that already finished returns the stored result instead of running again.
    """

    emulator: Emulator
    behave: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    worker_id: str = "in-test-worker"
    ran: list[str] = field(default_factory=list)
    """Our job ids, once per actual execution (idempotent replays are not counted)."""
    progress_answers: list[int] = field(default_factory=list)
    _results: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _default(self, job: dict[str, Any]) -> dict[str, Any]:
        job_id = job["input"]["job_id"]
        return {"output": {"job_id": job_id, "outputs": [], "warnings": ["in-test worker"]}}

    def _loop(self) -> None:
        base = f"{self.emulator.url}/v2/{FAST_CONFIG.endpoint_id}"
        headers = {"Authorization": FAST_CONFIG.worker_key}
        with httpx.Client(headers=headers, timeout=10) as http:
            while not self._stop.is_set():
                answer = http.get(f"{base}/job-take/{self.worker_id}", params={"gpu": "TEST", "job_in_progress": "0"})
                if answer.status_code == 204:
                    continue
                job = answer.json()
                job_id = job["input"].get("job_id", job["id"])
                self._report_progress(http, job)
                result = self._results.get(job_id)
                if result is None:
                    result = (self.behave or self._default)(job)
                    self.ran.append(job_id)
                    if "error" not in result:
                        self._results[job_id] = result
                http.post(
                    f"{base}/job-done/{self.worker_id}/{job['id']}", params={"gpu": "TEST"}, content=json.dumps(result)
                )

    def _report_progress(self, http: httpx.Client, job: dict[str, Any]) -> None:
        """What the real worker does with ``input.progress_webhook``: one signed progress event."""
        hook = job["input"].get("progress_webhook")
        if not hook:
            return
        job_id = job["input"]["job_id"]
        event = ProgressEvent(job_id=job_id, percent=50, elapsed_ms=1, node_id="3", node_title="KSampler")
        payload = ProgressWebhookPayload(job_id=job_id, seq=1, sent_at_ms=int(time.time() * 1000), event=event)
        body = payload.model_dump_json().encode()
        headers = {"Content-Type": "application/json", **sign_webhook(hook["secret"], body, int(time.time()))}
        answer = http.post(hook["url"], content=body, headers=headers)
        self.progress_answers.append(answer.status_code)

    def __enter__(self) -> InTestWorker:
        self._thread = threading.Thread(target=self._loop, name="in-test-worker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def sqs_event(*messages: tuple[str, str, int]) -> dict[str, Any]:
    """An SQS event: ``(message id, body, receive count)`` per record."""
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"rh-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(count)},
                "eventSource": "aws:sqs",
            }
            for message_id, body, count in messages
        ]
    }


def job_message(job_id: str | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"input": {"workflow": SOLID_GRAPH}}
    if job_id is not None:
        body["job_id"] = job_id
    body.update(extra)
    return json.dumps(body)


SOLID_GRAPH: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "relay"}},
}
