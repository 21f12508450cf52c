"""One reading of an AWS error answer (botocore's ``ClientError.response``): may a later try succeed, is the thing
missing, is access refused, or is the request wrong. Each half maps the kind onto its own errors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["TRANSIENT_CODES", "AwsErrorKind", "aws_error_code", "classify_aws_error"]

#: AWS error codes a later attempt may not meet (throttling, server trouble, transaction races).
TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "SlowDown",
        "RequestTimeout",
        "503",
        "500",
    }
)
_NOT_FOUND: Final = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404", "ResourceNotFoundException"})
_ACCESS: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "Forbidden",
        "403",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "UnrecognizedClientException",
        "AllAccessDisabled",
    }
)


class AwsErrorKind(enum.Enum):
    TRANSIENT = "transient"
    """Throttled, a server error or a race: a later try may succeed."""
    NOT_FOUND = "not_found"
    ACCESS_DENIED = "access_denied"
    INVALID = "invalid"
    """Any other 4xx: the same request will fail again."""

    @property
    def retryable(self) -> bool:
        return self is AwsErrorKind.TRANSIENT


def aws_error_code(response: Mapping[str, Any]) -> str:
    return str(response.get("Error", {}).get("Code", ""))


def classify_aws_error(response: Mapping[str, Any]) -> AwsErrorKind:
    """``response`` is ``ClientError.response``; the code decides, then the HTTP status."""
    code = aws_error_code(response)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return AwsErrorKind.TRANSIENT
    if code in _NOT_FOUND or status == 404:
        return AwsErrorKind.NOT_FOUND
    if code in _ACCESS or status == 403:
        return AwsErrorKind.ACCESS_DENIED
    return AwsErrorKind.INVALID
