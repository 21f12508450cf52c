"""Tell the caller a job ended: a signed POST to their webhook (retried with backoff) and/or a message on their SQS
queue. The body is the job's public record; the webhook carries ``X-Relay-Timestamp`` and ``X-Relay-Signature``
(``contract.sign_webhook``, the same scheme as progress webhooks) made with the caller's own secret.

Both targets are the caller's to name, so both are checked (:class:`NotifyPolicy`): a webhook URL passes the one SSRF
guard (``handlers.outbound``: static checks when the job is accepted, then on every POST resolved, every address
checked, sent to the checked address, redirects never followed); a queue must be on the allow-list
(``RELAY_NOTIFY_QUEUES``), since the function's role may write to queues the caller must never reach.
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

from handlers.contract import JobRecord, Notify, Problem, format_path, sign_webhook
from handlers.dispatch._aws_errors import aws_errors
from handlers.dispatch._errors import DispatchError
from handlers.dispatch._logging import log_event
from handlers.dispatch._retry import RetryPolicy, delays, is_retryable_status
from handlers.outbound import OutboundGuard, UnresolvableHost, UrlRefused

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["HttpNotifier", "MemoryNotifier", "Notifier", "NotifyPolicy", "finished_event"]


@dataclass(frozen=True)
class NotifyPolicy:
    """Where dispatch may announce a job's end: webhooks through the SSRF guard, queues from an allow-list."""

    guard: OutboundGuard = field(default_factory=OutboundGuard)
    queues: frozenset[str] = frozenset()

    def problems(self, notify: Notify, root: str = "notify") -> list[Problem]:
        """What the caller's ``notify`` asks that is refused (static checks only: no DNS at acceptance)."""
        problems: list[Problem] = []
        if notify.webhook_url is not None:
            try:
                self.guard.check(notify.webhook_url)
            except UrlRefused as exc:
                problems.append(Problem(path=format_path(root, ["webhook_url"]), message=exc.message))
        if notify.sqs_queue_url is not None and notify.sqs_queue_url not in self.queues:
            message = "is not a queue this deployment may notify (RELAY_NOTIFY_QUEUES)"
            problems.append(Problem(path=format_path(root, ["sqs_queue_url"]), message=message))
        return problems


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
        policy: NotifyPolicy | None = None,
    ) -> None:
        self._sqs = sqs
        # Pinned requests only: no proxies from the environment, no redirects followed.
        self._http = http or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0), trust_env=False)
        self.policy = policy or NotifyPolicy()
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
            if notify.sqs_queue_url not in self.policy.queues:
                log_event(logging.WARNING, "result event not sent: queue not allowed", record.job_id)
                return
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
        reason = "not sent"
        for attempt in range(len(waits) + 1):
            headers = {"Content-Type": "application/json", **sign_webhook(secret, body, self._clock_ms() // 1000)}
            try:
                # Pinned on every attempt: a DNS answer that changes between attempts is checked again.
                pinned = self.policy.guard.pin(url)
                response = self._http.post(
                    pinned.url,
                    content=body,
                    headers={**headers, **pinned.headers},
                    extensions=pinned.extensions,
                    follow_redirects=False,
                )
            except UrlRefused as exc:
                log_event(logging.WARNING, "caller webhook refused", job_id, reason=exc.message)
                return
            except UnresolvableHost as exc:
                reason = exc.message
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
