"""``on_queue``: an SQS batch in, ``{"batchItemFailures": [...]}`` out. Records are handled concurrently on a small
thread pool: boto3 clients and httpx's client are thread-safe and blocking, so threads overlap their network waits
without an event loop (asyncio would only wrap the same blocking calls in ``to_thread``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from handlers.dispatch._errors import TransientError, UsageError
from handlers.dispatch._events import SqsEvent, SqsRecord
from handlers.dispatch._jobs import Disposition, JobService
from handlers.dispatch._logging import LOGGER_NAME, log_event

__all__ = ["handle_queue"]


def _one(service: JobService, record: SqsRecord) -> Disposition:
    try:
        return service.handle_message(record.message_id, record.body, record.attributes.approximate_receive_count)
    except (TransientError, UsageError) as exc:
        log_event(logging.WARNING, "message will be retried", None, message_id=record.message_id, reason=str(exc))
    except Exception:
        # A bug must not lose the message: it comes back, and after maxReceiveCount lands in the DLQ.
        logging.getLogger(LOGGER_NAME).exception("message handling crashed", extra={"message_id": record.message_id})
    return Disposition.RETRY


def handle_queue(service: JobService, event: Mapping[str, Any], concurrency: int = 10) -> dict[str, Any]:
    try:
        batch = SqsEvent.model_validate(event)
    except ValidationError as exc:
        raise UsageError(f"not an SQS event: {exc.error_count()} problem(s)") from exc
    if not batch.records:
        return {"batchItemFailures": []}
    with ThreadPoolExecutor(max_workers=min(concurrency, len(batch.records)), thread_name_prefix="sqs") as pool:
        outcomes = list(pool.map(lambda record: _one(service, record), batch.records))
    failures = [
        {"itemIdentifier": record.message_id}
        for record, outcome in zip(batch.records, outcomes, strict=True)
        if outcome is Disposition.RETRY
    ]
    return {"batchItemFailures": failures}
