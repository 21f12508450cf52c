"""The one place botocore's exceptions become dispatch errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError, NoRegionError

from handlers.dispatch._errors import DispatchError, StoreUnavailable, UsageError

__all__ = ["TRANSIENT_CODES", "aws_errors", "error_code", "translate"]

#: AWS error codes a later attempt may not meet (throttling, server trouble, transaction races).
TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "503",
        "500",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: BotoCoreError | ClientError, what: str) -> DispatchError:
    """``what`` says which call failed (never a secret)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500:
            return StoreUnavailable(f"{what}: {code or status} (transient)")
        return UsageError(f"{what}: {code}: {exc.response.get('Error', {}).get('Message', '')}")
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StoreUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, NoRegionError):
        return UsageError(f"{what}: no AWS region is configured: set AWS_REGION or AWS_DEFAULT_REGION (or a profile's)")
    return UsageError(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, what) from exc
