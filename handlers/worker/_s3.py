"""The worker's one way to S3: every client is built by :func:`new_s3_client` (its own session, one retry policy)
and every ``ClientError`` is read by :func:`s3_error_retryable`, the classification dispatch uses too."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from handlers.common import classify_aws_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["DEFAULT_S3_ATTEMPTS", "new_s3_client", "new_s3_client_async", "s3_config", "s3_error_retryable"]

#: Total tries per S3 call (botocore's ``standard`` mode retries 5xx, throttling and connection errors).
DEFAULT_S3_ATTEMPTS: Final = 5


def s3_config(
    *,
    max_attempts: int = DEFAULT_S3_ATTEMPTS,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 60.0,
    max_pool_connections: int = 10,
) -> Config:
    """The retry policy and timeouts of every S3 client the worker builds."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        signature_version="s3v4",
        # botocore >= 1.36 adds a CRC32 trailer to every upload by default: a second pass over each output on the
        # critical path, and a header several S3-compatible stores reject. Only when S3 requires it.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=max_pool_connections,
    )


def new_s3_client(config: Config | None = None) -> S3Client:
    # Its own session: boto3's default one is not thread-safe, and clients are built from worker threads.
    return boto3.session.Session().client("s3", config=config or s3_config())


async def new_s3_client_async(config: Config | None = None) -> S3Client:
    """Built in a thread: loading botocore's service model from disk is too slow for the loop following ComfyUI."""
    return await asyncio.to_thread(new_s3_client, config)


def s3_error_retryable(exc: ClientError) -> bool:
    """Throttling, 5xx and races may pass on a later try; not-found, access and other 4xx never will."""
    return classify_aws_error(exc.response).retryable
