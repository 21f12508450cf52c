"""Tell the caller a job ended: a signed POST to their webhook (retried with backoff) and/or a message on their SQS
queue. The body is the job's public record; the webhook carries ``X-Relay-Timestamp`` and ``X-Relay-Signature``
(``contract.sign_webhook``, the same scheme as progress webhooks) made with the caller's own secret.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from handlers.contract import JobRecord, Notify, sign_webhook
from handlers.dispatch._aws_errors import aws_errors
from handlers.dispatch._errors import DispatchError
from handlers.dispatch._logging import log_event
from handlers.dispatch._retry import RetryPolicy, delays, is_retryable_status

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["HttpNotifier", "MemoryNotifier", "Notifier", "finished_event"]


class Notifier(Protocol):
    def notify(self, record: JobRecord, notify: Notify) -> None:
        """Best effort: failures are logged, never raised (the record already holds the outcome)."""
        ...


def finished_event(record: JobRecord, now_ms: int) -> dict[str, Any]:
    return {
        "version": 1,
        "type": "job.finished",
        "job_id": record.job_id,
        "state": record.state.value,
        "sent_at_ms": now_ms,
        "record": record.model_dump(mode="json", exclude_none=True),
    }


class HttpNotifier:
    def __init__(
        self,
        *,
        sqs: SQSClient | None,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._sqs = sqs
        self._http = http or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self._retry = retry or RetryPolicy(attempts=3)
        self._sleep = sleep
        self._clock_ms = clock_ms
        self._rng = random.Random()  # noqa: S311 (jitter)
        self._lock = threading.Lock()

    def notify(self, record: JobRecord, notify: Notify) -> None:
        body = json.dumps(finished_event(record, self._clock_ms()), separators=(",", ":")).encode()
        if notify.webhook_url is not None and notify.webhook_secret is not None:
            self._post(record.job_id, notify.webhook_url, notify.webhook_secret, body)
        if notify.sqs_queue_url is not None:
            try:
                if self._sqs is None:
                    raise DispatchError("no SQS client to send the result event with")
                with aws_errors("SQS SendMessage (result event)"):
                    self._sqs.send_message(QueueUrl=notify.sqs_queue_url, MessageBody=body.decode())
            except DispatchError as exc:
                log_event(logging.WARNING, "result event not sent", record.job_id, reason=str(exc))

    def _post(self, job_id: str, url: str, secret: str, body: bytes) -> None:
        with self._lock:
            waits = list(delays(self._retry, self._rng))
        for attempt in range(len(waits) + 1):
            headers = {"Content-Type": "application/json", **sign_webhook(secret, body, self._clock_ms() // 1000)}
            try:
                response = self._http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    log_event(logging.INFO, "caller notified", job_id, attempt=attempt + 1)
                    return
                reason = f"HTTP {response.status_code}"
                if not is_retryable_status(response.status_code):
                    break
            if attempt < len(waits):
                self._sleep(waits[attempt])
        log_event(logging.WARNING, "caller webhook failed", job_id, reason=reason)


@dataclass
class MemoryNotifier:
    sent: list[tuple[JobRecord, Notify]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def notify(self, record: JobRecord, notify: Notify) -> None:
        with self._lock:
            self.sent.append((record, notify))
