"""The events AWS hands to Lambda functions, built from what the local stack sees: an SQS batch from
``ReceiveMessage``, a Function URL request (payload format 2.0) from an HTTP request, an EventBridge scheduled event;
and the two answers AWS interprets: ``batchItemFailures`` and the Function URL response. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "HEALTH_PATH",
    "HttpAnswer",
    "LambdaContext",
    "failed_message_ids",
    "function_url_event",
    "http_answer",
    "scheduled_event",
    "sqs_event",
]

_ACCOUNT = "123456789012"  # moto's default account
#: Answered by the local listener itself, never passed to the function: how the stack checks the listener is up.
HEALTH_PATH = "/_local/health"


@dataclass
class LambdaContext:
    """What a handler's ``context`` offers (the attributes of AWS's Python runtime context)."""

    function_name: str
    timeout_s: float = 60.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{_ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


def _message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # ReceiveMessage says StringValue/BinaryValue/DataType; the event says stringValue/binaryValue/dataType.
    converted: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            entry["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        converted[name] = entry
    return converted


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The event the SQS event source mapping sends for messages from ``ReceiveMessage`` (with
    ``MessageSystemAttributeNames=["All"]`` and ``MessageAttributeNames=["All"]``)."""
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes") or {})
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_message_ids(response: object, batch: Sequence[str]) -> set[str]:
    """The messages of ``batch`` to leave on the queue, as the event source mapping reads a handler's answer with
    ``ReportBatchItemFailures``: listed ids fail; an answer it cannot read (or an id not in the batch, or an empty
    one) fails the whole batch; ``None`` or an empty list means every message succeeded."""
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return set(batch)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in batch:
            return set(batch)
        failed.add(identifier)
    return failed


def function_url_event(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    domain: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A Lambda Function URL request (payload format 2.0): headers lower-cased, repeated query values joined with
    commas, a body that is not UTF-8 text base64-encoded, cookies split out."""
    now = now or datetime.now(UTC)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    cookies = [c.strip() for c in lowered.pop("cookie", "").split(";") if c.strip()]
    parameters: dict[str, str] = {}
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        key, value = unquote_plus(key), unquote_plus(value)
        parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        content_type = lowered.get("content-type", "")
        try:
            text = body.decode() if _is_text(content_type) else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            text, encoded = base64.b64encode(body).decode(), True
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": domain.split(".", maxsplit=1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", maxsplit=1)[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if parameters:
        event["queryStringParameters"] = parameters
    if text is not None:
        event["body"] = text
    return event


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    return (
        kind == ""
        or kind.startswith("text/")
        or kind in ("application/json", "application/x-www-form-urlencoded", "application/xml")
        or kind.endswith("+json")
    )


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: tuple[str, ...] = ()


def http_answer(result: object) -> HttpAnswer:
    """How a Function URL turns a handler's return value into a response: a dict with ``statusCode`` is used as
    given; any other value is sent as a JSON body with status 200."""
    if isinstance(result, Mapping) and "statusCode" in result:
        raw_headers = result.get("headers") or {}
        headers = {str(k): str(v) for k, v in raw_headers.items()}
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(body))
        else:
            data = str(body).encode()
        cookies = tuple(str(c) for c in result.get("cookies") or ())
        return HttpAnswer(int(result["statusCode"]), headers, data, cookies)
    return HttpAnswer(200, {"Content-Type": "application/json"}, json.dumps(result).encode())


def scheduled_event(rule: str, region: str = "us-east-1", now: datetime | None = None) -> dict[str, Any]:
    """The EventBridge event a schedule rule sends."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": _ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{_ACCOUNT}:rule/{rule}"],
        "detail": {},
    }
