"""Pure pieces without a network: retry policy, the RunPod client's error translation (httpx MockTransport), the AWS
error translation, event envelopes, the notifier's signing, JSON logs."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from handlers.common import TRANSIENT_CODES, Backoff, JsonFormatter
from handlers.contract import JobRecord, JobState, Notify, RunPodStatus, verify_webhook
from handlers.dispatch._aws_errors import translate
from handlers.dispatch._errors import (
    DispatchError,
    InvalidJobError,
    Outcome,
    RunPodAuthError,
    RunPodJobNotFound,
    RunPodRateLimited,
    RunPodRequestError,
    RunPodUnavailable,
    StoreUnavailable,
    TransientError,
    UsageError,
)
from handlers.dispatch._events import HttpEvent, SqsEvent
from handlers.dispatch._notify import HttpNotifier, NotifyPolicy
from handlers.dispatch._retry import RetryPolicy, delays, is_retryable_status, parse_retry_after, resubmit_delay_ms
from handlers.dispatch._runpod import RunPodClient
from handlers.outbound import OutboundGuard


def test_retry_policy_yields_one_wait_between_attempts() -> None:
    rng = random.Random(7)
    backoff = Backoff(base_s=1.0, cap_s=5.0, min_s=0.1)
    assert len(list(delays(RetryPolicy(attempts=4, backoff=backoff), rng))) == 3
    assert resubmit_delay_ms(3, Backoff(base_s=30, cap_s=600, min_s=0)) == 120_000
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False), (401, False)]
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_retry_after_forms() -> None:
    assert parse_retry_after("3", 0) == 3.0
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 4.0) == 6.0


def test_exception_tree_has_three_branches() -> None:
    assert issubclass(RunPodRateLimited, RunPodUnavailable) and issubclass(RunPodUnavailable, TransientError)
    assert issubclass(StoreUnavailable, TransientError)
    assert issubclass(RunPodAuthError, UsageError) and issubclass(RunPodRequestError, UsageError)
    assert issubclass(RunPodJobNotFound, Outcome)
    for branch in (TransientError, UsageError, Outcome, InvalidJobError):
        assert issubclass(branch, DispatchError)
    assert not issubclass(UsageError, TransientError)


def _client(handler: Any, sleeps: list[float], attempts: int = 3) -> RunPodClient:
    return RunPodClient(
        "https://api.runpod.test/v2",
        "rpa_KEY",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=attempts, backoff=Backoff(base_s=0.5, cap_s=1.0, min_s=0.01), max_retry_after_s=7.0),
        sleep=sleeps.append,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RunPodRateLimited),
        (500, RunPodUnavailable),
        (502, RunPodUnavailable),
        (401, RunPodAuthError),
        (403, RunPodAuthError),
        (404, RunPodJobNotFound),
        (400, RunPodRequestError),
        (413, RunPodRequestError),
    ],
)
def test_every_status_maps_to_one_error(status: int, error: type[DispatchError]) -> None:
    sleeps: list[float] = []
    client = _client(lambda request: httpx.Response(status, json={"error": "x"}), sleeps)
    with pytest.raises(error):
        client.status("ep", "rp-1")
    retried = issubclass(error, RunPodUnavailable)
    assert len(sleeps) == (2 if retried else 0)
    client.close()


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")]
)
def test_network_failures_are_transient_and_retried(failure: Exception) -> None:
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    client = _client(handler, sleeps)
    with pytest.raises(RunPodUnavailable) as caught:
        client.run("ep", {"input": {}})
    assert caught.value.__cause__ is failure
    assert len(sleeps) == 2
    client.close()


def test_retry_after_is_honoured_within_its_bound_and_success_returns_typed() -> None:
    sleeps: list[float] = []
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "5"}),
            httpx.Response(429, headers={"Retry-After": "60"}),
            httpx.Response(200, json={"id": "rp-1", "status": "COMPLETED", "output": {"a": 1}, "delayTime": 3}),
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    client = _client(handler, sleeps)
    status = client.status("ep", "rp-1")
    assert status.status is RunPodStatus.COMPLETED and status.output == {"a": 1} and status.delay_time_ms == 3
    assert sleeps == [5.0, 7.0]
    assert seen[0].headers["authorization"] == "Bearer rpa_KEY"
    assert str(seen[0].url) == "https://api.runpod.test/v2/ep/status/rp-1"
    client.close()


def test_run_body_and_unexpected_answers() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"nope": True})

    client = _client(handler, [])
    with pytest.raises(RunPodUnavailable, match="unexpected answer"):
        client.run("ep", {"input": {"job_id": "j"}, "webhook": "https://w"})
    assert bodies == [{"input": {"job_id": "j"}, "webhook": "https://w"}]
    client.close()


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")  # type: ignore[typeddict-item]


def test_aws_error_translation() -> None:
    for code in TRANSIENT_CODES:
        assert isinstance(translate(_client_error(code), "x"), StoreUnavailable), code
    assert isinstance(translate(_client_error("Whatever", 503), "x"), StoreUnavailable)
    assert isinstance(translate(_client_error("ResourceNotFoundException"), "x"), UsageError)
    assert isinstance(translate(_client_error("AccessDeniedException", 403), "x"), UsageError)
    assert isinstance(translate(EndpointConnectionError(endpoint_url="http://x"), "x"), StoreUnavailable)
    assert isinstance(translate(ReadTimeoutError(endpoint_url="http://x"), "x"), StoreUnavailable)


def test_event_envelopes() -> None:
    batch = SqsEvent.model_validate(
        {
            "Records": [
                {"messageId": "m", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"}, "awsRegion": "x"}
            ]
        }
    )
    assert batch.records[0].attributes.approximate_receive_count == 3
    request = HttpEvent.model_validate(
        {
            "rawPath": "/jobs/a",
            "rawQueryString": "token=t",
            "headers": {"authorization": "Bearer x"},
            "body": "eyJhIjoxfQ==",
            "isBase64Encoded": True,
            "requestContext": {"http": {"method": "get", "path": "/jobs/a"}},
        }
    )
    assert request.method == "GET" and request.header("Authorization") == "Bearer x"
    assert request.body_bytes() == b'{"a":1}'


def test_caller_webhook_is_signed_and_retried() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(503 if len(posts) == 1 else 204)

    sleeps: list[float] = []
    notifier = HttpNotifier(
        sqs=None,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(attempts=3, backoff=Backoff(base_s=0.1, cap_s=0.1, min_s=0.0)),
        sleep=sleeps.append,
        clock_ms=lambda: 1_700_000_000_000,
        policy=NotifyPolicy(guard=OutboundGuard(resolver=lambda host, port: [ipaddress.ip_address("203.0.114.7")])),
    )
    record = JobRecord(
        job_id="j", state=JobState.SUCCEEDED, input_digest="d", created_at_ms=1, updated_at_ms=2, expires_at=3
    )
    secret = "caller-secret-0123456789"
    notifier.notify(record, Notify(webhook_url="https://caller.test/hook", webhook_secret=secret))
    assert len(posts) == 2 and len(sleeps) == 1
    last = posts[-1]
    verify_webhook(secret, dict(last.headers), last.content, now=1_700_000_000)
    body = json.loads(last.content)
    assert body["type"] == "job.finished" and body["state"] == "SUCCEEDED" and body["record"]["job_id"] == "j"


def test_json_log_lines_carry_the_job_id() -> None:
    record = logging.LogRecord("comfy_relay.dispatch", logging.INFO, __file__, 1, "job accepted", None, None)
    record.job_id = "job-1"
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "job-1" and line["message"] == "job accepted" and line["level"] == "INFO"
