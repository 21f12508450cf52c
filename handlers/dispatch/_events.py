"""The Lambda events dispatch receives, as pydantic envelopes in the shapes AWS sends: an SQS batch, and a Lambda
Function URL / API Gateway v2 HTTP request; plus the HTTP response shape."""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HttpEvent", "SqsEvent", "SqsRecord", "http_response"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class SqsAttributes(_Open):
    approximate_receive_count: int = Field(default=1, alias="ApproximateReceiveCount", ge=1)


class SqsRecord(_Open):
    message_id: str = Field(alias="messageId", min_length=1)
    receipt_handle: str = Field(default="", alias="receiptHandle")
    body: str
    attributes: SqsAttributes = Field(default_factory=SqsAttributes)
    event_source_arn: str | None = Field(default=None, alias="eventSourceARN")


class SqsEvent(_Open):
    records: list[SqsRecord] = Field(alias="Records")


class _Http(_Open):
    method: str = "GET"
    path: str = "/"
    source_ip: str | None = Field(default=None, alias="sourceIp")


class _RequestContext(_Open):
    http: _Http = Field(default_factory=_Http)


class HttpEvent(_Open):
    """Payload format 2.0 (Function URLs and HTTP APIs): headers arrive lower-cased."""

    version: str = "2.0"
    raw_path: str = Field(default="/", alias="rawPath")
    raw_query_string: str = Field(default="", alias="rawQueryString")
    headers: dict[str, str] = Field(default_factory=dict)
    query_string_parameters: dict[str, str] = Field(default_factory=dict, alias="queryStringParameters")
    body: str | None = None
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")
    request_context: _RequestContext = Field(default_factory=_RequestContext, alias="requestContext")

    @property
    def method(self) -> str:
        return self.request_context.http.method.upper()

    @property
    def path(self) -> str:
        return self.raw_path or self.request_context.http.path

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        return base64.b64decode(self.body) if self.is_base64_encoded else self.body.encode()


def http_response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": json.dumps(body, separators=(",", ":"), default=str),
    }
