"""The one place botocore's exceptions become dispatch errors; the reading of the answer is the shared one
(:func:`handlers.common.classify_aws_error`, also used by the worker)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError, NoRegionError

from handlers.common import aws_error_code, classify_aws_error
from handlers.dispatch._errors import DispatchError, StoreUnavailable, UsageError

__all__ = ["aws_errors", "error_code", "translate"]


def error_code(exc: ClientError) -> str:
    return aws_error_code(exc.response)


def translate(exc: BotoCoreError | ClientError, what: str) -> DispatchError:
    """``what`` says which call failed (never a secret)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if classify_aws_error(exc.response).retryable:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
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
