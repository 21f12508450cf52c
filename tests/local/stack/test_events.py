"""The Lambda event shapes the local event sources build, and how they read the handlers' answers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from handlers.dispatch._events import HttpEvent, SqsEvent
from handlers.local.stack._events import (
    LambdaContext,
    failed_message_ids,
    function_url_event,
    http_answer,
    scheduled_event,
    sqs_event,
)

ARN = "arn:aws:sqs:us-east-1:123456789012:jobs"


def _message(n: int, **extra: object) -> dict[str, object]:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"rh{n}",
        "Body": f'{{"n": {n}}}',
        "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        **extra,
    }


def test_sqs_event_has_the_record_fields_lambda_sends() -> None:
    message = _message(1, MessageAttributes={"kind": {"DataType": "String", "StringValue": "job"}})
    event = sqs_event([message, _message(2)], ARN, "eu-west-1")

    record = event["Records"][0]
    assert record["messageId"] == "m1"
    assert record["receiptHandle"] == "rh1"
    assert record["body"] == '{"n": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == ARN
    assert record["awsRegion"] == "eu-west-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "job",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    # The dispatch side's own envelope reads it.
    parsed = SqsEvent.model_validate(event)
    assert [r.message_id for r in parsed.records] == ["m1", "m2"]
    assert parsed.records[0].attributes.approximate_receive_count == 2


def test_binary_message_attributes_are_base64_in_the_event() -> None:
    message = _message(1, MessageAttributes={"blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    entry = sqs_event([message], ARN)["Records"][0]["messageAttributes"]["blob"]
    assert entry["binaryValue"] == base64.b64encode(b"\x00\x01").decode()


def test_batch_item_failures_are_read_as_the_event_source_mapping_does() -> None:
    batch = ["a", "b", "c"]
    assert failed_message_ids(None, batch) == set()
    assert failed_message_ids({}, batch) == set()
    assert failed_message_ids({"batchItemFailures": []}, batch) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, batch) == {"b"}
    # Anything the mapping cannot make sense of fails the whole batch.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, batch) == set(batch)
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) == set(batch)
    assert failed_message_ids({"batchItemFailures": [{}]}, batch) == set(batch)
    assert failed_message_ids({"batchItemFailures": "b"}, batch) == set(batch)
    assert failed_message_ids("ok", batch) == set(batch)


def test_function_url_event_is_payload_format_2() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = function_url_event(
        method="post",
        path="/webhooks/runpod",
        query="token=abc%20d&x=1&x=2",
        headers={"Content-Type": "application/json", "X-Relay-Signature": "v1=ff", "Cookie": "a=1; b=2"},
        body=b'{"id": "j"}',
        source_ip="127.0.0.1",
        domain="127.0.0.1:9000",
        now=now,
    )
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/webhooks/runpod"
    assert event["rawQueryString"] == "token=abc%20d&x=1&x=2"
    assert event["queryStringParameters"] == {"token": "abc d", "x": "1,2"}
    assert event["headers"]["x-relay-signature"] == "v1=ff"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["body"] == '{"id": "j"}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["timeEpoch"] == int(now.timestamp() * 1000)
    parsed = HttpEvent.model_validate(event)
    assert parsed.method == "POST"
    assert parsed.header("X-RELAY-SIGNATURE") == "v1=ff"
    assert parsed.body_bytes() == b'{"id": "j"}'


def test_binary_bodies_are_base64_and_empty_ones_absent() -> None:
    def event(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        return function_url_event(
            method="POST", path="/", query="", headers=headers, body=body, source_ip="::1", domain="localhost"
        )

    binary = event({"content-type": "image/png"}, b"\x89PNG\xff")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x89PNG\xff"
    assert HttpEvent.model_validate(binary).body_bytes() == b"\x89PNG\xff"
    empty = event({}, b"")
    assert "body" not in empty
    assert "queryStringParameters" not in empty


def test_http_answers() -> None:
    answer = http_answer({"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi", "cookies": ["c=1"]})
    assert (answer.status, answer.headers, answer.body, answer.cookies) == (201, {"X-A": "1"}, b"hi", ("c=1",))
    encoded = http_answer({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True})
    assert encoded.body == b"\x00"
    assert http_answer({"statusCode": 204}).body == b""
    # A plain value becomes a 200 JSON response, as Function URLs do.
    plain = http_answer({"ok": True})
    assert (plain.status, plain.body) == (200, b'{"ok": true}')


def test_scheduled_event_and_context() -> None:
    event = scheduled_event("rule-1", "us-west-2")
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-west-2:123456789012:rule/rule-1"]
    context = LambdaContext("on_queue", timeout_s=30)
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert context.invoked_function_arn.endswith(":function:on_queue")
    assert context.aws_request_id != LambdaContext("on_queue").aws_request_id
